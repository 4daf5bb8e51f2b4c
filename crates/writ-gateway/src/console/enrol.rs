//! Enrolling a passkey through a one-time link (`/console/enrol/{token}`): the page with
//! its button, and the two JSON requests the console's script sends (the options for
//! `navigator.credentials.create`, then the authenticator's answer). A passkey enrolled,
//! the link is spent and a session opens. A link that does not work answers 404 and never
//! says why (unknown, used, expired or replaced alike).

use std::sync::Arc;

use askama::Template;
use axum::extract::{Path, Request, State};
use axum::response::{IntoResponse, Response};
use http::header;
use serde::Deserialize;
use webauthn_rs::prelude::RegisterPublicKeyCredential;
use writ_store::Person;

use super::passkey::{self, RelyingParty};
use super::refusal::Refusal;
use super::session::{Role, SignIn, SignInMethod};
use super::signin::open_session;
use super::state::{Console, read_json};
use super::view::{Frame, html, inert};

/// The enrolment page.
#[derive(Template)]
#[template(path = "console/enrol.html")]
struct EnrolPage {
    frame: Frame,
    /// Who enrols, in words (inert).
    person: String,
}

/// The second request: the ceremony's id and the authenticator's answer.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct EnrolFinish {
    ceremony: String,
    credential: RegisterPublicKeyCredential,
}

/// The console's relying party for this gateway.
pub(crate) fn relying_party(console: &Console) -> Result<RelyingParty, Refusal> {
    Ok(RelyingParty::for_issuer(&console.gw.admin_url())?)
}

/// The gateway clock's now, in Unix seconds.
pub(crate) fn now(console: &Console) -> u64 {
    crate::approval::unix_now(&console.gw)
}

/// A person's session: role from what they are, tenant from where they are.
pub(crate) fn sign_in_of(person: Person, passkey_id: String) -> SignIn {
    SignIn {
        role: match person.role {
            writ_store::PersonRole::Admin => Role::Admin,
            writ_store::PersonRole::Approver => Role::Approver,
        },
        person: person.name,
        tenant: person.tenant,
        method: SignInMethod::Passkey,
        approver_token_hash: None,
        writ: None,
        passkey_id: Some(passkey_id),
    }
}

/// `GET /console/enrol/{token}`: who the link enrols, and the button that does it (404
/// when the link does not work).
pub(crate) async fn page(
    State(console): State<Arc<Console>>,
    Path(token): Path<String>,
) -> Response {
    let outcome = async {
        let person = passkey::enrolling(console.gw.store(), &token, now(&console)).await?;
        Ok::<_, Refusal>(html(EnrolPage {
            frame: Frame::anonymous("Enrol a passkey"),
            person: format!("{}, {}", inert(&person.name), passkey::describe(&person)),
        }))
    };
    outcome.await.unwrap_or_else(IntoResponse::into_response)
}

/// `POST /console/enrol/{token}/options` (JSON, empty object): the ceremony's id and the
/// options for `navigator.credentials.create`.
pub(crate) async fn options(
    State(console): State<Arc<Console>>,
    Path(token): Path<String>,
    req: Request,
) -> Response {
    let outcome = async {
        let (parts, body) = req.into_parts();
        let _: serde_json::Map<String, serde_json::Value> = read_json(&parts, body).await?;
        let rp = relying_party(&console)?;
        let (ceremony, options) =
            passkey::begin_enrolment(&rp, console.gw.store(), &token, now(&console)).await?;
        Ok::<_, Refusal>(
            axum::Json(serde_json::json!({
                "ceremony": ceremony.as_str(),
                "options": options,
            }))
            .into_response(),
        )
    };
    outcome.await.unwrap_or_else(Refusal::json)
}

/// `POST /console/enrol/{token}/finish` (JSON): stores the passkey, spends the link,
/// opens a session and answers where to go next.
pub(crate) async fn finish(
    State(console): State<Arc<Console>>,
    Path(token): Path<String>,
    req: Request,
) -> Response {
    let outcome = async {
        let (parts, body) = req.into_parts();
        let sent: EnrolFinish = read_json(&parts, body).await?;
        let rp = relying_party(&console)?;
        let store = console.gw.store();
        let (person, id) = passkey::finish_enrolment(
            &rp,
            store,
            &token,
            &sent.ceremony,
            &sent.credential,
            now(&console),
        )
        .await?;
        record_enrolment(&console, &person).await;
        let cookie = open_session(&console, sign_in_of(person, id)).await?;
        let mut response =
            axum::Json(serde_json::json!({ "next": super::paths::HOME })).into_response();
        response.headers_mut().insert(header::SET_COOKIE, cookie);
        Ok::<_, Refusal>(response)
    };
    outcome.await.unwrap_or_else(Refusal::json)
}

/// Audits a passkey enrolled: who, their role and tenant. Never the link or its token.
async fn record_enrolment(console: &Console, person: &Person) {
    let gw = &console.gw;
    let mut record = crate::audit::record_at(writ_audit::Kind::AdminChange, gw.clock.now());
    record.tenant = person.tenant.clone();
    record.agent = Some(person.name.clone());
    record.operation = Some("console_passkey_enrolled".to_string());
    let mut detail = serde_json::Map::new();
    detail.insert("via".into(), serde_json::json!("console"));
    detail.insert("role".into(), serde_json::json!(person.role.as_str()));
    record.detail = Some(detail);
    gw.audit.record(record).await;
}
