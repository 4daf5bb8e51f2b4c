//! What every console handler holds: the gateway and the open sessions, and the checks
//! each request passes first (a live session; for a state change, a same-site form
//! carrying the session's CSRF token).

use std::sync::Arc;

use axum::body::Body;
use serde::de::DeserializeOwned;

use super::refusal::Refusal;
use super::session::{Role, Session, SignInMethod, cookie_value};
use crate::gateway::Gateway;

/// Largest console form body.
const MAX_FORM_BYTES: usize = 16 * 1024;

/// The console's state: the gateway and this instance's sessions.
pub(crate) struct Console {
    /// The gateway the console oversees.
    pub(crate) gw: Arc<Gateway>,
    /// Open sessions.
    pub(crate) sessions: super::session::Sessions,
    /// The audit log's metered calls by minute, kept up to date for the usage pages.
    pub(crate) usage: super::usage::metered::MeteredCalls,
}

/// A form field every state change carries.
pub(crate) const CSRF_FIELD: &str = "csrf";

impl Console {
    /// Whether cookies must be `Secure` (the gateway serves TLS).
    pub(crate) fn secure(&self) -> bool {
        self.gw.tls.is_some()
    }

    /// The live session of the request's cookie, its idle time restarted. A session
    /// ends as soon as what it signed in with no longer would: an admin writ revoked, an
    /// approver removed.
    pub(crate) async fn session(&self, headers: &http::HeaderMap) -> Option<Session> {
        let id = cookie_value(headers)?;
        let session = self.sessions.touch(id, self.gw.clock.now())?;
        if let Some(writ) = &session.writ
            && writ_token::RevocationCheck::is_revoked(&*self.gw, writ)
        {
            self.sessions.close(id);
            return None;
        }
        if session.method == SignInMethod::ApproverToken {
            let hash = session.approver_token_hash.as_deref()?;
            match self.gw.store().approver_by_token_hash(hash).await {
                Ok(Some(_)) => {}
                Ok(None) => {
                    self.sessions.close(id);
                    return None;
                }
                Err(e) => {
                    tracing::error!(error = %e, "console: approver lookup failed");
                    return None;
                }
            }
        }
        Some(session)
    }

    /// The session of a page request; without one, the answer is a redirect to sign-in.
    pub(crate) async fn page_session(&self, headers: &http::HeaderMap) -> Result<Session, Refusal> {
        self.session(headers).await.ok_or(Refusal::SignInFirst)
    }

    /// The session of an admin page: approvers are refused (403).
    pub(crate) async fn admin_page_session(
        &self,
        headers: &http::HeaderMap,
    ) -> Result<Session, Refusal> {
        let session = self.page_session(headers).await?;
        admin_only(&session)?;
        Ok(session)
    }

    /// Checks a state change and reads its form: a live session (401), sent from this
    /// site (403), a form body (415/413/400) whose `csrf` field is the session's token
    /// (403, compared in constant time).
    pub(crate) async fn change<T: DeserializeOwned>(
        &self,
        parts: &http::request::Parts,
        body: Body,
    ) -> Result<(Session, T), Refusal> {
        let session = self
            .session(&parts.headers)
            .await
            .ok_or(Refusal::NoSession)?;
        same_site(&parts.headers)?;
        let bytes = read_form(parts, body).await?;
        let fields: Vec<(String, String)> = serde_urlencoded::from_bytes(&bytes)
            .map_err(|_| Refusal::BadForm("this form is not URL-encoded".to_string()))?;
        let presented = fields
            .iter()
            .find(|(name, _)| name == CSRF_FIELD)
            .map_or("", |(_, v)| v.as_str());
        if !session.csrf_matches(presented) {
            return Err(Refusal::Csrf);
        }
        // Fields the console does not send (a submit button's name) are ignored.
        let form = serde_urlencoded::from_bytes(&bytes).map_err(|e| {
            Refusal::BadForm(format!("this form is not one the console sends: {e}"))
        })?;
        Ok((session, form))
    }
}

/// Refuses an approver (403): the page is an admin's.
pub(crate) fn admin_only(session: &Session) -> Result<(), Refusal> {
    match session.role {
        Role::Admin => Ok(()),
        Role::Approver => Err(Refusal::Forbidden(
            "an approver sees approvals only; agents are for the tenant's admins",
        )),
    }
}

/// Refuses a request sent from another site: one a browser marks so (`Sec-Fetch-Site`
/// other than `same-origin` or `none`), or, from a client that does not send
/// `Sec-Fetch-Site`, one whose `Origin` names another host than the one it was sent to.
/// (Under the console's `Referrer-Policy: no-referrer`, browsers send `Origin: null` for
/// the console's own forms, so `Sec-Fetch-Site` is what tells them apart.)
pub(crate) fn same_site(headers: &http::HeaderMap) -> Result<(), Refusal> {
    let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
    if let Some(site) = header("sec-fetch-site") {
        return match site {
            "same-origin" | "none" => Ok(()),
            _ => Err(Refusal::CrossSite),
        };
    }
    match header("origin") {
        None | Some("null") => Ok(()),
        Some(origin) => {
            let host = header("host").unwrap_or("");
            let authority = origin
                .strip_prefix("https://")
                .or_else(|| origin.strip_prefix("http://"))
                .unwrap_or("");
            if !authority.is_empty() && authority.eq_ignore_ascii_case(host) {
                Ok(())
            } else {
                Err(Refusal::CrossSite)
            }
        }
    }
}

/// Reads a form body: `application/x-www-form-urlencoded` (415 otherwise), at most
/// [`MAX_FORM_BYTES`] (413).
pub(crate) async fn read_form(
    parts: &http::request::Parts,
    body: Body,
) -> Result<bytes::Bytes, Refusal> {
    let essence = parts
        .headers
        .get(http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .map(|v| v.trim().to_ascii_lowercase());
    if essence.as_deref() != Some("application/x-www-form-urlencoded") {
        return Err(Refusal::NotAForm);
    }
    crate::pipeline::accept::check_declared_length(&parts.headers, MAX_FORM_BYTES)
        .map_err(|_| Refusal::TooLarge)?;
    crate::pipeline::accept::read_body(body, MAX_FORM_BYTES)
        .await
        .map_err(|_| Refusal::TooLarge)
}

/// A reason given in a form: trimmed, `None` when empty; one line of at most 500
/// characters (400 otherwise).
pub(crate) fn reason(text: Option<String>) -> Result<Option<String>, Refusal> {
    let Some(text) = text else { return Ok(None) };
    let text = text.trim();
    if text.is_empty() {
        return Ok(None);
    }
    if text.chars().count() > 500 || text.chars().any(char::is_control) {
        return Err(Refusal::BadForm(
            "the reason must be one line of at most 500 characters".to_string(),
        ));
    }
    Ok(Some(text.to_string()))
}
