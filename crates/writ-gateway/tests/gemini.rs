//! Gemini through the gateway: the writ arrives as `x-goog-api-key` and leaves replaced by
//! the real key; usage from `usageMetadata`, whole or streamed; the official google-genai
//! SDK works unchanged and the recorded usage matches what it received.
#![allow(clippy::unwrap_used)]

use std::path::Path;

use reqwest::StatusCode;
use serde_json::{Value, json};
use writ_testkit::{MockUpstream, TestGateway, run_python_lines};

const KEY: &str = "AIza-upstream-gemini-0123";
const GRANT: &str = r#"{"type":"writ:llm","upstream":"gemini","models":["gemini-2.0-flash"]}"#;

async fn setup() -> (MockUpstream, TestGateway) {
    let upstream = MockUpstream::start(KEY).await;
    let gw = TestGateway::start(&format!(
        "[upstreams.gemini]\nkind = \"gemini\"\nbase_url = \"{}\"\nallow_private_network = true\napi_key = \"{KEY}\"\n",
        upstream.base_url()
    ))
    .await;
    (upstream, gw)
}

#[tokio::test]
async fn generate_content_whole_and_streamed() {
    let (upstream, gw) = setup().await;
    let writ = gw.mint_as(GRANT, GRANT, 30);
    let client = reqwest::Client::new();
    let body = json!({"contents": [{"role": "user", "parts": [{"text": "hi gemini"}]}]});
    let resp = client
        .post(gw.url("/v1beta/models/gemini-2.0-flash:generateContent"))
        .header("x-goog-api-key", &writ)
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    let v: Value = resp.json().await.unwrap();
    assert_eq!(upstream.requests()[0].headers["x-goog-api-key"], KEY);
    let r = gw.gateway().recent_usage().pop().unwrap();
    assert_eq!(
        r.usage.output_tokens,
        v["usageMetadata"]["candidatesTokenCount"].as_u64().unwrap()
    );

    let resp = client
        .post(gw.url("/v1beta/models/gemini-2.0-flash:streamGenerateContent?alt=sse"))
        .header("x-goog-api-key", &writ)
        .json(&body)
        .send()
        .await
        .unwrap();
    let text = resp.text().await.unwrap();
    let last = text
        .split("\r\n\r\n")
        .filter(|e| e.starts_with("data: "))
        .last()
        .unwrap();
    let last: Value = serde_json::from_str(last.strip_prefix("data: ").unwrap()).unwrap();
    let r = gw.gateway().recent_usage().pop().unwrap();
    assert_eq!(
        r.usage.output_tokens,
        last["usageMetadata"]["candidatesTokenCount"]
            .as_u64()
            .unwrap()
    );
    assert!(!r.estimated);

    for (path, status) in [
        (
            "/v1beta/models/gemini-2.5-pro:generateContent",
            StatusCode::FORBIDDEN,
        ),
        (
            "/v1beta/models/gemini-2.0-flash:explode",
            StatusCode::NOT_FOUND,
        ),
    ] {
        let resp = client
            .post(gw.url(path))
            .header("x-goog-api-key", &writ)
            .json(&body)
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), status, "{path}");
    }
    let resp = client
        .post(gw.url("/v1beta/models/gemini-2.0-flash:generateContent"))
        .header("x-goog-api-key", &writ)
        .json(&json!({"contents": "not an array"}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::BAD_REQUEST);
    assert_eq!(upstream.requests().len(), 2);
}

#[tokio::test(flavor = "multi_thread")]
async fn google_genai_python_sdk() {
    let (_upstream, gw) = setup().await;
    let writ = gw.mint_as(GRANT, GRANT, 30);
    let seen = run_python_lines(
        &Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/python/gemini_sdk.py"),
        &[("WRIT_BASE_URL", &gw.url("")), ("WRIT_TOKEN", &writ)],
    )
    .await;
    let metered: Vec<_> = gw
        .gateway()
        .recent_usage()
        .into_iter()
        .filter(|r| r.status == 200)
        .collect();
    assert_eq!(metered.len(), 2);
    for (sdk, gateway) in seen.iter().zip(&metered) {
        assert_eq!(gateway.usage.input_tokens, sdk["input"].as_u64().unwrap());
        assert_eq!(gateway.usage.output_tokens, sdk["output"].as_u64().unwrap());
        // gemini-2.0-flash: 0.10 $/M input, 0.40 $/M output.
        let expected = (gateway.usage.input_tokens * 100_000
            + gateway.usage.output_tokens * 400_000)
            .div_ceil(1_000_000);
        assert_eq!(gateway.cost_usd_micros, Some(expected));
    }
}
