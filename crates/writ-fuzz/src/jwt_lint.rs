//! Target `jwt_lint`: writ-detect's JWT linter on a presented token.

use std::sync::LazyLock;
use std::time::Duration;

use writ_detect::jwt::{KeySelector, LintPolicy, lint};

use crate::fixed_key::fixed_now;

/// A policy that turns on every check: trusted key URLs, an understood `crit`, an issuer
/// that signs asymmetrically, and an extra weak secret to guess.
static POLICY: LazyLock<LintPolicy> = LazyLock::new(|| LintPolicy {
    max_token_bytes: 4096,
    max_lifetime: Duration::from_secs(3600),
    clock_skew: Duration::from_secs(60),
    allowed_key_urls: vec!["https://keys.example.com/".into()],
    understood_crit: vec!["b64".into()],
    asymmetric_keys: vec![KeySelector {
        issuer: Some("https://issuer.example.com".into()),
        kid: None,
    }],
    public_keys_pem: Vec::new(),
    extra_weak_secrets: vec!["fuzz-weak-secret".into()],
});

/// Input: the token text (lossily decoded, as a header value would be).
///
/// Invariants: linting never panics, gives the same findings twice, and no finding's
/// message quotes the token. The quoting check holds for tokens without whitespace, as
/// every real token is: a token with spaces can be a phrase of a message's own fixed text
/// (the fuzzer found `dot-separated segment`), which is not a quotation.
pub fn jwt_lint(data: &[u8]) {
    let token = String::from_utf8_lossy(data);
    let findings = lint(&token, &POLICY, fixed_now());
    assert_eq!(
        findings,
        lint(&token, &POLICY, fixed_now()),
        "linting is not deterministic"
    );
    let token = token.trim();
    if token.len() >= 16 && !token.contains(char::is_whitespace) {
        for finding in &findings {
            assert!(
                !finding.message.contains(token),
                "finding {:?} quotes the token",
                finding.id
            );
        }
    }
}
