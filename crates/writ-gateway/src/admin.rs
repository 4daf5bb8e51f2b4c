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
use http::StatusCode;
use serde_json::json;
use writ_token::{Api, Authorization, RequestFacts, Revocation, fingerprint};

use crate::error::GatewayError;
use crate::gateway::Gateway;
use crate::pipeline::{accept, authenticate, authorize, extract};

/// Largest admin request body.
const MAX_ADMIN_BODY: usize = 64 * 1024;

/// Admin routes and the key set.
pub(crate) fn routes(gw: Arc<Gateway>) -> Router {
    Router::new()
        .route(
            "/admin/v1/revocations",
            post(post_revocation).get(list_revocations),
        )
        .route("/admin/v1/keys/rotate", post(rotate_keys))
        .route("/admin/v1/keys/reload", post(reload_keys))
        .route("/admin/v1/usage/calls", get(usage_calls))
        .route("/.well-known/writ-keys", get(writ_keys))
        .with_state(gw)
}

/// Authenticates the request's writ and authorizes an admin action on `tenant`
/// (`None`: every tenant).
fn admin(
    gw: &Gateway,
    req: &http::request::Parts,
    tenant: Option<&str>,
) -> Result<Authorization, GatewayError> {
    let presented = extract::writ(&req.headers)?;
    let writ = authenticate::verify(gw, &presented)?;
    let mut facts = RequestFacts::new(Api::Admin, "admin", req.method.as_str(), req.uri.path());
    facts.admin_tenant = Some(tenant.unwrap_or("*").to_string());
    authorize::check(gw, &writ, &facts)
}

async fn read_json<T: serde::de::DeserializeOwned>(body: Body) -> Result<T, GatewayError> {
    let bytes = accept::read_body(body, MAX_ADMIN_BODY).await?;
    serde_json::from_slice(&bytes).map_err(|e| GatewayError::InvalidRequest {
        reason: e.to_string(),
    })
}

fn check_revocation(r: &Revocation) -> Result<(), GatewayError> {
    let bad = |reason: &str| {
        Err(GatewayError::InvalidRequest {
            reason: reason.to_string(),
        })
    };
    let name_ok = |n: &str| !n.is_empty() && n.len() <= 256 && !n.chars().any(char::is_control);
    match r {
        Revocation::TokenId { token_id } if !name_ok(token_id) => {
            bad("token_id is empty or too long")
        }
        Revocation::RevocationId { revocation_id }
            if revocation_id.len() > 256
                || hex::decode(revocation_id).map_or(true, |b| b.is_empty()) =>
        {
            bad("revocation_id must be hex")
        }
        Revocation::Agent { tenant, agent } if !name_ok(tenant) || !name_ok(agent) => {
            bad("tenant and agent are required")
        }
        Revocation::Tenant { tenant } if !name_ok(tenant) => bad("tenant is required"),
        Revocation::IssuedBefore {
            tenant: Some(t), ..
        } if !name_ok(t) => bad("tenant is empty or too long"),
        _ => Ok(()),
    }
}

async fn post_revocation(State(gw): State<Arc<Gateway>>, req: Request) -> Response {
    let (parts, body) = req.into_parts();
    let outcome = async {
        accept::check_declared_length(&parts.headers, MAX_ADMIN_BODY)?;
        // Authenticate before reading the body; authorize once it says which tenant.
        let presented = extract::writ(&parts.headers)?;
        authenticate::verify(&gw, &presented)?;
        let revocation: Revocation = read_json(body).await?;
        check_revocation(&revocation)?;
        let by = admin(&gw, &parts, revocation.tenant())?;
        gw.revoke(&revocation).await?;
        tracing::warn!(
            admin = by.agent(),
            admin_token = by.token_id(),
            ?revocation,
            "revocation"
        );
        Ok::<_, GatewayError>(
            (
                StatusCode::CREATED,
                axum::Json(json!({"revoked": revocation})),
            )
                .into_response(),
        )
    };
    outcome.await.unwrap_or_else(IntoResponse::into_response)
}

async fn list_revocations(State(gw): State<Arc<Gateway>>, req: Request) -> Response {
    let (parts, _) = req.into_parts();
    let outcome = async {
        admin(&gw, &parts, None)?;
        let all = gw.store.revocations().await?;
        Ok::<_, GatewayError>(axum::Json(json!({"revocations": all})).into_response())
    };
    outcome.await.unwrap_or_else(IntoResponse::into_response)
}

async fn rotate_keys(State(gw): State<Arc<Gateway>>, req: Request) -> Response {
    let (parts, _) = req.into_parts();
    let outcome = async {
        let by = admin(&gw, &parts, None)?;
        let kid = gw.data.rotate_root_key()?;
        gw.reload_keys()?;
        tracing::warn!(admin = by.agent(), signing_kid = kid.0, "root key rotated");
        Ok::<_, GatewayError>(axum::Json(json!({"signing_kid": kid.0})).into_response())
    };
    outcome.await.unwrap_or_else(IntoResponse::into_response)
}

async fn reload_keys(State(gw): State<Arc<Gateway>>, req: Request) -> Response {
    let (parts, _) = req.into_parts();
    let outcome = async {
        admin(&gw, &parts, None)?;
        let kid = gw.reload_keys()?;
        Ok::<_, GatewayError>(axum::Json(json!({"signing_kid": kid.0})).into_response())
    };
    outcome.await.unwrap_or_else(IntoResponse::into_response)
}

/// The latest metered calls with their usage and cost, oldest first.
async fn usage_calls(State(gw): State<Arc<Gateway>>, req: Request) -> Response {
    let (parts, _) = req.into_parts();
    match admin(&gw, &parts, None) {
        Ok(_) => axum::Json(json!({"calls": gw.recent_usage()})).into_response(),
        Err(e) => e.into_response(),
    }
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
    axum::Json(json!({"signing_kid": signing.0, "keys": list})).into_response()
}
