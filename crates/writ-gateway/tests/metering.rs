//! The meter phase: usage and cost recorded for every call, streamed or not; the usage
//! chunk the gateway adds is hidden; bad upstream responses become clear errors and never
//! carry the upstream credential.
#![allow(clippy::unwrap_used)]

use futures_util::StreamExt;
use reqwest::StatusCode;
use serde_json::{Value, json};
use writ_gateway::audit::usage_log::{Outcome, UsageRecord};
use writ_testkit::{MockUpstream, Script, ScriptEnd, TestGateway};

const KEY: &str = "sk-upstream-metering-0123";
const GRANT: &str = r#"{"type":"writ:llm","upstream":"demo"}"#;

async fn gateway_for(upstream: &MockUpstream, extra: &str) -> TestGateway {
    TestGateway::start(&format!(
        "[upstreams.demo]\nkind = \"openai\"\nbase_url = \"{}\"\nallow_private_network = true\napi_key = \"{KEY}\"\n{extra}",
        upstream.base_url()
    ))
    .await
}

async fn post(gw: &TestGateway, body: Value) -> reqwest::Response {
    let writ = gw.mint("demo", GRANT, 30);
    reqwest::Client::new()
        .post(gw.url("/v1/chat/completions"))
        .bearer_auth(writ)
        .json(&body)
        .send()
        .await
        .unwrap()
}

fn chat(stream: bool, include_usage: Option<bool>) -> Value {
    let mut body = json!({"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "count the tokens"}]});
    if stream {
        body["stream"] = json!(true);
    }
    if let Some(u) = include_usage {
        body["stream_options"] = json!({"include_usage": u});
    }
    body
}

fn last_record(gw: &TestGateway) -> UsageRecord {
    gw.gateway()
        .recent_usage()
        .last()
        .cloned()
        .expect("a usage record")
}

#[tokio::test]
async fn json_usage_and_cost_are_recorded() {
    let upstream = MockUpstream::start(KEY).await;
    let gw = gateway_for(&upstream, "").await;
    let v: Value = post(&gw, chat(false, None)).await.json().await.unwrap();
    let r = last_record(&gw);
    assert_eq!(
        r.usage.input_tokens,
        v["usage"]["prompt_tokens"].as_u64().unwrap()
    );
    assert_eq!(
        r.usage.output_tokens,
        v["usage"]["completion_tokens"].as_u64().unwrap()
    );
    assert!(!r.estimated);
    assert_eq!(r.outcome, Outcome::Completed);
    // gpt-4o-mini: 0.15 $/M input, 0.60 $/M output, rounded up to whole micros.
    let expected =
        (r.usage.input_tokens * 150_000 + r.usage.output_tokens * 600_000).div_ceil(1_000_000);
    assert_eq!(r.cost_usd_micros, Some(expected));
    assert_eq!((r.agent.as_str(), r.upstream.as_str()), ("demo", "demo"));
}

#[tokio::test]
async fn streamed_usage_is_metered_and_the_added_chunk_hidden() {
    let upstream = MockUpstream::start(KEY).await;
    let gw = gateway_for(&upstream, "").await;
    let text = post(&gw, chat(true, None)).await.text().await.unwrap();
    assert!(
        !text.contains("\"usage\":{"),
        "the client did not ask for usage: {text}"
    );
    assert!(text.ends_with("data: [DONE]\n\n"));
    let sent: Value = serde_json::from_slice(&upstream.requests()[0].body).unwrap();
    assert_eq!(
        sent["stream_options"]["include_usage"], true,
        "the gateway asks for usage upstream"
    );
    let r = last_record(&gw);
    assert!(!r.estimated && r.usage.output_tokens > 0);

    // A client that asked for usage sees it, and the numbers agree.
    let text = post(&gw, chat(true, Some(true)))
        .await
        .text()
        .await
        .unwrap();
    let usage_line = text.lines().find(|l| l.contains("\"usage\":{")).unwrap();
    let v: Value = serde_json::from_str(usage_line.strip_prefix("data: ").unwrap()).unwrap();
    assert_eq!(
        last_record(&gw).usage.output_tokens,
        v["usage"]["completion_tokens"].as_u64().unwrap()
    );
}

/// What a client reads from an SSE stream: the text of its deltas joined, and its other
/// events (data parsed as JSON where it is). The gateway re-writes each event from what it
/// scanned and may move a channel's text to a later event (it holds back what could start
/// a secret), so the stream is compared as read, not byte for byte.
fn as_read(body: &[u8]) -> (String, Vec<Value>) {
    let body = String::from_utf8_lossy(body);
    let mut text = String::new();
    let mut others = Vec::new();
    for block in body.split("\n\n").filter(|b| !b.is_empty()) {
        let mut name = Value::Null;
        let mut data = String::new();
        for line in block.lines() {
            if let Some(n) = line.strip_prefix("event: ") {
                name = json!(n);
            } else if let Some(d) = line.strip_prefix("data: ") {
                data.push_str(d);
            }
        }
        let data = serde_json::from_str(&data).unwrap_or(Value::String(data));
        let delta = data["choices"][0]["delta"]["content"]
            .as_str()
            .or_else(|| data["delta"].as_str());
        match delta {
            Some(piece) => text.push_str(piece),
            None => others.push(json!([name, data])),
        }
    }
    (text, others)
}

fn sse_stream(with_usage: bool) -> Vec<u8> {
    let mut s = String::new();
    for w in ["Hello", " there", " friend"] {
        s.push_str(&format!(
            "data: {{\"choices\":[{{\"index\":0,\"delta\":{{\"content\":\"{w}\"}}}}]}}\n\n"
        ));
    }
    if with_usage {
        s.push_str(
            "data: {\"choices\":[],\"usage\":{\"prompt_tokens\":11,\"completion_tokens\":3}}\n\n",
        );
    }
    s.push_str("data: [DONE]\n\n");
    s.into_bytes()
}

#[tokio::test]
async fn streams_cut_into_single_bytes_are_metered_exactly() {
    let body = sse_stream(true);
    let upstream = MockUpstream::start_scripted(
        KEY,
        Script {
            status: 200,
            content_type: "text/event-stream",
            chunks: body.iter().map(|b| vec![*b]).collect(),
            then: ScriptEnd::End,
        },
    )
    .await;
    let gw = gateway_for(&upstream, "").await;
    let text = post(&gw, chat(true, Some(true)))
        .await
        .text()
        .await
        .unwrap();
    assert_eq!(
        as_read(text.as_bytes()),
        as_read(&body),
        "the client reads what the upstream sent"
    );
    assert_eq!(as_read(&body).0, "Hello there friend");
    let r = last_record(&gw);
    assert_eq!(
        (r.usage.input_tokens, r.usage.output_tokens, r.estimated),
        (11, 3, false)
    );
}

#[tokio::test]
async fn streams_without_usage_or_cut_off_are_estimated() {
    let no_usage = sse_stream(false);
    let upstream = MockUpstream::start_scripted(
        KEY,
        Script {
            status: 200,
            content_type: "text/event-stream",
            chunks: no_usage.chunks(7).map(<[u8]>::to_vec).collect(),
            then: ScriptEnd::End,
        },
    )
    .await;
    let gw = gateway_for(&upstream, "").await;
    let text = post(&gw, chat(true, Some(true)))
        .await
        .text()
        .await
        .unwrap();
    assert_eq!(as_read(text.as_bytes()), as_read(&no_usage));
    let r = last_record(&gw);
    assert!(r.estimated);
    assert_eq!(
        r.usage.output_tokens,
        "Hello there friend".len().div_ceil(4) as u64
    );
    assert!(r.usage.input_tokens > 0);

    // Stalls mid-event: cut after read_timeout; the client gets what came, and the call
    // is settled as cut, with an estimate.
    let full = sse_stream(true);
    let upstream = MockUpstream::start_scripted(
        KEY,
        Script {
            status: 200,
            content_type: "text/event-stream",
            chunks: vec![full[..full.len() / 2].to_vec()],
            then: ScriptEnd::Hang,
        },
    )
    .await;
    let gw = gateway_for(&upstream, "read_timeout = \"300ms\"\n").await;
    let resp = post(&gw, chat(true, Some(true))).await;
    assert_eq!(resp.status(), StatusCode::OK);
    let mut stream = resp.bytes_stream();
    let mut got = Vec::new();
    while let Some(Ok(chunk)) = stream.next().await {
        got.extend_from_slice(&chunk);
    }
    // The complete events that came, as read: a start of the text (what the gateway
    // still held when the upstream stalled could be the start of a secret, and is not sent).
    let (text, _) = as_read(&got);
    assert!(
        "Hello there friend".starts_with(&text) && !text.is_empty(),
        "{text}"
    );
    let r = last_record(&gw);
    assert_eq!(r.outcome, Outcome::UpstreamCut);
    assert!(r.estimated);
}

async fn scripted_error(
    status: u16,
    content_type: &'static str,
    body: &[u8],
    then: ScriptEnd,
    extra: &str,
) -> (StatusCode, Value) {
    let upstream = MockUpstream::start_scripted(
        KEY,
        Script {
            status,
            content_type,
            chunks: vec![body.to_vec()],
            then,
        },
    )
    .await;
    let gw = gateway_for(&upstream, extra).await;
    let resp = post(&gw, chat(false, None)).await;
    let status = resp.status();
    let text = resp.text().await.unwrap();
    assert!(
        !text.contains(KEY),
        "the upstream credential leaked: {text}"
    );
    (status, serde_json::from_str(&text).unwrap_or(Value::Null))
}

#[tokio::test]
async fn bad_upstream_responses_become_clear_errors() {
    let (status, v) = scripted_error(
        500,
        "application/json",
        br#"{"error":"boom"}"#,
        ScriptEnd::End,
        "",
    )
    .await;
    assert_eq!(
        (status, v["error"]["code"].as_str()),
        (StatusCode::BAD_GATEWAY, Some("upstream_status"))
    );
    let (status, v) = scripted_error(
        200,
        "application/json",
        b"<html>not json</html>",
        ScriptEnd::End,
        "",
    )
    .await;
    assert_eq!(
        (status, v["error"]["code"].as_str()),
        (StatusCode::BAD_GATEWAY, Some("upstream_invalid_response"))
    );
    let (status, v) = scripted_error(
        200,
        "application/json",
        br#"{"usage":"#,
        ScriptEnd::Abort,
        "",
    )
    .await;
    assert_eq!(
        (status, v["error"]["code"].as_str()),
        (StatusCode::BAD_GATEWAY, Some("upstream_failed"))
    );
    let big = format!(r#"{{"pad":"{}"}}"#, "x".repeat(4096));
    let (status, v) = scripted_error(
        200,
        "application/json",
        big.as_bytes(),
        ScriptEnd::End,
        "max_response_bytes = 1024\n",
    )
    .await;
    assert_eq!(
        (status, v["error"]["code"].as_str()),
        (StatusCode::BAD_GATEWAY, Some("upstream_response_too_large"))
    );
    let (status, v) = scripted_error(
        200,
        "application/json",
        br#"{"id":"#,
        ScriptEnd::Hang,
        "read_timeout = \"200ms\"\n",
    )
    .await;
    assert_eq!(
        (status, v["error"]["code"].as_str()),
        (StatusCode::GATEWAY_TIMEOUT, Some("upstream_timeout"))
    );
    // An upstream refusing the gateway's key (and echoing it): the operator's problem, a
    // 502 naming the upstream; the upstream's body is not passed on at all.
    let echo = format!(
        r#"{{"error":{{"message":"Incorrect API key provided: {KEY}","code":"invalid_api_key"}}}}"#
    );
    let (status, v) =
        scripted_error(401, "application/json", echo.as_bytes(), ScriptEnd::End, "").await;
    assert_eq!(status, StatusCode::BAD_GATEWAY);
    assert_eq!(v["error"]["code"], "upstream_auth_failed", "{v}");
    assert!(!v.to_string().contains("Incorrect API key"), "{v}");
    // Other client errors pass through, an echoed key scrubbed.
    let (status, v) =
        scripted_error(400, "application/json", echo.as_bytes(), ScriptEnd::End, "").await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(
        v["error"]["message"]
            .as_str()
            .unwrap()
            .contains("[REDACTED:configured-secret]")
    );
}

#[tokio::test]
async fn streamed_responses_api_usage_comes_from_response_completed() {
    let events = "event: response.created\ndata: {\"type\":\"response.created\"}\n\n\
        event: response.output_text.delta\ndata: {\"type\":\"response.output_text.delta\",\"delta\":\"Hi\"}\n\n\
        event: response.completed\ndata: {\"type\":\"response.completed\",\"response\":{\"usage\":{\"input_tokens\":21,\"output_tokens\":9}}}\n\n";
    let upstream = MockUpstream::start_scripted(
        KEY,
        Script {
            status: 200,
            content_type: "text/event-stream",
            chunks: events.as_bytes().chunks(5).map(<[u8]>::to_vec).collect(),
            then: ScriptEnd::End,
        },
    )
    .await;
    let gw = gateway_for(&upstream, "").await;
    let writ = gw.mint("demo", GRANT, 30);
    let text = reqwest::Client::new()
        .post(gw.url("/v1/responses"))
        .bearer_auth(writ)
        .json(&json!({"model": "gpt-4o-mini", "input": "hi", "stream": true}))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert_eq!(as_read(text.as_bytes()), as_read(events.as_bytes()));
    assert_eq!(as_read(events.as_bytes()).1.len(), 2);
    let r = last_record(&gw);
    assert_eq!(
        (r.usage.input_tokens, r.usage.output_tokens, r.estimated),
        (21, 9, false)
    );
}
