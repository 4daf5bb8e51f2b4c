//! Target `dpop_proof`: a `DPoP` header's proof checked against the request it came with.

use std::time::Duration;

use writ_token::dpop::{Expected, IAT_WINDOW, verify_proof};

use crate::fixed_key::fixed_now;

/// The request URL the seed proofs are for.
pub const PROOF_URL: &str = "https://writ.test/v1/chat/completions";
/// The access token the seed proofs' `ath` hashes.
pub const PROOF_ACCESS_TOKEN: &str = "writ_fuzz-access-token";

/// Input: the proof text (lossily decoded, as a header value would be).
///
/// Invariants: checking never panics; a proof accepted for `POST` at [`PROOF_URL`] (at the
/// token endpoint, or with [`PROOF_ACCESS_TOKEN`]) has a 43-character base64url thumbprint
/// and a `jti`, is refused for another method, another URL, another access token, and
/// outside the `iat` window.
pub fn dpop_proof(data: &[u8]) {
    let proof = String::from_utf8_lossy(data);
    let expected = |method, url, access_token, now| Expected {
        method,
        url,
        access_token,
        now,
    };
    let now = fixed_now();
    for token in [None, Some(PROOF_ACCESS_TOKEN)] {
        let Ok(accepted) = verify_proof(&proof, &expected("POST", PROOF_URL, token, now)) else {
            continue;
        };
        assert_eq!(accepted.thumbprint.len(), 43, "thumbprint is not a SHA-256");
        assert!(
            accepted
                .thumbprint
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_'),
            "thumbprint is not base64url"
        );
        assert!(!accepted.jti.is_empty(), "accepted without a jti");
        assert!(accepted.replayable_until >= now);
        let refused = |e: Expected<'_>, what: &str| {
            assert!(
                verify_proof(&proof, &e).is_err(),
                "a proof was accepted for {what}"
            );
        };
        refused(expected("GET", PROOF_URL, token, now), "another method");
        refused(
            expected("POST", "https://writ.test/v1/embeddings", token, now),
            "another URL",
        );
        let other_token = match token {
            None => Some(PROOF_ACCESS_TOKEN),
            Some(_) => Some("writ_another-token"),
        };
        if token.is_some() {
            refused(
                expected("POST", PROOF_URL, other_token, now),
                "another token",
            );
        }
        let outside = IAT_WINDOW * 2 + Duration::from_secs(3600);
        refused(
            expected("POST", PROOF_URL, token, now + outside),
            "a later time",
        );
        refused(
            expected("POST", PROOF_URL, token, now - outside),
            "an earlier time",
        );
    }
}
