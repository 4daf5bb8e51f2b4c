//! Tenants' own credentials on one shared upstream: each tenant's calls carry that
//! tenant's key and never another's, under load; a rotation switches every new request at
//! once, loses none, and lets a request in flight finish on the key it started with.
#![allow(clippy::unwrap_used)]

use std::sync::Arc;

use serde_json::{Value, json};
use writ_testkit::{Behavior, MockUpstream, TestGateway};

const FILE_KEY: &str = "sk-file-key-0123456789";
const ACME_V1: &str = "sk-acme-first-0123456789";
const ACME_V2: &str = "sk-acme-second-0123456789";
const GLOBEX: &str = "sk-globex-0123456789";
const CEILING: &str = r#"{"type":"writ:llm","upstream":"openai"}"#;

fn config(base_url: &str) -> String {
    format!(
        "[upstreams.openai]\nkind = \"openai\"\nbase_url = \"{base_url}\"\nallow_private_network = true\napi_key = \"{FILE_KEY}\"\n\n[tenants.acme]\n[tenants.globex]\n"
    )
}

async fn set_secret(gw: &TestGateway, tenant: &str, secret: &str) -> u32 {
    let g = gw.gateway();
    let fingerprint = writ_providers::UpstreamSecret::new(secret).fingerprint();
    let version = g
        .store()
        .add_credential(
            g.vault(),
            tenant,
            "openai",
            secret,
            &fingerprint,
            Some("test"),
            1,
        )
        .await
        .unwrap()
        .version;
    g.reload().await.unwrap();
    version
}

fn chat(marker: &str) -> Value {
    json!({"model": "gpt-4o-mini", "user": marker, "messages": [{"role": "user", "content": "hi"}]})
}

/// Posts a chat to the upstream `crm` with `writ`; the response.
async fn to_crm(gw: &TestGateway, writ: &str) -> reqwest::Response {
    reqwest::Client::new()
        .post(gw.url("/v1/chat/completions"))
        .bearer_auth(writ)
        .header("x-writ-upstream", "crm")
        .json(&chat("x"))
        .send()
        .await
        .unwrap()
}

async fn post(client: &reqwest::Client, gw: &TestGateway, writ: &str, body: &Value) -> u16 {
    client
        .post(gw.url("/v1/chat/completions"))
        .bearer_auth(writ)
        .json(body)
        .send()
        .await
        .unwrap()
        .status()
        .as_u16()
}

/// Which key each recorded request carried, by the `user` marker its body holds.
fn keys_by_marker(mock: &MockUpstream) -> Vec<(String, String)> {
    mock.requests()
        .iter()
        .map(|r| {
            let body: Value = serde_json::from_slice(&r.body).unwrap();
            let auth = r.headers["authorization"].to_str().unwrap().to_string();
            (body["user"].as_str().unwrap().to_string(), auth)
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_tenants_on_one_upstream_url_each_send_their_own_key_under_load() {
    let mock = MockUpstream::start_accepting(&[FILE_KEY, ACME_V1, GLOBEX]).await;
    let gw = Arc::new(TestGateway::start(&config(&mock.base_url())).await);
    set_secret(&gw, "acme", ACME_V1).await;
    set_secret(&gw, "globex", GLOBEX).await;
    let grant = r#"{"type":"writ:llm","upstream":"openai"}"#;
    let acme = gw.mint_in("acme", CEILING, grant, 30);
    let globex = gw.mint_in("globex", CEILING, grant, 30);
    let default = gw.mint("openai", grant, 30);
    let client = reqwest::Client::new();
    let mut calls = Vec::new();
    for i in 0..200 {
        for (tenant, writ) in [("acme", &acme), ("globex", &globex)] {
            let (gw, client, writ) = (gw.clone(), client.clone(), writ.clone());
            let marker = format!("{tenant}-{i}");
            calls.push(tokio::spawn(async move {
                post(&client, &gw, &writ, &chat(&marker)).await
            }));
        }
    }
    for call in calls {
        assert_eq!(call.await.unwrap(), 200);
    }
    // A tenant without a credential of its own uses the file's.
    assert_eq!(post(&client, &gw, &default, &chat("default-0")).await, 200);
    let seen = keys_by_marker(&mock);
    assert_eq!(seen.len(), 401);
    for (marker, auth) in seen {
        let expected = match marker.split('-').next().unwrap() {
            "acme" => ACME_V1,
            "globex" => GLOBEX,
            _ => FILE_KEY,
        };
        assert_eq!(auth, format!("Bearer {expected}"), "{marker}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_rotation_under_load_switches_new_requests_and_loses_none() {
    let mock = MockUpstream::start_accepting(&[FILE_KEY, ACME_V1, ACME_V2]).await;
    let gw = Arc::new(TestGateway::start(&config(&mock.base_url())).await);
    set_secret(&gw, "acme", ACME_V1).await;
    let acme = gw.mint_in(
        "acme",
        CEILING,
        r#"{"type":"writ:llm","upstream":"openai"}"#,
        30,
    );
    let client = reqwest::Client::new();
    // Load before, during and after the rotation; every request must succeed.
    let load = {
        let (gw, client, acme) = (gw.clone(), client.clone(), acme.clone());
        tokio::spawn(async move {
            let mut statuses = Vec::new();
            for round in 0..20 {
                let mut batch = Vec::new();
                for i in 0..10 {
                    let (gw, client, acme) = (gw.clone(), client.clone(), acme.clone());
                    batch.push(tokio::spawn(async move {
                        post(&client, &gw, &acme, &chat(&format!("load-{round}-{i}"))).await
                    }));
                }
                for call in batch {
                    statuses.push(call.await.unwrap());
                }
            }
            statuses
        })
    };
    // Rotate once the load is well under way (polled, with a deadline).
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    while mock.requests().len() < 50 {
        assert!(
            std::time::Instant::now() < deadline,
            "the load did not start"
        );
        tokio::task::yield_now().await;
    }
    let v2 = set_secret(&gw, "acme", ACME_V2).await;
    assert_eq!(v2, 2);
    let statuses = load.await.unwrap();
    assert_eq!(statuses.len(), 200);
    assert!(statuses.iter().all(|s| *s == 200), "{statuses:?}");
    let seen = keys_by_marker(&mock);
    let carried = |key: &str| {
        seen.iter()
            .filter(|(_, a)| *a == format!("Bearer {key}"))
            .count()
    };
    assert!(carried(ACME_V1) >= 50, "the load ran on version 1 first");
    assert!(
        carried(ACME_V2) >= 1,
        "the load switched to version 2 while running"
    );
    assert_eq!(carried(ACME_V1) + carried(ACME_V2), 200);
    // Every request routed after the switch carries version 2: the old key can go, at
    // the gateway and at the provider, and nothing notices.
    let g = gw.gateway();
    g.store()
        .retire_credential("acme", "openai", 1, 2)
        .await
        .unwrap();
    g.reload().await.unwrap();
    mock.revoke(ACME_V1);
    assert_eq!(post(&client, &gw, &acme, &chat("after")).await, 200);
    let seen = keys_by_marker(&mock);
    assert_eq!(
        seen.last().unwrap(),
        &("after".to_string(), format!("Bearer {ACME_V2}"))
    );
}

#[tokio::test]
async fn a_stream_in_flight_finishes_on_the_key_it_started_with() {
    let mock = MockUpstream::start_with(ACME_V1, Behavior::HoldStreamAfterFirstEvent).await;
    mock.accept(ACME_V2);
    let gw = TestGateway::start(&config(&mock.base_url())).await;
    set_secret(&gw, "acme", ACME_V1).await;
    let acme = gw.mint_in(
        "acme",
        CEILING,
        r#"{"type":"writ:llm","upstream":"openai"}"#,
        30,
    );
    let client = reqwest::Client::new();
    let mut body = chat("stream");
    body["stream"] = json!(true);
    let resp = client
        .post(gw.url("/v1/chat/completions"))
        .bearer_auth(&acme)
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    // Rotated while the stream is held open upstream.
    set_secret(&gw, "acme", ACME_V2).await;
    mock.release();
    let text = resp.text().await.unwrap();
    assert!(text.contains("[DONE]"), "{text}");
    let seen = keys_by_marker(&mock);
    assert_eq!(seen[0].1, format!("Bearer {ACME_V1}"));
    assert_eq!(post(&client, &gw, &acme, &chat("next")).await, 200);
    let seen = keys_by_marker(&mock);
    assert_eq!(seen[1].1, format!("Bearer {ACME_V2}"));
}

#[tokio::test]
async fn an_upstream_without_a_credential_for_the_tenant_says_how_to_set_one() {
    let mock = MockUpstream::start(FILE_KEY).await;
    let gw = TestGateway::start(&config(&mock.base_url())).await;
    let g = gw.gateway();
    g.store()
        .create_upstream(&writ_store::UpstreamRecord {
            tenant: Some("acme".into()),
            name: "crm".into(),
            kind: "openai".into(),
            settings: json!({"kind": "openai", "base_url": mock.base_url(), "allow_private_network": true}),
            created_at: 1,
            updated_at: 1,
        })
        .await
        .unwrap();
    g.reload().await.unwrap();
    let acme = gw.mint_in(
        "acme",
        r#"{"type":"writ:llm","upstream":"crm"}"#,
        r#"{"type":"writ:llm","upstream":"crm"}"#,
        30,
    );
    let resp = to_crm(&gw, &acme).await;
    assert_eq!(resp.status(), 503);
    let v: Value = resp.json().await.unwrap();
    assert_eq!(v["error"]["code"], "upstream_not_configured", "{v}");
    let message = v["error"]["message"].as_str().unwrap();
    assert!(
        message.contains("writ secret set crm --tenant acme"),
        "{message}"
    );
    // Another tenant does not see acme's upstream at all.
    let globex = gw.mint_in(
        "globex",
        r#"{"type":"writ:llm","upstream":"crm"}"#,
        r#"{"type":"writ:llm","upstream":"crm"}"#,
        30,
    );
    let resp = to_crm(&gw, &globex).await;
    assert_eq!(resp.status(), 404);
    // With a credential, acme's own upstream serves it (and only it).
    let fingerprint = writ_providers::UpstreamSecret::new(FILE_KEY).fingerprint();
    g.store()
        .add_credential(g.vault(), "acme", "crm", FILE_KEY, &fingerprint, None, 1)
        .await
        .unwrap();
    g.reload().await.unwrap();
    let resp = to_crm(&gw, &acme).await;
    assert_eq!(resp.status(), 200);
}

#[tokio::test]
async fn a_tenant_policy_refuses_what_the_writ_allows() {
    let mock = MockUpstream::start(FILE_KEY).await;
    let gw = TestGateway::start(&config(&mock.base_url())).await;
    let acme = gw.mint_in(
        "acme",
        CEILING,
        r#"{"type":"writ:llm","upstream":"openai"}"#,
        30,
    );
    let client = reqwest::Client::new();
    assert_eq!(post(&client, &gw, &acme, &chat("before")).await, 200);
    let g = gw.gateway();
    g.store()
        .put_rule(
            writ_store::RuleKind::Policy,
            &writ_store::RuleRecord {
                tenant: "acme".into(),
                name: "no-mini".into(),
                body: "reject if model(\"gpt-4o-mini\");".into(),
                created_at: 1,
                updated_at: 1,
            },
        )
        .await
        .unwrap();
    g.reload().await.unwrap();
    let resp = client
        .post(gw.url("/v1/chat/completions"))
        .bearer_auth(&acme)
        .json(&chat("after"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 403);
    let v: Value = resp.json().await.unwrap();
    assert_eq!(v["error"]["code"], "denied_by_policy", "{v}");
    // Another tenant is not bound by acme's policy.
    let globex = gw.mint_in(
        "globex",
        CEILING,
        r#"{"type":"writ:llm","upstream":"openai"}"#,
        30,
    );
    assert_eq!(post(&client, &gw, &globex, &chat("globex")).await, 200);
}

#[tokio::test]
async fn a_tenant_credential_the_upstream_refuses_is_named_with_how_to_replace_it() {
    let mock = MockUpstream::start(FILE_KEY).await;
    let gw = TestGateway::start(&config(&mock.base_url())).await;
    set_secret(&gw, "acme", "sk-acme-not-accepted-0123").await;
    let acme = gw.mint_in(
        "acme",
        CEILING,
        r#"{"type":"writ:llm","upstream":"openai"}"#,
        30,
    );
    let resp = reqwest::Client::new()
        .post(gw.url("/v1/chat/completions"))
        .bearer_auth(&acme)
        .json(&chat("refused"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 502);
    let text = resp.text().await.unwrap();
    assert!(!text.contains("sk-acme-not-accepted"), "{text}");
    let v: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(v["error"]["code"], "upstream_auth_failed", "{v}");
    let message = v["error"]["message"].as_str().unwrap();
    assert!(
        message.contains("tenant `acme`'s credential, version 1"),
        "{message}"
    );
    assert!(
        message.contains("writ secret set openai --tenant acme"),
        "{message}"
    );
}

#[tokio::test]
async fn a_tenant_limit_applies_to_that_tenant_alone() {
    let mock = MockUpstream::start(FILE_KEY).await;
    let gw = TestGateway::start(&config(&mock.base_url())).await;
    let g = gw.gateway();
    // Its match names another tenant: a tenant's limit still binds only itself.
    let spec = json!({"scope": "agent", "dimension": "requests", "per": "minute", "limit": 1,
                      "match": {"tenant": "globex"}});
    g.store()
        .put_rule(
            writ_store::RuleKind::Limit,
            &writ_store::RuleRecord {
                tenant: "acme".into(),
                name: "one-a-minute".into(),
                body: spec.to_string(),
                created_at: 1,
                updated_at: 1,
            },
        )
        .await
        .unwrap();
    g.reload().await.unwrap();
    let grant = r#"{"type":"writ:llm","upstream":"openai"}"#;
    let acme = gw.mint_in("acme", CEILING, grant, 30);
    let globex = gw.mint_in("globex", CEILING, grant, 30);
    let client = reqwest::Client::new();
    assert_eq!(post(&client, &gw, &acme, &chat("acme-1")).await, 200);
    assert_eq!(post(&client, &gw, &acme, &chat("acme-2")).await, 429);
    for i in 0..3 {
        assert_eq!(
            post(&client, &gw, &globex, &chat(&format!("globex-{i}"))).await,
            200
        );
    }
}
