//! Why the console refuses a request, and the page (or redirect) each refusal answers
//! with: a typed cause, the right status, and words saying what to do next.

use askama::Template;
use axum::response::{IntoResponse, Redirect, Response};
use http::StatusCode;

use super::view::{Frame, RefusalPage};

/// A console request refused.
#[derive(Debug, thiserror::Error)]
pub(crate) enum Refusal {
    /// A page asked for without a session: answered by a redirect to the sign-in page.
    #[error("sign in to see this page")]
    SignInFirst,
    /// A state change without a session (none, expired, or signed out).
    #[error("your console session has ended (or never began): sign in again, then repeat this")]
    NoSession,
    /// A sign-in that did not prove who is signing in.
    #[error("{0}")]
    SignInFailed(&'static str),
    /// A state change without the session's CSRF token, or with another one.
    #[error("this form is stale or was not sent by the console: reload the page and try again")]
    Csrf,
    /// A state change sent from another site.
    #[error("this request came from another site: use the console's own pages")]
    CrossSite,
    /// A page the session's role does not reach (an approver asking for agents).
    #[error("{0}")]
    Forbidden(&'static str),
    /// Nothing of that name that this session may see.
    #[error("there is no such page, or it is not one this session may see")]
    NotFound,
    /// The console is not served on this listener (as the admin API is not).
    #[error(
        "the console is served only over TLS or on a loopback address, as the admin API is: \
         set tls_cert and tls_key in [server] (or allow_plaintext_admin = true behind a TLS proxy)"
    )]
    ConsoleDisabled,
    /// A method the path does not take.
    #[error("this page does not take that method: use the console's links and forms")]
    MethodNotAllowed,
    /// An approval that cannot be decided any more.
    #[error(
        "this approval is not pending any more (decided, used, voided or expired): reload the approvals"
    )]
    NotPending,
    /// A form whose fields are not what the console sends.
    #[error("{0}")]
    BadForm(String),
    /// A body that is not a form.
    #[error("send the form as application/x-www-form-urlencoded, as the console's pages do")]
    NotAForm,
    /// A body that is not JSON where the console's script sends JSON.
    #[error("send this as application/json, as the console's script does")]
    NotJson,
    /// A passkey ceremony or enrolment link that did not succeed.
    #[error("{0}")]
    Passkey(super::passkey::PasskeyError),
    /// A body larger than any console form.
    #[error("this form is larger than any the console sends")]
    TooLarge,
    /// Too many sessions open at once.
    #[error("the console has too many open sessions; try again in a few minutes")]
    Busy,
    /// The gateway could not do it (storage unreachable, …).
    #[error("the gateway could not do this just now; try again")]
    Unavailable,
}

impl Refusal {
    fn status(&self) -> StatusCode {
        match self {
            Refusal::SignInFirst => StatusCode::SEE_OTHER,
            Refusal::NoSession | Refusal::SignInFailed(_) => StatusCode::UNAUTHORIZED,
            Refusal::Csrf
            | Refusal::CrossSite
            | Refusal::Forbidden(_)
            | Refusal::ConsoleDisabled => StatusCode::FORBIDDEN,
            Refusal::NotFound => StatusCode::NOT_FOUND,
            Refusal::MethodNotAllowed => StatusCode::METHOD_NOT_ALLOWED,
            Refusal::NotPending => StatusCode::CONFLICT,
            Refusal::BadForm(_) => StatusCode::BAD_REQUEST,
            Refusal::NotAForm | Refusal::NotJson => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            Refusal::Passkey(e) => passkey_status(e),
            Refusal::TooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            Refusal::Busy | Refusal::Unavailable => StatusCode::SERVICE_UNAVAILABLE,
        }
    }
}

fn passkey_status(e: &super::passkey::PasskeyError) -> StatusCode {
    use super::passkey::PasskeyError as E;
    match e {
        E::LinkInvalid => StatusCode::NOT_FOUND,
        E::CeremonyGone => StatusCode::BAD_REQUEST,
        E::NoPasskey | E::Rejected => StatusCode::UNAUTHORIZED,
        E::Duplicate => StatusCode::CONFLICT,
        E::Busy | E::Configuration | E::Store(_) => StatusCode::SERVICE_UNAVAILABLE,
    }
}

impl Refusal {
    /// The refusal as the console's script reads it: `{"error": "…"}` with its status.
    /// A storage failure is logged, and answered without its cause.
    pub(crate) fn json(self) -> Response {
        let status = self.status();
        let message = match &self {
            Refusal::Passkey(super::passkey::PasskeyError::Configuration) => {
                tracing::error!("console passkeys: {self}");
                self.to_string()
            }
            Refusal::SignInFirst => Refusal::NoSession.to_string(),
            _ => self.to_string(),
        };
        let status = if status == StatusCode::SEE_OTHER {
            StatusCode::UNAUTHORIZED
        } else {
            status
        };
        (status, axum::Json(serde_json::json!({ "error": message }))).into_response()
    }
}

impl IntoResponse for Refusal {
    fn into_response(self) -> Response {
        if let Refusal::SignInFirst = self {
            return Redirect::to(super::paths::SIGN_IN).into_response();
        }
        let status = self.status();
        let page = RefusalPage {
            frame: Frame::anonymous("Refused"),
            status: status.as_u16(),
            // Some messages quote what was sent (a filter's name): shown inert.
            message: super::view::inert(&self.to_string()),
        };
        match page.render() {
            Ok(html) => (status, axum::response::Html(html)).into_response(),
            Err(_) => (status, self.to_string()).into_response(),
        }
    }
}

impl From<crate::error::GatewayError> for Refusal {
    fn from(e: crate::error::GatewayError) -> Self {
        use crate::error::{ApprovalError, GatewayError as E};
        match e {
            E::Approval(ApprovalError::Unknown { .. }) => Refusal::NotFound,
            E::Approval(_) => Refusal::NotPending,
            E::InvalidRequest { reason } => Refusal::BadForm(reason),
            E::BodyTooLarge { .. } => Refusal::TooLarge,
            other => {
                tracing::error!(error = %other, "console request failed");
                Refusal::Unavailable
            }
        }
    }
}

impl From<super::passkey::PasskeyError> for Refusal {
    fn from(e: super::passkey::PasskeyError) -> Self {
        if let super::passkey::PasskeyError::Store(cause) = &e {
            tracing::error!(error = %cause, "console passkeys: storage failed");
        }
        Refusal::Passkey(e)
    }
}

impl From<writ_store::StoreError> for Refusal {
    fn from(e: writ_store::StoreError) -> Self {
        tracing::error!(error = %e, "console storage read failed");
        Refusal::Unavailable
    }
}
