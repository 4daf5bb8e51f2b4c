//! Replay state in the limiter backend: with `[limiter] backend = "redis"`, two gateways
//! sharing the real Redis on 127.0.0.1:6379 (and root key and agents, as instances behind
//! one load balancer do) accept a single-use writ, a DPoP proof and a client assertion once
//! between them. When Redis is gone the checks fail closed, or, with `on_backend_failure =
//! "local"`, fall back to the instance's own memory (a Redis this test starts and stops).
//!
//! Every id is fresh per run (new writs, new DPoP keys, random `jti`s), so the tests run
//! again and again on the same Redis.
#![allow(clippy::unwrap_used)]

use std::time::Duration;

use reqwest::StatusCode;
use serde_json::{Value, json};
use writ_testkit::{DpopKey, MockUpstream, OAuthClient, OwnRedis, TestGateway};
use writ_token::{Clock, MintRequest, parse_grants};

const KEY: &str = "sk-upstream-replay-redis-0123";
const REDIS: &str = "redis://127.0.0.1:6379";
/// Every instance's `server.public_url`: DPoP proofs and assertions name it.
const PUBLIC: &str = "https://writ.replay.test";

/// A name no earlier run used.
fn fresh(prefix: &str) -> String {
    format!("{prefix}-{:016x}", rand::random::<u64>())
}

/// Two gateways on one Redis with one root key and one upstream, as two instances.
struct Pair {
    upstream: MockUpstream,
    name: String,
    a: TestGateway,
    b: TestGateway,
}

/// Config for an instance of a pair; brute-force counts (kept in Redis too) in a namespace
/// of this run's own, so failures of earlier runs never throttle this one.
fn config(upstream: &MockUpstream, name: &str, redis: &str, extra: &str) -> String {
    format!(
        "[server]\npublic_url = \"{PUBLIC}\"\n\n[detection.brute_force]\nnamespace = \"{name}\"\n\n[limiter]\nbackend = \"redis\"\nredis_url = \"{redis}\"\n{extra}\n\n[upstreams.{name}]\nkind = \"openai\"\nbase_url = \"{}\"\nallow_private_network = true\napi_key = \"{KEY}\"\n",
        upstream.base_url()
    )
}

impl Pair {
    async fn start() -> Self {
        let upstream = MockUpstream::start(KEY).await;
        let name = fresh("replay");
        let text = config(&upstream, &name, REDIS, "");
        let a = TestGateway::start(&text).await;
        let b = TestGateway::start(&text).await;
        share_root_key(&a, &b);
        Self {
            upstream,
            name,
            a,
            b,
        }
    }

    fn grant(&self, single_use: bool) -> String {
        format!(
            r#"{{"type":"writ:llm","upstream":"{}","single_use":{single_use}}}"#,
            self.name
        )
    }

    fn ceiling(&self) -> String {
        format!(r#"[{{"type":"writ:llm","upstream":"{}"}}]"#, self.name)
    }
}

/// Gives `to` the root key of `from`, as an operator copies `keys/` to every instance.
fn share_root_key(from: &TestGateway, to: &TestGateway) {
    let file = |gw: &TestGateway| gw.gateway().data_dir().join("keys").join("root-1.key");
    std::fs::copy(file(from), file(to)).unwrap();
    to.gateway().reload_keys().unwrap();
}

fn body() -> Value {
    json!({"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 5})
}

/// A chat completion with `authorization` (`Bearer …` or `DPoP …`) and an optional proof.
async fn chat(gw: &TestGateway, authorization: &str, proof: Option<&str>) -> (StatusCode, Value) {
    let mut req = reqwest::Client::new()
        .post(gw.url("/v1/chat/completions"))
        .header("authorization", authorization)
        .json(&body());
    if let Some(p) = proof {
        req = req.header("DPoP", p);
    }
    let resp = req.send().await.unwrap();
    (resp.status(), resp.json().await.unwrap())
}

async fn bearer(gw: &TestGateway, writ: &str) -> (StatusCode, Value) {
    chat(gw, &format!("Bearer {writ}"), None).await
}

/// A token request with a client assertion and an optional DPoP proof.
async fn token(
    gw: &TestGateway,
    ceiling: &str,
    assertion: &str,
    proof: Option<&str>,
) -> (StatusCode, Value) {
    let mut req = reqwest::Client::new().post(gw.url("/oauth2/token")).form(&[
        ("grant_type", "client_credentials"),
        (
            "client_assertion_type",
            "urn:ietf:params:oauth:client-assertion-type:jwt-bearer",
        ),
        ("client_assertion", assertion),
        ("authorization_details", ceiling),
    ]);
    if let Some(p) = proof {
        req = req.header("DPoP", p);
    }
    let resp = req.send().await.unwrap();
    (resp.status(), resp.json().await.unwrap())
}

/// An assertion for the instances' shared public URL.
fn assertion(gw: &TestGateway, client: &OAuthClient, jti: &str) -> String {
    let now = gw
        .clock()
        .now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let claims = json!({"iss": client.name, "sub": client.name, "aud": format!("{PUBLIC}/oauth2/token"), "exp": now + 60, "iat": now, "jti": jti});
    client.assertion_with(
        &jsonwebtoken::Header::new(jsonwebtoken::Algorithm::EdDSA),
        &claims,
    )
}

/// Registers agent `holder` on both instances with one key pair.
async fn register_on_both(p: &Pair) -> OAuthClient {
    let (client, _) = OAuthClient::register(&p.a, "holder", &p.ceiling(), false).await;
    let agent =
        p.a.gateway()
            .store()
            .agent("default", "holder")
            .await
            .unwrap()
            .unwrap();
    p.b.gateway().store().put_agent(&agent).await.unwrap();
    client
}

/// A writ minted by `gw`, bound to `key` (`cnf_jkt`).
fn bound_writ(gw: &TestGateway, grant: &str, ceiling: &str, key: &DpopKey) -> String {
    let (ceiling, grants) = (parse_grants(ceiling).unwrap(), parse_grants(grant).unwrap());
    let thumbprint = key.thumbprint();
    let req = MintRequest {
        tenant: "default",
        agent: "demo",
        ceiling: &ceiling,
        grants: &grants,
        ttl: Duration::from_secs(30),
        max_ttl: Duration::from_secs(30),
        now: gw.clock().now(),
        cnf_jkt: Some(&thumbprint),
        audience: None,
    };
    writ_token::mint(&gw.keys().signing, &req).unwrap().0
}

#[tokio::test]
async fn a_single_use_writ_used_on_one_instance_is_refused_on_another() {
    let p = Pair::start().await;
    // The instances share the root key: a plain writ minted on A works on B, again and again.
    let plain = p.a.mint(&p.name, &p.grant(false), 30);
    for _ in 0..2 {
        assert_eq!(bearer(&p.b, &plain).await.0, StatusCode::OK);
    }
    for (first, second) in [(&p.a, &p.b), (&p.b, &p.a)] {
        let once = first.mint(&p.name, &p.grant(true), 30);
        let (status, v) = bearer(first, &once).await;
        assert_eq!(status, StatusCode::OK, "{v}");
        for gw in [second, first] {
            let (status, v) = bearer(gw, &once).await;
            assert_eq!(status, StatusCode::FORBIDDEN, "{v}");
            assert_eq!(v["error"]["code"], "writ_already_used");
        }
    }
    assert_eq!(p.upstream.requests().len(), 4);
}

#[tokio::test]
async fn a_single_use_writ_used_in_its_last_second_is_still_used_up() {
    // Expiry is checked to the second: a writ still verifies during the second after its
    // `expires_at`. Its id must be remembered past that, on every instance.
    let p = Pair::start().await;
    let once = p.a.mint(&p.name, &p.grant(true), 30);
    let expires_at = writ_token::decode(&once)
        .unwrap()
        .verify(&p.a.keys().trusted)
        .unwrap()
        .claims()
        .expires_at;
    for gw in [&p.a, &p.b] {
        gw.clock().set(expires_at + Duration::from_millis(500));
    }
    let (status, v) = bearer(&p.a, &once).await;
    assert_eq!(status, StatusCode::OK, "{v}");
    for gw in [&p.b, &p.a] {
        let (status, v) = bearer(gw, &once).await;
        assert_eq!(status, StatusCode::FORBIDDEN, "{v}");
        assert_eq!(v["error"]["code"], "writ_already_used");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_instances_racing_for_one_single_use_writ_admit_exactly_one() {
    let p = Pair::start().await;
    const ROUNDS: usize = 8;
    for round in 0..ROUNDS {
        let once = p.a.mint(&p.name, &p.grant(true), 30);
        // Two requests on each instance, all sent at once.
        let tasks: Vec<_> = (0..4)
            .map(|i| {
                let url = [&p.a, &p.b][i % 2].url("/v1/chat/completions");
                let once = once.clone();
                tokio::spawn(async move {
                    let resp = reqwest::Client::new()
                        .post(url)
                        .bearer_auth(once)
                        .json(&body())
                        .send()
                        .await
                        .unwrap();
                    let status = resp.status();
                    let v: Value = resp.json().await.unwrap();
                    (status, v["error"]["code"].clone())
                })
            })
            .collect();
        let mut admitted = 0;
        for t in tasks {
            match t.await.unwrap() {
                (StatusCode::OK, _) => admitted += 1,
                (StatusCode::FORBIDDEN, code) => assert_eq!(code, "writ_already_used"),
                other => panic!("round {round}: unexpected {other:?}"),
            }
        }
        assert_eq!(admitted, 1, "round {round}");
    }
    assert_eq!(p.upstream.requests().len(), ROUNDS);
}

#[tokio::test]
async fn a_dpop_proof_replayed_on_another_instance_is_refused() {
    let p = Pair::start().await;
    let key = DpopKey::new();
    let writ = bound_writ(&p.a, &p.grant(false), &p.ceiling(), &key);
    let url = format!("{PUBLIC}/v1/chat/completions");
    let auth = format!("DPoP {writ}");
    let proof = key.proof(&p.a, "POST", &url, Some(&writ), &fresh("p"));
    let (status, v) = chat(&p.a, &auth, Some(&proof)).await;
    assert_eq!(status, StatusCode::OK, "{v}");
    for gw in [&p.b, &p.a] {
        let (status, v) = chat(gw, &auth, Some(&proof)).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{v}");
        assert_eq!(v["error"]["code"], "invalid_dpop_proof");
        assert!(
            v["error"]["message"]
                .as_str()
                .unwrap()
                .contains("already used"),
            "{v}"
        );
    }
    // The same writ with a fresh proof is accepted on B: what B refused was the replay.
    let fresh_proof = key.proof(&p.b, "POST", &url, Some(&writ), &fresh("p"));
    assert_eq!(
        chat(&p.b, &auth, Some(&fresh_proof)).await.0,
        StatusCode::OK
    );
    assert_eq!(p.upstream.requests().len(), 2);
}

#[tokio::test]
async fn a_client_assertion_or_token_dpop_proof_replayed_on_another_instance_is_refused() {
    let p = Pair::start().await;
    let client = register_on_both(&p).await;
    let ceiling = p.ceiling();
    let used = assertion(&p.a, &client, &fresh("a"));
    let (status, v) = token(&p.a, &ceiling, &used, None).await;
    assert_eq!(status, StatusCode::OK, "{v}");
    // A fresh assertion works on B: the agent and the audience are B's too.
    let (status, v) = token(&p.b, &ceiling, &assertion(&p.b, &client, &fresh("a")), None).await;
    assert_eq!(status, StatusCode::OK, "{v}");

    // A DPoP proof binding a writ at A's token endpoint cannot bind another at B's.
    let key = DpopKey::new();
    let proof = key.proof(
        &p.a,
        "POST",
        &format!("{PUBLIC}/oauth2/token"),
        None,
        &fresh("t"),
    );
    let fresh_assertion = assertion(&p.a, &client, &fresh("a"));
    let (status, v) = token(&p.a, &ceiling, &fresh_assertion, Some(&proof)).await;
    assert_eq!(status, StatusCode::OK, "{v}");
    assert_eq!(v["token_type"], "DPoP");
    let fresh_assertion = assertion(&p.b, &client, &fresh("a"));
    let (status, v) = token(&p.b, &ceiling, &fresh_assertion, Some(&proof)).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{v}");
    assert_eq!(v["error"], "invalid_dpop_proof");
    assert_eq!(v["error_description"], "DPoP proof was already used");

    // Last, as a refused assertion counts as a failed authentication (brute force): the
    // assertion A accepted is refused on B.
    let (status, v) = token(&p.b, &ceiling, &used, None).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "{v}");
    assert_eq!(v["error"], "invalid_client");
    assert_eq!(v["error_description"], "assertion jti was already used");
}

#[tokio::test]
async fn with_redis_gone_replay_checks_fail_closed_or_fall_back_to_local_memory() {
    let mut redis = OwnRedis::start();
    let upstream = MockUpstream::start(KEY).await;
    let name = fresh("down");
    let closed = TestGateway::start(&config(&upstream, &name, &redis.url(), "")).await;
    let local = TestGateway::start(&config(
        &upstream,
        &name,
        &redis.url(),
        "on_backend_failure = \"local\"",
    ))
    .await;
    let grant = format!(r#"{{"type":"writ:llm","upstream":"{name}","single_use":true}}"#);
    let ceiling = format!(r#"[{{"type":"writ:llm","upstream":"{name}"}}]"#);
    // Used while Redis is up: recorded in Redis and, with the fallback, in memory too.
    let used_before = local.mint(&name, &grant, 30);
    assert_eq!(bearer(&local, &used_before).await.0, StatusCode::OK);
    let (client, _) = OAuthClient::register(&closed, "holder", &ceiling, false).await;

    redis.stop();

    // Fail closed: nothing is accepted that might be a replay. No limit is declared, so
    // each 503 is the replay check's.
    let (status, v) = bearer(&closed, &closed.mint(&name, &grant, 30)).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{v}");
    assert_eq!(v["error"]["code"], "limiter_unavailable");
    let key = DpopKey::new();
    let writ = bound_writ(&closed, &grant.replace("true", "false"), &ceiling, &key);
    let url = format!("{PUBLIC}/v1/chat/completions");
    let proof = key.proof(&closed, "POST", &url, Some(&writ), &fresh("p"));
    let (status, v) = chat(&closed, &format!("DPoP {writ}"), Some(&proof)).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{v}");
    assert_eq!(v["error"]["code"], "limiter_unavailable");
    let (status, v) = token(
        &closed,
        &ceiling,
        &assertion(&closed, &client, &fresh("a")),
        None,
    )
    .await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{v}");
    assert_eq!(v["error"], "temporarily_unavailable");
    assert!(
        v["error_description"].as_str().unwrap().contains("replay"),
        "{v}"
    );

    // Local: this instance's memory decides, and remembers what it saw while Redis was up.
    let (status, v) = bearer(&local, &used_before).await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{v}");
    assert_eq!(v["error"]["code"], "writ_already_used");
    let once = local.mint(&name, &grant, 30);
    assert_eq!(bearer(&local, &once).await.0, StatusCode::OK);
    assert_eq!(bearer(&local, &once).await.0, StatusCode::FORBIDDEN);

    // Redis back: the closed instance accepts single-use writs again, once each.
    redis.restart();
    let mut attempts = 0;
    let once = closed.mint(&name, &grant, 30);
    loop {
        attempts += 1;
        let status = bearer(&closed, &once).await.0;
        if status == StatusCode::OK {
            break;
        }
        assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
        assert!(attempts < 50, "never recovered");
    }
    assert_eq!(bearer(&closed, &once).await.0, StatusCode::FORBIDDEN);
}
