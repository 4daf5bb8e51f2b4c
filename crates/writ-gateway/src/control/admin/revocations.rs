//! The revocation handlers of the admin API: record a revocation (refusing one of
//! something that does not exist unless forced), list them with when, by whom and why, and
//! lift an agent's or tenant's.

use std::sync::Arc;

use axum::Json;
use axum::extract::{Path, Request, State};
use axum::response::{IntoResponse, Response};
use http::StatusCode;
use serde::{Deserialize, Serialize};
use serde_json::json;
use utoipa::ToSchema;
use writ_store::{RevocationNote, RevocationRecord};
use writ_token::{Revocation, token_id_issued_at};

use super::schema::{ErrorBody, refusal};
use super::{admin, read_json};
use crate::error::GatewayError;
use crate::gateway::{Gateway, Shared};
use crate::pipeline::{authenticate, extract};

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

/// Longest `reason`, in characters.
const MAX_REASON_CHARS: usize = 500;

/// Body of `POST /admin/v1/revocations`: what to revoke (by `kind`), and `force` (record
/// it even if what it names does not exist) and `reason` (stored and listed) for any kind.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub(crate) enum RevocationRequest {
    /// One writ by its token id (as `writ token inspect` prints), with every writ
    /// attenuated from it.
    TokenId {
        /// The writ's `token_id` claim.
        #[schema(min_length = 1, max_length = 256)]
        token_id: String,
        /// Record it even if what it names does not exist.
        #[serde(default)]
        force: bool,
        /// Why, in the operator's words: one line, 1 to 500 characters.
        #[serde(default)]
        #[schema(min_length = 1, max_length = 500)]
        reason: Option<String>,
    },
    /// Every writ holding a block with this revocation id.
    RevocationId {
        /// Hex revocation id of a block.
        #[schema(min_length = 2, max_length = 256, pattern = "^([0-9a-fA-F]{2})+$")]
        revocation_id: String,
        /// Record it even if what it names does not exist.
        #[serde(default)]
        force: bool,
        /// Why, in the operator's words: one line, 1 to 500 characters.
        #[serde(default)]
        #[schema(min_length = 1, max_length = 500)]
        reason: Option<String>,
    },
    /// Every writ issued to an agent.
    Agent {
        /// The agent's tenant.
        #[schema(min_length = 1, max_length = 256)]
        tenant: String,
        /// The agent.
        #[schema(min_length = 1, max_length = 256)]
        agent: String,
        /// Record it even if what it names does not exist.
        #[serde(default)]
        force: bool,
        /// Why, in the operator's words: one line, 1 to 500 characters.
        #[serde(default)]
        #[schema(min_length = 1, max_length = 500)]
        reason: Option<String>,
    },
    /// Every writ of a tenant.
    Tenant {
        /// The tenant.
        #[schema(min_length = 1, max_length = 256)]
        tenant: String,
        /// Record it even if what it names does not exist.
        #[serde(default)]
        force: bool,
        /// Why, in the operator's words: one line, 1 to 500 characters.
        #[serde(default)]
        #[schema(min_length = 1, max_length = 500)]
        reason: Option<String>,
    },
    /// The kill switch: every writ issued before a time, in one tenant or in all.
    IssuedBefore {
        /// Limit to one tenant; all tenants when left out.
        #[serde(default)]
        #[schema(min_length = 1, max_length = 256)]
        tenant: Option<String>,
        /// Unix seconds: writs issued strictly before this are revoked.
        before: u64,
        /// Record it even if what it names does not exist.
        #[serde(default)]
        force: bool,
        /// Why, in the operator's words: one line, 1 to 500 characters.
        #[serde(default)]
        #[schema(min_length = 1, max_length = 500)]
        reason: Option<String>,
    },
}
impl RevocationRequest {
    /// The revocation, `force` and the reason (trimmed), the reason checked.
    fn into_parts(self) -> Result<(Revocation, bool, Option<String>), GatewayError> {
        let (revocation, force, reason) = match self {
            RevocationRequest::TokenId {
                token_id,
                force,
                reason,
            } => (Revocation::TokenId { token_id }, force, reason),
            RevocationRequest::RevocationId {
                revocation_id,
                force,
                reason,
            } => (Revocation::RevocationId { revocation_id }, force, reason),
            RevocationRequest::Agent {
                tenant,
                agent,
                force,
                reason,
            } => (Revocation::Agent { tenant, agent }, force, reason),
            RevocationRequest::Tenant {
                tenant,
                force,
                reason,
            } => (Revocation::Tenant { tenant }, force, reason),
            RevocationRequest::IssuedBefore {
                tenant,
                before,
                force,
                reason,
            } => (Revocation::IssuedBefore { tenant, before }, force, reason),
        };
        let reason = match reason {
            None => None,
            Some(r)
                if !r.trim().is_empty()
                    && r.chars().count() <= MAX_REASON_CHARS
                    && !r.chars().any(char::is_control) =>
            {
                Some(r.trim().to_string())
            }
            Some(_) => {
                return Err(GatewayError::InvalidRequest {
                    reason: "reason must be one line of text, 1 to 500 characters, without \
                             control characters"
                        .to_string(),
                });
            }
        };
        Ok((revocation, force, reason))
    }
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
            Ok::<_, GatewayError>(
                tenant == gw.tenant || gw.store().tenant_has_agents(&tenant).await?,
            )
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

/// A revocation as the API shows it: its fields, with a token id replaced by its audit
/// pseudonym (`writ`): token ids never appear raw in answers.
#[derive(Debug, Serialize, ToSchema)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub(crate) enum ShownRevocation {
    /// One writ and every writ attenuated from it.
    TokenId {
        /// The audit pseudonym of the writ's token id.
        writ: String,
    },
    /// Every writ holding a block with this revocation id.
    RevocationId {
        /// Hex revocation id of a block.
        revocation_id: String,
    },
    /// Every writ issued to an agent.
    Agent {
        /// The agent's tenant.
        tenant: String,
        /// The agent.
        agent: String,
    },
    /// Every writ of a tenant.
    Tenant {
        /// The tenant.
        tenant: String,
    },
    /// The kill switch: every writ issued before a time, in one tenant or in all.
    IssuedBefore {
        /// The one tenant; every tenant when absent.
        #[serde(skip_serializing_if = "Option::is_none")]
        tenant: Option<String>,
        /// Unix seconds: writs issued strictly before this are revoked.
        before: u64,
    },
}

/// A recorded revocation: what, and when, by whom and why it was made and lifted.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct ListedRevocation {
    /// What is revoked.
    #[serde(flatten)]
    revocation: ShownRevocation,
    /// Its id, which `lift` takes.
    id: i64,
    /// When it was recorded (RFC 3339).
    revoked_at: String,
    /// The operator who recorded it.
    revoked_by: Option<String>,
    /// Why, in the operator's words.
    reason: Option<String>,
    /// Whether it is in force (not lifted).
    in_force: bool,
    /// Whether it may be lifted (agent and tenant revocations).
    liftable: bool,
    /// When it was lifted (RFC 3339), if it was.
    #[serde(skip_serializing_if = "Option::is_none")]
    lifted_at: Option<String>,
    /// The operator who lifted it, if it was.
    #[serde(skip_serializing_if = "Option::is_none")]
    lifted_by: Option<String>,
}

/// Whether a revocation or lift made here reached the other gateway instances.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub(crate) enum OtherInstances {
    /// No Redis is configured: this instance is the only one.
    SingleInstance,
    /// Published to every instance.
    Shared,
    /// Publishing failed: in force here; the others read it when they reconnect.
    Failed,
}

impl From<Shared> for OtherInstances {
    fn from(shared: Shared) -> Self {
        match shared {
            Shared::SingleInstance => OtherInstances::SingleInstance,
            Shared::Shared => OtherInstances::Shared,
            Shared::Failed => OtherInstances::Failed,
        }
    }
}

/// A revocation just recorded.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct Revoked {
    /// The revocation as listed.
    revoked: ListedRevocation,
    /// Whether the other instances were told.
    other_instances: OtherInstances,
}

/// A revocation just lifted.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct Lifted {
    /// The revocation as listed, now out of force.
    lifted: ListedRevocation,
    /// Whether the other instances were told.
    other_instances: OtherInstances,
}

/// Every recorded revocation.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct RevocationList {
    /// Oldest first, lifted ones included.
    revocations: Vec<ListedRevocation>,
}

fn rfc3339(at: u64) -> String {
    humantime::format_rfc3339_seconds(std::time::UNIX_EPOCH + std::time::Duration::from_secs(at))
        .to_string()
}

fn listed(gw: &Gateway, r: &RevocationRecord) -> ListedRevocation {
    ListedRevocation {
        revocation: shown(gw, &r.revocation),
        id: r.id,
        revoked_at: rfc3339(r.revoked.at),
        revoked_by: r.revoked.by.clone(),
        reason: r.revoked.reason.clone(),
        in_force: r.lifted.is_none(),
        liftable: r.revocation.is_liftable(),
        lifted_at: r.lifted.as_ref().map(|l| rfc3339(l.at)),
        lifted_by: r.lifted.as_ref().and_then(|l| l.by.clone()),
    }
}

/// A revocation's fields with a token id replaced by its pseudonym (`writ`).
fn shown(gw: &Gateway, r: &Revocation) -> ShownRevocation {
    match r.clone() {
        Revocation::TokenId { token_id } => ShownRevocation::TokenId {
            writ: gw.audit.pseudonym(&token_id),
        },
        Revocation::RevocationId { revocation_id } => {
            ShownRevocation::RevocationId { revocation_id }
        }
        Revocation::Agent { tenant, agent } => ShownRevocation::Agent { tenant, agent },
        Revocation::Tenant { tenant } => ShownRevocation::Tenant { tenant },
        Revocation::IssuedBefore { tenant, before } => {
            ShownRevocation::IssuedBefore { tenant, before }
        }
    }
}

/// [`shown`] as JSON, for audit records and the log.
fn shown_json(gw: &Gateway, r: &Revocation) -> serde_json::Value {
    serde_json::to_value(shown(gw, r)).unwrap_or_default()
}

/// Looks up a revocation just written, as listed.
async fn listed_by_id(gw: &Gateway, id: i64) -> Result<ListedRevocation, GatewayError> {
    let record = gw.store().revocation_record(id).await?;
    record
        .map(|r| listed(gw, &r))
        .ok_or(GatewayError::UnknownRevocation { id })
}

fn unix_now(gw: &Gateway) -> u64 {
    gw.clock
        .now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// Records a revocation, in force on every instance at once. It must name something
/// that exists unless `force` is set. Revocations of one tenant's agents or writs need an
/// admin of that tenant; the others an admin of every tenant.
#[utoipa::path(
    post,
    path = "/admin/v1/revocations",
    tag = "revocations",
    security(("writ" = [])),
    request_body = RevocationRequest,
    responses(
        (status = 201, description = "The revocation is recorded and in force.", body = Revoked),
        (status = 400, description = refusal::INVALID, body = ErrorBody),
        (status = 401, description = refusal::UNAUTHENTICATED, body = ErrorBody),
        (status = 403, description = refusal::FORBIDDEN, body = ErrorBody),
        (status = 404, description = "Nothing to revoke: what it names does not exist \
            (send `force` to record it anyway).", body = ErrorBody),
        (status = 413, description = refusal::TOO_LARGE, body = ErrorBody),
        (status = 415, description = refusal::NOT_JSON, body = ErrorBody),
        (status = 503, description = refusal::UNAVAILABLE, body = ErrorBody),
    )
)]
pub(super) async fn post(State(gw): State<Arc<Gateway>>, req: Request) -> Response {
    let (parts, body) = req.into_parts();
    let outcome = async {
        // Authenticate before reading the body; authorize once it says which tenant.
        let presented = extract::writ(&parts.headers)?;
        authenticate::verify(&gw, &presented)?;
        let body: serde_json::Value = read_json(&parts, body).await?;
        let request: RevocationRequest =
            serde_json::from_value(body).map_err(|e| GatewayError::InvalidRequest {
                reason: format!(
                    "{e}; a revocation is {{\"kind\": \"agent\", \"tenant\": …, \"agent\": …}}, \
                     {{\"kind\": \"tenant\", …}}, {{\"kind\": \"token_id\", …}}, \
                     {{\"kind\": \"revocation_id\", …}} or {{\"kind\": \"issued_before\", \"before\": <unix seconds>}}, \
                     with optional \"force\" and \"reason\""
                ),
            })?;
        let (revocation, force, reason) = request.into_parts()?;
        let revocation = &revocation;
        check_revocation(revocation)?;
        let by = admin(&gw, &parts, revocation.tenant()).await?;
        if !force {
            check_exists(&gw, revocation).await?;
        }
        let note = RevocationNote {
            at: unix_now(&gw),
            by: Some(by.agent().to_string()),
            reason: reason.clone(),
        };
        let (id, shared) = gw.revoke(revocation, &note).await?;
        let mut record = crate::audit::record_at(writ_audit::Kind::Revocation, gw.clock.now());
        record.tenant = revocation.tenant().map(str::to_string);
        record.agent = Some(by.agent().to_string());
        record.operation = Some("revoke".to_string());
        record.status = Some(201);
        let mut detail = serde_json::Map::new();
        // A token id is pseudonymized like every writ id; the rest is no secret.
        let what = shown_json(&gw, revocation);
        detail.insert("revocation".into(), what.clone());
        detail.insert("revocation_record".into(), json!(id));
        if let Some(reason) = &reason {
            detail.insert("reason".into(), json!(reason));
        }
        if force {
            detail.insert("forced".into(), json!(true));
        }
        record.detail = Some(detail);
        gw.audit.record(record).await;
        tracing::warn!(admin = by.agent(), id, revocation = %what, "revocation");
        let revoked = Revoked {
            revoked: listed_by_id(&gw, id).await?,
            other_instances: shared.into(),
        };
        Ok::<_, GatewayError>((StatusCode::CREATED, Json(revoked)).into_response())
    };
    outcome.await.unwrap_or_else(IntoResponse::into_response)
}

/// Every recorded revocation, lifted ones included. Every tenant's admin only.
#[utoipa::path(
    get,
    path = "/admin/v1/revocations",
    tag = "revocations",
    security(("writ" = [])),
    responses(
        (status = 200, description = "The revocations.", body = RevocationList),
        (status = 401, description = refusal::UNAUTHENTICATED, body = ErrorBody),
        (status = 403, description = refusal::FORBIDDEN, body = ErrorBody),
        (status = 503, description = refusal::UNAVAILABLE, body = ErrorBody),
    )
)]
pub(super) async fn list(State(gw): State<Arc<Gateway>>, req: Request) -> Response {
    let (parts, _) = req.into_parts();
    let outcome = async {
        admin(&gw, &parts, None).await?;
        let revocations = gw
            .store()
            .revocation_records()
            .await?
            .iter()
            .map(|r| listed(&gw, r))
            .collect();
        Ok::<_, GatewayError>(Json(RevocationList { revocations }).into_response())
    };
    outcome.await.unwrap_or_else(IntoResponse::into_response)
}

/// Lifts an agent or tenant revocation by its id (`GET /admin/v1/revocations`): the
/// agent may be issued writs again and its unexpired writs work again, on every instance.
#[utoipa::path(
    post,
    path = "/admin/v1/revocations/{id}/lift",
    tag = "revocations",
    security(("writ" = [])),
    params(("id" = i64, Path, description = "The revocation's id, as listed.")),
    responses(
        (status = 200, description = "The revocation is lifted.", body = Lifted),
        (status = 401, description = refusal::UNAUTHENTICATED, body = ErrorBody),
        (status = 403, description = refusal::FORBIDDEN, body = ErrorBody),
        (status = 404, description = "No revocation has this id.", body = ErrorBody),
        (status = 409, description = "It cannot be lifted: it is permanent (a writ's, or \
            the kill switch), or it was already lifted.", body = ErrorBody),
        (status = 503, description = refusal::UNAVAILABLE, body = ErrorBody),
    )
)]
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
        detail.insert("revocation".into(), shown_json(&gw, &record.revocation));
        detail.insert("revocation_record".into(), json!(record.id));
        detail.insert("records_lifted".into(), json!(lifted));
        audit.detail = Some(detail);
        gw.audit.record(audit).await;
        tracing::warn!(admin = by.agent(), id = record.id, "revocation lifted");
        let lifted = Lifted {
            lifted: listed_by_id(&gw, record.id).await?,
            other_instances: shared.into(),
        };
        Ok::<_, GatewayError>(Json(lifted).into_response())
    };
    outcome.await.unwrap_or_else(IntoResponse::into_response)
}
