//! The ways getting or using a writ fails, each naming what to do next.

/// Why a writ could not be obtained or a request could not be sent.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The token endpoint answered with an OAuth error (RFC 6749 §5.2): `invalid_client` for
    /// a wrong key or secret, `invalid_authorization_details` for grants beyond the agent's
    /// ceiling, `invalid_request` for a bad `expires_in`, …
    #[error("the token endpoint {url} refused to mint a writ ({status}): {error}{}{}",
        .description.as_deref().map(|d| format!(": {d}")).unwrap_or_default(),
        hint(.error, .description.as_deref()))]
    Refused {
        /// The token endpoint.
        url: String,
        /// HTTP status.
        status: u16,
        /// The OAuth `error` code.
        error: String,
        /// The OAuth `error_description`, if any.
        description: Option<String>,
    },
    /// The token endpoint answered something that is not an OAuth answer.
    #[error(
        "the token endpoint {url} answered {status} with no OAuth body: is it a writ gateway's /oauth2/token?"
    )]
    UnexpectedAnswer {
        /// The token endpoint.
        url: String,
        /// HTTP status.
        status: u16,
    },
    /// The token endpoint could not be reached (DNS, connect, TLS, timeout).
    #[error(
        "the token endpoint {url} is unreachable: {source}; check the URL and that the gateway runs"
    )]
    Unreachable {
        /// The token endpoint.
        url: String,
        /// The transport error.
        #[source]
        source: reqwest::Error,
    },
    /// The private key is not a PKCS#8 PEM Ed25519 or P-256 key.
    #[error(
        "the private key is not a PKCS#8 PEM Ed25519 or P-256 private key (`openssl genpkey -algorithm ed25519` makes one)"
    )]
    InvalidKey,
    /// `authorization_details` is not a non-empty JSON array of grant objects.
    #[error("authorization_details must be a non-empty JSON array of grant objects (RFC 9396)")]
    InvalidGrants,
    /// A builder setting is missing or out of range.
    #[error("{0}")]
    Config(&'static str),
    /// Signing an assertion or a DPoP proof failed.
    #[error("signing failed: {0}")]
    Sign(#[source] jsonwebtoken::errors::Error),
    /// The request could not be built (bad URL, bad header).
    #[error("the request could not be built: {0}")]
    Request(#[source] reqwest::Error),
    /// Sending the request with a writ failed at the transport.
    #[error("sending the request failed: {0}")]
    Send(#[source] reqwest::Error),
}

impl Error {
    /// The OAuth error code, when the token endpoint refused.
    pub fn oauth_error(&self) -> Option<&str> {
        match self {
            Error::Refused { error, .. } => Some(error),
            _ => None,
        }
    }
}

/// What to do next for the common refusals: a revoked agent is the operator's to lift,
/// not a key problem.
fn hint(error: &str, description: Option<&str>) -> &'static str {
    if error == "invalid_client" && description.is_some_and(|d| d.contains("revoked")) {
        return " (an operator revoked this agent or its tenant: `writ revoke --list` shows it, \
                `writ revoke --lift ID` lifts it)";
    }
    match error {
        "invalid_client" => {
            " (check the client id and that the key signing the assertion is registered: `writ agent show <id>`)"
        }
        "invalid_authorization_details" => {
            " (ask only for grants within the agent's ceiling: `writ agent show <id>`)"
        }
        _ => "",
    }
}

#[cfg(test)]
mod hint_tests {
    use super::hint;

    #[test]
    fn a_revoked_agent_is_pointed_at_the_operator_not_its_key() {
        assert!(hint("invalid_client", Some("agent revoked")).contains("writ revoke --lift"));
        assert!(hint("invalid_client", Some("assertion expired")).contains("writ agent show"));
        assert_eq!(hint("invalid_request", None), "");
    }
}
