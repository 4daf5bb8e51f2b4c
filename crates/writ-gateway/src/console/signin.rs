//! Signing in to the console (an admin writ or an approver token exchanged for a
//! session) and signing out.
//!
//! An admin writ is checked as the admin API checks it: verified, then authorized for
//! `api("admin")` over every tenant (`admin_tenant("*")`: an operator) or, failing
//! that, over the tenant the form names (that tenant's admin). An approver token is
//! looked up by its SHA-256, as the admin API does. A passkey sign-in
//! (`passkey_sign_in.rs`) opens a session here too, with [`SignInMethod::Passkey`].

use std::sync::Arc;

use askama::Template;
use axum::extract::{Request, State};
use axum::response::{Html, IntoResponse, Redirect, Response};
use http::{HeaderMap, HeaderValue, StatusCode, header};
use serde::Deserialize;
use writ_token::{Api, RequestFacts, WritError};
use zeroize::Zeroizing;

use super::refusal::Refusal;
use super::session::{self, Role, SignIn, SignInMethod, clear_cookie, cookie_value, set_cookie};
use super::state::{Console, read_form, same_site};
use super::view::{Frame, SignInPage};
use crate::error::GatewayError;
use crate::pipeline::{authenticate, authorize, extract};

/// Approver tokens start so (as the admin API issues them).
use crate::approval::ledger::{APPROVER_TOKEN_PREFIX, approver_token_hash};
/// Longest credential a sign-in form may carry.
const MAX_CREDENTIAL: usize = 8 * 1024;

/// The sign-in form: an admin writ (and the tenant it administers, for a tenant's
/// admin) or an approver token.
#[derive(Default, Deserialize)]
struct SignInForm {
    writ: Option<String>,
    tenant: Option<String>,
    approver_token: Option<String>,
}

fn sign_in_page(status: StatusCode, error: Option<String>) -> Response {
    let page = SignInPage {
        frame: Frame::anonymous("Sign in"),
        error,
    };
    match page.render() {
        Ok(html) => (status, Html(html)).into_response(),
        Err(_) => Refusal::Unavailable.into_response(),
    }
}

/// `GET /console/sign-in`: the sign-in page (the approvals, when already signed in).
pub(crate) async fn page(State(console): State<Arc<Console>>, headers: HeaderMap) -> Response {
    if console.session(&headers).await.is_some() {
        return Redirect::to(super::paths::HOME).into_response();
    }
    sign_in_page(StatusCode::OK, None)
}

/// `POST /console/session`: exchanges an admin writ or approver token (form field, or
/// `Authorization: Bearer`) for a session cookie, then shows the approvals. A failed
/// sign-in shows the sign-in page again with why (401).
pub(crate) async fn sign_in(State(console): State<Arc<Console>>, req: Request) -> Response {
    let (parts, body) = req.into_parts();
    let who = match signing_in(&console, &parts, body).await {
        Ok(who) => who,
        Err(Refusal::SignInFailed(why)) => {
            return sign_in_page(StatusCode::UNAUTHORIZED, Some(why.to_string()));
        }
        Err(other) => return other.into_response(),
    };
    let cookie = match open_session(&console, who).await {
        Ok(cookie) => cookie,
        Err(refusal) => return refusal.into_response(),
    };
    let mut response = Redirect::to(super::paths::HOME).into_response();
    response.headers_mut().insert(header::SET_COOKIE, cookie);
    response
}

/// Opens a session for `who`, audited, and answers the `Set-Cookie` value carrying it.
pub(crate) async fn open_session(console: &Console, who: SignIn) -> Result<HeaderValue, Refusal> {
    let (person, method, tenant) = (who.person.clone(), who.method.as_str(), who.tenant.clone());
    let id = session::open(console.gw.store(), who, console.gw.clock.now())
        .await?
        .ok_or(Refusal::Busy)?;
    tracing::info!(person = %person, method, "console sign-in");
    record_session(console, "console_sign_in", &person, method, tenant).await;
    HeaderValue::from_str(&set_cookie(&id, console.secure())).map_err(|_| Refusal::Unavailable)
}

/// Who the request proves to be.
async fn signing_in(
    console: &Console,
    parts: &http::request::Parts,
    body: axum::body::Body,
) -> Result<SignIn, Refusal> {
    same_site(&parts.headers)?;
    let form: SignInForm = if parts.headers.contains_key(header::CONTENT_TYPE) {
        let bytes = read_form(parts, body).await?;
        serde_urlencoded::from_bytes(&bytes).map_err(|_| {
            Refusal::BadForm(
                "the sign-in form has the fields writ and tenant, or approver_token".to_string(),
            )
        })?
    } else {
        SignInForm::default()
    };
    let bearer = parts
        .headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split_once(' '))
        .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
        .map(|(_, token)| Zeroizing::new(token.trim().to_string()));
    let tenant = form.tenant.filter(|t| !t.trim().is_empty());
    let (writ, token) = match bearer {
        Some(t) if t.starts_with(APPROVER_TOKEN_PREFIX) => (None, Some(t)),
        Some(t) => (Some(t), None),
        None => (
            form.writ
                .filter(|w| !w.trim().is_empty())
                .map(Zeroizing::new),
            form.approver_token
                .filter(|t| !t.trim().is_empty())
                .map(Zeroizing::new),
        ),
    };
    match (writ, token) {
        (Some(writ), None) => by_writ(console, writ.trim(), tenant).await,
        (None, Some(token)) => by_approver_token(console, token.trim()).await,
        (Some(_), Some(_)) => Err(Refusal::SignInFailed(
            "Send an admin writ or an approver token, not both.",
        )),
        (None, None) => Err(Refusal::SignInFailed(
            "Paste an admin writ (writ_…) or an approver token (wap_…) to sign in.",
        )),
    }
}

fn admin_facts(tenant: &str) -> RequestFacts {
    let mut facts = RequestFacts::new(Api::Admin, "admin", "POST", super::paths::SESSION);
    facts.admin_tenant = Some(tenant.to_string());
    facts
}

/// Why a writ does not sign in, in words for the person holding it.
fn writ_refusal(e: &GatewayError) -> Refusal {
    Refusal::SignInFailed(match e {
        GatewayError::Writ(WritError::Expired { .. }) => {
            "This writ has expired: mint a new admin writ and sign in with it."
        }
        GatewayError::Writ(WritError::Revoked) => "This writ is revoked.",
        _ => "This is not an admin writ this gateway accepts.",
    })
}

async fn by_writ(console: &Console, writ: &str, tenant: Option<String>) -> Result<SignIn, Refusal> {
    let gw = &console.gw;
    if writ.len() > MAX_CREDENTIAL {
        return Err(Refusal::SignInFailed(
            "This is not an admin writ this gateway accepts.",
        ));
    }
    let mut headers = HeaderMap::new();
    let value = HeaderValue::from_str(&format!("Bearer {writ}"))
        .map_err(|_| Refusal::SignInFailed("This is not an admin writ this gateway accepts."))?;
    headers.insert(header::AUTHORIZATION, value);
    let presented = extract::writ(&headers).map_err(|e| writ_refusal(&e))?;
    let verified = authenticate::verify(gw, &presented).map_err(|e| writ_refusal(&e))?;
    let now = gw.clock.now();
    // Probed without side effects; only the scope that holds is authorized for real.
    let scope = if verified.authorize(&admin_facts("*"), now).is_ok() {
        None
    } else {
        let Some(tenant) = tenant else {
            return Err(Refusal::SignInFailed(
                "This writ does not administer every tenant: name the tenant you administer.",
            ));
        };
        if !crate::config::valid_name(&tenant) {
            return Err(Refusal::SignInFailed(
                "A tenant name is 1 to 64 characters of A-Z a-z 0-9 _ . -",
            ));
        }
        match verified.authorize(&admin_facts(&tenant), now) {
            Ok(_) => Some(tenant),
            Err(_) => {
                return Err(Refusal::SignInFailed(
                    "This writ does not administer that tenant.",
                ));
            }
        }
    };
    let facts = admin_facts(scope.as_deref().unwrap_or("*"));
    let by = authorize::check_inline(gw, &verified, &facts)
        .await
        .map_err(|e| writ_refusal(&e))?;
    Ok(SignIn {
        person: by.agent().to_string(),
        tenant: scope,
        role: Role::Admin,
        method: SignInMethod::AdminWrit,
        approver_token_hash: None,
        writ: Some(writ_token::RevocationSubject::of(&verified)),
        passkey_id: None,
    })
}

async fn by_approver_token(console: &Console, token: &str) -> Result<SignIn, Refusal> {
    const UNKNOWN: &str =
        "No approver holds this token: it was removed or never issued. Ask an admin for a new one.";
    if !token.starts_with(APPROVER_TOKEN_PREFIX) || token.len() > MAX_CREDENTIAL {
        return Err(Refusal::SignInFailed(UNKNOWN));
    }
    let hash = approver_token_hash(token);
    let approver = console
        .gw
        .store()
        .approver_by_token_hash(&hash)
        .await?
        .ok_or(Refusal::SignInFailed(UNKNOWN))?;
    Ok(SignIn {
        person: approver.name,
        tenant: Some(approver.tenant),
        role: Role::Approver,
        method: SignInMethod::ApproverToken,
        approver_token_hash: Some(hash),
        writ: None,
        passkey_id: None,
    })
}

/// The sign-out form: its CSRF token only.
#[derive(Deserialize)]
struct SignOutForm {}

/// `POST /console/sign-out`: ends the session and forgets the cookie.
pub(crate) async fn sign_out(State(console): State<Arc<Console>>, req: Request) -> Response {
    let (parts, body) = req.into_parts();
    let session = match console.change::<SignOutForm>(&parts, body).await {
        Ok((session, _)) => session,
        Err(refusal) => return refusal.into_response(),
    };
    if let Some(id) = cookie_value(&parts.headers)
        && let Err(e) = session::close(console.gw.store(), id).await
    {
        return Refusal::from(e).into_response();
    }
    record_session(
        &console,
        "console_sign_out",
        &session.person,
        session.method.as_str(),
        session.tenant.clone(),
    )
    .await;
    let mut response = Redirect::to(super::paths::SIGN_IN).into_response();
    if let Ok(cookie) = HeaderValue::from_str(&clear_cookie(console.secure())) {
        response.headers_mut().insert(header::SET_COOKIE, cookie);
    }
    response
}

/// Writes the audit record of a console session opened or closed: who, how they signed in,
/// and the tenant they act on (none: every tenant). Never the session id or a credential.
async fn record_session(
    console: &Console,
    operation: &str,
    person: &str,
    method: &str,
    tenant: Option<String>,
) {
    let gw = &console.gw;
    let mut record = crate::audit::record_at(writ_audit::Kind::AdminChange, gw.clock.now());
    record.tenant = tenant;
    record.agent = Some(person.to_string());
    record.operation = Some(operation.to_string());
    let mut detail = serde_json::Map::new();
    detail.insert("via".into(), serde_json::json!("console"));
    detail.insert("authenticated_by".into(), serde_json::json!(method));
    record.detail = Some(detail);
    gw.audit.record(record).await;
}
