//! MCP servers the gateway starts itself and speaks to over stdio: a server built with the
//! official Python SDK (tests/python/stdio_server.py), behind `/mcp/{upstream}` like any
//! MCP upstream — authorized per tool, its environment only what the config names, shared
//! by clients whose JSON-RPC ids collide, restarted when it crashes or floods a line, and
//! timed out when it does not answer.

use std::path::PathBuf;

use reqwest::StatusCode;
use serde_json::{Value, json};
use writ_gateway::config::{Config, ConfigError, RawConfig};
use writ_testkit::TestGateway;

const TOKEN: &str = "files-token-0123456789abcdef";

fn script() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/python/stdio_server.py")
}

/// An upstream `files` started from the test server, with `extra` settings.
fn config(extra: &str) -> String {
    let python = writ_testkit::python();
    format!(
        "[upstreams.files]\nkind = \"mcp\"\ncommand = [{python:?}, {script:?}]\n\
         env = {{ HOME = \"/tmp\", PYTHONCOERCECLOCALE = \"0\", PYTHONDONTWRITEBYTECODE = \"1\", FILES_TOKEN = \"${{env:WRIT_TEST_FILES_TOKEN}}\" }}\n\
         connect_timeout = \"120s\"\n{extra}",
        python = python.display().to_string(),
        script = script().display().to_string(),
    )
}

async fn start(extra: &str) -> TestGateway {
    TestGateway::start_with_env(&config(extra), &[("WRIT_TEST_FILES_TOKEN", TOKEN)]).await
}

/// Grants to call each of `tools` on `files` with any arguments.
fn grants(tools: &[&str]) -> String {
    let each: Vec<Value> = tools
        .iter()
        .map(|t| json!({"type": "writ:tool", "upstream": "files", "tool": t, "additional_arguments": true}))
        .collect();
    Value::Array(each).to_string()
}

fn writ_for(gw: &TestGateway, tools: &[&str]) -> String {
    gw.mint_as(&grants(tools), &grants(tools), 30)
}

async fn post(gw: &TestGateway, writ: &str, body: &Value) -> (StatusCode, String) {
    let resp = reqwest::Client::new()
        .post(gw.url("/mcp/files"))
        .bearer_auth(writ)
        .json(body)
        .send()
        .await
        .expect("the gateway answers");
    let status = resp.status();
    (status, resp.text().await.expect("a body"))
}

async fn rpc(gw: &TestGateway, writ: &str, body: &Value) -> (StatusCode, Value) {
    let (status, text) = post(gw, writ, body).await;
    (status, serde_json::from_str(&text).expect("a JSON answer"))
}

fn tool_call(id: Value, tool: &str, arguments: Value) -> Value {
    json!({"jsonrpc": "2.0", "id": id, "method": "tools/call", "params": {"name": tool, "arguments": arguments}})
}

/// Calls `tool` and returns the text of its result, asserting the call succeeded.
async fn text_of(gw: &TestGateway, writ: &str, tool: &str, arguments: Value) -> String {
    let (status, v) = rpc(gw, writ, &tool_call(json!(1), tool, arguments)).await;
    assert_eq!(status, StatusCode::OK, "{tool}: {v}");
    assert_eq!(v["id"], 1, "{v}");
    v["result"]["content"][0]["text"]
        .as_str()
        .unwrap_or_else(|| panic!("{tool}: no text in {v}"))
        .to_string()
}

/// The server process's id, as it reports it.
async fn pid(gw: &TestGateway, writ: &str) -> u64 {
    let text = text_of(gw, writ, "environment", json!({})).await;
    let seen: Value = serde_json::from_str(&text).expect("the tool's JSON");
    seen["pid"].as_u64().expect("a pid")
}

#[tokio::test(flavor = "multi_thread")]
async fn the_allowed_tool_works_and_others_are_refused() {
    let gw = start("").await;
    let writ = writ_for(&gw, &["add"]);
    // The client's handshake is answered from the gateway's own, with the client's id.
    let (status, v) = rpc(
        &gw,
        &writ,
        &json!({"jsonrpc": "2.0", "id": "init-1", "method": "initialize", "params": {
            "protocolVersion": "2025-11-25", "capabilities": {},
            "clientInfo": {"name": "test", "version": "1"}}}),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{v}");
    assert_eq!(v["id"], "init-1");
    assert_eq!(v["result"]["protocolVersion"], "2025-11-25");
    assert_eq!(v["result"]["serverInfo"]["name"], "writ-stdio-test");
    let (status, body) = post(
        &gw,
        &writ,
        &json!({"jsonrpc": "2.0", "method": "notifications/initialized"}),
    )
    .await;
    assert_eq!((status, body.as_str()), (StatusCode::ACCEPTED, ""));

    let (status, v) = rpc(
        &gw,
        &writ,
        &tool_call(json!("call-9"), "add", json!({"a": 2, "b": 40})),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{v}");
    assert_eq!(v["id"], "call-9");
    assert_eq!(v["result"]["content"][0]["text"], "42");

    let (status, v) = rpc(&gw, &writ, &tool_call(json!(2), "environment", json!({}))).await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{v}");
    assert_eq!(v["error"]["data"]["code"], "grant_denied", "{v}");

    let (status, v) = rpc(
        &gw,
        &writ,
        &json!({"jsonrpc": "2.0", "id": 3, "method": "tools/list"}),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{v}");
    assert_eq!(v["id"], 3);
    // The list is the server's, filtered to what the writ may call.
    let names: Vec<&str> = v["result"]["tools"]
        .as_array()
        .expect("a tool list")
        .iter()
        .filter_map(|t| t["name"].as_str())
        .collect();
    assert_eq!(names, ["add"], "{v}");

    // A malformed id is refused by the gateway, before the server.
    let (status, v) = rpc(
        &gw,
        &writ,
        &tool_call(json!(1.5), "add", json!({"a": 1, "b": 1})),
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{v}");
}

#[tokio::test(flavor = "multi_thread")]
async fn two_agents_using_the_same_id_each_get_their_own_answer() {
    let gw = start("").await;
    let grants = grants(&["rendezvous"]);
    let alpha = gw.mint_in("alpha", &grants, &grants, 30);
    let beta = gw.mint_in("beta", &grants, &grants, 30);
    // The tool answers only once both calls are in the server at once, so both are in
    // flight there with the client id 7.
    let call = |name: &str| tool_call(json!(7), "rendezvous", json!({"name": name}));
    let (call_a, call_b) = (call("alpha"), call("beta"));
    let (a, b) = tokio::join!(rpc(&gw, &alpha, &call_a), rpc(&gw, &beta, &call_b));
    for ((status, v), name) in [(a, "alpha"), (b, "beta")] {
        assert_eq!(status, StatusCode::OK, "{v}");
        assert_eq!(v["id"], 7, "{v}");
        assert_eq!(v["result"]["content"][0]["text"], format!("you are {name}"));
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn the_server_gets_only_its_configured_environment_and_its_token_is_redacted() {
    let gw = start("").await;
    let writ = writ_for(&gw, &["environment", "token"]);
    let text = text_of(&gw, &writ, "environment", json!({})).await;
    let seen: Value = serde_json::from_str(&text).expect("the tool's JSON");
    // Not the gateway's PATH, HOME or anything else of its environment.
    assert_eq!(
        seen["keys"],
        json!([
            "FILES_TOKEN",
            "HOME",
            "PYTHONCOERCECLOCALE",
            "PYTHONDONTWRITEBYTECODE"
        ])
    );
    assert_eq!(seen["cwd"], "/");
    // The credential the server holds is scrubbed from what it sends back.
    let text = text_of(&gw, &writ, "token", json!({})).await;
    assert!(!text.contains(TOKEN), "{text}");
    assert!(text.contains("[REDACTED:configured-secret]"), "{text}");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_crash_fails_its_call_and_the_next_call_reaches_a_new_server() {
    let gw = start("").await;
    let writ = writ_for(&gw, &["environment", "crash"]);
    let before = pid(&gw, &writ).await;
    let (status, v) = rpc(&gw, &writ, &tool_call(json!(5), "crash", json!({}))).await;
    assert_eq!(status, StatusCode::BAD_GATEWAY, "{v}");
    assert_eq!(v["error"]["data"]["code"], "upstream_failed", "{v}");
    let message = v["error"]["message"].as_str().expect("a message");
    assert!(message.contains("exited before answering"), "{message}");
    // The next call waits for the restarted server.
    let after = pid(&gw, &writ).await;
    assert_ne!(before, after, "a new process");
}

#[tokio::test(flavor = "multi_thread")]
async fn stray_output_is_ignored_and_the_servers_own_requests_are_refused() {
    let gw = start("").await;
    let writ = writ_for(&gw, &["garbage", "add", "ask_roots", "environment"]);
    let before = pid(&gw, &writ).await;
    assert_eq!(
        text_of(&gw, &writ, "garbage", json!({})).await,
        "still here"
    );
    assert_eq!(
        text_of(&gw, &writ, "add", json!({"a": 1, "b": 1})).await,
        "2"
    );
    // The server asks its client for roots: the gateway says no rather than leaving it
    // waiting.
    assert_eq!(
        text_of(&gw, &writ, "ask_roots", json!({})).await,
        "refused -32601"
    );
    assert_eq!(pid(&gw, &writ).await, before, "the same process throughout");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_call_the_server_never_answers_times_out_and_the_server_keeps_serving() {
    let gw = start("timeout = \"2s\"\n").await;
    let writ = writ_for(&gw, &["ignore", "environment"]);
    let before = pid(&gw, &writ).await;
    let (status, v) = rpc(&gw, &writ, &tool_call(json!(5), "ignore", json!({}))).await;
    assert_eq!(status, StatusCode::GATEWAY_TIMEOUT, "{v}");
    assert_eq!(v["error"]["data"]["code"], "upstream_timeout", "{v}");
    assert_eq!(pid(&gw, &writ).await, before);
}

#[tokio::test(flavor = "multi_thread")]
async fn an_answer_over_the_size_cap_fails_and_the_server_is_restarted() {
    let gw = start("max_response_bytes = 4096\n").await;
    let writ = writ_for(&gw, &["big", "environment"]);
    let before = pid(&gw, &writ).await;
    assert_eq!(
        text_of(&gw, &writ, "big", json!({"n": 100})).await.len(),
        100
    );
    let (status, v) = rpc(
        &gw,
        &writ,
        &tool_call(json!(5), "big", json!({"n": 10_000})),
    )
    .await;
    assert_eq!(status, StatusCode::BAD_GATEWAY, "{v}");
    assert_eq!(
        v["error"]["data"]["code"], "upstream_response_too_large",
        "{v}"
    );
    assert_ne!(pid(&gw, &writ).await, before, "restarted");
}

/// The field and reason of a refused config.
fn refusal(text: &str) -> (String, String) {
    let raw = RawConfig::from_toml(text).expect("parses");
    match Config::from_raw(raw, &|_| Some("x".to_string())) {
        Err(ConfigError::Invalid { field, reason }) => (field, reason),
        other => panic!("{text}: {other:?}"),
    }
}

#[test]
fn launch_settings_are_checked_naming_the_field() {
    let table = "[upstreams.files]\nkind = \"mcp\"\n";
    let manifest = concat!(env!("CARGO_MANIFEST_DIR"), "/Cargo.toml");
    for (extra, field, says) in [
        (
            "command = [\"/bin/sh\"]\nbase_url = \"https://x\"",
            "upstreams.files.base_url",
            "choose one of base_url and command",
        ),
        (
            "command = [\"/bin/sh\"]\nallow_private_network = true",
            "upstreams.files.allow_private_network",
            "does not apply",
        ),
        (
            "command = [\"python3\"]",
            "upstreams.files.command",
            "absolute path",
        ),
        (
            "command = [\"/nonexistent/server\"]",
            "upstreams.files.command",
            "cannot run /nonexistent/server",
        ),
        (
            &format!("command = [{manifest:?}]"),
            "upstreams.files.command",
            "not an executable file",
        ),
        (
            "command = [\"/bin/sh\"]\ncwd = \"/nonexistent\"",
            "upstreams.files.cwd",
            "not a directory",
        ),
        (
            "command = [\"/bin/sh\"]\napi_key = \"k\"",
            "upstreams.files.api_key",
            "in env",
        ),
    ] {
        let (got, reason) = refusal(&format!("{table}{extra}\n"));
        assert_eq!(got, field, "{extra}");
        assert!(reason.contains(says), "{extra}: {reason}");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_server_without_the_handshake_gets_requests_as_they_are() {
    let python = writ_testkit::python();
    let modern = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/python/stdio_modern.py");
    let gw = TestGateway::start(&format!(
        "[upstreams.files]\nkind = \"mcp\"\ncommand = [{python:?}, {modern:?}]\nconnect_timeout = \"120s\"\n",
        python = python.display().to_string(),
        modern = modern.display().to_string(),
    ))
    .await;
    let writ = writ_for(&gw, &["add"]);
    // Its refusal of the gateway's handshake is every client's answer to `initialize`.
    let (status, v) = rpc(
        &gw,
        &writ,
        &json!({"jsonrpc": "2.0", "id": 4, "method": "initialize", "params": {}}),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{v}");
    assert_eq!((&v["id"], &v["error"]["code"]), (&json!(4), &json!(-32022)));
    // A request with its per-request `_meta` reaches the server unchanged but for the id.
    let meta = json!({"io.modelcontextprotocol/protocolVersion": "2026-07-28"});
    let resp = reqwest::Client::new()
        .post(gw.url("/mcp/files"))
        .bearer_auth(&writ)
        .header("mcp-protocol-version", "2026-07-28")
        .header("mcp-method", "tools/call")
        .header("mcp-name", "add")
        .json(
            &json!({"jsonrpc": "2.0", "id": "m-1", "method": "tools/call",
                "params": {"name": "add", "arguments": {"a": 1}, "_meta": meta}}),
        )
        .send()
        .await
        .expect("the gateway answers");
    let status = resp.status();
    let v: Value = resp.json().await.expect("a JSON answer");
    assert_eq!(status, StatusCode::OK, "{v}");
    assert_eq!(v["id"], "m-1");
    let echoed: Value =
        serde_json::from_str(v["result"]["content"][0]["text"].as_str().expect("text"))
            .expect("the echo");
    assert_eq!(echoed["method"], "tools/call");
    assert_eq!(
        echoed["params"],
        json!({"name": "add", "arguments": {"a": 1}, "_meta": meta})
    );
    // Its request, written right after its handshake answer, was answered: refused.
    assert_eq!(echoed["roots_answer"]["id"], "r1", "{echoed}");
    assert_eq!(echoed["roots_answer"]["error"]["code"], -32601, "{echoed}");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_server_that_cannot_start_fails_calls_at_once() {
    // It exits at once, before any handshake.
    let gw =
        TestGateway::start("[upstreams.files]\nkind = \"mcp\"\ncommand = [\"/bin/false\"]\n").await;
    let writ = writ_for(&gw, &["add"]);
    for _ in 0..2 {
        let (status, v) = rpc(&gw, &writ, &tool_call(json!(1), "add", json!({}))).await;
        assert_eq!(status, StatusCode::BAD_GATEWAY, "{v}");
        assert_eq!(v["error"]["data"]["code"], "upstream_unreachable", "{v}");
        let message = v["error"]["message"].as_str().expect("a message");
        assert!(message.contains("could not be started"), "{message}");
    }
}
