//! The tenant handlers of the admin API: list, create, read and delete tenants. Creating,
//! listing and deleting take an admin of every tenant; a tenant's admin may read its own.

use std::sync::Arc;

use axum::Json;
use axum::extract::{Path, Request, State};
use axum::response::{IntoResponse, Response};
use http::StatusCode;
use serde::{Deserialize, Serialize};
use serde_json::json;
use utoipa::ToSchema;

use super::schema::{ErrorBody, refusal};
use super::{admin, apply, check_name, read_json, record_admin_change, tenant_admin, unix_now};
use crate::error::GatewayError;
use crate::gateway::Gateway;

/// Longest display name, in characters.
const MAX_DISPLAY_NAME_CHARS: usize = 256;

/// A tenant.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct TenantView {
    /// Its name, as writs and agents name it.
    name: String,
    /// A name for people, if given.
    #[serde(skip_serializing_if = "Option::is_none")]
    display_name: Option<String>,
    /// Whether `writ.toml` declares it (then it cannot be deleted here).
    declared: bool,
    /// Unix seconds.
    created_at: u64,
}

/// Every tenant.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct TenantList {
    /// By name.
    tenants: Vec<TenantView>,
}

/// Body of `POST /admin/v1/tenants`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct NewTenant {
    /// 1 to 64 characters of `A-Z a-z 0-9 _ . -`.
    #[schema(pattern = "^[A-Za-z0-9_.-]{1,64}$")]
    name: String,
    /// A name for people: one line, at most 256 characters.
    #[serde(default)]
    #[schema(max_length = 256)]
    display_name: Option<String>,
}

fn view(gw: &Gateway, t: writ_store::Tenant) -> TenantView {
    TenantView {
        declared: gw.declared_tenant(&t.name),
        name: t.name,
        display_name: t.display_name,
        created_at: t.created_at,
    }
}

/// Every tenant. Every tenant's admin only.
#[utoipa::path(
    get,
    path = "/admin/v1/tenants",
    tag = "tenants",
    security(("writ" = [])),
    responses(
        (status = 200, description = "The tenants.", body = TenantList),
        (status = 401, description = refusal::UNAUTHENTICATED, body = ErrorBody),
        (status = 403, description = refusal::FORBIDDEN, body = ErrorBody),
        (status = 503, description = refusal::UNAVAILABLE, body = ErrorBody),
    )
)]
pub(super) async fn list(State(gw): State<Arc<Gateway>>, req: Request) -> Response {
    let (parts, _) = req.into_parts();
    let outcome = async {
        admin(&gw, &parts, None).await?;
        let tenants = gw.store().tenants().await?;
        let tenants = tenants.into_iter().map(|t| view(&gw, t)).collect();
        Ok::<_, GatewayError>(Json(TenantList { tenants }).into_response())
    };
    outcome.await.unwrap_or_else(IntoResponse::into_response)
}

/// Creates a tenant. Every tenant's admin only.
#[utoipa::path(
    post,
    path = "/admin/v1/tenants",
    tag = "tenants",
    security(("writ" = [])),
    request_body = NewTenant,
    responses(
        (status = 201, description = "The tenant is created.", body = TenantView),
        (status = 400, description = refusal::INVALID, body = ErrorBody),
        (status = 401, description = refusal::UNAUTHENTICATED, body = ErrorBody),
        (status = 403, description = refusal::FORBIDDEN, body = ErrorBody),
        (status = 409, description = "A tenant of this name exists.", body = ErrorBody),
        (status = 413, description = refusal::TOO_LARGE, body = ErrorBody),
        (status = 415, description = refusal::NOT_JSON, body = ErrorBody),
        (status = 503, description = refusal::UNAVAILABLE, body = ErrorBody),
    )
)]
pub(super) async fn create(State(gw): State<Arc<Gateway>>, req: Request) -> Response {
    let (parts, body) = req.into_parts();
    let outcome = async {
        let by = admin(&gw, &parts, None).await?;
        let NewTenant { name, display_name } = read_json(&parts, body).await?;
        check_name("name", &name)?;
        if let Some(d) = &display_name
            && (d.trim().is_empty()
                || d.chars().count() > MAX_DISPLAY_NAME_CHARS
                || d.chars().any(char::is_control))
        {
            return Err(GatewayError::InvalidRequest {
                reason: "display_name must be one line of 1 to 256 characters".to_string(),
            });
        }
        let tenant = writ_store::Tenant {
            name,
            display_name,
            created_at: unix_now(&gw),
        };
        gw.store().create_tenant(&tenant).await?;
        apply(&gw).await;
        let mut detail = serde_json::Map::new();
        detail.insert("tenant".into(), json!(tenant.name));
        record_admin_change(&gw, &by, "create_tenant", StatusCode::CREATED, detail).await;
        Ok::<_, GatewayError>((StatusCode::CREATED, Json(view(&gw, tenant))).into_response())
    };
    outcome.await.unwrap_or_else(IntoResponse::into_response)
}

/// One tenant. Its own admin may read it.
#[utoipa::path(
    get,
    path = "/admin/v1/tenants/{tenant}",
    tag = "tenants",
    security(("writ" = [])),
    params(("tenant" = String, Path, description = "The tenant's name.", example = "acme")),
    responses(
        (status = 200, description = "The tenant.", body = TenantView),
        (status = 400, description = refusal::INVALID, body = ErrorBody),
        (status = 401, description = refusal::UNAUTHENTICATED, body = ErrorBody),
        (status = 403, description = refusal::FORBIDDEN, body = ErrorBody),
        (status = 404, description = "No tenant of this name.", body = ErrorBody),
        (status = 503, description = refusal::UNAVAILABLE, body = ErrorBody),
    )
)]
pub(super) async fn get(
    State(gw): State<Arc<Gateway>>,
    Path(tenant): Path<String>,
    req: Request,
) -> Response {
    let (parts, _) = req.into_parts();
    let outcome =
        async {
            tenant_admin(&gw, &parts, &tenant).await?;
            let found = gw.store().tenant(&tenant).await?.ok_or_else(|| {
                writ_store::StoreError::NotFound {
                    what: "tenant",
                    name: tenant.clone(),
                }
            })?;
            Ok::<_, GatewayError>(Json(view(&gw, found)).into_response())
        };
    outcome.await.unwrap_or_else(IntoResponse::into_response)
}

/// Deletes a tenant that holds nothing any more (no agent, upstream, credential, policy
/// or limit) and that `writ.toml` does not declare. Every tenant's admin only.
#[utoipa::path(
    delete,
    path = "/admin/v1/tenants/{tenant}",
    tag = "tenants",
    security(("writ" = [])),
    params(("tenant" = String, Path, description = "The tenant's name.", example = "acme")),
    responses(
        (status = 204, description = "The tenant is deleted."),
        (status = 400, description = refusal::INVALID, body = ErrorBody),
        (status = 401, description = refusal::UNAUTHENTICATED, body = ErrorBody),
        (status = 403, description = refusal::FORBIDDEN, body = ErrorBody),
        (status = 404, description = "No tenant of this name.", body = ErrorBody),
        (status = 409, description = "Declared in writ.toml, or something still belongs \
            to it.", body = ErrorBody),
        (status = 503, description = refusal::UNAVAILABLE, body = ErrorBody),
    )
)]
pub(super) async fn delete(
    State(gw): State<Arc<Gateway>>,
    Path(tenant): Path<String>,
    req: Request,
) -> Response {
    let (parts, _) = req.into_parts();
    let outcome = async {
        let by = admin(&gw, &parts, None).await?;
        check_name("tenant", &tenant)?;
        if gw.declared_tenant(&tenant) {
            return Err(writ_store::StoreError::Refused(format!(
                "tenant `{tenant}` is declared in writ.toml: remove it there"
            ))
            .into());
        }
        gw.store().delete_tenant(&tenant).await?;
        apply(&gw).await;
        let mut detail = serde_json::Map::new();
        detail.insert("tenant".into(), json!(tenant));
        record_admin_change(&gw, &by, "delete_tenant", StatusCode::NO_CONTENT, detail).await;
        Ok::<_, GatewayError>(StatusCode::NO_CONTENT.into_response())
    };
    outcome.await.unwrap_or_else(IntoResponse::into_response)
}
