//! OAuth discovery for MCP clients: RFC 9728 protected-resource metadata per MCP
//! upstream and for the gateway, RFC 8414 authorization-server metadata, and the
//! `WWW-Authenticate` challenges on `/mcp/{upstream}` that point to them.
#![allow(clippy::unwrap_used)]

use std::collections::BTreeMap;

use reqwest::StatusCode;
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use writ_testkit::{MockUpstream, TestGateway};

const KEY: &str = "tool-key-0123456789";
const FLIGHT_CEILING: &str =
    r#"{"type":"writ:tool","upstream":"travel","tool":"book_flight","additional_arguments":true}"#;
const FLIGHT: &str = r#"{"type":"writ:tool","upstream":"travel","tool":"book_flight","arguments":{"flight":"LH123","date":"2026-12-01"}}"#;

async fn setup() -> (MockUpstream, TestGateway) {
    let upstream = MockUpstream::start(KEY).await;
    let config = format!(
        "[upstreams.travel]\nkind = \"mcp\"\nbase_url = \"{base}/mcp\"\nallow_private_network = true\napi_key = \"{KEY}\"\n\n\
         [upstreams.crm]\nkind = \"http\"\nbase_url = \"{base}/api\"\nallow_private_network = true\napi_key = \"{KEY}\"\n\n\
         [upstreams.openai]\nkind = \"openai\"\nbase_url = \"{base}\"\nallow_private_network = true\napi_key = \"{KEY}\"\n",
        base = upstream.base_url()
    );
    (upstream, TestGateway::start(&config).await)
}

async fn get_json(url: &str) -> (StatusCode, Value) {
    let resp = reqwest::get(url).await.unwrap();
    let status = resp.status();
    (status, resp.json().await.unwrap())
}

async fn call_tool(
    gw: &TestGateway,
    upstream: &str,
    writ: Option<&str>,
    tool: &str,
) -> reqwest::Response {
    let mut req = reqwest::Client::new()
        .post(gw.url(&format!("/mcp/{upstream}")))
        .json(&json!({
            "jsonrpc": "2.0", "id": 7, "method": "tools/call",
            "params": {"name": tool, "arguments": {"flight": "LH123", "date": "2026-12-01"}}
        }));
    if let Some(writ) = writ {
        req = req.bearer_auth(writ);
    }
    req.send().await.unwrap()
}

/// A `WWW-Authenticate` challenge: its scheme and its `name="value"` parameters (RFC 9110
/// §11.2; values quoted, separated by commas).
fn parse_challenge(value: &str) -> (String, BTreeMap<String, String>) {
    let (scheme, rest) = value.split_once(' ').unwrap();
    let mut params = BTreeMap::new();
    let mut rest = rest.trim();
    while !rest.is_empty() {
        let (name, after) = rest.split_once('=').unwrap();
        let after = after.strip_prefix('"').unwrap();
        let end = after.find('"').unwrap();
        params.insert(name.trim().to_string(), after[..end].to_string());
        rest = after[end + 1..].trim_start_matches([',', ' ']);
    }
    (scheme.to_string(), params)
}

fn challenge_of(resp: &reqwest::Response) -> (String, BTreeMap<String, String>) {
    let value = resp.headers()["www-authenticate"].to_str().unwrap();
    parse_challenge(value)
}

#[tokio::test]
async fn metadata_documents_describe_the_resource_and_the_token_endpoint() {
    let (_upstream, gw) = setup().await;
    let issuer = gw.url("");

    let (status, prm) = get_json(&gw.url("/.well-known/oauth-protected-resource/mcp/travel")).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(prm["resource"], gw.url("/mcp/travel"));
    assert_eq!(prm["authorization_servers"], json!([issuer]));
    assert_eq!(prm["scopes_supported"], json!(["mcp"]));
    assert_eq!(prm["bearer_methods_supported"], json!(["header"]));
    assert_eq!(
        prm["dpop_signing_alg_values_supported"],
        json!(["ES256", "EdDSA"])
    );
    assert_eq!(
        prm["authorization_details_types_supported"],
        json!([
            "writ:tool",
            "writ:prompt",
            "writ:resource",
            "writ:budget",
            "writ:datalog"
        ])
    );
    assert!(prm["resource_name"].as_str().unwrap().contains("travel"));

    let (status, root) = get_json(&gw.url("/.well-known/oauth-protected-resource")).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(root["resource"], issuer);
    assert_eq!(root["authorization_servers"], json!([issuer]));
    assert_eq!(
        root["authorization_details_types_supported"],
        json!([
            "writ:llm",
            "writ:tool",
            "writ:prompt",
            "writ:resource",
            "writ:http",
            "writ:admin",
            "writ:budget",
            "writ:datalog"
        ])
    );

    let (status, asm) = get_json(&gw.url("/.well-known/oauth-authorization-server")).await;
    assert_eq!(status, StatusCode::OK);
    // Byte-identical to the URL discovered and to the `aud` client assertions name.
    assert_eq!(asm["issuer"], issuer);
    assert_eq!(asm["issuer"], gw.gateway().issuer());
    assert_eq!(asm["token_endpoint"], gw.url("/oauth2/token"));
    assert_eq!(
        asm["grant_types_supported"],
        json!([
            "client_credentials",
            "urn:ietf:params:oauth:grant-type:token-exchange",
            "urn:openid:params:grant-type:ciba"
        ])
    );
    assert_eq!(
        asm["token_endpoint_auth_methods_supported"],
        json!([
            "private_key_jwt",
            "client_secret_basic",
            "client_secret_post"
        ])
    );
    assert_eq!(
        asm["token_endpoint_auth_signing_alg_values_supported"],
        json!(["EdDSA", "ES256"])
    );
    assert_eq!(
        asm["authorization_details_types_supported"],
        root["authorization_details_types_supported"]
    );
    assert_eq!(
        asm["dpop_signing_alg_values_supported"],
        json!(["ES256", "EdDSA"])
    );

    // The token endpoint named is the one that answers.
    let resp = reqwest::Client::new()
        .post(asm["token_endpoint"].as_str().unwrap())
        .form(&[("grant_type", "password")])
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::BAD_REQUEST);
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["error"], "unsupported_grant_type");

    // The authorization endpoint exists only to say there is none.
    assert_eq!(asm["response_types_supported"], json!([]));
    let (status, body) = get_json(asm["authorization_endpoint"].as_str().unwrap()).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(body["error"], "unsupported_response_type");
}

#[tokio::test]
async fn unknown_and_non_mcp_upstreams_have_no_resource_metadata() {
    let (_upstream, gw) = setup().await;
    for path in [
        "/mcp/nowhere",
        "/mcp/crm",
        "/mcp/openai",
        "/u/crm/v1",
        "/mcp/",
        "/mcp/travel/extra",
        "/v1/chat/completions",
    ] {
        let (status, body) =
            get_json(&gw.url(&format!("/.well-known/oauth-protected-resource{path}"))).await;
        assert_eq!(status, StatusCode::NOT_FOUND, "{path}");
        assert_eq!(body["error"]["code"], "not_found", "{path}");
    }
}

/// Sends `GET target` as written, byte for byte (HTTP clients normalise `..` away), and
/// returns the status line and the body.
async fn raw_get(gw: &TestGateway, target: &str) -> (String, String) {
    let mut stream = tokio::net::TcpStream::connect(gw.addr()).await.unwrap();
    let request = format!("GET {target} HTTP/1.1\r\nHost: gw\r\nConnection: close\r\n\r\n");
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut answer = Vec::new();
    stream.read_to_end(&mut answer).await.unwrap();
    let answer = String::from_utf8_lossy(&answer).into_owned();
    let status = answer.lines().next().unwrap_or_default().to_string();
    let body = answer
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_string())
        .unwrap_or_default();
    (status, body)
}

#[tokio::test]
async fn hostile_upstream_names_get_404_without_being_echoed() {
    let (_upstream, gw) = setup().await;
    let long = "a".repeat(10 * 1024);
    for name in [
        "..",
        "../travel",
        "travel/..",
        "%2e%2e",
        "trav%65l",
        "travel%2Fx",
        "%3Cscript%3Ealert(1)%3C%2Fscript%3E",
        long.as_str(),
    ] {
        let target = format!("/.well-known/oauth-protected-resource/mcp/{name}");
        let (status, body) = raw_get(&gw, &target).await;
        let shown = &name[..name.len().min(40)];
        assert!(status.starts_with("HTTP/1.1 404"), "{shown}: {status}");
        assert!(!body.contains(name), "{shown} echoed: {body}");
        assert!(!body.contains("script"), "{shown} echoed: {body}");
    }
    // A 10 KB name on the data plane: no metadata URL made of it in the challenge.
    let resp = call_tool(&gw, &long, None, "book_flight").await;
    assert_eq!(resp.status(), StatusCode::UNAUTHORIZED);
    let (_, params) = challenge_of(&resp);
    assert!(!params.contains_key("resource_metadata"), "{params:?}");
}

#[tokio::test]
async fn a_refused_call_points_to_the_metadata_of_its_resource() {
    let (upstream, gw) = setup().await;

    // No writ: where to get one, and no error code (RFC 6750 §3.1).
    let resp = call_tool(&gw, "travel", None, "book_flight").await;
    assert_eq!(resp.status(), StatusCode::UNAUTHORIZED);
    let (scheme, params) = challenge_of(&resp);
    assert_eq!(scheme, "Bearer");
    assert_eq!(params.get("error"), None);
    assert_eq!(params["scope"], "mcp");
    let metadata_url = &params["resource_metadata"];
    assert_eq!(
        *metadata_url,
        gw.url("/.well-known/oauth-protected-resource/mcp/travel")
    );
    let (status, prm) = get_json(metadata_url).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(prm["resource"], gw.url("/mcp/travel"));

    // A writ that is not valid: the same pointer, with invalid_token.
    let resp = call_tool(&gw, "travel", Some("writ_not-a-real-writ"), "book_flight").await;
    assert_eq!(resp.status(), StatusCode::UNAUTHORIZED);
    let (_, params) = challenge_of(&resp);
    assert_eq!(params["error"], "invalid_token");
    assert_eq!(params["resource_metadata"], *metadata_url);

    // A valid writ for another tool: insufficient_scope, and the call never left.
    let writ = gw.mint_as(FLIGHT_CEILING, FLIGHT, 30);
    let resp = call_tool(&gw, "travel", Some(&writ), "cancel_flight").await;
    assert_eq!(resp.status(), StatusCode::FORBIDDEN);
    let (scheme, params) = challenge_of(&resp);
    assert_eq!(scheme, "Bearer");
    assert_eq!(params["error"], "insufficient_scope");
    assert_eq!(params["scope"], "mcp");
    assert_eq!(params["resource_metadata"], *metadata_url);
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["error"]["data"]["code"], "grant_denied");
    assert!(upstream.requests().is_empty());

    // The granted call goes through, with no challenge.
    let resp = call_tool(&gw, "travel", Some(&writ), "book_flight").await;
    assert_eq!(resp.status(), StatusCode::OK);
    assert!(resp.headers().get("www-authenticate").is_none());
}

#[tokio::test]
async fn other_routes_keep_the_plain_challenge() {
    let (_upstream, gw) = setup().await;
    // An MCP path naming no configured MCP upstream: nothing to discover there.
    for upstream in ["nowhere", "crm"] {
        let resp = call_tool(&gw, upstream, None, "book_flight").await;
        assert_eq!(resp.status(), StatusCode::UNAUTHORIZED, "{upstream}");
        let (_, params) = challenge_of(&resp);
        assert_eq!(params.get("resource_metadata"), None, "{upstream}");
    }
    // A model API route: unchanged.
    let resp = reqwest::Client::new()
        .post(gw.url("/v1/chat/completions"))
        .json(&json!({"model": "gpt-4o", "messages": []}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(
        resp.headers()["www-authenticate"],
        r#"Bearer realm="writ", error="invalid_token""#
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn the_mcp_python_sdk_discovers_the_token_endpoint() {
    let (_upstream, gw) = setup().await;
    let seen = writ_testkit::run_python_lines(
        &std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/python/mcp_discovery.py"),
        &[("WRIT_BASE_URL", &gw.url(""))],
    )
    .await;
    let found = &seen[0];
    assert_eq!(found["status"], 401, "{found}");
    assert_eq!(
        found["metadata_url"],
        gw.url("/.well-known/oauth-protected-resource/mcp/travel")
    );
    assert_eq!(found["scope"], "mcp");
    assert_eq!(found["resource"], gw.url("/mcp/travel"));
    assert_eq!(found["issuer_matches"], true, "{found}");
    assert_eq!(found["token_endpoint"], gw.url("/oauth2/token"));
    assert_eq!(found["grant_types"][0], "client_credentials", "{found}");
    assert_eq!(found["auth_methods"][0], "private_key_jwt");
    assert_eq!(found["details_types"][0], "writ:tool");
    assert_eq!(found["dpop_algs"], json!(["ES256", "EdDSA"]));
    assert_eq!(found["root_resource"], gw.url(""));
}
