//! The `scope` parameter (RFC 6749 §3.3). Writ advertises one scope, `mcp`, for its MCP
//! resources (what MCP clients echo from the metadata and challenges); what a writ allows
//! is stated by its grants, never by a scope, so `mcp` asks for nothing more. Any other
//! scope is refused rather than silently ignored.

use super::OAuthError;
use crate::pipeline::challenge::MCP_SCOPES;

/// The scope to answer with: `None` when none was asked, the one known scope when only it
/// was (once or more), `invalid_scope` for anything else: an unknown token, an empty list,
/// or a separator other than one space. Nothing the client sent is echoed.
pub(super) fn requested(scope: Option<&str>) -> Result<Option<&'static str>, OAuthError> {
    let Some(scope) = scope else {
        return Ok(None);
    };
    let mut granted = None;
    for token in scope.split(' ') {
        match MCP_SCOPES.iter().find(|s| **s == token) {
            Some(known) => granted = Some(*known),
            None => {
                return Err(OAuthError::invalid_scope(format!(
                    "the only scope is `{}`; what a writ allows is asked for in authorization_details or implied by resource",
                    MCP_SCOPES.join(" ")
                )));
            }
        }
    }
    Ok(granted)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::control::token_endpoint::OAuthErrorCode;

    #[test]
    fn mcp_is_granted_and_echoed_once() {
        assert_eq!(requested(None).ok(), Some(None));
        assert_eq!(requested(Some("mcp")).ok(), Some(Some("mcp")));
        assert_eq!(requested(Some("mcp mcp")).ok(), Some(Some("mcp")));
    }

    #[test]
    fn anything_else_is_an_invalid_scope() {
        for bad in [
            "",
            "admin",
            "mcp admin",
            "MCP",
            "mcp ",
            " mcp",
            "mcp\tmcp",
            "mcp  mcp",
        ] {
            let e = requested(Some(bad)).expect_err(bad);
            assert_eq!(e.code, OAuthErrorCode::InvalidScope, "{bad:?}");
            assert!(
                !e.description.contains("admin"),
                "echoed: {}",
                e.description
            );
        }
    }
}
