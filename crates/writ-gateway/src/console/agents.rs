//! The agents pages and the kill switch: a tenant's agents with their ceilings in words,
//! their live writs and a stop button each (every writ of the agent revoked), a stop of
//! everything a tenant was issued up to now, and for the operator the same over every
//! tenant, and the stop of one writ by its token id. Admins only; a tenant's admin reaches
//! their own tenant only (another tenant's pages answer 404, as a missing one does).

use std::sync::Arc;
use std::time::Duration;

use askama::Template;
use axum::extract::{Path, Request, State};
use axum::response::{IntoResponse, Redirect, Response};
use http::HeaderMap;
use serde::Deserialize;
use serde_json::json;
use writ_store::RevocationNote;
use writ_token::{Revocation, token_id_issued_at};

use super::refusal::Refusal;
use super::session::Session;
use super::state::{Console, admin_only, reachable, reason};
use super::view::{Frame, TenantsPage, html, inert};

/// A tenant's agents, each with its stop button.
#[derive(Template)]
#[template(path = "console/agents.html")]
struct AgentsPage {
    frame: Frame,
    csrf: String,
    tenant: String,
    agents: Vec<AgentItem>,
    /// Whether the live writs could be counted (the audit log was readable).
    counted: bool,
}

/// One agent as shown.
struct AgentItem {
    /// Its name, for the stop form's path (a valid name: nothing to make inert).
    name: String,
    /// Its ceiling's grants in words, one line each, inert.
    ceiling: Vec<String>,
    /// Its writs' longest lifetime, in seconds.
    max_ttl_secs: u64,
    /// Its writs minted on any instance, not expired, not stopped.
    live_writs: usize,
}

/// The path of a tenant's agents page.
fn agents_path(tenant: &str) -> String {
    format!("/console/tenants/{tenant}/agents")
}

/// `GET /console/agents`: a tenant's admin goes to their tenant's agents; the operator
/// sees every tenant and the stop of everything.
pub(crate) async fn index(State(console): State<Arc<Console>>, headers: HeaderMap) -> Response {
    let outcome = async {
        let session = console.admin_page_session(&headers).await?;
        if let Some(tenant) = &session.tenant {
            return Ok(Redirect::to(&agents_path(tenant)).into_response());
        }
        let tenants = console.tenant_names().await?;
        Ok::<_, Refusal>(html(TenantsPage {
            frame: Frame::signed_in("Agents", &session),
            csrf: session.csrf().to_string(),
            tenants,
        }))
    };
    outcome.await.unwrap_or_else(IntoResponse::into_response)
}

/// `GET /console/tenants/{tenant}/agents`: the tenant's registered agents.
pub(crate) async fn list(
    State(console): State<Arc<Console>>,
    Path(tenant): Path<String>,
    headers: HeaderMap,
) -> Response {
    let outcome = async {
        let session = console.admin_page_session(&headers).await?;
        reachable(&session, &tenant)?;
        let live = console.live_writs.by_agent(&console.gw, &tenant).await;
        if let Err(e) = &live {
            tracing::error!(error = %e, "console: live writs not counted");
        }
        let counted = live.is_ok();
        let live = live.unwrap_or_default();
        let agents = console
            .gw
            .store()
            .agents(&tenant)
            .await?
            .into_iter()
            .map(|a| AgentItem {
                live_writs: live.get(&a.name).copied().unwrap_or(0),
                ceiling: a
                    .ceiling
                    .iter()
                    .map(|g| inert(&super::ceiling::describe(g)))
                    .collect(),
                max_ttl_secs: a.max_ttl.as_secs(),
                name: a.name,
            })
            .collect();
        Ok::<_, Refusal>(html(AgentsPage {
            frame: Frame::signed_in("Agents", &session),
            csrf: session.csrf().to_string(),
            tenant: tenant.clone(),
            agents,
            counted,
        }))
    };
    outcome.await.unwrap_or_else(IntoResponse::into_response)
}

/// Every stop form: a reason, optional.
#[derive(Deserialize)]
struct StopForm {
    reason: Option<String>,
}

/// `POST /console/tenants/{tenant}/agents/{agent}/stop`: revokes every writ of the
/// agent, on every instance.
pub(crate) async fn stop_agent(
    State(console): State<Arc<Console>>,
    Path((tenant, agent)): Path<(String, String)>,
    req: Request,
) -> Response {
    let outcome = async {
        let (parts, body) = req.into_parts();
        let (session, form) = console.change::<StopForm>(&parts, body).await?;
        admin_only(&session)?;
        reachable(&session, &tenant)?;
        if !crate::config::valid_name(&agent)
            || console.gw.store().agent(&tenant, &agent).await?.is_none()
        {
            return Err(Refusal::NotFound);
        }
        let revocation = Revocation::Agent {
            tenant: tenant.clone(),
            agent,
        };
        stop(&console, &session, &revocation, reason(form.reason)?).await?;
        Ok(Redirect::to(&agents_path(&tenant)).into_response())
    };
    outcome.await.unwrap_or_else(IntoResponse::into_response)
}

/// `POST /console/tenants/{tenant}/stop`: revokes every writ of the tenant issued up to
/// now (this second included).
pub(crate) async fn stop_tenant(
    State(console): State<Arc<Console>>,
    Path(tenant): Path<String>,
    req: Request,
) -> Response {
    let outcome = async {
        let (parts, body) = req.into_parts();
        let (session, form) = console.change::<StopForm>(&parts, body).await?;
        admin_only(&session)?;
        reachable(&session, &tenant)?;
        let revocation = Revocation::IssuedBefore {
            tenant: Some(tenant.clone()),
            before: crate::approval::unix_now(&console.gw) + 1,
        };
        stop(&console, &session, &revocation, reason(form.reason)?).await?;
        Ok::<_, Refusal>(Redirect::to(&agents_path(&tenant)).into_response())
    };
    outcome.await.unwrap_or_else(IntoResponse::into_response)
}

/// `POST /console/stop`: revokes every writ of every tenant issued up to now. The
/// operator's only (403 for a tenant's admin).
pub(crate) async fn stop_all(State(console): State<Arc<Console>>, req: Request) -> Response {
    let outcome = async {
        let (parts, body) = req.into_parts();
        let (session, form) = console.change::<StopForm>(&parts, body).await?;
        admin_only(&session)?;
        if session.tenant.is_some() {
            return Err(Refusal::Forbidden(
                "only an admin of every tenant stops every tenant; stop your tenant from its agents page",
            ));
        }
        let revocation = Revocation::IssuedBefore {
            tenant: None,
            before: crate::approval::unix_now(&console.gw) + 1,
        };
        stop(&console, &session, &revocation, reason(form.reason)?).await?;
        Ok(Redirect::to("/console/agents").into_response())
    };
    outcome.await.unwrap_or_else(IntoResponse::into_response)
}

/// The form stopping one writ: its token id, and a reason.
#[derive(Deserialize)]
struct StopWritForm {
    /// Missing is refused as malformed, after the session's role is checked.
    #[serde(default)]
    token_id: String,
    reason: Option<String>,
}

/// How long past its longest lifetime a writ is still taken as possibly alive (clocks
/// differ between instances).
const CLOCK_SLACK: Duration = Duration::from_secs(1);

/// `POST /console/stop-writ`: revokes one writ by its token id (as `writ token inspect`
/// prints it), with every writ attenuated or delegated from it, on every instance. The
/// operator's only (403 for a tenant's admin: a token id names no tenant). The id is
/// never shown back nor logged: the audit record holds its pseudonym.
pub(crate) async fn stop_writ(State(console): State<Arc<Console>>, req: Request) -> Response {
    let outcome = async {
        let (parts, body) = req.into_parts();
        let (session, form) = console.change::<StopWritForm>(&parts, body).await?;
        admin_only(&session)?;
        if session.tenant.is_some() {
            return Err(Refusal::Forbidden(
                "only an admin of every tenant stops one writ by its token id; stop its agent \
                 from your tenant's agents page",
            ));
        }
        let token_id = form.token_id.trim().to_string();
        let Some(issued) = token_id_issued_at(&token_id) else {
            return Err(Refusal::BadForm(
                "this is not a token id: paste the 26-character id `writ token inspect` prints"
                    .to_string(),
            ));
        };
        let now = console.gw.clock.now();
        if issued + console.gw.max_ttl + CLOCK_SLACK < now {
            return Err(Refusal::BadForm(format!(
                "nothing to stop: the writ with this token id was issued at {} and has expired \
                 (writs live at most {} s)",
                humantime::format_rfc3339_seconds(issued),
                console.gw.max_ttl.as_secs()
            )));
        }
        if issued > now + Duration::from_secs(60) {
            return Err(Refusal::BadForm(
                "nothing to stop: no writ with this token id has been issued (its time is in \
                 the future); check the id"
                    .to_string(),
            ));
        }
        let revocation = Revocation::TokenId { token_id };
        stop(&console, &session, &revocation, reason(form.reason)?).await?;
        Ok(Redirect::to("/console/agents").into_response())
    };
    outcome.await.unwrap_or_else(IntoResponse::into_response)
}

/// Records `revocation` as `session`'s person's (in force on every instance), with its
/// audit record.
async fn stop(
    console: &Console,
    session: &Session,
    revocation: &Revocation,
    reason: Option<String>,
) -> Result<(), Refusal> {
    let gw = &console.gw;
    let note = RevocationNote {
        at: crate::approval::unix_now(gw),
        by: Some(session.person.clone()),
        reason: reason.clone(),
    };
    let (id, _shared) = gw.revoke(revocation, &note).await?;
    let mut record = crate::audit::record_at(writ_audit::Kind::Revocation, gw.clock.now());
    record.tenant = revocation.tenant().map(str::to_string);
    record.agent = Some(session.person.clone());
    record.operation = Some("revoke".to_string());
    record.status = Some(201);
    let mut detail = serde_json::Map::new();
    // A token id is shown as its pseudonym, as everywhere in the audit log.
    let shown = match revocation {
        Revocation::TokenId { token_id } => {
            json!({"kind": "token_id", "writ": gw.audit.pseudonym(token_id)})
        }
        other => serde_json::to_value(other).unwrap_or_default(),
    };
    detail.insert("revocation".into(), shown);
    detail.insert("revocation_record".into(), json!(id));
    detail.insert("via".into(), json!("console"));
    detail.insert("method".into(), json!(session.method.as_str()));
    if let Some(reason) = &reason {
        detail.insert("reason".into(), json!(reason));
    }
    record.detail = Some(detail);
    gw.audit.record(record).await;
    tracing::warn!(by = %session.person, id, "revocation from the console");
    Ok(())
}
