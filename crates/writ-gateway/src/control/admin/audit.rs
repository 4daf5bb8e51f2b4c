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
use crate::audit::record_filter::{
    Cursor, FilterError, RecordFilter, parse_kind, parse_status, parse_time,
};
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

fn invalid(e: FilterError) -> GatewayError {
    GatewayError::InvalidRequest {
        reason: e.to_string(),
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
            .ok_or_else(|| GatewayError::InvalidRequest {
                reason: "limit must be 1 to 1000".to_string(),
            })?,
    };
    let filter = RecordFilter {
        kinds: query
            .kind
            .as_deref()
            .map(|k| parse_kind(k).map(|k| vec![k]))
            .transpose()
            .map_err(invalid)?,
        tenant: query.tenant.clone(),
        agent: query.agent.clone(),
        writ: None,
        status: query
            .status
            .as_deref()
            .map(parse_status)
            .transpose()
            .map_err(invalid)?,
        since: query
            .since
            .as_deref()
            .map(|s| parse_time("since", s))
            .transpose()
            .map_err(invalid)?,
        until: None,
        detections_only,
        detector: query.detector.clone(),
    };
    let cursor = query
        .cursor
        .as_deref()
        .map(Cursor::parse)
        .transpose()
        .map_err(invalid)?;
    let lines = gw
        .audit_export()
        .await
        .map_err(|_| GatewayError::AuditUnavailable)?;
    let mut page = Vec::new();
    let mut past_cursor = cursor.is_none();
    let mut next_cursor = None;
    for line in &lines {
        // Skipped unread only once past the cursor: the cursor's record may be any kind.
        if past_cursor && !filter.may_match_line(line) {
            continue;
        }
        let Ok(record) = AuditRecord::from_line(line) else {
            continue; // checkpoint lines
        };
        if !past_cursor {
            past_cursor = cursor.as_ref().is_some_and(|c| c.names(&record));
            continue;
        }
        if !filter.matches(&record) {
            continue;
        }
        if page.len() == limit {
            break;
        }
        next_cursor = Some(Cursor::of(&record).to_string());
        page.push(record);
    }
    let more = page.len() == limit;
    Ok(Json(RecordPage {
        records: page,
        next_cursor: if more { next_cursor } else { None },
    })
    .into_response())
}
