//! Two gateways on one PostgreSQL and one Redis: an agent added, a credential rotated, a
//! policy changed or a writ revoked through instance A takes effect on instance B within
//! one second (polled with a deadline).
#![allow(clippy::unwrap_used)]

use std::time::{Duration, Instant};

use base64::Engine;
use serde_json::{Value, json};
use writ_testkit::{FreshDatabase, MockUpstream, OAuthClient, OwnRedis, TestGateway};

const FILE_KEY: &str = "sk-file-key-0123456789";
const V1: &str = "sk-acme-first-0123456789";
const V2: &str = "sk-acme-second-0123456789";
const CEILING: &str = r#"{"type":"writ:llm","upstream":"openai"}"#;
const GRANT: &str = r#"{"type":"writ:llm","upstream":"openai"}"#;
/// How soon a change made on A must show on B.
const WITHIN: Duration = Duration::from_secs(1);

fn config(mock: &str, db: &FreshDatabase, redis: &OwnRedis) -> String {
    let master = base64::engine::general_purpose::STANDARD.encode([42u8; 32]);
    format!(
        "[store]\nurl = \"{}\"\nmaster_key = \"{master}\"\npoll_interval = \"200ms\"\n\n\
         [limiter]\nbackend = \"redis\"\nredis_url = \"{}\"\n\n\
         [upstreams.openai]\nkind = \"openai\"\nbase_url = \"{mock}\"\nallow_private_network = true\napi_key = \"{FILE_KEY}\"\n\n\
         [tenants.acme]\n",
        db.url(),
        redis.url()
    )
}

async fn chat(gw: &TestGateway, writ: &str, marker: &str) -> (u16, Value) {
    let resp = reqwest::Client::new()
        .post(gw.url("/v1/chat/completions"))
        .bearer_auth(writ)
        .json(&json!({"model": "gpt-4o-mini", "user": marker, "messages": [{"role": "user", "content": "hi"}]}))
        .send()
        .await
        .unwrap();
    let status = resp.status().as_u16();
    (status, resp.json().await.unwrap_or(Value::Null))
}

/// Polls `check` until it holds or `WITHIN` has passed since `since`; how long it took.
async fn within_a_second<F, Fut>(since: Instant, what: &str, mut check: F) -> Duration
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    loop {
        if check().await {
            let took = since.elapsed();
            assert!(
                took <= WITHIN,
                "{what} reached instance B only after {took:?}"
            );
            return took;
        }
        assert!(
            since.elapsed() < WITHIN,
            "{what} did not reach instance B within {WITHIN:?}"
        );
        tokio::task::yield_now().await;
    }
}

fn key_of_last(mock: &MockUpstream, marker: &str) -> Option<String> {
    mock.requests().iter().rev().find_map(|r| {
        let body: Value = serde_json::from_slice(&r.body).ok()?;
        (body["user"] == marker).then(|| r.headers["authorization"].to_str().unwrap().to_string())
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn changes_through_one_instance_reach_the_other_within_a_second() {
    let db = FreshDatabase::create().await;
    let redis = OwnRedis::start();
    let mock = MockUpstream::start_accepting(&[FILE_KEY, V1, V2]).await;
    let cfg = config(&mock.base_url(), &db, &redis);
    let a = std::sync::Arc::new(TestGateway::start(&cfg).await);
    let b = std::sync::Arc::new(TestGateway::start_beside(&cfg, &a).await);
    let writ = a.mint_in("acme", CEILING, GRANT, 30);

    // Load on both instances while the credential is set and rotated: none may be lost.
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let load = {
        let (a, b, writ, stop) = (a.clone(), b.clone(), writ.clone(), stop.clone());
        tokio::spawn(async move {
            let mut statuses = Vec::new();
            let mut i = 0;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                i += 1;
                let (ma, mb) = (format!("load-a-{i}"), format!("load-b-{i}"));
                let (ra, rb) = tokio::join!(chat(&a, &writ, &ma), chat(&b, &writ, &mb));
                statuses.extend([ra.0, rb.0]);
            }
            statuses
        })
    };

    // A credential set and then rotated on A: B's calls carry it.
    for (n, key) in [V1, V2].into_iter().enumerate() {
        let g = a.gateway();
        let fp = writ_providers::UpstreamSecret::new(key).fingerprint();
        let since = Instant::now();
        g.store()
            .add_credential(g.vault(), "acme", "openai", key, &fp, Some("ops"), 1)
            .await
            .unwrap();
        g.reload().await.unwrap();
        let mut i = 0;
        let took = within_a_second(since, "a credential", || {
            i += 1;
            let marker = format!("cred-{n}-{i}");
            let (b, mock, writ) = (&b, &mock, &writ);
            async move {
                let (status, _) = chat(b, writ, &marker).await;
                status == 200 && key_of_last(mock, &marker) == Some(format!("Bearer {key}"))
            }
        })
        .await;
        eprintln!("credential version {} reached B after {took:?}", n + 1);
    }
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let statuses = load.await.unwrap();
    assert!(
        statuses.len() >= 4,
        "the load ran ({} requests)",
        statuses.len()
    );
    assert!(statuses.iter().all(|s| *s == 200), "{statuses:?}");
    eprintln!("{} requests under the rotations, none lost", statuses.len());

    // A policy set on A: B refuses what it forbids.
    let since = Instant::now();
    a.gateway()
        .store()
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
    a.gateway().reload().await.unwrap();
    assert_eq!(chat(&a, &writ, "policy-a").await.0, 403);
    let took = within_a_second(since, "a policy", || async {
        let (status, v) = chat(&b, &writ, "policy-b").await;
        status == 403 && v["error"]["code"] == "denied_by_policy"
    })
    .await;
    eprintln!("policy reached B after {took:?}");
    a.gateway()
        .store()
        .delete_rule(writ_store::RuleKind::Policy, "acme", "no-mini")
        .await
        .unwrap();
    a.gateway().reload().await.unwrap();
    within_a_second(Instant::now(), "a policy's removal", || async {
        chat(&b, &writ, "policy-gone").await.0 == 200
    })
    .await;

    // Every listening connection cut (a missed notification): the poll catches up.
    let pool = sqlx::PgPool::connect(&db.url()).await.unwrap();
    let cut: Vec<(bool,)> = sqlx::query_as(
        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity
         WHERE datname = current_database() AND query ILIKE 'LISTEN%'",
    )
    .fetch_all(&pool)
    .await
    .unwrap();
    assert!(!cut.is_empty(), "the instances listen for changes");
    let since = Instant::now();
    a.gateway()
        .store()
        .put_rule(
            writ_store::RuleKind::Policy,
            &writ_store::RuleRecord {
                tenant: "acme".into(),
                name: "no-mini".into(),
                body: "reject if model(\"gpt-4o-mini\");".into(),
                created_at: 2,
                updated_at: 2,
            },
        )
        .await
        .unwrap();
    within_a_second(since, "a change while notifications were lost", || async {
        chat(&b, &writ, "missed").await.0 == 403
    })
    .await;
    a.gateway()
        .store()
        .delete_rule(writ_store::RuleKind::Policy, "acme", "no-mini")
        .await
        .unwrap();
    within_a_second(Instant::now(), "the next change", || async {
        chat(&b, &writ, "after-missed").await.0 == 200
    })
    .await;

    // An agent registered through A gets a writ from B's token endpoint.
    let since = Instant::now();
    let (_, secret) = OAuthClient::register(&a, "late-agent", CEILING, false).await;
    let took = within_a_second(since, "an agent", || async {
        reqwest::Client::new()
            .post(b.url("/oauth2/token"))
            .basic_auth("late-agent", Some(&secret))
            .form(&[
                ("grant_type", "client_credentials"),
                ("authorization_details", &format!("[{GRANT}]")),
            ])
            .send()
            .await
            .unwrap()
            .status()
            == 200
    })
    .await;
    eprintln!("agent reached B after {took:?}");

    // The writ's agent revoked through A: B refuses the writ.
    let since = Instant::now();
    a.gateway()
        .revoke(
            &writ_token::Revocation::Agent {
                tenant: "acme".into(),
                agent: "demo".into(),
            },
            &writ_store::RevocationNote::default(),
        )
        .await
        .unwrap();
    let took = within_a_second(since, "a revocation", || async {
        chat(&b, &writ, "revoked").await.0 == 401
    })
    .await;
    eprintln!("revocation reached B after {took:?}");
}
