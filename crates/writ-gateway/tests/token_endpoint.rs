//! `POST /oauth2/token`: client credentials with private_key_jwt or a secret, token
//! exchange, and every way a request is refused without minting anything.
#![allow(clippy::unwrap_used)]

use std::time::{Duration, UNIX_EPOCH};

use jsonwebtoken::{Algorithm, Header};
use reqwest::StatusCode;
use serde_json::{Value, json};
use writ_testkit::{MockUpstream, OAuthClient, TestGateway};

const KEY: &str = "sk-upstream-token-endpoint";
const CEILING: &str =
    r#"[{"type":"writ:llm","upstream":"demo","models":["gpt-4o-mini","gpt-4o"]}]"#;
const ASK: &str = r#"[{"type":"writ:llm","upstream":"demo","models":["gpt-4o-mini"]}]"#;

async fn setup() -> (MockUpstream, TestGateway) {
    let upstream = MockUpstream::start(KEY).await;
    // These tests make many failed attempts on purpose; the brute-force guard that would
    // slow them down is tested in brute_force.rs.
    let config = format!(
        "[detection.brute_force]\nbackoff_after = 1000\nlockout_after = 1000\n[upstreams.demo]\nkind = \"openai\"\nbase_url = \"{}\"\nallow_private_network = true\napi_key = \"{KEY}\"\n",
        upstream.base_url()
    );
    (upstream, TestGateway::start(&config).await)
}

fn now(gw: &TestGateway) -> u64 {
    writ_token::Clock::now(gw.clock())
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

async fn token(gw: &TestGateway, form: &[(&str, &str)]) -> (StatusCode, Value) {
    let resp = reqwest::Client::new()
        .post(gw.url("/oauth2/token"))
        .form(form)
        .send()
        .await
        .unwrap();
    let status = resp.status();
    assert_eq!(resp.headers()["cache-control"], "no-store");
    (status, resp.json().await.unwrap())
}

async fn by_assertion(gw: &TestGateway, assertion: &str, details: &str) -> (StatusCode, Value) {
    token(
        gw,
        &[
            ("grant_type", "client_credentials"),
            (
                "client_assertion_type",
                "urn:ietf:params:oauth:client-assertion-type:jwt-bearer",
            ),
            ("client_assertion", assertion),
            ("authorization_details", details),
        ],
    )
    .await
}

async fn chat(gw: &TestGateway, writ: &str, model: &str) -> StatusCode {
    reqwest::Client::new()
        .post(gw.url("/v1/chat/completions"))
        .bearer_auth(writ)
        .json(&json!({"model": model, "messages": [{"role": "user", "content": "hi"}]}))
        .send()
        .await
        .unwrap()
        .status()
}

fn refused(result: (StatusCode, Value), status: StatusCode, error: &str) {
    assert_eq!(result.0, status, "{}", result.1);
    assert_eq!(result.1["error"], error, "{}", result.1);
    assert!(
        result.1.get("access_token").is_none(),
        "nothing may be minted"
    );
    assert!(result.1["error_description"].is_string());
}

#[tokio::test]
async fn private_key_jwt_with_ed25519_and_es256() {
    let (_u, gw) = setup().await;
    for (name, es256) in [("ed-agent", false), ("ec-agent", true)] {
        let (client, _) = OAuthClient::register(&gw, name, CEILING, es256).await;
        let (status, v) = by_assertion(&gw, &client.assertion(&gw, "j1"), ASK).await;
        assert_eq!(status, StatusCode::OK, "{v}");
        assert_eq!(
            (v["token_type"].as_str(), v["expires_in"].as_u64()),
            (Some("Bearer"), Some(30))
        );
        let writ = v["access_token"].as_str().unwrap();
        assert_eq!(chat(&gw, writ, "gpt-4o-mini").await, StatusCode::OK);
        assert_eq!(
            chat(&gw, writ, "gpt-4o").await,
            StatusCode::FORBIDDEN,
            "only what was asked for"
        );
    }
}

/// Agents are held in memory between mints; a change to the store reaches the token
/// endpoint when the gateway applies it (at once here, as the admin API does; from another
/// instance at its next poll): a replaced key stops working, a removed agent too.
#[tokio::test]
async fn a_changed_or_removed_agent_is_not_served_from_memory() {
    let (_u, gw) = setup().await;
    let (old, _) = OAuthClient::register(&gw, "held-agent", CEILING, false).await;
    for jti in ["h1", "h2"] {
        let (status, v) = by_assertion(&gw, &old.assertion(&gw, jti), ASK).await;
        assert_eq!(status, StatusCode::OK, "{v}");
    }
    // Registered again with a new key: the old key is refused, the new one accepted.
    let (new, _) = OAuthClient::register(&gw, "held-agent", CEILING, true).await;
    refused(
        by_assertion(&gw, &old.assertion(&gw, "h3"), ASK).await,
        StatusCode::UNAUTHORIZED,
        "invalid_client",
    );
    let (status, v) = by_assertion(&gw, &new.assertion(&gw, "h4"), ASK).await;
    assert_eq!(status, StatusCode::OK, "{v}");
    // Removed from the store and the change applied: refused.
    let store = gw.gateway().store().clone();
    assert!(store.remove_agent("default", "held-agent").await.unwrap());
    gw.gateway().reload().await.unwrap();
    refused(
        by_assertion(&gw, &new.assertion(&gw, "h5"), ASK).await,
        StatusCode::UNAUTHORIZED,
        "invalid_client",
    );
}

#[tokio::test]
async fn client_secret_basic_and_post() {
    let (_u, gw) = setup().await;
    let (_, secret) = OAuthClient::register(&gw, "secret-agent", CEILING, false).await;
    let client = reqwest::Client::new();
    let resp = client
        .post(gw.url("/oauth2/token"))
        .basic_auth("secret-agent", Some(&secret))
        .form(&[
            ("grant_type", "client_credentials"),
            ("authorization_details", ASK),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    let (status, _) = token(
        &gw,
        &[
            ("grant_type", "client_credentials"),
            ("client_id", "secret-agent"),
            ("client_secret", &secret),
            ("authorization_details", ASK),
        ],
    )
    .await;
    assert_eq!(status, StatusCode::OK);

    let resp = client
        .post(gw.url("/oauth2/token"))
        .basic_auth("secret-agent", Some("wcs_wrong"))
        .form(&[
            ("grant_type", "client_credentials"),
            ("authorization_details", ASK),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::UNAUTHORIZED);
    assert!(
        resp.headers()["www-authenticate"]
            .to_str()
            .unwrap()
            .starts_with("Basic")
    );
    let v: Value = resp.json().await.unwrap();
    assert_eq!(v["error"], "invalid_client");
    refused(
        token(
            &gw,
            &[
                ("grant_type", "client_credentials"),
                ("client_id", "nobody"),
                ("client_secret", &secret),
                ("authorization_details", ASK),
            ],
        )
        .await,
        StatusCode::UNAUTHORIZED,
        "invalid_client",
    );
}

#[tokio::test]
async fn hostile_assertions_are_refused() {
    let (_u, gw) = setup().await;
    let (client, _) = OAuthClient::register(&gw, "agent", CEILING, false).await;
    let (stranger, _) = OAuthClient::register(&gw, "stranger", CEILING, false).await;
    // Signed by a key not registered for `agent`.
    let forged = stranger.impersonating("agent");
    refused(
        by_assertion(&gw, &forged.assertion(&gw, "f1"), ASK).await,
        StatusCode::UNAUTHORIZED,
        "invalid_client",
    );

    // alg: none, hand-built.
    use base64::Engine;
    let b64 = |v: Value| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(v.to_string());
    let none = format!(
        "{}.{}.",
        b64(json!({"alg": "none", "typ": "JWT"})),
        b64(client.claims(&gw, "n1"))
    );
    refused(
        by_assertion(&gw, &none, ASK).await,
        StatusCode::UNAUTHORIZED,
        "invalid_client",
    );

    let mut expired = client.claims(&gw, "e1");
    expired["exp"] = json!(now(&gw) - 120);
    refused(
        by_assertion(
            &gw,
            &client.assertion_with(&Header::new(Algorithm::EdDSA), &expired),
            ASK,
        )
        .await,
        StatusCode::UNAUTHORIZED,
        "invalid_client",
    );

    // Times no clock can reach are refused, not overflowed into a panic.
    for (field, jti) in [("exp", "o1"), ("iat", "o2"), ("nbf", "o3")] {
        let mut huge = client.claims(&gw, jti);
        huge[field] = json!(u64::MAX);
        let (status, v) = by_assertion(
            &gw,
            &client.assertion_with(&Header::new(Algorithm::EdDSA), &huge),
            ASK,
        )
        .await;
        assert_eq!(
            (status, v["error"].as_str()),
            (StatusCode::UNAUTHORIZED, Some("invalid_client")),
            "{field}: {v}"
        );
    }

    let mut far = client.claims(&gw, "e2");
    far["exp"] = json!(now(&gw) + 86_400 * 365);
    refused(
        by_assertion(
            &gw,
            &client.assertion_with(&Header::new(Algorithm::EdDSA), &far),
            ASK,
        )
        .await,
        StatusCode::UNAUTHORIZED,
        "invalid_client",
    );

    let mut other_aud = client.claims(&gw, "a1");
    other_aud["aud"] = json!("https://other.example/oauth2/token");
    refused(
        by_assertion(
            &gw,
            &client.assertion_with(&Header::new(Algorithm::EdDSA), &other_aud),
            ASK,
        )
        .await,
        StatusCode::UNAUTHORIZED,
        "invalid_client",
    );

    let mut no_jti = client.claims(&gw, "x");
    no_jti.as_object_mut().unwrap().remove("jti");
    refused(
        by_assertion(
            &gw,
            &client.assertion_with(&Header::new(Algorithm::EdDSA), &no_jti),
            ASK,
        )
        .await,
        StatusCode::UNAUTHORIZED,
        "invalid_client",
    );

    let mut mismatched = client.claims(&gw, "m1");
    mismatched["iss"] = json!("someone-else");
    refused(
        by_assertion(
            &gw,
            &client.assertion_with(&Header::new(Algorithm::EdDSA), &mismatched),
            ASK,
        )
        .await,
        StatusCode::UNAUTHORIZED,
        "invalid_client",
    );

    // Replay: the same assertion twice.
    let once = client.assertion(&gw, "r1");
    assert_eq!(by_assertion(&gw, &once, ASK).await.0, StatusCode::OK);
    refused(
        by_assertion(&gw, &once, ASK).await,
        StatusCode::UNAUTHORIZED,
        "invalid_client",
    );

    // An assertion carrying its own key is refused whatever it says.
    let mut header = Header::new(Algorithm::EdDSA);
    header.jku = Some("https://attacker.example/jwks".into());
    refused(
        by_assertion(
            &gw,
            &client.assertion_with(&header, &client.claims(&gw, "k1")),
            ASK,
        )
        .await,
        StatusCode::UNAUTHORIZED,
        "invalid_client",
    );
    refused(
        by_assertion(&gw, "not.a.jwt", ASK).await,
        StatusCode::UNAUTHORIZED,
        "invalid_client",
    );
}

/// An EdDSA assertion is refused when anything it signs, or its signature, was changed
/// after signing: the claims, the header, the signature's bits, its S pushed past the group
/// order (the same signature to a verifier that reduces S), its encoding, or an extra
/// segment. The untouched assertion is accepted after all of them (nothing was burned).
/// And an agent registered with a small-order key cannot be impersonated by a signature
/// made without any private key.
#[tokio::test]
async fn an_eddsa_assertion_changed_after_signing_is_refused() {
    use base64::Engine;
    use base64::engine::general_purpose::URL_SAFE_NO_PAD;
    let (_u, gw) = setup().await;
    let (client, _) = OAuthClient::register(&gw, "signed-agent", CEILING, false).await;
    let good = client.assertion(&gw, "t1");
    let (signed, signature) = good.rsplit_once('.').unwrap();
    let (header, _) = signed.split_once('.').unwrap();
    let sig = URL_SAFE_NO_PAD.decode(signature).unwrap();
    assert_eq!(sig.len(), 64);

    let other_claims = URL_SAFE_NO_PAD.encode(client.claims(&gw, "t2").to_string());
    let es256_header = URL_SAFE_NO_PAD.encode(r#"{"typ":"JWT","alg":"ES256"}"#);
    let payload = signed.split_once('.').unwrap().1;
    let mut flipped = sig.clone();
    flipped[10] ^= 1;
    // S + L, little-endian, L = 2^252 + 27742317777372353535851937790883648493.
    const L: [u8; 32] = [
        0xed, 0xd3, 0xf5, 0x5c, 0x1a, 0x63, 0x12, 0x58, 0xd6, 0x9c, 0xf7, 0xa2, 0xde, 0xf9, 0xde,
        0x14, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x10,
    ];
    let mut malleated = sig.clone();
    let mut carry = 0u16;
    for (s, l) in malleated[32..].iter_mut().zip(L) {
        let sum = u16::from(*s) + u16::from(l) + carry;
        *s = sum as u8;
        carry = sum >> 8;
    }
    for (why, text) in [
        (
            "other claims",
            format!("{header}.{other_claims}.{signature}"),
        ),
        (
            "other header",
            format!("{es256_header}.{payload}.{signature}"),
        ),
        (
            "a flipped bit",
            format!("{signed}.{}", URL_SAFE_NO_PAD.encode(&flipped)),
        ),
        (
            "S + L",
            format!("{signed}.{}", URL_SAFE_NO_PAD.encode(&malleated)),
        ),
        ("a padded signature", format!("{good}==")),
        (
            "a short signature",
            format!("{signed}.{}", URL_SAFE_NO_PAD.encode(&sig[..63])),
        ),
        ("an extra segment", format!("{good}.{signature}")),
    ] {
        let (status, v) = by_assertion(&gw, &text, ASK).await;
        assert_eq!(
            (status, v["error"].as_str()),
            (StatusCode::UNAUTHORIZED, Some("invalid_client")),
            "{why}: {v}"
        );
    }
    let (status, v) = by_assertion(&gw, &good, ASK).await;
    assert_eq!(status, StatusCode::OK, "{v}");
}

/// The identity point (order 1) as an agent's key (stored before registration refused such
/// keys): `R = [s]B` with any `s` is a signature of every message under it to a verifier
/// that does not refuse small-order keys.
#[tokio::test]
async fn an_agent_key_of_small_order_verifies_no_assertion() {
    use base64::Engine;
    use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
    let (_u, gw) = setup().await;
    let mut spki = hex::decode("302a300506032b6570032100").unwrap();
    spki.extend([1u8].iter().chain(&[0u8; 31]));
    let pem = format!(
        "-----BEGIN PUBLIC KEY-----\n{}\n-----END PUBLIC KEY-----\n",
        STANDARD.encode(&spki)
    );
    let agent = writ_store::Agent {
        tenant: "default".into(),
        name: "weak-agent".into(),
        ceiling: writ_token::parse_grants(CEILING).unwrap(),
        max_ttl: Duration::from_secs(30),
        credentials: writ_store::AgentCredentials {
            // Registration now refuses such a key; one stored before is still held.
            public_keys: vec![writ_store::AgentKey {
                alg: "EdDSA".into(),
                pem,
            }],
            secret_hash: None,
        },
    };
    gw.gateway().store().put_agent(&agent).await.unwrap();
    gw.gateway().reload().await.unwrap();
    // s = 1: R is the base point, whose encoding is 0x58 followed by 31 bytes of 0x66.
    let mut signature = vec![0x58u8];
    signature.extend([0x66u8; 31]);
    signature.push(1);
    signature.extend([0u8; 31]);
    let now = now(&gw);
    let claims = json!({"iss": "weak-agent", "sub": "weak-agent", "aud": gw.url("/oauth2/token"),
        "exp": now + 60, "iat": now, "jti": "w1"});
    let b64 = |v: &Value| URL_SAFE_NO_PAD.encode(v.to_string());
    let forged = format!(
        "{}.{}.{}",
        b64(&json!({"alg": "EdDSA", "typ": "JWT"})),
        b64(&claims),
        URL_SAFE_NO_PAD.encode(&signature)
    );
    refused(
        by_assertion(&gw, &forged, ASK).await,
        StatusCode::UNAUTHORIZED,
        "invalid_client",
    );
}

#[tokio::test]
async fn grants_and_lifetimes_beyond_policy_are_refused() {
    let (_u, gw) = setup().await;
    let (client, _) = OAuthClient::register(&gw, "agent", CEILING, false).await;
    let beyond = r#"[{"type":"writ:llm","upstream":"demo","models":["gpt-5"]}]"#;
    refused(
        by_assertion(&gw, &client.assertion(&gw, "g1"), beyond).await,
        StatusCode::BAD_REQUEST,
        "invalid_authorization_details",
    );
    for malformed in [
        "not json",
        "[]",
        r#"[{"type":"writ:llm"}]"#,
        r#"[{"type":"writ:budget","tokens":5}]"#,
        r#"{"type":"writ:llm","upstream":"demo","models":"x"}"#,
    ] {
        refused(
            by_assertion(
                &gw,
                &client.assertion(&gw, &format!("m-{malformed}")),
                malformed,
            )
            .await,
            StatusCode::BAD_REQUEST,
            "invalid_authorization_details",
        );
    }
    let gw_ref = &gw;
    let form = |_jti: &'static str, ttl: &'static str, a: String| async move {
        token(
            gw_ref,
            &[
                ("grant_type", "client_credentials"),
                (
                    "client_assertion_type",
                    "urn:ietf:params:oauth:client-assertion-type:jwt-bearer",
                ),
                ("client_assertion", &a),
                ("authorization_details", ASK),
                ("expires_in", ttl),
            ],
        )
        .await
    };
    refused(
        form("t1", "31", client.assertion(&gw, "t1")).await,
        StatusCode::BAD_REQUEST,
        "invalid_request",
    );
    refused(
        form("t2", "0", client.assertion(&gw, "t2")).await,
        StatusCode::BAD_REQUEST,
        "invalid_request",
    );
    let (status, v) = form("t3", "10", client.assertion(&gw, "t3")).await;
    assert_eq!(
        (status, v["expires_in"].as_u64()),
        (StatusCode::OK, Some(10))
    );
}

#[tokio::test]
async fn malformed_token_requests() {
    let (_u, gw) = setup().await;
    let (client, secret) = OAuthClient::register(&gw, "agent", CEILING, false).await;
    refused(
        token(&gw, &[("authorization_details", ASK)]).await,
        StatusCode::BAD_REQUEST,
        "invalid_request",
    );
    refused(
        token(&gw, &[("grant_type", "password")]).await,
        StatusCode::BAD_REQUEST,
        "unsupported_grant_type",
    );
    refused(
        token(
            &gw,
            &[
                ("grant_type", "client_credentials"),
                ("authorization_details", ASK),
            ],
        )
        .await,
        StatusCode::UNAUTHORIZED,
        "invalid_client",
    );
    refused(
        token(
            &gw,
            &[
                ("grant_type", "client_credentials"),
                ("grant_type", "client_credentials"),
                ("client_id", "agent"),
                ("client_secret", &secret),
            ],
        )
        .await,
        StatusCode::BAD_REQUEST,
        "invalid_request",
    );
    // Two authentication methods at once.
    refused(
        token(
            &gw,
            &[
                ("grant_type", "client_credentials"),
                ("client_id", "agent"),
                ("client_secret", &secret),
                (
                    "client_assertion_type",
                    "urn:ietf:params:oauth:client-assertion-type:jwt-bearer",
                ),
                ("client_assertion", &client.assertion(&gw, "two")),
                ("authorization_details", ASK),
            ],
        )
        .await,
        StatusCode::BAD_REQUEST,
        "invalid_request",
    );
    let resp = reqwest::Client::new()
        .post(gw.url("/oauth2/token"))
        .json(&json!({"grant_type": "client_credentials"}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::BAD_REQUEST);
    let resp = reqwest::Client::new()
        .post(gw.url("/oauth2/token"))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(format!(
            "grant_type=client_credentials&x={}",
            "a".repeat(100_000)
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::BAD_REQUEST);
}

#[tokio::test]
async fn token_exchange_delegates_a_narrower_writ() {
    let (_u, gw) = setup().await;
    let (parent, _) = OAuthClient::register(&gw, "planner", CEILING, false).await;
    let (child, _) = OAuthClient::register(&gw, "researcher", CEILING, true).await;
    let (_, v) = by_assertion(&gw, &parent.assertion(&gw, "p1"), ASK).await;
    let subject = v["access_token"].as_str().unwrap().to_string();
    let exchange = |subject: String, actor: String, details: &'static str| {
        let gw = &gw;
        async move {
            token(
                gw,
                &[
                    (
                        "grant_type",
                        "urn:ietf:params:oauth:grant-type:token-exchange",
                    ),
                    ("subject_token", &subject),
                    (
                        "subject_token_type",
                        "urn:ietf:params:oauth:token-type:access_token",
                    ),
                    ("actor_token", &actor),
                    ("actor_token_type", "urn:ietf:params:oauth:token-type:jwt"),
                    ("authorization_details", details),
                ],
            )
            .await
        }
    };
    // The sub-agent asks for more than the subject allows: the writ is issued but can
    // never be used beyond the subject (every block is checked).
    let wide = r#"[{"type":"writ:llm","upstream":"demo","models":["gpt-4o-mini","gpt-4o"]}]"#;
    let (status, v) = exchange(subject.clone(), child.assertion(&gw, "c1"), wide).await;
    assert_eq!(status, StatusCode::OK, "{v}");
    assert_eq!(
        v["issued_token_type"],
        "urn:ietf:params:oauth:token-type:access_token"
    );
    let delegated = v["access_token"].as_str().unwrap().to_string();
    assert_eq!(chat(&gw, &delegated, "gpt-4o-mini").await, StatusCode::OK);
    assert_eq!(
        chat(&gw, &delegated, "gpt-4o").await,
        StatusCode::FORBIDDEN,
        "never wider than the subject"
    );
    let keys = gw.keys();
    let chain = writ_token::decode(&delegated)
        .unwrap()
        .verify(&keys.trusted)
        .unwrap()
        .delegation_chain();
    assert_eq!(
        chain,
        vec![(
            "default/planner".to_string(),
            "default/researcher".to_string()
        )]
    );

    // Errors: forged actor, unknown subject, expired subject.
    refused(
        exchange("writ_bogus".into(), child.assertion(&gw, "c2"), ASK).await,
        StatusCode::BAD_REQUEST,
        "invalid_grant",
    );
    let (stranger, _) = OAuthClient::register(&gw, "stranger", CEILING, false).await;
    let forged = stranger.impersonating("researcher");
    refused(
        exchange(subject.clone(), forged.assertion(&gw, "c3"), ASK).await,
        StatusCode::UNAUTHORIZED,
        "invalid_client",
    );
    gw.clock().advance(Duration::from_secs(31));
    refused(
        exchange(subject, child.assertion(&gw, "c4"), ASK).await,
        StatusCode::BAD_REQUEST,
        "invalid_grant",
    );
    assert_eq!(
        chat(&gw, &delegated, "gpt-4o-mini").await,
        StatusCode::UNAUTHORIZED,
        "a delegated writ dies with its subject"
    );
}
