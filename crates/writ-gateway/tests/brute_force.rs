//! Brute force: wrong client secrets at the token endpoint back off, then lock out, then
//! release — the same for a client id that does not exist; the client id is counted per
//! address, so the right secret from another address gets in; invalid writs from one
//! address slow it down, then block it; and with Redis the counts hold across two gateway
//! instances.
#![allow(clippy::unwrap_used)]

use std::net::IpAddr;
use std::time::Duration;

use reqwest::StatusCode;
use serde_json::{Value, json};
use writ_testkit::{MockUpstream, OAuthClient, TestGateway};

const KEY: &str = "sk-proj-UpstreamKeyForBruteForceTests0123456789";
const CEILING: &str = r#"{"type":"writ:llm","upstream":"demo"}"#;
const DETAILS: &str = r#"[{"type":"writ:llm","upstream":"demo"}]"#;

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

/// One client-secret attempt: status, body and `Retry-After`.
async fn attempt(
    gw: &TestGateway,
    client: &reqwest::Client,
    id: &str,
    secret: &str,
) -> (StatusCode, Value, Option<u64>) {
    let resp = client
        .post(gw.url("/oauth2/token"))
        .form(&[
            ("grant_type", "client_credentials"),
            ("client_id", id),
            ("client_secret", secret),
            ("authorization_details", DETAILS),
        ])
        .send()
        .await
        .unwrap();
    let status = resp.status();
    let retry = resp
        .headers()
        .get("retry-after")
        .map(|v| v.to_str().unwrap().parse().unwrap());
    (status, resp.json().await.unwrap(), retry)
}

/// Sends 50 wrong secrets for `id` from 127.0.0.1 as fast as it can (the gateways'
/// clocks stand still), round-robin over `gws`, and returns what each got.
async fn fifty_wrong(gws: &[&TestGateway], id: &str) -> Vec<(StatusCode, Value, Option<u64>)> {
    let client = from("127.0.0.1");
    let mut seen = Vec::new();
    for i in 0..50 {
        seen.push(attempt(gws[i % gws.len()], &client, id, "wcs_wrong-secret").await);
    }
    seen
}

fn check_back_off_then_lock_out(seen: &[(StatusCode, Value, Option<u64>)]) {
    let statuses: Vec<u16> = seen.iter().map(|s| s.0.as_u16()).collect();
    // Five failures are answered as failures; then back-off (429 + Retry-After), and
    // since this client ignores it, every attempt counts until the 20th locks it out.
    assert!(statuses[..5].iter().all(|s| *s == 401), "{statuses:?}");
    assert!(statuses[5..].iter().all(|s| *s == 429), "{statuses:?}");
    let description = |i: usize| seen[i].1["error_description"].as_str().unwrap().to_string();
    let waits: Vec<u64> = (5..19).map(|i| seen[i].2.unwrap()).collect();
    assert_eq!(&waits[..5], &[2, 4, 8, 16, 32], "{waits:?}");
    assert!(waits[5..].iter().all(|w| *w == 60), "capped: {waits:?}");
    for i in 5..19 {
        assert!(!description(i).contains("locked"), "{}", description(i));
    }
    for s in &seen[19..] {
        assert_eq!(s.1["error"], "slow_down");
        let d = s.1["error_description"].as_str().unwrap();
        assert!(d.contains("locked out"), "{d}");
        assert!(s.2.unwrap() > 800, "lock-out lasts 15 minutes: {:?}", s.2);
    }
}

#[tokio::test]
async fn a_client_that_waits_out_the_back_off_gets_in() {
    let upstream = MockUpstream::start(KEY).await;
    let gw = gateway(&upstream, "").await;
    let (_, secret) = OAuthClient::register(&gw, "patient", CEILING, false).await;
    let client = from("127.0.0.3");
    for _ in 0..5 {
        let (status, _, _) = attempt(&gw, &client, "patient", "wcs_typo").await;
        assert_eq!(status, StatusCode::UNAUTHORIZED);
    }
    let (status, _, retry) = attempt(&gw, &client, "patient", &secret).await;
    assert_eq!(status, StatusCode::TOO_MANY_REQUESTS, "backing off");
    gw.clock().advance(Duration::from_secs(retry.unwrap()));
    let (status, body, _) = attempt(&gw, &client, "patient", &secret).await;
    assert_eq!(status, StatusCode::OK, "{body}");
}

#[tokio::test]
async fn wrong_secrets_back_off_then_lock_out_then_release() {
    let upstream = MockUpstream::start(KEY).await;
    let gw = gateway(&upstream, "").await;
    let (_, secret) = OAuthClient::register(&gw, "victim", CEILING, false).await;
    let (_, other_secret) = OAuthClient::register(&gw, "bystander", CEILING, false).await;

    let seen = fifty_wrong(&[&gw], "victim").await;
    check_back_off_then_lock_out(&seen);

    // Another client from another address still gets its writ.
    let (status, body, _) = attempt(&gw, &from("127.0.0.2"), "bystander", &other_secret).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    // The guessing address stays locked out, for the right secret too...
    let (status, _, _) = attempt(&gw, &from("127.0.0.1"), "victim", &secret).await;
    assert_eq!(status, StatusCode::TOO_MANY_REQUESTS);
    // ...while the right secret from elsewhere gets in: a client id is locked out only at
    // the address that guessed at it.
    let (status, body, _) = attempt(&gw, &from("127.0.0.2"), "victim", &secret).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    // After the lock-out it is released with a clean slate.
    gw.clock().advance(Duration::from_secs(15 * 60 + 1));
    let (status, body, _) = attempt(&gw, &from("127.0.0.1"), "victim", &secret).await;
    assert_eq!(status, StatusCode::OK, "{body}");

    // Detections: back-off and lock-out, for the client id and for the address.
    let records: Vec<Value> = gw
        .gateway()
        .audit_export()
        .await
        .unwrap()
        .iter()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .filter(|r| r["kind"] == "detection")
        .collect();
    let summary: Vec<(String, String)> = records
        .iter()
        .map(|r| {
            (
                r["detail"]["action"].as_str().unwrap().to_string(),
                r["detail"]["rules"][0].as_str().unwrap().to_string(),
            )
        })
        .collect();
    for expected in [
        ("throttled", "client-id"),
        ("throttled", "token-endpoint-address"),
        ("locked_out", "client-id"),
        ("locked_out", "token-endpoint-address"),
    ] {
        assert!(
            summary.contains(&(expected.0.to_string(), expected.1.to_string())),
            "{summary:?}"
        );
    }
    assert!(records.iter().all(|r| !r.to_string().contains(&secret)));
    let metrics = reqwest::get(gw.url("/metrics"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        metrics.contains("writ_detections_total{detector=\"brute_force\",action=\"locked_out\"} 2"),
        "{metrics}"
    );
}

#[tokio::test]
async fn an_unknown_client_id_gets_the_same_answers() {
    let upstream = MockUpstream::start(KEY).await;
    let real = gateway(&upstream, "").await;
    OAuthClient::register(&real, "someone", CEILING, false).await;
    let ghost = gateway(&upstream, "").await;
    let a = fifty_wrong(&[&real], "someone").await;
    let b = fifty_wrong(&[&ghost], "someone-who-does-not-exist").await;
    let strip = |v: &[(StatusCode, Value, Option<u64>)]| -> Vec<(u16, Value, Option<u64>)> {
        v.iter()
            .map(|(s, b, r)| (s.as_u16(), b.clone(), *r))
            .collect()
    };
    assert_eq!(strip(&a), strip(&b));
}

#[tokio::test]
async fn invalid_writs_from_one_address_slow_it_then_block_it() {
    let upstream = MockUpstream::start(KEY).await;
    let gw = gateway(
        &upstream,
        "[detection.brute_force]\ndata_plane_backoff_after = 3\ndata_plane_block_after = 6\ndata_plane_block = \"10m\"\n",
    )
    .await;
    let attacker = from("127.0.0.1");
    let chat = json!({"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}]});
    let forged = format!("writ_{}", "A".repeat(200));
    let mut statuses = Vec::new();
    let mut last_wait = 0;
    for _ in 0..12 {
        let resp = attacker
            .post(gw.url("/v1/chat/completions"))
            .bearer_auth(&forged)
            .json(&chat)
            .send()
            .await
            .unwrap();
        let status = resp.status();
        if status == StatusCode::TOO_MANY_REQUESTS {
            last_wait = resp.headers()["retry-after"]
                .to_str()
                .unwrap()
                .parse()
                .unwrap();
            let body: Value = resp.json().await.unwrap();
            assert_eq!(body["error"]["code"], "too_many_failed_authentications");
            assert_eq!(body["error"]["type"], "rate_limit_error");
        }
        statuses.push(status.as_u16());
    }
    // Three invalid writs, then slowed down; ignoring that, blocked for ten minutes.
    assert_eq!(&statuses[..3], &[401, 401, 401], "{statuses:?}");
    assert!(statuses[3..].iter().all(|s| *s == 429), "{statuses:?}");
    assert!(last_wait > 500, "{last_wait}");
    // Blocked: even a valid writ from that address waits; from another address it works.
    let valid = gw.mint("demo", CEILING, 30);
    let blocked = attacker
        .post(gw.url("/v1/chat/completions"))
        .bearer_auth(&valid)
        .json(&chat)
        .send()
        .await
        .unwrap();
    assert_eq!(blocked.status(), StatusCode::TOO_MANY_REQUESTS);
    let ok = from("127.0.0.2")
        .post(gw.url("/v1/chat/completions"))
        .bearer_auth(&valid)
        .json(&chat)
        .send()
        .await
        .unwrap();
    assert_eq!(ok.status(), StatusCode::OK);
    // After the block, the address is served again.
    gw.clock().advance(Duration::from_secs(601));
    let valid = gw.mint("demo", CEILING, 30);
    let released = attacker
        .post(gw.url("/v1/chat/completions"))
        .bearer_auth(&valid)
        .json(&chat)
        .send()
        .await
        .unwrap();
    assert_eq!(released.status(), StatusCode::OK);
}

#[tokio::test]
async fn counts_hold_across_two_instances_sharing_redis() {
    let namespace = format!("bf-{:016x}", rand_u64());
    let extra = format!(
        "[limiter]\nbackend = \"redis\"\nredis_url = \"redis://127.0.0.1:6379\"\n[detection.brute_force]\nnamespace = \"{namespace}\"\n"
    );
    let upstream = MockUpstream::start(KEY).await;
    let a = gateway(&upstream, &extra).await;
    let b = gateway(&upstream, &extra).await;
    // Both instances' clocks agree (ManualClocks start at the wall clock).
    b.clock().set(writ_token::Clock::now(a.clock()));
    let (_, secret_a) = OAuthClient::register(&a, "shared", CEILING, false).await;
    let (_, _) = OAuthClient::register(&b, "shared", CEILING, false).await;
    let (_, other) = OAuthClient::register(&b, "other", CEILING, false).await;

    // Alternating between the instances, the 20 failures add up in Redis.
    let seen = fifty_wrong(&[&a, &b], "shared").await;
    check_back_off_then_lock_out(&seen);
    // Locked on both at the guessing address, for the right secret too.
    for gw in [&a, &b] {
        let (status, _, _) = attempt(gw, &from("127.0.0.1"), "shared", &secret_a).await;
        assert_eq!(status, StatusCode::TOO_MANY_REQUESTS);
    }
    // Another client from another address is served by either.
    let (status, body, _) = attempt(&b, &from("127.0.0.2"), "other", &other).await;
    assert_eq!(status, StatusCode::OK, "{body}");
}

fn rand_u64() -> u64 {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u64(u64::from(std::process::id()));
    h.finish()
}
