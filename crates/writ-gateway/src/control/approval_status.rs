//! `GET /approvals/{id}`: where an agent whose request was held reads its approval's state
//! (the poll URL of an `approval_required` refusal), and once approved the approval block
//! it may append to its writ instead of naming the approval in the `writ-approval` header.
//!
//! Authenticated by a writ of the same tenant and agent that asked (any of its writs: the
//! one held may have expired); for anyone else the approval does not exist.

use std::sync::Arc;

use axum::extract::{Path, Request, State};
use axum::response::{IntoResponse, Response};
use base64::Engine;
use serde_json::json;
use writ_store::{ApprovalKind, ApprovalStatus};

use crate::approval::{unix_now, visible};
use crate::error::{ApprovalError, GatewayError};
use crate::gateway::Gateway;
use crate::pipeline::{authenticate, extract};

/// Path of the route.
pub(crate) const PATH: &str = "/approvals/{id}";

/// `GET /approvals/{id}`.
pub(crate) async fn status(
    State(gw): State<Arc<Gateway>>,
    Path(id): Path<String>,
    req: Request,
) -> Response {
    match answer(&gw, &id, req).await {
        Ok(response) => response,
        Err(e) => e.into_response(),
    }
}

async fn answer(gw: &Gateway, id: &str, req: Request) -> Result<Response, GatewayError> {
    let presented = extract::writ(req.headers())?;
    let writ = authenticate::verify(gw, &presented)?;
    let tenant = writ.claims().tenant.clone();
    let (_, agent) = writ.acting_agent();
    let record = visible(gw, id, Some(&tenant)).await?;
    if record.agent != agent || record.kind != ApprovalKind::Request {
        return Err(ApprovalError::Unknown { id: id.to_string() }.into());
    }
    let status = record.status_at(unix_now(gw));
    let summary: serde_json::Value = serde_json::from_str(&record.summary).unwrap_or_default();
    let mut body = json!({
        "id": record.id,
        "status": status.as_str(),
        "reason": record.reason,
        "summary": summary,
        "created_at": record.created_at,
        "expires_at": record.expires_at,
        "interval": record.poll_interval,
    });
    if matches!(
        status,
        ApprovalStatus::Approved | ApprovalStatus::Used | ApprovalStatus::Denied
    ) {
        body["decided_by"] = json!(record.decided_by);
        body["decided_at"] = json!(record.decided_at);
    }
    if status == ApprovalStatus::Denied {
        body["decision_reason"] = json!(record.decision_reason);
    }
    if status == ApprovalStatus::Approved
        && let Some(block) = &record.block
    {
        // No secret: it works only appended to the writ it was made for.
        body["approval_block"] =
            json!(base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(block));
    }
    Ok(axum::Json(body).into_response())
}
