use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use hmac::{Hmac, Mac};
use serde_json::json;
use sha2::{Sha256, Sha384, Sha512};

use super::*;

const NOW: u64 = 1_750_000_000;

fn now() -> SystemTime {
    UNIX_EPOCH + Duration::from_secs(NOW)
}

fn b64(v: &serde_json::Value) -> String {
    URL_SAFE_NO_PAD.encode(serde_json::to_vec(v).unwrap())
}

fn hmac_sign(alg: &str, key: &[u8], msg: &[u8]) -> Vec<u8> {
    match alg {
        "HS256" => {
            let mut m = Hmac::<Sha256>::new_from_slice(key).unwrap();
            m.update(msg);
            m.finalize().into_bytes().to_vec()
        }
        "HS384" => {
            let mut m = Hmac::<Sha384>::new_from_slice(key).unwrap();
            m.update(msg);
            m.finalize().into_bytes().to_vec()
        }
        _ => {
            let mut m = Hmac::<Sha512>::new_from_slice(key).unwrap();
            m.update(msg);
            m.finalize().into_bytes().to_vec()
        }
    }
}

/// A token with `header` and `claims`, HMAC-signed with `key` when `alg` is HS*, else
/// given a fake signature.
fn token(header: serde_json::Value, claims: serde_json::Value, key: &[u8]) -> String {
    let alg = header["alg"].as_str().unwrap_or("").to_owned();
    let input = format!("{}.{}", b64(&header), b64(&claims));
    let sig = if alg.starts_with("HS") {
        hmac_sign(&alg, key, input.as_bytes())
    } else {
        vec![0x5a; 64]
    };
    format!("{input}.{}", URL_SAFE_NO_PAD.encode(sig))
}

fn good_claims() -> serde_json::Value {
    json!({"iss": "https://issuer.example", "sub": "agent-1", "iat": NOW, "exp": NOW + 3600})
}

const STRONG: &[u8] = b"q8Zr2LmX0vTb4NcW-not-in-any-list-7d1f9a";

fn ids(findings: &[JwtFinding]) -> Vec<JwtCheck> {
    findings.iter().map(|f| f.id).collect()
}

fn lint_default(t: &str) -> Vec<JwtFinding> {
    lint(t, &LintPolicy::default(), now())
}

#[test]
fn a_sound_token_has_no_findings() {
    let t = token(json!({"alg": "RS256", "kid": "k1"}), good_claims(), b"");
    assert_eq!(lint_default(&t), vec![]);
    let t = token(json!({"alg": "HS256"}), good_claims(), STRONG);
    assert_eq!(lint_default(&t), vec![]);
}

#[test]
fn jwt_io_example_is_weak_and_never_expires() {
    // The example token jwt.io shows, signed with "your-256-bit-secret".
    let t = "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJzdWIiOiIxMjM0NTY3ODkwIiwibmFtZSI6IkpvaG4gRG9lIiwiaWF0IjoxNTE2MjM5MDIyfQ.SflKxwRJSMeKKF2QT4fwpMeJf36POk6yJV_adQssw5c";
    let found = lint_default(t);
    assert_eq!(
        ids(&found),
        vec![JwtCheck::WeakHmacSecret, JwtCheck::MissingExp]
    );
    assert_eq!(found[0].severity, Severity::Critical);
    assert!(!found[0].message.contains("your-256-bit-secret"));
}

#[test]
fn alg_none_in_any_case() {
    for alg in ["none", "None", "NONE", "nOnE"] {
        let t = format!("{}.{}.", b64(&json!({"alg": alg})), b64(&good_claims()));
        let found = lint_default(&t);
        assert_eq!(ids(&found), vec![JwtCheck::AlgNone], "{alg}");
        assert_eq!(found[0].severity, Severity::Critical);
    }
}

#[test]
fn weak_secrets_for_every_hmac_size() {
    for (alg, secret) in [
        ("HS256", "secret"),
        ("HS384", "your-384-bit-secret"),
        ("HS512", "changeme"),
        ("HS256", ""),
        ("HS256", "jwt_secret"),
    ] {
        let t = token(json!({"alg": alg}), good_claims(), secret.as_bytes());
        assert_eq!(
            ids(&lint_default(&t)),
            vec![JwtCheck::WeakHmacSecret],
            "{alg} {secret:?}"
        );
    }
    let policy = LintPolicy {
        extra_weak_secrets: vec!["our-demo-secret".into()],
        ..LintPolicy::default()
    };
    let t = token(json!({"alg": "HS256"}), good_claims(), b"our-demo-secret");
    assert_eq!(
        ids(&lint(&t, &policy, now())),
        vec![JwtCheck::WeakHmacSecret]
    );
}

#[test]
fn bundled_list_is_a_reasonable_size_and_clean() {
    let all: Vec<&str> = weak_secrets().collect();
    assert!((200..=300).contains(&all.len()), "{}", all.len());
    let unique: std::collections::HashSet<_> = all.iter().collect();
    assert_eq!(
        unique.len(),
        all.len(),
        "duplicates in jwt-weak-secrets.txt"
    );
    assert!(all.iter().all(|s| !s.contains('\r')));
}

#[test]
fn hs_token_where_policy_expects_asymmetric() {
    let policy = LintPolicy {
        asymmetric_keys: vec![KeySelector {
            issuer: Some("https://issuer.example".into()),
            kid: None,
        }],
        ..LintPolicy::default()
    };
    let t = token(json!({"alg": "HS256"}), good_claims(), STRONG);
    assert_eq!(ids(&lint(&t, &policy, now())), vec![JwtCheck::AlgConfusion]);
    let other = json!({"iss": "https://other.example", "iat": NOW, "exp": NOW + 60});
    let t = token(json!({"alg": "HS256"}), other, STRONG);
    assert_eq!(lint(&t, &policy, now()), vec![]);
}

#[test]
fn hmac_signed_with_the_public_key_pem() {
    let pem = "-----BEGIN PUBLIC KEY-----\nMFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAEXAMPLEfakeKEYfakeKEYfakeKEY\n-----END PUBLIC KEY-----\n";
    let policy = LintPolicy {
        public_keys_pem: vec![pem.trim_end().to_owned()],
        ..LintPolicy::default()
    };
    // Forged with the file as served, final newline included.
    let t = token(
        json!({"alg": "HS256", "kid": "k1"}),
        good_claims(),
        pem.as_bytes(),
    );
    let found = lint(&t, &policy, now());
    assert_eq!(ids(&found), vec![JwtCheck::AlgConfusion]);
    assert!(found[0].message.contains("public key"));
}

#[test]
fn lifetime_claims() {
    let header = json!({"alg": "RS256"});
    let check = |claims: serde_json::Value| ids(&lint_default(&token(header.clone(), claims, b"")));
    assert_eq!(check(json!({"iat": NOW})), vec![JwtCheck::MissingExp]);
    assert_eq!(check(json!({"exp": NOW + 60})), vec![JwtCheck::MissingIat]);
    assert_eq!(
        check(json!({"iat": NOW, "exp": NOW + 30 * 86_400})),
        vec![JwtCheck::ExpTooFar]
    );
    assert_eq!(
        check(json!({"iat": NOW + 3600, "exp": NOW + 7200})),
        vec![JwtCheck::IatInFuture]
    );
    assert_eq!(
        check(json!({"iat": NOW, "nbf": NOW + 3600, "exp": NOW + 7200})),
        vec![JwtCheck::NbfInFuture]
    );
    // Within the 60 s skew, and fractional seconds.
    assert_eq!(
        check(json!({"iat": NOW + 30, "nbf": NOW as f64 + 59.5, "exp": NOW + 60})),
        vec![]
    );
    assert_eq!(
        check(json!({"iat": "yesterday", "exp": NOW + 60})),
        vec![JwtCheck::Malformed]
    );
}

#[test]
fn kid_checks() {
    let check = |kid: &str| {
        let t = token(json!({"alg": "RS256", "kid": kid}), good_claims(), b"");
        lint_default(&t)
            .into_iter()
            .map(|f| (f.id, f.severity))
            .collect::<Vec<_>>()
    };
    assert_eq!(
        check("../../../../dev/null"),
        vec![(JwtCheck::KidPathTraversal, Severity::High)]
    );
    assert_eq!(
        check("keys/2024"),
        vec![(JwtCheck::KidPathTraversal, Severity::Medium)]
    );
    assert_eq!(
        check("..\\..\\boot.ini"),
        vec![(JwtCheck::KidPathTraversal, Severity::High)]
    );
    assert_eq!(
        check("x' UNION SELECT 'key"),
        vec![(JwtCheck::KidInjection, Severity::High)]
    );
    assert_eq!(
        check("k1; rm -rf ~"),
        vec![(JwtCheck::KidInjection, Severity::High)]
    );
    assert_eq!(
        check("k1|id"),
        vec![(JwtCheck::KidInjection, Severity::High)]
    );
    assert_eq!(
        check("k1\u{0}"),
        vec![(JwtCheck::KidInjection, Severity::High)]
    );
    assert_eq!(
        check("k1 or 1=1"),
        vec![(JwtCheck::KidInjection, Severity::High)]
    );
    assert_eq!(
        check("k1--"),
        vec![(JwtCheck::KidInjection, Severity::High)]
    );
    for fine in [
        "key-update-2024",
        "2024-01-rsa",
        "NjVBRjY5MDlCMUIwNzU4RTA2QzZFMDQ4QzQ2MDAyQjVDNjk1RTM2Qg",
        "b3f1c0de-2a4e-4f7a-9c1b-0e5d6a7b8c9d",
    ] {
        assert_eq!(check(fine), vec![], "{fine}");
    }
}

#[test]
fn key_urls_and_embedded_keys() {
    let policy = LintPolicy {
        allowed_key_urls: vec![
            "https://issuer.example/.well-known/".into(),
            "https://keys.example/jwks.json".into(),
        ],
        ..LintPolicy::default()
    };
    let check =
        |header: serde_json::Value| ids(&lint(&token(header, good_claims(), b""), &policy, now()));
    assert_eq!(
        check(json!({"alg": "RS256", "jku": "https://issuer.example/.well-known/jwks.json"})),
        vec![]
    );
    assert_eq!(
        check(json!({"alg": "RS256", "x5u": "https://keys.example/jwks.json"})),
        vec![]
    );
    assert_eq!(
        check(json!({"alg": "RS256", "jku": "https://evil.example/jwks.json"})),
        vec![JwtCheck::JkuNotAllowed]
    );
    assert_eq!(
        check(json!({"alg": "RS256", "jku": "http://issuer.example/.well-known/jwks.json"})),
        vec![JwtCheck::JkuNotAllowed]
    );
    assert_eq!(
        check(json!({"alg": "RS256", "x5u": "https://keys.example/jwks.json.evil"})),
        vec![JwtCheck::X5uNotAllowed]
    );
    assert_eq!(
        check(json!({"alg": "RS256", "jku": 7})),
        vec![JwtCheck::JkuNotAllowed]
    );
    assert_eq!(
        check(json!({"alg": "RS256", "jwk": {"kty": "RSA", "n": "AQAB", "e": "AQAB"}})),
        vec![JwtCheck::EmbeddedJwk]
    );
}

#[test]
fn crit_extensions() {
    let policy = LintPolicy {
        understood_crit: vec!["b64".into()],
        ..LintPolicy::default()
    };
    let check =
        |header: serde_json::Value| ids(&lint(&token(header, good_claims(), b""), &policy, now()));
    assert_eq!(
        check(json!({"alg": "RS256", "crit": ["b64"], "b64": true})),
        vec![]
    );
    assert_eq!(
        check(json!({"alg": "RS256", "crit": ["exp"], "exp": 1})),
        vec![JwtCheck::UnknownCrit]
    );
    assert_eq!(
        check(json!({"alg": "RS256", "crit": ["b64"]})),
        vec![JwtCheck::UnknownCrit]
    );
    assert_eq!(
        check(json!({"alg": "RS256", "crit": []})),
        vec![JwtCheck::UnknownCrit]
    );
    assert_eq!(
        check(json!({"alg": "RS256", "crit": "b64"})),
        vec![JwtCheck::UnknownCrit]
    );
}

#[test]
fn oversized_tokens_are_reported_and_not_guessed() {
    let policy = LintPolicy {
        max_token_bytes: 64,
        ..LintPolicy::default()
    };
    let t = token(json!({"alg": "HS256"}), good_claims(), b"secret");
    let found = lint(&t, &policy, now());
    assert_eq!(ids(&found), vec![JwtCheck::Oversized]);
}

#[test]
fn malformed_structures() {
    let claims = b64(&good_claims());
    let header = b64(&json!({"alg": "RS256"}));
    for bad in [
        "".to_owned(),
        "abc".to_owned(),
        format!("{header}.{claims}"),
        format!("{header}.{claims}.sig.more"),
        format!("{header}.{claims}.a.b"),
        format!("!!!.{claims}.c2ln"),
        format!("{}.{claims}.c2ln", b64(&json!(["alg", "RS256"]))),
        format!("{header}.{claims}.!!!"),
    ] {
        assert_eq!(ids(&lint_default(&bad)), vec![JwtCheck::Malformed], "{bad}");
    }
    // A header we can read still gets its checks when the claims cannot be read.
    let t = format!("{}.bm90IGpzb24.", b64(&json!({"alg": "none"})));
    assert_eq!(
        ids(&lint_default(&t)),
        vec![JwtCheck::Malformed, JwtCheck::AlgNone]
    );
    let t = format!("{}.{claims}.c2ln", b64(&json!({"typ": "JWT"})));
    assert_eq!(ids(&lint_default(&t)), vec![JwtCheck::Malformed]);
}

#[test]
fn messages_never_contain_the_token_or_signature() {
    let t = token(
        json!({"alg": "HS256", "kid": "../x", "jku": "https://evil.example/k"}),
        json!({"iat": NOW + 9999}),
        b"secret",
    );
    let sig = t.rsplit('.').next().unwrap();
    for f in lint_default(&t) {
        assert!(!f.message.contains(sig) && !f.message.contains(&t), "{f:?}");
        assert!(!f.message.contains("\"secret\""));
    }
}
