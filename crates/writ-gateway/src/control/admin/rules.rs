//! What the policy and limit handlers share: a tenant's named rules are stored, read
//! back, deleted, applied and audited the same way; each kind checks its own body before.

use axum::response::{IntoResponse, Response};
use http::StatusCode;
use serde_json::json;
use writ_store::{RuleKind, RuleRecord, StoreError};
use writ_token::Authorization;

use super::{apply, record_admin_change, unix_now};
use crate::error::GatewayError;
use crate::gateway::Gateway;

/// The rule kind's name, in records and messages.
fn word(kind: RuleKind) -> &'static str {
    match kind {
        RuleKind::Policy => "policy",
        RuleKind::Limit => "limit",
    }
}

/// 404 `not_found` for the rule `name` of `tenant`.
fn not_found(kind: RuleKind, tenant: &str, name: &str) -> GatewayError {
    StoreError::NotFound {
        what: word(kind),
        name: format!("{tenant}/{name}"),
    }
    .into()
}

/// The stored rule `name` of `tenant`; 404 when there is none.
pub(super) async fn read(
    gw: &Gateway,
    kind: RuleKind,
    tenant: &str,
    name: &str,
) -> Result<RuleRecord, GatewayError> {
    gw.store()
        .rule(kind, tenant, name)
        .await?
        .ok_or_else(|| not_found(kind, tenant, name))
}

/// Stores `body` (already checked) as the rule `name` of `tenant`, applies it here,
/// records who did it, and answers with the stored rule: 201 when created, 200 when
/// replaced.
pub(super) async fn store(
    gw: &Gateway,
    by: &Authorization,
    kind: RuleKind,
    tenant: &str,
    name: &str,
    body: String,
) -> Result<(StatusCode, RuleRecord), GatewayError> {
    let now = unix_now(gw);
    let record = RuleRecord {
        tenant: tenant.to_string(),
        name: name.to_string(),
        body,
        created_at: now,
        updated_at: now,
    };
    let created = gw.store().put_rule(kind, &record).await?;
    apply(gw).await;
    let (status, verb) = if created {
        (StatusCode::CREATED, "create")
    } else {
        (StatusCode::OK, "update")
    };
    let operation = format!("{verb}_{}", word(kind));
    record_admin_change(gw, by, &operation, status, detail(kind, tenant, name)).await;
    Ok((status, read(gw, kind, tenant, name).await?))
}

/// Deletes the rule `name` of `tenant`, applies it here and records who did it: 204.
pub(super) async fn remove(
    gw: &Gateway,
    by: &Authorization,
    kind: RuleKind,
    tenant: &str,
    name: &str,
) -> Result<Response, GatewayError> {
    gw.store().delete_rule(kind, tenant, name).await?;
    apply(gw).await;
    let operation = format!("delete_{}", word(kind));
    let detail = detail(kind, tenant, name);
    record_admin_change(gw, by, &operation, StatusCode::NO_CONTENT, detail).await;
    Ok(StatusCode::NO_CONTENT.into_response())
}

/// The audit detail naming a rule: its tenant and name.
fn detail(kind: RuleKind, tenant: &str, name: &str) -> serde_json::Map<String, serde_json::Value> {
    let mut detail = serde_json::Map::new();
    detail.insert("tenant".into(), json!(tenant));
    detail.insert(word(kind).into(), json!(name));
    detail
}
