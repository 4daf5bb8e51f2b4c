//! Reading a policy's source: its name checked, its statements parsed into checks and
//! approval rules (each rule read as the check `reject if <body>`), and everything else a
//! policy may not state refused with its line.

use biscuit_auth::builder::{self, Binary, Check, Op, Term, Unary};

use super::{ForbiddenConstruct, MAX_POLICY_NAME_BYTES, PolicyError};

/// Longest reason of an approval rule, in bytes.
const MAX_APPROVAL_REASON_BYTES: usize = 200;

pub(super) fn valid_name(name: &str) -> Result<(), PolicyError> {
    let ok = !name.is_empty()
        && name.len() <= MAX_POLICY_NAME_BYTES
        // `.` and `..` would be read as path steps in the admin API's URLs.
        && name.bytes().any(|b| b != b'.')
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'));
    if ok {
        Ok(())
    } else {
        Err(PolicyError::InvalidName {
            name: name.chars().take(MAX_POLICY_NAME_BYTES + 8).collect(),
        })
    }
}

/// The line (from 1) where `part`, a slice of `text`, starts.
fn line_of(text: &str, part: &str) -> usize {
    let offset = (part.as_ptr() as usize)
        .saturating_sub(text.as_ptr() as usize)
        .min(text.len());
    let start = offset + (part.len() - part.trim_start().len());
    text.get(..start.min(text.len()))
        .map_or(1, |before| before.matches('\n').count() + 1)
}

/// One statement of a policy: its line, its text on one line, the check it is read as, and
/// for an approval rule its reason.
pub(super) type Statement = (usize, String, Check, Option<String>);

/// The checks and approval rules of one policy source, or why it is refused.
pub(super) fn parse(name: &str, text: &str) -> Result<Vec<Statement>, PolicyError> {
    let forbidden = |line, construct| PolicyError::Forbidden {
        policy: name.to_string(),
        line,
        construct,
    };
    let parsed = match biscuit_auth::parser::parse_source(text) {
        Ok(parsed) => parsed,
        Err(errors) => {
            let first = errors.first();
            let line = first.map_or(1, |e| line_of(text, e.input));
            let near = first.map(|e| e.input.trim()).unwrap_or_default();
            // A block-level `trusting …;` is not part of the grammar a policy is read with.
            if near.starts_with("trusting") {
                return Err(forbidden(line, ForbiddenConstruct::Trusting));
            }
            return Err(PolicyError::Syntax {
                policy: name.to_string(),
                line,
                near: (!near.is_empty()).then(|| near.chars().take(40).collect()),
            });
        }
    };
    if let Some((s, _)) = parsed.facts.first() {
        return Err(forbidden(line_of(text, s), ForbiddenConstruct::Fact));
    }
    let mut approval_rules = Vec::with_capacity(parsed.rules.len());
    for (source, rule) in parsed.rules {
        let line = line_of(text, source);
        let rule = builder::Rule::from(rule);
        let reason = match rule.head.terms.as_slice() {
            [Term::Str(reason)]
                if rule.head.name == "requires_approval"
                    && !reason.trim().is_empty()
                    && reason.len() <= MAX_APPROVAL_REASON_BYTES
                    && !reason.chars().any(char::is_control) =>
            {
                reason.clone()
            }
            _ => return Err(forbidden(line, ForbiddenConstruct::Rule)),
        };
        let query = builder::Rule {
            head: builder::Predicate {
                name: "query".to_string(),
                terms: Vec::new(),
            },
            ..rule
        };
        let check = Check {
            queries: vec![query],
            kind: builder::CheckKind::Reject,
        };
        approval_rules.push((line, one_line(source), check, Some(reason)));
    }
    if let Some((s, _)) = parsed.policies.first() {
        return Err(forbidden(line_of(text, s), ForbiddenConstruct::AllowOrDeny));
    }
    if !parsed.scopes.is_empty() {
        return Err(forbidden(1, ForbiddenConstruct::Trusting));
    }
    if parsed.checks.is_empty() && approval_rules.is_empty() {
        return Err(PolicyError::NoCheck {
            policy: name.to_string(),
        });
    }
    let mut out = Vec::with_capacity(parsed.checks.len() + approval_rules.len());
    for (source, check) in parsed.checks {
        out.push((
            line_of(text, source),
            one_line(source),
            Check::from(check),
            None,
        ));
    }
    out.extend(approval_rules);
    for (line, _, check, _) in &out {
        if let Some(construct) = check.queries.iter().find_map(forbidden_in_query) {
            return Err(forbidden(*line, construct));
        }
    }
    out.sort_by_key(|s| s.0);
    Ok(out)
}

/// A statement's source on one line.
fn one_line(source: &str) -> String {
    source
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .collect::<Vec<_>>()
        .join(" ")
}

/// What a check's query states that policies may not hold, if anything.
fn forbidden_in_query(rule: &builder::Rule) -> Option<ForbiddenConstruct> {
    if !rule.scopes.is_empty()
        || rule
            .scope_parameters
            .as_ref()
            .is_some_and(|p| !p.is_empty())
    {
        return Some(ForbiddenConstruct::Trusting);
    }
    if rule.parameters.as_ref().is_some_and(|p| !p.is_empty()) {
        return Some(ForbiddenConstruct::Parameter);
    }
    let terms = rule.body.iter().flat_map(|p| p.terms.iter());
    if terms.clone().any(|t| matches!(t, Term::Parameter(_))) {
        return Some(ForbiddenConstruct::Parameter);
    }
    rule.expressions
        .iter()
        .find_map(|e| forbidden_in_ops(&e.ops))
}

fn forbidden_in_ops(ops: &[Op]) -> Option<ForbiddenConstruct> {
    ops.iter().find_map(|op| match op {
        Op::Unary(Unary::Ffi(_)) | Op::Binary(Binary::Ffi(_)) => {
            Some(ForbiddenConstruct::ExternalFunction)
        }
        Op::Value(Term::Parameter(_)) => Some(ForbiddenConstruct::Parameter),
        Op::Closure(_, body) => forbidden_in_ops(body),
        _ => None,
    })
}
