//! The upstream handlers of the admin API: shared upstreams (serving every tenant;
//! changed by an admin of every tenant) and a tenant's own, created from the keys of an
//! `[upstreams.NAME]` table without any secret. Those `writ.toml` declares are changed
//! there, not here.

use std::sync::Arc;

use axum::Json;
use axum::extract::{Path, Request, State};
use axum::response::{IntoResponse, Response};
use http::StatusCode;
use serde::{Deserialize, Serialize};
use serde_json::json;
use utoipa::ToSchema;
use writ_store::{StoreError, UpstreamRecord};

use super::schema::{ErrorBody, refusal};
use super::{admin, apply, check_name, read_json, record_admin_change, tenant_admin, unix_now};
use crate::config::api_upstream;
use crate::error::GatewayError;
use crate::gateway::Gateway;
use crate::pipeline::{authenticate, extract};

/// An upstream created through the admin API.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct UpstreamView {
    /// Its name.
    name: String,
    /// The tenant it serves alone; `null` for a shared one.
    tenant: Option<String>,
    /// Whether it serves every tenant.
    shared: bool,
    /// Whether `writ.toml` declares it.
    declared: bool,
    /// What it speaks (`openai`, `anthropic`, `mcp`, `http`, …).
    kind: String,
    /// Its settings as given: never a secret.
    #[schema(value_type = Object)]
    settings: serde_json::Value,
    /// Unix seconds.
    created_at: u64,
    /// Unix seconds.
    updated_at: u64,
}

/// Upstreams.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct UpstreamList {
    /// By name.
    upstreams: Vec<UpstreamView>,
}

/// Body of a `POST` creating an upstream.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct NewUpstream {
    /// 1 to 64 characters of `A-Z a-z 0-9 _ . -`.
    #[schema(pattern = "^[A-Za-z0-9_.-]{1,64}$")]
    name: String,
    /// The keys of an `[upstreams.NAME]` table (`kind`, `base_url`, …) without any
    /// credential (`api_key`, AWS keys, service account), process (`command`, `env`,
    /// `cwd`), file or `${env:…}` reference. `allow_private_network` only where the
    /// gateway allows it (`[server] allow_private_upstreams`).
    #[schema(value_type = Object)]
    settings: serde_json::Value,
}

/// Body of a `PUT` changing an upstream: its new settings, whole.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct UpstreamChange {
    /// As for creation.
    #[schema(value_type = Object)]
    settings: serde_json::Value,
}

fn view(gw: &Gateway, r: UpstreamRecord) -> UpstreamView {
    UpstreamView {
        declared: gw.declared_upstream(&r.name),
        shared: r.tenant.is_none(),
        name: r.name,
        tenant: r.tenant,
        kind: r.kind,
        settings: r.settings,
        created_at: r.created_at,
        updated_at: r.updated_at,
    }
}

/// The upstreams `writ.toml` declares, shared by every tenant: their kind is all that is
/// shown of their settings (the file is the place to read the rest).
fn declared_views(gw: &Gateway) -> impl Iterator<Item = UpstreamView> + '_ {
    gw.upstreams().into_iter().map(|(name, kind)| UpstreamView {
        name: name.to_string(),
        tenant: None,
        shared: true,
        declared: true,
        kind: kind.as_str().to_string(),
        settings: serde_json::json!({ "kind": kind.as_str() }),
        created_at: 0,
        updated_at: 0,
    })
}

fn invalid(reason: impl Into<String>) -> GatewayError {
    GatewayError::InvalidRequest {
        reason: reason.into(),
    }
}

fn not_found(name: &str) -> GatewayError {
    StoreError::NotFound {
        what: "upstream",
        name: name.to_string(),
    }
    .into()
}

/// Validates settings for upstream `name` (and resolves its host: no name may lead to a
/// private address): the kind to store, or a 400 naming the key at fault.
async fn validated(
    gw: &Gateway,
    name: &str,
    settings: &serde_json::Value,
) -> Result<String, GatewayError> {
    let api = api_upstream(name, settings).map_err(|e| invalid(e.to_string()))?;
    // An admin writ points the gateway at its own network (metadata services, internal
    // hosts) only where the operator's config allows it.
    if api.allow_private_network() && !gw.allow_private_upstreams() {
        return Err(invalid(
            "settings.allow_private_network: this gateway does not let upstreams created \
             through the API reach private, loopback, link-local or metadata addresses \
             ([server] allow_private_upstreams = true in writ.toml allows it)",
        ));
    }
    api.resolve_check()
        .await
        .map_err(|e| invalid(e.to_string()))?;
    Ok(api.kind().as_str().to_string())
}

fn detail(tenant: Option<&str>, name: &str) -> serde_json::Map<String, serde_json::Value> {
    let mut detail = serde_json::Map::new();
    detail.insert("tenant".into(), json!(tenant));
    detail.insert("upstream".into(), json!(name));
    detail
}

/// Authorizes an admin of any tenant: of every tenant, or of the writ's own.
async fn any_admin(gw: &Gateway, parts: &http::request::Parts) -> Result<(), GatewayError> {
    if admin(gw, parts, None).await.is_ok() {
        return Ok(());
    }
    let presented = extract::writ(&parts.headers)?;
    let writ = authenticate::verify(gw, &presented)?;
    let tenant = writ.claims().tenant.clone();
    admin(gw, parts, Some(&tenant)).await.map(|_| ())
}

/// The shared upstreams created through the API.
#[utoipa::path(
    get,
    path = "/admin/v1/upstreams",
    tag = "upstreams",
    security(("writ" = [])),
    responses(
        (status = 200, description = "The shared upstreams.", body = UpstreamList),
        (status = 401, description = refusal::UNAUTHENTICATED, body = ErrorBody),
        (status = 403, description = refusal::FORBIDDEN, body = ErrorBody),
        (status = 503, description = refusal::UNAVAILABLE, body = ErrorBody),
    )
)]
pub(super) async fn list_shared(State(gw): State<Arc<Gateway>>, req: Request) -> Response {
    let (parts, _) = req.into_parts();
    let outcome = async {
        any_admin(&gw, &parts).await?;
        let records = gw.store().upstreams(None).await?;
        let upstreams = declared_views(&gw)
            .chain(records.into_iter().map(|r| view(&gw, r)))
            .collect();
        Ok::<_, GatewayError>(Json(UpstreamList { upstreams }).into_response())
    };
    outcome.await.unwrap_or_else(IntoResponse::into_response)
}

/// A tenant's own upstreams and the shared ones.
#[utoipa::path(
    get,
    path = "/admin/v1/tenants/{tenant}/upstreams",
    tag = "upstreams",
    security(("writ" = [])),
    params(("tenant" = String, Path, description = "The tenant's name.", example = "acme")),
    responses(
        (status = 200, description = "Its own upstreams, then the shared ones.", body = UpstreamList),
        (status = 400, description = refusal::INVALID, body = ErrorBody),
        (status = 401, description = refusal::UNAUTHENTICATED, body = ErrorBody),
        (status = 403, description = refusal::FORBIDDEN, body = ErrorBody),
        (status = 404, description = "No tenant of this name.", body = ErrorBody),
        (status = 503, description = refusal::UNAVAILABLE, body = ErrorBody),
    )
)]
pub(super) async fn list_tenant(
    State(gw): State<Arc<Gateway>>,
    Path(tenant): Path<String>,
    req: Request,
) -> Response {
    let (parts, _) = req.into_parts();
    let outcome = async {
        tenant_admin(&gw, &parts, &tenant).await?;
        let mut records = gw.store().upstreams(Some(&tenant)).await?;
        records.extend(gw.store().upstreams(None).await?);
        let mut upstreams: Vec<UpstreamView> = records.into_iter().map(|r| view(&gw, r)).collect();
        upstreams.extend(declared_views(&gw));
        Ok::<_, GatewayError>(Json(UpstreamList { upstreams }).into_response())
    };
    outcome.await.unwrap_or_else(IntoResponse::into_response)
}

/// Creates a shared upstream. Every tenant's admin only.
#[utoipa::path(
    post,
    path = "/admin/v1/upstreams",
    tag = "upstreams",
    security(("writ" = [])),
    request_body = NewUpstream,
    responses(
        (status = 201, description = "The upstream is created.", body = UpstreamView),
        (status = 400, description = "Invalid settings: the message names the key.", body = ErrorBody),
        (status = 401, description = refusal::UNAUTHENTICATED, body = ErrorBody),
        (status = 403, description = refusal::FORBIDDEN, body = ErrorBody),
        (status = 409, description = "The name is taken (writ.toml, a shared or a tenant's upstream).", body = ErrorBody),
        (status = 413, description = refusal::TOO_LARGE, body = ErrorBody),
        (status = 415, description = refusal::NOT_JSON, body = ErrorBody),
        (status = 503, description = refusal::UNAVAILABLE, body = ErrorBody),
    )
)]
pub(super) async fn create_shared(State(gw): State<Arc<Gateway>>, req: Request) -> Response {
    let (parts, body) = req.into_parts();
    let outcome = async {
        let by = admin(&gw, &parts, None).await?;
        let new: NewUpstream = read_json(&parts, body).await?;
        create(&gw, &by, None, new).await
    };
    outcome.await.unwrap_or_else(IntoResponse::into_response)
}

/// Creates an upstream serving the tenant alone.
#[utoipa::path(
    post,
    path = "/admin/v1/tenants/{tenant}/upstreams",
    tag = "upstreams",
    security(("writ" = [])),
    params(("tenant" = String, Path, description = "The tenant's name.", example = "acme")),
    request_body = NewUpstream,
    responses(
        (status = 201, description = "The upstream is created.", body = UpstreamView),
        (status = 400, description = "Invalid settings: the message names the key.", body = ErrorBody),
        (status = 401, description = refusal::UNAUTHENTICATED, body = ErrorBody),
        (status = 403, description = refusal::FORBIDDEN, body = ErrorBody),
        (status = 404, description = "No tenant of this name.", body = ErrorBody),
        (status = 409, description = "The name is taken (writ.toml, a shared or this tenant's upstream).", body = ErrorBody),
        (status = 413, description = refusal::TOO_LARGE, body = ErrorBody),
        (status = 415, description = refusal::NOT_JSON, body = ErrorBody),
        (status = 503, description = refusal::UNAVAILABLE, body = ErrorBody),
    )
)]
pub(super) async fn create_tenant(
    State(gw): State<Arc<Gateway>>,
    Path(tenant): Path<String>,
    req: Request,
) -> Response {
    let (parts, body) = req.into_parts();
    let outcome = async {
        let by = tenant_admin(&gw, &parts, &tenant).await?;
        let new: NewUpstream = read_json(&parts, body).await?;
        create(&gw, &by, Some(tenant), new).await
    };
    outcome.await.unwrap_or_else(IntoResponse::into_response)
}

async fn create(
    gw: &Gateway,
    by: &writ_token::Authorization,
    tenant: Option<String>,
    new: NewUpstream,
) -> Result<Response, GatewayError> {
    check_name("name", &new.name)?;
    let kind = validated(gw, &new.name, &new.settings).await?;
    if gw.declared_upstream(&new.name) {
        return Err(StoreError::Conflict {
            what: "upstream (declared in writ.toml)",
            name: new.name,
        }
        .into());
    }
    let now = unix_now(gw);
    let record = UpstreamRecord {
        tenant,
        name: new.name,
        kind,
        settings: new.settings,
        created_at: now,
        updated_at: now,
    };
    gw.store().create_upstream(&record).await?;
    apply(gw).await;
    record_admin_change(
        gw,
        by,
        "create_upstream",
        StatusCode::CREATED,
        detail(record.tenant.as_deref(), &record.name),
    )
    .await;
    Ok((StatusCode::CREATED, Json(view(gw, record))).into_response())
}

/// One shared upstream.
#[utoipa::path(
    get,
    path = "/admin/v1/upstreams/{name}",
    tag = "upstreams",
    security(("writ" = [])),
    params(("name" = String, Path, description = "The upstream's name.")),
    responses(
        (status = 200, description = "The upstream.", body = UpstreamView),
        (status = 401, description = refusal::UNAUTHENTICATED, body = ErrorBody),
        (status = 403, description = refusal::FORBIDDEN, body = ErrorBody),
        (status = 404, description = "No shared upstream of this name was created here.", body = ErrorBody),
        (status = 503, description = refusal::UNAVAILABLE, body = ErrorBody),
    )
)]
pub(super) async fn get_shared(
    State(gw): State<Arc<Gateway>>,
    Path(name): Path<String>,
    req: Request,
) -> Response {
    let (parts, _) = req.into_parts();
    let outcome = async {
        any_admin(&gw, &parts).await?;
        let record = gw
            .store()
            .upstream(None, &name)
            .await?
            .ok_or_else(|| not_found(&name))?;
        Ok::<_, GatewayError>(Json(view(&gw, record)).into_response())
    };
    outcome.await.unwrap_or_else(IntoResponse::into_response)
}

/// One of the tenant's own upstreams.
#[utoipa::path(
    get,
    path = "/admin/v1/tenants/{tenant}/upstreams/{name}",
    tag = "upstreams",
    security(("writ" = [])),
    params(
        ("tenant" = String, Path, description = "The tenant's name.", example = "acme"),
        ("name" = String, Path, description = "The upstream's name."),
    ),
    responses(
        (status = 200, description = "The upstream.", body = UpstreamView),
        (status = 400, description = refusal::INVALID, body = ErrorBody),
        (status = 401, description = refusal::UNAUTHENTICATED, body = ErrorBody),
        (status = 403, description = refusal::FORBIDDEN, body = ErrorBody),
        (status = 404, description = "No such tenant or upstream of it.", body = ErrorBody),
        (status = 503, description = refusal::UNAVAILABLE, body = ErrorBody),
    )
)]
pub(super) async fn get_tenant(
    State(gw): State<Arc<Gateway>>,
    Path((tenant, name)): Path<(String, String)>,
    req: Request,
) -> Response {
    let (parts, _) = req.into_parts();
    let outcome = async {
        tenant_admin(&gw, &parts, &tenant).await?;
        let record = gw
            .store()
            .upstream(Some(&tenant), &name)
            .await?
            .ok_or_else(|| not_found(&name))?;
        Ok::<_, GatewayError>(Json(view(&gw, record)).into_response())
    };
    outcome.await.unwrap_or_else(IntoResponse::into_response)
}

/// Replaces a shared upstream's settings. Every tenant's admin only.
#[utoipa::path(
    put,
    path = "/admin/v1/upstreams/{name}",
    tag = "upstreams",
    security(("writ" = [])),
    params(("name" = String, Path, description = "The upstream's name.")),
    request_body = UpstreamChange,
    responses(
        (status = 200, description = "The upstream as changed.", body = UpstreamView),
        (status = 400, description = "Invalid settings: the message names the key.", body = ErrorBody),
        (status = 401, description = refusal::UNAUTHENTICATED, body = ErrorBody),
        (status = 403, description = refusal::FORBIDDEN, body = ErrorBody),
        (status = 404, description = "No shared upstream of this name was created here.", body = ErrorBody),
        (status = 409, description = "Declared in writ.toml: edit it there.", body = ErrorBody),
        (status = 413, description = refusal::TOO_LARGE, body = ErrorBody),
        (status = 415, description = refusal::NOT_JSON, body = ErrorBody),
        (status = 503, description = refusal::UNAVAILABLE, body = ErrorBody),
    )
)]
pub(super) async fn update_shared(
    State(gw): State<Arc<Gateway>>,
    Path(name): Path<String>,
    req: Request,
) -> Response {
    let (parts, body) = req.into_parts();
    let outcome = async {
        let by = admin(&gw, &parts, None).await?;
        let change: UpstreamChange = read_json(&parts, body).await?;
        update(&gw, &by, None, &name, change).await
    };
    outcome.await.unwrap_or_else(IntoResponse::into_response)
}

/// Replaces the settings of one of the tenant's own upstreams.
#[utoipa::path(
    put,
    path = "/admin/v1/tenants/{tenant}/upstreams/{name}",
    tag = "upstreams",
    security(("writ" = [])),
    params(
        ("tenant" = String, Path, description = "The tenant's name.", example = "acme"),
        ("name" = String, Path, description = "The upstream's name."),
    ),
    request_body = UpstreamChange,
    responses(
        (status = 200, description = "The upstream as changed.", body = UpstreamView),
        (status = 400, description = "Invalid settings: the message names the key.", body = ErrorBody),
        (status = 401, description = refusal::UNAUTHENTICATED, body = ErrorBody),
        (status = 403, description = refusal::FORBIDDEN, body = ErrorBody),
        (status = 404, description = "No such tenant or upstream of it.", body = ErrorBody),
        (status = 409, description = "Declared in writ.toml: edit it there.", body = ErrorBody),
        (status = 413, description = refusal::TOO_LARGE, body = ErrorBody),
        (status = 415, description = refusal::NOT_JSON, body = ErrorBody),
        (status = 503, description = refusal::UNAVAILABLE, body = ErrorBody),
    )
)]
pub(super) async fn update_tenant(
    State(gw): State<Arc<Gateway>>,
    Path((tenant, name)): Path<(String, String)>,
    req: Request,
) -> Response {
    let (parts, body) = req.into_parts();
    let outcome = async {
        let by = tenant_admin(&gw, &parts, &tenant).await?;
        let change: UpstreamChange = read_json(&parts, body).await?;
        update(&gw, &by, Some(&tenant), &name, change).await
    };
    outcome.await.unwrap_or_else(IntoResponse::into_response)
}

fn declared_refusal(name: &str) -> GatewayError {
    StoreError::Refused(format!(
        "upstream `{name}` is declared in writ.toml: edit it there"
    ))
    .into()
}

async fn update(
    gw: &Gateway,
    by: &writ_token::Authorization,
    tenant: Option<&str>,
    name: &str,
    change: UpstreamChange,
) -> Result<Response, GatewayError> {
    if gw.declared_upstream(name) {
        return Err(declared_refusal(name));
    }
    let mut record = gw
        .store()
        .upstream(tenant, name)
        .await?
        .ok_or_else(|| not_found(name))?;
    record.kind = validated(gw, name, &change.settings).await?;
    record.settings = change.settings;
    record.updated_at = unix_now(gw);
    gw.store().update_upstream(&record).await?;
    apply(gw).await;
    record_admin_change(
        gw,
        by,
        "update_upstream",
        StatusCode::OK,
        detail(tenant, name),
    )
    .await;
    Ok(Json(view(gw, record)).into_response())
}

/// Deletes a shared upstream, and every tenant's credentials for it. Every tenant's
/// admin only.
#[utoipa::path(
    delete,
    path = "/admin/v1/upstreams/{name}",
    tag = "upstreams",
    security(("writ" = [])),
    params(("name" = String, Path, description = "The upstream's name.")),
    responses(
        (status = 204, description = "The upstream is deleted."),
        (status = 401, description = refusal::UNAUTHENTICATED, body = ErrorBody),
        (status = 403, description = refusal::FORBIDDEN, body = ErrorBody),
        (status = 404, description = "No shared upstream of this name was created here.", body = ErrorBody),
        (status = 409, description = "Declared in writ.toml: remove it there.", body = ErrorBody),
        (status = 503, description = refusal::UNAVAILABLE, body = ErrorBody),
    )
)]
pub(super) async fn delete_shared(
    State(gw): State<Arc<Gateway>>,
    Path(name): Path<String>,
    req: Request,
) -> Response {
    let (parts, _) = req.into_parts();
    let outcome = async {
        let by = admin(&gw, &parts, None).await?;
        delete(&gw, &by, None, &name).await
    };
    outcome.await.unwrap_or_else(IntoResponse::into_response)
}

/// Deletes one of the tenant's own upstreams, and its credentials for it.
#[utoipa::path(
    delete,
    path = "/admin/v1/tenants/{tenant}/upstreams/{name}",
    tag = "upstreams",
    security(("writ" = [])),
    params(
        ("tenant" = String, Path, description = "The tenant's name.", example = "acme"),
        ("name" = String, Path, description = "The upstream's name."),
    ),
    responses(
        (status = 204, description = "The upstream is deleted."),
        (status = 400, description = refusal::INVALID, body = ErrorBody),
        (status = 401, description = refusal::UNAUTHENTICATED, body = ErrorBody),
        (status = 403, description = refusal::FORBIDDEN, body = ErrorBody),
        (status = 404, description = "No such tenant or upstream of it.", body = ErrorBody),
        (status = 409, description = "Declared in writ.toml: remove it there.", body = ErrorBody),
        (status = 503, description = refusal::UNAVAILABLE, body = ErrorBody),
    )
)]
pub(super) async fn delete_tenant(
    State(gw): State<Arc<Gateway>>,
    Path((tenant, name)): Path<(String, String)>,
    req: Request,
) -> Response {
    let (parts, _) = req.into_parts();
    let outcome = async {
        let by = tenant_admin(&gw, &parts, &tenant).await?;
        delete(&gw, &by, Some(&tenant), &name).await
    };
    outcome.await.unwrap_or_else(IntoResponse::into_response)
}

async fn delete(
    gw: &Gateway,
    by: &writ_token::Authorization,
    tenant: Option<&str>,
    name: &str,
) -> Result<Response, GatewayError> {
    if gw.declared_upstream(name) {
        return Err(declared_refusal(name));
    }
    gw.store().delete_upstream(tenant, name).await?;
    apply(gw).await;
    record_admin_change(
        gw,
        by,
        "delete_upstream",
        StatusCode::NO_CONTENT,
        detail(tenant, name),
    )
    .await;
    Ok(StatusCode::NO_CONTENT.into_response())
}
