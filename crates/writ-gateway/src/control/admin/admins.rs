//! The console admin handlers of the admin API: the people who sign in to the console as
//! admins (of one tenant, or of every tenant) with a passkey, each enrolled through a
//! one-time link, and new enrolment links for them and for approvers. A tenant's admin
//! manages that tenant's people only; only an admin of every tenant adds another.
//! Removing a person removes their passkeys and links; their console sessions end.

use std::sync::Arc;

use axum::Json;
use axum::extract::{Path, Request, State};
use axum::response::{IntoResponse, Response};
use http::StatusCode;
use serde::{Deserialize, Serialize};
use serde_json::json;
use utoipa::ToSchema;
use writ_store::{ConsoleAdminRecord, Person, PersonRole};
use writ_token::Authorization;

use super::schema::{ErrorBody, refusal};
use super::{admin, read_json, record_admin_change, tenant_admin, unix_now};
use crate::console::passkey::{self, PasskeyError, RelyingParty, valid_person_name};
use crate::error::GatewayError;
use crate::gateway::Gateway;

/// A console admin, as listed.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct AdminView {
    /// The tenant they administer; absent: every tenant.
    tenant: Option<String>,
    /// Their name.
    name: String,
    /// Unix seconds.
    created_at: u64,
}

/// Console admins.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct AdminList {
    /// By tenant (every tenant's first) and name.
    admins: Vec<AdminView>,
}

/// Body of `POST /admin/v1/admins` and `POST /admin/v1/tenants/{tenant}/admins`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct AdminBody {
    /// 1 to 64 characters of `A-Z a-z 0-9 - _ . @`.
    #[schema(min_length = 1, max_length = 64, pattern = r"^[A-Za-z0-9._@-]{1,64}$")]
    name: String,
}

/// A one-time enrolment link: shown in this answer only.
#[derive(Serialize, ToSchema)]
pub(crate) struct EnrolmentView {
    /// `admin` or `approver`.
    role: &'static str,
    /// Their tenant; absent: every tenant.
    tenant: Option<String>,
    /// Their name.
    name: String,
    /// Opened in a browser, enrols a passkey for them, once. Voids their earlier link.
    /// Shown only in this answer: hand it to them now.
    enrol_url: String,
    /// Unix seconds after which the link no longer works.
    expires_at: u64,
}

impl EnrolmentView {
    /// The link.
    pub(super) fn enrol_url(&self) -> &str {
        &self.enrol_url
    }
}

fn view(r: ConsoleAdminRecord) -> AdminView {
    AdminView {
        tenant: r.tenant,
        name: r.name,
        created_at: r.created_at,
    }
}

fn check_person_name(name: &str) -> Result<(), GatewayError> {
    if valid_person_name(name) {
        Ok(())
    } else {
        Err(GatewayError::InvalidRequest {
            reason: "a name is 1 to 64 characters of A-Z a-z 0-9 - _ . @".to_string(),
        })
    }
}

/// The audit detail naming a person: role, tenant and name (never a link).
fn detail(person: &Person) -> serde_json::Map<String, serde_json::Value> {
    let mut detail = serde_json::Map::new();
    detail.insert("role".into(), json!(person.role.as_str()));
    detail.insert("tenant".into(), json!(person.tenant));
    detail.insert("name".into(), json!(person.name));
    detail
}

/// Records a new enrolment link for `person` and shows it.
pub(super) async fn new_link(gw: &Gateway, person: &Person) -> Result<EnrolmentView, GatewayError> {
    let refused = |e: PasskeyError| match e {
        PasskeyError::Store(e) => GatewayError::from(e),
        other => GatewayError::InvalidRequest {
            reason: other.to_string(),
        },
    };
    let rp = RelyingParty::for_issuer(&gw.admin_url()).map_err(refused)?;
    let now = unix_now(gw);
    let url = passkey::issue_link(&rp, gw.store(), person, now)
        .await
        .map_err(refused)?;
    Ok(EnrolmentView {
        role: person.role.as_str(),
        tenant: person.tenant.clone(),
        name: person.name.clone(),
        enrol_url: url.to_string(),
        expires_at: now + passkey::ENROLMENT_SECS,
    })
}

/// Authorizes an admin of `tenant` (`None`: of every tenant).
async fn scope_admin(
    gw: &Gateway,
    parts: &http::request::Parts,
    tenant: Option<&str>,
) -> Result<Authorization, GatewayError> {
    match tenant {
        Some(tenant) => tenant_admin(gw, parts, tenant).await,
        None => admin(gw, parts, None).await,
    }
}

async fn create(
    gw: &Gateway,
    tenant: Option<&str>,
    req: Request,
) -> Result<Response, GatewayError> {
    let (parts, body) = req.into_parts();
    let by = scope_admin(gw, &parts, tenant).await?;
    let AdminBody { name } = read_json(&parts, body).await?;
    check_person_name(&name)?;
    gw.store()
        .add_console_admin(tenant, &name, unix_now(gw))
        .await?;
    let person = Person {
        role: PersonRole::Admin,
        tenant: tenant.map(str::to_string),
        name,
    };
    let link = new_link(gw, &person).await?;
    let status = StatusCode::CREATED;
    record_admin_change(gw, &by, "create_console_admin", status, detail(&person)).await;
    Ok((status, Json(link)).into_response())
}

async fn list(gw: &Gateway, tenant: Option<&str>, req: Request) -> Result<Response, GatewayError> {
    let (parts, _) = req.into_parts();
    scope_admin(gw, &parts, tenant).await?;
    let admins = gw.store().console_admins(tenant).await?;
    let admins = admins.into_iter().map(view).collect();
    Ok(Json(AdminList { admins }).into_response())
}

async fn delete(
    gw: &Gateway,
    tenant: Option<&str>,
    name: &str,
    req: Request,
) -> Result<Response, GatewayError> {
    let (parts, _) = req.into_parts();
    let by = scope_admin(gw, &parts, tenant).await?;
    check_person_name(name)?;
    gw.store().delete_console_admin(tenant, name).await?;
    let person = Person {
        role: PersonRole::Admin,
        tenant: tenant.map(str::to_string),
        name: name.to_string(),
    };
    let status = StatusCode::NO_CONTENT;
    record_admin_change(gw, &by, "delete_console_admin", status, detail(&person)).await;
    Ok(status.into_response())
}

/// A new enrolment link for `person`, authorized for their tenant's admins.
pub(super) async fn enrol(
    gw: &Gateway,
    person: Person,
    req: Request,
) -> Result<Response, GatewayError> {
    let (parts, _) = req.into_parts();
    let by = scope_admin(gw, &parts, person.tenant.as_deref()).await?;
    check_person_name(&person.name)?;
    let link = new_link(gw, &person).await?;
    let status = StatusCode::CREATED;
    record_admin_change(gw, &by, "create_enrolment_link", status, detail(&person)).await;
    Ok((status, Json(link)).into_response())
}

fn admin_of(tenant: Option<String>, name: String) -> Person {
    Person {
        role: PersonRole::Admin,
        tenant,
        name,
    }
}

/// Adds a console admin of every tenant and shows their enrolment link, this once.
#[utoipa::path(
    post,
    path = "/admin/v1/admins",
    tag = "console",
    security(("writ" = [])),
    request_body = AdminBody,
    responses(
        (status = 201, description = "The admin's enrolment link (shown only now).", body = EnrolmentView),
        (status = 400, description = refusal::INVALID, body = ErrorBody),
        (status = 401, description = refusal::UNAUTHENTICATED, body = ErrorBody),
        (status = 403, description = refusal::FORBIDDEN, body = ErrorBody),
        (status = 409, description = "An admin of every tenant has this name.", body = ErrorBody),
        (status = 413, description = refusal::TOO_LARGE, body = ErrorBody),
        (status = 415, description = refusal::NOT_JSON, body = ErrorBody),
        (status = 503, description = refusal::UNAVAILABLE, body = ErrorBody),
    )
)]
pub(super) async fn create_every(State(gw): State<Arc<Gateway>>, req: Request) -> Response {
    create(&gw, None, req)
        .await
        .unwrap_or_else(IntoResponse::into_response)
}

/// Every console admin: of every tenant, and of each tenant.
#[utoipa::path(
    get,
    path = "/admin/v1/admins",
    tag = "console",
    security(("writ" = [])),
    responses(
        (status = 200, description = "The admins.", body = AdminList),
        (status = 401, description = refusal::UNAUTHENTICATED, body = ErrorBody),
        (status = 403, description = refusal::FORBIDDEN, body = ErrorBody),
        (status = 503, description = refusal::UNAVAILABLE, body = ErrorBody),
    )
)]
pub(super) async fn list_every(State(gw): State<Arc<Gateway>>, req: Request) -> Response {
    list(&gw, None, req)
        .await
        .unwrap_or_else(IntoResponse::into_response)
}

/// Removes an admin of every tenant, with their passkeys and link.
#[utoipa::path(
    delete,
    path = "/admin/v1/admins/{name}",
    tag = "console",
    security(("writ" = [])),
    params(("name" = String, Path, description = "The admin's name.")),
    responses(
        (status = 204, description = "The admin is removed."),
        (status = 400, description = refusal::INVALID, body = ErrorBody),
        (status = 401, description = refusal::UNAUTHENTICATED, body = ErrorBody),
        (status = 403, description = refusal::FORBIDDEN, body = ErrorBody),
        (status = 404, description = "No such admin.", body = ErrorBody),
        (status = 503, description = refusal::UNAVAILABLE, body = ErrorBody),
    )
)]
pub(super) async fn delete_every(
    State(gw): State<Arc<Gateway>>,
    Path(name): Path<String>,
    req: Request,
) -> Response {
    delete(&gw, None, &name, req)
        .await
        .unwrap_or_else(IntoResponse::into_response)
}

/// A new enrolment link for an admin of every tenant (voiding their earlier one).
#[utoipa::path(
    post,
    path = "/admin/v1/admins/{name}/enrolment",
    tag = "console",
    security(("writ" = [])),
    params(("name" = String, Path, description = "The admin's name.")),
    responses(
        (status = 201, description = "The link (shown only now).", body = EnrolmentView),
        (status = 400, description = refusal::INVALID, body = ErrorBody),
        (status = 401, description = refusal::UNAUTHENTICATED, body = ErrorBody),
        (status = 403, description = refusal::FORBIDDEN, body = ErrorBody),
        (status = 404, description = "No such admin.", body = ErrorBody),
        (status = 503, description = refusal::UNAVAILABLE, body = ErrorBody),
    )
)]
pub(super) async fn enrol_every(
    State(gw): State<Arc<Gateway>>,
    Path(name): Path<String>,
    req: Request,
) -> Response {
    enrol(&gw, admin_of(None, name), req)
        .await
        .unwrap_or_else(IntoResponse::into_response)
}

/// Adds a console admin of the tenant and shows their enrolment link, this once.
#[utoipa::path(
    post,
    path = "/admin/v1/tenants/{tenant}/admins",
    tag = "console",
    security(("writ" = [])),
    params(("tenant" = String, Path, description = "The tenant's name.", example = "acme")),
    request_body = AdminBody,
    responses(
        (status = 201, description = "The admin's enrolment link (shown only now).", body = EnrolmentView),
        (status = 400, description = refusal::INVALID, body = ErrorBody),
        (status = 401, description = refusal::UNAUTHENTICATED, body = ErrorBody),
        (status = 403, description = refusal::FORBIDDEN, body = ErrorBody),
        (status = 404, description = "No tenant of this name.", body = ErrorBody),
        (status = 409, description = "The tenant has an admin of this name.", body = ErrorBody),
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
    create(&gw, Some(&tenant), req)
        .await
        .unwrap_or_else(IntoResponse::into_response)
}

/// The tenant's console admins.
#[utoipa::path(
    get,
    path = "/admin/v1/tenants/{tenant}/admins",
    tag = "console",
    security(("writ" = [])),
    params(("tenant" = String, Path, description = "The tenant's name.", example = "acme")),
    responses(
        (status = 200, description = "The admins.", body = AdminList),
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
    list(&gw, Some(&tenant), req)
        .await
        .unwrap_or_else(IntoResponse::into_response)
}

/// Removes an admin of the tenant, with their passkeys and link.
#[utoipa::path(
    delete,
    path = "/admin/v1/tenants/{tenant}/admins/{name}",
    tag = "console",
    security(("writ" = [])),
    params(
        ("tenant" = String, Path, description = "The tenant's name.", example = "acme"),
        ("name" = String, Path, description = "The admin's name."),
    ),
    responses(
        (status = 204, description = "The admin is removed."),
        (status = 400, description = refusal::INVALID, body = ErrorBody),
        (status = 401, description = refusal::UNAUTHENTICATED, body = ErrorBody),
        (status = 403, description = refusal::FORBIDDEN, body = ErrorBody),
        (status = 404, description = "No such tenant or admin.", body = ErrorBody),
        (status = 503, description = refusal::UNAVAILABLE, body = ErrorBody),
    )
)]
pub(super) async fn delete_tenant(
    State(gw): State<Arc<Gateway>>,
    Path((tenant, name)): Path<(String, String)>,
    req: Request,
) -> Response {
    delete(&gw, Some(&tenant), &name, req)
        .await
        .unwrap_or_else(IntoResponse::into_response)
}

/// A new enrolment link for an admin of the tenant (voiding their earlier one).
#[utoipa::path(
    post,
    path = "/admin/v1/tenants/{tenant}/admins/{name}/enrolment",
    tag = "console",
    security(("writ" = [])),
    params(
        ("tenant" = String, Path, description = "The tenant's name.", example = "acme"),
        ("name" = String, Path, description = "The admin's name."),
    ),
    responses(
        (status = 201, description = "The link (shown only now).", body = EnrolmentView),
        (status = 400, description = refusal::INVALID, body = ErrorBody),
        (status = 401, description = refusal::UNAUTHENTICATED, body = ErrorBody),
        (status = 403, description = refusal::FORBIDDEN, body = ErrorBody),
        (status = 404, description = "No such tenant or admin.", body = ErrorBody),
        (status = 503, description = refusal::UNAVAILABLE, body = ErrorBody),
    )
)]
pub(super) async fn enrol_tenant(
    State(gw): State<Arc<Gateway>>,
    Path((tenant, name)): Path<(String, String)>,
    req: Request,
) -> Response {
    enrol(&gw, admin_of(Some(tenant), name), req)
        .await
        .unwrap_or_else(IntoResponse::into_response)
}
