//! What every console handler holds: the gateway and the open sessions, and the checks
//! each request passes first (a live session; for a state change, a same-site form
//! carrying the session's CSRF token).

use std::sync::Arc;

use axum::body::Body;
use serde::de::DeserializeOwned;

use super::refusal::Refusal;
use super::session::{self, Role, Session, SignInMethod, cookie_value};
use crate::gateway::Gateway;

/// Largest console form body.
const MAX_FORM_BYTES: usize = 16 * 1024;
/// Largest JSON body the console's script sends (a passkey's attestation included).
const MAX_JSON_BYTES: usize = 64 * 1024;

/// The console's state: the gateway (its store holds the sessions).
pub(crate) struct Console {
    /// The gateway the console oversees.
    pub(crate) gw: Arc<Gateway>,
    /// The live writs of the agents pages, read from the audit log every few seconds.
    pub(crate) live_writs: super::live_writs::LiveWrits,
    /// The audit log's last verification, reused while the log is unchanged.
    pub(crate) verification: super::verification::VerificationCache,
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
    /// approver removed, a passkey's person removed.
    pub(crate) async fn session(&self, headers: &http::HeaderMap) -> Option<Session> {
        let id = cookie_value(headers)?;
        let store = self.gw.store();
        let session = match session::touch(store, id, self.gw.clock.now()).await {
            Ok(session) => session?,
            Err(e) => {
                tracing::error!(error = %e, "console: session lookup failed");
                return None;
            }
        };
        let ended = if let Some(writ) = &session.writ {
            self.gw.revokes(writ)
        } else if let Some(credential) = &session.passkey_id {
            match store.passkey(credential).await {
                Ok(found) => found.is_none(),
                Err(e) => {
                    tracing::error!(error = %e, "console: passkey lookup failed");
                    return None;
                }
            }
        } else if session.method == SignInMethod::ApproverToken {
            let hash = session.approver_token_hash.as_deref()?;
            match store.approver_by_token_hash(hash).await {
                Ok(found) => found.is_none(),
                Err(e) => {
                    tracing::error!(error = %e, "console: approver lookup failed");
                    return None;
                }
            }
        } else {
            false
        };
        if ended {
            if let Err(e) = session::close(store, id).await {
                tracing::error!(error = %e, "console: ending a session failed");
            }
            return None;
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

    /// Every tenant's name, sorted: the store's tenants and the gateway's own.
    pub(crate) async fn tenant_names(&self) -> Result<Vec<String>, Refusal> {
        let mut tenants: Vec<String> = self
            .gw
            .store()
            .tenants()
            .await?
            .into_iter()
            .map(|t| t.name)
            .collect();
        tenants.push(self.gw.tenant.clone());
        tenants.sort();
        tenants.dedup();
        Ok(tenants)
    }

    /// The session of a part of a page the console's script fetches (admins only):
    /// without one, 401 rather than a redirect to the sign-in page, so the script can say
    /// the session ended.
    pub(crate) async fn admin_fragment_session(
        &self,
        headers: &http::HeaderMap,
    ) -> Result<Session, Refusal> {
        match self.admin_page_session(headers).await {
            Err(Refusal::SignInFirst) => Err(Refusal::NoSession),
            other => other,
        }
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

/// Refuses (404) a tenant the session does not reach, or that is no tenant name.
pub(crate) fn reachable(session: &Session, tenant: &str) -> Result<(), Refusal> {
    if crate::config::valid_name(tenant) && session.reaches(tenant) {
        Ok(())
    } else {
        Err(Refusal::NotFound)
    }
}

/// Refuses an approver (403): the page is an admin's.
pub(crate) fn admin_only(session: &Session) -> Result<(), Refusal> {
    match session.role {
        Role::Admin => Ok(()),
        Role::Approver => Err(Refusal::Forbidden(
            "an approver sees approvals only; the other pages are for the tenant's admins",
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
    // Not refused on its declared length alone: reading stops at the limit and drains a
    // bounded rest, so the client reads the 413 rather than a reset connection.
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

/// Reads a JSON body the console's script sends: from this site (403), declared
/// `application/json` (415), at most [`MAX_JSON_BYTES`] (413), strict JSON of `T`'s shape
/// (400).
pub(crate) async fn read_json<T: DeserializeOwned>(
    parts: &http::request::Parts,
    body: Body,
) -> Result<T, Refusal> {
    same_site(&parts.headers)?;
    let essence = parts
        .headers
        .get(http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .map(|v| v.trim().to_ascii_lowercase());
    if essence.as_deref() != Some("application/json") {
        return Err(Refusal::NotJson);
    }
    // Not refused on its declared length alone: reading stops at the limit and drains a
    // bounded rest, so the client reads the 413 rather than a reset connection.
    let bytes = crate::pipeline::accept::read_body(body, MAX_JSON_BYTES)
        .await
        .map_err(|_| Refusal::TooLarge)?;
    writ_json::from_slice(&bytes).map_err(|_| {
        Refusal::BadForm("this is not a request the console's script sends".to_string())
    })
}
