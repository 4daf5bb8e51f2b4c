//! The approval handlers of the admin API: listing and reading approvals, and a person's
//! decision on one. Two kinds of caller decide: an admin writ (the operator of every
//! tenant, or one tenant's admin) and an approver token (`wap_…`, one tenant's approver).
//! An approval of a tenant the caller does not decide for answers exactly as an unknown
//! id does (404 `approval_not_found`), so ids cannot be probed across tenants.

use std::sync::Arc;

use axum::Json;
use axum::extract::{Path, Request, State};
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use writ_store::{ApprovalFilter, ApprovalRecord, ApprovalStatus, ApproverRecord};
use writ_token::{Api, RequestFacts, VerifiedWrit, WritError};

use super::approvers::{APPROVER_TOKEN_PREFIX, approver_token_hash};
use super::schema::{ErrorBody, refusal};
use super::{admin, check_name, read_json};
use crate::approval::{self, Decider};
use crate::error::{ApprovalError, GatewayError};
use crate::gateway::Gateway;
use crate::pipeline::{authenticate, authorize, extract};

/// Most approvals in one listing.
const MAX_LIST: u64 = 1000;
/// Approvals in a listing when `limit` is not given.
const DEFAULT_LIST: u64 = 100;
/// Longest decision reason, in characters.
const MAX_REASON: usize = 500;

/// Query of `GET /admin/v1/approvals`: every filter given must match.
#[derive(Debug, Default, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub(crate) struct ApprovalQuery {
    /// Only approvals standing so: `pending` (not expired), `approved`, `denied`,
    /// `used`, `voided` or `expired`.
    #[param(value_type = Option<String>, pattern = "^(pending|approved|denied|used|voided|expired)$")]
    status: Option<String>,
    /// Only approvals of this tenant. An approver sees their own tenant's only; a tenant
    /// admin must name their tenant.
    tenant: Option<String>,
    /// Only approvals asked by this agent.
    agent: Option<String>,
    /// At most this many, newest first: 1 to 1000, 100 by default.
    #[param(value_type = Option<u16>, minimum = 1, maximum = 1000)]
    limit: Option<String>,
}

/// An approval as the people deciding it see it: what is asked, by whom, why, and where
/// it stands. Never the approval block or what it is made from.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct ApprovalView {
    /// `apr_…`.
    id: String,
    /// The tenant of the agent that asked.
    tenant: String,
    /// The agent that asked.
    agent: String,
    /// `request` (one data-plane request) or `mint` (a writ at the token endpoint).
    kind: String,
    /// `pending`, `approved`, `denied`, `used`, `voided` or `expired` (as of now).
    status: String,
    /// The approval rule's reason.
    reason: String,
    /// What is asked, secrets already redacted. Its text comes from the agent: show it
    /// inertly (escape control characters and markup).
    #[schema(value_type = Object)]
    summary: serde_json::Value,
    /// SHA-256 (hex) of the summary's canonical JSON.
    summary_digest: String,
    /// SHA-256 (hex) of the canonical request (or mint) the approval binds to.
    request_digest: String,
    /// Unix seconds.
    created_at: u64,
    /// Unix seconds.
    expires_at: u64,
    /// Who decided.
    decided_by: Option<String>,
    /// How they authenticated: `approver_token`, `admin_writ`, `passkey`, `operator`.
    decided_method: Option<String>,
    /// Unix seconds.
    decided_at: Option<u64>,
    /// Why, as they said it.
    decision_reason: Option<String>,
}

/// Approvals, newest first.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct ApprovalList {
    /// Newest first.
    approvals: Vec<ApprovalView>,
}

/// Body of `POST /admin/v1/approvals/{id}/approve` and `…/deny`.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct DecisionBody {
    /// Why, in the decider's words: 1 to 500 characters, no control characters. Shown
    /// to the agent when denied.
    #[schema(min_length = 1, max_length = 500)]
    reason: Option<String>,
}

fn view(r: ApprovalRecord, now: u64) -> ApprovalView {
    let status = r.status_at(now).as_str().to_string();
    // Stored as JSON by the gateway; read back as such, or as the text it is if not.
    let summary = serde_json::from_str(&r.summary).unwrap_or(serde_json::Value::String(r.summary));
    ApprovalView {
        id: r.id,
        tenant: r.tenant,
        agent: r.agent,
        kind: r.kind.as_str().to_string(),
        status,
        reason: r.reason,
        summary,
        summary_digest: r.summary_digest,
        request_digest: r.request_digest,
        created_at: r.created_at,
        expires_at: r.expires_at,
        decided_by: r.decided_by,
        decided_method: r.decided_method,
        decided_at: r.decided_at,
        decision_reason: r.decision_reason,
    }
}

fn invalid(reason: impl Into<String>) -> GatewayError {
    GatewayError::InvalidRequest {
        reason: reason.into(),
    }
}

/// Who is asking: an approver (by their token) or the holder of a writ.
enum Caller {
    Approver(ApproverRecord),
    Writ(Arc<VerifiedWrit>),
}

/// The approver token of `Authorization: Bearer wap_…`, if that is what was sent.
fn approver_token(parts: &http::request::Parts) -> Option<&str> {
    let value = parts
        .headers
        .get(http::header::AUTHORIZATION)?
        .to_str()
        .ok()?;
    let (scheme, token) = value.split_once(' ')?;
    let token = token.trim();
    (scheme.eq_ignore_ascii_case("bearer") && token.starts_with(APPROVER_TOKEN_PREFIX))
        .then_some(token)
}

/// Authenticates the caller: an approver token is looked up by its hash (401 when no
/// approver holds it: removed, or never issued); anything else must be a valid writ.
async fn caller(gw: &Gateway, parts: &http::request::Parts) -> Result<Caller, GatewayError> {
    if let Some(token) = approver_token(parts) {
        return match gw
            .store()
            .approver_by_token_hash(&approver_token_hash(token))
            .await?
        {
            Some(approver) => Ok(Caller::Approver(approver)),
            None => Err(GatewayError::UnknownApproverToken),
        };
    }
    let presented = extract::writ(&parts.headers)?;
    Ok(Caller::Writ(authenticate::verify(gw, &presented)?))
}

/// The facts of an admin action on `tenant` (`"*"`: every tenant).
fn admin_facts(parts: &http::request::Parts, tenant: &str) -> RequestFacts {
    let mut facts = RequestFacts::new(Api::Admin, "admin", parts.method.as_str(), parts.uri.path());
    facts.admin_tenant = Some(tenant.to_string());
    facts
}

/// How a writ decides approvals of `tenant`: as the operator of every tenant when its
/// admin grant has no tenant, as that tenant's admin when it names it; `None` when it may
/// not. The person is the writ's subject (the operator's name for a CLI-minted writ).
async fn writ_decider(
    gw: &Gateway,
    writ: &VerifiedWrit,
    parts: &http::request::Parts,
    tenant: &str,
) -> Result<Option<Decider>, GatewayError> {
    let now = gw.clock.now();
    // Probed without side effects; only the scope that holds is authorized for real
    // (a single-use writ is spent once).
    let scope = if writ.authorize(&admin_facts(parts, "*"), now).is_ok() {
        None
    } else {
        match writ.authorize(&admin_facts(parts, tenant), now) {
            Ok(_) => Some(tenant.to_string()),
            Err(WritError::Denied(_)) => return Ok(None),
            Err(e) => return Err(e.into()),
        }
    };
    let facts = admin_facts(parts, scope.as_deref().unwrap_or("*"));
    let by = authorize::check_inline(gw, writ, &facts).await?;
    Ok(Some(Decider {
        tenant: scope,
        person: by.agent().to_string(),
        method: "admin_writ",
    }))
}

/// The approval `id` and who the caller decides it as; 404 `approval_not_found` when it
/// is malformed, unknown, or of a tenant the caller does not decide for (one answer).
async fn approval_for(
    gw: &Gateway,
    parts: &http::request::Parts,
    id: &str,
) -> Result<(ApprovalRecord, Decider), GatewayError> {
    match caller(gw, parts).await? {
        Caller::Approver(approver) => {
            let record = approval::visible(gw, id, Some(&approver.tenant)).await?;
            let decider = Decider {
                tenant: Some(approver.tenant),
                person: approver.name,
                method: "approver_token",
            };
            Ok((record, decider))
        }
        Caller::Writ(writ) => {
            let record = approval::visible(gw, id, None).await?;
            match writ_decider(gw, &writ, parts, &record.tenant).await? {
                Some(decider) => Ok((record, decider)),
                None => Err(ApprovalError::Unknown { id: record.id }.into()),
            }
        }
    }
}

/// Approvals, newest first, filtered by `status`, `tenant`, `agent`; `limit` at most.
#[utoipa::path(
    get,
    path = "/admin/v1/approvals",
    tag = "approvals",
    security(("writ" = []), ("approver" = [])),
    params(ApprovalQuery),
    responses(
        (status = 200, description = "The approvals.", body = ApprovalList),
        (status = 400, description = refusal::INVALID, body = ErrorBody),
        (status = 401, description = refusal::UNAUTHENTICATED, body = ErrorBody),
        (status = 403, description = refusal::FORBIDDEN, body = ErrorBody),
        (status = 503, description = refusal::UNAVAILABLE, body = ErrorBody),
    )
)]
pub(super) async fn list(State(gw): State<Arc<Gateway>>, req: Request) -> Response {
    let (parts, _) = req.into_parts();
    listing(&gw, &parts)
        .await
        .unwrap_or_else(IntoResponse::into_response)
}

async fn listing(gw: &Gateway, parts: &http::request::Parts) -> Result<Response, GatewayError> {
    let query: ApprovalQuery = serde_urlencoded::from_str(parts.uri.query().unwrap_or(""))
        .map_err(|e| {
            invalid(format!(
                "{e}; the filters are status, tenant, agent and limit, each at most once"
            ))
        })?;
    let tenant = match caller(gw, parts).await? {
        Caller::Approver(approver) => {
            if query.tenant.as_ref().is_some_and(|t| *t != approver.tenant) {
                return Err(invalid(format!(
                    "an approver sees the approvals of their own tenant only: leave tenant out or set it to `{}`",
                    approver.tenant
                )));
            }
            Some(approver.tenant)
        }
        Caller::Writ(_) => {
            // The admin routes' own check: a tenant admin names their tenant.
            admin(gw, parts, query.tenant.as_deref()).await?;
            query.tenant.clone()
        }
    };
    if let Some(t) = &tenant {
        check_name("tenant", t)?;
    }
    if let Some(a) = &query.agent {
        check_name("agent", a)?;
    }
    let status = match &query.status {
        None => None,
        Some(s) => Some(ApprovalStatus::parse(s).ok_or_else(|| {
            invalid("status must be pending, approved, denied, used, voided or expired")
        })?),
    };
    let limit = match &query.limit {
        None => DEFAULT_LIST,
        Some(l) => l
            .parse::<u64>()
            .ok()
            .filter(|n| (1..=MAX_LIST).contains(n))
            .ok_or_else(|| invalid("limit must be 1 to 1000"))?,
    };
    if status == Some(ApprovalStatus::Expired) {
        // Those past expiry but not yet marked (the sweeper runs every few seconds) are
        // marked now, each with its record, so the listing holds every expired one.
        approval::sweep(gw).await;
    }
    let filter = ApprovalFilter {
        tenant,
        agent: query.agent,
        status,
        limit,
    };
    let now = approval::unix_now(gw);
    let approvals = gw
        .store()
        .approvals(&filter, now)
        .await?
        .into_iter()
        .map(|r| view(r, now))
        // A stored status may lag the clock: `pending` past expiry reads `expired`.
        .filter(|v| status.is_none_or(|s| v.status == s.as_str()))
        .collect();
    Ok(Json(ApprovalList { approvals }).into_response())
}

/// One approval.
#[utoipa::path(
    get,
    path = "/admin/v1/approvals/{id}",
    tag = "approvals",
    security(("writ" = []), ("approver" = [])),
    params(("id" = String, Path, description = "The approval's id (`apr_…`).")),
    responses(
        (status = 200, description = "The approval.", body = ApprovalView),
        (status = 401, description = refusal::UNAUTHENTICATED, body = ErrorBody),
        (status = 403, description = refusal::FORBIDDEN, body = ErrorBody),
        (status = 404, description = "No approval of this id that the caller decides for.", body = ErrorBody),
        (status = 503, description = refusal::UNAVAILABLE, body = ErrorBody),
    )
)]
pub(super) async fn get(
    State(gw): State<Arc<Gateway>>,
    Path(id): Path<String>,
    req: Request,
) -> Response {
    let (parts, _) = req.into_parts();
    let outcome = async {
        let (record, _) = approval_for(&gw, &parts, &id).await?;
        let now = approval::unix_now(&gw);
        Ok::<_, GatewayError>(Json(view(record, now)).into_response())
    };
    outcome.await.unwrap_or_else(IntoResponse::into_response)
}

/// Approves a pending approval: the request it holds may go through once.
#[utoipa::path(
    post,
    path = "/admin/v1/approvals/{id}/approve",
    tag = "approvals",
    security(("writ" = []), ("approver" = [])),
    params(("id" = String, Path, description = "The approval's id (`apr_…`).")),
    request_body = DecisionBody,
    responses(
        (status = 200, description = "The approval, approved.", body = ApprovalView),
        (status = 400, description = refusal::INVALID, body = ErrorBody),
        (status = 401, description = refusal::UNAUTHENTICATED, body = ErrorBody),
        (status = 403, description = refusal::FORBIDDEN, body = ErrorBody),
        (status = 404, description = "No approval of this id that the caller decides for.", body = ErrorBody),
        (status = 409, description = "The approval is not pending (decided, used, voided or expired).", body = ErrorBody),
        (status = 413, description = refusal::TOO_LARGE, body = ErrorBody),
        (status = 415, description = refusal::NOT_JSON, body = ErrorBody),
        (status = 503, description = refusal::UNAVAILABLE, body = ErrorBody),
    )
)]
pub(super) async fn approve(
    State(gw): State<Arc<Gateway>>,
    Path(id): Path<String>,
    req: Request,
) -> Response {
    decision(&gw, &id, req, true)
        .await
        .unwrap_or_else(IntoResponse::into_response)
}

/// Denies a pending approval: the request it holds is refused, with the reason.
#[utoipa::path(
    post,
    path = "/admin/v1/approvals/{id}/deny",
    tag = "approvals",
    security(("writ" = []), ("approver" = [])),
    params(("id" = String, Path, description = "The approval's id (`apr_…`).")),
    request_body = DecisionBody,
    responses(
        (status = 200, description = "The approval, denied.", body = ApprovalView),
        (status = 400, description = refusal::INVALID, body = ErrorBody),
        (status = 401, description = refusal::UNAUTHENTICATED, body = ErrorBody),
        (status = 403, description = refusal::FORBIDDEN, body = ErrorBody),
        (status = 404, description = "No approval of this id that the caller decides for.", body = ErrorBody),
        (status = 409, description = "The approval is not pending (decided, used, voided or expired).", body = ErrorBody),
        (status = 413, description = refusal::TOO_LARGE, body = ErrorBody),
        (status = 415, description = refusal::NOT_JSON, body = ErrorBody),
        (status = 503, description = refusal::UNAVAILABLE, body = ErrorBody),
    )
)]
pub(super) async fn deny(
    State(gw): State<Arc<Gateway>>,
    Path(id): Path<String>,
    req: Request,
) -> Response {
    decision(&gw, &id, req, false)
        .await
        .unwrap_or_else(IntoResponse::into_response)
}

/// Authenticates, finds the approval the caller decides for, reads the reason, decides.
async fn decision(
    gw: &Gateway,
    id: &str,
    req: Request,
    approve: bool,
) -> Result<Response, GatewayError> {
    let (parts, body) = req.into_parts();
    let (_, decider) = approval_for(gw, &parts, id).await?;
    let DecisionBody { reason } = read_json(&parts, body).await?;
    if let Some(r) = &reason {
        check_reason(r)?;
    }
    let decided = approval::decide(gw, id, &decider, approve, reason).await?;
    Ok(Json(view(decided, approval::unix_now(gw))).into_response())
}

/// Refuses a decision reason that is empty, longer than [`MAX_REASON`] characters, or
/// holds a control character (it is shown to people and agents as it is).
fn check_reason(reason: &str) -> Result<(), GatewayError> {
    if reason.trim().is_empty() {
        return Err(invalid(
            "reason is empty: leave it out, or say why in 1 to 500 characters",
        ));
    }
    if reason.chars().count() > MAX_REASON {
        return Err(invalid("reason must be at most 500 characters"));
    }
    if reason.chars().any(char::is_control) {
        return Err(invalid(
            "reason must be one line without control characters (newlines, tabs, escapes)",
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reasons_are_short_single_lines() {
        assert!(check_reason("looks fine").is_ok());
        assert!(check_reason(&"é".repeat(500)).is_ok());
        for bad in [
            "",
            "   ",
            &"x".repeat(501),
            "a\nb",
            "a\tb",
            "\u{1b}[2J",
            "bell\u{7}",
            "nul\u{0}",
            "del\u{7f}",
            "c1\u{9b}",
        ] {
            assert!(check_reason(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn only_bearer_wap_tokens_are_approver_tokens() {
        let parts = |value: &str| {
            let (parts, ()) = http::Request::builder()
                .header(http::header::AUTHORIZATION, value)
                .body(())
                .expect("request")
                .into_parts();
            parts
        };
        assert_eq!(approver_token(&parts("Bearer wap_abc")), Some("wap_abc"));
        assert_eq!(approver_token(&parts("bearer  wap_abc ")), Some("wap_abc"));
        assert_eq!(approver_token(&parts("Bearer writ_abc")), None);
        assert_eq!(approver_token(&parts("Basic wap_abc")), None);
        assert_eq!(approver_token(&parts("wap_abc")), None);
    }
}
