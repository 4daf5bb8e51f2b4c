//! A holder who appends costly Datalog to its writ gets a refusal after a bounded amount
//! of work, and does not hold up anyone else's requests (issue 18, item 1).
#![allow(clippy::unwrap_used)]

use std::time::{Duration, Instant};

use biscuit_auth::UnverifiedBiscuit;
use biscuit_auth::builder::BlockBuilder;
use reqwest::StatusCode;
use serde_json::{Value, json};
use writ_testkit::{MockUpstream, TestGateway};

const UPSTREAM_KEY: &str = "sk-upstream-test-0123456789";
const GRANT: &str =
    r#"{"type":"writ:llm","upstream":"demo","actions":["chat"],"models":["gpt-4o-mini"]}"#;

async fn setup() -> (MockUpstream, TestGateway) {
    let upstream = MockUpstream::start(UPSTREAM_KEY).await;
    let config = format!(
        "[upstreams.demo]\nkind = \"openai\"\nbase_url = \"{}\"\nallow_private_network = true\napi_key = \"{UPSTREAM_KEY}\"\n",
        upstream.base_url()
    );
    (upstream, TestGateway::start(&config).await)
}

/// Appends raw Datalog to `writ`, offline, as any holder can.
fn append(writ: &str, datalog: &str) -> String {
    let token = UnverifiedBiscuit::from_base64(writ.strip_prefix("writ_").unwrap()).unwrap();
    let block = BlockBuilder::new().code(datalog).unwrap();
    format!("writ_{}", token.append(block).unwrap().to_base64().unwrap())
}

fn facts(n: usize) -> String {
    (0..n).map(|i| format!("n({i});")).collect()
}

/// The issue's bomb: `n(0); … n(k-1);` and a four-way join in a rule.
fn rule_bomb(writ: &str, k: usize) -> String {
    append(
        writ,
        &format!(
            "{} p($a,$b,$c,$d) <- n($a), n($b), n($c), n($d); check if p(1,2,3,4);",
            facts(k)
        ),
    )
}

/// The same join as a check (which the library runs with no time limit at all).
fn check_bomb(writ: &str, k: usize) -> String {
    append(
        writ,
        &format!(
            "{} check if n($a), n($b), n($c), n($d), $a + $b + $c + $d == -1;",
            facts(k)
        ),
    )
}

async fn chat(gw: &TestGateway, writ: &str) -> (StatusCode, Value, Duration) {
    let started = Instant::now();
    let resp = reqwest::Client::new()
        .post(gw.url("/v1/chat/completions"))
        .bearer_auth(writ)
        .json(&json!({"model":"gpt-4o-mini","messages":[{"role":"user","content":"hi"}]}))
        .send()
        .await
        .unwrap();
    let status = resp.status();
    let body = resp.json().await.unwrap();
    (status, body, started.elapsed())
}

#[tokio::test]
async fn datalog_bombs_are_refused_and_ordinary_requests_are_served_meanwhile() {
    let (upstream, gw) = setup().await;
    let writ = gw.mint("demo", GRANT, 30);

    for k in [25, 40] {
        let (status, body, took) = chat(&gw, &rule_bomb(&writ, k)).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{body}");
        assert_eq!(body["error"]["code"], "invalid_writ", "{body}");
        let message = body["error"]["message"].as_str().unwrap();
        assert!(message.contains("rules"), "{message}");
        eprintln!("rule bomb, {k} facts: {status} in {took:?}");
    }
    let (status, body, took) = chat(&gw, &check_bomb(&writ, 25)).await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{body}");
    assert_eq!(body["error"]["code"], "writ_too_costly", "{body}");
    eprintln!("check bomb, 25 facts: {status} in {took:?}");

    // 48 bombs at once, and an ordinary request in the middle of them: the rule bombs
    // of the issue, and the costliest join the bound still lets through (evaluated).
    let within_bound = append(
        &writ,
        &format!(
            "{} check if n($a), n($b), n($c), $a + $b + $c == -1;",
            facts(14)
        ),
    );
    let bombs: Vec<String> = (0..48)
        .map(|i| match i % 3 {
            0 => rule_bomb(&writ, 25),
            1 => rule_bomb(&writ, 40),
            _ => within_bound.clone(),
        })
        .collect();
    let gw = std::sync::Arc::new(gw);
    let mut tasks = Vec::new();
    for bomb in bombs {
        let gw = gw.clone();
        tasks.push(tokio::spawn(async move { chat(&gw, &bomb).await }));
    }
    let (status, body, ordinary) = chat(&gw, &writ).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let mut slowest = Duration::ZERO;
    for task in tasks {
        let (status, body, took) = task.await.unwrap();
        // Refused as invalid, as denied, or (the address sent many invalid writs) throttled.
        assert!(
            [
                StatusCode::UNAUTHORIZED,
                StatusCode::FORBIDDEN,
                StatusCode::TOO_MANY_REQUESTS
            ]
            .contains(&status),
            "{status} {body}"
        );
        slowest = slowest.max(took);
    }
    eprintln!(
        "48 bombs in parallel: slowest refused in {slowest:?}; ordinary request {ordinary:?}"
    );
    // Only the ordinary request reached the upstream.
    assert_eq!(upstream.requests().len(), 1);
}

#[tokio::test]
async fn costly_checks_within_the_bound_are_evaluated_off_the_serving_thread() {
    // A join of three over 14 facts is within the bound (a few milliseconds): it is
    // evaluated, on the blocking pool, and the writ's check decides (here: denied).
    let (upstream, gw) = setup().await;
    let writ = gw.mint("demo", GRANT, 30);
    let costly = append(
        &writ,
        &format!(
            "{} check if n($a), n($b), n($c), $a + $b + $c == -1;",
            facts(14)
        ),
    );
    let (status, body, took) = chat(&gw, &costly).await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{body}");
    assert_eq!(body["error"]["code"], "grant_denied", "{body}");
    eprintln!("join of three over 14 facts: evaluated and denied in {took:?}");
    // Passing costly checks allow the request as any other.
    let passing = append(
        &writ,
        &format!(
            "{} check if n($a), n($b), n($c), $a + $b + $c >= 0;",
            facts(14)
        ),
    );
    let (status, body, _) = chat(&gw, &passing).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(upstream.requests().len(), 1);
}
