//! The grant language: RFC 9396-style JSON grants and their compilation to Datalog checks.
//!
//! A list of grants compiles to one check whose alternatives are the grants:
//! `check if <grant 0> or <grant 1> …`. A request passes the check when it satisfies at
//! least one grant. The check's text names every constraint, so a denial can show the
//! client exactly which check failed. Values enter Datalog only as parameters, never by
//! formatting input into source text.

use std::collections::{BTreeSet, HashMap};

use biscuit_auth::builder::{BlockBuilder, Term};
use serde::{Deserialize, Serialize};

/// Longest name (upstream, model, action) accepted in a grant.
const MAX_NAME_LEN: usize = 256;
/// Most entries accepted in one list of a grant.
const MAX_LIST_LEN: usize = 256;
/// Most grants accepted in one block.
pub const MAX_GRANTS: usize = 64;

/// One thing a writ allows. The `type` field selects the kind.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type")]
pub enum Grant {
    /// Calls to a model API upstream.
    #[serde(rename = "writ:llm")]
    Llm(LlmGrant),
}

/// A `writ:llm` grant: which upstream, which operations, which models, what output cap.
/// A field left out does not constrain the request.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LlmGrant {
    /// Name of the configured upstream.
    pub upstream: String,
    /// Allowed operations, such as `chat` or `embeddings`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub actions: Option<Vec<String>>,
    /// Allowed model names.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub models: Option<Vec<String>>,
    /// The largest output-token cap a request may state. When set, requests must state one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_output_tokens: Option<u64>,
}

/// A grant could not be parsed or is out of bounds.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum GrantError {
    /// The JSON is not a grant or list of grants.
    #[error("invalid grant JSON: {0}")]
    Json(String),
    /// No grants were given.
    #[error("at least one grant is required")]
    Empty,
    /// Too many grants in one block.
    #[error("{count} grants given, at most {max} accepted")]
    TooMany {
        /// Grants given.
        count: usize,
        /// Most accepted.
        max: usize,
    },
    /// A field is empty, too long, or holds control characters.
    #[error("grant field `{field}` is invalid: {reason}")]
    InvalidField {
        /// The field name.
        field: &'static str,
        /// What is wrong with it.
        reason: &'static str,
    },
}

/// Parses grants from JSON: one grant object or an array of them.
pub fn parse_grants(json: &str) -> Result<Vec<Grant>, GrantError> {
    let value: serde_json::Value =
        serde_json::from_str(json).map_err(|e| GrantError::Json(e.to_string()))?;
    let grants: Vec<Grant> = match value {
        serde_json::Value::Array(_) => serde_json::from_value(value),
        other => serde_json::from_value(other).map(|g| vec![g]),
    }
    .map_err(|e| GrantError::Json(e.to_string()))?;
    validate(&grants)?;
    Ok(grants)
}

/// Checks bounds on a list of grants.
pub(crate) fn validate(grants: &[Grant]) -> Result<(), GrantError> {
    if grants.is_empty() {
        return Err(GrantError::Empty);
    }
    if grants.len() > MAX_GRANTS {
        return Err(GrantError::TooMany {
            count: grants.len(),
            max: MAX_GRANTS,
        });
    }
    for grant in grants {
        match grant {
            Grant::Llm(g) => {
                check_name("upstream", &g.upstream)?;
                for (field, list) in [("actions", &g.actions), ("models", &g.models)] {
                    if let Some(list) = list {
                        if list.is_empty() {
                            return Err(GrantError::InvalidField {
                                field,
                                reason: "empty list (leave the field out to allow any)",
                            });
                        }
                        if list.len() > MAX_LIST_LEN {
                            return Err(GrantError::InvalidField {
                                field,
                                reason: "too many entries",
                            });
                        }
                        for name in list {
                            check_name(field, name)?;
                        }
                    }
                }
                if g.max_output_tokens.is_some_and(|n| n > i64::MAX as u64) {
                    return Err(GrantError::InvalidField {
                        field: "max_output_tokens",
                        reason: "too large",
                    });
                }
            }
        }
    }
    Ok(())
}

fn check_name(field: &'static str, name: &str) -> Result<(), GrantError> {
    if name.is_empty() {
        return Err(GrantError::InvalidField {
            field,
            reason: "empty",
        });
    }
    if name.len() > MAX_NAME_LEN {
        return Err(GrantError::InvalidField {
            field,
            reason: "longer than 256 bytes",
        });
    }
    if name.chars().any(char::is_control) {
        return Err(GrantError::InvalidField {
            field,
            reason: "contains control characters",
        });
    }
    Ok(())
}

/// Adds to `block` one check that passes when the request satisfies any of `grants`.
pub(crate) fn add_grant_check(
    block: BlockBuilder,
    grants: &[Grant],
) -> Result<BlockBuilder, biscuit_auth::error::Token> {
    let mut alternatives = Vec::with_capacity(grants.len());
    let mut params = HashMap::new();
    for (i, grant) in grants.iter().enumerate() {
        alternatives.push(grant_query(grant, i, &mut params));
    }
    let source = format!("check if {};", alternatives.join(" or "));
    block.code_with_params(source, params, HashMap::new())
}

/// One grant as a Datalog query body. Only generated names go into the text; values are
/// bound as parameters.
fn grant_query(grant: &Grant, i: usize, params: &mut HashMap<String, Term>) -> String {
    match grant {
        Grant::Llm(g) => {
            let mut parts = vec![format!("upstream({{upstream_{i}}})")];
            params.insert(format!("upstream_{i}"), Term::from(g.upstream.as_str()));
            if let Some(actions) = &g.actions {
                parts.push(format!(
                    "operation($op_{i}), {{actions_{i}}}.contains($op_{i})"
                ));
                params.insert(format!("actions_{i}"), string_set(actions));
            }
            if let Some(models) = &g.models {
                parts.push(format!(
                    "model($model_{i}), {{models_{i}}}.contains($model_{i})"
                ));
                params.insert(format!("models_{i}"), string_set(models));
            }
            if let Some(cap) = g.max_output_tokens {
                parts.push(format!(
                    "max_output_tokens($max_{i}), $max_{i} <= {{max_output_tokens_{i}}}"
                ));
                let cap = i64::try_from(cap).unwrap_or(i64::MAX);
                params.insert(format!("max_output_tokens_{i}"), Term::from(cap));
            }
            parts.join(", ")
        }
    }
}

fn string_set(values: &[String]) -> Term {
    Term::Set(
        values
            .iter()
            .map(|v| Term::from(v.as_str()))
            .collect::<BTreeSet<_>>(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_single_object_and_array() {
        let one = parse_grants(r#"{"type":"writ:llm","upstream":"demo"}"#).unwrap();
        let many = parse_grants(r#"[{"type":"writ:llm","upstream":"demo"}]"#).unwrap();
        assert_eq!(one, many);
    }

    #[test]
    fn rejects_unknown_type_and_fields() {
        assert!(matches!(
            parse_grants(r#"{"type":"writ:root","upstream":"demo"}"#),
            Err(GrantError::Json(_))
        ));
        assert!(matches!(
            parse_grants(r#"{"type":"writ:llm","upstream":"demo","admin":true}"#),
            Err(GrantError::Json(_))
        ));
        assert!(matches!(
            parse_grants(r#"{"type":"writ:llm","upstream":"demo","models":"gpt-4o"}"#),
            Err(GrantError::Json(_))
        ));
    }

    #[test]
    fn rejects_empty_and_hostile_values() {
        assert_eq!(parse_grants("[]"), Err(GrantError::Empty));
        assert!(matches!(
            parse_grants(r#"{"type":"writ:llm","upstream":""}"#),
            Err(GrantError::InvalidField {
                field: "upstream",
                ..
            })
        ));
        assert!(matches!(
            parse_grants(r#"{"type":"writ:llm","upstream":"d","models":[]}"#),
            Err(GrantError::InvalidField {
                field: "models",
                ..
            })
        ));
        let long = "x".repeat(300);
        assert!(matches!(
            parse_grants(&format!(r#"{{"type":"writ:llm","upstream":"{long}"}}"#)),
            Err(GrantError::InvalidField {
                field: "upstream",
                ..
            })
        ));
        assert!(matches!(
            parse_grants(r#"{"type":"writ:llm","upstream":"a\u0000b"}"#),
            Err(GrantError::InvalidField {
                field: "upstream",
                ..
            })
        ));
    }
}
