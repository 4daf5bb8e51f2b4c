//! The revocation handlers of the admin API: record a revocation (refusing one of
//! something that does not exist unless forced), list them with when, by whom and why, and
//! lift an agent's or tenant's.

use std::sync::Arc;

use axum::extract::{Path, Request, State};
use axum::response::{IntoResponse, Response};
use http::StatusCode;
use serde_json::json;
use writ_store::{RevocationNote, RevocationRecord};
use writ_token::{Revocation, token_id_issued_at};

use super::{MAX_ADMIN_BODY, admin, read_json};
use crate::error::GatewayError;
use crate::gateway::Gateway;
use crate::pipeline::{accept, authenticate, extract};

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

/// A revocation request: the revocation itself, plus `force` (record it even if what it
/// names does not exist) and `reason` (stored and listed).
struct RevocationRequest {
    revocation: Revocation,
    force: bool,
    reason: Option<String>,
}

/// Longest `reason`, in characters.
const MAX_REASON_CHARS: usize = 500;

fn revocation_request(
    mut body: serde_json::Map<String, serde_json::Value>,
) -> Result<RevocationRequest, GatewayError> {
    let bad = |reason: &str| GatewayError::InvalidRequest {
        reason: reason.to_string(),
    };
    let force = match body.remove("force") {
        None => false,
        Some(serde_json::Value::Bool(b)) => b,
        Some(_) => return Err(bad("force must be true or false")),
    };
    let reason = match body.remove("reason") {
        None | Some(serde_json::Value::Null) => None,
        Some(serde_json::Value::String(r))
            if !r.trim().is_empty()
                && r.chars().count() <= MAX_REASON_CHARS
                && !r.chars().any(char::is_control) =>
        {
            Some(r.trim().to_string())
        }
        Some(_) => {
            return Err(bad(
                "reason must be one line of text, 1 to 500 characters, without control characters",
            ));
        }
    };
    let revocation = serde_json::from_value(serde_json::Value::Object(body)).map_err(|e| {
        GatewayError::InvalidRequest {
            reason: format!(
                "{e}; a revocation is {{\"kind\": \"agent\", \"tenant\": …, \"agent\": …}}, \
                 {{\"kind\": \"tenant\", …}}, {{\"kind\": \"token_id\", …}}, \
                 {{\"kind\": \"revocation_id\", …}} or {{\"kind\": \"issued_before\", \"before\": <unix seconds>}}"
            ),
        }
    })?;
    Ok(RevocationRequest {
        revocation,
        force,
        reason,
    })
}

/// Refuses a revocation of something that does not exist: an unregistered agent, a
/// tenant without agents (other than the configured one), a token id that is not one, or
/// whose writ has expired or cannot have been issued yet. Block revocation ids cannot be
/// checked (they are not recorded) and the kill switch always has something to act on.
async fn check_exists(gw: &Gateway, r: &Revocation) -> Result<(), GatewayError> {
    const HINT: &str = "; send \"force\": true (writ revoke --force) to record it anyway";
    let missing = |what: String| {
        Err(GatewayError::NothingToRevoke {
            reason: format!("{what}{HINT}"),
        })
    };
    let tenant_exists = |tenant: &str| {
        let tenant = tenant.to_string();
        async move {
            Ok::<_, GatewayError>(tenant == gw.tenant || gw.store().tenant_has_agents(&tenant).await?)
        }
    };
    match r {
        Revocation::Agent { tenant, agent } => {
            if gw.store().agent(tenant, agent).await?.is_none() {
                return missing(format!("no agent {agent} in tenant {tenant}"));
            }
        }
        Revocation::Tenant { tenant }
        | Revocation::IssuedBefore {
            tenant: Some(tenant),
            ..
        } => {
            if !tenant_exists(tenant).await? {
                return missing(format!("no tenant {tenant} (no agent is registered in it)"));
            }
        }
        Revocation::TokenId { token_id } => {
            // The id is not repeated back: token ids never appear raw in responses.
            let Some(issued) = token_id_issued_at(token_id) else {
                return missing(
                    "nothing to revoke: this is not a token id writ issues (26 characters, \
                     as `writ token inspect` prints)"
                        .to_string(),
                );
            };
            let now = gw.clock.now();
            let slack = std::time::Duration::from_secs(1);
            if issued + gw.max_ttl + slack < now {
                return missing(format!(
                    "nothing to revoke: the writ with this token id was issued at {} and has \
                     expired (writs live at most {}s)",
                    humantime::format_rfc3339_seconds(issued),
                    gw.max_ttl.as_secs()
                ));
            }
            if issued > now + std::time::Duration::from_secs(60) {
                return missing(format!(
                    "nothing to revoke: no writ with this token id has been issued (its time, \
                     {}, is in the future)",
                    humantime::format_rfc3339_seconds(issued)
                ));
            }
        }
        Revocation::RevocationId { .. } | Revocation::IssuedBefore { tenant: None, .. } => {}
    }
    Ok(())
}

/// A revocation as the API shows it: its fields (a token id as its audit pseudonym,
/// `writ`), and when, by whom and why it was made and lifted.
fn listed(gw: &Gateway, r: &RevocationRecord) -> serde_json::Value {
    let time = |at: u64| {
        humantime::format_rfc3339_seconds(
            std::time::UNIX_EPOCH + std::time::Duration::from_secs(at),
        )
        .to_string()
    };
    let mut v = shown(gw, &r.revocation);
    if let Some(map) = v.as_object_mut() {
        map.insert("id".into(), json!(r.id));
        map.insert("revoked_at".into(), json!(time(r.revoked.at)));
        map.insert("revoked_by".into(), json!(r.revoked.by));
        map.insert("reason".into(), json!(r.revoked.reason));
        map.insert("in_force".into(), json!(r.lifted.is_none()));
        map.insert("liftable".into(), json!(r.revocation.is_liftable()));
        if let Some(lift) = &r.lifted {
            map.insert("lifted_at".into(), json!(time(lift.at)));
            map.insert("lifted_by".into(), json!(lift.by));
        }
    }
    v
}

/// A revocation's fields with a token id replaced by its pseudonym (`writ`).
fn shown(gw: &Gateway, r: &Revocation) -> serde_json::Value {
    let mut v = serde_json::to_value(r).unwrap_or_default();
    if let Some(map) = v.as_object_mut()
        && let Some(id) = map.remove("token_id")
    {
        map.insert(
            "writ".into(),
            json!(gw.audit.pseudonym(id.as_str().unwrap_or_default())),
        );
    }
    v
}

fn unix_now(gw: &Gateway) -> u64 {
    gw.clock
        .now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

pub(super) async fn post(State(gw): State<Arc<Gateway>>, req: Request) -> Response {
    let (parts, body) = req.into_parts();
    let outcome = async {
        accept::check_declared_length(&parts.headers, MAX_ADMIN_BODY)?;
        // Authenticate before reading the body; authorize once it says which tenant.
        let presented = extract::writ(&parts.headers)?;
        authenticate::verify(&gw, &presented)?;
        let request = revocation_request(read_json(body).await?)?;
        let revocation = &request.revocation;
        check_revocation(revocation)?;
        let by = admin(&gw, &parts, revocation.tenant()).await?;
        if !request.force {
            check_exists(&gw, revocation).await?;
        }
        let note = RevocationNote {
            at: unix_now(&gw),
            by: Some(by.agent().to_string()),
            reason: request.reason.clone(),
        };
        let (id, shared) = gw.revoke(revocation, &note).await?;
        let mut record = crate::audit::record_at(writ_audit::Kind::Revocation, gw.clock.now());
        record.tenant = revocation.tenant().map(str::to_string);
        record.agent = Some(by.agent().to_string());
        record.operation = Some("revoke".to_string());
        record.status = Some(201);
        let mut detail = serde_json::Map::new();
        // A token id is pseudonymized like every writ id; the rest is no secret.
        detail.insert("revocation".into(), shown(&gw, revocation));
        detail.insert("revocation_record".into(), json!(id));
        if let Some(reason) = &request.reason {
            detail.insert("reason".into(), json!(reason));
        }
        if request.force {
            detail.insert("forced".into(), json!(true));
        }
        record.detail = Some(detail);
        gw.audit.record(record).await;
        tracing::warn!(admin = by.agent(), id, revocation = %shown(&gw, revocation), "revocation");
        let listed = gw
            .store()
            .revocation_record(id)
            .await?
            .map(|r| listed(&gw, &r))
            .unwrap_or_default();
        Ok::<_, GatewayError>(
            (
                StatusCode::CREATED,
                axum::Json(json!({"revoked": listed, "other_instances": shared})),
            )
                .into_response(),
        )
    };
    outcome.await.unwrap_or_else(IntoResponse::into_response)
}

pub(super) async fn list(State(gw): State<Arc<Gateway>>, req: Request) -> Response {
    let (parts, _) = req.into_parts();
    let outcome = async {
        admin(&gw, &parts, None).await?;
        let all: Vec<_> = gw
            .store()
            .revocation_records()
            .await?
            .iter()
            .map(|r| listed(&gw, r))
            .collect();
        Ok::<_, GatewayError>(axum::Json(json!({"revocations": all})).into_response())
    };
    outcome.await.unwrap_or_else(IntoResponse::into_response)
}

/// Lifts an agent or tenant revocation by its id (`GET /admin/v1/revocations`): the
/// agent may be issued writs again and its unexpired writs work again, on every instance.
pub(super) async fn lift(
    State(gw): State<Arc<Gateway>>,
    Path(id): Path<String>,
    req: Request,
) -> Response {
    let (parts, _) = req.into_parts();
    let outcome = async {
        let presented = extract::writ(&parts.headers)?;
        authenticate::verify(&gw, &presented)?;
        let record = match id.parse::<i64>() {
            Ok(id) => gw.store().revocation_record(id).await?,
            Err(_) => None,
        };
        let Some(record) = record else {
            // Only an admin of every tenant learns that an id does not exist.
            admin(&gw, &parts, None).await?;
            return Err(GatewayError::UnknownRevocation {
                id: id.parse().unwrap_or(-1),
            });
        };
        let by = admin(&gw, &parts, record.revocation.tenant()).await?;
        if !record.revocation.is_liftable() {
            return Err(GatewayError::CannotLift {
                reason: "only agent and tenant revocations can be lifted; a writ's revocation \
                         (token id, block) and the kill switch are permanent, since the writs \
                         they cut off were reported revoked"
                    .to_string(),
            });
        }
        if let Some(lift) = &record.lifted {
            return Err(GatewayError::CannotLift {
                reason: format!(
                    "revocation {} was already lifted by {} at {}",
                    record.id,
                    lift.by.as_deref().unwrap_or("an operator"),
                    humantime::format_rfc3339_seconds(
                        std::time::UNIX_EPOCH + std::time::Duration::from_secs(lift.at)
                    )
                ),
            });
        }
        let note = RevocationNote {
            at: unix_now(&gw),
            by: Some(by.agent().to_string()),
            reason: None,
        };
        let (lifted, shared) = gw.lift(&record.revocation, &note).await?;
        let mut audit = crate::audit::record_at(writ_audit::Kind::Revocation, gw.clock.now());
        audit.tenant = record.revocation.tenant().map(str::to_string);
        audit.agent = Some(by.agent().to_string());
        audit.operation = Some("lift_revocation".to_string());
        audit.status = Some(200);
        let mut detail = serde_json::Map::new();
        detail.insert("revocation".into(), shown(&gw, &record.revocation));
        detail.insert("revocation_record".into(), json!(record.id));
        detail.insert("records_lifted".into(), json!(lifted));
        audit.detail = Some(detail);
        gw.audit.record(audit).await;
        tracing::warn!(admin = by.agent(), id = record.id, "revocation lifted");
        let after = gw
            .store()
            .revocation_record(record.id)
            .await?
            .map(|r| listed(&gw, &r))
            .unwrap_or_default();
        Ok::<_, GatewayError>(
            axum::Json(json!({"lifted": after, "other_instances": shared})).into_response(),
        )
    };
    outcome.await.unwrap_or_else(IntoResponse::into_response)
}
