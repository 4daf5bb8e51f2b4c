//! `writ lint jwt` reports weak tokens and exits non-zero for high or critical ones.
#![allow(clippy::unwrap_used)]

use std::process::Command;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::{Algorithm, EncodingKey, Header, encode};

const BIN: &str = env!("CARGO_BIN_EXE_writ");

fn lint(token: &str) -> (bool, String) {
    let out = Command::new(BIN)
        .args(["lint", "jwt", token])
        .output()
        .unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).to_string(),
    )
}

fn unix_now() -> u64 {
    #[allow(clippy::disallowed_methods)]
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

#[test]
fn weak_tokens_are_reported() {
    let now = unix_now();
    let claims = serde_json::json!({"sub": "agent", "iat": now, "exp": now + 600});
    // alg none: anyone can forge it.
    let none = format!(
        "{}.{}.",
        URL_SAFE_NO_PAD.encode(br#"{"alg":"none","typ":"JWT"}"#),
        URL_SAFE_NO_PAD.encode(claims.to_string())
    );
    let (ok, out) = lint(&none);
    assert!(
        !ok && out.contains("alg_none") && out.contains("critical"),
        "{out}"
    );
    // HS256 with a well-known secret.
    let weak = encode(
        &Header::new(Algorithm::HS256),
        &claims,
        &EncodingKey::from_secret(b"secret"),
    )
    .unwrap();
    let (ok, out) = lint(&weak);
    assert!(!ok && out.contains("weak_hmac_secret"), "{out}");
    assert!(!out.contains(&weak), "the token is never echoed");
    // No exp, and a kid with path traversal.
    let mut header = Header::new(Algorithm::HS256);
    header.kid = Some("../../etc/passwd".into());
    let odd = encode(
        &header,
        &serde_json::json!({"sub": "x"}),
        &EncodingKey::from_secret(b"a-long-random-secret-9f8e7d6c5b4a"),
    )
    .unwrap();
    let (_, out) = lint(&odd);
    assert!(out.contains("missing_exp") && out.contains("kid"), "{out}");
    // A sound token: strong secret, short life.
    let good = encode(
        &Header::new(Algorithm::HS256),
        &claims,
        &EncodingKey::from_secret(b"a-long-random-secret-9f8e7d6c5b4a"),
    )
    .unwrap();
    let (ok, out) = lint(&good);
    assert!(ok, "{out}");
    // Garbage is reported, not a crash.
    let (ok, out) = lint("not.a.jwt");
    assert!(!ok && out.contains("malformed"), "{out}");
}
