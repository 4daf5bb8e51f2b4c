//! The official `anthropic` and `google-genai` Python SDKs raise their own typed errors for
//! errors the gateway produces on their routes (authentication, authorization, output cap,
//! rate limit), because each route answers in its family's error shape.
#![allow(clippy::unwrap_used)]

use std::path::Path;

use serde_json::Value;
use writ_testkit::{MockUpstream, TestGateway, run_python_lines};

const KEY: &str = "sk-upstream-sdk-errors-0123456789";
const GRANTS: &str = r#"[
  {"type":"writ:llm","upstream":"claude","models":["claude-sonnet-4"],"max_output_tokens":500},
  {"type":"writ:llm","upstream":"gemini","models":["gemini-2.0-flash"],"max_output_tokens":500}]"#;

#[tokio::test(flavor = "multi_thread")]
async fn each_sdk_raises_its_own_typed_errors() {
    let mock = MockUpstream::start(KEY).await;
    let base = mock.base_url();
    // One request a minute per upstream: each SDK's second good call is rate limited.
    let gw = TestGateway::start(&format!(
        "[upstreams.claude]\nkind = \"anthropic\"\nbase_url = \"{base}\"\nallow_private_network = true\napi_key = \"{KEY}\"\n\
         [upstreams.gemini]\nkind = \"gemini\"\nbase_url = \"{base}\"\nallow_private_network = true\napi_key = \"{KEY}\"\n\
         [[limit]]\nscope = \"upstream\"\ndimension = \"requests\"\nper = \"minute\"\nlimit = 1\n"
    ))
    .await;
    let writ = gw.mint_as(GRANTS, GRANTS, 30);
    let seen = run_python_lines(
        &Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/python/sdk_errors.py"),
        &[("WRIT_BASE_URL", &gw.url("")), ("WRIT_TOKEN", &writ)],
    )
    .await;
    let case = |sdk: &str, case: &str| -> &Value {
        seen.iter()
            .find(|l| l["sdk"] == sdk && l["case"] == case)
            .unwrap_or_else(|| panic!("{sdk} {case} missing: {seen:?}"))
    };
    for (name, class, status, kind) in [
        ("auth", "AuthenticationError", 401, "authentication_error"),
        ("denied", "PermissionDeniedError", 403, "permission_error"),
        ("cap", "PermissionDeniedError", 403, "permission_error"),
        ("rate", "RateLimitError", 429, "rate_limit_error"),
    ] {
        let got = case("anthropic", name);
        assert_eq!(got["class"], class, "{got}");
        assert_eq!(got["status"], status, "{got}");
        assert_eq!(got["shape"], serde_json::json!(["error", kind]), "{got}");
    }
    assert!(
        case("anthropic", "cap")["message"]
            .as_str()
            .unwrap()
            .contains("set max_tokens ≤ 500"),
        "{seen:?}"
    );
    assert!(case("anthropic", "ok")["class"].is_null(), "{seen:?}");
    for (name, status, google) in [
        ("auth", 401, "UNAUTHENTICATED"),
        ("denied", 403, "PERMISSION_DENIED"),
        ("cap", 403, "PERMISSION_DENIED"),
        ("rate", 429, "RESOURCE_EXHAUSTED"),
    ] {
        let got = case("genai", name);
        assert_eq!(got["class"], "ClientError", "{got}");
        assert_eq!(got["status"], status, "{got}");
        assert_eq!(got["shape"], google, "{got}");
    }
    assert!(
        case("genai", "cap")["message"]
            .as_str()
            .unwrap()
            .contains("set generationConfig.maxOutputTokens ≤ 500"),
        "{seen:?}"
    );
    assert!(case("genai", "ok")["class"].is_null(), "{seen:?}");
}
