//! Signing in with a passkey: the two JSON requests the sign-in page's script sends (a
//! name and tenant for the options of `navigator.credentials.get`, then the
//! authenticator's answer), which open a session with [`SignInMethod::Passkey`], the
//! role and tenant of the person the passkey is enrolled for.
//!
//! [`SignInMethod::Passkey`]: super::session::SignInMethod::Passkey

use std::sync::Arc;

use axum::extract::{Request, State};
use axum::response::{IntoResponse, Response};
use http::header;
use serde::Deserialize;
use webauthn_rs::prelude::PublicKeyCredential;

use super::enrol::{now, relying_party, sign_in_of};
use super::passkey;
use super::refusal::Refusal;
use super::signin::open_session;
use super::state::{Console, read_json};

/// The first request: who is signing in.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Who {
    name: String,
    /// Empty or absent: an admin of every tenant.
    #[serde(default)]
    tenant: Option<String>,
}

/// The second request: the ceremony's id and the authenticator's answer.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Answer {
    ceremony: String,
    credential: PublicKeyCredential,
}

/// `POST /console/passkey/options` (JSON `{"name", "tenant"}`): the ceremony's id and the
/// options for `navigator.credentials.get`.
pub(crate) async fn options(State(console): State<Arc<Console>>, req: Request) -> Response {
    let outcome = async {
        let (parts, body) = req.into_parts();
        let who: Who = read_json(&parts, body).await?;
        let name = who.name.trim();
        let tenant = who
            .tenant
            .as_deref()
            .map(str::trim)
            .filter(|t| !t.is_empty());
        if !passkey::valid_person_name(name) {
            return Err(Refusal::BadForm(
                "a name is 1 to 64 characters of A-Z a-z 0-9 - _ . @".to_string(),
            ));
        }
        if tenant.is_some_and(|t| !crate::config::valid_name(t)) {
            return Err(Refusal::BadForm(
                "a tenant name is 1 to 64 characters of A-Z a-z 0-9 _ . -".to_string(),
            ));
        }
        let rp = relying_party(&console)?;
        let (ceremony, options) =
            passkey::begin_sign_in(&rp, console.gw.store(), tenant, name, now(&console)).await?;
        Ok(axum::Json(serde_json::json!({
            "ceremony": ceremony.as_str(),
            "options": options,
        }))
        .into_response())
    };
    outcome.await.unwrap_or_else(Refusal::json)
}

/// `POST /console/passkey/finish` (JSON): checks the answer, opens a session and answers
/// where to go next.
pub(crate) async fn finish(State(console): State<Arc<Console>>, req: Request) -> Response {
    let outcome = async {
        let (parts, body) = req.into_parts();
        let sent: Answer = read_json(&parts, body).await?;
        let rp = relying_party(&console)?;
        let (person, id) = passkey::finish_sign_in(
            &rp,
            console.gw.store(),
            &sent.ceremony,
            &sent.credential,
            now(&console),
        )
        .await?;
        let cookie = open_session(&console, sign_in_of(person, id)).await?;
        let mut response =
            axum::Json(serde_json::json!({ "next": super::paths::HOME })).into_response();
        response.headers_mut().insert(header::SET_COOKIE, cookie);
        Ok::<_, Refusal>(response)
    };
    outcome.await.unwrap_or_else(Refusal::json)
}
