//! The agents pages and the kill switch: a tenant's agents with a stop button each (every
//! writ of the agent revoked), a stop of everything a tenant was issued up to now, and
//! for the operator the same over every tenant. Admins only; a tenant's admin reaches
//! their own tenant only (another tenant's pages answer 404, as a missing one does).

use std::sync::Arc;

use axum::extract::{Path, Request, State};
use axum::response::{IntoResponse, Redirect, Response};
use http::HeaderMap;
use serde::Deserialize;
use serde_json::json;
use writ_store::RevocationNote;
use writ_token::Revocation;

use super::refusal::Refusal;
use super::session::Session;
use super::state::{Console, admin_only, reason};
use super::view::{AgentItem, AgentsPage, Frame, TenantsPage, html, inert};

/// The path of a tenant's agents page.
fn agents_path(tenant: &str) -> String {
    format!("/console/tenants/{tenant}/agents")
}

/// Refuses (404) a tenant the session does not reach, or that is no tenant name.
pub(crate) fn reachable(session: &Session, tenant: &str) -> Result<(), Refusal> {
    if crate::config::valid_name(tenant) && session.reaches(tenant) {
        Ok(())
    } else {
        Err(Refusal::NotFound)
    }
}

/// `GET /console/agents`: a tenant's admin goes to their tenant's agents; the operator
/// sees every tenant and the stop of everything.
pub(crate) async fn index(State(console): State<Arc<Console>>, headers: HeaderMap) -> Response {
    let outcome = async {
        let session = console.admin_page_session(&headers).await?;
        if let Some(tenant) = &session.tenant {
            return Ok(Redirect::to(&agents_path(tenant)).into_response());
        }
        let mut tenants: Vec<String> = console
            .gw
            .store()
            .tenants()
            .await?
            .into_iter()
            .map(|t| t.name)
            .collect();
        tenants.push(console.gw.tenant.clone());
        tenants.sort();
        tenants.dedup();
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
        let agents = console
            .gw
            .store()
            .agents(&tenant)
            .await?
            .into_iter()
            .map(|a| AgentItem {
                name: inert(&a.name),
                ceiling: a
                    .ceiling
                    .iter()
                    .map(|g| inert(&serde_json::to_string(g).unwrap_or_default()))
                    .collect(),
                max_ttl_secs: a.max_ttl.as_secs(),
            })
            .collect();
        Ok::<_, Refusal>(html(AgentsPage {
            frame: Frame::signed_in("Agents", &session),
            csrf: session.csrf().to_string(),
            tenant: tenant.clone(),
            agents,
            notice: None,
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
    // Agent, tenant and time stops only: no token id to pseudonymize.
    detail.insert(
        "revocation".into(),
        serde_json::to_value(revocation).unwrap_or_default(),
    );
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
