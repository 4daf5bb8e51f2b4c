//! MCP's official Python SDK end to end through writ, with no writ-specific code on either
//! side: an MCP server built with the SDK (`tests/python/mcp_flights_server.py`, its own
//! static key), and an agent using the SDK's own OAuth client credentials with
//! `private_key_jwt` (`tests/python/mcp_flights_client.py`) that discovers writ from the
//! 401, gets a writ for `/mcp/flights` and calls tools, in both protocol eras.

use std::path::{Path, PathBuf};
use std::process::Stdio;

use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt, BufReader};
use writ_testkit::{OAuthClient, TestGateway};

/// The MCP server's own credential, which only the gateway holds.
const SERVER_KEY: &str = "flights-server-key-4f1c9a";
/// The agent's ceiling: exactly one tool, with exactly these arguments.
const CEILING: &str = r#"[{"type":"writ:tool","upstream":"flights","tool":"book_flight","arguments":{"flight":"LH123","date":"2026-12-01"}}]"#;
const AGENT: &str = "booker";

fn script(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/python")
        .join(name)
}

/// The SDK-built MCP server, as a child process killed when dropped.
struct FlightsServer {
    _child: tokio::process::Child,
    base: String,
}

impl FlightsServer {
    /// Starts it and waits for the line saying where it listens (its socket is listening
    /// by then, so the first request cannot arrive early).
    async fn start() -> Self {
        let mut child = tokio::process::Command::new(writ_testkit::python())
            .arg(script("mcp_flights_server.py"))
            .env("FLIGHTS_KEY", SERVER_KEY)
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .kill_on_drop(true)
            .spawn()
            .expect("start the MCP server");
        let stdout = child.stdout.take().expect("server stdout");
        let mut lines = BufReader::new(stdout).lines();
        let base = loop {
            let line = lines
                .next_line()
                .await
                .expect("read server stdout")
                .expect("the MCP server exited before listening");
            if let Some(base) = line.strip_prefix("listening on ") {
                break base.trim().to_string();
            }
        };
        Self {
            _child: child,
            base,
        }
    }

    /// Every request the server received (method, path, headers, body), asked of it
    /// directly with its own key.
    async fn seen(&self) -> Vec<Value> {
        let report: Value = reqwest::Client::new()
            .get(format!("{}/_report", self.base))
            .bearer_auth(SERVER_KEY)
            .send()
            .await
            .expect("ask the MCP server what it saw")
            .json()
            .await
            .expect("the report is JSON");
        report["requests"]
            .as_array()
            .expect("a list of requests")
            .clone()
    }
}

struct Setup {
    server: FlightsServer,
    gw: TestGateway,
    agent: OAuthClient,
    secret: String,
    dir: tempfile::TempDir,
}

/// How the SDK authenticates at the token endpoint.
#[derive(Clone, Copy)]
enum ClientAuth {
    /// `PrivateKeyJWTOAuthProvider`: a JWT signed with the agent's key.
    Key,
    /// `ClientCredentialsOAuthProvider`: the client secret in HTTP Basic.
    Secret,
}

async fn setup() -> Setup {
    let server = FlightsServer::start().await;
    let config = format!(
        "[upstreams.flights]\nkind = \"mcp\"\nbase_url = \"{}/mcp\"\nallow_private_network = true\napi_key = \"{SERVER_KEY}\"\n",
        server.base
    );
    let gw = TestGateway::start(&config).await;
    let (agent, secret) = OAuthClient::register(&gw, AGENT, CEILING, true).await;
    let dir = tempfile::tempdir().expect("temporary directory");
    std::fs::write(dir.path().join("agent.pem"), agent.private_key_pem()).expect("write key");
    Setup {
        server,
        gw,
        agent,
        secret,
        dir,
    }
}

/// Runs the SDK client in `mode`; returns its report and the writs it was issued.
async fn run_client(s: &Setup, mode: &str, auth: ClientAuth) -> (Value, Vec<String>) {
    let key_file = s.dir.path().join("agent.pem");
    let tokens_file = s.dir.path().join(format!("tokens-{mode}.json"));
    let url = s.gw.url("/mcp/flights");
    let issuer = s.gw.url("");
    let key_file = key_file.display().to_string();
    let tokens = tokens_file.display().to_string();
    let mut env = vec![
        ("MCP_URL", url.as_str()),
        ("MCP_ISSUER", issuer.as_str()),
        ("MCP_CLIENT_ID", s.agent.name.as_str()),
        ("MCP_TOKENS_FILE", tokens.as_str()),
        ("MCP_MODE", mode),
    ];
    match auth {
        ClientAuth::Key => env.push(("MCP_KEY_FILE", key_file.as_str())),
        ClientAuth::Secret => env.push(("MCP_CLIENT_SECRET", s.secret.as_str())),
    }
    let lines = writ_testkit::run_python_lines(&script("mcp_flights_client.py"), &env).await;
    let report = lines.into_iter().next().expect("the client's report line");
    let tokens: Vec<String> = serde_json::from_str(
        &std::fs::read_to_string(&tokens_file).expect("the client wrote its tokens"),
    )
    .expect("a list of tokens");
    (report, tokens)
}

/// The token requests the SDK sent: form-encoded POSTs to the token endpoint.
fn token_requests(report: &Value) -> Vec<&Value> {
    report["wire"]
        .as_array()
        .expect("wire")
        .iter()
        .filter(|r| r["path"] == "/oauth2/token")
        .collect()
}

/// Asserts what the acceptance test of issue 21 asks of one run of the SDK client.
fn assert_acceptance(s: &Setup, report: &Value, tokens: &[String], auth: ClientAuth) {
    // Discovery and the token request are the SDK's own: client credentials, RFC 8707
    // `resource`, no `authorization_details`, and a writ whose `token_type` the SDK accepts.
    let requests = token_requests(report);
    assert!(!requests.is_empty(), "no token request: {report}");
    let fields = match auth {
        ClientAuth::Key => json!([
            "client_assertion",
            "client_assertion_type",
            "grant_type",
            "resource",
            "scope"
        ]),
        ClientAuth::Secret => json!(["grant_type", "resource", "scope"]),
    };
    for r in &requests {
        assert_eq!(r["form_fields"], fields, "{r}");
        assert_eq!(r["basic"], matches!(auth, ClientAuth::Secret), "{r}");
        assert_eq!(r["resource"], s.gw.url("/mcp/flights"), "{r}");
        assert_eq!(r["status"], 200, "token request refused: {r}");
    }
    assert_eq!(report["token_types"], json!(["Bearer"]), "{report}");
    assert!(!tokens.is_empty(), "{report}");
    assert!(
        tokens.iter().all(|t| t.starts_with("writ_")),
        "the SDK was issued something other than writs"
    );

    // Every exchange on the MCP endpoint was answered by the gateway or the server, never
    // failed: a notification the server acknowledges with an empty 202 included.
    for r in report["wire"].as_array().expect("wire") {
        if r["path"] == "/mcp/flights" {
            let status = r["status"].as_u64().expect("a status");
            assert!(status < 500, "{r}");
        }
    }

    // The writ lists only the tool it may call.
    assert_eq!(report["tools"], json!(["book_flight"]), "{report}");

    // The granted call succeeds, with the server's answer.
    let calls = report["calls"].as_array().expect("calls");
    assert_eq!(
        calls[0],
        json!({"tool": "book_flight", "is_error": false, "text": ["BK-LH123-2026-12-01"]}),
        "{report}"
    );
    // Other arguments, and another tool: the gateway's JSON-RPC error (writ's "forbidden"
    // code, the HTTP error's code in `data`), not the SDK's stand-in for an HTTP error it
    // could not read.
    for refused in &calls[1..] {
        let error = &refused["error"];
        assert_eq!(error["code"], -32011, "{refused}");
        assert_eq!(error["data"]["code"], "grant_denied", "{refused}");
        assert_eq!(error["data"]["status"], 403, "{refused}");
        assert!(
            error["message"].as_str().is_some_and(|m| !m.is_empty()),
            "{refused}"
        );
    }
    assert_eq!(calls[3]["tool"], "cancel_flight");
}

/// Asserts the MCP server saw only its own key, never a writ nor the agent's secret, and
/// only the granted call.
fn assert_server_never_saw_a_writ(s: &Setup, seen: &[Value], tokens: &[String]) {
    assert!(!seen.is_empty(), "nothing reached the MCP server");
    for request in seen {
        let text = request.to_string();
        assert!(
            !text.contains("writ_"),
            "something shaped like a writ reached the MCP server: {} {}",
            request["method"],
            request["path"]
        );
        for token in tokens {
            assert!(
                !text.contains(token.as_str()),
                "the writ reached the MCP server"
            );
        }
        assert!(
            !text.contains(s.secret.as_str()),
            "the agent's secret reached the MCP server"
        );
        assert_eq!(
            request["headers"]["authorization"],
            json!([format!("Bearer {SERVER_KEY}")]),
            "{} {} did not carry the server's own key",
            request["method"],
            request["path"]
        );
    }
    let calls: Vec<&Value> = seen
        .iter()
        .filter(|r| {
            r["body"]
                .as_str()
                .unwrap_or_default()
                .contains("tools/call")
        })
        .collect();
    assert!(!calls.is_empty(), "the granted call never arrived");
    for call in calls {
        let body: Value = serde_json::from_str(call["body"].as_str().expect("body")).expect("JSON");
        assert_eq!(body["params"]["name"], "book_flight", "{body}");
        assert_eq!(
            body["params"]["arguments"],
            json!({"flight": "LH123", "date": "2026-12-01"}),
            "a refused call reached the server: {body}"
        );
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn the_sdk_in_the_2026_era_gets_exactly_the_granted_tool() {
    let s = setup().await;
    let (report, tokens) = run_client(&s, "auto", ClientAuth::Key).await;
    assert_eq!(report["protocol_version"], "2026-07-28", "{report}");
    // It probed `server/discover`, with the 2026 routing headers.
    let discover = report["wire"]
        .as_array()
        .expect("wire")
        .iter()
        .find(|r| r["jsonrpc_method"] == "server/discover" && r["bearer"] == true)
        .expect("a server/discover with a writ");
    assert_eq!(discover["mcp-method"], "server/discover", "{discover}");
    assert_eq!(discover["status"], 200, "{discover}");
    assert_acceptance(&s, &report, &tokens, ClientAuth::Key);
    assert_server_never_saw_a_writ(&s, &s.server.seen().await, &tokens);
}

#[tokio::test(flavor = "multi_thread")]
async fn the_sdk_in_the_legacy_era_keeps_its_session() {
    let s = setup().await;
    let (report, tokens) = run_client(&s, "legacy", ClientAuth::Key).await;
    assert_eq!(report["protocol_version"], "2025-11-25", "{report}");
    assert_acceptance(&s, &report, &tokens, ClientAuth::Key);
    let seen = s.server.seen().await;
    assert_server_never_saw_a_writ(&s, &seen, &tokens);
    // The session the server opened is the one the client's later calls carried.
    let session_ids: Vec<&Value> = seen
        .iter()
        .filter_map(|r| r["headers"].get("mcp-session-id"))
        .collect();
    assert!(
        !session_ids.is_empty(),
        "no Mcp-Session-Id reached the server"
    );
    assert!(
        session_ids.iter().all(|id| *id == session_ids[0]),
        "{session_ids:?}"
    );
    let tool_call = report["wire"]
        .as_array()
        .expect("wire")
        .iter()
        .find(|r| r["jsonrpc_method"] == "tools/call" && r["status"] == 200)
        .expect("a tools/call answered 200");
    assert_eq!(
        json!([tool_call["mcp-session-id"]]),
        *session_ids[0],
        "{tool_call}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn the_sdk_with_a_client_secret_gets_the_same() {
    let s = setup().await;
    let (report, tokens) = run_client(&s, "auto", ClientAuth::Secret).await;
    assert_eq!(report["protocol_version"], "2026-07-28", "{report}");
    assert_acceptance(&s, &report, &tokens, ClientAuth::Secret);
    assert_server_never_saw_a_writ(&s, &s.server.seen().await, &tokens);
}
