//! Header checks: `alg: none`, a `kid` that looks like a path or an injection, key URLs
//! (`jku`, `x5u`) outside the allow-list, an embedded `jwk`, and unknown `crit`
//! extensions.

use serde_json::{Map, Value};

use super::policy::LintPolicy;
use super::{JwtCheck, JwtFinding, Severity};

/// SQL words flagged in a `kid` only when it also contains whitespace, since opaque key
/// ids like `key-update-2024` are common and injections need separators.
const SQL_WORDS: &[&str] = &[
    "select",
    "union",
    "insert",
    "update",
    "delete",
    "drop",
    "sleep",
    "benchmark",
    "waitfor",
    "or",
    "and",
];

pub(super) fn check(
    header: &Map<String, Value>,
    alg: &str,
    policy: &LintPolicy,
    findings: &mut Vec<JwtFinding>,
) {
    if alg.eq_ignore_ascii_case("none") {
        findings.push(JwtFinding::new(
            JwtCheck::AlgNone,
            Severity::Critical,
            "`alg` is `none`: the token is unsigned and anyone can forge it",
        ));
    }
    if let Some(kid) = header.get("kid") {
        match kid.as_str() {
            Some(kid) => check_kid(kid, findings),
            None => findings.push(JwtFinding::new(
                JwtCheck::Malformed,
                Severity::Medium,
                "`kid` is not a string",
            )),
        }
    }
    for (name, id) in [
        ("jku", JwtCheck::JkuNotAllowed),
        ("x5u", JwtCheck::X5uNotAllowed),
    ] {
        if let Some(url) = header.get(name) {
            check_key_url(name, id, url, policy, findings);
        }
    }
    if header.contains_key("jwk") {
        findings.push(JwtFinding::new(
            JwtCheck::EmbeddedJwk,
            Severity::High,
            "header embeds its own key (`jwk`); a verifier that trusts it accepts any forgery",
        ));
    }
    if let Some(crit) = header.get("crit") {
        check_crit(crit, header, policy, findings);
    }
}

fn check_kid(kid: &str, findings: &mut Vec<JwtFinding>) {
    let traversal = kid.contains("..");
    if traversal || kid.contains('/') || kid.contains('\\') {
        let (severity, message) = if traversal {
            (
                Severity::High,
                "`kid` contains `..`: a verifier that reads keys from files can be pointed anywhere",
            )
        } else {
            (Severity::Medium, "`kid` contains a path separator")
        };
        findings.push(JwtFinding::new(
            JwtCheck::KidPathTraversal,
            severity,
            message,
        ));
    }
    let metachar = kid.chars().find(|c| {
        matches!(
            c,
            '\'' | '"' | ';' | '|' | '`' | '$' | '&' | '<' | '>' | '(' | ')'
        ) || c.is_control()
    });
    let comment = kid.contains("--") || kid.contains("/*");
    let sql_word = kid.contains(char::is_whitespace)
        && kid
            .split(|c: char| !c.is_ascii_alphanumeric())
            .any(|w| SQL_WORDS.iter().any(|s| w.eq_ignore_ascii_case(s)));
    let what = match (metachar, comment, sql_word) {
        (Some(c), _, _) if c.is_control() => Some("a control character".to_owned()),
        (Some(c), _, _) => Some(format!("the metacharacter {c:?}")),
        (None, true, _) => Some("an SQL comment".to_owned()),
        (None, false, true) => Some("SQL keywords".to_owned()),
        (None, false, false) => None,
    };
    if let Some(what) = what {
        findings.push(JwtFinding::new(
            JwtCheck::KidInjection,
            Severity::High,
            format!("`kid` contains {what}: a verifier that looks keys up by it may be injectable"),
        ));
    }
}

fn check_key_url(
    name: &str,
    id: JwtCheck,
    url: &Value,
    policy: &LintPolicy,
    findings: &mut Vec<JwtFinding>,
) {
    let Some(url) = url.as_str() else {
        findings.push(JwtFinding::new(
            id,
            Severity::High,
            format!("`{name}` is not a string URL"),
        ));
        return;
    };
    let allowed = url.starts_with("https://")
        && policy
            .allowed_key_urls
            .iter()
            .any(|entry| url == entry || (entry.ends_with('/') && url.starts_with(entry.as_str())));
    if !allowed {
        let why = if url.starts_with("https://") {
            "not in the allow-list"
        } else {
            "not https"
        };
        findings.push(JwtFinding::new(
            id,
            Severity::High,
            format!("`{name}` points to a key URL {why}: {}", printable(url)),
        ));
    }
}

fn check_crit(
    crit: &Value,
    header: &Map<String, Value>,
    policy: &LintPolicy,
    findings: &mut Vec<JwtFinding>,
) {
    let names: Option<Vec<&str>> = crit
        .as_array()
        .filter(|a| !a.is_empty())
        .and_then(|a| a.iter().map(Value::as_str).collect());
    let Some(names) = names else {
        findings.push(JwtFinding::new(
            JwtCheck::UnknownCrit,
            Severity::High,
            "`crit` is not a non-empty array of names (RFC 7515 §4.1.11: reject)",
        ));
        return;
    };
    for name in names {
        if !policy.understood_crit.iter().any(|u| u == name) {
            findings.push(JwtFinding::new(
                JwtCheck::UnknownCrit,
                Severity::High,
                format!("`crit` requires the unknown extension {}", printable(name)),
            ));
        } else if !header.contains_key(name) {
            findings.push(JwtFinding::new(
                JwtCheck::UnknownCrit,
                Severity::High,
                format!("`crit` names {} but the header lacks it", printable(name)),
            ));
        }
    }
}

/// Attacker-chosen text, quoted with escapes and cut to 100 characters, so a finding
/// cannot forge log lines.
fn printable(s: &str) -> String {
    let cut: String = s.chars().take(100).collect();
    let ellipsis = if cut.len() < s.len() { "…" } else { "" };
    format!("{cut:?}{ellipsis}")
}
