//! Each mock over HTTP refuses what its provider refuses: a credential in any header but
//! the provider's own, or a near miss of the key, and a body of the wrong shape.
#![allow(clippy::unwrap_used)]

use serde_json::{Value, json};
use writ_mock::{MockKey, MockServer};

const KEY: &str = "sk-mock-test-0123456789abcdef";
const CHAT: &str = r#"{"model":"gpt-4o-mini","messages":[{"role":"user","content":"hi there"}]}"#;
const CLAUDE: &str =
    r#"{"model":"claude-sonnet-4","max_tokens":50,"messages":[{"role":"user","content":"hi"}]}"#;
const GEMINI: &str = r#"{"contents":[{"role":"user","parts":[{"text":"hi"}]}]}"#;

async fn post(url: String, headers: &[(&str, &str)], body: &str) -> (u16, Value) {
    let mut request = reqwest::Client::new().post(url).body(body.to_string());
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    let response = request.send().await.unwrap();
    let status = response.status().as_u16();
    let text = response.text().await.unwrap();
    (
        status,
        serde_json::from_str(&text).unwrap_or(Value::String(text)),
    )
}

#[tokio::test]
async fn openai_wants_exactly_bearer_and_the_key() {
    let mock = MockServer::start(MockKey::new(KEY)).await.unwrap();
    let url = || format!("{}/v1/chat/completions", mock.base_url());
    let bearer = format!("Bearer {KEY}");
    for headers in [
        vec![],
        vec![("authorization", KEY)],
        vec![("authorization", "Bearer sk-mock-test-0123456789abcdeX")],
        vec![("authorization", "bearer sk-mock-test-0123456789abcdef")],
        vec![("x-api-key", KEY)],
    ] {
        let (status, v) = post(url(), &headers, CHAT).await;
        assert_eq!(status, 401, "{headers:?}");
        assert_eq!(v["error"]["code"], "invalid_api_key");
    }
    let (status, v) = post(url(), &[("authorization", &bearer)], CHAT).await;
    assert_eq!(status, 200, "{v}");
    assert_eq!(v["object"], "chat.completion");
    assert!(
        v["choices"][0]["message"]["content"]
            .as_str()
            .unwrap()
            .ends_with("hi there")
    );
}

#[tokio::test]
async fn openai_refuses_a_body_of_the_wrong_shape_naming_the_field() {
    let mock = MockServer::start(MockKey::new(KEY)).await.unwrap();
    let bearer = format!("Bearer {KEY}");
    let url = || format!("{}/v1/chat/completions", mock.base_url());
    for (body, param) in [
        (
            r#"{"messages":[{"role":"user","content":"x"}]}"#,
            json!("model"),
        ),
        (r#"{"model":"m","messages":[]}"#, json!("messages")),
        (r#"{"model":"m","messages":"hi"}"#, json!("messages")),
        (
            r#"{"model":"m","messages":[{"role":"wizard","content":"x"}]}"#,
            json!("messages[0].role"),
        ),
        (
            r#"{"model":"m","messages":[{"role":"user"}],"max_tokens":"9"}"#,
            json!("max_tokens"),
        ),
        (
            r#"{"model":"m","messages":[{"role":"user"}],"stream":1}"#,
            json!("stream"),
        ),
        (r#"[1]"#, Value::Null),
    ] {
        let (status, v) = post(url(), &[("authorization", &bearer)], body).await;
        assert_eq!(status, 400, "{body}");
        assert_eq!(v["error"]["type"], "invalid_request_error", "{body}");
        assert_eq!(v["error"]["param"], param, "{body}");
    }
    let embeddings = format!("{}/v1/embeddings", mock.base_url());
    let (status, v) = post(
        embeddings,
        &[("authorization", &bearer)],
        r#"{"model":"m","input":[]}"#,
    )
    .await;
    assert_eq!((status, &v["error"]["param"]), (400, &json!("input")));
}

#[tokio::test]
async fn anthropic_wants_x_api_key_and_a_version() {
    let mock = MockServer::start(MockKey::new(KEY)).await.unwrap();
    let url = || format!("{}/v1/messages", mock.base_url());
    let bearer = format!("Bearer {KEY}");
    let (status, v) = post(
        url(),
        &[
            ("authorization", &bearer),
            ("anthropic-version", "2023-06-01"),
        ],
        CLAUDE,
    )
    .await;
    assert_eq!(
        (status, &v["error"]["type"]),
        (401, &json!("authentication_error"))
    );
    let (status, v) = post(url(), &[("x-api-key", KEY)], CLAUDE).await;
    assert_eq!(
        (status, &v["error"]["type"]),
        (400, &json!("invalid_request_error"))
    );
    let ok = [("x-api-key", KEY), ("anthropic-version", "2023-06-01")];
    let no_cap = r#"{"model":"m","messages":[{"role":"user","content":"x"}]}"#;
    let (status, v) = post(url(), &ok, no_cap).await;
    assert_eq!(status, 400, "Anthropic requires max_tokens: {v}");
    let (status, v) = post(url(), &ok, CLAUDE).await;
    assert_eq!(status, 200, "{v}");
    assert_eq!(v["type"], "message");
    assert!(v["usage"]["output_tokens"].as_u64().unwrap() > 0);
}

#[tokio::test]
async fn gemini_wants_x_goog_api_key_and_streams_only_as_sse() {
    let mock = MockServer::start(MockKey::new(KEY)).await.unwrap();
    let base = mock.base_url();
    let whole = format!("{base}/v1beta/models/gemini-2.0-flash:generateContent");
    let (status, v) = post(
        whole.clone(),
        &[("authorization", &format!("Bearer {KEY}"))],
        GEMINI,
    )
    .await;
    assert_eq!(
        (status, &v["error"]["status"]),
        (400, &json!("INVALID_ARGUMENT"))
    );
    let (status, v) = post(whole.clone(), &[("x-goog-api-key", KEY)], GEMINI).await;
    assert_eq!(status, 200, "{v}");
    assert!(v["usageMetadata"]["totalTokenCount"].as_u64().unwrap() > 0);
    let (status, _) = post(whole, &[("x-goog-api-key", KEY)], r#"{"contents":{}}"#).await;
    assert_eq!(status, 400);
    let streamed = format!("{base}/v1beta/models/gemini-2.0-flash:streamGenerateContent");
    let (status, _) = post(streamed.clone(), &[("x-goog-api-key", KEY)], GEMINI).await;
    assert_eq!(status, 400, "without alt=sse");
    let (status, body) = post(
        format!("{streamed}?alt=sse"),
        &[("x-goog-api-key", KEY)],
        GEMINI,
    )
    .await;
    assert_eq!(status, 200);
    assert!(body.as_str().unwrap().starts_with("data: "), "{body}");
}

#[tokio::test]
async fn azure_wants_api_key_and_api_version_and_answers_as_the_deployment() {
    let mock = MockServer::start(MockKey::new(KEY)).await.unwrap();
    let base = mock.base_url();
    let path = format!("{base}/openai/deployments/prod-4o/chat/completions");
    let body = r#"{"messages":[{"role":"user","content":"x"}]}"#;
    let (status, _) = post(
        format!("{path}?api-version=2024-10-21"),
        &[("authorization", &format!("Bearer {KEY}"))],
        body,
    )
    .await;
    assert_eq!(status, 401);
    let (status, _) = post(path.clone(), &[("api-key", KEY)], body).await;
    assert_eq!(status, 404, "without api-version");
    let (status, v) = post(
        format!("{path}?api-version=2024-10-21"),
        &[("api-key", KEY)],
        body,
    )
    .await;
    assert_eq!(status, 200, "{v}");
    assert_eq!(v["model"], "prod-4o");
}

#[tokio::test]
async fn the_key_never_shows_in_debug_output() {
    let key = writ_mock::random_key();
    assert!(key.expose().starts_with("sk-mock-") && key.expose().len() == 8 + 48);
    assert_ne!(key, writ_mock::random_key());
    assert!(!format!("{key:?}").contains(key.expose()));
    let mock = MockServer::start(key.clone()).await.unwrap();
    assert_eq!(mock.key(), &key);
    assert!(mock.base_url().starts_with("http://127.0.0.1:"));
}
