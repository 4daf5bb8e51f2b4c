//! Errors a person can act on: a denial says what to change (the largest output cap in
//! the caller's own field name) and keeps the failed check in `detail`; a provider's
//! refusal of the gateway's key is a 502 `upstream_auth_failed` naming the upstream, its
//! body never passed on; an unreachable upstream is named with the cause class; and each
//! API family's routes answer in that family's error shape.
#![allow(clippy::unwrap_used)]

use reqwest::StatusCode;
use serde_json::{Value, json};
use writ_testkit::{Behavior, MockUpstream, Script, ScriptEnd, TestGateway, closed_port_url};

const KEY: &str = "sk-upstream-actionable-0123456789abcdef";
const GRANTS: &str = r#"[
  {"type":"writ:llm","upstream":"openai","max_output_tokens":500},
  {"type":"writ:llm","upstream":"claude","max_output_tokens":500},
  {"type":"writ:llm","upstream":"gemini","max_output_tokens":500}]"#;

fn upstream(name: &str, kind: &str, base_url: &str, extra: &str) -> String {
    format!(
        "[upstreams.{name}]\nkind = \"{kind}\"\nbase_url = \"{base_url}\"\napi_key = \"{KEY}\"\n{extra}\n"
    )
}

/// One gateway with an OpenAI, an Anthropic and a Gemini upstream, all on `base_url`.
async fn three_families(base_url: &str) -> TestGateway {
    let private = "allow_private_network = true";
    TestGateway::start(&format!(
        "{}{}{}",
        upstream("openai", "openai", base_url, private),
        upstream("claude", "anthropic", base_url, private),
        upstream("gemini", "gemini", base_url, private),
    ))
    .await
}

fn chat(extra: Value) -> Value {
    let mut body = json!({"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}]});
    for (k, v) in extra.as_object().unwrap() {
        body[k] = v.clone();
    }
    body
}

async fn openai(gw: &TestGateway, writ: &str, path: &str, body: &Value) -> (StatusCode, Value) {
    let resp = reqwest::Client::new()
        .post(gw.url(path))
        .bearer_auth(writ)
        .json(body)
        .send()
        .await
        .unwrap();
    (resp.status(), resp.json().await.unwrap())
}

async fn anthropic(gw: &TestGateway, writ: Option<&str>, max_tokens: u64) -> (StatusCode, Value) {
    let mut req = reqwest::Client::new()
        .post(gw.url("/v1/messages"))
        .header("anthropic-version", "2023-06-01")
        .json(
            &json!({"model": "claude-sonnet-4", "max_tokens": max_tokens,
            "messages": [{"role": "user", "content": "hi"}]}),
        );
    if let Some(writ) = writ {
        req = req.header("x-api-key", writ);
    }
    let resp = req.send().await.unwrap();
    (resp.status(), resp.json().await.unwrap())
}

async fn gemini(gw: &TestGateway, writ: Option<&str>, cap: u64) -> (StatusCode, Value) {
    let mut req = reqwest::Client::new()
        .post(gw.url("/v1beta/models/gemini-2.0-flash:generateContent"))
        .json(
            &json!({"contents": [{"role": "user", "parts": [{"text": "hi"}]}],
            "generationConfig": {"maxOutputTokens": cap}}),
        );
    if let Some(writ) = writ {
        req = req.header("x-goog-api-key", writ);
    }
    let resp = req.send().await.unwrap();
    (resp.status(), resp.json().await.unwrap())
}

#[tokio::test]
async fn an_output_cap_denial_names_the_largest_cap_in_the_callers_field() {
    let mock = MockUpstream::start(KEY).await;
    let gw = three_families(&mock.base_url()).await;
    let writ = gw.mint_as(GRANTS, GRANTS, 30);

    for (extra, field) in [
        (json!({"max_tokens": 800}), "max_tokens"),
        (
            json!({"max_completion_tokens": 800}),
            "max_completion_tokens",
        ),
        // No cap at all, where the writ needs one: the API's own field.
        (json!({}), "max_completion_tokens"),
    ] {
        let (status, v) = openai(&gw, &writ, "/v1/chat/completions", &chat(extra.clone())).await;
        assert_eq!(status, StatusCode::FORBIDDEN, "{extra}: {v}");
        let e = &v["error"];
        assert_eq!(e["code"], "grant_denied", "{v}");
        assert_eq!(e["param"], field, "{v}");
        let message = e["message"].as_str().unwrap();
        assert!(
            message.contains(&format!(
                "This writ allows at most 500 output tokens: set {field} ≤ 500"
            )),
            "{message}"
        );
        // The check that failed stays available to whoever debugs it.
        assert!(
            e["detail"].as_str().unwrap().contains("max_output_tokens"),
            "{v}"
        );
    }
    let responses = json!({"model": "gpt-4o-mini", "input": "hi", "max_output_tokens": 501});
    let (status, v) = openai(&gw, &writ, "/v1/responses", &responses).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert!(
        v["error"]["message"]
            .as_str()
            .unwrap()
            .contains("set max_output_tokens ≤ 500"),
        "{v}"
    );

    // Anthropic's and Google's routes say it in their own shapes and field names.
    let (status, v) = anthropic(&gw, Some(&writ), 800).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert_eq!(v["type"], "error", "{v}");
    assert_eq!(v["error"]["type"], "permission_error", "{v}");
    assert!(
        v["error"]["message"]
            .as_str()
            .unwrap()
            .contains("set max_tokens ≤ 500"),
        "{v}"
    );
    let (status, v) = gemini(&gw, Some(&writ), 800).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert_eq!(v["error"]["status"], "PERMISSION_DENIED", "{v}");
    assert_eq!(v["error"]["code"], 403, "{v}");
    assert!(
        v["error"]["message"]
            .as_str()
            .unwrap()
            .contains("set generationConfig.maxOutputTokens ≤ 500"),
        "{v}"
    );

    // Following the advice works.
    let (status, v) = openai(
        &gw,
        &writ,
        "/v1/chat/completions",
        &chat(json!({"max_tokens": 500})),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{v}");
    assert_eq!(anthropic(&gw, Some(&writ), 500).await.0, StatusCode::OK);
}

#[tokio::test]
async fn other_denials_say_what_was_asked_and_who_can_lift_them() {
    let mock = MockUpstream::start(KEY).await;
    let gw = three_families(&mock.base_url()).await;
    let narrow = r#"{"type":"writ:llm","upstream":"openai","models":["gpt-4o-mini"]}"#;
    let wide = r#"{"type":"writ:llm","upstream":"openai"}"#;
    let gpt4o = chat(json!({"model": "gpt-4o"}));

    // Refused by the grants asked for at mint time: mint another writ.
    let writ = gw.mint_as(wide, narrow, 30);
    let (status, v) = openai(&gw, &writ, "/v1/chat/completions", &gpt4o).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let message = v["error"]["message"].as_str().unwrap();
    assert!(
        message.contains("does not allow chat with model `gpt-4o` on upstream `openai`")
            && message.contains("mint a writ whose grants"),
        "{message}"
    );
    assert!(!message.contains("output tokens"), "{message}");
    assert!(
        v["error"]["detail"].as_str().unwrap().contains("block 1"),
        "{v}"
    );

    // Refused by the agent's ceiling: only the operator can widen it.
    let writ = gw.mint_as(narrow, wide, 30);
    let (_, v) = openai(&gw, &writ, "/v1/chat/completions", &gpt4o).await;
    let message = v["error"]["message"].as_str().unwrap();
    assert!(
        message.contains("ceiling") && message.contains("operator"),
        "{message}"
    );
}

/// An upstream answering `status` with a body that echoes the key it was given.
async fn refusing(status: u16) -> MockUpstream {
    let body = format!(
        r#"{{"error":{{"message":"Incorrect API key provided: {KEY}","type":"invalid_request_error","code":"invalid_api_key"}}}}"#
    );
    MockUpstream::start_scripted(
        KEY,
        Script {
            status,
            content_type: "application/json",
            chunks: vec![body.into_bytes()],
            then: ScriptEnd::End,
        },
    )
    .await
}

#[tokio::test]
async fn a_refused_provider_key_is_the_operators_problem_and_its_body_stays_upstream() {
    for status in [401, 403] {
        let mock = refusing(status).await;
        let gw = three_families(&mock.base_url()).await;
        let writ = gw.mint_as(GRANTS, GRANTS, 30);
        let resp = reqwest::Client::new()
            .post(gw.url("/v1/chat/completions"))
            .bearer_auth(&writ)
            .json(&chat(json!({"max_tokens": 10})))
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), StatusCode::BAD_GATEWAY);
        let text = resp.text().await.unwrap();
        assert!(
            !text.contains(KEY) && !text.contains("Incorrect API key"),
            "{text}"
        );
        let v: Value = serde_json::from_str(&text).unwrap();
        assert_eq!(v["error"]["code"], "upstream_auth_failed", "{v}");
        assert!(
            v["error"]["message"].as_str().unwrap().contains(&format!(
                "Upstream `openai` refused the gateway's credential ({status}): the operator must fix its key"
            )),
            "{v}"
        );
        // On Anthropic's route, in Anthropic's shape: a server-side error, not the caller's key.
        let (code, v) = anthropic(&gw, Some(&writ), 10).await;
        assert_eq!(code, StatusCode::BAD_GATEWAY);
        assert_eq!(v["error"]["type"], "api_error", "{v}");
        assert_eq!(v["error"]["code"], "upstream_auth_failed", "{v}");
    }
}

async fn unreachable(base_url: &str, extra: &str) -> Value {
    let gw = TestGateway::start(&upstream("openai", "openai", base_url, extra)).await;
    let grant = r#"{"type":"writ:llm","upstream":"openai"}"#;
    let writ = gw.mint_as(grant, grant, 30);
    let (status, v) = openai(&gw, &writ, "/v1/chat/completions", &chat(json!({}))).await;
    assert!(status == StatusCode::BAD_GATEWAY || status == StatusCode::GATEWAY_TIMEOUT);
    assert_eq!(v["error"]["type"], "upstream_error", "{v}");
    v
}

#[tokio::test]
async fn an_unreachable_upstream_is_named_with_the_cause_class() {
    let mock = MockUpstream::start(KEY).await;
    let hanging = MockUpstream::start_with(KEY, Behavior::Hang).await;
    let tls_to_plain = mock.base_url().replace("http://", "https://");
    let egress = mock.base_url().replace("127.0.0.1", "localhost");
    let private = "allow_private_network = true";
    for (base_url, extra, code, says) in [
        (
            closed_port_url(),
            private,
            "upstream_unreachable",
            "TCP connection",
        ),
        (
            "https://writ-test-no-such-host.invalid".to_string(),
            "",
            "upstream_unreachable",
            "DNS",
        ),
        (
            tls_to_plain,
            private,
            "upstream_unreachable",
            "TLS handshake",
        ),
        (egress, "", "upstream_unreachable", "private addresses"),
        (
            hanging.base_url(),
            "allow_private_network = true\ntimeout = \"200ms\"",
            "upstream_timeout",
            "did not answer within 1s",
        ),
    ] {
        let v = unreachable(&base_url, extra).await;
        assert_eq!(v["error"]["code"], code, "{base_url}: {v}");
        let message = v["error"]["message"].as_str().unwrap();
        assert!(
            message.starts_with("Upstream `openai` ") && message.contains(says),
            "{base_url}: {message}"
        );
    }
}

#[tokio::test]
async fn each_family_answers_in_its_own_error_shape() {
    let mock = MockUpstream::start(KEY).await;
    let gw = three_families(&mock.base_url()).await;

    let (status, v) = anthropic(&gw, None, 10).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(v["type"], "error", "{v}");
    assert_eq!(v["error"]["type"], "authentication_error", "{v}");
    assert_eq!(v["error"]["code"], "missing_writ", "{v}");
    assert!(v["error"]["message"].is_string());

    let (status, v) = gemini(&gw, None, 10).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(v["error"]["code"], 401, "{v}");
    assert_eq!(v["error"]["status"], "UNAUTHENTICATED", "{v}");
    assert_eq!(
        v["error"]["details"][0]["metadata"]["code"], "missing_writ",
        "{v}"
    );

    let (status, v) = openai(
        &gw,
        "writ_garbage",
        "/v1/chat/completions",
        &chat(json!({})),
    )
    .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(v["error"]["type"], "authentication_error", "{v}");
    assert_eq!(v["error"]["code"], "invalid_writ", "{v}");

    // A bad body on Anthropic's route: invalid_request_error, the field named.
    let writ = gw.mint_as(GRANTS, GRANTS, 30);
    let resp = reqwest::Client::new()
        .post(gw.url("/v1/messages"))
        .header("x-api-key", &writ)
        .json(&json!({"model": "claude-sonnet-4", "messages": []}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::BAD_REQUEST);
    let v: Value = resp.json().await.unwrap();
    assert_eq!(v["error"]["type"], "invalid_request_error", "{v}");
    assert_eq!(v["error"]["param"], "max_tokens", "{v}");
}
