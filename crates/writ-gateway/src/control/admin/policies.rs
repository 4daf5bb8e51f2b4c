//! The policy handlers of the admin API: a tenant's Datalog checks, applied to every
//! request of the tenant on top of the writ's own. A policy is compiled with the tenant's
//! others before it is stored, so a stored set always compiles.

use std::sync::Arc;

use axum::Json;
use axum::extract::{Path, Request, State};
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use writ_store::{RuleKind, RuleRecord};

use super::schema::{ErrorBody, refusal};
use super::{check_name, read_json, rules, tenant_admin};
use crate::error::GatewayError;
use crate::gateway::Gateway;

/// A policy.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct PolicyView {
    /// Its tenant.
    tenant: String,
    /// Its name.
    name: String,
    /// Its checks (`check if …`, `check all …`, `reject if …`).
    datalog: String,
    /// Unix seconds.
    created_at: u64,
    /// Unix seconds.
    updated_at: u64,
}

/// A tenant's policies.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct PolicyList {
    /// By name.
    policies: Vec<PolicyView>,
}

/// Body of `PUT /admin/v1/tenants/{tenant}/policies/{name}`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct PolicyBody {
    /// Biscuit Datalog holding only checks, at most 16 KiB.
    #[schema(max_length = 16384)]
    datalog: String,
}

fn view(r: RuleRecord) -> PolicyView {
    PolicyView {
        tenant: r.tenant,
        name: r.name,
        datalog: r.body,
        created_at: r.created_at,
        updated_at: r.updated_at,
    }
}

/// A tenant's policies.
#[utoipa::path(
    get,
    path = "/admin/v1/tenants/{tenant}/policies",
    tag = "policies",
    security(("writ" = [])),
    params(("tenant" = String, Path, description = "The tenant's name.", example = "acme")),
    responses(
        (status = 200, description = "The policies.", body = PolicyList),
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
        let rules = gw.store().rules(RuleKind::Policy, Some(&tenant)).await?;
        let policies = rules.into_iter().map(view).collect();
        Ok::<_, GatewayError>(Json(PolicyList { policies }).into_response())
    };
    outcome.await.unwrap_or_else(IntoResponse::into_response)
}

/// Creates or replaces a policy, after compiling it with the tenant's others.
#[utoipa::path(
    put,
    path = "/admin/v1/tenants/{tenant}/policies/{name}",
    tag = "policies",
    security(("writ" = [])),
    params(
        ("tenant" = String, Path, description = "The tenant's name.", example = "acme"),
        ("name" = String, Path, description = "The policy's name."),
    ),
    request_body = PolicyBody,
    responses(
        (status = 200, description = "The policy, replaced.", body = PolicyView),
        (status = 201, description = "The policy, created.", body = PolicyView),
        (status = 400, description = "Not a policy: the message says which line and why.", body = ErrorBody),
        (status = 401, description = refusal::UNAUTHENTICATED, body = ErrorBody),
        (status = 403, description = refusal::FORBIDDEN, body = ErrorBody),
        (status = 404, description = "No tenant of this name.", body = ErrorBody),
        (status = 409, description = "A policy of this name is declared in writ.toml.", body = ErrorBody),
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
        check_name("policy name", &name)?;
        let PolicyBody { datalog } = read_json(&parts, body).await?;
        writ_token::validate_policy(&name, &datalog).map_err(|e| GatewayError::InvalidRequest {
            reason: e.to_string(),
        })?;
        let declared = gw.tenancy.declared_policies(&tenant);
        if declared.iter().any(|(n, _)| *n == name) {
            return Err(GatewayError::Storage(writ_store::StoreError::Refused(
                format!(
                    "policy `{name}` of tenant `{tenant}` is declared in writ.toml \
                 ([tenants.{tenant}.policies]): change it there, or choose another name"
                ),
            )));
        }
        // With the tenant's others (`writ.toml`'s among them): their number of checks is
        // bounded together.
        let others = gw.store().rules(RuleKind::Policy, Some(&tenant)).await?;
        let mut sources: Vec<(&str, &str)> = declared
            .iter()
            .map(|(n, b)| (n.as_str(), b.as_str()))
            .collect();
        sources.extend(
            others
                .iter()
                .filter(|r| r.name != name)
                .map(|r| (r.name.as_str(), r.body.as_str())),
        );
        sources.push((&name, &datalog));
        writ_token::OperatorPolicy::compile(&sources).map_err(|e| {
            GatewayError::InvalidRequest {
                reason: e.to_string(),
            }
        })?;
        let (status, stored) =
            rules::store(&gw, &by, RuleKind::Policy, &tenant, &name, datalog).await?;
        Ok::<_, GatewayError>((status, Json(view(stored))).into_response())
    };
    outcome.await.unwrap_or_else(IntoResponse::into_response)
}

/// One policy.
#[utoipa::path(
    get,
    path = "/admin/v1/tenants/{tenant}/policies/{name}",
    tag = "policies",
    security(("writ" = [])),
    params(
        ("tenant" = String, Path, description = "The tenant's name.", example = "acme"),
        ("name" = String, Path, description = "The policy's name."),
    ),
    responses(
        (status = 200, description = "The policy.", body = PolicyView),
        (status = 400, description = refusal::INVALID, body = ErrorBody),
        (status = 401, description = refusal::UNAUTHENTICATED, body = ErrorBody),
        (status = 403, description = refusal::FORBIDDEN, body = ErrorBody),
        (status = 404, description = "No such tenant or policy.", body = ErrorBody),
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
        let rule = rules::read(&gw, RuleKind::Policy, &tenant, &name).await?;
        Ok::<_, GatewayError>(Json(view(rule)).into_response())
    };
    outcome.await.unwrap_or_else(IntoResponse::into_response)
}

/// Deletes a policy.
#[utoipa::path(
    delete,
    path = "/admin/v1/tenants/{tenant}/policies/{name}",
    tag = "policies",
    security(("writ" = [])),
    params(
        ("tenant" = String, Path, description = "The tenant's name.", example = "acme"),
        ("name" = String, Path, description = "The policy's name."),
    ),
    responses(
        (status = 204, description = "The policy is deleted."),
        (status = 400, description = refusal::INVALID, body = ErrorBody),
        (status = 401, description = refusal::UNAUTHENTICATED, body = ErrorBody),
        (status = 403, description = refusal::FORBIDDEN, body = ErrorBody),
        (status = 404, description = "No such tenant or policy.", body = ErrorBody),
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
        rules::remove(&gw, &by, RuleKind::Policy, &tenant, &name).await
    };
    outcome.await.unwrap_or_else(IntoResponse::into_response)
}
