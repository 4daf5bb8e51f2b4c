//! The root key handlers of the admin API: rotate the signing key, reload the keys from
//! the data directory, and retire a key no writ should be trusted under any more.

use std::sync::Arc;

use axum::Json;
use axum::extract::{Request, State};
use axum::response::{IntoResponse, Response};
use http::StatusCode;
use serde::{Deserialize, Serialize};
use serde_json::json;
use utoipa::ToSchema;

use super::schema::{ErrorBody, refusal};
use super::{admin, read_json, record_admin_change};
use crate::error::GatewayError;
use crate::gateway::Gateway;

/// The key new writs are signed with, after a rotation or reload.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct SigningKey {
    /// Key id of the signing root key.
    signing_kid: u32,
}

/// Body of `POST /admin/v1/keys/retire`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct RetireKey {
    /// Key id of a trusted root key other than the signing one.
    kid: u32,
}

/// A retired key.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct RetiredKey {
    /// The key no longer trusted.
    retired_kid: u32,
    /// Key id of the signing root key.
    signing_kid: u32,
}

/// The key ids a reload found, for the record of what it changed.
fn key_detail(gw: &Gateway, before: &[u32]) -> serde_json::Map<String, serde_json::Value> {
    let keys = gw.keys();
    let trusted: Vec<u32> = keys.trusted.iter().map(|(kid, _)| kid.0).collect();
    let mut detail = serde_json::Map::new();
    detail.insert("signing_kid".into(), json!(keys.signing.kid().0));
    detail.insert("trusted_kids".into(), json!(trusted));
    let dropped: Vec<u32> = before
        .iter()
        .copied()
        .filter(|k| !trusted.contains(k))
        .collect();
    if !dropped.is_empty() {
        detail.insert("no_longer_trusted".into(), json!(dropped));
    }
    detail
}

fn trusted_kids(gw: &Gateway) -> Vec<u32> {
    gw.keys().trusted.iter().map(|(kid, _)| kid.0).collect()
}

/// Generates a new root key and signs new writs with it; writs signed with the older
/// keys stay valid until those keys are retired. Every tenant's admin only.
#[utoipa::path(
    post,
    path = "/admin/v1/keys/rotate",
    tag = "keys",
    security(("writ" = [])),
    responses(
        (status = 200, description = "The new signing key.", body = SigningKey),
        (status = 401, description = refusal::UNAUTHENTICATED, body = ErrorBody),
        (status = 403, description = refusal::FORBIDDEN, body = ErrorBody),
        (status = 503, description = refusal::UNAVAILABLE, body = ErrorBody),
    )
)]
pub(super) async fn rotate(State(gw): State<Arc<Gateway>>, req: Request) -> Response {
    let (parts, _) = req.into_parts();
    let outcome = async {
        let by = admin(&gw, &parts, None).await?;
        let before = trusted_kids(&gw);
        let kid = gw.data.rotate_root_key()?;
        gw.reload_keys()?;
        tracing::warn!(admin = by.agent(), signing_kid = kid.0, "root key rotated");
        record_admin_change(
            &gw,
            &by,
            "rotate_root_key",
            StatusCode::OK,
            key_detail(&gw, &before),
        )
        .await;
        Ok::<_, GatewayError>(Json(SigningKey { signing_kid: kid.0 }).into_response())
    };
    outcome.await.unwrap_or_else(IntoResponse::into_response)
}

/// Stops trusting a root key now (its private half is deleted); the signing key cannot be
/// retired. Every tenant's admin only.
#[utoipa::path(
    post,
    path = "/admin/v1/keys/retire",
    tag = "keys",
    security(("writ" = [])),
    request_body = RetireKey,
    responses(
        (status = 200, description = "The key is no longer trusted.", body = RetiredKey),
        (status = 400, description = refusal::INVALID, body = ErrorBody),
        (status = 401, description = refusal::UNAUTHENTICATED, body = ErrorBody),
        (status = 403, description = refusal::FORBIDDEN, body = ErrorBody),
        (status = 413, description = refusal::TOO_LARGE, body = ErrorBody),
        (status = 415, description = refusal::NOT_JSON, body = ErrorBody),
        (status = 503, description = refusal::UNAVAILABLE, body = ErrorBody),
    )
)]
pub(super) async fn retire(State(gw): State<Arc<Gateway>>, req: Request) -> Response {
    let (parts, body) = req.into_parts();
    let outcome = async {
        let by = admin(&gw, &parts, None).await?;
        let RetireKey { kid } = read_json(&parts, body).await?;
        let before = trusted_kids(&gw);
        if !before.contains(&kid) || gw.keys().signing.kid().0 == kid {
            return Err(GatewayError::InvalidRequest {
                reason: format!(
                    "key id {kid} cannot be retired: it is not a trusted key, or it is the signing \
                     key (rotate first; `writ keys list` shows the keys)"
                ),
            });
        }
        gw.data.retire_root_key(writ_token::KeyId(kid))?;
        gw.reload_keys()?;
        tracing::warn!(admin = by.agent(), kid, "root key retired");
        let mut detail = key_detail(&gw, &before);
        detail.insert("retired_kid".into(), json!(kid));
        record_admin_change(&gw, &by, "retire_root_key", StatusCode::OK, detail).await;
        Ok::<_, GatewayError>(
            Json(RetiredKey {
                retired_kid: kid,
                signing_kid: gw.keys().signing.kid().0,
            })
            .into_response(),
        )
    };
    outcome.await.unwrap_or_else(IntoResponse::into_response)
}

/// Reads the root keys from the data directory again (after `writ keys` changed them on
/// disk). Every tenant's admin only.
#[utoipa::path(
    post,
    path = "/admin/v1/keys/reload",
    tag = "keys",
    security(("writ" = [])),
    responses(
        (status = 200, description = "The signing key after the reload.", body = SigningKey),
        (status = 401, description = refusal::UNAUTHENTICATED, body = ErrorBody),
        (status = 403, description = refusal::FORBIDDEN, body = ErrorBody),
        (status = 503, description = refusal::UNAVAILABLE, body = ErrorBody),
    )
)]
pub(super) async fn reload(State(gw): State<Arc<Gateway>>, req: Request) -> Response {
    let (parts, _) = req.into_parts();
    let outcome = async {
        let by = admin(&gw, &parts, None).await?;
        let before = trusted_kids(&gw);
        let kid = gw.reload_keys()?;
        record_admin_change(
            &gw,
            &by,
            "reload_root_keys",
            StatusCode::OK,
            key_detail(&gw, &before),
        )
        .await;
        Ok::<_, GatewayError>(Json(SigningKey { signing_kid: kid.0 }).into_response())
    };
    outcome.await.unwrap_or_else(IntoResponse::into_response)
}
