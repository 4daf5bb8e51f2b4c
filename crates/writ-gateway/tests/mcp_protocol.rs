//! MCP through the gateway as the 2026-07-28 Streamable HTTP transport and older clients
//! see it: list answers filtered to the writ, refusals as JSON-RPC errors answering the
//! call, transport headers held to the body, and hostile messages refused before they
//! reach the server.
#![allow(clippy::unwrap_used)]

use reqwest::StatusCode;
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use writ_testkit::{MockUpstream, Script, ScriptEnd, TestGateway};

const KEY: &str = "tool-key-0123456789";
const CEILING: &str =
    r#"{"type":"writ:tool","upstream":"travel","tool":"book_flight","additional_arguments":true}"#;
const FLIGHT: &str = r#"{"type":"writ:tool","upstream":"travel","tool":"book_flight","arguments":{"flight":"LH123","date":"2026-12-01"}}"#;

async fn gateway(upstream: &MockUpstream) -> TestGateway {
    TestGateway::start(&format!(
        "[server]\nmax_body_bytes = 1048576\n\n[upstreams.travel]\nkind = \"mcp\"\nbase_url = \"{}/mcp\"\nallow_private_network = true\napi_key = \"{KEY}\"\n",
        upstream.base_url()
    ))
    .await
}

async fn post(
    gw: &TestGateway,
    writ: &str,
    headers: &[(&str, &str)],
    body: Vec<u8>,
) -> (StatusCode, reqwest::header::HeaderMap, Value) {
    let mut req = reqwest::Client::new()
        .post(gw.url("/mcp/travel"))
        .bearer_auth(writ)
        .header("content-type", "application/json")
        .header("accept", "application/json, text/event-stream");
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    let resp = req.body(body).send().await.unwrap();
    let status = resp.status();
    let headers = resp.headers().clone();
    let bytes = resp.bytes().await.unwrap();
    let v = if bytes.is_empty() {
        Value::Null
    } else {
        serde_json::from_slice(&bytes)
            .unwrap_or(Value::String(String::from_utf8_lossy(&bytes).into()))
    };
    (status, headers, v)
}

fn rpc(id: Value, method: &str, params: Value) -> Vec<u8> {
    serde_json::to_vec(&json!({"jsonrpc": "2.0", "id": id, "method": method, "params": params}))
        .unwrap()
}

fn names(answer: &Value, key: &str, field: &str) -> Vec<String> {
    answer["result"][key]
        .as_array()
        .unwrap_or_else(|| panic!("no {key} in {answer}"))
        .iter()
        .map(|t| t[field].as_str().unwrap().to_string())
        .collect()
}

#[tokio::test]
async fn a_writ_for_one_tool_lists_only_that_tool() {
    let upstream = MockUpstream::start(KEY).await;
    let gw = gateway(&upstream).await;
    let writ = gw.mint_as(CEILING, FLIGHT, 30);
    let (status, _, answer) = post(&gw, &writ, &[], rpc(json!(1), "tools/list", json!({}))).await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    assert_eq!(names(&answer, "tools", "name"), ["book_flight"]);
    assert_eq!(answer["id"], 1);
    // Prompts and resources: no grant covers any, so none is shown.
    let (_, _, prompts) = post(&gw, &writ, &[], rpc(json!(2), "prompts/list", json!({}))).await;
    assert!(names(&prompts, "prompts", "name").is_empty(), "{prompts}");
    let (_, _, resources) = post(&gw, &writ, &[], rpc(json!(3), "resources/list", json!({}))).await;
    assert!(
        names(&resources, "resources", "uri").is_empty(),
        "{resources}"
    );

    // A writ that grants two tools, narrowed by its holder to one, lists the one.
    let both = r#"[{"type":"writ:tool","upstream":"travel","tool":"book_flight","additional_arguments":true},{"type":"writ:tool","upstream":"travel","tool":"list_flights"}]"#;
    let wide = gw.mint_as(both, both, 30);
    let (_, _, answer) = post(&gw, &wide, &[], rpc(json!(4), "tools/list", json!({}))).await;
    assert_eq!(
        names(&answer, "tools", "name"),
        ["book_flight", "list_flights"]
    );
    let narrow = writ_token::attenuate(
        &wide,
        &[serde_json::from_str(
            r#"{"type":"writ:tool","upstream":"travel","tool":"list_flights"}"#,
        )
        .unwrap()],
    )
    .unwrap();
    let (_, _, answer) = post(&gw, &narrow, &[], rpc(json!(5), "tools/list", json!({}))).await;
    assert_eq!(names(&answer, "tools", "name"), ["list_flights"]);
}

#[tokio::test]
async fn a_list_answered_as_an_event_stream_is_filtered_before_any_of_it_passes() {
    let sse = concat!(
        "event: message\ndata: {\"jsonrpc\":\"2.0\",\"method\":\"notifications/progress\",\"params\":{\"progress\":1}}\n\n",
        "event: message\ndata: {\"jsonrpc\":\"2.0\",\"id\":9,\"result\":{\"tools\":[{\"name\":\"book_flight\"},{\"name\":\"cancel_flight\"},{\"name\":\"b\u{043e}\u{043e}k_flight\"}]}}\n\n"
    );
    let upstream = MockUpstream::start_scripted(
        KEY,
        Script {
            status: 200,
            content_type: "text/event-stream",
            chunks: vec![sse.as_bytes().to_vec()],
            // The server keeps the stream open after its answer: the gateway stops there.
            then: ScriptEnd::Hang,
        },
    )
    .await;
    let gw = gateway(&upstream).await;
    let writ = gw.mint_as(CEILING, FLIGHT, 30);
    let resp = reqwest::Client::new()
        .post(gw.url("/mcp/travel"))
        .bearer_auth(&writ)
        .json(&json!({"jsonrpc": "2.0", "id": 9, "method": "tools/list"}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    let text = resp.text().await.unwrap();
    assert!(text.contains("notifications/progress"), "{text}");
    assert!(
        text.contains(r#""tools":[{"name":"book_flight"}]"#),
        "{text}"
    );
    assert!(
        !text.contains("cancel_flight") && !text.contains("k_flight\"}]}}\n\n\n"),
        "{text}"
    );
}

#[tokio::test]
async fn refusals_are_json_rpc_errors_answering_the_call() {
    let upstream = MockUpstream::start(KEY).await;
    let gw = gateway(&upstream).await;
    let writ = gw.mint_as(CEILING, FLIGHT, 30);

    let (status, headers, v) = post(
        &gw,
        &writ,
        &[],
        rpc(
            json!("call-1"),
            "tools/call",
            json!({"name": "cancel_flight", "arguments": {"flight": "LH123"}}),
        ),
    )
    .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert_eq!(headers["content-type"], "application/json");
    assert_eq!(
        (v["jsonrpc"].as_str(), &v["id"]),
        (Some("2.0"), &json!("call-1"))
    );
    assert_eq!(v["error"]["code"], -32011, "{v}");
    assert_eq!(v["error"]["data"]["code"], "grant_denied");
    assert_eq!(v["error"]["data"]["status"], 403);
    assert!(
        v["error"]["message"]
            .as_str()
            .unwrap()
            .contains("tool `cancel_flight`"),
        "{v}"
    );

    // No writ: 401, the id unread (the body is not read before authentication).
    let resp = reqwest::Client::new()
        .post(gw.url("/mcp/travel"))
        .json(&json!({"jsonrpc": "2.0", "id": 3, "method": "tools/list"}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::UNAUTHORIZED);
    let v: Value = resp.json().await.unwrap();
    assert_eq!(
        (v["id"].clone(), v["error"]["code"].clone()),
        (Value::Null, json!(-32010))
    );
    assert_eq!(v["error"]["data"]["code"], "missing_writ");

    // Methods no grant covers are refused by name.
    let (status, _, v) = post(
        &gw,
        &writ,
        &[],
        rpc(json!(4), "completion/complete", json!({})),
    )
    .await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{v}");
    assert_eq!(v["id"], 4);
    // A method the gateway does not know is not found here, as MCP answers one.
    let (status, _, v) = post(&gw, &writ, &[], rpc(json!(5), "tasks/cancel", json!({}))).await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{v}");
    assert_eq!(
        (v["id"].clone(), v["error"]["code"].clone()),
        (json!(5), json!(-32601))
    );
    assert!(
        upstream.requests().is_empty(),
        "nothing refused reached the server"
    );

    // A notification is passed on and its 202 passed back.
    let (status, _, v) = post(
        &gw,
        &writ,
        &[],
        serde_json::to_vec(&json!({"jsonrpc": "2.0", "method": "notifications/initialized"}))
            .unwrap(),
    )
    .await;
    assert_eq!((status, v), (StatusCode::ACCEPTED, Value::Null));
}

#[tokio::test]
async fn transport_headers_must_agree_with_the_body() {
    let upstream = MockUpstream::start(KEY).await;
    let gw = gateway(&upstream).await;
    let writ = gw.mint_as(CEILING, FLIGHT, 30);
    let modern = |name: &str, flight: &str| {
        rpc(
            json!(11),
            "tools/call",
            json!({"name": name, "arguments": {"flight": flight, "date": "2026-12-01"},
                   "_meta": {"io.modelcontextprotocol/protocolVersion": "2026-07-28"}}),
        )
    };
    let good = [
        ("mcp-protocol-version", "2026-07-28"),
        ("mcp-method", "tools/call"),
        ("mcp-name", "book_flight"),
    ];
    let (status, _, v) = post(&gw, &writ, &good, modern("book_flight", "LH123")).await;
    assert_eq!(status, StatusCode::OK, "{v}");
    assert_eq!(upstream.requests().len(), 1);
    let sent = &upstream.requests()[0];
    assert_eq!(
        sent.headers["mcp-name"], "book_flight",
        "headers pass on as sent"
    );

    // A proxy routing on Mcp-Name and a server acting on the body must not disagree.
    for (headers, why) in [
        (
            vec![
                ("mcp-protocol-version", "2026-07-28"),
                ("mcp-method", "tools/call"),
                ("mcp-name", "list_flights"),
            ],
            "name",
        ),
        (
            vec![
                ("mcp-protocol-version", "2026-07-28"),
                ("mcp-method", "tools/list"),
                ("mcp-name", "book_flight"),
            ],
            "method",
        ),
        (
            vec![
                ("mcp-protocol-version", "2026-07-28"),
                ("mcp-method", "tools/call"),
            ],
            "missing name",
        ),
        (
            vec![
                ("mcp-protocol-version", "2025-11-25"),
                ("mcp-method", "tools/call"),
                ("mcp-name", "book_flight"),
            ],
            "version",
        ),
    ] {
        let (status, _, v) = post(&gw, &writ, &headers, modern("book_flight", "LH123")).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{why}: {v}");
        assert_eq!(v["error"]["code"], -32020, "{why}: {v}");
        assert_eq!(v["id"], 11, "{why}");
        assert_eq!(v["error"]["data"]["code"], "header_mismatch");
    }

    let (status, _, v) = post(
        &gw,
        &writ,
        &[("mcp-protocol-version", "2031-01-01")],
        rpc(json!(12), "ping", json!({})),
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(v["error"]["code"], -32022, "{v}");
    assert_eq!(v["error"]["data"]["requested"], "2031-01-01");
    assert!(
        v["error"]["data"]["supported"]
            .as_array()
            .unwrap()
            .contains(&json!("2026-07-28"))
    );

    // An older client sends no such headers and is served.
    let legacy = rpc(
        json!(13),
        "tools/call",
        json!({"name": "book_flight", "arguments": {"flight": "LH123", "date": "2026-12-01"}}),
    );
    let (status, _, v) = post(
        &gw,
        &writ,
        &[("mcp-protocol-version", "2025-06-18")],
        legacy,
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{v}");
    assert_eq!(
        upstream.requests().len(),
        2,
        "no refused request was forwarded"
    );
}

#[tokio::test]
async fn hostile_messages_never_reach_the_server() {
    let upstream = MockUpstream::start(KEY).await;
    let gw = gateway(&upstream).await;
    let writ = gw.mint_as(CEILING, FLIGHT, 30);
    let allowed = json!({"jsonrpc": "2.0", "id": 1, "method": "tools/call", "params": {"name": "book_flight", "arguments": {"flight": "LH123", "date": "2026-12-01"}}});
    let forbidden = json!({"jsonrpc": "2.0", "id": 2, "method": "tools/call", "params": {"name": "cancel_flight", "arguments": {"flight": "LH123"}}});
    let cases: Vec<(&str, Vec<u8>, StatusCode, &str)> = vec![
        ("a batch mixing an allowed and a forbidden call", serde_json::to_vec(&json!([allowed, forbidden])).unwrap(), StatusCode::BAD_REQUEST, "invalid_type"),
        ("not JSON", b"{\"jsonrpc\":\"2.0\",".to_vec(), StatusCode::BAD_REQUEST, "invalid_json"),
        ("no jsonrpc version", br#"{"id":1,"method":"tools/list"}"#.to_vec(), StatusCode::BAD_REQUEST, "invalid_type"),
        ("a Cyrillic o in the tool name", rpc(json!(4), "tools/call", json!({"name": "b\u{043e}\u{043e}k_flight", "arguments": {"flight": "LH123", "date": "2026-12-01"}})), StatusCode::BAD_REQUEST, "invalid_type"),
        ("a zero-width space in the tool name", rpc(json!(5), "tools/call", json!({"name": "book\u{200b}_flight", "arguments": {"flight": "LH123", "date": "2026-12-01"}})), StatusCode::BAD_REQUEST, "invalid_type"),
        ("an argument given twice", br#"{"jsonrpc":"2.0","id":6,"method":"tools/call","params":{"name":"book_flight","arguments":{"flight":"LH123","date":"2026-12-01","flight":"LH999"}}}"#.to_vec(), StatusCode::BAD_REQUEST, "duplicate_key"),
        ("an argument given twice, once escaped", br#"{"jsonrpc":"2.0","id":7,"method":"tools/call","params":{"name":"book_flight","arguments":{"flight":"LH123","date":"2026-12-01","\u0066light":"LH999"}}}"#.to_vec(), StatusCode::BAD_REQUEST, "duplicate_key"),
    ];
    for (what, body, status, code) in cases {
        let (got, _, v) = post(&gw, &writ, &[], body).await;
        assert_eq!(got, status, "{what}: {v}");
        assert_eq!(v["jsonrpc"], "2.0", "{what}: {v}");
        assert_eq!(v["error"]["data"]["code"], code, "{what}: {v}");
    }
    assert!(upstream.requests().is_empty(), "nothing reached the server");

    // A 5 MB argument: refused by its declared length, before the body is read, as a
    // JSON-RPC error (the id unread).
    let big = rpc(
        json!(3),
        "tools/call",
        json!({"name": "book_flight", "arguments": {"flight": "x".repeat(5 << 20)}}),
    );
    let mut conn = tokio::net::TcpStream::connect(gw.addr()).await.unwrap();
    let head = format!(
        "POST /mcp/travel HTTP/1.1\r\nhost: x\r\nauthorization: Bearer {writ}\r\n\
         content-type: application/json\r\ncontent-length: {}\r\n\r\n",
        big.len()
    );
    conn.write_all(head.as_bytes()).await.unwrap();
    conn.write_all(&big[..1024]).await.unwrap();
    let mut response = vec![0u8; 4096];
    let n = conn.read(&mut response).await.unwrap();
    let text = String::from_utf8_lossy(&response[..n]);
    assert!(text.starts_with("HTTP/1.1 413"), "{text}");
    assert!(
        text.contains(r#""jsonrpc":"2.0""#) && text.contains("body_too_large"),
        "{text}"
    );
    assert!(upstream.requests().is_empty(), "nothing reached the server");
}

#[tokio::test]
async fn each_call_is_audited_by_tool_and_argument_digest_never_the_values() {
    let upstream = MockUpstream::start(KEY).await;
    let gw = gateway(&upstream).await;
    let writ = gw.mint_as(CEILING, FLIGHT, 30);
    let call = |flight: &str| {
        rpc(
            json!(1),
            "tools/call",
            json!({"name": "book_flight", "arguments": {"date": "2026-12-01", "flight": flight}}),
        )
    };
    assert_eq!(post(&gw, &writ, &[], call("LH123")).await.0, StatusCode::OK);
    assert_eq!(post(&gw, &writ, &[], call("LH123")).await.0, StatusCode::OK);
    assert_eq!(
        post(&gw, &writ, &[], call("LH999")).await.0,
        StatusCode::FORBIDDEN
    );
    gw.gateway().audit_checkpoint().await;
    let lines = gw.gateway().audit_export().await.unwrap().join("\n");
    // The arguments asked for are nowhere; a denial names the writ's failed check, whose
    // values are the grant's, not the request's.
    assert!(!lines.contains("LH999"), "{lines}");
    for line in lines.lines().filter(|l| !l.contains("\"request_denied\"")) {
        assert!(
            !line.contains("LH123") && !line.contains("2026-12-01"),
            "{line}"
        );
    }
    let calls: Vec<Value> = lines
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .filter_map(|r| r["detail"]["mcp"].as_object().cloned().map(Value::Object))
        .collect();
    assert!(calls.len() >= 3, "{lines}");
    for c in &calls {
        assert_eq!(
            (c["method"].as_str(), c["name"].as_str()),
            (Some("tools/call"), Some("book_flight")),
            "{c}"
        );
    }
    let digests: std::collections::BTreeSet<&str> = calls
        .iter()
        .map(|c| c["digest"].as_str().unwrap())
        .collect();
    assert_eq!(
        digests.len(),
        2,
        "equal arguments, equal digests; other arguments, another: {calls:?}"
    );
}

#[tokio::test]
async fn arguments_a_tool_mirrors_into_headers_must_agree_with_them() {
    // The server's one answer names a tool that mirrors `flight` into Mcp-Param-Flight,
    // and one whose annotation breaks the spec (on a number), which is not listed.
    let list = json!({"jsonrpc": "2.0", "id": 1, "result": {"tools": [
        {"name": "book_flight", "inputSchema": {"type": "object", "properties": {
            "flight": {"type": "string", "x-mcp-header": "Flight"},
            "date": {"type": "string"}}}},
        {"name": "list_flights", "inputSchema": {"type": "object", "properties": {
            "max": {"type": "number", "x-mcp-header": "Max"}}}}
    ]}});
    let upstream = MockUpstream::start_scripted(
        KEY,
        Script {
            status: 200,
            content_type: "application/json",
            chunks: vec![serde_json::to_vec(&list).unwrap()],
            then: ScriptEnd::End,
        },
    )
    .await;
    let gw = gateway(&upstream).await;
    let both = r#"[{"type":"writ:tool","upstream":"travel","tool":"book_flight","additional_arguments":true},{"type":"writ:tool","upstream":"travel","tool":"list_flights","additional_arguments":true}]"#;
    let writ = gw.mint_as(both, both, 30);
    let (status, _, answer) = post(&gw, &writ, &[], rpc(json!(1), "tools/list", json!({}))).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(names(&answer, "tools", "name"), ["book_flight"]);

    let call = || {
        rpc(
            json!(2),
            "tools/call",
            json!({"name": "book_flight", "arguments": {"flight": "LH123", "date": "2026-12-01"}}),
        )
    };
    for headers in [
        vec![("mcp-param-flight", "LH999")],
        vec![],
        vec![("mcp-param-flight", "LH123"), ("mcp-param-flight", "LH123")],
    ] {
        let (status, _, v) = post(&gw, &writ, &headers, call()).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{headers:?}: {v}");
        assert_eq!(v["error"]["code"], -32020, "{headers:?}: {v}");
    }
    assert_eq!(
        upstream.requests().len(),
        1,
        "only the list reached the server"
    );
    for flight in ["LH123", "=?base64?TEgxMjM=?="] {
        let (status, _, v) = post(&gw, &writ, &[("mcp-param-flight", flight)], call()).await;
        assert_eq!(status, StatusCode::OK, "{flight}: {v}");
    }
}

#[tokio::test]
async fn prompt_and_resource_grants_show_and_allow_exactly_theirs() {
    let upstream = MockUpstream::start(KEY).await;
    let gw = gateway(&upstream).await;
    let grants = r#"[{"type":"writ:resource","upstream":"travel","uri":{"prefix":"flights://LH1"}},{"type":"writ:prompt","upstream":"travel","prompt":"trip_summary","arguments":{"trip":"t-1"}}]"#;
    let writ = gw.mint_as(grants, grants, 30);
    let (_, _, resources) = post(&gw, &writ, &[], rpc(json!(1), "resources/list", json!({}))).await;
    assert_eq!(names(&resources, "resources", "uri"), ["flights://LH123"]);
    let (_, _, prompts) = post(&gw, &writ, &[], rpc(json!(2), "prompts/list", json!({}))).await;
    assert_eq!(names(&prompts, "prompts", "name"), ["trip_summary"]);
    let (_, _, tools) = post(&gw, &writ, &[], rpc(json!(3), "tools/list", json!({}))).await;
    assert!(names(&tools, "tools", "name").is_empty(), "{tools}");

    for (method, params, status) in [
        (
            "resources/read",
            json!({"uri": "flights://LH123"}),
            StatusCode::OK,
        ),
        (
            "resources/subscribe",
            json!({"uri": "flights://LH123"}),
            StatusCode::OK,
        ),
        (
            "resources/read",
            json!({"uri": "flights://LH999"}),
            StatusCode::FORBIDDEN,
        ),
        (
            "prompts/get",
            json!({"name": "trip_summary", "arguments": {"trip": "t-1"}}),
            StatusCode::OK,
        ),
        (
            "prompts/get",
            json!({"name": "trip_summary", "arguments": {"trip": "t-2"}}),
            StatusCode::FORBIDDEN,
        ),
        (
            "completion/complete",
            json!({"ref": {"type": "ref/prompt", "name": "trip_summary"}, "argument": {"name": "trip", "value": "t"}}),
            StatusCode::OK,
        ),
        (
            "tools/call",
            json!({"name": "book_flight", "arguments": {}}),
            StatusCode::FORBIDDEN,
        ),
    ] {
        let (got, _, v) = post(&gw, &writ, &[], rpc(json!(9), method, params.clone())).await;
        assert_eq!(got, status, "{method} {params}: {v}");
    }
    assert_eq!(
        upstream.requests().len(),
        3 + 4,
        "the lists and the allowed calls only"
    );
}
