//! The token endpoint's refusals in the shape of RFC 6749 §5.2: an error code from the
//! OAuth registries, a description for the developer, and the status the code implies.

use axum::response::{IntoResponse, Response};
use http::{HeaderValue, StatusCode, header};
use serde_json::json;
use writ_token::WritError;
use writ_token::dpop::ProofRefusal;

/// The OAuth error codes this endpoint answers with (RFC 6749 §5.2, RFC 8628 §3.5,
/// RFC 8707 §2, RFC 9396 §5, RFC 9449 §5, OpenID CIBA Core §11).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum OAuthErrorCode {
    /// The request is malformed: a missing or repeated parameter, a wrong content type.
    InvalidRequest,
    /// Client authentication failed.
    InvalidClient,
    /// The grant presented (the token exchange's `subject_token`) is invalid, expired or
    /// revoked, or cannot be narrowed further.
    InvalidGrant,
    /// `grant_type` is neither `client_credentials` nor token exchange.
    UnsupportedGrantType,
    /// An authorization request: writ has no authorization endpoint, so no response type.
    UnsupportedResponseType,
    /// `authorization_details` is malformed or asks for more than the agent may have.
    InvalidAuthorizationDetails,
    /// `resource` is not a resource of this gateway, or not one the agent (or the subject
    /// writ) may use (RFC 8707 §2).
    InvalidTarget,
    /// `scope` names a scope this server does not have (RFC 6749 §5.2).
    InvalidScope,
    /// The `DPoP` proof is invalid or was used before.
    InvalidDpopProof,
    /// Too many failed client authentications: wait (`Retry-After`).
    SlowDown,
    /// A store the request needs cannot be reached now; retry.
    TemporarilyUnavailable,
    /// The mint waits for a person's approval: poll with `auth_req_id` (CIBA §11).
    AuthorizationPending,
    /// Polled before the interval elapsed: wait longer between polls (CIBA §11; `slow_down`
    /// like [`SlowDown`](Self::SlowDown), but 400 as CIBA says).
    PollTooFast,
    /// A person denied the mint, the tenant's approval rules could not be evaluated, or the
    /// approval was voided by a stop (CIBA §11).
    AccessDenied,
    /// The approval expired before it was decided or used (CIBA §11).
    ExpiredToken,
    /// The agent or its tenant has as many approvals waiting as allowed.
    TooManyPendingApprovals,
}

impl OAuthErrorCode {
    /// The code as sent in the `error` member.
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Self::InvalidRequest => "invalid_request",
            Self::InvalidClient => "invalid_client",
            Self::InvalidGrant => "invalid_grant",
            Self::UnsupportedGrantType => "unsupported_grant_type",
            Self::UnsupportedResponseType => "unsupported_response_type",
            Self::InvalidAuthorizationDetails => "invalid_authorization_details",
            Self::InvalidTarget => "invalid_target",
            Self::InvalidScope => "invalid_scope",
            Self::InvalidDpopProof => "invalid_dpop_proof",
            Self::SlowDown => "slow_down",
            Self::TemporarilyUnavailable => "temporarily_unavailable",
            Self::AuthorizationPending => "authorization_pending",
            Self::PollTooFast => "slow_down",
            Self::AccessDenied => "access_denied",
            Self::ExpiredToken => "expired_token",
            Self::TooManyPendingApprovals => "too_many_pending_approvals",
        }
    }

    /// The status answered with this code: 401 for a failed client authentication
    /// (RFC 6749 §5.2), 429 for throttling and too many pending approvals, 503 when a store
    /// is unavailable, else 400 (the CIBA polling answers included).
    pub(crate) fn status(self) -> StatusCode {
        match self {
            Self::InvalidClient => StatusCode::UNAUTHORIZED,
            Self::SlowDown | Self::TooManyPendingApprovals => StatusCode::TOO_MANY_REQUESTS,
            Self::TemporarilyUnavailable => StatusCode::SERVICE_UNAVAILABLE,
            _ => StatusCode::BAD_REQUEST,
        }
    }
}

/// An OAuth error response (RFC 6749 §5.2).
#[derive(Debug)]
pub(crate) struct OAuthError {
    pub(super) code: OAuthErrorCode,
    pub(super) description: String,
    /// Set when the client tried HTTP Basic: the 401 then names the scheme (§5.2).
    basic_challenge: bool,
    /// Seconds to wait, for a throttled client (`Retry-After`).
    pub(super) retry_after: Option<u64>,
    /// Members beside `error` and `error_description` (CIBA's `auth_req_id`, `interval`,
    /// `expires_in`); never a secret.
    extra: serde_json::Map<String, serde_json::Value>,
}

impl OAuthError {
    pub(super) fn new(code: OAuthErrorCode, description: impl Into<String>) -> Self {
        Self {
            code,
            description: description.into(),
            basic_challenge: false,
            retry_after: None,
            extra: serde_json::Map::new(),
        }
    }

    /// The body member `name` beside `error` and `error_description`, if set.
    #[cfg(test)]
    pub(super) fn extra_member(&self, name: &str) -> Option<&serde_json::Value> {
        self.extra.get(name)
    }

    /// The same error with `name: value` in its body as well.
    pub(super) fn with(mut self, name: &str, value: serde_json::Value) -> Self {
        self.extra.insert(name.to_string(), value);
        self
    }

    /// Too many failed authentications: the same answer whether or not the client id
    /// exists.
    pub(super) fn throttled(t: crate::detect::brute_force::Throttled) -> Self {
        let secs = t.retry_after_secs();
        let description = if t.locked {
            format!("too many failed client authentications: locked out, retry after {secs}s")
        } else {
            format!("too many failed client authentications: retry after {secs}s")
        };
        Self {
            retry_after: Some(secs),
            ..Self::new(OAuthErrorCode::SlowDown, description)
        }
    }

    /// Whether this refuses the client's credentials (what brute force is made of).
    pub(super) fn is_failed_authentication(&self) -> bool {
        self.code == OAuthErrorCode::InvalidClient
    }

    pub(crate) fn invalid_client(description: &str, basic: bool) -> Self {
        Self {
            basic_challenge: basic,
            ..Self::new(OAuthErrorCode::InvalidClient, description)
        }
    }

    pub(super) fn invalid_request(description: impl Into<String>) -> Self {
        Self::new(OAuthErrorCode::InvalidRequest, description)
    }

    pub(super) fn invalid_grant(description: impl Into<String>) -> Self {
        Self::new(OAuthErrorCode::InvalidGrant, description)
    }

    pub(super) fn invalid_details(description: impl Into<String>) -> Self {
        Self::new(OAuthErrorCode::InvalidAuthorizationDetails, description)
    }

    pub(super) fn invalid_target(description: impl Into<String>) -> Self {
        Self::new(OAuthErrorCode::InvalidTarget, description)
    }

    pub(super) fn invalid_scope(description: impl Into<String>) -> Self {
        Self::new(OAuthErrorCode::InvalidScope, description)
    }

    pub(crate) fn server(description: &str) -> Self {
        Self::new(OAuthErrorCode::TemporarilyUnavailable, description)
    }

    /// A token exchange's `subject_token` that is not a valid writ now: `invalid_grant`,
    /// saying whether it expired, was revoked, or is not a writ of this gateway at all.
    pub(super) fn subject_refused(e: &WritError) -> Self {
        match e {
            WritError::Expired { .. } => Self::invalid_grant("subject_token has expired"),
            WritError::Revoked => Self::invalid_grant("subject_token was revoked"),
            other => Self::invalid_grant(format!("subject_token is not a valid writ: {other}")),
        }
    }

    /// A DPoP proof sent to the token endpoint that was refused: `invalid_dpop_proof`
    /// naming the failed check, or `temporarily_unavailable` when its replay could not be
    /// checked (fail closed).
    pub(super) fn dpop_refused(e: ProofRefusal) -> Self {
        match e {
            ProofRefusal::Invalid(e) => Self::new(OAuthErrorCode::InvalidDpopProof, e.to_string()),
            ProofRefusal::ReplayUnavailable => Self::server(
                "the DPoP proof cannot be checked for replay now (limit backend unavailable); retry shortly with a new proof",
            ),
        }
    }
}

impl IntoResponse for OAuthError {
    fn into_response(self) -> Response {
        tracing::debug!(error = self.code.as_str(), description = %self.description, "token request refused");
        let mut body = self.extra;
        body.insert("error".into(), json!(self.code.as_str()));
        body.insert("error_description".into(), json!(self.description));
        let mut response = (self.code.status(), axum::Json(body)).into_response();
        let headers = response.headers_mut();
        headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
        headers.insert(header::PRAGMA, HeaderValue::from_static("no-cache"));
        if let Some(secs) = self.retry_after {
            headers.insert(header::RETRY_AFTER, HeaderValue::from(secs));
        }
        if self.basic_challenge {
            headers.insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static(r#"Basic realm="writ""#),
            );
        }
        response
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::UNIX_EPOCH;
    use writ_token::dpop::DpopError;

    #[test]
    fn each_code_answers_with_its_status() {
        use OAuthErrorCode as C;
        for (code, text, status) in [
            (C::InvalidRequest, "invalid_request", 400),
            (C::InvalidClient, "invalid_client", 401),
            (C::InvalidGrant, "invalid_grant", 400),
            (C::UnsupportedGrantType, "unsupported_grant_type", 400),
            (
                C::InvalidAuthorizationDetails,
                "invalid_authorization_details",
                400,
            ),
            (C::InvalidTarget, "invalid_target", 400),
            (C::InvalidScope, "invalid_scope", 400),
            (C::InvalidDpopProof, "invalid_dpop_proof", 400),
            (C::SlowDown, "slow_down", 429),
            (C::TemporarilyUnavailable, "temporarily_unavailable", 503),
            (C::AuthorizationPending, "authorization_pending", 400),
            (C::PollTooFast, "slow_down", 400),
            (C::AccessDenied, "access_denied", 400),
            (C::ExpiredToken, "expired_token", 400),
            (
                C::TooManyPendingApprovals,
                "too_many_pending_approvals",
                429,
            ),
        ] {
            assert_eq!(code.as_str(), text);
            assert_eq!(code.status().as_u16(), status, "{text}");
        }
    }

    #[test]
    fn only_a_refused_client_counts_as_a_failed_authentication() {
        assert!(OAuthError::invalid_client("no", false).is_failed_authentication());
        assert!(!OAuthError::invalid_request("no").is_failed_authentication());
        assert!(!OAuthError::server("no").is_failed_authentication());
    }

    #[test]
    fn a_refused_subject_token_is_an_invalid_grant_naming_why() {
        let expired = OAuthError::subject_refused(&WritError::Expired { at: UNIX_EPOCH });
        assert_eq!(expired.code, OAuthErrorCode::InvalidGrant);
        assert_eq!(expired.description, "subject_token has expired");
        let revoked = OAuthError::subject_refused(&WritError::Revoked);
        assert_eq!(revoked.code, OAuthErrorCode::InvalidGrant);
        assert_eq!(revoked.description, "subject_token was revoked");
        let forged = OAuthError::subject_refused(&WritError::BadSignature);
        assert_eq!(forged.code, OAuthErrorCode::InvalidGrant);
    }

    #[test]
    fn a_refused_dpop_proof_is_invalid_unless_replay_cannot_be_told() {
        let replayed = OAuthError::dpop_refused(ProofRefusal::Invalid(DpopError::Replayed));
        assert_eq!(replayed.code, OAuthErrorCode::InvalidDpopProof);
        assert_eq!(replayed.description, DpopError::Replayed.to_string());
        assert_eq!(
            OAuthError::dpop_refused(ProofRefusal::ReplayUnavailable).code,
            OAuthErrorCode::TemporarilyUnavailable
        );
    }
}
