//! Revocation, admin writs and key rotation through the admin API.
#![allow(clippy::unwrap_used)]

use std::time::{Duration, UNIX_EPOCH};

use reqwest::StatusCode;
use serde_json::{Value, json};
use writ_testkit::{MockUpstream, TestGateway};

const KEY: &str = "sk-upstream-admin-tests";
const LLM: &str = r#"{"type":"writ:llm","upstream":"demo"}"#;
const ADMIN: &str = r#"{"type":"writ:admin"}"#;

async fn setup() -> (MockUpstream, TestGateway) {
    let upstream = MockUpstream::start(KEY).await;
    let config = format!(
        "[upstreams.demo]\nkind = \"openai\"\nbase_url = \"{}\"\nallow_private_network = true\napi_key = \"{KEY}\"\n",
        upstream.base_url()
    );
    let gw = TestGateway::start(&config).await;
    // The agent the fixture mints for is registered, so it can be revoked by name.
    gw.gateway()
        .store()
        .put_agent(&writ_store::Agent {
            tenant: "default".into(),
            name: "demo".into(),
            ceiling: writ_token::parse_grants(LLM).unwrap(),
            max_ttl: Duration::from_secs(30),
            credentials: writ_store::AgentCredentials::default(),
        })
        .await
        .unwrap();
    (upstream, gw)
}

async fn chat(gw: &TestGateway, writ: &str) -> (StatusCode, Value) {
    let resp = reqwest::Client::new()
        .post(gw.url("/v1/chat/completions"))
        .bearer_auth(writ)
        .json(&json!({"model": "m", "messages": [{"role": "user", "content": "hi"}]}))
        .send()
        .await
        .unwrap();
    let status = resp.status();
    (status, resp.json().await.unwrap())
}

async fn admin_post(gw: &TestGateway, writ: &str, path: &str, body: Value) -> (StatusCode, Value) {
    let resp = reqwest::Client::new()
        .post(gw.url(path))
        .bearer_auth(writ)
        .json(&body)
        .send()
        .await
        .unwrap();
    let status = resp.status();
    (status, resp.json().await.unwrap())
}

fn token_id(gw: &TestGateway, writ: &str) -> String {
    let keys = gw.keys();
    writ_token::decode(writ)
        .unwrap()
        .verify(&keys.trusted)
        .unwrap()
        .claims()
        .token_id
        .clone()
}

#[tokio::test]
async fn revoking_a_writ_refuses_it_and_its_children_on_the_next_request() {
    let (_u, gw) = setup().await;
    let admin = gw.mint_as(ADMIN, ADMIN, 30);
    let parent = gw.mint("demo", LLM, 30);
    let child = writ_token::attenuate(&parent, &writ_token::parse_grants(LLM).unwrap()).unwrap();
    let other = gw.mint("demo", LLM, 30);
    for w in [&parent, &child, &other] {
        assert_eq!(
            chat(&gw, w).await.0,
            StatusCode::OK,
            "cached and verified before the revocation"
        );
    }
    let (status, v) = admin_post(
        &gw,
        &admin,
        "/admin/v1/revocations",
        json!({"kind": "token_id", "token_id": token_id(&gw, &parent)}),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{v}");
    for w in [&parent, &child] {
        let (status, v) = chat(&gw, w).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED);
        assert_eq!(v["error"]["code"], "revoked_writ");
    }
    assert_eq!(chat(&gw, &other).await.0, StatusCode::OK);
}

#[tokio::test]
async fn revoking_a_block_revokes_writs_built_on_it() {
    let (_u, gw) = setup().await;
    let admin = gw.mint_as(ADMIN, ADMIN, 30);
    let parent = gw.mint("demo", LLM, 30);
    let child = writ_token::attenuate(&parent, &writ_token::parse_grants(LLM).unwrap()).unwrap();
    let keys = gw.keys();
    let ids = writ_token::decode(&child)
        .unwrap()
        .verify(&keys.trusted)
        .unwrap()
        .revocation_ids()
        .to_vec();
    // Revoke the child's own block: the parent stays valid, the child does not.
    let (status, _) = admin_post(
        &gw,
        &admin,
        "/admin/v1/revocations",
        json!({"kind": "revocation_id", "revocation_id": hex(&ids[2])}),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED);
    assert_eq!(chat(&gw, &child).await.0, StatusCode::UNAUTHORIZED);
    assert_eq!(chat(&gw, &parent).await.0, StatusCode::OK);
    // Revoke the parent's mint block: the parent and every descendant go.
    let grandchild =
        writ_token::attenuate(&parent, &writ_token::parse_grants(LLM).unwrap()).unwrap();
    admin_post(
        &gw,
        &admin,
        "/admin/v1/revocations",
        json!({"kind": "revocation_id", "revocation_id": hex(&ids[1])}),
    )
    .await;
    assert_eq!(chat(&gw, &parent).await.0, StatusCode::UNAUTHORIZED);
    assert_eq!(chat(&gw, &grandchild).await.0, StatusCode::UNAUTHORIZED);
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[tokio::test]
async fn agent_tenant_and_kill_switch() {
    let (_u, gw) = setup().await;
    let admin = gw.mint_as(ADMIN, ADMIN, 30);
    let writ = gw.mint("demo", LLM, 30);
    assert_eq!(chat(&gw, &writ).await.0, StatusCode::OK);
    admin_post(
        &gw,
        &admin,
        "/admin/v1/revocations",
        json!({"kind": "agent", "tenant": "default", "agent": "demo"}),
    )
    .await;
    assert_eq!(chat(&gw, &writ).await.0, StatusCode::UNAUTHORIZED);
    // The admin writ was minted for agent `demo` too, and is revoked with it.
    let (status, _) = admin_post(
        &gw,
        &admin,
        "/admin/v1/revocations",
        json!({"kind": "tenant", "tenant": "default"}),
    )
    .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);

    // A tenant revocation on its own: the request is authorized before it applies.
    let (_u1, gw) = setup().await;
    let writ = gw.mint("demo", LLM, 30);
    let admin = gw.mint_as(ADMIN, ADMIN, 30);
    let (status, _) = admin_post(
        &gw,
        &admin,
        "/admin/v1/revocations",
        json!({"kind": "tenant", "tenant": "default"}),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED);
    assert_eq!(chat(&gw, &writ).await.0, StatusCode::UNAUTHORIZED);
    let other = gw.mint("demo", LLM, 30);
    assert_eq!(
        chat(&gw, &other).await.0,
        StatusCode::UNAUTHORIZED,
        "new writs of the tenant too"
    );

    let (_u2, gw) = setup().await;
    let writ = gw.mint("demo", LLM, 30);
    let admin = gw.mint_as(ADMIN, ADMIN, 30);
    let now = writ_token::Clock::now(gw.clock())
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let (status, _) = admin_post(
        &gw,
        &admin,
        "/admin/v1/revocations",
        json!({"kind": "issued_before", "before": now + 1}),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED);
    assert_eq!(
        chat(&gw, &writ).await.0,
        StatusCode::UNAUTHORIZED,
        "the kill switch revokes everything issued before"
    );
    gw.clock().advance(Duration::from_secs(2));
    let fresh = gw.mint("demo", LLM, 30);
    assert_eq!(
        chat(&gw, &fresh).await.0,
        StatusCode::OK,
        "writs issued after the switch work"
    );
}

#[tokio::test]
async fn admin_api_needs_an_admin_writ_for_the_right_tenant() {
    let (_u, gw) = setup().await;
    let plain = gw.mint("demo", LLM, 30);
    let other_admin = gw.mint_as(
        r#"{"type":"writ:admin","tenant":"other"}"#,
        r#"{"type":"writ:admin","tenant":"other"}"#,
        30,
    );
    let tenant_admin = gw.mint_as(
        r#"{"type":"writ:admin","tenant":"default"}"#,
        r#"{"type":"writ:admin","tenant":"default"}"#,
        30,
    );
    let revoke_agent =
        json!({"kind": "agent", "tenant": "default", "agent": "nobody", "force": true});
    let (status, v) = admin_post(&gw, &plain, "/admin/v1/revocations", revoke_agent.clone()).await;
    assert_eq!(
        (status, v["error"]["code"].as_str()),
        (StatusCode::FORBIDDEN, Some("grant_denied"))
    );
    assert_eq!(
        admin_post(
            &gw,
            &other_admin,
            "/admin/v1/revocations",
            revoke_agent.clone()
        )
        .await
        .0,
        StatusCode::FORBIDDEN
    );
    assert_eq!(
        admin_post(&gw, &tenant_admin, "/admin/v1/revocations", revoke_agent)
            .await
            .0,
        StatusCode::CREATED
    );
    // A tenant admin cannot act on every tenant.
    let global = json!({"kind": "issued_before", "before": 1});
    assert_eq!(
        admin_post(&gw, &tenant_admin, "/admin/v1/revocations", global)
            .await
            .0,
        StatusCode::FORBIDDEN
    );
    let resp = reqwest::Client::new()
        .get(gw.url("/admin/v1/revocations"))
        .bearer_auth(&tenant_admin)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::FORBIDDEN);
    let resp = reqwest::Client::new()
        .post(gw.url("/admin/v1/revocations"))
        .json(&json!({}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::UNAUTHORIZED);
    // An admin writ calls no upstream.
    assert_eq!(chat(&gw, &tenant_admin).await.0, StatusCode::FORBIDDEN);
}

#[tokio::test]
async fn malformed_admin_requests_are_refused_and_nothing_is_revoked() {
    let (_u, gw) = setup().await;
    let admin = gw.mint_as(ADMIN, ADMIN, 30);
    let writ = gw.mint("demo", LLM, 30);
    let client = reqwest::Client::new();
    for body in [
        "not json".to_string(),
        r#"{"kind":"everything"}"#.to_string(),
        r#"{"kind":"agent","tenant":"default"}"#.to_string(),
        r#"{"kind":"token_id","token_id":""}"#.to_string(),
        r#"{"kind":"revocation_id","revocation_id":"zz"}"#.to_string(),
        r#"{"kind":"tenant","tenant":"default","extra":1}"#.to_string(),
        format!(
            r#"{{"kind":"token_id","token_id":"{}"}}"#,
            "x".repeat(100_000)
        ),
    ] {
        let resp = client
            .post(gw.url("/admin/v1/revocations"))
            .bearer_auth(&admin)
            .body(body.clone())
            .send()
            .await
            .unwrap();
        let status = resp.status();
        if status == StatusCode::PAYLOAD_TOO_LARGE {
            // Refused unread: the connection is not offered for the next request.
            assert_eq!(resp.headers()["connection"], "close");
        }
        assert!(
            status == StatusCode::BAD_REQUEST || status == StatusCode::PAYLOAD_TOO_LARGE,
            "{status} for {}",
            &body[..40.min(body.len())]
        );
        let v: Value = resp.json().await.unwrap();
        assert!(v["error"]["code"].is_string());
    }
    let resp = client
        .get(gw.url("/admin/v1/revocations"))
        .bearer_auth(&admin)
        .send()
        .await
        .unwrap();
    let v: Value = resp.json().await.unwrap();
    assert_eq!(v["revocations"], json!([]));
    assert_eq!(chat(&gw, &writ).await.0, StatusCode::OK);
}

#[tokio::test]
async fn key_rotation_keeps_old_writs_until_the_key_is_retired() {
    let (_u, gw) = setup().await;
    let admin = gw.mint_as(ADMIN, ADMIN, 30);
    let old = gw.mint("demo", LLM, 30);
    let (status, v) = admin_post(&gw, &admin, "/admin/v1/keys/rotate", json!({})).await;
    assert_eq!(
        (status, v["signing_kid"].as_u64()),
        (StatusCode::OK, Some(2))
    );
    let new = gw.mint("demo", LLM, 30);
    let keys = gw.keys();
    assert_eq!(
        writ_token::decode(&new)
            .unwrap()
            .verify(&keys.trusted)
            .unwrap()
            .claims()
            .key_id,
        Some(2)
    );
    assert_eq!(
        chat(&gw, &old).await.0,
        StatusCode::OK,
        "writs of the previous key keep working"
    );
    assert_eq!(chat(&gw, &new).await.0, StatusCode::OK);

    let published: Value = reqwest::get(gw.url("/.well-known/writ-keys"))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(published["signing_kid"], 2);
    let keys = published["keys"].as_array().unwrap();
    assert_eq!(keys.len(), 2);
    assert!(
        keys.iter()
            .all(|k| k["public_key"].as_str().unwrap().len() == 64)
    );
    assert!(!published.to_string().contains("private"));

    // Retire key 1 on disk (as `writ keys retire 1` does) and reload: old writs stop at once.
    gw.gateway().reload_keys().unwrap();
    let data = writ_store::DataDir::open_or_create(gw_data_dir(&gw)).unwrap();
    data.retire_root_key(writ_token::KeyId(1)).unwrap();
    let new_admin = gw.mint_as(ADMIN, ADMIN, 30);
    let (status, _) = admin_post(&gw, &new_admin, "/admin/v1/keys/reload", json!({})).await;
    assert_eq!(status, StatusCode::OK);
    let (status, v) = chat(&gw, &old).await;
    assert_eq!(
        (status, v["error"]["code"].as_str()),
        (StatusCode::UNAUTHORIZED, Some("invalid_signature"))
    );
    assert_eq!(chat(&gw, &new).await.0, StatusCode::OK);
}

fn gw_data_dir(gw: &TestGateway) -> std::path::PathBuf {
    gw.gateway().data_dir().to_path_buf()
}

#[tokio::test]
async fn key_changes_are_audited_under_the_operator_and_retire_deletes_the_private_half() {
    let (_u, gw) = setup().await;
    let admin = gw.mint_as(ADMIN, ADMIN, 30);
    let old = gw.mint("demo", LLM, 30);
    // The signing key cannot be retired; an unknown key id neither.
    for kid in [1, 7] {
        let (status, v) =
            admin_post(&gw, &admin, "/admin/v1/keys/retire", json!({"kid": kid})).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{v}");
        assert!(
            v["error"]["message"]
                .as_str()
                .unwrap()
                .contains("rotate first"),
            "{v}"
        );
    }
    let (status, _) = admin_post(&gw, &admin, "/admin/v1/keys/rotate", json!({})).await;
    assert_eq!(status, StatusCode::OK);
    let admin = gw.mint_as(ADMIN, ADMIN, 30);
    let (status, v) = admin_post(&gw, &admin, "/admin/v1/keys/retire", json!({"kid": 1})).await;
    assert_eq!(
        (status, v["retired_kid"].as_u64()),
        (StatusCode::OK, Some(1)),
        "{v}"
    );
    assert_eq!(
        chat(&gw, &old).await.0,
        StatusCode::UNAUTHORIZED,
        "retired: refused now"
    );
    let keys = gw_data_dir(&gw).join("keys");
    assert!(
        !keys.join("root-1.key").exists(),
        "the private half is deleted"
    );
    assert!(
        keys.join("retired-root-1.pub").exists(),
        "the public half is kept"
    );
    let (status, _) = admin_post(&gw, &admin, "/admin/v1/keys/reload", json!({})).await;
    assert_eq!(status, StatusCode::OK);

    gw.gateway().audit_checkpoint().await;
    let records: Vec<Value> = gw
        .gateway()
        .audit_export()
        .await
        .unwrap()
        .iter()
        .filter(|l| l.contains("\"admin_change\""))
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let ops: Vec<&str> = records
        .iter()
        .map(|r| r["operation"].as_str().unwrap())
        .collect();
    assert_eq!(
        ops,
        ["rotate_root_key", "retire_root_key", "reload_root_keys"]
    );
    for r in &records {
        assert_eq!(r["agent"], "demo", "the admin writ's subject: {r}");
        assert!(r["writ"].as_str().is_some_and(|w| w.len() == 32), "{r}");
    }
    assert_eq!(records[1]["detail"]["retired_kid"], 1);
    assert_eq!(records[1]["detail"]["no_longer_trusted"], json!([1]));
    assert_eq!(records[1]["detail"]["trusted_kids"], json!([2]));
}
