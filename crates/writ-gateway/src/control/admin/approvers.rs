//! The approver handlers of the admin API: the people who may decide one tenant's
//! approvals, each with a token of their own (`wap_…`), shown once when the approver is
//! added and stored only as its SHA-256. Removing an approver stops their token at once.

use std::sync::Arc;

use axum::Json;
use axum::extract::{Path, Request, State};
use axum::response::{IntoResponse, Response};
use base64::Engine as _;
use http::StatusCode;
use rand::RngCore as _;
use serde::{Deserialize, Serialize};
use serde_json::json;
use utoipa::ToSchema;
use writ_store::ApproverRecord;
use zeroize::Zeroizing;

use super::schema::{ErrorBody, refusal};
use super::{read_json, record_admin_change, tenant_admin, unix_now};
use crate::error::GatewayError;
use crate::gateway::Gateway;

pub(super) use crate::approval::ledger::{APPROVER_TOKEN_PREFIX, approver_token_hash};

/// An approver, as listed: never their token or its hash.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct ApproverView {
    /// The tenant whose approvals they decide.
    tenant: String,
    /// Their name, as approval records show it.
    name: String,
    /// Unix seconds.
    created_at: u64,
}

/// A new approver, with their token: shown this once, never again.
#[derive(Serialize, ToSchema)]
pub(crate) struct NewApproverView {
    /// The tenant whose approvals they decide.
    tenant: String,
    /// Their name.
    name: String,
    /// Unix seconds.
    created_at: u64,
    /// `wap_…`: sent as `Authorization: Bearer wap_…` to list and decide the tenant's
    /// approvals. Shown only in this answer: keep it now.
    token: String,
    /// Opened in a browser, enrols a passkey for the console (once, within 24 hours).
    /// Shown only in this answer.
    enrol_url: String,
}

/// A tenant's approvers.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct ApproverList {
    /// By name.
    approvers: Vec<ApproverView>,
}

/// Body of `POST /admin/v1/tenants/{tenant}/approvers`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct ApproverBody {
    /// 1 to 64 characters of `A-Z a-z 0-9 - _ . @`.
    #[schema(min_length = 1, max_length = 64, pattern = r"^[A-Za-z0-9._@-]{1,64}$")]
    name: String,
}

fn view(r: ApproverRecord) -> ApproverView {
    ApproverView {
        tenant: r.tenant,
        name: r.name,
        created_at: r.created_at,
    }
}

pub(crate) use crate::console::passkey::valid_person_name as valid_approver_name;

fn check_approver_name(name: &str) -> Result<(), GatewayError> {
    if valid_approver_name(name) {
        Ok(())
    } else {
        Err(GatewayError::InvalidRequest {
            reason: "approver name must be 1 to 64 characters of A-Z a-z 0-9 - _ . @".to_string(),
        })
    }
}

/// A new approver token: `wap_` and 32 random bytes, base64url without padding.
fn new_approver_token() -> Zeroizing<String> {
    let mut random = Zeroizing::new([0u8; 32]);
    rand::rngs::OsRng.fill_bytes(random.as_mut());
    Zeroizing::new(format!(
        "{APPROVER_TOKEN_PREFIX}{}",
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(random.as_ref())
    ))
}

/// The audit detail naming an approver: their tenant and name (never the token).
fn detail(tenant: &str, name: &str) -> serde_json::Map<String, serde_json::Value> {
    let mut detail = serde_json::Map::new();
    detail.insert("tenant".into(), json!(tenant));
    detail.insert("approver".into(), json!(name));
    detail
}

/// Adds an approver of the tenant and shows their token, this once.
#[utoipa::path(
    post,
    path = "/admin/v1/tenants/{tenant}/approvers",
    tag = "approvals",
    security(("writ" = [])),
    params(("tenant" = String, Path, description = "The tenant's name.", example = "acme")),
    request_body = ApproverBody,
    responses(
        (status = 201, description = "The approver, with their token (shown only now).", body = NewApproverView),
        (status = 400, description = refusal::INVALID, body = ErrorBody),
        (status = 401, description = refusal::UNAUTHENTICATED, body = ErrorBody),
        (status = 403, description = refusal::FORBIDDEN, body = ErrorBody),
        (status = 404, description = "No tenant of this name.", body = ErrorBody),
        (status = 409, description = "The tenant has an approver of this name.", body = ErrorBody),
        (status = 413, description = refusal::TOO_LARGE, body = ErrorBody),
        (status = 415, description = refusal::NOT_JSON, body = ErrorBody),
        (status = 503, description = refusal::UNAVAILABLE, body = ErrorBody),
    )
)]
pub(super) async fn create(
    State(gw): State<Arc<Gateway>>,
    Path(tenant): Path<String>,
    req: Request,
) -> Response {
    let (parts, body) = req.into_parts();
    let outcome = async {
        let by = tenant_admin(&gw, &parts, &tenant).await?;
        let ApproverBody { name } = read_json(&parts, body).await?;
        check_approver_name(&name)?;
        let token = new_approver_token();
        let hash = approver_token_hash(&token);
        let added = gw
            .store()
            .add_approver(&tenant, &name, &hash, unix_now(&gw))
            .await?;
        let status = StatusCode::CREATED;
        record_admin_change(&gw, &by, "create_approver", status, detail(&tenant, &name)).await;
        let link = super::admins::new_link(&gw, &approver(&tenant, &name)).await?;
        let shown = NewApproverView {
            tenant: added.tenant,
            name: added.name,
            created_at: added.created_at,
            token: token.to_string(),
            enrol_url: link.enrol_url().to_string(),
        };
        Ok::<_, GatewayError>((status, Json(shown)).into_response())
    };
    outcome.await.unwrap_or_else(IntoResponse::into_response)
}

/// The tenant's approvers: names and when they were added, never a token.
#[utoipa::path(
    get,
    path = "/admin/v1/tenants/{tenant}/approvers",
    tag = "approvals",
    security(("writ" = [])),
    params(("tenant" = String, Path, description = "The tenant's name.", example = "acme")),
    responses(
        (status = 200, description = "The approvers.", body = ApproverList),
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
        let approvers = gw.store().approvers(Some(&tenant)).await?;
        let approvers = approvers.into_iter().map(view).collect();
        Ok::<_, GatewayError>(Json(ApproverList { approvers }).into_response())
    };
    outcome.await.unwrap_or_else(IntoResponse::into_response)
}

/// Removes an approver: their token stops working at once.
#[utoipa::path(
    delete,
    path = "/admin/v1/tenants/{tenant}/approvers/{name}",
    tag = "approvals",
    security(("writ" = [])),
    params(
        ("tenant" = String, Path, description = "The tenant's name.", example = "acme"),
        ("name" = String, Path, description = "The approver's name."),
    ),
    responses(
        (status = 204, description = "The approver is removed."),
        (status = 400, description = refusal::INVALID, body = ErrorBody),
        (status = 401, description = refusal::UNAUTHENTICATED, body = ErrorBody),
        (status = 403, description = refusal::FORBIDDEN, body = ErrorBody),
        (status = 404, description = "No such tenant or approver.", body = ErrorBody),
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
        check_approver_name(&name)?;
        gw.store().delete_approver(&tenant, &name).await?;
        let status = StatusCode::NO_CONTENT;
        record_admin_change(&gw, &by, "delete_approver", status, detail(&tenant, &name)).await;
        Ok::<_, GatewayError>(status.into_response())
    };
    outcome.await.unwrap_or_else(IntoResponse::into_response)
}

fn approver(tenant: &str, name: &str) -> writ_store::Person {
    writ_store::Person {
        role: writ_store::PersonRole::Approver,
        tenant: Some(tenant.to_string()),
        name: name.to_string(),
    }
}

/// A new enrolment link for an approver (voiding their earlier one): opened in a
/// browser, it enrols a passkey for the console.
#[utoipa::path(
    post,
    path = "/admin/v1/tenants/{tenant}/approvers/{name}/enrolment",
    tag = "approvals",
    security(("writ" = [])),
    params(
        ("tenant" = String, Path, description = "The tenant's name.", example = "acme"),
        ("name" = String, Path, description = "The approver's name."),
    ),
    responses(
        (status = 201, description = "The link (shown only now).", body = super::admins::EnrolmentView),
        (status = 400, description = refusal::INVALID, body = ErrorBody),
        (status = 401, description = refusal::UNAUTHENTICATED, body = ErrorBody),
        (status = 403, description = refusal::FORBIDDEN, body = ErrorBody),
        (status = 404, description = "No such tenant or approver.", body = ErrorBody),
        (status = 503, description = refusal::UNAVAILABLE, body = ErrorBody),
    )
)]
pub(super) async fn enrol(
    State(gw): State<Arc<Gateway>>,
    Path((tenant, name)): Path<(String, String)>,
    req: Request,
) -> Response {
    super::admins::enrol(&gw, approver(&tenant, &name), req)
        .await
        .unwrap_or_else(IntoResponse::into_response)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn approver_names_are_plain() {
        for good in [
            "alice",
            "a",
            "alice@example.com",
            "ops-lead_2.x",
            &"a".repeat(64),
        ] {
            assert!(valid_approver_name(good), "{good}");
        }
        for bad in [
            "",
            &"a".repeat(65),
            "a b",
            "a/b",
            "a\u{1b}[2J",
            "ali\u{0430}ce",
            "a\nb",
            "<script>",
        ] {
            assert!(!valid_approver_name(bad), "{bad:?}");
        }
    }

    #[test]
    fn tokens_are_prefixed_random_and_hash_to_hex() {
        let a = new_approver_token();
        let b = new_approver_token();
        assert!(a.starts_with(APPROVER_TOKEN_PREFIX));
        assert_eq!(a.len(), APPROVER_TOKEN_PREFIX.len() + 43);
        assert_ne!(*a, *b);
        let hash = approver_token_hash(&a);
        assert_eq!(hash.len(), 64);
        assert!(!hash.contains(&a[APPROVER_TOKEN_PREFIX.len()..]));
        assert_ne!(hash, approver_token_hash(&b));
    }
}
