//! OpenTelemetry traces end to end: a real gateway exporting over OTLP/HTTP to a real
//! receiver (the official `opentelemetry-proto` package decoding what it is sent, in
//! `python/otlp_receiver.py`), a recording mock upstream, a real HTTP client.
#![allow(clippy::unwrap_used)]

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use reqwest::StatusCode;
use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};
use writ_testkit::{MockUpstream, TestGateway, closed_port_url, python};

const UPSTREAM_KEY: &str = "sk-upstream-test-0123456789";
const GRANT: &str =
    r#"{"type":"writ:llm","upstream":"demo","actions":["chat"],"models":["gpt-4o-mini"]}"#;
const PROMPT: &str = "the secret plans for the harbour bridge, 7431";
const CLIENT_TRACE: &str = "4bf92f3577b34da6a3ce929d0e0e4736";
const CLIENT_SPAN: &str = "00f067aa0ba902b7";

/// The OTLP receiver, writing the spans it decodes to a file; stops when dropped.
struct Receiver {
    _child: Child,
    port: u16,
    out: PathBuf,
    _dir: tempfile::TempDir,
}

impl Receiver {
    async fn start() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("spans.jsonl");
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/python/otlp_receiver.py");
        let mut child = Command::new(python())
            .arg(script)
            .env("OTLP_OUT", &out)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .unwrap();
        let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
        let hello: Value =
            serde_json::from_str(&lines.next_line().await.unwrap().unwrap()).unwrap();
        Self {
            _child: child,
            port: u16::try_from(hello["port"].as_u64().unwrap()).unwrap(),
            out,
            _dir: dir,
        }
    }

    fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}/v1/traces", self.port)
    }

    /// Every span received so far.
    fn spans(&self) -> Vec<Value> {
        std::fs::read_to_string(&self.out)
            .unwrap_or_default()
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect()
    }
}

fn config(upstream: &str, traces: &str) -> String {
    format!(
        "[upstreams.demo]\nkind = \"openai\"\nbase_url = \"{upstream}\"\nallow_private_network = true\napi_key = \"{UPSTREAM_KEY}\"\n\n{traces}"
    )
}

fn traces_section(endpoint: &str, ratio: f64) -> String {
    format!(
        "[traces]\nendpoint = \"{endpoint}\"\nsample_ratio = {ratio}\nservice_name = \"writ-test\"\ntimeout = \"2s\"\n"
    )
}

async fn chat(gw: &TestGateway, writ: &str, headers: &[(&str, &str)]) -> (StatusCode, Value) {
    let mut req = reqwest::Client::new()
        .post(gw.url("/v1/chat/completions"))
        .bearer_auth(writ)
        .json(&json!({"model": "gpt-4o-mini", "messages": [{"role": "user", "content": PROMPT}]}));
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    let resp = req.send().await.unwrap();
    let status = resp.status();
    (status, resp.json().await.unwrap_or(Value::Null))
}

/// Flushes the gateway's spans until `done` holds of what the receiver has, within a
/// deadline; returns what it has.
async fn spans_until(
    gw: &TestGateway,
    rx: &Receiver,
    done: impl Fn(&[Value]) -> bool,
) -> Vec<Value> {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        gw.gateway().flush_traces().await;
        let spans = rx.spans();
        if done(&spans) {
            return spans;
        }
        assert!(Instant::now() < deadline, "spans so far: {spans:#?}");
        tokio::task::yield_now().await;
    }
}

fn servers(spans: &[Value]) -> Vec<&Value> {
    spans.iter().filter(|s| s["kind"] == "server").collect()
}

fn token_id(gw: &TestGateway, writ: &str) -> String {
    writ_token::decode(writ)
        .unwrap()
        .verify(&gw.keys().trusted)
        .unwrap()
        .claims()
        .token_id
        .clone()
}

/// Asserts that no attribute value of any span (or its resource) contains any of `secrets`.
fn assert_no_secret(spans: &[Value], secrets: &[&str]) {
    for span in spans {
        let text = format!(
            "{} {} {}",
            span["attributes"], span["resource"], span["name"]
        );
        for secret in secrets {
            assert!(!text.contains(secret), "{secret:?} in {span}");
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_trace_per_request_under_the_clients_span_with_genai_attributes() {
    let upstream = MockUpstream::start(UPSTREAM_KEY).await;
    let rx = Receiver::start().await;
    let traces = traces_section(&rx.endpoint(), 1.0);
    let gw = TestGateway::start(&config(&upstream.base_url(), &traces)).await;
    let writ = gw.mint("demo", GRANT, 30);
    let traceparent = format!("00-{CLIENT_TRACE}-{CLIENT_SPAN}-01");
    let (status, answer) = chat(
        &gw,
        &writ,
        &[
            ("traceparent", &traceparent),
            ("tracestate", "vendor=opaque1"),
        ],
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{answer}");

    let spans = spans_until(&gw, &rx, |s| !servers(s).is_empty()).await;
    let traces: BTreeSet<&str> = spans
        .iter()
        .map(|s| s["trace_id"].as_str().unwrap())
        .collect();
    assert_eq!(
        traces,
        BTreeSet::from([CLIENT_TRACE]),
        "one trace, the client's"
    );
    let server = servers(&spans);
    assert_eq!(server.len(), 1, "one server span per request");
    let server = server[0];
    assert_eq!(server["parent_span_id"], CLIENT_SPAN, "{server}");
    assert_eq!(server["name"], "POST /v1/chat/completions");
    assert_eq!(server["resource"]["service.name"], "writ-test");
    let a = &server["attributes"];
    assert_eq!(a["gen_ai.operation.name"], "chat", "{a}");
    assert_eq!(a["gen_ai.provider.name"], "openai", "{a}");
    assert_eq!(a["gen_ai.request.model"], "gpt-4o-mini", "{a}");
    let usage = &answer["usage"];
    assert_eq!(
        a["gen_ai.usage.input_tokens"].as_i64().unwrap(),
        usage["prompt_tokens"].as_i64().unwrap()
    );
    assert_eq!(
        a["gen_ai.usage.output_tokens"].as_i64().unwrap(),
        usage["completion_tokens"].as_i64().unwrap()
    );
    assert_eq!(a["writ.tenant"], "default", "{a}");
    assert!(
        a["writ.agent"].as_str().is_some_and(|s| !s.is_empty()),
        "{a}"
    );
    assert_eq!(a["writ.decision"], "allowed", "{a}");
    assert!(a.get("writ.failed_check").is_none(), "{a}");
    assert_eq!(a["http.response.status_code"], 200, "{a}");

    // The writ is named as the audit log names it: by its pseudonym.
    gw.gateway().audit_checkpoint().await;
    let log = gw.gateway().audit_export().await.unwrap();
    let record: Value = log
        .iter()
        .filter(|l| l.contains("\"request_"))
        .map(|l| serde_json::from_str(l).unwrap())
        .next_back()
        .unwrap();
    assert_eq!(a["writ.writ"], record["writ"], "{a}");
    let token = token_id(&gw, &writ);
    assert_no_secret(&spans, &[&writ, &token, PROMPT, "harbour", UPSTREAM_KEY]);

    // Children: the phases, each under the server span; the call a CLIENT span.
    let server_id = server["span_id"].as_str().unwrap();
    let children: BTreeSet<&str> = spans
        .iter()
        .filter(|s| s["parent_span_id"] == server_id)
        .map(|s| s["name"].as_str().unwrap())
        .collect();
    let expected = ["audit", "authenticate", "authorize", "limit", "upstream"];
    assert_eq!(children, BTreeSet::from(expected), "{spans:#?}");
    assert_eq!(spans.len(), 1 + expected.len(), "one of each: {spans:#?}");
    let call = spans.iter().find(|s| s["name"] == "upstream").unwrap();
    assert_eq!(call["kind"], "client");
    assert_eq!(call["attributes"]["gen_ai.request.model"], "gpt-4o-mini");
    for child in &spans {
        assert!(
            child["start"].as_u64() >= server["start"].as_u64(),
            "{child}"
        );
        assert!(child["end"].as_u64() <= server["end"].as_u64(), "{child}");
    }

    // The upstream was told of the gateway's call, not of the client's span.
    let sent = &upstream.requests()[0];
    let call_id = call["span_id"].as_str().unwrap();
    assert_eq!(
        sent.headers["traceparent"],
        format!("00-{CLIENT_TRACE}-{call_id}-01")
    );
    assert_eq!(sent.headers["tracestate"], "vendor=opaque1");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refusal_is_traced_as_denied_naming_what_refused_it() {
    let upstream = MockUpstream::start(UPSTREAM_KEY).await;
    let rx = Receiver::start().await;
    let traces = traces_section(&rx.endpoint(), 1.0);
    let gw = TestGateway::start(&config(&upstream.base_url(), &traces)).await;
    let writ = gw.mint("demo", GRANT, 30);
    let resp = reqwest::Client::new()
        .post(gw.url("/v1/chat/completions"))
        .bearer_auth(&writ)
        .json(&json!({"model": "gpt-4o", "messages": [{"role": "user", "content": PROMPT}]}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::FORBIDDEN);

    let spans = spans_until(&gw, &rx, |s| !servers(s).is_empty()).await;
    let server = servers(&spans)[0];
    let a = &server["attributes"];
    assert_eq!(a["writ.decision"], "denied", "{a}");
    assert!(
        a["writ.failed_check"]
            .as_str()
            .is_some_and(|c| !c.is_empty()),
        "{a}"
    );
    assert_eq!(a["http.response.status_code"], 403, "{a}");
    assert_eq!(server["parent_span_id"], "", "no traceparent: a root");
    let names: BTreeSet<&str> = spans.iter().map(|s| s["name"].as_str().unwrap()).collect();
    assert!(
        !names.contains("upstream") && !names.contains("limit"),
        "{names:?}"
    );
    let authorize = spans.iter().find(|s| s["name"] == "authorize").unwrap();
    assert_eq!(authorize["status"], 2, "the phase that refused is an error");
    assert!(upstream.requests().is_empty());
    assert_no_secret(&spans, &[&writ, &token_id(&gw, &writ), PROMPT]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_mcp_client_names_its_span_in_meta() {
    const KEY: &str = "tool-key-0123456789";
    const CEILING: &str = r#"{"type":"writ:tool","upstream":"travel","tool":"book_flight","additional_arguments":true}"#;
    let upstream = MockUpstream::start(KEY).await;
    let rx = Receiver::start().await;
    let gw = TestGateway::start(&format!(
        "[upstreams.travel]\nkind = \"mcp\"\nbase_url = \"{}/mcp\"\nallow_private_network = true\napi_key = \"{KEY}\"\n\n{}",
        upstream.base_url(),
        traces_section(&rx.endpoint(), 1.0)
    ))
    .await;
    let writ = gw.mint_as(CEILING, CEILING, 30);
    let meta_trace = "0af7651916cd43dd8448eb211c80319c";
    let meta_span = "b7ad6b7169203331";
    let body = json!({"jsonrpc": "2.0", "id": 1, "method": "tools/call", "params": {
        "name": "book_flight", "arguments": {"flight": "LH123", "note": PROMPT},
        "_meta": {"traceparent": format!("00-{meta_trace}-{meta_span}-01")}}});
    let resp = reqwest::Client::new()
        .post(gw.url("/mcp/travel"))
        .bearer_auth(&writ)
        .header("accept", "application/json, text/event-stream")
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(
        resp.status(),
        StatusCode::OK,
        "{}",
        resp.text().await.unwrap()
    );

    let spans = spans_until(&gw, &rx, |s| !servers(s).is_empty()).await;
    let server = servers(&spans)[0];
    assert_eq!(server["trace_id"], meta_trace);
    assert_eq!(server["parent_span_id"], meta_span);
    let a = &server["attributes"];
    assert_eq!(a["gen_ai.operation.name"], "execute_tool", "{a}");
    assert_eq!(a["gen_ai.tool.name"], "book_flight", "{a}");
    assert_eq!(a["mcp.method.name"], "tools/call", "{a}");
    let call = spans.iter().find(|s| s["name"] == "upstream").unwrap();
    let sent = &upstream.requests()[0];
    assert_eq!(
        sent.headers["traceparent"],
        format!("00-{meta_trace}-{}-01", call["span_id"].as_str().unwrap())
    );
    assert_no_secret(&spans, &[&writ, &token_id(&gw, &writ), PROMPT, KEY]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn at_ratio_zero_only_a_clients_sampled_trace_is_sent() {
    let upstream = MockUpstream::start(UPSTREAM_KEY).await;
    let rx = Receiver::start().await;
    let traces = traces_section(&rx.endpoint(), 0.0);
    let gw = TestGateway::start(&config(&upstream.base_url(), &traces)).await;
    let writ = gw.mint("demo", GRANT, 30);
    for _ in 0..5 {
        assert_eq!(chat(&gw, &writ, &[]).await.0, StatusCode::OK);
    }
    // A client that says it samples decides (parent-based); one that says it does not,
    // too.
    let unsampled = format!("00-{}-{CLIENT_SPAN}-00", "1".repeat(32));
    assert_eq!(
        chat(&gw, &writ, &[("traceparent", &unsampled)]).await.0,
        StatusCode::OK
    );
    let sampled = format!("00-{CLIENT_TRACE}-{CLIENT_SPAN}-01");
    assert_eq!(
        chat(&gw, &writ, &[("traceparent", &sampled)]).await.0,
        StatusCode::OK
    );

    let spans = spans_until(&gw, &rx, |s| !servers(s).is_empty()).await;
    let traces: BTreeSet<&str> = spans
        .iter()
        .map(|s| s["trace_id"].as_str().unwrap())
        .collect();
    assert_eq!(
        traces,
        BTreeSet::from([CLIENT_TRACE]),
        "only the sampled one"
    );
    assert_eq!(servers(&spans).len(), 1);
    // Unsampled calls still carry the trace context on, marked unsampled.
    let sent = upstream.requests();
    assert_eq!(sent.len(), 7);
    for request in &sent[..5] {
        let tp = request.headers["traceparent"].to_str().unwrap();
        assert!(tp.starts_with("00-") && tp.ends_with("-00"), "{tp}");
    }
    let tp = sent[5].headers["traceparent"].to_str().unwrap();
    assert!(tp.starts_with(&format!("00-{}-", "1".repeat(32))) && tp.ends_with("-00"));
    assert!(!tp.contains(CLIENT_SPAN), "{tp}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_malformed_traceparent_is_ignored_and_never_refuses() {
    let upstream = MockUpstream::start(UPSTREAM_KEY).await;
    let rx = Receiver::start().await;
    let traces = traces_section(&rx.endpoint(), 1.0);
    let gw = TestGateway::start(&config(&upstream.base_url(), &traces)).await;
    let writ = gw.mint("demo", GRANT, 30);
    let valid = format!("00-{CLIENT_TRACE}-{CLIENT_SPAN}-01");
    let malformed = [
        valid[..54].to_string(),
        format!("{valid}0"),
        valid.replace("4bf9", "4BF9"),
        valid.replace("4bf9", "4bx9"),
        valid.replace("00-4bf9", "ff-4bf9"),
        valid.replace(CLIENT_TRACE, &"0".repeat(32)),
        valid.replace(CLIENT_SPAN, &"0".repeat(16)),
        format!("cc-{CLIENT_TRACE}-{CLIENT_SPAN}-01-{}", "a".repeat(4000)),
        "garbage".to_string(),
    ];
    for value in &malformed {
        let (status, answer) = chat(&gw, &writ, &[("traceparent", value)]).await;
        assert_eq!(status, StatusCode::OK, "{value}: {answer}");
    }
    let spans = spans_until(&gw, &rx, |s| servers(s).len() == malformed.len()).await;
    for server in servers(&spans) {
        assert_eq!(server["parent_span_id"], "", "a new root: {server}");
        assert_ne!(server["trace_id"], CLIENT_TRACE, "{server}");
    }
    let roots: BTreeSet<&str> = spans
        .iter()
        .map(|s| s["trace_id"].as_str().unwrap())
        .collect();
    assert_eq!(roots.len(), malformed.len(), "one trace per request");
    for (request, value) in upstream.requests().iter().zip(&malformed) {
        let tp = request.headers["traceparent"].to_str().unwrap();
        assert_ne!(tp, value, "the client's value is not passed on");
        assert!(!tp.contains(CLIENT_TRACE), "{tp}");
        assert!(
            roots.contains(&tp[3..35]),
            "names the gateway's trace: {tp}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dead_collector_fails_no_request_and_its_spans_are_counted_lost() {
    let upstream = MockUpstream::start(UPSTREAM_KEY).await;
    let dead = format!("{}/v1/traces", closed_port_url());
    let traces = traces_section(&dead, 1.0);
    let gw = TestGateway::start(&config(&upstream.base_url(), &traces)).await;
    let writ = gw.mint("demo", GRANT, 30);
    for _ in 0..20 {
        let (status, answer) = chat(&gw, &writ, &[]).await;
        assert_eq!(status, StatusCode::OK, "{answer}");
    }
    let deadline = Instant::now() + Duration::from_secs(30);
    while gw.gateway().flush_traces().await == 0 {
        assert!(Instant::now() < deadline, "no export was attempted");
        tokio::task::yield_now().await;
    }
}

#[tokio::test]
async fn without_traces_the_clients_trace_context_passes_through() {
    let upstream = MockUpstream::start(UPSTREAM_KEY).await;
    let gw = TestGateway::start(&config(&upstream.base_url(), "")).await;
    let writ = gw.mint("demo", GRANT, 30);
    let valid = format!("00-{CLIENT_TRACE}-{CLIENT_SPAN}-01");
    let (status, _) = chat(&gw, &writ, &[("traceparent", &valid)]).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        upstream.requests()[0].headers["traceparent"],
        valid.as_str()
    );
    assert_eq!(gw.gateway().flush_traces().await, 0);
}
