//! The approvals pages: what waits for a decision (the exact action: agent, upstream,
//! tool, arguments), one approval by id, and the approve and deny forms, which decide as
//! the session's person, tenant scope and sign-in method.

use std::sync::Arc;

use axum::extract::{Path, Request, State};
use axum::response::{IntoResponse, Redirect, Response};
use http::HeaderMap;
use serde::Deserialize;
use serde_json::Value;
use writ_store::{ApprovalFilter, ApprovalRecord, ApprovalStatus};

use super::refusal::Refusal;
use super::session::Session;
use super::state::{Console, reason};
use super::view::{ApprovalItem, ApprovalsPage, Frame, html, inert, rfc3339};
use crate::approval::{self, Decider};

/// Most approvals one page shows.
const MAX_SHOWN: u64 = 200;
/// Summary fields shown on their own line, not among the details.
const SHOWN_APART: [&str; 7] = [
    "tenant",
    "agent",
    "reason",
    "upstream",
    "tool",
    "operation",
    "arguments",
];

/// A JSON value as one line of inert text: a string as itself, anything else as JSON.
fn text_of(v: &Value) -> String {
    match v {
        Value::String(s) => inert(s),
        other => inert(&other.to_string()),
    }
}

fn item(r: ApprovalRecord, now: u64) -> ApprovalItem {
    let status = r.status_at(now);
    // The gateway stores the summary as JSON; anything else is shown as the text it is.
    let summary = serde_json::from_str::<Value>(&r.summary)
        .ok()
        .and_then(|v| match v {
            Value::Object(m) => Some(m),
            _ => None,
        })
        .unwrap_or_default();
    let field = |name: &str| summary.get(name).map_or_else(|| "—".to_string(), text_of);
    let arguments = match summary.get("arguments") {
        Some(Value::Object(args)) => args.iter().map(|(k, v)| (inert(k), text_of(v))).collect(),
        _ => Vec::new(),
    };
    let details = summary
        .iter()
        .filter(|(k, _)| !SHOWN_APART.contains(&k.as_str()))
        .map(|(k, v)| (inert(k), text_of(v)))
        .collect();
    let decision = r.decided_by.as_ref().map(|by| {
        let how = r.decided_method.as_deref().unwrap_or("unknown");
        match &r.decision_reason {
            Some(why) => format!(
                "{} by {} ({how}): {}",
                status.as_str(),
                inert(by),
                inert(why)
            ),
            None => format!("{} by {} ({how})", status.as_str(), inert(by)),
        }
    });
    ApprovalItem {
        pending: status == ApprovalStatus::Pending,
        status: status.as_str().to_string(),
        upstream: field("upstream"),
        tool: field("tool"),
        operation: field("operation"),
        arguments,
        details,
        expires: rfc3339(r.expires_at),
        decision,
        tenant: inert(&r.tenant),
        agent: inert(&r.agent),
        reason: inert(&r.reason),
        id: r.id,
    }
}

fn render(session: &Session, heading: &str, approvals: Vec<ApprovalItem>) -> Response {
    let page = ApprovalsPage {
        frame: Frame::signed_in(heading, session),
        heading: heading.to_string(),
        csrf: session.csrf().to_string(),
        approvals,
    };
    html(page)
}

/// `GET /console/approvals`: the pending approvals of the session's tenant (every
/// tenant's for the operator), newest first.
pub(crate) async fn list(State(console): State<Arc<Console>>, headers: HeaderMap) -> Response {
    let outcome = async {
        let session = console.page_session(&headers).await?;
        let gw = &console.gw;
        let now = approval::unix_now(gw);
        let filter = ApprovalFilter {
            tenant: session.tenant.clone(),
            agent: None,
            status: Some(ApprovalStatus::Pending),
            limit: MAX_SHOWN,
        };
        let items = gw
            .store()
            .approvals(&filter, now)
            .await?
            .into_iter()
            // A stored `pending` past its expiry is expired: not shown.
            .filter(|r| r.status_at(now) == ApprovalStatus::Pending)
            .map(|r| item(r, now))
            .collect();
        Ok::<_, Refusal>(render(&session, "Pending approvals", items))
    };
    outcome.await.unwrap_or_else(IntoResponse::into_response)
}

/// `GET /console/approvals/{id}`: one approval, whatever its status; 404 when there is
/// none of that id the session may see (another tenant's answers so too).
pub(crate) async fn one(
    State(console): State<Arc<Console>>,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Response {
    let outcome = async {
        let session = console.page_session(&headers).await?;
        if !writ_token::valid_approval_id(&id) {
            return Err(Refusal::NotFound);
        }
        let record = approval::visible(&console.gw, &id, session.tenant.as_deref()).await?;
        let now = approval::unix_now(&console.gw);
        Ok(render(&session, "Approval", vec![item(record, now)]))
    };
    outcome.await.unwrap_or_else(IntoResponse::into_response)
}

/// The approve and deny forms: a reason, optional.
#[derive(Deserialize)]
struct DecisionForm {
    reason: Option<String>,
}

/// `POST /console/approvals/{id}/approve`.
pub(crate) async fn approve(
    State(console): State<Arc<Console>>,
    Path(id): Path<String>,
    req: Request,
) -> Response {
    decide(&console, &id, req, true)
        .await
        .unwrap_or_else(IntoResponse::into_response)
}

/// `POST /console/approvals/{id}/deny`.
pub(crate) async fn deny(
    State(console): State<Arc<Console>>,
    Path(id): Path<String>,
    req: Request,
) -> Response {
    decide(&console, &id, req, false)
        .await
        .unwrap_or_else(IntoResponse::into_response)
}

async fn decide(
    console: &Console,
    id: &str,
    req: Request,
    approve: bool,
) -> Result<Response, Refusal> {
    let (parts, body) = req.into_parts();
    let (session, form) = console.change::<DecisionForm>(&parts, body).await?;
    let reason = reason(form.reason)?;
    if !writ_token::valid_approval_id(id) {
        return Err(Refusal::NotFound);
    }
    let decider = Decider {
        tenant: session.tenant.clone(),
        person: session.person.clone(),
        method: session.method.as_str(),
    };
    approval::decide(&console.gw, id, &decider, approve, reason).await?;
    Ok(Redirect::to(super::paths::HOME).into_response())
}
