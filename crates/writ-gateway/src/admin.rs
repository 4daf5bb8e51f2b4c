//! The admin API (`/admin/v1/…`), authenticated by writs holding a `writ:admin` grant,
//! and the public root key set at `/.well-known/writ-keys`.
//!
//! Admin requests go through the same extract and authenticate phases as the data plane;
//! authorization states `api("admin")`, `operation("admin")` and `admin_tenant(..)`: the
//! tenant acted on, or `"*"` for actions that reach every tenant.

use std::sync::Arc;

use axum::Router;
use axum::body::Body;
use axum::extract::{Path, Request, State};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use http::StatusCode;
use serde_json::json;
use writ_store::{RevocationNote, RevocationRecord};
use writ_token::{Api, Authorization, RequestFacts, Revocation, fingerprint, token_id_issued_at};

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
        .route("/admin/v1/revocations/{id}/lift", post(lift_revocation))
        .route("/admin/v1/keys/rotate", post(rotate_keys))
        .route("/admin/v1/keys/reload", post(reload_keys))
        .route("/admin/v1/usage/calls", get(usage_calls))
        .route("/admin/v1/usage", get(usage_counters))
        .route("/admin/v1/audit", get(audit_records))
        .route("/admin/v1/detections", get(detections))
        .route("/metrics", get(metrics))
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
    authorize::check_inline(gw, &writ, &facts)
}

async fn read_json<T: serde::de::DeserializeOwned>(body: Body) -> Result<T, GatewayError> {
    let bytes = accept::read_body(body, MAX_ADMIN_BODY).await?;
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
            Ok::<_, GatewayError>(tenant == gw.tenant || gw.store.tenant_has_agents(&tenant).await?)
        }
    };
    match r {
        Revocation::Agent { tenant, agent } => {
            if gw.store.agent(tenant, agent).await?.is_none() {
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

async fn post_revocation(State(gw): State<Arc<Gateway>>, req: Request) -> Response {
    let (parts, body) = req.into_parts();
    let outcome = async {
        accept::check_declared_length(&parts.headers, MAX_ADMIN_BODY)?;
        // Authenticate before reading the body; authorize once it says which tenant.
        let presented = extract::writ(&parts.headers)?;
        authenticate::verify(&gw, &presented)?;
        let request = revocation_request(read_json(body).await?)?;
        let revocation = &request.revocation;
        check_revocation(revocation)?;
        let by = admin(&gw, &parts, revocation.tenant())?;
        if !request.force {
            check_exists(&gw, revocation).await?;
        }
        let note = RevocationNote {
            at: unix_now(&gw),
            by: Some(by.agent().to_string()),
            reason: request.reason.clone(),
        };
        let id = gw.revoke(revocation, &note).await?;
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
        tracing::warn!(admin = by.agent(), id, kind = ?std::mem::discriminant(revocation), "revocation");
        let listed = gw
            .store
            .revocation_record(id)
            .await?
            .map(|r| listed(&gw, &r))
            .unwrap_or_default();
        Ok::<_, GatewayError>(
            (StatusCode::CREATED, axum::Json(json!({"revoked": listed}))).into_response(),
        )
    };
    outcome.await.unwrap_or_else(IntoResponse::into_response)
}

async fn list_revocations(State(gw): State<Arc<Gateway>>, req: Request) -> Response {
    let (parts, _) = req.into_parts();
    let outcome = async {
        admin(&gw, &parts, None)?;
        let all: Vec<_> = gw
            .store
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
async fn lift_revocation(
    State(gw): State<Arc<Gateway>>,
    Path(id): Path<String>,
    req: Request,
) -> Response {
    let (parts, _) = req.into_parts();
    let outcome = async {
        let presented = extract::writ(&parts.headers)?;
        authenticate::verify(&gw, &presented)?;
        let record = match id.parse::<i64>() {
            Ok(id) => gw.store.revocation_record(id).await?,
            Err(_) => None,
        };
        let Some(record) = record else {
            // Only an admin of every tenant learns that an id does not exist.
            admin(&gw, &parts, None)?;
            return Err(GatewayError::UnknownRevocation {
                id: id.parse().unwrap_or(-1),
            });
        };
        let by = admin(&gw, &parts, record.revocation.tenant())?;
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
        let lifted = gw.lift(&record.revocation, &note).await?;
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
            .store
            .revocation_record(record.id)
            .await?
            .map(|r| listed(&gw, &r))
            .unwrap_or_default();
        Ok::<_, GatewayError>(axum::Json(json!({"lifted": after})).into_response())
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
        let mut record = crate::audit::record_at(writ_audit::Kind::AdminChange, gw.clock.now());
        record.agent = Some(by.agent().to_string());
        record.operation = Some("rotate_root_key".to_string());
        record.status = Some(200);
        let mut detail = serde_json::Map::new();
        detail.insert("signing_kid".into(), json!(kid.0));
        record.detail = Some(detail);
        gw.audit.record(record).await;
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

/// Limit counters, filtered by `?scope=tenant=acme,agent=travel` (every pair must match).
async fn usage_counters(State(gw): State<Arc<Gateway>>, req: Request) -> Response {
    let (parts, _) = req.into_parts();
    let query: Vec<(String, String)> =
        serde_urlencoded::from_str(parts.uri.query().unwrap_or("")).unwrap_or_default();
    let scope = query
        .iter()
        .find(|(k, _)| k == "scope")
        .map(|(_, v)| v.as_str())
        .unwrap_or("");
    let mut filter = Vec::new();
    for pair in scope.split(',').filter(|p| !p.is_empty()) {
        match pair.split_once('=') {
            Some((f, v))
                if matches!(f, "tenant" | "agent" | "writ" | "upstream" | "model")
                    && !v.is_empty() =>
            {
                filter.push((f, v));
            }
            _ => {
                return GatewayError::InvalidRequest {
                    reason: format!(
                        "scope `{pair}` is not field=value with a field of tenant, agent, writ, upstream, model"
                    ),
                }
                .into_response();
            }
        }
    }
    let tenant = filter.iter().find(|(f, _)| *f == "tenant").map(|(_, v)| *v);
    if let Err(e) = admin(&gw, &parts, tenant) {
        return e.into_response();
    }
    match gw.limits.counters(&filter, gw.clock.now()).await {
        Ok(counters) => axum::Json(json!({"counters": counters})).into_response(),
        Err(e) => e.into_response(),
    }
}

/// Audit records, oldest first, filtered by `kind`, `tenant`, `agent`, `status` and
/// `since` (RFC 3339), `limit` (≤ 1000, default 100) at a time; `cursor` (from the last
/// page's `next_cursor`) continues after the record it names.
async fn audit_records(State(gw): State<Arc<Gateway>>, req: Request) -> Response {
    let (parts, _) = req.into_parts();
    audit_query(&gw, &parts, false)
        .await
        .unwrap_or_else(IntoResponse::into_response)
}

/// Detections, oldest first: the audit records of kind `detection` and the denied
/// requests a detector refused. Filters as for the audit records, plus `detector`.
async fn detections(State(gw): State<Arc<Gateway>>, req: Request) -> Response {
    let (parts, _) = req.into_parts();
    audit_query(&gw, &parts, true)
        .await
        .unwrap_or_else(IntoResponse::into_response)
}

/// Prometheus metrics: detections by detector and action, audit health, webhooks.
async fn metrics(State(gw): State<Arc<Gateway>>) -> Response {
    let mut text = String::new();
    gw.detections.prometheus(&mut text);
    if let Some(webhooks) = &gw.webhooks {
        use std::fmt::Write as _;
        text.push_str("# HELP writ_webhook_events_total Detection webhook events by outcome.\n");
        text.push_str("# TYPE writ_webhook_events_total counter\n");
        for (outcome, n) in [
            ("delivered", webhooks.delivered()),
            ("failed", webhooks.failed()),
            ("dropped", webhooks.dropped()),
        ] {
            let _ = writeln!(
                text,
                "writ_webhook_events_total{{outcome=\"{outcome}\"}} {n}"
            );
        }
    }
    (
        [(
            http::header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        text,
    )
        .into_response()
}

async fn audit_query(
    gw: &Gateway,
    parts: &http::request::Parts,
    detections_only: bool,
) -> Result<Response, GatewayError> {
    let outcome = async {
        let query: Vec<(String, String)> =
            serde_urlencoded::from_str(parts.uri.query().unwrap_or("")).map_err(|_| {
                GatewayError::InvalidRequest {
                    reason: "malformed query string".to_string(),
                }
            })?;
        let get = |k: &str| query.iter().find(|(n, _)| n == k).map(|(_, v)| v.as_str());
        for (name, _) in &query {
            let known = matches!(
                name.as_str(),
                "kind" | "tenant" | "agent" | "status" | "since" | "limit" | "cursor"
            ) || (detections_only && name == "detector");
            if !known {
                return Err(GatewayError::InvalidRequest {
                    reason: format!("unknown filter `{name}`"),
                });
            }
        }
        admin(gw, parts, get("tenant"))?;
        let limit = match get("limit") {
            None => 100,
            Some(l) => l
                .parse::<usize>()
                .ok()
                .filter(|n| (1..=1000).contains(n))
                .ok_or_else(|| GatewayError::InvalidRequest {
                    reason: "limit must be 1 to 1000".to_string(),
                })?,
        };
        let status = match get("status") {
            None => None,
            Some(s) => Some(s.parse::<u16>().map_err(|_| GatewayError::InvalidRequest {
                reason: "status must be an HTTP status code".to_string(),
            })?),
        };
        let since =
            match get("since") {
                None => None,
                Some(s) => Some(humantime::parse_rfc3339(s).map_err(|_| {
                    GatewayError::InvalidRequest {
                        reason: "since must be an RFC 3339 time such as 2026-11-23T00:00:00Z"
                            .to_string(),
                    }
                })?),
            };
        let cursor = match get("cursor") {
            None => None,
            Some(c) => {
                let (instance, seq) =
                    c.rsplit_once('/')
                        .ok_or_else(|| GatewayError::InvalidRequest {
                            reason: "cursor is not one this API returned".to_string(),
                        })?;
                let seq = seq
                    .parse::<u64>()
                    .map_err(|_| GatewayError::InvalidRequest {
                        reason: "cursor is not one this API returned".to_string(),
                    })?;
                Some((instance.to_string(), seq))
            }
        };
        let lines = gw
            .audit_export()
            .await
            .map_err(|_| GatewayError::AuditUnavailable)?;
        let mut page = Vec::new();
        let mut past_cursor = cursor.is_none();
        let mut next_cursor = None;
        for line in &lines {
            let Ok(record) = writ_audit::AuditRecord::from_line(line) else {
                continue; // checkpoint lines
            };
            if !past_cursor {
                if let Some((instance, seq)) = &cursor
                    && record.instance == *instance
                    && record.seq == *seq
                {
                    past_cursor = true;
                }
                continue;
            }
            let kind = serde_json::to_value(record.kind).unwrap_or_default();
            let keep = get("kind").is_none_or(|k| kind.as_str() == Some(k))
                && get("tenant").is_none_or(|t| record.tenant.as_deref() == Some(t))
                && get("agent").is_none_or(|a| record.agent.as_deref() == Some(a))
                && status.is_none_or(|s| record.status == Some(s))
                && since
                    .is_none_or(|t| humantime::parse_rfc3339(&record.time).is_ok_and(|at| at >= t));
            let detector = record
                .detail
                .as_ref()
                .and_then(|d| d.get("detector"))
                .and_then(|d| d.as_str());
            let keep = keep
                && (!detections_only || detector.is_some())
                && get("detector").is_none_or(|want| detector == Some(want));
            if !keep {
                continue;
            }
            if page.len() == limit {
                break;
            }
            next_cursor = Some(format!("{}/{}", record.instance, record.seq));
            page.push(serde_json::from_str::<serde_json::Value>(line).unwrap_or_default());
        }
        let more = page.len() == limit;
        Ok::<_, GatewayError>(
            axum::Json(json!({
                "records": page,
                "next_cursor": if more { next_cursor } else { None },
            }))
            .into_response(),
        )
    };
    outcome.await
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
