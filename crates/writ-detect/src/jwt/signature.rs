//! HMAC signature checks: guessable secrets, and algorithm confusion — an HMAC token where
//! an asymmetric key is expected, or one signed with a public key as the HMAC secret.
//!
//! Each guess costs one HMAC over the token; with about 280 bundled secrets a token of
//! the default maximum size takes well under a millisecond. Oversized tokens are not
//! guessed at, so a huge token cannot make the linter slow.

use hmac::{Hmac, Mac};
use sha2::{Sha256, Sha384, Sha512};

use super::policy::LintPolicy;
use super::{JwtCheck, JwtFinding, Parsed, Severity};

/// The bundled list of well-known JWT secrets (`data/jwt-weak-secrets.txt`): defaults from
/// tutorials, frameworks and docs, and common passwords. The empty secret is tried too.
const WEAK_SECRETS: &str = include_str!("../../data/jwt-weak-secrets.txt");

/// The bundled weak secrets, one per line of `data/jwt-weak-secrets.txt`.
pub fn weak_secrets() -> impl Iterator<Item = &'static str> {
    WEAK_SECRETS.lines().filter(|l| !l.is_empty())
}

#[derive(Clone, Copy)]
enum HmacAlg {
    Hs256,
    Hs384,
    Hs512,
}

impl HmacAlg {
    /// Letter case is ignored: some libraries accept `hs256`, and lint should err toward
    /// reporting.
    fn parse(alg: &str) -> Option<HmacAlg> {
        match alg.to_ascii_uppercase().as_str() {
            "HS256" => Some(HmacAlg::Hs256),
            "HS384" => Some(HmacAlg::Hs384),
            "HS512" => Some(HmacAlg::Hs512),
            _ => None,
        }
    }

    /// Whether `signature` is this HMAC of `message` under `key` (constant-time compare).
    fn verifies(self, key: &[u8], message: &[u8], signature: &[u8]) -> bool {
        fn run<M: Mac + hmac::digest::KeyInit>(key: &[u8], message: &[u8], sig: &[u8]) -> bool {
            // HMAC takes keys of any length, so this never fails.
            let Ok(mut mac) = <M as Mac>::new_from_slice(key) else {
                return false;
            };
            mac.update(message);
            mac.verify_slice(sig).is_ok()
        }
        match self {
            HmacAlg::Hs256 => run::<Hmac<Sha256>>(key, message, signature),
            HmacAlg::Hs384 => run::<Hmac<Sha384>>(key, message, signature),
            HmacAlg::Hs512 => run::<Hmac<Sha512>>(key, message, signature),
        }
    }
}

pub(super) fn check(
    parsed: &Parsed<'_>,
    alg: &str,
    policy: &LintPolicy,
    guess: bool,
    findings: &mut Vec<JwtFinding>,
) {
    let Some(hmac) = HmacAlg::parse(alg) else {
        return;
    };
    let issuer = parsed
        .claims
        .as_ref()
        .and_then(|c| c.get("iss"))
        .and_then(|v| v.as_str());
    let kid = parsed.header.get("kid").and_then(|v| v.as_str());
    if policy
        .asymmetric_keys
        .iter()
        .any(|k| k.matches(issuer, kid))
    {
        findings.push(JwtFinding::new(
            JwtCheck::AlgConfusion,
            Severity::Critical,
            format!(
                "`alg` is {alg} but policy says this issuer/key signs asymmetrically: \
                 a verifier that follows `alg` would use the public key as an HMAC secret"
            ),
        ));
    }
    let sig = parsed.signature.as_slice();
    let msg = parsed.signing_input;
    if sig.is_empty() {
        return;
    }
    let public_key_secret = policy.public_keys_pem.iter().any(|pem| {
        // Forgers use the PEM file as served: with or without its final newline.
        let trimmed = pem.trim_end();
        [pem.as_str(), trimmed, &format!("{trimmed}\n")]
            .iter()
            .any(|k| hmac.verifies(k.as_bytes(), msg, sig))
    });
    if public_key_secret {
        findings.push(JwtFinding::new(
            JwtCheck::AlgConfusion,
            Severity::Critical,
            format!(
                "{alg} signature verifies with a public key used as the HMAC secret: a forgery"
            ),
        ));
    }
    if !guess {
        return;
    }
    let verifies = |secret: &str| hmac.verifies(secret.as_bytes(), msg, sig);
    let weak = verifies("")
        || weak_secrets().any(verifies)
        || policy.extra_weak_secrets.iter().any(|s| verifies(s));
    if weak {
        findings.push(JwtFinding::new(
            JwtCheck::WeakHmacSecret,
            Severity::Critical,
            format!("{alg} signature verifies with a well-known secret: anyone can forge tokens"),
        ));
    }
}
