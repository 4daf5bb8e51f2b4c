//! The meter phase against a local upstream (with the redact phase after it, as the
//! pipeline runs them): what the client gets, what is measured and recorded.

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

use super::*;
use crate::pipeline::fixture::Fixture;
use crate::pipeline::forward;
use crate::pipeline::inject::Outbound;
use axum::response::Response;
use writ_providers::ROUTES;

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

fn call_info() -> CallInfo {
    CallInfo {
        dialect: writ_providers::RouteSpec::find("/v1/chat/completions")
            .unwrap()
            .dialect(),
        request_bytes: 400,
        drop_usage_chunk: false,
        whole: false,
        held: None,
        sent: Instant::now(),
    }
}

/// The context of a request by `demo` for `gpt-4o` on `openai`.
fn ctx(f: &Fixture) -> RequestCtx {
    let mut ctx = RequestCtx::new(&f.gw, ROUTES[0], None);
    ctx.id.token_id = Some("tok-1".into());
    ctx.id.tenant = Some("default".into());
    ctx.id.agent = Some("demo".into());
    ctx.id.upstream = Some("openai".into());
    ctx.id.model = Some("gpt-4o".into());
    ctx
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

/// The meter and redact phases' result for one call answered with `response`, and the
/// request's context after them (its answer measured, its audit record still owed).
async fn meter(
    f: &Fixture,
    listener: &TcpListener,
    response: &[u8],
) -> (Result<Response, GatewayError>, RequestCtx) {
    let upstream = &f.gw.tenancy.declared().upstreams["openai"].clone();
    let mut ctx = ctx(f);
    let call = async {
        let request = http::Request::get(format!("{}/v1/chat/completions", upstream.base))
            .body(Body::empty())
            .unwrap();
        let response = forward::send(upstream, Outbound(request)).await?;
        let answer = read(&f.gw, &mut ctx, upstream, call_info(), response).await?;
        let response = crate::pipeline::redact::response(&f.gw, &ctx, answer).await?;
        // The client reads the whole body, as a real one would.
        let (parts, body) = response.into_parts();
        let bytes = body.collect().await.unwrap().to_bytes();
        Ok(Response::from_parts(parts, Body::from(bytes)))
    };
    let (_conn, result) = tokio::join!(answer(listener, response), call);
    (result, ctx)
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
    let (result, ctx) = meter(
        &f,
        &listener,
        &http_response("200 OK", "application/json", &body),
    )
    .await;
    let response = result.unwrap();
    assert!(ctx.answer.is_some(), "the call is measured");
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
    let (result, ctx) = meter(
        &f,
        &listener,
        &http_response("503 Service Unavailable", "text/plain", KEY),
    )
    .await;
    assert!(matches!(
        result,
        Err(GatewayError::UpstreamStatus { status: 503, ref upstream }) if upstream == "openai"
    ));
    assert!(ctx.answer.is_some(), "the call is measured");
    let record = &f.gw.recent_usage()[0];
    assert_eq!((record.status, record.usage), (503, Usage::default()));
}

#[tokio::test]
async fn a_refused_upstream_credential_is_not_passed_on() {
    let (f, listener) = gateway("").await;
    let (result, ctx) = meter(
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
    // The audit record will say what the client was answered: 502, not the upstream's 401.
    assert_eq!(ctx.answer.map(|a| a.status), Some(502));
}

#[tokio::test]
async fn a_success_that_is_not_json_is_refused_as_invalid_and_recorded_cut() {
    let (f, listener) = gateway("").await;
    let (result, ctx) = meter(
        &f,
        &listener,
        &http_response("200 OK", "text/html", "<html>maintenance</html>"),
    )
    .await;
    assert!(matches!(result, Err(GatewayError::UpstreamInvalid)));
    assert!(ctx.answer.is_some(), "the call is measured");
    assert_eq!(f.gw.recent_usage()[0].outcome, Outcome::UpstreamCut);
}

#[tokio::test]
async fn an_encoded_answer_is_refused_as_invalid_whatever_its_status() {
    for status in ["200 OK", "400 Bad Request"] {
        let (f, listener) = gateway("").await;
        let mut response = http_response(status, "application/json", "{}");
        let at = response.windows(2).position(|w| w == b"\r\n").unwrap() + 2;
        response.splice(at..at, b"content-encoding: gzip\r\n".iter().copied());
        let (result, ctx) = meter(&f, &listener, &response).await;
        assert!(
            matches!(result, Err(GatewayError::UpstreamInvalid)),
            "{status}"
        );
        assert!(ctx.answer.is_some(), "the call is measured");
        assert_eq!(f.gw.recent_usage()[0].outcome, Outcome::UpstreamCut);
    }
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
    let id = ctx(&f).id.clone();
    let mut info = call_info();
    let (answer, _limits) = settle(
        &f.gw,
        &id,
        &mut info,
        StatusCode::OK,
        None,
        80,
        Outcome::Completed,
    );
    let record = &f.gw.recent_usage()[0];
    assert!(record.estimated);
    assert_eq!(
        (record.usage.input_tokens, record.usage.output_tokens),
        (estimate_tokens(400), estimate_tokens(80))
    );
    assert!(answer.estimated);
    assert_eq!(answer.usage, record.usage);
    // Nothing sent and nothing received: nothing to estimate.
    info.request_bytes = 0;
    let _settled = settle(
        &f.gw,
        &id,
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
        upstream: f.gw.tenancy.declared().upstreams["openai"].clone(),
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
    let id = ctx(&f).id.clone();
    let mut info = call_info();
    let limits = f.gw.tenancy.snapshot().limits.clone();
    info.held = crate::pipeline::limit::reserve(&f.gw, &limits, &writ, &target, &facts, 400)
        .await
        .unwrap();
    assert!(info.held.is_some());
    let (answer, limits) = settle(
        &f.gw,
        &id,
        &mut info,
        StatusCode::SERVICE_UNAVAILABLE,
        None,
        0,
        Outcome::Completed,
    );
    let (_, actual) = limits.0.as_ref().unwrap();
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
    assert_eq!(answer.status, 502);
    assert_eq!(answer.usage.input_tokens, 0);
}

#[test]
fn frames_are_gathered_in_order_and_a_lone_frame_is_not_copied() {
    let lone = Bytes::from_static(b"{\"usage\":{}}");
    let mut one = Gathered::default();
    one.push(lone.clone());
    let kept = one.into_bytes();
    assert_eq!(kept.as_ptr(), lone.as_ptr(), "the frame itself, not a copy");
    let mut many = Gathered::default();
    for part in ["{\"a\":", "1,", "\"b\":2}"] {
        many.push(Bytes::from(part));
    }
    assert_eq!(many.len(), 13);
    assert_eq!(&many.into_bytes()[..], b"{\"a\":1,\"b\":2}");
    assert!(Gathered::default().into_bytes().is_empty());
}
