//! `WritSource` against the real gateway (the test kit's, with a settable clock): writs are
//! reused, renewed before they expire and minted once however many requests wait; a
//! request refused as `expired_writ` is sent once more with a fresh writ; and the token
//! endpoint's refusals reach the caller as typed errors.
#![allow(clippy::unwrap_used)]

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use biscuit_auth::{Algorithm as KeyAlg, KeyPair};
use serde_json::{Value, json};
use writ_client::{DpopKey, Error, WritSource};
use writ_store::{Agent, AgentCredentials, AgentKey};
use writ_testkit::{MockUpstream, TestGateway, closed_port_url};

const KEY: &str = "sk-upstream-writ-client";
const CEILING: &str = r#"[{"type":"writ:llm","upstream":"demo","models":["gpt-4o-mini"]}]"#;

fn grants() -> Value {
    json!([{"type": "writ:llm", "upstream": "demo", "actions": ["chat"], "models": ["gpt-4o-mini"]}])
}

fn chat() -> Value {
    json!({"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}]})
}

/// A gateway in front of a recording mock upstream `demo`.
async fn gateway() -> (MockUpstream, Arc<TestGateway>) {
    let upstream = MockUpstream::start(KEY).await;
    let config = format!(
        "[detection.brute_force]\nbackoff_after = 1000\nlockout_after = 1000\n[upstreams.demo]\nkind = \"openai\"\nbase_url = \"{}\"\nallow_private_network = true\napi_key = \"{KEY}\"\n",
        upstream.base_url()
    );
    (upstream, Arc::new(TestGateway::start(&config).await))
}

/// Registers agent `name` with a fresh Ed25519 (or P-256) public key; returns the private
/// key's PKCS#8 PEM.
async fn register(gw: &TestGateway, name: &str, es256: bool) -> String {
    let pair = KeyPair::new_with_algorithm(if es256 {
        KeyAlg::Secp256r1
    } else {
        KeyAlg::Ed25519
    });
    let agent = Agent {
        tenant: "default".into(),
        name: name.into(),
        ceiling: writ_token::parse_grants(CEILING).unwrap(),
        max_ttl: Duration::from_secs(30),
        credentials: AgentCredentials {
            public_keys: vec![AgentKey::from_pem(&pair.public().to_pem().unwrap()).unwrap()],
            secret_hash: None,
        },
    };
    gw.gateway().store().put_agent(&agent).await.unwrap();
    pair.to_private_key_pem().unwrap().to_string()
}

/// The gateway's clock, less a lag the test sets: a client whose clock runs behind.
struct GatewayTime {
    gw: Arc<TestGateway>,
    lag: Mutex<Duration>,
}

impl GatewayTime {
    pub fn new(gw: Arc<TestGateway>) -> Arc<Self> {
        Arc::new(Self {
            gw,
            lag: Mutex::new(Duration::ZERO),
        })
    }

    pub fn set_lag(&self, lag: Duration) {
        *self.lag.lock().unwrap() = lag;
    }
}

impl writ_client::Clock for GatewayTime {
    fn now(&self) -> SystemTime {
        writ_token::Clock::now(self.gw.clock()) - *self.lag.lock().unwrap()
    }
}

/// Every audit record of `kind`.
async fn audit(gw: &TestGateway, kind: &str) -> Vec<Value> {
    gw.gateway().audit_checkpoint().await;
    gw.gateway()
        .audit_export()
        .await
        .unwrap()
        .iter()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .filter(|r| r["kind"] == kind)
        .collect()
}

/// A source for `agent` at `gw` minting `ttl`-second writs, on the gateway's clock.
fn source(
    gw: &Arc<TestGateway>,
    agent: &str,
    pem: &str,
    ttl: u64,
) -> (WritSource, Arc<GatewayTime>) {
    let time = GatewayTime::new(gw.clone());
    let source = WritSource::builder(gw.url("/oauth2/token"), agent)
        .private_key_pem(pem)
        .unwrap()
        .grants(&grants())
        .unwrap()
        .expires_in(ttl)
        .clock(time.clone())
        .build()
        .unwrap();
    (source, time)
}

#[tokio::test]
async fn reqwest_makes_100_calls_across_many_writ_expiries() {
    let (upstream, gw) = gateway().await;
    let pem = register(&gw, "long-runner", false).await;
    let (writs, _) = source(&gw, "long-runner", &pem, 2);
    let http = reqwest::Client::new();
    for i in 0..100 {
        let response = writs
            .send(http.post(gw.url("/v1/chat/completions")).json(&chat()))
            .await
            .unwrap();
        assert_eq!(
            response.status(),
            200,
            "call {i}: {}",
            response.text().await.unwrap()
        );
        // Each call takes a quarter of a second of the gateway's time: 25 s in all, a dozen
        // lifetimes of a 2 s writ.
        gw.clock().advance(Duration::from_millis(250));
    }
    let stats = writs.stats();
    // A 2 s writ is used for its first second, then replaced.
    assert!((20..=30).contains(&stats.mints), "{stats:?}");
    assert_eq!(
        stats.expired_retries, 0,
        "renewed before expiry, never refused"
    );
    assert_eq!(upstream.requests().len(), 100);
    // The gateway saw it: one mint record per writ, and the allowed requests spread over
    // exactly those writs.
    let minted = audit(&gw, "writ_minted").await;
    assert_eq!(minted.len() as u64, stats.mints);
    let allowed = audit(&gw, "request_allowed").await;
    assert_eq!(allowed.len(), 100);
    let mut used: Vec<&str> = allowed
        .iter()
        .map(|r| r["writ"].as_str().unwrap())
        .collect();
    used.sort_unstable();
    used.dedup();
    assert_eq!(used.len() as u64, stats.mints);
    // No writ reached the upstream.
    for r in upstream.requests() {
        assert_eq!(r.headers["authorization"], format!("Bearer {KEY}"));
    }
}

#[tokio::test]
async fn many_requests_needing_a_writ_share_one_mint() {
    let (_upstream, gw) = gateway().await;
    let pem = register(&gw, "crowd", true).await;
    let (writs, _) = source(&gw, "crowd", &pem, 30);
    let http = reqwest::Client::new();
    let calls = (0..20).map(|_| {
        let writs = writs.clone();
        let request = http.post(gw.url("/v1/chat/completions")).json(&chat());
        tokio::spawn(async move { writs.send(request).await.unwrap().status() })
    });
    for call in calls.collect::<Vec<_>>() {
        assert_eq!(call.await.unwrap(), 200);
    }
    assert_eq!(writs.stats().mints, 1);
    assert_eq!(audit(&gw, "writ_minted").await.len(), 1);
}

#[tokio::test]
async fn dpop_binds_every_writ_and_proves_every_request() {
    let (_upstream, gw) = gateway().await;
    let pem = register(&gw, "bound", true).await;
    let time = GatewayTime::new(gw.clone());
    let writs = WritSource::builder(gw.url("/oauth2/token"), "bound")
        .private_key_pem(&pem)
        .unwrap()
        .grants(&grants())
        .unwrap()
        .expires_in(2)
        .dpop(DpopKey::generate().unwrap())
        .clock(time)
        .build()
        .unwrap();
    let http = reqwest::Client::new();
    for _ in 0..12 {
        let response = writs
            .send(http.post(gw.url("/v1/chat/completions")).json(&chat()))
            .await
            .unwrap();
        assert_eq!(response.status(), 200, "{}", response.text().await.unwrap());
        gw.clock().advance(Duration::from_millis(500));
    }
    assert!(writs.stats().mints >= 4, "{:?}", writs.stats());
    for minted in audit(&gw, "writ_minted").await {
        assert_eq!(minted["detail"]["dpop_bound"], true, "{minted}");
    }
    // The binding is real: the writ alone, without a proof, is refused.
    let writ = writs.writ().await.unwrap();
    assert!(writ.dpop_bound());
    let stolen = http
        .post(gw.url("/v1/chat/completions"))
        .header("authorization", format!("Bearer {}", writ.token()))
        .json(&chat())
        .send()
        .await
        .unwrap();
    assert_eq!(stolen.status(), 401);
    let body: Value = stolen.json().await.unwrap();
    assert_eq!(body["error"]["code"], "invalid_dpop_proof", "{body}");
}

#[tokio::test]
async fn an_expired_writ_is_sent_again_once_with_a_fresh_one() {
    let (upstream, gw) = gateway().await;
    let pem = register(&gw, "late", false).await;
    let (writs, time) = source(&gw, "late", &pem, 2);
    let http = reqwest::Client::new();
    let first = writs
        .send(http.post(gw.url("/v1/chat/completions")).json(&chat()))
        .await
        .unwrap();
    assert_eq!(first.status(), 200);
    // Five seconds pass at the gateway, none on the client's clock: the client still
    // believes its writ fresh, and the gateway refuses it as expired.
    gw.clock().advance(Duration::from_secs(5));
    time.set_lag(Duration::from_secs(5));
    let second = writs
        .send(http.post(gw.url("/v1/chat/completions")).json(&chat()))
        .await
        .unwrap();
    assert_eq!(second.status(), 200, "{}", second.text().await.unwrap());
    assert_eq!(
        writs.stats(),
        writ_client::Stats {
            mints: 2,
            expired_retries: 1
        }
    );
    // Refused once at the gateway, forwarded twice.
    let denied = audit(&gw, "request_denied").await;
    assert_eq!(denied.len(), 1, "{denied:?}");
    assert_eq!(upstream.requests().len(), 2);
    let bodies: Vec<Value> = upstream
        .requests()
        .iter()
        .map(|r| serde_json::from_slice(&r.body).unwrap())
        .collect();
    assert_eq!(bodies[1], chat(), "the retry sends the same body");
}

/// A stand-in gateway that issues writs and then refuses every one as expired: the client
/// must give up after one retry and hand the refusal to its caller.
#[tokio::test]
async fn a_request_is_retried_once_not_forever() {
    let minted = Arc::new(AtomicU64::new(0));
    let served = Arc::new(AtomicU64::new(0));
    let app = axum::Router::new()
        .route(
            "/oauth2/token",
            axum::routing::post({
                let minted = minted.clone();
                move || async move {
                    let n = minted.fetch_add(1, Ordering::SeqCst);
                    axum::Json(json!({"access_token": format!("writ_fake{n}"), "token_type": "Bearer", "expires_in": 30}))
                }
            }),
        )
        .route(
            "/v1/chat/completions",
            axum::routing::post({
                let served = served.clone();
                move || async move {
                    served.fetch_add(1, Ordering::SeqCst);
                    (
                        http::StatusCode::UNAUTHORIZED,
                        axum::Json(json!({"error": {"message": "The writ has expired; mint a new one.", "type": "authentication_error", "code": "expired_writ"}})),
                    )
                }
            }),
        );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await });
    let writs = WritSource::builder(format!("{base}/oauth2/token"), "agent")
        .client_secret("not-checked-here")
        .grants(&grants())
        .unwrap()
        .build()
        .unwrap();
    let response = writs
        .send(
            reqwest::Client::new()
                .post(format!("{base}/v1/chat/completions"))
                .json(&chat()),
        )
        .await
        .unwrap();
    assert_eq!(response.status(), 401);
    let body: Value = response.json().await.unwrap();
    assert_eq!(
        body["error"]["code"], "expired_writ",
        "the caller still reads the refusal"
    );
    assert_eq!(served.load(Ordering::SeqCst), 2);
    assert_eq!(minted.load(Ordering::SeqCst), 2);
    assert_eq!(writs.stats().expired_retries, 1);
}

#[tokio::test]
async fn a_wrong_private_key_is_refused_as_invalid_client() {
    let (_upstream, gw) = gateway().await;
    register(&gw, "victim", false).await;
    let other = KeyPair::new_with_algorithm(KeyAlg::Ed25519)
        .to_private_key_pem()
        .unwrap()
        .to_string();
    let (writs, _) = source(&gw, "victim", &other, 30);
    let err = writs.writ().await.unwrap_err();
    assert_eq!(err.oauth_error(), Some("invalid_client"), "{err}");
    assert!(matches!(err, Error::Refused { status: 401, .. }), "{err:?}");
    let message = err.to_string();
    assert!(message.contains(&gw.url("/oauth2/token")), "{message}");
    assert!(message.contains("writ agent show"), "{message}");
    assert_eq!(writs.stats().mints, 0);
}

#[tokio::test]
async fn an_unreachable_token_endpoint_is_a_clear_error() {
    let url = format!("{}/oauth2/token", closed_port_url());
    let writs = WritSource::builder(url.clone(), "agent")
        .client_secret("s")
        .grants(&grants())
        .unwrap()
        .build()
        .unwrap();
    let err = writs
        .send(reqwest::Client::new().post("http://127.0.0.1:9/v1/chat/completions"))
        .await
        .unwrap_err();
    assert!(matches!(err, Error::Unreachable { .. }), "{err:?}");
    let message = err.to_string();
    assert!(
        message.contains(&url) && message.contains("unreachable"),
        "{message}"
    );
}

#[tokio::test]
async fn grants_beyond_the_ceiling_surface_the_gateways_refusal() {
    let (_upstream, gw) = gateway().await;
    let pem = register(&gw, "narrow", false).await;
    let writs = WritSource::builder(gw.url("/oauth2/token"), "narrow")
        .private_key_pem(&pem)
        .unwrap()
        .grants(&json!([{"type": "writ:llm", "upstream": "demo", "models": ["gpt-4o"]}]))
        .unwrap()
        .build()
        .unwrap();
    let err = writs.writ().await.unwrap_err();
    assert_eq!(
        err.oauth_error(),
        Some("invalid_authorization_details"),
        "{err}"
    );
    let Error::Refused { description, .. } = &err else {
        panic!("{err:?}")
    };
    assert!(
        description
            .as_deref()
            .unwrap()
            .contains("beyond what agent `narrow` may be granted"),
        "{err}"
    );
}

#[test]
fn bad_settings_are_refused_before_any_request() {
    let builder = || WritSource::builder("http://127.0.0.1:1/oauth2/token", "a");
    assert!(matches!(
        builder().grants(&json!([])),
        Err(Error::InvalidGrants)
    ));
    assert!(matches!(
        builder().grants(&json!({"type": "writ:llm"})),
        Err(Error::InvalidGrants)
    ));
    assert!(matches!(
        builder().private_key_pem("-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n"),
        Err(Error::InvalidKey)
    ));
    let no_credential = builder().grants(&grants()).unwrap().build();
    assert!(matches!(no_credential, Err(Error::Config(_))));
    let no_grants = builder().client_secret("s").build();
    assert!(matches!(no_grants, Err(Error::Config(_))));
}
