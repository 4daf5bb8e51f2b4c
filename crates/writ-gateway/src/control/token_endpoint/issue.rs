//! What the token endpoint answers once a writ is issued: the writ minted (and remembered
//! as verified), the `writ_minted` audit record that must be written first, and the token
//! response.

use std::time::Duration;

use axum::response::{IntoResponse, Response};
use http::{HeaderValue, StatusCode, header};
use serde_json::json;
use writ_token::Grant;

use writ_store::ApprovalRecord;
use writ_token::{MintRequest, mint_verified};

use super::ciba;
use super::mint_approval::MintPlan;
use super::oauth_error::OAuthError;
use crate::gateway::Gateway;

/// The token type of an access token (RFC 8693 §3): what a token exchange takes and issues.
pub(super) const ACCESS_TOKEN_TYPE: &str = "urn:ietf:params:oauth:token-type:access_token";

/// The token response (RFC 6749 §5.1): `Bearer` unless bound to a DPoP key, the grants
/// issued, and the scope when one was asked for.
pub(super) fn issued(
    writ: String,
    ttl: Duration,
    grants: &[Grant],
    exchanged: bool,
    dpop: bool,
    scope: Option<&str>,
) -> Response {
    let mut body = json!({
        "access_token": writ,
        "token_type": if dpop { "DPoP" } else { "Bearer" },
        "expires_in": ttl.as_secs(),
        "authorization_details": grants,
    });
    if exchanged {
        body["issued_token_type"] = json!(ACCESS_TOKEN_TYPE);
    }
    if let Some(scope) = scope {
        body["scope"] = json!(scope);
    }
    let mut response = (StatusCode::OK, axum::Json(body)).into_response();
    response
        .headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
        .headers_mut()
        .insert(header::PRAGMA, HeaderValue::from_static("no-cache"));
    response
}

/// Records a mint; in strict audit mode a writ that cannot be audited is not issued.
pub(super) async fn audit_mint(
    gw: &Gateway,
    tenant: &str,
    agent: &str,
    token_id: &str,
    operation: &str,
    detail: serde_json::Value,
) -> Result<(), OAuthError> {
    let mut record = crate::audit::record_at(writ_audit::Kind::WritMinted, gw.clock.now());
    record.tenant = Some(tenant.to_string());
    record.agent = Some(agent.to_string());
    record.writ = Some(gw.audit.pseudonym(token_id));
    record.operation = Some(operation.to_string());
    record.status = Some(200);
    if let serde_json::Value::Object(map) = detail {
        record.detail = Some(map);
    }
    if gw.audit.record(record).await {
        Ok(())
    } else {
        Err(OAuthError::server(
            "the audit log cannot be written; no writ is issued until it can",
        ))
    }
}

/// Mints the writ `plan` states for `agent`; for an approved mint (`approval`), with the
/// approval block appended and the approval used, once.
pub(super) async fn minted(
    gw: &Gateway,
    agent: &writ_store::Agent,
    plan: &MintPlan,
    approval: Option<&ApprovalRecord>,
) -> Result<Response, OAuthError> {
    let ttl = Duration::from_secs(plan.ttl_secs);
    let keys = gw.keys();
    let minted = mint_verified(
        &keys.signing,
        &MintRequest {
            tenant: &agent.tenant,
            agent: &agent.name,
            ceiling: &agent.ceiling,
            grants: &plan.grants,
            ttl,
            max_ttl: gw.max_ttl,
            now: gw.clock.now(),
            cnf_jkt: plan.cnf_jkt.as_deref(),
            audience: plan.audience.as_deref(),
        },
    )
    .map_err(|e| OAuthError::invalid_details(e.to_string()))?;
    let claims = minted.writ().claims();
    let sealed = match approval {
        Some(record) => {
            let sealed = ciba::seal(gw, record, minted.text())?;
            ciba::use_once(gw, record, &claims.token_id).await?;
            Some(sealed)
        }
        None => None,
    };
    tracing::debug!(agent = %agent.name, tenant = %agent.tenant, writ = %gw.audit.pseudonym(&claims.token_id), ttl_secs = ttl.as_secs(), "writ minted");
    let detail = json!({"grants": plan.grants, "ttl_secs": ttl.as_secs(), "dpop_bound": plan.cnf_jkt.is_some(), "resource": plan.audience, "approval": approval.map(|r| &r.id)});
    audit_mint(
        gw,
        &agent.tenant,
        &agent.name,
        &claims.token_id,
        "client_credentials",
        detail,
    )
    .await?;
    let writ = match sealed {
        Some(sealed) => sealed,
        None => {
            // Its first use here is then a cache hit: no parse, no signature check.
            gw.writs.remember(&minted, gw.clock.now());
            minted.into_text()
        }
    };
    Ok(issued(
        writ,
        ttl,
        &plan.grants,
        false,
        plan.cnf_jkt.is_some(),
        plan.scope.as_deref(),
    ))
}
