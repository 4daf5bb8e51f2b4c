//! Strict JSON end to end: a body holding a key twice in one object is refused on every
//! route before anything is authorized or forwarded (the gateway and the upstream could
//! read different copies), as are grants with a repeated key at the token endpoint and
//! admin bodies; and the prompt-secret scan reads a body's strings decoded, as the
//! upstream does, so `\u`-escaped keys are found like plain ones.
#![allow(clippy::unwrap_used)]

use reqwest::StatusCode;
use serde_json::{Value, json};
use writ_testkit::{MockUpstream, OAuthClient, TestGateway};

const KEY: &str = "upstream-key-0123456789";
const BEDROCK_MODEL: &str = "amazon.nova-lite-v1";
/// What a leaked OpenAI project key looks like (a made-up one).
const LEAKED: &str = "sk-proj-Xq7Lm2Vt9Rb4Nc8Kd1Wf6Hj3Pz5Ys0Ga7Ue2Ti9Ob4";

/// One upstream of each kind, all on one mock (a refused request reaches none of them).
async fn setup() -> (MockUpstream, TestGateway) {
    let upstream = MockUpstream::start(KEY).await;
    let base = upstream.base_url();
    let common =
        format!("base_url = \"{base}\"\nallow_private_network = true\napi_key = \"{KEY}\"");
    let config = format!(
        "[upstreams.demo]\nkind = \"openai\"\n{common}\n\
         [upstreams.claude]\nkind = \"anthropic\"\n{common}\n\
         [upstreams.gemini]\nkind = \"gemini\"\n{common}\n\
         [upstreams.azure]\nkind = \"azure\"\n{common}\ndeployments = {{ \"prod-4o\" = \"gpt-4o\" }}\n\
         [upstreams.bedrock]\nkind = \"bedrock\"\nregion = \"us-east-1\"\nbase_url = \"{base}\"\nallow_private_network = true\naws_access_key_id = \"AKIDWRITTESTEXAMPLE\"\naws_secret_access_key = \"wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY\"\n\
         [upstreams.travel]\nkind = \"mcp\"\nbase_url = \"{base}/mcp\"\nallow_private_network = true\napi_key = \"{KEY}\"\n\
         [upstreams.crm]\nkind = \"http\"\nbase_url = \"{base}/api\"\nallow_private_network = true\napi_key = \"{KEY}\"\nauth_header = \"x-tool-key\"\n"
    );
    (upstream, TestGateway::start(&config).await)
}

/// Each grant allows the narrow reading of the bodies below: the model, tool or argument
/// the last copy of a repeated key names, which a last-wins parser would authorize.
fn grants() -> String {
    json!([
        {"type": "writ:llm", "upstream": "demo", "models": ["gpt-4o-mini"]},
        {"type": "writ:llm", "upstream": "claude", "models": ["claude-sonnet-4"]},
        {"type": "writ:llm", "upstream": "gemini", "models": ["gemini-2.0-flash"]},
        {"type": "writ:llm", "upstream": "azure", "models": ["gpt-4o"]},
        {"type": "writ:llm", "upstream": "bedrock", "models": [BEDROCK_MODEL]},
        {"type": "writ:tool", "upstream": "travel", "tool": "book_flight",
         "arguments": {"flight": "LH123"}, "additional_arguments": true},
        {"type": "writ:http", "upstream": "crm", "methods": ["POST"], "path": "/v1/bookings"},
    ])
    .to_string()
}

/// Sends `body` as it is, byte for byte (a JSON library would merge or re-escape it).
async fn send(
    gw: &TestGateway,
    writ: &str,
    path: &str,
    header: &str,
    body: &str,
) -> (StatusCode, Value) {
    let value = if header == "authorization" {
        format!("Bearer {writ}")
    } else {
        writ.to_string()
    };
    let resp = reqwest::Client::new()
        .post(gw.url(path))
        .header(header, value)
        .header("content-type", "application/json")
        .body(body.to_string())
        .send()
        .await
        .unwrap();
    let status = resp.status();
    let text = resp.text().await.unwrap();
    (
        status,
        serde_json::from_str(&text).unwrap_or(Value::String(text)),
    )
}

fn mcp_call(params: &str) -> String {
    format!(r#"{{"jsonrpc":"2.0","id":7,"method":"tools/call","params":{params}}}"#)
}

const MESSAGES: &str = r#"[{"role":"user","content":"hi"}]"#;

#[tokio::test]
async fn a_key_given_twice_is_refused_on_every_route_and_nothing_is_forwarded() {
    let (upstream, gw) = setup().await;
    let writ = gw.mint_as(&grants(), &grants(), 30);
    let bedrock = format!("/model/{BEDROCK_MODEL}/converse");
    let cases: Vec<(&str, &str, &str, String, &str)> = vec![
        (
            "openai chat: the writ allows the last model, an upstream may take the first",
            "/v1/chat/completions",
            "authorization",
            format!(r#"{{"model":"gpt-4o","messages":{MESSAGES},"model":"gpt-4o-mini"}}"#),
            "model",
        ),
        (
            "openai chat: a key spelled with an escape is the same key",
            "/v1/chat/completions",
            "authorization",
            format!(r#"{{"model":"gpt-4o","messages":{MESSAGES},"mo\u0064el":"gpt-4o-mini"}}"#),
            "model",
        ),
        (
            "openai chat: deep inside a message",
            "/v1/chat/completions",
            "authorization",
            r#"{"model":"gpt-4o-mini","messages":[{"role":"user","content":"a"},{"role":"user","content":"b","role":"system"}]}"#.to_string(),
            "messages[1].role",
        ),
        (
            "anthropic messages",
            "/v1/messages",
            "x-api-key",
            format!(r#"{{"model":"claude-sonnet-4","max_tokens":100000,"messages":{MESSAGES},"max_tokens":64}}"#),
            "max_tokens",
        ),
        (
            "gemini generateContent",
            "/v1beta/models/gemini-2.0-flash:generateContent",
            "x-goog-api-key",
            r#"{"contents":[{"role":"user","parts":[{"text":"hi"}]}],"generationConfig":{"maxOutputTokens":100000,"maxOutputTokens":64}}"#.to_string(),
            "generationConfig.maxOutputTokens",
        ),
        (
            "azure deployment",
            "/openai/deployments/prod-4o/chat/completions?api-version=2024-10-21",
            "api-key",
            format!(r#"{{"messages":{MESSAGES},"max_tokens":100000,"max_tokens":64}}"#),
            "max_tokens",
        ),
        (
            "bedrock converse",
            &bedrock,
            "authorization",
            r#"{"messages":[{"role":"user","content":[{"text":"hi"}]}],"inferenceConfig":{"maxTokens":100000,"maxTokens":64}}"#.to_string(),
            "inferenceConfig.maxTokens",
        ),
        (
            "mcp: an argument given twice",
            "/mcp/travel",
            "authorization",
            mcp_call(r#"{"name":"book_flight","arguments":{"flight":"LH999","date":"2026-12-01","flight":"LH123"}}"#),
            "params.arguments.flight",
        ),
        (
            "mcp: an argument given twice in different case (one field to a Go tool server)",
            "/mcp/travel",
            "authorization",
            mcp_call(r#"{"name":"book_flight","arguments":{"flight":"LH123","FLIGHT":"LH999"}}"#),
            "params.arguments.FLIGHT",
        ),
        (
            "mcp: the tool named twice",
            "/mcp/travel",
            "authorization",
            mcp_call(r#"{"name":"cancel_flight","arguments":{"flight":"LH123"},"name":"book_flight"}"#),
            "params.name",
        ),
        (
            "http tool with a JSON body",
            "/u/crm/v1/bookings",
            "authorization",
            r#"{"booking":{"seat":"1A","passenger":"Ann","seat":"2B"}}"#.to_string(),
            "booking.seat",
        ),
    ];
    for (what, path, header, body, key_path) in &cases {
        let (status, v) = send(&gw, &writ, path, header, body).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{what}: {v}");
        // Each route answers in its family's error shape; the code is in each.
        let code = v["error"]["details"][0]["metadata"]["code"]
            .as_str()
            .or(v["error"]["code"].as_str())
            .or(v["error"]["data"]["code"].as_str())
            .or(v["code"].as_str());
        assert_eq!(code, Some("duplicate_key"), "{what}: {v}");
        let message = v["error"]["message"]
            .as_str()
            .or(v["message"].as_str())
            .unwrap();
        assert!(
            message.contains(&format!("`{key_path}`")) && message.contains("send each key once"),
            "{what}: {message}"
        );
    }
    assert!(
        upstream.requests().is_empty(),
        "nothing reaches an upstream"
    );

    // The same requests with each key once are served: the refusal is for the repetition.
    for (path, body) in [
        (
            "/v1/chat/completions",
            format!(r#"{{"model":"gpt-4o-mini","messages":{MESSAGES}}}"#),
        ),
        (
            "/mcp/travel",
            mcp_call(
                r#"{"name":"book_flight","arguments":{"date":"2026-12-01","flight":"LH123"}}"#,
            ),
        ),
        (
            "/u/crm/v1/bookings",
            r#"{"booking":{"passenger":"Ann","seat":"2B"}}"#.to_string(),
        ),
    ] {
        let (status, v) = send(&gw, &writ, path, "authorization", &body).await;
        assert_eq!(status, StatusCode::OK, "{path}: {v}");
    }
    assert_eq!(upstream.requests().len(), 3);
}

#[tokio::test]
async fn nesting_deeper_than_the_gateway_reads_is_refused() {
    let (upstream, gw) = setup().await;
    let writ = gw.mint_as(&grants(), &grants(), 30);
    let deep = format!("{}{}", "[".repeat(101), "]".repeat(101));
    let body = format!(r#"{{"model":"gpt-4o-mini","messages":{MESSAGES},"metadata":{deep}}}"#);
    let (status, v) = send(&gw, &writ, "/v1/chat/completions", "authorization", &body).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{v}");
    assert_eq!(v["error"]["code"], "invalid_json", "{v}");
    assert!(upstream.requests().is_empty());
}

/// `text` with every character written as a `\u` escape.
fn all_escaped(text: &str) -> String {
    text.encode_utf16().map(|u| format!("\\u{u:04x}")).collect()
}

#[tokio::test]
async fn escaped_secrets_are_found_as_the_upstream_decodes_them() {
    let (upstream, gw) = setup().await;
    let writ = gw.mint_as(&grants(), &grants(), 30);
    let dashes_escaped = LEAKED.replace('-', "\\u002d");
    let chat = |content: &str| {
        format!(r#"{{"model":"gpt-4o-mini","messages":[{{"role":"user","content":"{content}"}}]}}"#)
    };
    let cases: Vec<(&str, &str, String)> = vec![
        (
            "dashes escaped",
            "/v1/chat/completions",
            chat(&format!("my key is {dashes_escaped}")),
        ),
        (
            "every character escaped",
            "/v1/chat/completions",
            chat(&all_escaped(&format!("my key is {LEAKED}"))),
        ),
        (
            "right after an escaped newline (raw bytes: `\\nsk-…`, no word boundary)",
            "/v1/chat/completions",
            chat(&format!("my key:\\n{LEAKED}")),
        ),
        (
            "in a key name",
            "/v1/chat/completions",
            format!(
                r#"{{"model":"gpt-4o-mini","messages":{MESSAGES},"metadata":{{"{}":"x"}}}}"#,
                all_escaped(LEAKED)
            ),
        ),
        (
            "in an MCP tool argument",
            "/mcp/travel",
            mcp_call(&format!(
                r#"{{"name":"book_flight","arguments":{{"flight":"LH123","note":"{dashes_escaped}"}}}}"#
            )),
        ),
        (
            "in an HTTP tool's JSON body",
            "/u/crm/v1/bookings",
            format!(r#"{{"note":"{}"}}"#, all_escaped(LEAKED)),
        ),
    ];
    for (what, path, body) in &cases {
        let (status, v) = send(&gw, &writ, path, "authorization", body).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{what}: {v}");
        assert_eq!(v["error"]["code"], "secret_in_request", "{what}: {v}");
        assert!(!v.to_string().contains(LEAKED), "{what}: {v}");
    }
    assert!(
        upstream.requests().is_empty(),
        "nothing reaches an upstream"
    );

    // Escapes alone are no finding, and a `"password": "…"` pair in a body with escapes
    // is still found (the decoded text keeps keys, quotes and colons in place).
    let (status, v) = send(
        &gw,
        &writ,
        "/v1/chat/completions",
        "authorization",
        &chat("line one\\nline two \\u002d \\\"quoted\\\""),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{v}");
    let body = r#"{"model":"gpt-4o-mini","messages":[{"role":"user","content":"a\nb"}],"metadata":{"pass\u0077ord":"Tr0ub4dor-and-3-horses"}}"#;
    let (status, v) = send(&gw, &writ, "/v1/chat/completions", "authorization", body).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{v}");
    assert_eq!(v["error"]["code"], "secret_in_request", "{v}");
    // A body that is not JSON is scanned as it is.
    let resp = reqwest::Client::new()
        .post(gw.url("/u/crm/v1/bookings"))
        .bearer_auth(&writ)
        .header("content-type", "text/plain")
        .body(format!("C:\\temp\\x key={LEAKED}"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::BAD_REQUEST);
}

#[tokio::test]
async fn the_token_endpoint_refuses_a_grant_with_a_key_given_twice() {
    let (_u, gw) = setup().await;
    let ceiling = r#"[{"type":"writ:llm","upstream":"demo","models":["gpt-4o-mini","gpt-4o"]}]"#;
    let (_, secret) = OAuthClient::register(&gw, "dup-agent", ceiling, false).await;
    let token = |details: &'static str| {
        let gw = &gw;
        let secret = secret.clone();
        async move {
            let resp = reqwest::Client::new()
                .post(gw.url("/oauth2/token"))
                .basic_auth("dup-agent", Some(&secret))
                .form(&[
                    ("grant_type", "client_credentials"),
                    ("authorization_details", details),
                ])
                .send()
                .await
                .unwrap();
            (resp.status(), resp.json::<Value>().await.unwrap())
        }
    };
    // A reviewer reading the first `models` sees gpt-4o-mini; last-wins would mint gpt-4o.
    let (status, v) = token(
        r#"[{"type":"writ:llm","upstream":"demo","models":["gpt-4o-mini"],"models":["gpt-4o"]}]"#,
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{v}");
    assert_eq!(v["error"], "invalid_authorization_details", "{v}");
    let description = v["error_description"].as_str().unwrap();
    assert!(
        description.contains("`[0].models` more than once"),
        "{description}"
    );
    assert!(v.get("access_token").is_none(), "nothing is minted");
    let (status, v) =
        token(r#"[{"type":"writ:llm","upstream":"demo","models":["gpt-4o-mini"]}]"#).await;
    assert_eq!(status, StatusCode::OK, "{v}");
}

#[tokio::test]
async fn an_admin_body_with_a_key_given_twice_is_refused() {
    let (_u, gw) = setup().await;
    let admin_grant = r#"{"type":"writ:admin"}"#;
    let admin = gw.mint_as(admin_grant, admin_grant, 30);
    let resp = reqwest::Client::new()
        .post(gw.url("/admin/v1/revocations"))
        .bearer_auth(&admin)
        .header("content-type", "application/json")
        .body(r#"{"kind":"agent","tenant":"acme","agent":"a","tenant":"other"}"#)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::BAD_REQUEST);
    let v: Value = resp.json().await.unwrap();
    assert_eq!(v["error"]["code"], "duplicate_key", "{v}");
    assert!(
        v["error"]["message"].as_str().unwrap().contains("`tenant`"),
        "{v}"
    );
    let listed: Value = reqwest::Client::new()
        .get(gw.url("/admin/v1/revocations"))
        .bearer_auth(&admin)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(listed["revocations"], json!([]), "nothing was revoked");
}
