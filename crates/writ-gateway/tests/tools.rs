//! Tool servers (MCP) and plain HTTP upstreams through the gateway: the flight example.
#![allow(clippy::unwrap_used)]

use reqwest::StatusCode;
use serde_json::{Value, json};
use writ_testkit::{MockUpstream, TestGateway};

const KEY: &str = "tool-key-0123456789";

async fn setup() -> (MockUpstream, TestGateway) {
    let upstream = MockUpstream::start(KEY).await;
    let config = format!(
        "[upstreams.travel]\nkind = \"mcp\"\nbase_url = \"{base}/mcp\"\nallow_private_network = true\napi_key = \"{KEY}\"\n\n\
         [upstreams.crm]\nkind = \"http\"\nbase_url = \"{base}/api\"\nallow_private_network = true\napi_key = \"{KEY}\"\nauth_header = \"x-tool-key\"\n",
        base = upstream.base_url()
    );
    (upstream, TestGateway::start(&config).await)
}

const FLIGHT_CEILING: &str =
    r#"{"type":"writ:tool","upstream":"travel","tool":"book_flight","additional_arguments":true}"#;
const FLIGHT: &str = r#"{"type":"writ:tool","upstream":"travel","tool":"book_flight","arguments":{"flight":"LH123","date":"2026-12-01"}}"#;

async fn call_tool(gw: &TestGateway, writ: &str, tool: &str, args: Value) -> reqwest::Response {
    reqwest::Client::new()
        .post(gw.url("/mcp/travel"))
        .bearer_auth(writ)
        .json(&json!({"jsonrpc": "2.0", "id": 7, "method": "tools/call", "params": {"name": tool, "arguments": args}}))
        .send()
        .await
        .unwrap()
}

async fn error_of(resp: reqwest::Response) -> (StatusCode, Value) {
    let status = resp.status();
    (status, resp.json().await.unwrap())
}

#[tokio::test]
async fn the_flight_example_end_to_end() {
    let (upstream, gw) = setup().await;
    let writ = gw.mint_as(FLIGHT_CEILING, FLIGHT, 30);

    let resp = call_tool(
        &gw,
        &writ,
        "book_flight",
        json!({"flight": "LH123", "date": "2026-12-01"}),
    )
    .await;
    assert_eq!(resp.status(), StatusCode::OK);
    let v: Value = resp.json().await.unwrap();
    assert_eq!(v["result"]["content"][0]["text"], "called book_flight");
    assert_eq!(upstream.requests()[0].uri.path(), "/mcp");
    assert_eq!(
        upstream.requests()[0].headers["authorization"],
        format!("Bearer {KEY}")
    );

    for (tool, args) in [
        (
            "book_flight",
            json!({"flight": "LH124", "date": "2026-12-01"}),
        ),
        (
            "book_flight",
            json!({"flight": "LH123", "date": "2026-12-02"}),
        ),
        (
            "cancel_flight",
            json!({"flight": "LH123", "date": "2026-12-01"}),
        ),
    ] {
        let (status, v) = error_of(call_tool(&gw, &writ, tool, args.clone()).await).await;
        assert_eq!(status, StatusCode::FORBIDDEN, "{tool} {args}");
        // A JSON-RPC error answering the call, the gateway's code in its data.
        assert_eq!(v["jsonrpc"], "2.0");
        assert_eq!(v["id"], 7);
        assert_eq!(v["error"]["code"], -32011);
        assert_eq!(v["error"]["data"]["code"], "grant_denied");
        // What was asked and what to do in the message; the failed check in `detail`.
        let msg = v["error"]["message"].as_str().unwrap();
        assert!(
            msg.contains(&format!(
                "does not allow tool `{tool}` on upstream `travel`: "
            )),
            "{msg}"
        );
        let detail = v["error"]["data"]["detail"].as_str().unwrap();
        assert!(detail.contains("tool("), "{detail}");
    }
    assert_eq!(
        upstream.requests().len(),
        1,
        "refused calls never reach the tool server"
    );

    // Session upkeep needs no tool grant beyond one on this upstream.
    let resp = reqwest::Client::new()
        .post(gw.url("/mcp/travel"))
        .bearer_auth(&writ)
        .json(&json!({"jsonrpc": "2.0", "id": 1, "method": "tools/list"}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
}

#[tokio::test]
async fn malformed_tool_requests_get_400() {
    let (upstream, gw) = setup().await;
    let writ = gw.mint_as(FLIGHT_CEILING, FLIGHT, 30);
    let mut deep = json!("x");
    for _ in 0..40 {
        deep = json!({ "a": deep });
    }
    for (body, code) in [
        (
            json!([{"jsonrpc": "2.0", "method": "tools/call"}]),
            "invalid_type",
        ),
        (json!({"jsonrpc": "2.0", "id": 1}), "missing_field"),
        (
            json!({"jsonrpc": "2.0", "id": 1, "method": "tools/call", "params": {"name": 5}}),
            "invalid_type",
        ),
        (
            json!({"jsonrpc": "2.0", "id": 1, "method": "tools/call", "params": {"name": "book_flight", "arguments": deep}}),
            "invalid_arguments",
        ),
    ] {
        let resp = reqwest::Client::new()
            .post(gw.url("/mcp/travel"))
            .bearer_auth(&writ)
            .json(&body)
            .send()
            .await
            .unwrap();
        let (status, v) = error_of(resp).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
        assert_eq!(v["error"]["data"]["code"], code, "{v}");
    }
    assert!(upstream.requests().is_empty());
}

#[tokio::test]
async fn http_upstream_by_method_and_path_template() {
    let (upstream, gw) = setup().await;
    let writ = gw.mint_as(
        r#"{"type":"writ:http","upstream":"crm","path":"/v1/bookings/{id}"}"#,
        r#"{"type":"writ:http","upstream":"crm","methods":["GET"],"path":"/v1/bookings/{id}","params":{"id":{"max":100}}}"#,
        30,
    );
    let client = reqwest::Client::new();
    let resp = client
        .get(gw.url("/u/crm/v1/bookings/42?view=full"))
        .bearer_auth(&writ)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    let v: Value = resp.json().await.unwrap();
    assert_eq!(
        (v["path"].as_str(), v["query"].as_str()),
        (Some("/api/v1/bookings/42"), Some("view=full"))
    );
    let seen = &upstream.requests()[0];
    assert_eq!(seen.headers["x-tool-key"], KEY);
    assert!(
        seen.headers.get("authorization").is_none(),
        "the writ's header is not forwarded"
    );

    for (method, path, status) in [
        ("DELETE", "/u/crm/v1/bookings/42", StatusCode::FORBIDDEN),
        ("GET", "/u/crm/v1/bookings/101", StatusCode::FORBIDDEN),
        ("GET", "/u/crm/v1/bookings/42/notes", StatusCode::FORBIDDEN),
        ("GET", "/u/nowhere/v1/bookings/42", StatusCode::NOT_FOUND),
        ("GET", "/u/travel/v1/bookings/42", StatusCode::NOT_FOUND),
    ] {
        let resp = client
            .request(method.parse().unwrap(), gw.url(path))
            .bearer_auth(&writ)
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), status, "{method} {path}");
        let v: Value = resp.json().await.unwrap();
        assert!(v["error"]["code"].is_string(), "{v}");
    }
    // Clients normalize dot segments, so these are sent as raw bytes: the gateway must
    // refuse what a client library would have rewritten.
    for path in [
        "/u/crm/v1/bookings/7/../../../admin",
        "/u/crm/v1/bookings/%2e%2e",
        "/u/crm/v1/bookings/a%2Fb",
    ] {
        let response = raw_get(&gw, path, &writ).await;
        assert!(response.starts_with("HTTP/1.1 400"), "{path}: {response}");
        assert!(response.contains("invalid_path"), "{response}");
    }
    assert_eq!(upstream.requests().len(), 1);
}

async fn raw_get(gw: &TestGateway, path: &str, writ: &str) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut conn = tokio::net::TcpStream::connect(gw.addr()).await.unwrap();
    let request = format!(
        "GET {path} HTTP/1.1\r\nhost: x\r\nauthorization: Bearer {writ}\r\nconnection: close\r\n\r\n"
    );
    conn.write_all(request.as_bytes()).await.unwrap();
    let mut out = Vec::new();
    conn.read_to_end(&mut out).await.unwrap();
    String::from_utf8_lossy(&out).into_owned()
}

#[tokio::test]
async fn http_upstreams_with_basic_and_query_credentials() {
    let upstream = MockUpstream::start(KEY).await;
    let gw = TestGateway::start(&format!(
        "[upstreams.basic]\nkind = \"http\"\nbase_url = \"{base}\"\nallow_private_network = true\napi_key = \"{KEY}\"\nbasic_user = \"svc\"\n\n\
         [upstreams.query]\nkind = \"http\"\nbase_url = \"{base}\"\nallow_private_network = true\napi_key = \"{KEY}\"\nauth_query = \"key\"\n",
        base = upstream.base_url()
    ))
    .await;
    let grant = |u: &str| format!(r#"{{"type":"writ:http","upstream":"{u}","path":"/v1/items"}}"#);
    let client = reqwest::Client::new();
    let writ = gw.mint_as(&grant("basic"), &grant("basic"), 30);
    let resp = client
        .get(gw.url("/u/basic/v1/items"))
        .bearer_auth(&writ)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    let sent = upstream.requests()[0].headers["authorization"]
        .to_str()
        .unwrap()
        .to_string();
    assert!(sent.starts_with("Basic "), "{sent}");

    let writ = gw.mint_as(&grant("query"), &grant("query"), 30);
    // The agent tries to send a credential parameter itself: refused, never forwarded.
    let resp = client
        .get(gw.url("/u/query/v1/items?page=2&key=agent-chosen"))
        .bearer_auth(&writ)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::BAD_REQUEST);
    assert_eq!(upstream.requests().len(), 1);
    let resp = client
        .get(gw.url("/u/query/v1/items?page=2"))
        .bearer_auth(&writ)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    let v: Value = resp.json().await.unwrap();
    let q = upstream.requests()[1].uri.query().unwrap().to_string();
    assert!(
        q.contains("page=2") && q.contains(&format!("key={KEY}")),
        "{q}"
    );
    assert!(
        !v.to_string().contains(KEY),
        "the echoed credential is scrubbed: {v}"
    );
}
