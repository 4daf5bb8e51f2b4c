//! DPoP (RFC 9449): writs bound to a key at the token endpoint, and proofs demanded on use.
#![allow(clippy::unwrap_used)]

use reqwest::StatusCode;
use serde_json::{Value, json};
use writ_testkit::{DpopKey, MockUpstream, OAuthClient, TestGateway};

const KEY: &str = "sk-upstream-dpop";
const CEILING: &str = r#"[{"type":"writ:llm","upstream":"demo"}]"#;

async fn setup() -> (MockUpstream, TestGateway, OAuthClient) {
    let upstream = MockUpstream::start(KEY).await;
    let config = format!(
        "[upstreams.demo]\nkind = \"openai\"\nbase_url = \"{}\"\nallow_private_network = true\napi_key = \"{KEY}\"\n",
        upstream.base_url()
    );
    let gw = TestGateway::start(&config).await;
    let (client, _) = OAuthClient::register(&gw, "holder", CEILING, false).await;
    (upstream, gw, client)
}

async fn token(
    gw: &TestGateway,
    client: &OAuthClient,
    jti: &str,
    proof: Option<String>,
) -> (StatusCode, Value) {
    let mut req = reqwest::Client::new().post(gw.url("/oauth2/token")).form(&[
        ("grant_type", "client_credentials"),
        (
            "client_assertion_type",
            "urn:ietf:params:oauth:client-assertion-type:jwt-bearer",
        ),
        ("client_assertion", &client.assertion(gw, jti)),
        ("authorization_details", CEILING),
    ]);
    if let Some(p) = proof {
        req = req.header("DPoP", p);
    }
    let resp = req.send().await.unwrap();
    let status = resp.status();
    (status, resp.json().await.unwrap())
}

async fn chat(
    gw: &TestGateway,
    scheme: &str,
    writ: &str,
    proof: Option<String>,
) -> (StatusCode, Value, Option<String>) {
    let mut req = reqwest::Client::new()
        .post(gw.url("/v1/chat/completions"))
        .header("authorization", format!("{scheme} {writ}"))
        .json(&json!({"model": "m", "messages": [{"role": "user", "content": "hi"}]}));
    if let Some(p) = proof {
        req = req.header("DPoP", p);
    }
    let resp = req.send().await.unwrap();
    let status = resp.status();
    let challenge = resp
        .headers()
        .get("www-authenticate")
        .map(|v| v.to_str().unwrap().to_string());
    (status, resp.json().await.unwrap(), challenge)
}

async fn bound_writ(gw: &TestGateway, client: &OAuthClient, key: &DpopKey) -> String {
    let proof = key.proof(gw, "POST", &gw.url("/oauth2/token"), None, "t-1");
    let (status, v) = token(gw, client, "a-1", Some(proof)).await;
    assert_eq!(status, StatusCode::OK, "{v}");
    assert_eq!(v["token_type"], "DPoP");
    v["access_token"].as_str().unwrap().to_string()
}

#[tokio::test]
async fn a_bound_writ_needs_a_fresh_proof_by_its_key() {
    let (upstream, gw, client) = setup().await;
    let key = DpopKey::new();
    let writ = bound_writ(&gw, &client, &key).await;
    let keys = gw.keys();
    let claims = writ_token::decode(&writ)
        .unwrap()
        .verify(&keys.trusted)
        .unwrap()
        .claims()
        .clone();
    assert_eq!(claims.cnf_jkt.as_deref(), Some(key.thumbprint().as_str()));

    let url = gw.url("/v1/chat/completions");
    let (status, _, _) = chat(
        &gw,
        "DPoP",
        &writ,
        Some(key.proof(&gw, "POST", &url, Some(&writ), "p-1")),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert!(
        upstream.requests()[0].headers.get("dpop").is_none(),
        "the proof is not forwarded"
    );

    // Stolen writ, no proof; or sent as a Bearer token: refused with a DPoP challenge.
    for (scheme, proof) in [
        ("DPoP", None),
        (
            "Bearer",
            Some(key.proof(&gw, "POST", &url, Some(&writ), "p-2")),
        ),
    ] {
        let (status, v, challenge) = chat(&gw, scheme, &writ, proof).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED);
        assert_eq!(v["error"]["code"], "invalid_dpop_proof");
        assert!(challenge.unwrap().starts_with("DPoP algs="));
    }
    let cases = [
        ("replayed", key.proof(&gw, "POST", &url, Some(&writ), "p-1")),
        ("another key", DpopKey::new().proof(&gw, "POST", &url, Some(&writ), "p-3")),
        ("another method", key.proof(&gw, "GET", &url, Some(&writ), "p-4")),
        ("another URL", key.proof(&gw, "POST", &gw.url("/v1/embeddings"), Some(&writ), "p-5")),
        ("no ath", key.proof(&gw, "POST", &url, None, "p-6")),
        ("ath of another writ", key.proof(&gw, "POST", &url, Some("writ_other"), "p-7")),
        (
            "old iat",
            key.sign(
                &json!({"typ": "dpop+jwt", "alg": "EdDSA", "jwk": key.jwk()}),
                &json!({"htm": "POST", "htu": url, "iat": 1_000_000_000u64, "jti": "p-8"}),
            ),
        ),
        (
            "private key in the jwk",
            {
                let mut jwk = key.jwk();
                jwk["d"] = json!(key.private_d());
                let ath = writ_ath(&writ);
                key.sign(
                    &json!({"typ": "dpop+jwt", "alg": "EdDSA", "jwk": jwk}),
                    &json!({"htm": "POST", "htu": url, "iat": writ_testkit_now(&gw), "jti": "p-9", "ath": ath}),
                )
            },
        ),
        (
            "wrong typ",
            key.sign(
                &json!({"typ": "JWT", "alg": "EdDSA", "jwk": key.jwk()}),
                &json!({"htm": "POST", "htu": url, "iat": writ_testkit_now(&gw), "jti": "p-10", "ath": writ_ath(&writ)}),
            ),
        ),
        ("garbage", "not-a-proof".to_string()),
    ];
    for (what, proof) in cases {
        let (status, v, _) = chat(&gw, "DPoP", &writ, Some(proof)).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{what}: {v}");
        assert_eq!(v["error"]["code"], "invalid_dpop_proof", "{what}");
    }
    assert_eq!(upstream.requests().len(), 1);
}

fn writ_ath(writ: &str) -> String {
    use base64::Engine;
    use sha2::Digest;
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(sha2::Sha256::digest(writ.as_bytes()))
}

fn writ_testkit_now(gw: &TestGateway) -> u64 {
    writ_token::Clock::now(gw.clock())
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

#[tokio::test]
async fn token_endpoint_refuses_bad_proofs_and_mints_nothing() {
    let (_u, gw, client) = setup().await;
    let key = DpopKey::new();
    let token_url = gw.url("/oauth2/token");
    let good = key.proof(&gw, "POST", &token_url, None, "x-1");
    assert_eq!(
        token(&gw, &client, "a-1", Some(good.clone())).await.0,
        StatusCode::OK
    );
    let mut jwk = key.jwk();
    jwk["d"] = json!(key.private_d());
    for (what, proof) in [
        ("replayed", good),
        ("for another URL", key.proof(&gw, "POST", &gw.url("/v1/chat/completions"), None, "x-2")),
        ("for another method", key.proof(&gw, "GET", &token_url, None, "x-3")),
        (
            "with a private key",
            key.sign(&json!({"typ": "dpop+jwt", "alg": "EdDSA", "jwk": jwk}), &json!({"htm": "POST", "htu": token_url, "iat": writ_testkit_now(&gw), "jti": "x-4"})),
        ),
    ] {
        let (status, v) = token(&gw, &client, &format!("a-{what}"), Some(proof)).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{what}: {v}");
        assert_eq!(v["error"], "invalid_dpop_proof", "{what}");
        assert!(v.get("access_token").is_none());
    }
}

#[tokio::test]
async fn a_holder_can_bind_a_bearer_writ_offline() {
    let (_u, gw, _client) = setup().await;
    let key = DpopKey::new();
    let bearer = gw.mint("demo", r#"{"type":"writ:llm","upstream":"demo"}"#, 30);
    let bound = writ_token::attenuate(
        &bearer,
        &writ_token::parse_grants(&format!(
            r#"{{"type":"writ:datalog","code":"check if dpop_jkt(\"{}\");"}}"#,
            key.thumbprint()
        ))
        .unwrap(),
    )
    .unwrap();
    let url = gw.url("/v1/chat/completions");
    assert_eq!(
        chat(&gw, "Bearer", &bound, None).await.0,
        StatusCode::FORBIDDEN
    );
    let (status, _, _) = chat(
        &gw,
        "DPoP",
        &bound,
        Some(key.proof(&gw, "POST", &url, Some(&bound), "o-1")),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
}
