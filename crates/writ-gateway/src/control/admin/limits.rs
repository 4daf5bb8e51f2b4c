//! The limit handlers of the admin API: a tenant's limits, the keys of a `[[limit]]`
//! table applying to that tenant alone, checked as the config's before they are stored.

use std::sync::Arc;

use axum::Json;
use axum::extract::{Path, Request, State};
use axum::response::{IntoResponse, Response};
use http::StatusCode;
use serde::Serialize;
use serde_json::json;
use utoipa::ToSchema;
use writ_store::{RuleKind, RuleRecord, StoreError};

use super::schema::{ErrorBody, refusal};
use super::{apply, check_name, read_json, record_admin_change, tenant_admin, unix_now};
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

fn not_found(tenant: &str, name: &str) -> GatewayError {
    StoreError::NotFound {
        what: "limit",
        name: format!("{tenant}/{name}"),
    }
    .into()
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
        let now = unix_now(&gw);
        let record = RuleRecord {
            tenant: tenant.clone(),
            name: name.clone(),
            body: spec.to_string(),
            created_at: now,
            updated_at: now,
        };
        let created = gw.store().put_rule(RuleKind::Limit, &record).await?;
        apply(&gw).await;
        let mut detail = serde_json::Map::new();
        detail.insert("tenant".into(), json!(tenant));
        detail.insert("limit".into(), json!(name));
        let status = if created {
            StatusCode::CREATED
        } else {
            StatusCode::OK
        };
        let operation = if created {
            "create_limit"
        } else {
            "update_limit"
        };
        record_admin_change(&gw, &by, operation, status, detail).await;
        let stored = gw
            .store()
            .rule(RuleKind::Limit, &tenant, &name)
            .await?
            .ok_or_else(|| not_found(&tenant, &name))?;
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
        let rule = gw
            .store()
            .rule(RuleKind::Limit, &tenant, &name)
            .await?
            .ok_or_else(|| not_found(&tenant, &name))?;
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
        gw.store()
            .delete_rule(RuleKind::Limit, &tenant, &name)
            .await?;
        apply(&gw).await;
        let mut detail = serde_json::Map::new();
        detail.insert("tenant".into(), json!(tenant));
        detail.insert("limit".into(), json!(name));
        record_admin_change(&gw, &by, "delete_limit", StatusCode::NO_CONTENT, detail).await;
        Ok::<_, GatewayError>(StatusCode::NO_CONTENT.into_response())
    };
    outcome.await.unwrap_or_else(IntoResponse::into_response)
}
