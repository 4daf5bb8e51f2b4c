//! The limit phase with the in-memory backend: all-or-nothing reservations, 429s that say
//! which limit and when to retry, refunds on upstream failure, token rates that refill,
//! and concurrency slots freed when a client goes away.
#![allow(clippy::unwrap_used)]

use std::time::Duration;

use futures_util::StreamExt;
use reqwest::StatusCode;
use serde_json::{Value, json};
use writ_testkit::{Behavior, MockUpstream, TestGateway};

const KEY: &str = "sk-upstream-limits-0123";
const GRANT: &str = r#"{"type":"writ:llm","upstream":"demo"}"#;

async fn gateway(upstream: &MockUpstream, limits: &str) -> TestGateway {
    TestGateway::start(&format!(
        "{limits}\n[upstreams.demo]\nkind = \"openai\"\nbase_url = \"{}\"\nallow_private_network = true\napi_key = \"{KEY}\"\n",
        upstream.base_url()
    ))
    .await
}

fn chat(stream: bool, max_tokens: u64) -> Value {
    json!({
        "model": "gpt-4o-mini",
        "messages": [{"role": "user", "content": "hi"}],
        "max_tokens": max_tokens,
        "stream": stream,
    })
}

async fn post(gw: &TestGateway, body: &Value) -> reqwest::Response {
    post_with(gw, &gw.mint("demo", GRANT, 30), body).await
}

/// A chat completion presenting `writ`.
async fn post_with(gw: &TestGateway, writ: &str, body: &Value) -> reqwest::Response {
    reqwest::Client::new()
        .post(gw.url("/v1/chat/completions"))
        .bearer_auth(writ)
        .json(body)
        .send()
        .await
        .unwrap()
}

#[tokio::test]
async fn a_request_budget_refuses_with_429_and_says_when_to_retry() {
    let upstream = MockUpstream::start(KEY).await;
    let gw = gateway(
        &upstream,
        "[[limit]]\nscope = \"agent\"\ndimension = \"requests\"\nper = \"day\"\nlimit = 3\n",
    )
    .await;
    for left in [2, 1, 0] {
        let resp = post(&gw, &chat(false, 5)).await;
        assert_eq!(resp.status(), StatusCode::OK);
        assert_eq!(resp.headers()["x-ratelimit-limit-requests"], "3");
        assert_eq!(
            resp.headers()["x-ratelimit-remaining-requests"],
            left.to_string().as_str()
        );
        assert!(resp.headers().contains_key("ratelimit-policy"));
    }
    let resp = post(&gw, &chat(false, 5)).await;
    assert_eq!(resp.status(), StatusCode::TOO_MANY_REQUESTS);
    let retry: u64 = resp.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..=86_400).contains(&retry), "{retry}");
    assert_eq!(resp.headers()["x-ratelimit-remaining-requests"], "0");
    assert_eq!(
        resp.headers()["ratelimit-policy"],
        "\"requests\";q=3;w=86400"
    );
    let v: Value = resp.json().await.unwrap();
    assert_eq!(v["error"]["code"], "rate_limit_exceeded");
    assert_eq!(v["error"]["type"], "rate_limit_error");
    let message = v["error"]["message"].as_str().unwrap();
    assert!(
        message.contains("3 requests per day") && message.contains("agent=demo"),
        "{message}"
    );
    assert_eq!(upstream.requests().len(), 3);
}

#[tokio::test]
async fn reservations_are_all_or_nothing_and_failures_are_refunded() {
    let upstream = MockUpstream::start("sk-some-other-key-entirely").await;
    // The upstream refuses the gateway's key (401): a client error, so it still counts.
    // A closed upstream (connect failure) is refunded whole.
    let gw = TestGateway::start(&format!(
        "[[limit]]\nscope = \"agent\"\ndimension = \"requests\"\nper = \"day\"\nlimit = 2\n\n\
         [[limit]]\nscope = \"agent\"\ndimension = \"output_tokens\"\nper = \"day\"\nlimit = 100\n\n\
         [upstreams.demo]\nkind = \"openai\"\nbase_url = \"{}\"\nallow_private_network = true\napi_key = \"{KEY}\"\n",
        writ_testkit::closed_port_url()
    ))
    .await;
    for _ in 0..5 {
        let resp = post(&gw, &chat(false, 40)).await;
        assert_eq!(resp.status(), StatusCode::BAD_GATEWAY);
    }
    drop(upstream);
    // Nothing was consumed by the failures: the budget is whole. A request whose output
    // cap alone exceeds the token budget is refused without taking a request.
    let resp = post(&gw, &chat(false, 101)).await;
    assert_eq!(resp.status(), StatusCode::TOO_MANY_REQUESTS);
    let v: Value = resp.json().await.unwrap();
    assert!(
        v["error"]["message"]
            .as_str()
            .unwrap()
            .contains("output_tokens")
    );
}

#[tokio::test]
async fn a_token_rate_stops_a_burst_of_streams_and_refills() {
    let upstream = MockUpstream::start_with(KEY, Behavior::HoldStreamAfterFirstEvent).await;
    // 150 tokens a minute; each streamed request reserves its cap of 40 output tokens plus
    // its input estimate (about 24 from its body), and settles with what it actually used.
    let gw = gateway(
        &upstream,
        "[[limit]]\nscope = \"agent\"\ndimension = \"tokens\"\nper = \"minute\"\nlimit = 150\n",
    )
    .await;
    let mut admitted = 0;
    let mut refused = 0;
    let mut open = Vec::new();
    for _ in 0..5 {
        let resp = post(&gw, &chat(true, 40)).await;
        match resp.status() {
            StatusCode::OK => {
                admitted += 1;
                open.push(resp);
            }
            StatusCode::TOO_MANY_REQUESTS => refused += 1,
            other => panic!("{other}"),
        }
    }
    // Reservations held by the open streams: only two fit in 150 tokens.
    assert_eq!((admitted, refused), (2, 3));
    // Reading the streams to the end settles them with the (smaller) actual usage.
    upstream.release();
    for resp in open {
        let mut body = resp.bytes_stream();
        while let Some(chunk) = body.next().await {
            chunk.unwrap();
        }
    }
    let used: u64 = gw
        .gateway()
        .recent_usage()
        .iter()
        .map(|r| r.usage.input_tokens + r.usage.output_tokens)
        .sum();
    assert!(
        used <= 86,
        "the mock uses fewer tokens than reserved: {used}"
    );
    // The refund makes room at once: what is left is the limit minus what was actually
    // used, minus this request's own reservation.
    let body = chat(false, 40);
    let reserved = 40 + (serde_json::to_vec(&body).unwrap().len() as u64).div_ceil(4);
    let resp = post(&gw, &body).await;
    assert_eq!(resp.status(), StatusCode::OK);
    let remaining: u64 = resp.headers()["x-ratelimit-remaining-tokens"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert_eq!(remaining, 150 - used - reserved);
    // After a minute the whole rate is back.
    gw.clock().advance(Duration::from_secs(60));
    let resp = post(&gw, &body).await;
    assert_eq!(
        resp.headers()["x-ratelimit-remaining-tokens"],
        (150 - reserved).to_string().as_str()
    );
}

#[tokio::test]
async fn concurrency_slots_are_held_while_streaming_and_freed_on_disconnect() {
    let upstream = MockUpstream::start_with(KEY, Behavior::HoldStreamAfterFirstEvent).await;
    let gw = gateway(
        &upstream,
        "[[limit]]\nscope = \"agent\"\ndimension = \"concurrency\"\nlimit = 2\n",
    )
    .await;
    let first = post(&gw, &chat(true, 5)).await;
    let second = post(&gw, &chat(true, 5)).await;
    assert_eq!(first.status(), StatusCode::OK);
    assert_eq!(second.status(), StatusCode::OK);
    let mut first = first.bytes_stream();
    first.next().await.unwrap().unwrap();
    let third = post(&gw, &chat(true, 5)).await;
    assert_eq!(third.status(), StatusCode::TOO_MANY_REQUESTS);
    let v: Value = third.json().await.unwrap();
    assert!(
        v["error"]["message"]
            .as_str()
            .unwrap()
            .contains("concurrency")
    );
    // The first client goes away mid-stream: its slot is freed.
    drop(first);
    let mut attempts = 0;
    let admitted = loop {
        attempts += 1;
        let resp = post(&gw, &chat(true, 5)).await;
        if resp.status() == StatusCode::OK {
            break resp;
        }
        assert!(attempts < 1000, "the slot was never freed");
        tokio::task::yield_now().await;
    };
    drop(admitted);
    drop(second);
    upstream.release();
}

#[tokio::test]
async fn operators_read_the_counters() {
    let upstream = MockUpstream::start(KEY).await;
    let gw = gateway(
        &upstream,
        "[[limit]]\nscope = [\"tenant\", \"agent\"]\ndimension = \"requests\"\nper = \"day\"\nlimit = 10\n\n[[limit]]\nscope = \"upstream\"\ndimension = \"tokens\"\nper = \"minute\"\nlimit = 100000\n",
    )
    .await;
    for _ in 0..2 {
        assert_eq!(post(&gw, &chat(false, 5)).await.status(), StatusCode::OK);
    }
    let admin = gw.mint_as(r#"{"type":"writ:admin"}"#, r#"{"type":"writ:admin"}"#, 30);
    let client = reqwest::Client::new();
    let read = |scope: &'static str| {
        let client = client.clone();
        let url = gw.url(&format!("/admin/v1/usage?scope={scope}"));
        let admin = admin.clone();
        async move { client.get(url).bearer_auth(admin).send().await.unwrap() }
    };
    let v: Value = read("tenant%3Ddefault,agent%3Ddemo")
        .await
        .json()
        .await
        .unwrap();
    let counters = v["counters"].as_array().unwrap();
    assert_eq!(counters.len(), 1, "{v}");
    assert_eq!(counters[0]["dimension"], "requests");
    assert_eq!(counters[0]["used"], 2);
    assert_eq!(counters[0]["limit"], 10);
    let v: Value = read("upstream%3Ddemo").await.json().await.unwrap();
    assert_eq!(v["counters"][0]["dimension"], "tokens");
    assert!(v["counters"][0]["used"].as_u64().unwrap() > 0);
    assert_eq!(
        read("planet%3Dmars").await.status(),
        StatusCode::BAD_REQUEST
    );
    // Data-plane writs cannot read it.
    let resp = client
        .get(gw.url("/admin/v1/usage"))
        .bearer_auth(gw.mint("demo", GRANT, 30))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::FORBIDDEN);
}

/// Grants for `demo` with a `writ:budget` of `tokens`.
fn budget_grants(tokens: u64) -> String {
    format!(
        r#"[{{"type":"writ:llm","upstream":"demo"}},{{"type":"writ:budget","tokens":{tokens}}}]"#
    )
}

#[tokio::test]
async fn a_writ_budget_caps_what_the_writ_can_spend() {
    let upstream = MockUpstream::start(KEY).await;
    let gw = gateway(&upstream, "").await;
    let grants = budget_grants(60);
    let writ = gw.mint_as(GRANT, &grants, 30);
    let mut refused = None;
    for i in 0..20 {
        let resp = post_with(&gw, &writ, &chat(false, 5)).await;
        if resp.status() == StatusCode::TOO_MANY_REQUESTS {
            let v: Value = resp.json().await.unwrap();
            refused = Some((i, v["error"]["message"].as_str().unwrap().to_string()));
            break;
        }
        assert_eq!(resp.status(), StatusCode::OK);
    }
    let (after, message) = refused.expect("the writ's budget must run out");
    assert!(after >= 1, "at least one call fits in 60 tokens");
    assert!(
        message.contains("tokens") && message.contains("writ="),
        "{message}"
    );
    let spent: u64 = gw
        .gateway()
        .recent_usage()
        .iter()
        .map(|r| r.usage.input_tokens + r.usage.output_tokens)
        .sum();
    assert!(spent <= 60, "spent {spent} of a 60-token writ budget");
    // Another writ of the same agent has its own budget.
    let other = gw.mint_as(GRANT, &grants, 30);
    let resp = post_with(&gw, &other, &chat(false, 5)).await;
    assert_eq!(resp.status(), StatusCode::OK);
}

/// A request larger than the writ's whole budget is told so, not told to wait: OpenAI's
/// "Request too large" shape (429, `rate_limit_exceeded`), with what to do instead.
#[tokio::test]
async fn a_request_larger_than_the_writs_budget_is_told_it_is_too_large() {
    let upstream = MockUpstream::start(KEY).await;
    let gw = gateway(&upstream, "").await;
    let writ = gw.mint_as(GRANT, &budget_grants(3), 30);
    let resp = post_with(&gw, &writ, &chat(false, 5)).await;
    assert_eq!(resp.status(), StatusCode::TOO_MANY_REQUESTS);
    let v: Value = resp.json().await.unwrap();
    assert_eq!(v["error"]["code"], "rate_limit_exceeded");
    let message = v["error"]["message"].as_str().unwrap();
    assert!(
        message.starts_with("Request too large: it needs ")
            && message.contains("more than the limit of 3 tokens")
            && message.contains("writ=")
            && message.contains("Ask for less")
            && !message.contains("Retry after"),
        "{message}"
    );
    assert!(upstream.requests().is_empty());
}

#[tokio::test]
async fn limits_can_apply_to_one_agent_only() {
    let upstream = MockUpstream::start(KEY).await;
    let gw = gateway(
        &upstream,
        "[[limit]]\nscope = \"agent\"\ndimension = \"requests\"\nper = \"month\"\nlimit = 1\nmatch = { agent = \"someone-else\" }\n\n\
         [[limit]]\nscope = \"agent\"\ndimension = \"requests\"\nper = \"month\"\nlimit = 2\nmatch = { agent = \"demo\" }\n",
    )
    .await;
    assert_eq!(post(&gw, &chat(false, 5)).await.status(), StatusCode::OK);
    assert_eq!(post(&gw, &chat(false, 5)).await.status(), StatusCode::OK);
    let resp = post(&gw, &chat(false, 5)).await;
    assert_eq!(resp.status(), StatusCode::TOO_MANY_REQUESTS);
    let v: Value = resp.json().await.unwrap();
    let message = v["error"]["message"].as_str().unwrap();
    assert!(message.contains("2 requests per month"), "{message}");
}
