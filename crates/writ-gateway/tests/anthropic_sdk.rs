//! The official `anthropic` Python SDK, messages and streamed messages, through the gateway;
//! the usage the gateway recorded equals what the SDK received from the mock.
#![allow(clippy::unwrap_used)]

use std::path::Path;

use writ_testkit::{MockUpstream, TestGateway, run_python_lines};

const KEY: &str = "sk-ant-upstream-sdk-0123";
const GRANT: &str = r#"{"type":"writ:llm","upstream":"claude","models":["claude-sonnet-4"]}"#;

#[tokio::test(flavor = "multi_thread")]
async fn anthropic_python_sdk() {
    let upstream = MockUpstream::start(KEY).await;
    let gw = TestGateway::start(&format!(
        "[upstreams.claude]\nkind = \"anthropic\"\nbase_url = \"{}\"\nallow_private_network = true\napi_key = \"{KEY}\"\n",
        upstream.base_url()
    ))
    .await;
    let writ = gw.mint_as(GRANT, GRANT, 30);
    let seen = run_python_lines(
        &Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/python/anthropic_sdk.py"),
        &[("WRIT_BASE_URL", &gw.url("")), ("WRIT_TOKEN", &writ)],
    )
    .await;
    let recorded = gw.gateway().recent_usage();
    let metered: Vec<_> = recorded.iter().filter(|r| r.status == 200).collect();
    assert_eq!(metered.len(), 2);
    for (sdk, gateway) in seen.iter().zip(metered) {
        assert_eq!(gateway.usage.input_tokens, sdk["input"].as_u64().unwrap());
        assert_eq!(gateway.usage.output_tokens, sdk["output"].as_u64().unwrap());
        assert!(!gateway.estimated);
        // claude-sonnet-4: 3 $/M input, 15 $/M output.
        let expected = (gateway.usage.input_tokens * 3_000_000
            + gateway.usage.output_tokens * 15_000_000)
            .div_ceil(1_000_000);
        assert_eq!(gateway.cost_usd_micros, Some(expected));
    }
}
