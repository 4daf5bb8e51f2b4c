//! The limit handlers of the admin API: a tenant's limits, the keys of a `[[limit]]`
//! table applying to that tenant alone, checked as the config's before they are stored.

use std::sync::Arc;

use axum::Json;
use axum::extract::{Path, Request, State};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use utoipa::ToSchema;
use writ_store::{RuleKind, RuleRecord};

use super::schema::{ErrorBody, refusal};
use super::{check_name, read_json, rules, tenant_admin};
use crate::error::GatewayError;
use crate::gateway::Gateway;

/// A limit.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct LimitView {
    /// Its tenant.
    tenant: String,
    /// Its name.
    name: String,
    /// The keys of its `[[limit]]` table, as given.
    #[schema(value_type = Object)]
    spec: serde_json::Value,
    /// Unix seconds.
    created_at: u64,
    /// Unix seconds.
    updated_at: u64,
}

/// A tenant's limits.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct LimitList {
    /// By name.
    limits: Vec<LimitView>,
}

fn view(r: RuleRecord) -> LimitView {
    LimitView {
        spec: serde_json::from_str(&r.body).unwrap_or_default(),
        tenant: r.tenant,
        name: r.name,
        created_at: r.created_at,
        updated_at: r.updated_at,
    }
}

/// A tenant's limits.
#[utoipa::path(
    get,
    path = "/admin/v1/tenants/{tenant}/limits",
    tag = "limits",
    security(("writ" = [])),
    params(("tenant" = String, Path, description = "The tenant's name.", example = "acme")),
    responses(
        (status = 200, description = "The limits.", body = LimitList),
        (status = 400, description = refusal::INVALID, body = ErrorBody),
        (status = 401, description = refusal::UNAUTHENTICATED, body = ErrorBody),
        (status = 403, description = refusal::FORBIDDEN, body = ErrorBody),
        (status = 404, description = "No tenant of this name.", body = ErrorBody),
        (status = 503, description = refusal::UNAVAILABLE, body = ErrorBody),
    )
)]
pub(super) async fn list(
    State(gw): State<Arc<Gateway>>,
    Path(tenant): Path<String>,
    req: Request,
) -> Response {
    let (parts, _) = req.into_parts();
    let outcome = async {
        tenant_admin(&gw, &parts, &tenant).await?;
        let rules = gw.store().rules(RuleKind::Limit, Some(&tenant)).await?;
        let limits = rules.into_iter().map(view).collect();
        Ok::<_, GatewayError>(Json(LimitList { limits }).into_response())
    };
    outcome.await.unwrap_or_else(IntoResponse::into_response)
}

/// Creates or replaces a limit, checked as a `[[limit]]` table of the config is.
#[utoipa::path(
    put,
    path = "/admin/v1/tenants/{tenant}/limits/{name}",
    tag = "limits",
    security(("writ" = [])),
    params(
        ("tenant" = String, Path, description = "The tenant's name.", example = "acme"),
        ("name" = String, Path, description = "The limit's name."),
    ),
    request_body(content = Object, description = "The keys of a `[[limit]]` table (`scope`, `requests`, `tokens`, `window`, …), as JSON."),
    responses(
        (status = 200, description = "The limit, replaced.", body = LimitView),
        (status = 201, description = "The limit, created.", body = LimitView),
        (status = 400, description = "Not a limit: the message names the key and why.", body = ErrorBody),
        (status = 401, description = refusal::UNAUTHENTICATED, body = ErrorBody),
        (status = 403, description = refusal::FORBIDDEN, body = ErrorBody),
        (status = 404, description = "No tenant of this name.", body = ErrorBody),
        (status = 413, description = refusal::TOO_LARGE, body = ErrorBody),
        (status = 415, description = refusal::NOT_JSON, body = ErrorBody),
        (status = 503, description = refusal::UNAVAILABLE, body = ErrorBody),
    )
)]
pub(super) async fn put(
    State(gw): State<Arc<Gateway>>,
    Path((tenant, name)): Path<(String, String)>,
    req: Request,
) -> Response {
    let (parts, body) = req.into_parts();
    let outcome = async {
        let by = tenant_admin(&gw, &parts, &tenant).await?;
        check_name("limit name", &name)?;
        let spec: serde_json::Value = read_json(&parts, body).await?;
        crate::config::tenant_limit(&tenant, &name, &spec).map_err(|e| {
            GatewayError::InvalidRequest {
                reason: e.to_string(),
            }
        })?;
        let (status, stored) =
            rules::store(&gw, &by, RuleKind::Limit, &tenant, &name, spec.to_string()).await?;
        Ok::<_, GatewayError>((status, Json(view(stored))).into_response())
    };
    outcome.await.unwrap_or_else(IntoResponse::into_response)
}

/// One limit.
#[utoipa::path(
    get,
    path = "/admin/v1/tenants/{tenant}/limits/{name}",
    tag = "limits",
    security(("writ" = [])),
    params(
        ("tenant" = String, Path, description = "The tenant's name.", example = "acme"),
        ("name" = String, Path, description = "The limit's name."),
    ),
    responses(
        (status = 200, description = "The limit.", body = LimitView),
        (status = 400, description = refusal::INVALID, body = ErrorBody),
        (status = 401, description = refusal::UNAUTHENTICATED, body = ErrorBody),
        (status = 403, description = refusal::FORBIDDEN, body = ErrorBody),
        (status = 404, description = "No such tenant or limit.", body = ErrorBody),
        (status = 503, description = refusal::UNAVAILABLE, body = ErrorBody),
    )
)]
pub(super) async fn get(
    State(gw): State<Arc<Gateway>>,
    Path((tenant, name)): Path<(String, String)>,
    req: Request,
) -> Response {
    let (parts, _) = req.into_parts();
    let outcome = async {
        tenant_admin(&gw, &parts, &tenant).await?;
        let rule = rules::read(&gw, RuleKind::Limit, &tenant, &name).await?;
        Ok::<_, GatewayError>(Json(view(rule)).into_response())
    };
    outcome.await.unwrap_or_else(IntoResponse::into_response)
}

/// Deletes a limit.
#[utoipa::path(
    delete,
    path = "/admin/v1/tenants/{tenant}/limits/{name}",
    tag = "limits",
    security(("writ" = [])),
    params(
        ("tenant" = String, Path, description = "The tenant's name.", example = "acme"),
        ("name" = String, Path, description = "The limit's name."),
    ),
    responses(
        (status = 204, description = "The limit is deleted."),
        (status = 400, description = refusal::INVALID, body = ErrorBody),
        (status = 401, description = refusal::UNAUTHENTICATED, body = ErrorBody),
        (status = 403, description = refusal::FORBIDDEN, body = ErrorBody),
        (status = 404, description = "No such tenant or limit.", body = ErrorBody),
        (status = 503, description = refusal::UNAVAILABLE, body = ErrorBody),
    )
)]
pub(super) async fn delete(
    State(gw): State<Arc<Gateway>>,
    Path((tenant, name)): Path<(String, String)>,
    req: Request,
) -> Response {
    let (parts, _) = req.into_parts();
    let outcome = async {
        let by = tenant_admin(&gw, &parts, &tenant).await?;
        rules::remove(&gw, &by, RuleKind::Limit, &tenant, &name).await
    };
    outcome.await.unwrap_or_else(IntoResponse::into_response)
}
