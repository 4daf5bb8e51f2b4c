//! Time claims: a token without `exp` lives forever; one whose `exp` is far ahead lives
//! too long; `iat` or `nbf` ahead of the clock hint at a skewed or forged issuer.

use serde_json::{Map, Value};

use super::policy::LintPolicy;
use super::{JwtCheck, JwtFinding, Severity};

pub(super) fn check(
    claims: &Map<String, Value>,
    policy: &LintPolicy,
    now: f64,
    findings: &mut Vec<JwtFinding>,
) {
    let skew = policy.clock_skew.as_secs_f64();
    match numeric_date("exp", claims, findings) {
        Claim::Missing => findings.push(JwtFinding::new(
            JwtCheck::MissingExp,
            Severity::High,
            "no `exp` claim: the token never expires",
        )),
        Claim::At(exp) => {
            let max = policy.max_lifetime.as_secs_f64();
            if exp - now > max {
                findings.push(JwtFinding::new(
                    JwtCheck::ExpTooFar,
                    Severity::Medium,
                    format!(
                        "`exp` is {} ahead, over the {} maximum lifetime",
                        human(exp - now),
                        human(max)
                    ),
                ));
            }
        }
        Claim::Invalid => {}
    }
    match numeric_date("iat", claims, findings) {
        Claim::Missing => findings.push(JwtFinding::new(
            JwtCheck::MissingIat,
            Severity::Low,
            "no `iat` claim: the token's age cannot be checked",
        )),
        Claim::At(iat) if iat - now > skew => findings.push(JwtFinding::new(
            JwtCheck::IatInFuture,
            Severity::Medium,
            format!("`iat` is {} in the future", human(iat - now)),
        )),
        _ => {}
    }
    if let Claim::At(nbf) = numeric_date("nbf", claims, findings)
        && nbf - now > skew
    {
        findings.push(JwtFinding::new(
            JwtCheck::NbfInFuture,
            Severity::Low,
            format!("`nbf` is {} in the future: not yet valid", human(nbf - now)),
        ));
    }
}

enum Claim {
    Missing,
    Invalid,
    At(f64),
}

/// A NumericDate claim (RFC 7519 §2: seconds since the epoch, fractions allowed).
fn numeric_date(name: &str, claims: &Map<String, Value>, findings: &mut Vec<JwtFinding>) -> Claim {
    match claims.get(name) {
        None => Claim::Missing,
        Some(v) => match v.as_f64().filter(|t| t.is_finite()) {
            Some(t) => Claim::At(t),
            None => {
                findings.push(JwtFinding::new(
                    JwtCheck::Malformed,
                    Severity::Medium,
                    format!("`{name}` is not a number of seconds"),
                ));
                Claim::Invalid
            }
        },
    }
}

/// `90061` → `"1d 1h 1m"`, for messages.
fn human(secs: f64) -> String {
    let s = secs.max(0.0) as u64;
    let (d, h, m) = (s / 86_400, s % 86_400 / 3600, s % 3600 / 60);
    match (d, h, m) {
        (0, 0, 0) => format!("{s}s"),
        (0, 0, m) => format!("{m}m"),
        (0, h, m) => format!("{h}h {m}m"),
        (d, h, m) => format!("{d}d {h}h {m}m"),
    }
}
