//! A writ's token id lets whoever reads it revoke that writ or single it out in every log;
//! the gateway shows only its audit pseudonym: not in logs (DEBUG lines included), not in admin
//! API responses (usage calls, revocations), whatever path the writ took.
#![allow(clippy::unwrap_used)]

use std::io::Write;
use std::sync::{Arc, Mutex};

use reqwest::StatusCode;
use serde_json::{Value, json};
use writ_testkit::{MockUpstream, OAuthClient, TestGateway};

const KEY: &str = "sk-upstream-token-id-exposure";
const CEILING: &str = r#"[{"type":"writ:llm","upstream":"demo","models":["gpt-4o-mini"]}]"#;
const ADMIN: &str = r#"{"type":"writ:admin"}"#;

/// Every log line the gateway writes, at DEBUG and above.
#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Captured {
    fn text(&self) -> String {
        String::from_utf8_lossy(&self.0.lock().unwrap()).into_owned()
    }
}

#[tokio::test]
async fn token_ids_are_pseudonyms_in_logs_and_admin_responses() {
    let logs = Captured::default();
    let writer = logs.clone();
    tracing_subscriber::fmt()
        .with_max_level(tracing::Level::DEBUG)
        .with_ansi(false)
        .with_writer(move || writer.clone())
        .init();

    let upstream = MockUpstream::start(KEY).await;
    let gw = TestGateway::start(&format!(
        "[upstreams.demo]\nkind = \"openai\"\nbase_url = \"{}\"\nallow_private_network = true\napi_key = \"{KEY}\"\n",
        upstream.base_url()
    ))
    .await;
    let (client, _) = OAuthClient::register(&gw, "agent", CEILING, false).await;
    let http = reqwest::Client::new();
    let minted: Value = http
        .post(gw.url("/oauth2/token"))
        .form(&[
            ("grant_type", "client_credentials"),
            (
                "client_assertion_type",
                "urn:ietf:params:oauth:client-assertion-type:jwt-bearer",
            ),
            ("client_assertion", &client.assertion(&gw, "j1")),
            ("authorization_details", CEILING),
        ])
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let writ = minted["access_token"].as_str().unwrap().to_string();
    let token_id = writ_token::decode(&writ)
        .unwrap()
        .verify(&gw.keys().trusted)
        .unwrap()
        .claims()
        .token_id
        .clone();
    assert!(token_id.len() >= 16, "an id long enough to search for");

    // Used, metered, then revoked by its id through the admin API.
    let resp = http
        .post(gw.url("/v1/chat/completions"))
        .bearer_auth(&writ)
        .json(&json!({"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}]}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    let _ = resp.bytes().await.unwrap();
    let admin = gw.mint_as(ADMIN, ADMIN, 30);
    let calls = http
        .get(gw.url("/admin/v1/usage/calls"))
        .bearer_auth(&admin)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(calls.contains("gpt-4o-mini"), "the call is listed: {calls}");
    let revoked = http
        .post(gw.url("/admin/v1/revocations"))
        .bearer_auth(&admin)
        .json(&json!({"kind": "token_id", "token_id": token_id}))
        .send()
        .await
        .unwrap();
    assert_eq!(revoked.status(), StatusCode::CREATED);
    let revoked_answer = revoked.text().await.unwrap();
    let listed = http
        .get(gw.url("/admin/v1/revocations"))
        .bearer_auth(&admin)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(listed.contains("\"writ\""), "{listed}");
    let refused = http
        .post(gw.url("/v1/chat/completions"))
        .bearer_auth(&writ)
        .json(&json!({"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}]}))
        .send()
        .await
        .unwrap();
    assert_eq!(refused.status(), StatusCode::UNAUTHORIZED);

    let logged = logs.text();
    assert!(
        logged.contains("writ minted"),
        "DEBUG lines were captured: {logged}"
    );
    for (place, text) in [
        ("logs", &logged),
        ("usage calls", &calls),
        ("revocation list", &listed),
        ("revocation answer", &revoked_answer),
    ] {
        assert!(
            !text.contains(&token_id),
            "the raw token id appears in the {place}: {text}"
        );
    }
}
