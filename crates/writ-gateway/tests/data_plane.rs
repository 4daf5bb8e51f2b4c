//! The data plane end to end: a real gateway, a recording mock upstream, a real HTTP client.
#![allow(clippy::unwrap_used)]

use std::time::Duration;

use futures_util::StreamExt;
use reqwest::StatusCode;
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use writ_testkit::{Behavior, MockUpstream, TestGateway, closed_port_url};

const UPSTREAM_KEY: &str = "sk-upstream-test-0123456789";
const GRANT: &str =
    r#"{"type":"writ:llm","upstream":"demo","actions":["chat"],"models":["gpt-4o-mini"]}"#;

fn config(base_url: &str, timeout: &str) -> String {
    format!(
        "[upstreams.demo]\nkind = \"openai\"\nbase_url = \"{base_url}\"\nallow_private_network = true\napi_key = \"{UPSTREAM_KEY}\"\ntimeout = \"{timeout}\"\n"
    )
}

async fn setup(behavior: Behavior) -> (MockUpstream, TestGateway) {
    let upstream = MockUpstream::start_with(UPSTREAM_KEY, behavior).await;
    let gateway = TestGateway::start(&config(&upstream.base_url(), "30s")).await;
    (upstream, gateway)
}

fn chat_body() -> Value {
    json!({"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hello"}]})
}

async fn post(gw: &TestGateway, writ: &str, body: &Value) -> reqwest::Response {
    reqwest::Client::new()
        .post(gw.url("/v1/chat/completions"))
        .bearer_auth(writ)
        .json(body)
        .send()
        .await
        .unwrap()
}

/// Asserts an OpenAI-shaped error with this status and code; returns the message.
async fn expect_error(resp: reqwest::Response, status: StatusCode, code: &str) -> String {
    assert_eq!(resp.status(), status);
    let v: Value = resp.json().await.unwrap();
    assert_eq!(v["error"]["code"], code, "{v}");
    assert!(v["error"]["type"].is_string(), "{v}");
    v["error"]["message"].as_str().unwrap().to_string()
}

#[tokio::test]
async fn chat_completion_injects_credential_and_strips_writ() {
    let (upstream, gw) = setup(Behavior::Normal).await;
    let writ = gw.mint("demo", GRANT, 30);
    let resp = reqwest::Client::new()
        .post(gw.url("/v1/chat/completions"))
        .bearer_auth(&writ)
        .header("x-custom-trace", "keep-me")
        .header("x-smuggled", format!("copy of {writ}"))
        .header("cookie", "session=1")
        .json(&chat_body())
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    let v: Value = resp.json().await.unwrap();
    assert_eq!(v["object"], "chat.completion");
    assert!(v["usage"]["total_tokens"].as_u64().unwrap() > 0);

    let seen = upstream.requests();
    assert_eq!(seen.len(), 1);
    let req = &seen[0];
    assert_eq!(
        req.headers["authorization"],
        format!("Bearer {UPSTREAM_KEY}")
    );
    assert_eq!(req.headers["x-custom-trace"], "keep-me");
    assert!(req.headers.get("cookie").is_none());
    for (name, value) in &req.headers {
        let value = String::from_utf8_lossy(value.as_bytes());
        assert!(!value.contains(&writ), "header {name} carries the writ");
        assert!(!value.contains("writ_"), "header {name} carries a writ");
    }
    let body = String::from_utf8_lossy(&req.body);
    assert!(!body.contains("writ_"));
    assert_eq!(
        serde_json::from_slice::<Value>(&req.body).unwrap(),
        chat_body()
    );
}

#[tokio::test]
async fn sdk_credential_headers_are_accepted() {
    let (upstream, gw) = setup(Behavior::Normal).await;
    let writ = gw.mint("demo", GRANT, 30);
    for header in ["x-api-key", "api-key", "x-goog-api-key"] {
        let resp = reqwest::Client::new()
            .post(gw.url("/v1/chat/completions"))
            .header(header, &writ)
            .json(&chat_body())
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), StatusCode::OK, "{header}");
    }
    for req in upstream.requests() {
        for h in ["x-api-key", "api-key", "x-goog-api-key"] {
            assert!(req.headers.get(h).is_none(), "{h} forwarded");
        }
    }
}

#[tokio::test]
async fn writ_expires_on_the_gateway_clock() {
    let (_upstream, gw) = setup(Behavior::Normal).await;
    let writ = gw.mint("demo", GRANT, 30);
    gw.clock().advance(Duration::from_secs(30));
    assert_eq!(
        post(&gw, &writ, &chat_body()).await.status(),
        StatusCode::OK
    );
    gw.clock().advance(Duration::from_secs(1));
    let resp = post(&gw, &writ, &chat_body()).await;
    assert!(resp.headers().contains_key("www-authenticate"));
    expect_error(resp, StatusCode::UNAUTHORIZED, "expired_writ").await;
}

#[tokio::test]
async fn ungranted_model_is_forbidden_naming_the_check() {
    let (upstream, gw) = setup(Behavior::Normal).await;
    let writ = gw.mint("demo", GRANT, 30);
    let mut body = chat_body();
    body["model"] = json!("gpt-4o");
    let resp = post(&gw, &writ, &body).await;
    assert_eq!(resp.status(), StatusCode::FORBIDDEN);
    let v: Value = resp.json().await.unwrap();
    assert_eq!(v["error"]["code"], "grant_denied", "{v}");
    // The message says what was asked and what to do; the failed check is in `detail`.
    let msg = v["error"]["message"].as_str().unwrap();
    assert!(msg.contains("model `gpt-4o`"), "{msg}");
    let detail = v["error"]["detail"].as_str().unwrap();
    assert!(
        detail.contains("block 1") && detail.contains("model("),
        "{detail}"
    );
    assert!(!v.to_string().contains("writ_"));
    assert!(
        upstream.requests().is_empty(),
        "a denied request must not reach the upstream"
    );
}

#[tokio::test]
async fn output_cap_in_grant_is_enforced() {
    let (_upstream, gw) = setup(Behavior::Normal).await;
    let writ = gw.mint(
        "demo",
        r#"{"type":"writ:llm","upstream":"demo","max_output_tokens":100}"#,
        30,
    );
    let mut body = chat_body();
    body["max_tokens"] = json!(100);
    assert_eq!(post(&gw, &writ, &body).await.status(), StatusCode::OK);
    body["max_tokens"] = json!(101);
    expect_error(
        post(&gw, &writ, &body).await,
        StatusCode::FORBIDDEN,
        "grant_denied",
    )
    .await;
}

#[tokio::test]
async fn unknown_routes_and_methods() {
    let (_upstream, gw) = setup(Behavior::Normal).await;
    let client = reqwest::Client::new();
    let resp = client.get(gw.url("/v1/nothing-here")).send().await.unwrap();
    expect_error(resp, StatusCode::NOT_FOUND, "not_found").await;
    let resp = client
        .get(gw.url("/v1/chat/completions"))
        .send()
        .await
        .unwrap();
    expect_error(resp, StatusCode::METHOD_NOT_ALLOWED, "method_not_allowed").await;
    let resp = client.get(gw.url("/healthz")).send().await.unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    let writ = gw.mint("demo", GRANT, 30);
    let resp = client
        .post(gw.url("/v1/chat/completions"))
        .bearer_auth(&writ)
        .header("x-writ-upstream", "nope")
        .json(&chat_body())
        .send()
        .await
        .unwrap();
    expect_error(resp, StatusCode::NOT_FOUND, "unknown_upstream").await;
}

#[tokio::test]
async fn unreachable_upstream_is_502() {
    let gw = TestGateway::start(&config(&closed_port_url(), "30s")).await;
    let writ = gw.mint("demo", GRANT, 30);
    expect_error(
        post(&gw, &writ, &chat_body()).await,
        StatusCode::BAD_GATEWAY,
        "upstream_unreachable",
    )
    .await;
}

#[tokio::test]
async fn slow_upstream_is_504() {
    let upstream = MockUpstream::start_with(UPSTREAM_KEY, Behavior::Hang).await;
    let gw = TestGateway::start(&config(&upstream.base_url(), "200ms")).await;
    let writ = gw.mint("demo", GRANT, 30);
    expect_error(
        post(&gw, &writ, &chat_body()).await,
        StatusCode::GATEWAY_TIMEOUT,
        "upstream_timeout",
    )
    .await;
}

#[tokio::test]
async fn streamed_response_is_streamed_not_buffered() {
    let (upstream, gw) = setup(Behavior::HoldStreamAfterFirstEvent).await;
    let writ = gw.mint("demo", GRANT, 30);
    let mut body = chat_body();
    body["stream"] = json!(true);
    body["stream_options"] = json!({"include_usage": true});
    let resp = post(&gw, &writ, &body).await;
    assert_eq!(resp.status(), StatusCode::OK);
    assert_eq!(resp.headers()["content-type"], "text/event-stream");
    let mut stream = resp.bytes_stream();
    // The upstream holds everything after its first event until released: receiving that
    // event now proves the gateway does not wait for the whole body.
    let first = stream.next().await.unwrap().unwrap();
    assert!(first.starts_with(b"data: {"), "{first:?}");
    upstream.release();
    let mut rest = Vec::new();
    while let Some(chunk) = stream.next().await {
        rest.extend_from_slice(&chunk.unwrap());
    }
    let rest = String::from_utf8(rest).unwrap();
    assert!(rest.contains("\"total_tokens\""), "{rest}");
    assert!(rest.ends_with("data: [DONE]\n\n"), "{rest}");
}

/// Appends a narrowing block with biscuit-auth directly, as a holder would.
fn attenuated(writ: &str, root: &writ_token::RootKeyPair) -> String {
    use biscuit_auth::{Biscuit, builder::BlockBuilder};
    let body = writ.strip_prefix("writ_").unwrap();
    let token = Biscuit::from_base64(body, root.public()).unwrap();
    let block = BlockBuilder::new()
        .code(r#"check if method("POST"), path("/v1/chat/completions");"#)
        .unwrap();
    format!("writ_{}", token.append(block).unwrap().to_base64().unwrap())
}

#[tokio::test]
async fn hostile_credentials_get_401_and_the_gateway_keeps_serving() {
    use base64::Engine;
    use base64::engine::general_purpose::URL_SAFE;
    let (upstream, gw) = setup(Behavior::Normal).await;
    let good = gw.mint("demo", GRANT, 30);

    // An attenuated writ works; the same with one byte of its new block flipped does not.
    let narrowed = attenuated(&good, &gw.keys().signing);
    assert_eq!(
        post(&gw, &narrowed, &chat_body()).await.status(),
        StatusCode::OK
    );
    let mut bytes = URL_SAFE
        .decode(narrowed.strip_prefix("writ_").unwrap())
        .unwrap();
    let at = bytes.windows(4).rposition(|w| w == b"POST").unwrap();
    bytes[at] = b'Q';
    let corrupted = format!("writ_{}", URL_SAFE.encode(&bytes));

    let other_root = writ_token::RootKeyPair::generate(writ_token::KeyId(1));
    let ceiling = writ_token::parse_grants(r#"{"type":"writ:llm","upstream":"demo"}"#).unwrap();
    let grants = writ_token::parse_grants(GRANT).unwrap();
    let forged = writ_testkit::mint_with(
        &other_root,
        &ceiling,
        &grants,
        30,
        writ_token::Clock::now(gw.clock()),
    );
    let cases: Vec<(String, &str)> = vec![
        (String::new(), "missing_writ"),
        (format!("writ_{}", "A".repeat(10 * 1024)), "invalid_writ"),
        (
            "writ_aGVsbG8gd29ybGQsIHRoaXMgaXMgbm90IGEgYmlzY3VpdA==".into(),
            "invalid_writ",
        ),
        ("sk-proj-not-a-writ".into(), "invalid_writ"),
        (forged, "invalid_signature"),
        (corrupted, "invalid_signature"),
    ];
    for (credential, code) in &cases {
        let resp = reqwest::Client::new()
            .post(gw.url("/v1/chat/completions"))
            .header("authorization", format!("Bearer {credential}"))
            .json(&chat_body())
            .send()
            .await
            .unwrap();
        let status = resp.status();
        let v: Value = resp.json().await.unwrap();
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{code}: {v}");
        assert_eq!(v["error"]["code"], *code, "{v}");
        let text = v.to_string();
        assert!(credential.is_empty() || !text.contains(credential.as_str()));
    }
    assert_eq!(
        upstream.requests().len(),
        1,
        "only the good attenuated call got through"
    );
    assert_eq!(
        post(&gw, &good, &chat_body()).await.status(),
        StatusCode::OK
    );
}

#[tokio::test]
async fn malformed_bodies_get_400_and_the_gateway_keeps_serving() {
    let (upstream, gw) = setup(Behavior::Normal).await;
    let writ = gw.mint("demo", GRANT, 30);
    let cases: Vec<(&[u8], &str, Option<&str>)> = vec![
        (b"this is not json", "invalid_json", None),
        (b"", "invalid_json", None),
        (b"[]", "invalid_json", None),
        (
            br#"{"model":42,"messages":[]}"#,
            "invalid_type",
            Some("model"),
        ),
        (
            br#"{"model":"gpt-4o-mini","messages":{}}"#,
            "invalid_type",
            Some("messages"),
        ),
        (
            br#"{"model":"gpt-4o-mini","messages":[],"max_tokens":"ten"}"#,
            "invalid_type",
            Some("max_tokens"),
        ),
        (
            br#"{"model":"gpt-4o-mini","messages":[],"stream":"yes"}"#,
            "invalid_type",
            Some("stream"),
        ),
        (br#"{"messages":[]}"#, "missing_field", Some("model")),
    ];
    for (body, code, param) in cases {
        let resp = reqwest::Client::new()
            .post(gw.url("/v1/chat/completions"))
            .bearer_auth(&writ)
            .header("content-type", "application/json")
            .body(body.to_vec())
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), StatusCode::BAD_REQUEST);
        let v: Value = resp.json().await.unwrap();
        assert_eq!(v["error"]["code"], code, "{v}");
        assert_eq!(v["error"]["param"].as_str(), param, "{v}");
    }
    assert!(upstream.requests().is_empty());
    assert_eq!(
        post(&gw, &writ, &chat_body()).await.status(),
        StatusCode::OK
    );
}

#[tokio::test]
async fn oversized_body_is_refused_before_it_is_read() {
    let (upstream, gw) = setup(Behavior::Normal).await;
    let writ = gw.mint("demo", GRANT, 30);
    // Declare 20 MB, send only the first kilobyte, and wait for the answer: it must come
    // without the gateway waiting for the rest.
    let mut conn = tokio::net::TcpStream::connect(gw.addr()).await.unwrap();
    let head = format!(
        "POST /v1/chat/completions HTTP/1.1\r\nhost: x\r\nauthorization: Bearer {writ}\r\n\
         content-type: application/json\r\ncontent-length: {}\r\n\r\n",
        20 * 1024 * 1024
    );
    conn.write_all(head.as_bytes()).await.unwrap();
    conn.write_all(&[b' '; 1024]).await.unwrap();
    let mut response = vec![0u8; 4096];
    let n = conn.read(&mut response).await.unwrap();
    let text = String::from_utf8_lossy(&response[..n]);
    assert!(text.starts_with("HTTP/1.1 413"), "{text}");
    assert!(text.contains("body_too_large"), "{text}");
    // The body was left unread: the client is told not to send another request on it.
    assert!(
        text.to_ascii_lowercase()
            .contains("\r\nconnection: close\r\n"),
        "{text}"
    );

    // Chunked, undeclared: refused once it passes the limit.
    let big = vec![b'x'; 11 * 1024 * 1024];
    let stream = futures_util::stream::iter(
        big.chunks(64 * 1024)
            .map(|c| Ok::<_, std::io::Error>(c.to_vec()))
            .collect::<Vec<_>>(),
    );
    let resp = reqwest::Client::new()
        .post(gw.url("/v1/chat/completions"))
        .bearer_auth(&writ)
        .body(reqwest::Body::wrap_stream(stream))
        .send()
        .await;
    if let Ok(resp) = resp {
        expect_error(resp, StatusCode::PAYLOAD_TOO_LARGE, "body_too_large").await;
    }
    assert!(upstream.requests().is_empty());
    assert_eq!(
        post(&gw, &writ, &chat_body()).await.status(),
        StatusCode::OK
    );
}

#[tokio::test]
async fn writ_in_url_is_refused() {
    let (upstream, gw) = setup(Behavior::Normal).await;
    let writ = gw.mint("demo", GRANT, 30);
    let resp = reqwest::Client::new()
        .post(gw.url(&format!("/v1/chat/completions?api_key={writ}")))
        .bearer_auth(&writ)
        .json(&chat_body())
        .send()
        .await
        .unwrap();
    let msg = expect_error(resp, StatusCode::BAD_REQUEST, "credential_in_url").await;
    assert!(!msg.contains(&writ));
    assert!(upstream.requests().is_empty());
}

#[tokio::test]
async fn single_use_writ_works_once() {
    let (upstream, gw) = setup(Behavior::Normal).await;
    let writ = gw.mint(
        "demo",
        r#"{"type":"writ:llm","upstream":"demo","models":["gpt-4o-mini"],"single_use":true}"#,
        30,
    );
    // A refused attempt does not use it up.
    let mut other = chat_body();
    other["model"] = json!("gpt-4o");
    expect_error(
        post(&gw, &writ, &other).await,
        StatusCode::FORBIDDEN,
        "grant_denied",
    )
    .await;
    assert_eq!(
        post(&gw, &writ, &chat_body()).await.status(),
        StatusCode::OK
    );
    expect_error(
        post(&gw, &writ, &chat_body()).await,
        StatusCode::FORBIDDEN,
        "writ_already_used",
    )
    .await;
    // An attenuated copy is the same writ.
    let copy = writ_token::attenuate(&writ, &writ_token::parse_grants(GRANT).unwrap()).unwrap();
    expect_error(
        post(&gw, &copy, &chat_body()).await,
        StatusCode::FORBIDDEN,
        "writ_already_used",
    )
    .await;
    assert_eq!(upstream.requests().len(), 1);
    // A holder can make any writ single use.
    let plain = gw.mint("demo", GRANT, 30);
    let once = writ_token::attenuate(
        &plain,
        &writ_token::parse_grants(r#"{"type":"writ:llm","upstream":"demo","single_use":true}"#)
            .unwrap(),
    )
    .unwrap();
    assert_eq!(
        post(&gw, &once, &chat_body()).await.status(),
        StatusCode::OK
    );
    expect_error(
        post(&gw, &once, &chat_body()).await,
        StatusCode::FORBIDDEN,
        "writ_already_used",
    )
    .await;
}

#[tokio::test]
async fn upstreams_resolving_to_private_addresses_are_refused() {
    let upstream = MockUpstream::start(UPSTREAM_KEY).await;
    let port = upstream.base_url().rsplit(':').next().unwrap().to_string();
    // `localhost` resolves to loopback: refused at connect time unless allowed.
    let gw = TestGateway::start(&format!(
        "[upstreams.demo]\nkind = \"openai\"\nbase_url = \"http://localhost:{port}\"\napi_key = \"{UPSTREAM_KEY}\"\n"
    ))
    .await;
    let writ = gw.mint("demo", GRANT, 30);
    expect_error(
        post(&gw, &writ, &chat_body()).await,
        StatusCode::BAD_GATEWAY,
        "upstream_unreachable",
    )
    .await;
    assert!(
        upstream.requests().is_empty(),
        "nothing reached the private address"
    );
    let allowed = TestGateway::start(&format!(
        "[upstreams.demo]\nkind = \"openai\"\nbase_url = \"http://localhost:{port}\"\nallow_private_network = true\napi_key = \"{UPSTREAM_KEY}\"\n"
    ))
    .await;
    let writ = allowed.mint("demo", GRANT, 30);
    assert_eq!(
        post(&allowed, &writ, &chat_body()).await.status(),
        StatusCode::OK
    );
}
