//! `Origin` on `/mcp/{upstream}`: a request whose `Origin` is present must come from the
//! gateway's own origin (that of its issuer URL) or one of `[server] mcp_allowed_origins`;
//! any other, `null` or a malformed one is refused 403 before its writ is looked at and
//! before anything is forwarded. Without `Origin` (non-browser clients) nothing changes,
//! and the model API routes do not check it.

use reqwest::StatusCode;
use serde_json::json;
use writ_testkit::{MockUpstream, TestGateway};

const KEY: &str = "mcp-origin-key-0123456789";
const EXTRA_ORIGIN: &str = "https://app.example.com";

async fn setup(server: &str) -> (MockUpstream, TestGateway) {
    let upstream = MockUpstream::start(KEY).await;
    let config = format!(
        "[server]\nmcp_allowed_origins = [\"{EXTRA_ORIGIN}\"]\n{server}\n\
         [upstreams.travel]\nkind = \"mcp\"\nbase_url = \"{base}/mcp\"\nallow_private_network = true\napi_key = \"{KEY}\"\n\n\
         [upstreams.openai]\nkind = \"openai\"\nbase_url = \"{base}\"\nallow_private_network = true\napi_key = \"{KEY}\"\n",
        base = upstream.base_url()
    );
    (upstream, TestGateway::start(&config).await)
}

fn tool_writ(gw: &TestGateway) -> String {
    let grant = r#"{"type":"writ:tool","upstream":"travel","tool":"book_flight","additional_arguments":true}"#;
    gw.mint_as(grant, grant, 30)
}

/// An `initialize` to `/mcp/travel` with `origin` and `writ` when given.
async fn initialize(
    gw: &TestGateway,
    origin: Option<&str>,
    writ: Option<&str>,
) -> reqwest::Response {
    let mut req = reqwest::Client::new()
        .post(gw.url("/mcp/travel"))
        .json(&json!({"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {}}));
    if let Some(o) = origin {
        req = req.header("origin", o);
    }
    if let Some(w) = writ {
        req = req.bearer_auth(w);
    }
    req.send().await.expect("the gateway answers")
}

#[tokio::test]
async fn a_present_origin_must_be_the_gateways_own_or_a_configured_one() {
    let (upstream, gw) = setup("").await;
    let writ = tool_writ(&gw);
    let own = gw.url("");
    for origin in [
        None,
        Some(own.as_str()),
        Some(EXTRA_ORIGIN),
        Some("https://APP.example.com:443"),
    ] {
        let resp = initialize(&gw, origin, Some(&writ)).await;
        assert_eq!(resp.status(), StatusCode::OK, "{origin:?}");
    }
    let served = upstream.requests().len();
    for origin in [
        "https://evil.example",
        "null",
        "http://app.example.com",
        "https://app.example.com/",
        "https://app.example.com:8443",
        "not an origin",
    ] {
        let resp = initialize(&gw, Some(origin), Some(&writ)).await;
        let status = resp.status();
        let body = resp.text().await.expect("a body");
        assert_eq!(status, StatusCode::FORBIDDEN, "{origin}: {body}");
        // A JSON-RPC error with no id: the body was not read.
        let v: serde_json::Value = serde_json::from_str(&body).expect("JSON");
        assert_eq!(v["jsonrpc"], "2.0", "{body}");
        assert!(v["id"].is_null(), "{body}");
        assert_eq!(v["error"]["data"]["code"], "origin_not_allowed", "{body}");
        assert!(!body.contains("evil"), "nothing echoed: {body}");
    }
    // Two Origin headers name no one origin.
    let resp = reqwest::Client::new()
        .post(gw.url("/mcp/travel"))
        .bearer_auth(&writ)
        .header("origin", EXTRA_ORIGIN)
        .header("origin", EXTRA_ORIGIN)
        .json(&json!({"jsonrpc": "2.0", "id": 1, "method": "ping"}))
        .send()
        .await
        .expect("answered");
    assert_eq!(resp.status(), StatusCode::FORBIDDEN);
    // Refused before the writ is looked at: no writ at all is still a 403, not a 401.
    let resp = initialize(&gw, Some("https://evil.example"), None).await;
    assert_eq!(resp.status(), StatusCode::FORBIDDEN);
    assert_eq!(
        upstream.requests().len(),
        served,
        "nothing refused was forwarded"
    );
}

#[tokio::test]
async fn the_own_origin_is_that_of_the_public_url() {
    let (_upstream, gw) = setup("public_url = \"https://writ.example.com/gateway\"\n").await;
    let writ = tool_writ(&gw);
    assert_eq!(
        initialize(&gw, Some("https://writ.example.com"), Some(&writ))
            .await
            .status(),
        StatusCode::OK
    );
    // The listening address is not the gateway's origin once public_url names another.
    let listening = gw.url("");
    assert_eq!(
        initialize(&gw, Some(&listening), Some(&writ))
            .await
            .status(),
        StatusCode::FORBIDDEN
    );
}

#[tokio::test]
async fn model_api_routes_do_not_check_origin() {
    let (_upstream, gw) = setup("").await;
    let writ = gw.mint("openai", r#"{"type":"writ:llm","upstream":"openai"}"#, 30);
    let resp = reqwest::Client::new()
        .post(gw.url("/v1/chat/completions"))
        .bearer_auth(writ)
        .header("origin", "https://evil.example")
        .json(&json!({"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 5}))
        .send()
        .await
        .expect("answered");
    assert_eq!(resp.status(), StatusCode::OK);
}
