//! The JWT linter: finds the weaknesses that break authentication with JSON Web Tokens —
//! `alg: none`, guessable HMAC secrets, RS/HS algorithm confusion, missing or excessive
//! lifetimes, and header fields that make a verifier fetch or trust attacker-chosen keys.
//!
//! The linter reports; it does not decide whether a token is valid. It verifies HMAC
//! signatures only to test guessed secrets, never checks asymmetric signatures, and does
//! no I/O: time comes in as `now`.

mod claims;
mod header;
mod policy;
mod signature;

use std::time::{SystemTime, UNIX_EPOCH};

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde_json::{Map, Value};

pub use policy::{DEFAULT_MAX_TOKEN_BYTES, KeySelector, LintPolicy};
pub use signature::weak_secrets;

/// How bad a finding is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Severity {
    /// Hygiene: worth fixing, not exploitable alone.
    Low,
    /// Weakens defences or hints at misuse.
    Medium,
    /// Exploitable with some effort or in some verifiers.
    High,
    /// Anyone can forge tokens.
    Critical,
}

impl Severity {
    /// The stable lower-case name (`critical`), as `writ lint` prints it.
    pub const fn as_str(self) -> &'static str {
        match self {
            Severity::Low => "low",
            Severity::Medium => "medium",
            Severity::High => "high",
            Severity::Critical => "critical",
        }
    }
}

/// What a finding is about. Each has a stable id ([`as_str`](Self::as_str)).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum JwtCheck {
    /// Not three base64url segments with JSON header and claims.
    Malformed,
    /// Longer than the policy's maximum.
    Oversized,
    /// `alg` is `none` in any letter case: unsigned.
    AlgNone,
    /// The HMAC signature verifies with a well-known secret.
    WeakHmacSecret,
    /// An HMAC algorithm where policy expects an asymmetric one, or an HMAC signature
    /// made with a public key as the secret.
    AlgConfusion,
    /// No `exp` claim: the token never expires.
    MissingExp,
    /// `exp` is further ahead than the policy's maximum lifetime.
    ExpTooFar,
    /// No `iat` claim.
    MissingIat,
    /// `iat` is in the future beyond the allowed clock skew.
    IatInFuture,
    /// `nbf` is in the future beyond the allowed clock skew.
    NbfInFuture,
    /// `kid` contains `..` or path separators.
    KidPathTraversal,
    /// `kid` contains quotes, shell or SQL metacharacters, or control characters.
    KidInjection,
    /// `jku` is not in the allow-list.
    JkuNotAllowed,
    /// `x5u` is not in the allow-list.
    X5uNotAllowed,
    /// The header embeds its own verification key (`jwk`).
    EmbeddedJwk,
    /// `crit` names an extension the policy does not understand, or is malformed.
    UnknownCrit,
}

impl JwtCheck {
    /// The stable kebab-case id, such as `alg-none` (a check, where the gateway's
    /// detector kind is `weak_jwt`).
    pub const fn as_str(self) -> &'static str {
        match self {
            JwtCheck::Malformed => "malformed",
            JwtCheck::Oversized => "oversized",
            JwtCheck::AlgNone => "alg-none",
            JwtCheck::WeakHmacSecret => "weak-hmac-secret",
            JwtCheck::AlgConfusion => "alg-confusion",
            JwtCheck::MissingExp => "missing-exp",
            JwtCheck::ExpTooFar => "exp-too-far",
            JwtCheck::MissingIat => "missing-iat",
            JwtCheck::IatInFuture => "iat-in-future",
            JwtCheck::NbfInFuture => "nbf-in-future",
            JwtCheck::KidPathTraversal => "kid-path-traversal",
            JwtCheck::KidInjection => "kid-injection",
            JwtCheck::JkuNotAllowed => "jku-not-allowed",
            JwtCheck::X5uNotAllowed => "x5u-not-allowed",
            JwtCheck::EmbeddedJwk => "embedded-jwk",
            JwtCheck::UnknownCrit => "unknown-crit",
        }
    }
}

/// One weakness found in a token. Messages never contain the token, its signature or a
/// secret it verifies with.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct JwtFinding {
    /// What was found.
    pub id: JwtCheck,
    /// How bad it is.
    pub severity: Severity,
    /// A sentence for people.
    pub message: String,
}

impl JwtFinding {
    pub(crate) fn new(id: JwtCheck, severity: Severity, message: impl Into<String>) -> Self {
        JwtFinding {
            id,
            severity,
            message: message.into(),
        }
    }
}

/// A token split into its parts, header and claims parsed.
pub(crate) struct Parsed<'a> {
    /// `header.payload`, the bytes the signature covers.
    pub(crate) signing_input: &'a [u8],
    pub(crate) header: Map<String, Value>,
    /// `None` when the payload is not a JSON object (already reported as malformed).
    pub(crate) claims: Option<Map<String, Value>>,
    pub(crate) signature: Vec<u8>,
}

/// Lints `token` (compact JWS serialization, without any `Bearer ` prefix) against
/// `policy` at time `now`. Findings come in a fixed order: structure, header, signature,
/// claims.
pub fn lint(token: &str, policy: &LintPolicy, now: SystemTime) -> Vec<JwtFinding> {
    let mut findings = Vec::new();
    let token = token.trim();
    let oversized = token.len() > policy.max_token_bytes;
    if oversized {
        findings.push(JwtFinding::new(
            JwtCheck::Oversized,
            Severity::Medium,
            format!(
                "token is {} bytes, over the {}-byte limit; weak-secret guessing skipped",
                token.len(),
                policy.max_token_bytes
            ),
        ));
    }
    let parsed = match parse(token) {
        Ok(parsed) => parsed,
        Err(reason) => {
            findings.push(JwtFinding::new(
                JwtCheck::Malformed,
                Severity::Medium,
                reason,
            ));
            return findings;
        }
    };
    if parsed.claims.is_none() {
        findings.push(JwtFinding::new(
            JwtCheck::Malformed,
            Severity::Medium,
            "payload is not a base64url JSON object of claims",
        ));
    }
    let alg = match parsed.header.get("alg") {
        Some(Value::String(alg)) => alg.as_str(),
        _ => {
            findings.push(JwtFinding::new(
                JwtCheck::Malformed,
                Severity::Medium,
                "header has no string `alg`",
            ));
            ""
        }
    };
    header::check(&parsed.header, alg, policy, &mut findings);
    signature::check(&parsed, alg, policy, !oversized, &mut findings);
    if let Some(claims) = &parsed.claims {
        claims::check(claims, policy, unix_seconds(now), &mut findings);
    }
    findings
}

fn parse(token: &str) -> Result<Parsed<'_>, &'static str> {
    let segments: Vec<&str> = token.split('.').collect();
    match segments.len() {
        3 => {}
        5 => return Err("five segments: an encrypted JWE, which this linter does not read"),
        _ => return Err("not three dot-separated segments"),
    }
    let decode = |s: &str| URL_SAFE_NO_PAD.decode(s);
    let header = decode(segments[0]).map_err(|_| "header is not base64url")?;
    let header = match serde_json::from_slice(&header) {
        Ok(Value::Object(map)) => map,
        _ => return Err("header is not a JSON object"),
    };
    let claims = decode(segments[1])
        .ok()
        .and_then(|p| match serde_json::from_slice(&p) {
            Ok(Value::Object(map)) => Some(map),
            _ => None,
        });
    let signature = decode(segments[2]).map_err(|_| "signature is not base64url")?;
    let signing_len = segments[0].len() + 1 + segments[1].len();
    Ok(Parsed {
        signing_input: &token.as_bytes()[..signing_len],
        header,
        claims,
        signature,
    })
}

/// Seconds since the Unix epoch; times before it count as 0.
fn unix_seconds(t: SystemTime) -> f64 {
    t.duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs_f64())
        .unwrap_or(0.0)
}

#[cfg(test)]
mod tests;
