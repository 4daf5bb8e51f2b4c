//! The audience of a writ (RFC 8707): the one resource it may be used at. The issuer
//! states it as `audience(<uri>)` with the check `check if resource(<uri>)`, and the
//! gateway states `resource(<uri>)` only for requests at that resource, so the writ is
//! refused everywhere else — at other resources and at routes that are no resource.
//!
//! Only the gateway states an audience: in the authority block at mint time, or in a
//! delegation block a trusted root key signed. A holder may append the same check to
//! narrow a writ, but what it states is never read back as the writ's audience.

use std::collections::HashMap;

use biscuit_auth::builder::{BlockBuilder, Rule, Term};
use biscuit_auth::{Authorizer, Biscuit};

use crate::error::WritError;
use crate::keys::RootKeys;

/// Longest audience accepted, in bytes: a URI of an endpoint, never a document.
pub const MAX_AUDIENCE_BYTES: usize = 2048;

/// The Datalog that binds a writ to `audience`; the value is a parameter, never source.
const BIND: &str = "audience({aud}); check if resource({aud});";

/// Adds to `block` the statement that the writ is for `audience` and the check that every
/// request is at it. Refuses an empty audience, one longer than [`MAX_AUDIENCE_BYTES`],
/// or one with control characters.
pub(crate) fn bind(block: BlockBuilder, audience: &str) -> Result<BlockBuilder, WritError> {
    if audience.is_empty() {
        return Err(WritError::InvalidAudience { reason: "empty" });
    }
    if audience.len() > MAX_AUDIENCE_BYTES {
        return Err(WritError::InvalidAudience {
            reason: "longer than 2048 bytes",
        });
    }
    if audience.chars().any(char::is_control) {
        return Err(WritError::InvalidAudience {
            reason: "contains control characters",
        });
    }
    block
        .code_with_params(
            BIND,
            HashMap::from([("aud".to_string(), Term::from(audience))]),
            HashMap::new(),
        )
        .map_err(|e| WritError::Build(e.to_string()))
}

/// The audience the gateway stated for this writ: `audience(..)` in the authority block or
/// in a delegation block signed by a key in `trusted`. `None` for a writ usable at any
/// resource. A writ stating two is refused: no request could satisfy both.
pub(crate) fn stated(
    biscuit: &Biscuit,
    authorizer: &mut Authorizer,
    trusted: &RootKeys,
) -> Result<Option<String>, WritError> {
    let unreadable = |_| WritError::Malformed {
        reason: "audience query",
    };
    // Default scope: the authority block and the authorizer, never a holder's block.
    static STATED: std::sync::LazyLock<Option<Rule>> =
        std::sync::LazyLock::new(|| "a($r) <- audience($r)".try_into().ok());
    let stated = STATED.as_ref().ok_or(WritError::Malformed {
        reason: "audience query",
    })?;
    let mut found: Vec<(String,)> = authorizer
        .query(stated.clone())
        .map_err(crate::verify::evaluation_error)?;
    let external = biscuit.external_public_keys();
    for (_, key) in trusted.iter() {
        if !external.iter().any(|k| k.as_ref() == Some(key)) {
            continue;
        }
        let mut rule: Rule = "a($r) <- audience($r) trusting {key}"
            .try_into()
            .map_err(unreadable)?;
        rule.set_scope("key", *key).map_err(unreadable)?;
        let rows: Vec<(String,)> = authorizer
            .query(rule)
            .map_err(crate::verify::evaluation_error)?;
        found.extend(rows);
    }
    found.sort();
    found.dedup();
    match <[(String,); 1]>::try_from(found) {
        Ok([(audience,)]) => Ok(Some(audience)),
        Err(found) if found.is_empty() => Ok(None),
        Err(_) => Err(WritError::Malformed {
            reason: "states more than one audience",
        }),
    }
}

/// Whether `rule` (a failed check as the authorizer prints it) is an audience check:
/// `check if resource("<uri>")`.
pub(crate) fn is_audience_check(rule: &str) -> bool {
    rule.strip_prefix("check if resource(\"")
        .and_then(|rest| rest.strip_suffix("\")"))
        .is_some_and(|uri| !uri.contains('"'))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hostile_audiences_are_refused_before_any_datalog_is_built() {
        let long = "a".repeat(MAX_AUDIENCE_BYTES + 1);
        for bad in ["", long.as_str(), "https://gw/mcp/a\nb"] {
            assert!(
                matches!(
                    bind(BlockBuilder::new(), bad),
                    Err(WritError::InvalidAudience { .. })
                ),
                "{bad:.20}"
            );
        }
        // A value that would be Datalog if formatted into source stays one string.
        let block = bind(BlockBuilder::new(), "x\"); check if false; //")
            .expect("any printable string is a value");
        assert_eq!(block.checks.len(), 1);
        assert_eq!(block.facts.len(), 1);
    }

    #[test]
    fn only_the_audience_check_shape_is_recognised() {
        assert!(is_audience_check(
            r#"check if resource("https://gw/mcp/travel")"#
        ));
        assert!(!is_audience_check(r#"check if resource($r)"#));
        assert!(!is_audience_check(
            r#"check if api("tool"), resource("https://gw/mcp/travel")"#
        ));
        assert!(!is_audience_check(r#"check if upstream("travel")"#));
    }
}
