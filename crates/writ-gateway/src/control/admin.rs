//! The admin API (`/admin/v1/…`), authenticated by writs holding a `writ:admin` grant,
//! and the public root key set at `/.well-known/writ-keys`.
//!
//! Admin requests go through the same extract and authenticate phases as the data plane;
//! authorization states `api("admin")`, `operation("admin")` and `admin_tenant(..)`: the
//! tenant acted on, or `"*"` for actions that reach every tenant.

use std::sync::Arc;

use axum::Router;
use axum::body::Body;
use axum::extract::{Request, State};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde_json::json;
use writ_token::{Api, Authorization, RequestFacts, fingerprint};

use crate::error::GatewayError;
use crate::gateway::Gateway;
use crate::pipeline::{accept, authenticate, authorize, extract};

mod admins;
mod agents;
mod approvals;
mod approvers;
mod audit;
mod credentials;
mod keys;
mod limits;
mod metrics;
mod openapi;
mod policies;
mod revocations;
mod rules;
mod schema;
mod tenants;
mod unlock;
mod upstreams;
mod usage;

/// Largest admin request body.
const MAX_ADMIN_BODY: usize = 64 * 1024;

/// The admin API and `/metrics` (the key set is [`public_keys`]).
pub(crate) fn routes(gw: Arc<Gateway>) -> Router {
    Router::new()
        .route(
            "/admin/v1/revocations",
            post(revocations::post).get(revocations::list),
        )
        .route("/admin/v1/revocations/{id}/lift", post(revocations::lift))
        .route("/admin/v1/keys/rotate", post(keys::rotate))
        .route("/admin/v1/unlock", post(unlock::unlock_client))
        .route("/admin/v1/keys/reload", post(keys::reload))
        .route("/admin/v1/keys/retire", post(keys::retire))
        .route("/admin/v1/usage/calls", get(usage::calls))
        .route("/admin/v1/usage", get(usage::counters))
        .route("/admin/v1/audit", get(audit::records))
        .route("/admin/v1/detections", get(audit::detections))
        .route(
            "/admin/v1/tenants",
            get(tenants::list).post(tenants::create),
        )
        .route(
            "/admin/v1/tenants/{tenant}",
            get(tenants::get).delete(tenants::delete),
        )
        .route(
            "/admin/v1/tenants/{tenant}/agents",
            get(agents::list).post(agents::create),
        )
        .route(
            "/admin/v1/tenants/{tenant}/agents/{agent}",
            get(agents::get).put(agents::update).delete(agents::delete),
        )
        .route("/admin/v1/tenants/{tenant}/policies", get(policies::list))
        .route(
            "/admin/v1/tenants/{tenant}/policies/{name}",
            get(policies::get)
                .put(policies::put)
                .delete(policies::delete),
        )
        .route("/admin/v1/tenants/{tenant}/limits", get(limits::list))
        .route(
            "/admin/v1/tenants/{tenant}/limits/{name}",
            get(limits::get).put(limits::put).delete(limits::delete),
        )
        .route(
            "/admin/v1/upstreams",
            get(upstreams::list_shared).post(upstreams::create_shared),
        )
        .route(
            "/admin/v1/upstreams/{name}",
            get(upstreams::get_shared)
                .put(upstreams::update_shared)
                .delete(upstreams::delete_shared),
        )
        .route(
            "/admin/v1/tenants/{tenant}/upstreams",
            get(upstreams::list_tenant).post(upstreams::create_tenant),
        )
        .route(
            "/admin/v1/tenants/{tenant}/upstreams/{name}",
            get(upstreams::get_tenant)
                .put(upstreams::update_tenant)
                .delete(upstreams::delete_tenant),
        )
        .route(
            "/admin/v1/tenants/{tenant}/credentials/{upstream}",
            get(credentials::list).post(credentials::add),
        )
        .route(
            "/admin/v1/tenants/{tenant}/credentials/{upstream}/{version}/activate",
            post(credentials::activate),
        )
        .route(
            "/admin/v1/tenants/{tenant}/credentials/{upstream}/{version}/retire",
            post(credentials::retire),
        )
        .route("/admin/v1/vault/rewrap", post(credentials::rewrap))
        .route(
            "/admin/v1/tenants/{tenant}/approvers",
            get(approvers::list).post(approvers::create),
        )
        .route(
            "/admin/v1/tenants/{tenant}/approvers/{name}",
            axum::routing::delete(approvers::delete),
        )
        .route(
            "/admin/v1/tenants/{tenant}/approvers/{name}/enrolment",
            post(approvers::enrol),
        )
        .route(
            "/admin/v1/admins",
            get(admins::list_every).post(admins::create_every),
        )
        .route(
            "/admin/v1/admins/{name}",
            axum::routing::delete(admins::delete_every),
        )
        .route(
            "/admin/v1/admins/{name}/enrolment",
            post(admins::enrol_every),
        )
        .route(
            "/admin/v1/tenants/{tenant}/admins",
            get(admins::list_tenant).post(admins::create_tenant),
        )
        .route(
            "/admin/v1/tenants/{tenant}/admins/{name}",
            axum::routing::delete(admins::delete_tenant),
        )
        .route(
            "/admin/v1/tenants/{tenant}/admins/{name}/enrolment",
            post(admins::enrol_tenant),
        )
        .route("/admin/v1/approvals", get(approvals::list))
        .route("/admin/v1/approvals/{id}", get(approvals::get))
        .route("/admin/v1/approvals/{id}/approve", post(approvals::approve))
        .route("/admin/v1/approvals/{id}/deny", post(approvals::deny))
        // No writ needed: the document holds no secret, and tools read it first.
        .route("/admin/v1/openapi.json", get(openapi::document))
        // Before authentication: an admin writ sent in clear text is exposed whatever
        // the answer, so a listener that allows no admin API says so first.
        .route_layer(axum::middleware::from_fn_with_state(gw.clone(), admin_gate))
        .route("/metrics", get(metrics::serve))
        .with_state(gw)
}

/// The public root key set at `/.well-known/writ-keys`: no writ needed, served to agents
/// and verifiers on the data plane as well as on an admin listener.
pub(crate) fn public_keys(gw: Arc<Gateway>) -> Router {
    Router::new()
        .route("/.well-known/writ-keys", get(writ_keys))
        .with_state(gw)
}

/// Refuses every admin route with [`GatewayError::AdminApiDisabled`] where the config
/// does not allow the admin API on this listener (see `Config::admin_api_allowed`).
async fn admin_gate(
    State(gw): State<Arc<Gateway>>,
    req: Request,
    next: axum::middleware::Next,
) -> Response {
    if gw.admin_api {
        next.run(req).await
    } else {
        GatewayError::AdminApiDisabled.into_response()
    }
}

/// Authenticates the request's writ and authorizes an admin action on `tenant`
/// (`None`: every tenant).
async fn admin(
    gw: &Gateway,
    req: &http::request::Parts,
    tenant: Option<&str>,
) -> Result<Authorization, GatewayError> {
    let presented = extract::writ(&req.headers)?;
    let writ = authenticate::verify(gw, &presented)?;
    let mut facts = RequestFacts::new(Api::Admin, "admin", req.method.as_str(), req.uri.path());
    facts.admin_tenant = Some(tenant.unwrap_or("*").to_string());
    authorize::check_inline(gw, &writ, &facts).await
}

/// Reads a JSON admin body: declared as JSON when its type is declared at all (415
/// otherwise), at most [`MAX_ADMIN_BODY`] bytes (413), strict JSON of `T`'s shape (400).
async fn read_json<T: serde::de::DeserializeOwned>(
    parts: &http::request::Parts,
    body: Body,
) -> Result<T, GatewayError> {
    if let Some(declared) = parts.headers.get(http::header::CONTENT_TYPE) {
        let essence = declared
            .to_str()
            .unwrap_or_default()
            .split(';')
            .next()
            .unwrap_or_default()
            .trim()
            .to_ascii_lowercase();
        let json = essence == "application/json"
            || (essence.starts_with("application/") && essence.ends_with("+json"));
        if !json {
            return Err(GatewayError::UnsupportedMediaType);
        }
    }
    accept::check_declared_length(&parts.headers, MAX_ADMIN_BODY)?;
    let bytes = accept::read_body(body, MAX_ADMIN_BODY).await?;
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Err(GatewayError::InvalidRequest {
            reason: "the body is empty: send a JSON object (Content-Type: application/json)"
                .to_string(),
        });
    }
    // Strict, as request bodies are: a key sent twice is refused, not read last-wins.
    writ_json::from_slice(&bytes).map_err(|e| match e {
        writ_json::JsonError::DuplicateKey { path } => {
            GatewayError::InvalidBody(writ_providers::InspectError::DuplicateKey { path })
        }
        writ_json::JsonError::TooDeep => {
            GatewayError::InvalidBody(writ_providers::InspectError::TooDeep)
        }
        writ_json::JsonError::Syntax(e) | writ_json::JsonError::Shape(e) => {
            GatewayError::InvalidRequest {
                reason: e.to_string(),
            }
        }
    })
}

/// Refuses a name of a tenant, agent, upstream, policy or limit that is not 1 to 64
/// characters of `A-Z a-z 0-9 _ . -` (the rule of config names), naming the field.
fn check_name(field: &str, name: &str) -> Result<(), GatewayError> {
    if crate::config::valid_name(name) {
        Ok(())
    } else {
        Err(GatewayError::InvalidRequest {
            reason: format!("{field} must be 1 to 64 characters of A-Z a-z 0-9 _ . -"),
        })
    }
}

/// The gateway clock's now, in Unix seconds.
fn unix_now(gw: &Gateway) -> u64 {
    gw.clock
        .now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// Authorizes an admin of `tenant` (its path segment), then checks the name and that the
/// tenant exists (404 otherwise): authorization first, so a tenant admin learns nothing
/// of other tenants.
async fn tenant_admin(
    gw: &Gateway,
    parts: &http::request::Parts,
    tenant: &str,
) -> Result<Authorization, GatewayError> {
    let by = admin(gw, parts, Some(tenant)).await?;
    check_name("tenant", tenant)?;
    if gw.store().tenant(tenant).await?.is_none() {
        return Err(writ_store::StoreError::NotFound {
            what: "tenant",
            name: tenant.to_string(),
        }
        .into());
    }
    Ok(by)
}

/// Applies a change made through the admin API to this instance now (the others follow
/// through the change feed). The change is stored: a failed reload is logged, not
/// reported as a failed change.
async fn apply(gw: &Gateway) {
    if let Err(e) = gw.reload().await {
        tracing::error!(error = %e, "admin change stored, not yet applied here");
    }
}

/// Records an admin change by the operator `by` names (the admin writ's subject), answered
/// with `status`.
async fn record_admin_change(
    gw: &Gateway,
    by: &Authorization,
    operation: &str,
    status: http::StatusCode,
    detail: serde_json::Map<String, serde_json::Value>,
) {
    let mut record = crate::audit::record_at(writ_audit::Kind::AdminChange, gw.clock.now());
    record.tenant = Some(by.tenant().to_string());
    record.agent = Some(by.agent().to_string());
    record.writ = Some(gw.audit.pseudonym(by.token_id()));
    record.operation = Some(operation.to_string());
    record.status = Some(status.as_u16());
    record.detail = Some(detail);
    gw.audit.record(record).await;
}

/// Every trusted root public key, so anyone can verify or attenuate writs offline.
async fn writ_keys(State(gw): State<Arc<Gateway>>) -> Response {
    let keys = gw.keys();
    let signing = keys.signing.kid();
    let list: Vec<_> = keys
        .trusted
        .iter()
        .map(|(kid, key)| {
            json!({
                "kid": kid.0,
                "algorithm": "ed25519",
                "public_key": key.to_bytes_hex(),
                "fingerprint": fingerprint(key),
                "signing": kid == signing,
            })
        })
        .collect();
    let approval = gw.approvals.public_key();
    axum::Json(json!({
        "signing_kid": signing.0,
        "keys": list,
        // Approval blocks are read from this key alone (third-party blocks).
        "approval_key": {
            "algorithm": "ed25519",
            "public_key": approval.to_bytes_hex(),
            "fingerprint": fingerprint(&approval),
        },
    }))
    .into_response()
}
