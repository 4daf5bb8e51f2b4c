//! The audit handlers of the admin API: audit records and detections, filtered and paged.

use std::sync::Arc;

use axum::Json;
use axum::extract::{Request, State};
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use writ_audit::AuditRecord;

use super::admin;
use super::schema::{ErrorBody, refusal};
use crate::error::GatewayError;
use crate::gateway::Gateway;

/// Most records in one page.
const MAX_PAGE: usize = 1000;

/// Query of `GET /admin/v1/audit` and `GET /admin/v1/detections`: every filter given
/// must match.
#[derive(Debug, Default, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub(crate) struct RecordQuery {
    /// Only records of this kind (`admin_change`, `request_denied`, …).
    #[param(value_type = Option<writ_audit::Kind>)]
    kind: Option<String>,
    /// Only records about this tenant; lets that tenant's admin ask.
    tenant: Option<String>,
    /// Only records about this agent.
    agent: Option<String>,
    /// Only records with this HTTP status.
    #[param(value_type = Option<u16>)]
    status: Option<String>,
    /// Only records at or after this time (RFC 3339, e.g. `2026-11-23T00:00:00Z`).
    #[param(format = DateTime)]
    since: Option<String>,
    /// Records in one page: 1 to 1000, 100 by default.
    #[param(value_type = Option<u16>, minimum = 1, maximum = 1000)]
    limit: Option<String>,
    /// Continue after the record this names: the last page's `next_cursor`.
    cursor: Option<String>,
    /// Only records a detector with this name made or refused.
    detector: Option<String>,
}

/// One page of records.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct RecordPage {
    /// Oldest first.
    records: Vec<AuditRecord>,
    /// Where the next page starts (pass it as `cursor`), when the page is full.
    next_cursor: Option<String>,
}

/// Audit records, oldest first, filtered by `kind`, `tenant`, `agent`, `status`,
/// `detector` and `since`, `limit` at a time; `cursor` continues after the record it
/// names. Without a `tenant` filter, every tenant's admin only.
#[utoipa::path(
    get,
    path = "/admin/v1/audit",
    tag = "audit",
    security(("writ" = [])),
    params(RecordQuery),
    responses(
        (status = 200, description = "A page of records.", body = RecordPage),
        (status = 400, description = refusal::INVALID, body = ErrorBody),
        (status = 401, description = refusal::UNAUTHENTICATED, body = ErrorBody),
        (status = 403, description = refusal::FORBIDDEN, body = ErrorBody),
        (status = 503, description = refusal::UNAVAILABLE, body = ErrorBody),
    )
)]
pub(super) async fn records(State(gw): State<Arc<Gateway>>, req: Request) -> Response {
    let (parts, _) = req.into_parts();
    query(&gw, &parts, false)
        .await
        .unwrap_or_else(IntoResponse::into_response)
}

/// Detections, oldest first: the audit records of kind `detection` and the denied
/// requests a detector refused. Filters as for the audit records.
#[utoipa::path(
    get,
    path = "/admin/v1/detections",
    tag = "audit",
    security(("writ" = [])),
    params(RecordQuery),
    responses(
        (status = 200, description = "A page of detections.", body = RecordPage),
        (status = 400, description = refusal::INVALID, body = ErrorBody),
        (status = 401, description = refusal::UNAUTHENTICATED, body = ErrorBody),
        (status = 403, description = refusal::FORBIDDEN, body = ErrorBody),
        (status = 503, description = refusal::UNAVAILABLE, body = ErrorBody),
    )
)]
pub(super) async fn detections(State(gw): State<Arc<Gateway>>, req: Request) -> Response {
    let (parts, _) = req.into_parts();
    query(&gw, &parts, true)
        .await
        .unwrap_or_else(IntoResponse::into_response)
}

fn invalid(reason: &str) -> GatewayError {
    GatewayError::InvalidRequest {
        reason: reason.to_string(),
    }
}

async fn query(
    gw: &Gateway,
    parts: &http::request::Parts,
    detections_only: bool,
) -> Result<Response, GatewayError> {
    let query: RecordQuery =
        serde_urlencoded::from_str(parts.uri.query().unwrap_or("")).map_err(|e| {
            GatewayError::InvalidRequest {
                reason: format!(
                    "{e}; the filters are kind, tenant, agent, status, since, limit, cursor and \
                 detector, each at most once"
                ),
            }
        })?;
    admin(gw, parts, query.tenant.as_deref()).await?;
    let limit = match &query.limit {
        None => 100,
        Some(l) => l
            .parse::<usize>()
            .ok()
            .filter(|n| (1..=MAX_PAGE).contains(n))
            .ok_or_else(|| invalid("limit must be 1 to 1000"))?,
    };
    let status = match &query.status {
        None => None,
        Some(s) => Some(
            s.parse::<u16>()
                .map_err(|_| invalid("status must be an HTTP status code"))?,
        ),
    };
    let since =
        match &query.since {
            None => None,
            Some(s) => Some(humantime::parse_rfc3339(s).map_err(|_| {
                invalid("since must be an RFC 3339 time such as 2026-11-23T00:00:00Z")
            })?),
        };
    let cursor = match &query.cursor {
        None => None,
        Some(c) => {
            let (instance, seq) = c
                .rsplit_once('/')
                .ok_or_else(|| invalid("cursor is not one this API returned"))?;
            let seq = seq
                .parse::<u64>()
                .map_err(|_| invalid("cursor is not one this API returned"))?;
            Some((instance.to_string(), seq))
        }
    };
    let lines = gw
        .audit_export()
        .await
        .map_err(|_| GatewayError::AuditUnavailable)?;
    let mut page = Vec::new();
    let mut past_cursor = cursor.is_none();
    let mut next_cursor = None;
    for line in &lines {
        let Ok(record) = AuditRecord::from_line(line) else {
            continue; // checkpoint lines
        };
        if !past_cursor {
            if let Some((instance, seq)) = &cursor
                && record.instance == *instance
                && record.seq == *seq
            {
                past_cursor = true;
            }
            continue;
        }
        let kind = serde_json::to_value(record.kind).unwrap_or_default();
        let keep = query
            .kind
            .as_deref()
            .is_none_or(|k| kind.as_str() == Some(k))
            && query
                .tenant
                .as_deref()
                .is_none_or(|t| record.tenant.as_deref() == Some(t))
            && query
                .agent
                .as_deref()
                .is_none_or(|a| record.agent.as_deref() == Some(a))
            && status.is_none_or(|s| record.status == Some(s))
            && since.is_none_or(|t| humantime::parse_rfc3339(&record.time).is_ok_and(|at| at >= t));
        let detector = record
            .detail
            .as_ref()
            .and_then(|d| d.get("detector"))
            .and_then(|d| d.as_str());
        let keep = keep
            && (!detections_only || detector.is_some())
            && query
                .detector
                .as_deref()
                .is_none_or(|want| detector == Some(want));
        if !keep {
            continue;
        }
        if page.len() == limit {
            break;
        }
        next_cursor = Some(format!("{}/{}", record.instance, record.seq));
        page.push(record);
    }
    let more = page.len() == limit;
    Ok(Json(RecordPage {
        records: page,
        next_cursor: if more { next_cursor } else { None },
    })
    .into_response())
}
