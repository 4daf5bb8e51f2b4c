//! Anthropic through the gateway: the writ arrives as `x-api-key`, leaves replaced by the
//! real key; usage from the message or from `message_start` + `message_delta`.
#![allow(clippy::unwrap_used)]

use reqwest::StatusCode;
use serde_json::{Value, json};
use writ_testkit::{MockUpstream, TestGateway};

const KEY: &str = "sk-ant-upstream-0123456789";
const GRANT: &str = r#"{"type":"writ:llm","upstream":"claude","models":["claude-sonnet-4"]}"#;

async fn setup() -> (MockUpstream, TestGateway) {
    let upstream = MockUpstream::start(KEY).await;
    let gw = TestGateway::start(&format!(
        "[upstreams.claude]\nkind = \"anthropic\"\nbase_url = \"{}\"\nallow_private_network = true\napi_key = \"{KEY}\"\n",
        upstream.base_url()
    ))
    .await;
    (upstream, gw)
}

async fn messages(
    gw: &TestGateway,
    writ: &str,
    body: Value,
    version: Option<&str>,
) -> reqwest::Response {
    let mut req = reqwest::Client::new()
        .post(gw.url("/v1/messages"))
        .header("x-api-key", writ)
        .json(&body);
    if let Some(v) = version {
        req = req.header("anthropic-version", v);
    }
    req.send().await.unwrap()
}

fn body(stream: bool) -> Value {
    json!({"model": "claude-sonnet-4", "max_tokens": 64, "stream": stream, "messages": [{"role": "user", "content": "hello claude"}]})
}

#[tokio::test]
async fn messages_with_the_real_key_and_metered_usage() {
    let (upstream, gw) = setup().await;
    let writ = gw.mint_as(GRANT, GRANT, 30);
    let resp = messages(&gw, &writ, body(false), Some("2023-06-01")).await;
    assert_eq!(resp.status(), StatusCode::OK);
    let v: Value = resp.json().await.unwrap();
    let seen = &upstream.requests()[0];
    assert_eq!(seen.headers["x-api-key"], KEY);
    assert_eq!(seen.headers["anthropic-version"], "2023-06-01");
    assert!(seen.headers.get("authorization").is_none());
    let r = gw.gateway().recent_usage().pop().unwrap();
    assert_eq!(
        r.usage.input_tokens,
        v["usage"]["input_tokens"].as_u64().unwrap()
    );
    assert_eq!(
        r.usage.output_tokens,
        v["usage"]["output_tokens"].as_u64().unwrap()
    );
    assert!(!r.estimated && r.cost_usd_micros.is_some());

    // Streamed: usage assembled from message_start and message_delta.
    let text = messages(&gw, &writ, body(true), None)
        .await
        .text()
        .await
        .unwrap();
    assert!(text.contains("event: message_stop"));
    let delta = text
        .lines()
        .rfind(|l| l.contains("\"message_delta\""))
        .unwrap();
    let delta: Value = serde_json::from_str(delta.strip_prefix("data: ").unwrap()).unwrap();
    let r = gw.gateway().recent_usage().pop().unwrap();
    assert_eq!(
        r.usage.output_tokens,
        delta["usage"]["output_tokens"].as_u64().unwrap()
    );
    assert!(r.usage.input_tokens > 0 && !r.estimated);
    assert_eq!(
        upstream.requests()[1].headers["anthropic-version"],
        "2023-06-01",
        "defaulted when absent"
    );
}

#[tokio::test]
async fn anthropic_requests_are_checked() {
    let (upstream, gw) = setup().await;
    let writ = gw.mint_as(GRANT, GRANT, 30);
    let mut other = body(false);
    other["model"] = json!("claude-opus-4");
    assert_eq!(
        messages(&gw, &writ, other, None).await.status(),
        StatusCode::FORBIDDEN
    );
    let mut no_cap = body(false);
    no_cap.as_object_mut().unwrap().remove("max_tokens");
    let resp = messages(&gw, &writ, no_cap, None).await;
    assert_eq!(resp.status(), StatusCode::BAD_REQUEST);
    let v: Value = resp.json().await.unwrap();
    assert_eq!(v["error"]["param"], "max_tokens");
    assert!(upstream.requests().is_empty());
}
