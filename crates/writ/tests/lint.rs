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
        !ok && out.contains("alg-none") && out.contains("critical"),
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
    assert!(!ok && out.contains("weak-hmac-secret"), "{out}");
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
    assert!(out.contains("missing-exp") && out.contains("kid"), "{out}");
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

/// Every weakness, made with pyjwt (by hand where pyjwt refuses), is reported by the CLI
/// and refused at the token endpoint of a running gateway.
#[test]
fn pyjwt_made_weaknesses_are_reported_and_rejected_at_the_token_endpoint() {
    use std::path::Path;
    let python = writ_testkit::python();
    let dir = tempfile::tempdir().unwrap();
    // Fifteen rejected assertions from one client would trip the brute-force guard
    // (tested on its own in writ-gateway/tests/brute_force.rs): raise its thresholds.
    let config = dir.path().join("writ.toml");
    std::fs::write(
        &config,
        "[detection.brute_force]\nbackoff_after = 100\nlockout_after = 100\n",
    )
    .unwrap();
    let server = writ_testkit::ServeProcess::start(
        Path::new(BIN),
        dir.path(),
        &[
            "--demo",
            "--listen",
            "127.0.0.1:0",
            "--config",
            config.to_str().unwrap(),
        ],
    );
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/python/jwt_weaknesses.py");
    let out = Command::new(python)
        .arg(script)
        .env("WRIT_BASE_URL", server.url(""))
        .env("WRIT_BIN", BIN)
        .env("WRIT_DIR", dir.path())
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "stdout:\n{stdout}\nstderr:\n{stderr}");
    assert!(
        stdout.contains("jwt weaknesses: ok (15 samples)"),
        "{stdout}"
    );
}
