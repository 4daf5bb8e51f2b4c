//! How each gateway error is answered: its status, error `type`, stable `code` and whose
//! fault it is, in one table ([`GatewayError::classify`]).

use http::StatusCode;
use writ_providers::InspectError;
use writ_token::WritError;

use super::{Fault, GatewayError, UpstreamFailure};

/// How a [`GatewayError`] is answered: the HTTP status, the error `type` and stable
/// `code` clients match on, and whose fault it is (which decides the log level and the
/// audit record's kind).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Class {
    /// The response status.
    pub status: StatusCode,
    /// The OpenAI error `type` (`authentication_error`, `upstream_error`, …).
    pub kind: &'static str,
    /// The stable machine-readable `code` (`expired_writ`, `upstream_timeout`, …).
    pub code: &'static str,
    /// Whose fault it is.
    pub fault: Fault,
}

impl Class {
    const fn new(status: StatusCode, kind: &'static str, code: &'static str, fault: Fault) -> Self {
        Self {
            status,
            kind,
            code,
            fault,
        }
    }
}

impl GatewayError {
    /// How this error is answered and logged (see [`Class`]); depends on the error alone.
    /// An upstream that could not be reached is classed by its [`UpstreamFailure`]: a
    /// timeout is a 504 `upstream_timeout`, a broken connection a 502 `upstream_failed`,
    /// anything else a 502 `upstream_unreachable`.
    pub fn classify(&self) -> Class {
        use GatewayError as E;
        use StatusCode as S;
        let auth = "authentication_error";
        let invalid = "invalid_request_error";
        match self {
            E::MissingWrit => Class::new(S::UNAUTHORIZED, auth, "missing_writ", Fault::Client),
            E::Writ(w) => match w {
                WritError::Expired { .. } => {
                    Class::new(S::UNAUTHORIZED, auth, "expired_writ", Fault::Client)
                }
                WritError::Revoked => {
                    Class::new(S::UNAUTHORIZED, auth, "revoked_writ", Fault::Client)
                }
                WritError::Denied(_) => Class::new(
                    S::FORBIDDEN,
                    "permission_error",
                    "grant_denied",
                    Fault::Client,
                ),
                WritError::UnknownKeyId { .. } | WritError::BadSignature => {
                    Class::new(S::UNAUTHORIZED, auth, "invalid_signature", Fault::Client)
                }
                WritError::Datalog(writ_token::DatalogError::TooCostly { .. }) => Class::new(
                    S::FORBIDDEN,
                    "permission_error",
                    "writ_too_costly",
                    Fault::Client,
                ),
                WritError::Datalog(_) => {
                    Class::new(S::UNAUTHORIZED, auth, "invalid_writ", Fault::Client)
                }
                WritError::TooLarge { .. }
                | WritError::MissingPrefix
                | WritError::Malformed { .. }
                | WritError::TooManyBlocks { .. }
                | WritError::MissingClaim { .. } => {
                    Class::new(S::UNAUTHORIZED, auth, "invalid_writ", Fault::Client)
                }
                // Mint and delegation errors: a data-plane request never meets them.
                WritError::Grant(_)
                | WritError::TtlOutOfRange { .. }
                | WritError::InvalidAudience { .. }
                | WritError::AudienceConflict { .. }
                | WritError::Build(_) => Class::new(
                    S::INTERNAL_SERVER_ERROR,
                    "server_error",
                    "internal_error",
                    Fault::Internal,
                ),
            },
            E::Dpop(_) => Class::new(S::UNAUTHORIZED, auth, "invalid_dpop_proof", Fault::Client),
            E::Approval(a) => {
                use super::ApprovalError as A;
                let status = match a {
                    A::Unknown { .. } => S::NOT_FOUND,
                    A::NotPending { .. } => S::CONFLICT,
                    A::TooManyPending(_) => S::TOO_MANY_REQUESTS,
                    _ => S::FORBIDDEN,
                };
                let kind = match a {
                    A::Unknown { .. } | A::NotPending { .. } => invalid,
                    A::TooManyPending(_) => "rate_limit_error",
                    _ => "permission_error",
                };
                Class::new(status, kind, a.code(), Fault::Client)
            }
            E::UnknownApproverToken => Class::new(
                S::UNAUTHORIZED,
                auth,
                "invalid_approver_token",
                Fault::Client,
            ),
            E::AlreadyUsed => Class::new(
                S::FORBIDDEN,
                "permission_error",
                "writ_already_used",
                Fault::Client,
            ),
            E::NotFound => Class::new(S::NOT_FOUND, invalid, "not_found", Fault::Client),
            E::AdminApiDisabled => Class::new(
                S::FORBIDDEN,
                "permission_error",
                "admin_api_disabled",
                Fault::Client,
            ),
            E::MethodNotAllowed => Class::new(
                S::METHOD_NOT_ALLOWED,
                invalid,
                "method_not_allowed",
                Fault::Client,
            ),
            E::UnknownUpstream => {
                Class::new(S::NOT_FOUND, invalid, "unknown_upstream", Fault::Client)
            }
            E::NoUpstream { .. } => Class::new(S::NOT_FOUND, invalid, "no_upstream", Fault::Client),
            E::UpstreamUnavailable { .. } => Class::new(
                S::SERVICE_UNAVAILABLE,
                "server_error",
                "upstream_not_configured",
                Fault::Internal,
            ),
            E::BodyTooLarge { .. } => Class::new(
                S::PAYLOAD_TOO_LARGE,
                invalid,
                "body_too_large",
                Fault::Client,
            ),
            E::BodyRead => Class::new(S::BAD_REQUEST, invalid, "body_read_failed", Fault::Client),
            E::InvalidBody(i) => {
                let code = match i {
                    InspectError::NotJson | InspectError::NotObject | InspectError::TooDeep => {
                        "invalid_json"
                    }
                    InspectError::DuplicateKey { .. } => "duplicate_key",
                    InspectError::MissingField(_) => "missing_field",
                    InspectError::WrongType { .. } => "invalid_type",
                };
                Class::new(S::BAD_REQUEST, invalid, code, Fault::Client)
            }
            E::InvalidPath => Class::new(S::BAD_REQUEST, invalid, "invalid_path", Fault::Client),
            E::UnknownMcpMethod => {
                Class::new(S::NOT_FOUND, invalid, "unknown_method", Fault::Client)
            }
            E::McpTransport(t) => {
                use writ_providers::mcp::transport::TransportError as T;
                let code = match t {
                    T::UnsupportedVersion { .. } => "unsupported_protocol_version",
                    T::HeaderMismatch(_) => "header_mismatch",
                    T::MissingMetaVersion => "missing_field",
                };
                Class::new(S::BAD_REQUEST, invalid, code, Fault::Client)
            }
            E::InvalidArguments(_) => {
                Class::new(S::BAD_REQUEST, invalid, "invalid_arguments", Fault::Client)
            }
            E::WritInUrl | E::CredentialInUrl { .. } => {
                Class::new(S::BAD_REQUEST, invalid, "credential_in_url", Fault::Client)
            }
            E::SecretInRequest { .. } => {
                Class::new(S::BAD_REQUEST, invalid, "secret_in_request", Fault::Client)
            }
            E::InvalidHeader { .. } => {
                Class::new(S::BAD_REQUEST, invalid, "invalid_header", Fault::Client)
            }
            // 404 is what MCP clients are told a gone session is: they start a new one.
            E::UnknownSession => {
                Class::new(S::NOT_FOUND, invalid, "unknown_session", Fault::Client)
            }
            E::InvalidSessionId { .. } => {
                Class::new(S::BAD_REQUEST, invalid, "invalid_session_id", Fault::Client)
            }
            E::OriginNotAllowed => Class::new(
                S::FORBIDDEN,
                "permission_error",
                "origin_not_allowed",
                Fault::Client,
            ),
            E::UpstreamUnreachable {
                cause: UpstreamFailure::Timeout { .. },
                ..
            } => Class::new(
                S::GATEWAY_TIMEOUT,
                "upstream_error",
                "upstream_timeout",
                Fault::Upstream,
            ),
            E::UpstreamUnreachable {
                cause: UpstreamFailure::Broken | UpstreamFailure::Exited,
                ..
            } => Class::new(
                S::BAD_GATEWAY,
                "upstream_error",
                "upstream_failed",
                Fault::Upstream,
            ),
            E::UpstreamUnreachable { .. } => Class::new(
                S::BAD_GATEWAY,
                "upstream_error",
                "upstream_unreachable",
                Fault::Upstream,
            ),
            E::UpstreamCredentialRefused { .. } => Class::new(
                S::BAD_GATEWAY,
                "upstream_error",
                "upstream_auth_failed",
                Fault::Upstream,
            ),
            E::Denied(_) => Class::new(
                S::FORBIDDEN,
                "permission_error",
                "grant_denied",
                Fault::Client,
            ),
            E::DeniedByPolicy(_) => Class::new(
                S::FORBIDDEN,
                "permission_error",
                "denied_by_policy",
                Fault::Client,
            ),
            E::UpstreamTimeout => Class::new(
                S::GATEWAY_TIMEOUT,
                "upstream_error",
                "upstream_timeout",
                Fault::Upstream,
            ),
            E::UpstreamFailed => Class::new(
                S::BAD_GATEWAY,
                "upstream_error",
                "upstream_failed",
                Fault::Upstream,
            ),
            E::UpstreamAuth => Class::new(
                S::BAD_GATEWAY,
                "upstream_error",
                "upstream_auth_failed",
                Fault::Upstream,
            ),
            E::InvalidRequest { .. } => {
                Class::new(S::BAD_REQUEST, invalid, "invalid_request", Fault::Client)
            }
            E::UnsupportedMediaType => Class::new(
                S::UNSUPPORTED_MEDIA_TYPE,
                invalid,
                "unsupported_media_type",
                Fault::Client,
            ),
            E::NothingToRevoke { .. } => {
                Class::new(S::NOT_FOUND, invalid, "nothing_to_revoke", Fault::Client)
            }
            E::UnknownRevocation { .. } => {
                Class::new(S::NOT_FOUND, invalid, "unknown_revocation", Fault::Client)
            }
            E::CannotLift { .. } => Class::new(S::CONFLICT, invalid, "cannot_lift", Fault::Client),
            E::Storage(
                writ_store::StoreError::Conflict { .. } | writ_store::StoreError::Refused(_),
            ) => Class::new(S::CONFLICT, invalid, "conflict", Fault::Client),
            E::Storage(writ_store::StoreError::NotFound { .. }) => {
                Class::new(S::NOT_FOUND, invalid, "not_found", Fault::Client)
            }
            E::Storage(_) => Class::new(
                S::SERVICE_UNAVAILABLE,
                "server_error",
                "storage_unavailable",
                Fault::Internal,
            ),
            E::UpstreamStatus { .. } => Class::new(
                S::BAD_GATEWAY,
                "upstream_error",
                "upstream_status",
                Fault::Upstream,
            ),
            E::UpstreamInvalid => Class::new(
                S::BAD_GATEWAY,
                "upstream_error",
                "upstream_invalid_response",
                Fault::Upstream,
            ),
            E::UpstreamTooLarge => Class::new(
                S::BAD_GATEWAY,
                "upstream_error",
                "upstream_response_too_large",
                Fault::Upstream,
            ),
            E::RateLimited(_) => Class::new(
                S::TOO_MANY_REQUESTS,
                "rate_limit_error",
                "rate_limit_exceeded",
                Fault::Client,
            ),
            E::AuthThrottled { .. } => Class::new(
                S::TOO_MANY_REQUESTS,
                "rate_limit_error",
                "too_many_failed_authentications",
                Fault::Client,
            ),
            E::AuditUnavailable => Class::new(
                S::SERVICE_UNAVAILABLE,
                "server_error",
                "audit_unavailable",
                Fault::Internal,
            ),
            E::LimiterUnavailable => Class::new(
                S::SERVICE_UNAVAILABLE,
                "server_error",
                "limiter_unavailable",
                Fault::Internal,
            ),
            E::Internal(_) => Class::new(
                S::INTERNAL_SERVER_ERROR,
                "server_error",
                "internal_error",
                Fault::Internal,
            ),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use writ_token::dpop::DpopError;

    fn unreachable(cause: UpstreamFailure) -> GatewayError {
        GatewayError::UpstreamUnreachable {
            upstream: "openai".to_string(),
            cause,
        }
    }

    #[test]
    fn upstream_failures_are_classed_by_cause_as_the_upstream_s_fault() {
        let upstream = |status, code| Class::new(status, "upstream_error", code, Fault::Upstream);
        for (error, want) in [
            (
                unreachable(UpstreamFailure::Timeout { secs: 30 }),
                upstream(StatusCode::GATEWAY_TIMEOUT, "upstream_timeout"),
            ),
            (
                unreachable(UpstreamFailure::Broken),
                upstream(StatusCode::BAD_GATEWAY, "upstream_failed"),
            ),
            (
                unreachable(UpstreamFailure::Dns),
                upstream(StatusCode::BAD_GATEWAY, "upstream_unreachable"),
            ),
            (
                unreachable(UpstreamFailure::Tls),
                upstream(StatusCode::BAD_GATEWAY, "upstream_unreachable"),
            ),
            (
                GatewayError::UpstreamStatus {
                    upstream: "openai".to_string(),
                    status: 503,
                },
                upstream(StatusCode::BAD_GATEWAY, "upstream_status"),
            ),
            (
                GatewayError::UpstreamCredentialRefused {
                    upstream: "openai".to_string(),
                    tenant_credential: None,
                    status: 401,
                },
                upstream(StatusCode::BAD_GATEWAY, "upstream_auth_failed"),
            ),
            (
                GatewayError::UpstreamInvalid,
                upstream(StatusCode::BAD_GATEWAY, "upstream_invalid_response"),
            ),
        ] {
            assert_eq!(error.classify(), want, "{error:?}");
        }
    }

    #[test]
    fn refusals_are_the_client_s_fault_and_gateway_failures_internal() {
        assert_eq!(
            GatewayError::Dpop(DpopError::Replayed).classify(),
            Class::new(
                StatusCode::UNAUTHORIZED,
                "authentication_error",
                "invalid_dpop_proof",
                Fault::Client
            )
        );
        for (error, status, code) in [
            (
                GatewayError::UnknownSession,
                StatusCode::NOT_FOUND,
                "unknown_session",
            ),
            (
                GatewayError::InvalidSessionId { reason: "" },
                StatusCode::BAD_REQUEST,
                "invalid_session_id",
            ),
            (
                GatewayError::OriginNotAllowed,
                StatusCode::FORBIDDEN,
                "origin_not_allowed",
            ),
        ] {
            let class = error.classify();
            assert_eq!((class.status, class.code), (status, code));
            assert_eq!(class.fault, Fault::Client);
        }
        assert_eq!(
            GatewayError::AuditUnavailable.classify(),
            Class::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "server_error",
                "audit_unavailable",
                Fault::Internal
            )
        );
    }
}
