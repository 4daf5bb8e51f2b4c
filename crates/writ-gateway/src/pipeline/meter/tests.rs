//! The meter phase against a local upstream: what the client gets, what is recorded.

use std::sync::atomic::{AtomicBool, Ordering};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

use super::*;
use crate::pipeline::fixture::Fixture;
use crate::pipeline::forward;
use crate::pipeline::inject::Outbound;

const KEY: &str = "sk-upstream-key-0123456789abcdef";

/// A gateway whose `openai` upstream is the listener it returns.
async fn gateway(extra: &str) -> (Fixture, TcpListener) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let toml = format!(
        "[upstreams.openai]\nkind = \"openai\"\nbase_url = \"http://{}\"\napi_key = \"{KEY}\"\n\
         allow_private_network = true\nallow_plaintext = true\n{extra}",
        listener.local_addr().unwrap()
    );
    (Fixture::start(&toml).await, listener)
}

fn call_info(recorded: &Arc<AtomicBool>) -> CallInfo {
    CallInfo {
        token_id: "tok-1".into(),
        tenant: "default".into(),
        agent: "demo".into(),
        delegation: None,
        upstream: "openai".into(),
        model: Some("gpt-4o".into()),
        dialect: writ_providers::RouteSpec::find("/v1/chat/completions")
            .unwrap()
            .dialect(),
        request_bytes: 400,
        drop_usage_chunk: false,
        held: None,
        decision: None,
        outcome_recorded: recorded.clone(),
        sent: Instant::now(),
        started: Instant::now(),
        operation: "chat",
        client: None,
        response_mode: Mode::Block,
    }
}

/// Answers one request with `response` (raw HTTP/1.1) and keeps the connection open.
async fn answer(listener: &TcpListener, response: &[u8]) -> TcpStream {
    let (mut conn, _) = listener.accept().await.unwrap();
    let mut head = Vec::new();
    let mut buf = [0u8; 1024];
    while !head.windows(4).any(|w| w == b"\r\n\r\n") {
        let n = conn.read(&mut buf).await.unwrap();
        assert!(n > 0, "connection closed before the request head");
        head.extend_from_slice(&buf[..n]);
    }
    conn.write_all(response).await.unwrap();
    conn
}

/// The meter's result for one call answered with `response`, and whether it was recorded.
async fn meter(
    f: &Fixture,
    listener: &TcpListener,
    response: &[u8],
) -> (Result<Response, GatewayError>, bool) {
    let upstream = &f.gw.upstreams["openai"];
    let recorded = Arc::new(AtomicBool::new(false));
    let call = async {
        let request = http::Request::get(format!("{}/v1/chat/completions", upstream.base))
            .body(Body::empty())
            .unwrap();
        let response = forward::send(upstream, Outbound(request)).await?;
        let response = respond(f.gw.clone(), upstream, call_info(&recorded), response).await?;
        // The client reads the whole body, as a real one would.
        let (parts, body) = response.into_parts();
        let bytes = body.collect().await.unwrap().to_bytes();
        Ok(Response::from_parts(parts, Body::from(bytes)))
    };
    let (_conn, result) = tokio::join!(answer(listener, response), call);
    (result, recorded.load(Ordering::Acquire))
}

fn http_response(status: &str, content_type: &str, body: &str) -> Vec<u8> {
    format!(
        "HTTP/1.1 {status}\r\ncontent-type: {content_type}\r\ncontent-length: {}\r\n\r\n{body}",
        body.len()
    )
    .into_bytes()
}

async fn text(response: Response) -> String {
    let bytes = response.into_body().collect().await.unwrap().to_bytes();
    String::from_utf8(bytes.to_vec()).unwrap()
}

#[tokio::test]
async fn a_json_answer_is_passed_on_scrubbed_and_its_reported_usage_recorded() {
    let (f, listener) = gateway("").await;
    let body = format!(
        r#"{{"id":"c1","object":"chat.completion","choices":[{{"message":{{"content":"the key is {KEY}"}}}}],"usage":{{"prompt_tokens":12,"completion_tokens":5,"total_tokens":17}}}}"#
    );
    let (result, recorded) = meter(
        &f,
        &listener,
        &http_response("200 OK", "application/json", &body),
    )
    .await;
    let response = result.unwrap();
    assert!(recorded);
    assert_eq!(response.status(), 200);
    let passed = text(response).await;
    assert!(
        !passed.contains(KEY),
        "the upstream's key reached the client"
    );
    assert!(passed.contains("\"id\":\"c1\""), "{passed}");
    let usage = f.gw.recent_usage();
    assert_eq!(usage.len(), 1);
    let record = &usage[0];
    assert_eq!(
        (record.usage.input_tokens, record.usage.output_tokens),
        (12, 5)
    );
    assert!(!record.estimated);
    assert_eq!((record.status, record.outcome), (200, Outcome::Completed));
    assert!(record.cost_usd_micros.is_some_and(|c| c > 0));
    assert_ne!(
        record.writ, "tok-1",
        "usage names the writ by its pseudonym"
    );
}

#[tokio::test]
async fn a_server_error_is_a_502_to_the_client_and_recorded_without_usage() {
    let (f, listener) = gateway("").await;
    let (result, recorded) = meter(
        &f,
        &listener,
        &http_response("503 Service Unavailable", "text/plain", KEY),
    )
    .await;
    assert!(matches!(
        result,
        Err(GatewayError::UpstreamStatus { status: 503, ref upstream }) if upstream == "openai"
    ));
    assert!(recorded);
    let record = &f.gw.recent_usage()[0];
    assert_eq!((record.status, record.usage), (503, Usage::default()));
}

#[tokio::test]
async fn a_refused_upstream_credential_is_not_passed_on() {
    let (f, listener) = gateway("").await;
    let (result, _) = meter(
        &f,
        &listener,
        &http_response(
            "401 Unauthorized",
            "application/json",
            r#"{"error":"bad key"}"#,
        ),
    )
    .await;
    assert!(matches!(
        result,
        Err(GatewayError::UpstreamCredentialRefused { status: 401, .. })
    ));
    // The audit record says what the client was answered: 502, not the upstream's 401.
    f.gw.audit_checkpoint().await;
    let lines = f.gw.audit_export().await.unwrap();
    let record: serde_json::Value = lines
        .iter()
        .rev()
        .find(|l| !l.starts_with("{\"checkpoint\""))
        .map(|l| serde_json::from_str(l).unwrap())
        .expect("the call is audited");
    assert_eq!(record["status"], 502, "{record}");
}

#[tokio::test]
async fn a_success_that_is_not_json_is_refused_as_invalid_and_recorded_cut() {
    let (f, listener) = gateway("").await;
    let (result, recorded) = meter(
        &f,
        &listener,
        &http_response("200 OK", "text/html", "<html>maintenance</html>"),
    )
    .await;
    assert!(matches!(result, Err(GatewayError::UpstreamInvalid)));
    assert!(recorded);
    assert_eq!(f.gw.recent_usage()[0].outcome, Outcome::UpstreamCut);
}

#[tokio::test]
async fn a_body_over_the_cap_is_refused() {
    let (f, listener) = gateway("max_response_bytes = 16\n").await;
    let (result, _) = meter(
        &f,
        &listener,
        &http_response("200 OK", "application/json", r#"{"id":"0123456789abcdef"}"#),
    )
    .await;
    assert!(matches!(result, Err(GatewayError::UpstreamTooLarge)));
}

#[tokio::test]
async fn a_body_that_stalls_is_a_timeout() {
    let (f, listener) = gateway("read_timeout = \"100ms\"\n").await;
    // Promises 40 bytes and sends 2, holding the connection open.
    let (result, _) = meter(
        &f,
        &listener,
        b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: 40\r\n\r\n{\"",
    )
    .await;
    assert!(matches!(result, Err(GatewayError::UpstreamTimeout)));
    assert_eq!(f.gw.recent_usage()[0].outcome, Outcome::UpstreamCut);
}

#[tokio::test]
async fn without_reported_usage_a_success_is_estimated_and_says_so() {
    let f = Fixture::start("").await;
    let recorded = Arc::new(AtomicBool::new(false));
    let mut info = call_info(&recorded);
    let settled = settle(
        &f.gw,
        &mut info,
        StatusCode::OK,
        None,
        80,
        Outcome::Completed,
    );
    assert!(recorded.load(Ordering::Acquire));
    let record = &f.gw.recent_usage()[0];
    assert!(record.estimated);
    assert_eq!(
        (record.usage.input_tokens, record.usage.output_tokens),
        (estimate_tokens(400), estimate_tokens(80))
    );
    let (_, audit) = settled.1.unwrap();
    let detail = audit.detail.unwrap();
    assert_eq!(detail["usage_estimated"], true);
    // Nothing sent and nothing received: nothing to estimate.
    info.request_bytes = 0;
    let _record = settle(
        &f.gw,
        &mut info,
        StatusCode::OK,
        None,
        0,
        Outcome::Completed,
    );
    let record = &f.gw.recent_usage()[1];
    assert_eq!((record.usage, record.estimated), (Usage::default(), false));
}

#[tokio::test]
async fn an_upstream_failure_is_audited_as_502_and_refunds_the_request() {
    let (f, _listener) = gateway("").await;
    let writ = f.verified(&f.mint(
        r#"[{"type":"writ:llm","upstream":"openai"},{"type":"writ:budget","tokens":100000}]"#,
        None,
    ));
    let target = crate::pipeline::route::Target {
        upstream: &f.gw.upstreams["openai"],
        path: "/v1/chat/completions".into(),
    };
    let facts = writ_token::RequestFacts {
        upstream: Some("openai".into()),
        model: Some("gpt-4o".into()),
        ..writ_token::RequestFacts::new(
            writ_token::Api::Llm,
            "chat",
            "POST",
            "/v1/chat/completions",
        )
    };
    let recorded = Arc::new(AtomicBool::new(false));
    let mut info = call_info(&recorded);
    info.held = crate::pipeline::limit::reserve(&f.gw, &writ, &target, &facts, 400)
        .await
        .unwrap();
    assert!(info.held.is_some());
    let settled = settle(
        &f.gw,
        &mut info,
        StatusCode::SERVICE_UNAVAILABLE,
        None,
        0,
        Outcome::Completed,
    );
    let (_, actual, _) = settled.0.as_ref().unwrap();
    assert_eq!(
        (
            actual.requests,
            actual.input_tokens,
            actual.output_tokens,
            actual.cost_usd_micros
        ),
        (0, 0, 0, 0),
        "a failed call uses up nothing"
    );
    let (_, audit) = settled.1.as_ref().unwrap();
    assert_eq!(audit.status, Some(502));
    assert_eq!(audit.usage.as_ref().unwrap().input_tokens, 0);
}
