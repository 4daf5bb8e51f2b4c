//! Brute force cannot lock a victim out by name from elsewhere: failures are counted per
//! (client id, address), so guessing at a client's secret from one address never keeps
//! the right secret out from another; and an operator's unlock (`POST /admin/v1/unlock`)
//! lifts a lock-out, is audited, and holds across gateways sharing Redis.
#![allow(clippy::unwrap_used)]

use std::net::IpAddr;

use reqwest::StatusCode;
use serde_json::{Value, json};
use writ_testkit::{MockUpstream, OAuthClient, TestGateway};

const KEY: &str = "sk-proj-UpstreamKeyForBruteForceScope0123456789";
const CEILING: &str = r#"{"type":"writ:llm","upstream":"demo"}"#;
const DETAILS: &str = r#"[{"type":"writ:llm","upstream":"demo"}]"#;
const ADMIN: &str = r#"{"type":"writ:admin"}"#;

fn from(addr: &str) -> reqwest::Client {
    reqwest::Client::builder()
        .local_address(addr.parse::<IpAddr>().unwrap())
        .build()
        .unwrap()
}

async fn gateway(upstream: &MockUpstream, extra: &str) -> TestGateway {
    TestGateway::start(&format!(
        "{extra}\n[upstreams.demo]\nkind = \"openai\"\nbase_url = \"{}\"\nallow_private_network = true\napi_key = \"{KEY}\"\n",
        upstream.base_url()
    ))
    .await
}

async fn attempt(gw: &TestGateway, client: &reqwest::Client, id: &str, secret: &str) -> StatusCode {
    client
        .post(gw.url("/oauth2/token"))
        .form(&[
            ("grant_type", "client_credentials"),
            ("client_id", id),
            ("client_secret", secret),
            ("authorization_details", DETAILS),
        ])
        .send()
        .await
        .unwrap()
        .status()
}

/// 30 wrong secrets for `id` from `addr`: past the lock-out (20 with the defaults).
async fn guess(gws: &[&TestGateway], addr: &str, id: &str) {
    let client = from(addr);
    let mut last = StatusCode::OK;
    for i in 0..30 {
        last = attempt(gws[i % gws.len()], &client, id, "wcs_wrong-guess").await;
    }
    assert_eq!(last, StatusCode::TOO_MANY_REQUESTS, "locked out by now");
}

async fn unlock(gw: &TestGateway, writ: &str, client_id: &str) -> (StatusCode, Value) {
    unlock_with(gw, writ, &json!({ "client_id": client_id })).await
}

async fn unlock_with(gw: &TestGateway, writ: &str, body: &Value) -> (StatusCode, Value) {
    let resp = reqwest::Client::new()
        .post(gw.url("/admin/v1/unlock"))
        .bearer_auth(writ)
        .json(body)
        .send()
        .await
        .unwrap();
    (resp.status(), resp.json().await.unwrap())
}

#[tokio::test]
async fn guessing_from_another_address_never_locks_the_victim_out() {
    let upstream = MockUpstream::start(KEY).await;
    let gw = gateway(&upstream, "").await;
    let (_, secret) = OAuthClient::register(&gw, "victim", CEILING, false).await;
    guess(&[&gw], "127.0.0.2", "victim").await;
    // The attacker's address is locked out, even with the right secret...
    assert_eq!(
        attempt(&gw, &from("127.0.0.2"), "victim", &secret).await,
        StatusCode::TOO_MANY_REQUESTS
    );
    // ...and the victim, from its own address, is not.
    assert_eq!(
        attempt(&gw, &from("127.0.0.1"), "victim", &secret).await,
        StatusCode::OK
    );
}

#[tokio::test]
async fn an_operator_unlock_lifts_a_lock_out_and_is_audited() {
    let upstream = MockUpstream::start(KEY).await;
    let gw = gateway(&upstream, "").await;
    let (_, secret) = OAuthClient::register(&gw, "clumsy", CEILING, false).await;
    let (_, other) = OAuthClient::register(&gw, "other", CEILING, false).await;
    guess(&[&gw], "127.0.0.3", "clumsy").await;
    guess(&[&gw], "127.0.0.4", "other").await;
    assert_eq!(
        attempt(&gw, &from("127.0.0.3"), "clumsy", &secret).await,
        StatusCode::TOO_MANY_REQUESTS
    );

    // A writ without the admin grant cannot unlock.
    let agent = gw.mint("demo", DETAILS, 30);
    let (status, body) = unlock(&gw, &agent, "clumsy").await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{body}");
    // Neither can a bad body.
    let admin = gw.mint_as(ADMIN, ADMIN, 30);
    let (status, body) = unlock(&gw, &admin, "").await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");

    let (status, body) = unlock(&gw, &admin, "clumsy").await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["unlocked"], "clumsy");
    assert_eq!(body["addresses"], 1);
    assert_eq!(
        attempt(&gw, &from("127.0.0.3"), "clumsy", &secret).await,
        StatusCode::OK
    );
    // Only that client: another one stays locked out.
    assert_eq!(
        attempt(&gw, &from("127.0.0.4"), "other", &other).await,
        StatusCode::TOO_MANY_REQUESTS
    );

    let unlocks: Vec<Value> = gw
        .gateway()
        .audit_export()
        .await
        .unwrap()
        .iter()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .filter(|r| r["operation"] == "unlock_client")
        .collect();
    assert_eq!(unlocks.len(), 1, "{unlocks:?}");
    assert_eq!(unlocks[0]["kind"], "admin_change");
    assert_eq!(unlocks[0]["detail"]["client_id"], "clumsy");
    assert!(unlocks[0]["agent"].is_string());
}

#[tokio::test]
async fn a_tenant_admin_unlocks_the_client_but_not_the_address() {
    let upstream = MockUpstream::start(KEY).await;
    let gw = gateway(&upstream, "").await;
    let (_, secret) = OAuthClient::register(&gw, "clumsy", CEILING, false).await;
    guess(&[&gw], "127.0.0.7", "clumsy").await;
    // The address's count covers every tenant's clients: a tenant's admin leaves it.
    let tenant_admin = r#"{"type":"writ:admin","tenant":"default"}"#;
    let admin = gw.mint_as(tenant_admin, tenant_admin, 30);
    let (status, body) = unlock(&gw, &admin, "clumsy").await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(
        attempt(&gw, &from("127.0.0.7"), "clumsy", &secret).await,
        StatusCode::TOO_MANY_REQUESTS
    );
    // Another tenant's admin cannot touch this tenant's clients.
    let other = r#"{"type":"writ:admin","tenant":"acme"}"#;
    let (status, body) = unlock(&gw, &gw.mint_as(other, other, 30), "clumsy").await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{body}");
    // Naming the address to clear takes an admin of every tenant...
    let with_address = json!({"client_id": "clumsy", "address": "127.0.0.7"});
    let (status, body) = unlock_with(&gw, &admin, &with_address).await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{body}");
    // ...who clears it (the client's own count went with the first unlock): it gets in.
    let (status, body) = unlock_with(&gw, &gw.mint_as(ADMIN, ADMIN, 30), &with_address).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(
        attempt(&gw, &from("127.0.0.7"), "clumsy", &secret).await,
        StatusCode::OK
    );
}

#[tokio::test]
async fn an_unlock_holds_across_two_instances_sharing_redis() {
    let namespace = format!("bfs-{}-{}", std::process::id(), rand_suffix());
    let extra = format!(
        "[limiter]\nbackend = \"redis\"\nredis_url = \"redis://127.0.0.1:6379\"\n[detection.brute_force]\nnamespace = \"{namespace}\"\n"
    );
    let upstream = MockUpstream::start(KEY).await;
    let a = gateway(&upstream, &extra).await;
    let b = gateway(&upstream, &extra).await;
    b.clock().set(writ_token::Clock::now(a.clock()));
    let (_, secret) = OAuthClient::register(&a, "shared", CEILING, false).await;
    OAuthClient::register(&b, "shared", CEILING, false).await;
    // Locked out at 127.0.0.5 on both, counted together in Redis.
    guess(&[&a, &b], "127.0.0.5", "shared").await;
    for gw in [&a, &b] {
        assert_eq!(
            attempt(gw, &from("127.0.0.5"), "shared", &secret).await,
            StatusCode::TOO_MANY_REQUESTS
        );
    }
    // The right secret from elsewhere is served by either.
    assert_eq!(
        attempt(&a, &from("127.0.0.6"), "shared", &secret).await,
        StatusCode::OK
    );
    // Unlocked through b, it gets in through a.
    let admin = b.mint_as(ADMIN, ADMIN, 30);
    let (status, body) = unlock(&b, &admin, "shared").await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(
        attempt(&a, &from("127.0.0.5"), "shared", &secret).await,
        StatusCode::OK
    );
}

fn rand_suffix() -> u64 {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u64(u64::from(std::process::id()));
    h.finish()
}
