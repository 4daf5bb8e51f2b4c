//! Azure OpenAI through the gateway: per-deployment paths, `api-key` injected, the model
//! taken from the deployment map for grants and prices; the official AzureOpenAI client.
#![allow(clippy::unwrap_used)]

use std::path::Path;

use reqwest::StatusCode;
use serde_json::{Value, json};
use writ_testkit::{MockUpstream, TestGateway, run_python_lines};

const KEY: &str = "azure-upstream-key-0123456789";
const GRANT: &str = r#"{"type":"writ:llm","upstream":"azure","models":["gpt-4o"]}"#;

async fn setup() -> (MockUpstream, TestGateway) {
    let upstream = MockUpstream::start(KEY).await;
    let gw = TestGateway::start(&format!(
        "[upstreams.azure]\nkind = \"azure\"\nbase_url = \"{}\"\nallow_private_network = true\napi_key = \"{KEY}\"\ndeployments = {{ \"prod-4o\" = \"gpt-4o\", \"cheap\" = \"gpt-4o-mini\" }}\n",
        upstream.base_url()
    ))
    .await;
    (upstream, gw)
}

#[tokio::test]
async fn deployments_map_to_models_for_grants_and_prices() {
    let (upstream, gw) = setup().await;
    let writ = gw.mint_as(GRANT, GRANT, 30);
    let client = reqwest::Client::new();
    let body = json!({"messages": [{"role": "user", "content": "hi azure"}]});
    let resp = client
        .post(gw.url("/openai/deployments/prod-4o/chat/completions?api-version=2024-10-21"))
        .header("api-key", &writ)
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    let v: Value = resp.json().await.unwrap();
    let seen = &upstream.requests()[0];
    assert_eq!(seen.headers["api-key"], KEY);
    assert_eq!(seen.uri.query(), Some("api-version=2024-10-21"));
    let r = gw.gateway().recent_usage().pop().unwrap();
    assert_eq!(r.model.as_deref(), Some("gpt-4o"));
    assert_eq!(
        r.usage.output_tokens,
        v["usage"]["completion_tokens"].as_u64().unwrap()
    );
    // gpt-4o: 2.50 $/M input, 10 $/M output.
    let expected =
        (r.usage.input_tokens * 2_500_000 + r.usage.output_tokens * 10_000_000).div_ceil(1_000_000);
    assert_eq!(r.cost_usd_micros, Some(expected));
    // The "cheap" deployment serves gpt-4o-mini, which the grant does not name.
    let resp = client
        .post(gw.url("/openai/deployments/cheap/chat/completions?api-version=2024-10-21"))
        .header("api-key", &writ)
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::FORBIDDEN);
    assert_eq!(upstream.requests().len(), 1);
}

#[tokio::test(flavor = "multi_thread")]
async fn azure_openai_python_sdk() {
    let (_upstream, gw) = setup().await;
    let writ = gw.mint_as(GRANT, GRANT, 30);
    let seen = run_python_lines(
        &Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/python/azure_sdk.py"),
        &[("WRIT_BASE_URL", &gw.url("")), ("WRIT_TOKEN", &writ)],
    )
    .await;
    let metered = gw.gateway().recent_usage();
    assert_eq!(metered.len(), 2);
    for (sdk, gateway) in seen.iter().zip(&metered) {
        assert_eq!(gateway.usage.input_tokens, sdk["input"].as_u64().unwrap());
        assert_eq!(gateway.usage.output_tokens, sdk["output"].as_u64().unwrap());
        assert_eq!(gateway.model.as_deref(), Some("gpt-4o"));
    }
}
