//! The usage handlers of the admin API: the latest metered calls, and the limit counters.

use std::sync::Arc;

use axum::Json;
use axum::extract::{Request, State};
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use super::admin;
use super::schema::{ErrorBody, refusal};
use crate::audit::usage_log::UsageRecord;
use crate::error::GatewayError;
use crate::gateway::Gateway;
use crate::limits::Counter;

/// The latest metered calls.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct UsageCalls {
    /// Oldest first, at most the log's capacity.
    calls: Vec<UsageRecord>,
}

/// Limit counters.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct UsageCounters {
    /// Every counter whose scope matches the filter.
    counters: Vec<Counter>,
}

/// Query of `GET /admin/v1/usage`.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub(crate) struct UsageQuery {
    /// `field=value` pairs joined by commas, every one of which a counter's scope must
    /// hold; fields are `tenant`, `agent`, `writ`, `upstream` and `model`
    /// (e.g. `tenant=acme,agent=travel`). A `tenant` pair lets that tenant's admin ask.
    scope: Option<String>,
}

/// The latest metered calls with their usage and cost, oldest first. Every tenant's admin
/// only.
#[utoipa::path(
    get,
    path = "/admin/v1/usage/calls",
    tag = "usage",
    security(("writ" = [])),
    responses(
        (status = 200, description = "The latest calls.", body = UsageCalls),
        (status = 401, description = refusal::UNAUTHENTICATED, body = ErrorBody),
        (status = 403, description = refusal::FORBIDDEN, body = ErrorBody),
        (status = 503, description = refusal::UNAVAILABLE, body = ErrorBody),
    )
)]
pub(super) async fn calls(State(gw): State<Arc<Gateway>>, req: Request) -> Response {
    let (parts, _) = req.into_parts();
    match admin(&gw, &parts, None).await {
        Ok(_) => Json(UsageCalls {
            calls: gw.recent_usage(),
        })
        .into_response(),
        Err(e) => e.into_response(),
    }
}

/// Limit counters, filtered by `scope` (every pair must match).
#[utoipa::path(
    get,
    path = "/admin/v1/usage",
    tag = "usage",
    security(("writ" = [])),
    params(UsageQuery),
    responses(
        (status = 200, description = "The matching counters.", body = UsageCounters),
        (status = 400, description = refusal::INVALID, body = ErrorBody),
        (status = 401, description = refusal::UNAUTHENTICATED, body = ErrorBody),
        (status = 403, description = refusal::FORBIDDEN, body = ErrorBody),
        (status = 503, description = refusal::UNAVAILABLE, body = ErrorBody),
    )
)]
pub(super) async fn counters(State(gw): State<Arc<Gateway>>, req: Request) -> Response {
    let (parts, _) = req.into_parts();
    let outcome = async {
        let query: UsageQuery = serde_urlencoded::from_str(parts.uri.query().unwrap_or(""))
            .map_err(|e| GatewayError::InvalidRequest {
                reason: format!("{e}; the one parameter is `scope`"),
            })?;
        let scope = query.scope.as_deref().unwrap_or("");
        let mut filter = Vec::new();
        for pair in scope.split(',').filter(|p| !p.is_empty()) {
            match pair.split_once('=') {
                Some((f, v))
                    if matches!(f, "tenant" | "agent" | "writ" | "upstream" | "model")
                        && !v.is_empty() =>
                {
                    filter.push((f, v));
                }
                _ => {
                    return Err(GatewayError::InvalidRequest {
                        reason: format!(
                            "scope `{pair}` is not field=value with a field of tenant, agent, writ, upstream, model"
                        ),
                    });
                }
            }
        }
        let tenant = filter.iter().find(|(f, _)| *f == "tenant").map(|(_, v)| *v);
        admin(&gw, &parts, tenant).await?;
        let counters = gw.limits.counters(&filter, gw.clock.now()).await?;
        Ok::<_, GatewayError>(Json(UsageCounters { counters }).into_response())
    };
    outcome.await.unwrap_or_else(IntoResponse::into_response)
}
