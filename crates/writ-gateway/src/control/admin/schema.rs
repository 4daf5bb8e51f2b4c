//! The admin API's shared answer types: the error body every refusal carries, the
//! refusals every authenticated route can answer, and the status constants the route
//! documents (`#[utoipa::path]`) name.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// The body of every admin refusal, in OpenAI's error shape. Rendered by the gateway's
/// one error mapping (`GatewayError`); this type states its shape for the OpenAPI
/// document, and a unit test holds the two together.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct ErrorBody {
    /// What was refused and why.
    pub(crate) error: ErrorDetail,
}

/// The refusal itself.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct ErrorDetail {
    /// The cause in words, and what to do next. Never a secret.
    pub(crate) message: String,
    /// The class: `invalid_request_error`, `authentication_error`, `permission_error`,
    /// `rate_limit_error` or `server_error`.
    #[serde(rename = "type")]
    pub(crate) kind: String,
    /// A stable machine-readable code, such as `invalid_request`, `not_found`,
    /// `conflict`, `body_too_large` or `invalid_writ`.
    pub(crate) code: String,
    /// The request field at fault, when one is.
    pub(crate) param: Option<String>,
    /// The failed checks of a denial, when the refusal is one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) detail: Option<String>,
}

/// Descriptions of the refusals the routes document, one per status.
pub(crate) mod refusal {
    /// 400.
    pub(crate) const INVALID: &str =
        "The request is malformed: the message says which field and what is expected.";
    /// 401.
    pub(crate) const UNAUTHENTICATED: &str =
        "No writ was presented, or it failed to verify (expired, revoked, unknown key).";
    /// 403.
    pub(crate) const FORBIDDEN: &str = "The writ does not allow this admin action (its \
        `writ:admin` grant is for another tenant), or the admin API is disabled on this \
        listener.";
    /// 413.
    pub(crate) const TOO_LARGE: &str = "The body is larger than 64 KiB.";
    /// 415.
    pub(crate) const NOT_JSON: &str = "The body is declared as something other than JSON.";
    /// 503.
    pub(crate) const UNAVAILABLE: &str =
        "The gateway cannot reach its store, limiter or audit log; try again.";
}

#[cfg(test)]
mod tests {
    use axum::response::IntoResponse;
    use http_body_util::BodyExt;

    use super::ErrorBody;
    use crate::error::GatewayError;

    /// The error body the gateway renders is exactly the one the document states.
    #[tokio::test]
    async fn gateway_errors_render_the_documented_body() {
        for error in [
            GatewayError::MissingWrit,
            GatewayError::InvalidRequest {
                reason: "kid must be a number".into(),
            },
            GatewayError::BodyTooLarge { limit: 10 },
            GatewayError::UnsupportedMediaType,
            GatewayError::AdminApiDisabled,
            GatewayError::AuditUnavailable,
        ] {
            let status = error.classify().status;
            let response = error.into_response();
            assert_eq!(response.status(), status);
            let bytes = response
                .into_body()
                .collect()
                .await
                .expect("body")
                .to_bytes();
            let body: ErrorBody = serde_json::from_slice(&bytes).expect("the documented shape");
            assert!(!body.error.message.is_empty());
            assert!(!body.error.code.is_empty());
        }
    }
}
