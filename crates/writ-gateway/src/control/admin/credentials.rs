//! The credential handlers of the admin API: a tenant's secret for an upstream, stored
//! sealed in the vault and never returned (only its version, fingerprint and times); add a
//! version (active at once), roll back or forward, retire; and the vault's re-wrap.

use std::sync::Arc;

use axum::Json;
use axum::extract::{Path, Request, State};
use axum::response::{IntoResponse, Response};
use http::StatusCode;
use serde::{Deserialize, Serialize};
use serde_json::json;
use utoipa::ToSchema;
use writ_providers::UpstreamSecret;
use writ_store::{CredentialVersion, StoreError};

use super::schema::{ErrorBody, refusal};
use super::{admin, apply, check_name, read_json, record_admin_change, tenant_admin, unix_now};
use crate::config::{UpstreamTemplate, api_upstream, build_with_credential};
use crate::error::GatewayError;
use crate::gateway::Gateway;

/// One version of a credential: everything but the secret.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct CredentialView {
    /// The tenant it is used for.
    tenant: String,
    /// The upstream it authenticates to.
    upstream: String,
    /// 1, 2, …: never reused.
    version: u32,
    /// First 8 hex digits of the secret's SHA-256.
    fingerprint: String,
    /// Whether requests use it now.
    active: bool,
    /// Unix seconds.
    created_at: u64,
    /// When it last became active (Unix seconds).
    #[serde(skip_serializing_if = "Option::is_none")]
    activated_at: Option<u64>,
    /// When it was retired and its ciphertext erased (Unix seconds).
    #[serde(skip_serializing_if = "Option::is_none")]
    retired_at: Option<u64>,
    /// The operator who added it.
    #[serde(skip_serializing_if = "Option::is_none")]
    created_by: Option<String>,
}

impl From<CredentialVersion> for CredentialView {
    fn from(c: CredentialVersion) -> Self {
        CredentialView {
            tenant: c.tenant,
            upstream: c.upstream,
            version: c.version,
            fingerprint: c.fingerprint,
            active: c.active,
            created_at: c.created_at,
            activated_at: c.activated_at,
            retired_at: c.retired_at,
            created_by: c.created_by,
        }
    }
}

/// The versions of a tenant's credential for an upstream.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct CredentialList {
    /// Oldest first.
    versions: Vec<CredentialView>,
}

/// Body of `POST /admin/v1/tenants/{tenant}/credentials/{upstream}`. Its `Debug` never
/// shows the secret.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct NewCredential {
    /// The secret, as the upstream's kind takes it (an API key; for Bedrock a JSON object
    /// of AWS keys; for Vertex a service account's JSON). 1 to 16 KiB. Never returned.
    #[schema(min_length = 1, max_length = 16384, write_only)]
    secret: String,
}

/// What a re-wrap did.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct Rewrapped {
    /// Data keys re-wrapped under the current master key.
    rewrapped: u64,
    /// Id of the current master key.
    master_kid: String,
}

fn detail(
    tenant: &str,
    upstream: &str,
    version: u32,
) -> serde_json::Map<String, serde_json::Value> {
    let mut detail = serde_json::Map::new();
    detail.insert("tenant".into(), json!(tenant));
    detail.insert("upstream".into(), json!(upstream));
    detail.insert("version".into(), json!(version));
    detail
}

/// Authorizes the tenant's admin and checks the upstream is one the tenant may hold a
/// credential for (declared, shared, or its own).
async fn checked(
    gw: &Gateway,
    parts: &http::request::Parts,
    tenant: &str,
    upstream: &str,
) -> Result<writ_token::Authorization, GatewayError> {
    let by = tenant_admin(gw, parts, tenant).await?;
    check_name("upstream", upstream)?;
    if !gw.upstream_visible(tenant, upstream) {
        return Err(StoreError::NotFound {
            what: "upstream",
            name: upstream.to_string(),
        }
        .into());
    }
    Ok(by)
}

/// The versions of a tenant's credential for an upstream.
#[utoipa::path(
    get,
    path = "/admin/v1/tenants/{tenant}/credentials/{upstream}",
    tag = "credentials",
    security(("writ" = [])),
    params(
        ("tenant" = String, Path, description = "The tenant's name.", example = "acme"),
        ("upstream" = String, Path, description = "The upstream's name.", example = "demo"),
    ),
    responses(
        (status = 200, description = "The versions, without secrets.", body = CredentialList),
        (status = 400, description = refusal::INVALID, body = ErrorBody),
        (status = 401, description = refusal::UNAUTHENTICATED, body = ErrorBody),
        (status = 403, description = refusal::FORBIDDEN, body = ErrorBody),
        (status = 404, description = "No such tenant or upstream.", body = ErrorBody),
        (status = 503, description = refusal::UNAVAILABLE, body = ErrorBody),
    )
)]
pub(super) async fn list(
    State(gw): State<Arc<Gateway>>,
    Path((tenant, upstream)): Path<(String, String)>,
    req: Request,
) -> Response {
    let (parts, _) = req.into_parts();
    let outcome = async {
        checked(&gw, &parts, &tenant, &upstream).await?;
        let versions = gw.store().credentials(&tenant, &upstream).await?;
        let versions = versions.into_iter().map(CredentialView::from).collect();
        Ok::<_, GatewayError>(Json(CredentialList { versions }).into_response())
    };
    outcome.await.unwrap_or_else(IntoResponse::into_response)
}

/// Stores a new version of the tenant's credential for the upstream, sealed, and makes
/// it the active one: requests that start after this answer use it; those in flight
/// finish on the version they started with.
#[utoipa::path(
    post,
    path = "/admin/v1/tenants/{tenant}/credentials/{upstream}",
    tag = "credentials",
    security(("writ" = [])),
    params(
        ("tenant" = String, Path, description = "The tenant's name.", example = "acme"),
        ("upstream" = String, Path, description = "The upstream's name.", example = "demo"),
    ),
    request_body = NewCredential,
    responses(
        (status = 201, description = "The new version, now active.", body = CredentialView),
        (status = 400, description = "The secret is empty, too long, or not of the shape \
            the upstream's kind takes.", body = ErrorBody),
        (status = 401, description = refusal::UNAUTHENTICATED, body = ErrorBody),
        (status = 403, description = refusal::FORBIDDEN, body = ErrorBody),
        (status = 404, description = "No such tenant or upstream.", body = ErrorBody),
        (status = 413, description = refusal::TOO_LARGE, body = ErrorBody),
        (status = 415, description = refusal::NOT_JSON, body = ErrorBody),
        (status = 503, description = refusal::UNAVAILABLE, body = ErrorBody),
    )
)]
pub(super) async fn add(
    State(gw): State<Arc<Gateway>>,
    Path((tenant, upstream)): Path<(String, String)>,
    req: Request,
) -> Response {
    let (parts, body) = req.into_parts();
    let outcome = async {
        let by = checked(&gw, &parts, &tenant, &upstream).await?;
        let NewCredential { secret } = read_json(&parts, body).await?;
        let secret = UpstreamSecret::new(secret);
        let len = secret.expose().len();
        if len == 0 || len > writ_store::MAX_SECRET_BYTES {
            return Err(GatewayError::InvalidRequest {
                reason: format!(
                    "secret must hold 1 to {} bytes",
                    writ_store::MAX_SECRET_BYTES
                ),
            });
        }
        // An API upstream's kind says what shape the secret takes: check it now, not at
        // the first request.
        let refused = |e: crate::config::ConfigError| GatewayError::InvalidRequest {
            reason: e.to_string(),
        };
        if let Some(record) = api_record(&gw, &tenant, &upstream).await?
            && let Ok(api) = api_upstream(&upstream, &record.settings)
        {
            build_with_credential(&upstream, UpstreamTemplate::Api(&api), secret.expose())
                .map_err(refused)?;
        } else if let Some(declared) = gw.tenancy.declared_config(&upstream) {
            build_with_credential(
                &upstream,
                UpstreamTemplate::Declared(&declared),
                secret.expose(),
            )
            .map_err(refused)?;
        }
        let version = gw
            .store()
            .add_credential(
                gw.vault(),
                &tenant,
                &upstream,
                secret.expose(),
                &secret.fingerprint(),
                Some(by.agent()),
                unix_now(&gw),
            )
            .await
            .map_err(|e| match e {
                StoreError::Refused(reason) => GatewayError::InvalidRequest { reason },
                e => e.into(),
            })?;
        drop(secret);
        apply(&gw).await;
        let mut d = detail(&tenant, &upstream, version.version);
        d.insert("fingerprint".into(), json!(version.fingerprint));
        record_admin_change(&gw, &by, "add_credential", StatusCode::CREATED, d).await;
        Ok::<_, GatewayError>(
            (StatusCode::CREATED, Json(CredentialView::from(version))).into_response(),
        )
    };
    outcome.await.unwrap_or_else(IntoResponse::into_response)
}

/// The tenant's own upstream `name`, or else the shared one, as stored (`None` for one
/// of `writ.toml`).
async fn api_record(
    gw: &Gateway,
    tenant: &str,
    name: &str,
) -> Result<Option<writ_store::UpstreamRecord>, GatewayError> {
    if let Some(own) = gw.store().upstream(Some(tenant), name).await? {
        return Ok(Some(own));
    }
    Ok(gw.store().upstream(None, name).await?)
}

/// Makes a version the active one (roll back or forward).
#[utoipa::path(
    post,
    path = "/admin/v1/tenants/{tenant}/credentials/{upstream}/{version}/activate",
    tag = "credentials",
    security(("writ" = [])),
    params(
        ("tenant" = String, Path, description = "The tenant's name.", example = "acme"),
        ("upstream" = String, Path, description = "The upstream's name.", example = "demo"),
        ("version" = u32, Path, description = "The version."),
    ),
    responses(
        (status = 200, description = "The version, now active.", body = CredentialView),
        (status = 400, description = refusal::INVALID, body = ErrorBody),
        (status = 401, description = refusal::UNAUTHENTICATED, body = ErrorBody),
        (status = 403, description = refusal::FORBIDDEN, body = ErrorBody),
        (status = 404, description = "No such tenant, upstream or version.", body = ErrorBody),
        (status = 409, description = "The version is retired.", body = ErrorBody),
        (status = 503, description = refusal::UNAVAILABLE, body = ErrorBody),
    )
)]
pub(super) async fn activate(
    State(gw): State<Arc<Gateway>>,
    Path((tenant, upstream, version)): Path<(String, String, String)>,
    req: Request,
) -> Response {
    change(gw, req, tenant, upstream, version, Change::Activate).await
}

/// Retires a version that is not the active one: its ciphertext is erased.
#[utoipa::path(
    post,
    path = "/admin/v1/tenants/{tenant}/credentials/{upstream}/{version}/retire",
    tag = "credentials",
    security(("writ" = [])),
    params(
        ("tenant" = String, Path, description = "The tenant's name.", example = "acme"),
        ("upstream" = String, Path, description = "The upstream's name.", example = "demo"),
        ("version" = u32, Path, description = "The version."),
    ),
    responses(
        (status = 200, description = "The version, retired.", body = CredentialView),
        (status = 400, description = refusal::INVALID, body = ErrorBody),
        (status = 401, description = refusal::UNAUTHENTICATED, body = ErrorBody),
        (status = 403, description = refusal::FORBIDDEN, body = ErrorBody),
        (status = 404, description = "No such tenant, upstream or version.", body = ErrorBody),
        (status = 409, description = "The version is the active one: activate another \
            first.", body = ErrorBody),
        (status = 503, description = refusal::UNAVAILABLE, body = ErrorBody),
    )
)]
pub(super) async fn retire(
    State(gw): State<Arc<Gateway>>,
    Path((tenant, upstream, version)): Path<(String, String, String)>,
    req: Request,
) -> Response {
    change(gw, req, tenant, upstream, version, Change::Retire).await
}

#[derive(Clone, Copy)]
enum Change {
    Activate,
    Retire,
}

async fn change(
    gw: Arc<Gateway>,
    req: Request,
    tenant: String,
    upstream: String,
    version: String,
    change: Change,
) -> Response {
    let (parts, _) = req.into_parts();
    let outcome = async {
        let by = checked(&gw, &parts, &tenant, &upstream).await?;
        let version: u32 = version.parse().ok().filter(|v| *v >= 1).ok_or_else(|| {
            GatewayError::InvalidRequest {
                reason: "version must be a version number (1, 2, …) as listed".to_string(),
            }
        })?;
        let now = unix_now(&gw);
        let (done, operation) = match change {
            Change::Activate => (
                gw.store()
                    .activate_credential(&tenant, &upstream, version, now)
                    .await?,
                "activate_credential",
            ),
            Change::Retire => (
                gw.store()
                    .retire_credential(&tenant, &upstream, version, now)
                    .await?,
                "retire_credential",
            ),
        };
        apply(&gw).await;
        record_admin_change(
            &gw,
            &by,
            operation,
            StatusCode::OK,
            detail(&tenant, &upstream, version),
        )
        .await;
        Ok::<_, GatewayError>(Json(CredentialView::from(done)).into_response())
    };
    outcome.await.unwrap_or_else(IntoResponse::into_response)
}

/// Re-wraps every credential's data key under the current master key (after a master
/// key rotation); the ciphertexts are not touched. Every tenant's admin only.
#[utoipa::path(
    post,
    path = "/admin/v1/vault/rewrap",
    tag = "credentials",
    security(("writ" = [])),
    responses(
        (status = 200, description = "What was re-wrapped.", body = Rewrapped),
        (status = 401, description = refusal::UNAUTHENTICATED, body = ErrorBody),
        (status = 403, description = refusal::FORBIDDEN, body = ErrorBody),
        (status = 503, description = refusal::UNAVAILABLE, body = ErrorBody),
    )
)]
pub(super) async fn rewrap(State(gw): State<Arc<Gateway>>, req: Request) -> Response {
    let (parts, _) = req.into_parts();
    let outcome = async {
        let by = admin(&gw, &parts, None).await?;
        let rewrapped = gw.store().rewrap_credentials(gw.vault()).await?;
        let master_kid = gw.vault().master_kid().to_string();
        let mut detail = serde_json::Map::new();
        detail.insert("rewrapped".into(), json!(rewrapped));
        detail.insert("master_kid".into(), json!(master_kid));
        record_admin_change(&gw, &by, "rewrap_vault", StatusCode::OK, detail).await;
        Ok::<_, GatewayError>(
            Json(Rewrapped {
                rewrapped,
                master_kid,
            })
            .into_response(),
        )
    };
    outcome.await.unwrap_or_else(IntoResponse::into_response)
}
