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
use serde_json::json;
use writ_token::{Api, Authorization, RequestFacts, fingerprint};

use crate::detect::brute_force;
use crate::error::GatewayError;
use crate::gateway::Gateway;
use crate::pipeline::{accept, authenticate, authorize, extract};

mod revocations;

/// Largest admin request body.
const MAX_ADMIN_BODY: usize = 64 * 1024;

/// Admin routes and the key set.
pub(crate) fn routes(gw: Arc<Gateway>) -> Router {
    Router::new()
        .route(
            "/admin/v1/revocations",
            post(revocations::post).get(revocations::list),
        )
        .route("/admin/v1/revocations/{id}/lift", post(revocations::lift))
        .route("/admin/v1/keys/rotate", post(rotate_keys))
        .route("/admin/v1/unlock", post(unlock_client))
        .route("/admin/v1/keys/reload", post(reload_keys))
        .route("/admin/v1/keys/retire", post(retire_key))
        .route("/admin/v1/usage/calls", get(usage_calls))
        .route("/admin/v1/usage", get(usage_counters))
        .route("/admin/v1/audit", get(audit_records))
        .route("/admin/v1/detections", get(detections))
        // Before authentication: an admin writ sent in clear text is exposed whatever
        // the answer, so a listener that allows no admin API says so first.
        .route_layer(axum::middleware::from_fn_with_state(gw.clone(), admin_gate))
        .route("/metrics", get(metrics))
        .route("/.well-known/writ-keys", get(writ_keys))
        .with_state(gw)
}

/// Refuses every admin route with [`GatewayError::AdminApiDisabled`] where the config
/// does not allow the admin API on this listener (see `Config::admin_api_allowed`).
async fn admin_gate(
    State(gw): State<Arc<Gateway>>,
    req: Request,
    next: axum::middleware::Next,
) -> Response {
    if gw.admin_api {
        next.run(req).await
    } else {
        GatewayError::AdminApiDisabled.into_response()
    }
}

/// Authenticates the request's writ and authorizes an admin action on `tenant`
/// (`None`: every tenant).
async fn admin(
    gw: &Gateway,
    req: &http::request::Parts,
    tenant: Option<&str>,
) -> Result<Authorization, GatewayError> {
    let presented = extract::writ(&req.headers)?;
    let writ = authenticate::verify(gw, &presented)?;
    let mut facts = RequestFacts::new(Api::Admin, "admin", req.method.as_str(), req.uri.path());
    facts.admin_tenant = Some(tenant.unwrap_or("*").to_string());
    authorize::check_inline(gw, &writ, &facts).await
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

/// Records an admin change by the operator `by` names (the admin writ's subject).
async fn record_admin_change(
    gw: &Gateway,
    by: &Authorization,
    operation: &str,
    detail: serde_json::Map<String, serde_json::Value>,
) {
    let mut record = crate::audit::record_at(writ_audit::Kind::AdminChange, gw.clock.now());
    record.tenant = Some(by.tenant().to_string());
    record.agent = Some(by.agent().to_string());
    record.writ = Some(gw.audit.pseudonym(by.token_id()));
    record.operation = Some(operation.to_string());
    record.status = Some(200);
    record.detail = Some(detail);
    gw.audit.record(record).await;
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

async fn rotate_keys(State(gw): State<Arc<Gateway>>, req: Request) -> Response {
    let (parts, _) = req.into_parts();
    let outcome = async {
        let by = admin(&gw, &parts, None).await?;
        let before = trusted_kids(&gw);
        let kid = gw.data.rotate_root_key()?;
        gw.reload_keys()?;
        tracing::warn!(admin = by.agent(), signing_kid = kid.0, "root key rotated");
        record_admin_change(&gw, &by, "rotate_root_key", key_detail(&gw, &before)).await;
        Ok::<_, GatewayError>(axum::Json(json!({"signing_kid": kid.0})).into_response())
    };
    outcome.await.unwrap_or_else(IntoResponse::into_response)
}

/// `POST /admin/v1/keys/retire {"kid": n}`: stops trusting root key `n` now (its private
/// half is deleted); the signing key cannot be retired.
async fn retire_key(State(gw): State<Arc<Gateway>>, req: Request) -> Response {
    #[derive(serde::Deserialize)]
    #[serde(deny_unknown_fields)]
    struct Retire {
        kid: u32,
    }
    let (parts, body) = req.into_parts();
    let outcome = async {
        accept::check_declared_length(&parts.headers, MAX_ADMIN_BODY)?;
        let by = admin(&gw, &parts, None).await?;
        let Retire { kid } = read_json(body).await?;
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
        record_admin_change(&gw, &by, "retire_root_key", detail).await;
        Ok::<_, GatewayError>(
            axum::Json(json!({"retired_kid": kid, "signing_kid": gw.keys().signing.kid().0}))
                .into_response(),
        )
    };
    outcome.await.unwrap_or_else(IntoResponse::into_response)
}

/// Body of `POST /admin/v1/unlock`.
#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct Unlock {
    /// The client id as the token endpoint sees it (`agent` or `tenant/agent`).
    client_id: String,
    /// An address whose own count to clear too (admins of every tenant only).
    #[serde(default)]
    address: Option<std::net::IpAddr>,
}

/// Clears a client id's failed authentications and lock-outs at the token endpoint, from
/// every address, on every instance sharing the limiter backend. Audited.
async fn unlock_client(State(gw): State<Arc<Gateway>>, req: Request) -> Response {
    let (parts, body) = req.into_parts();
    let outcome = async {
        accept::check_declared_length(&parts.headers, MAX_ADMIN_BODY)?;
        let presented = extract::writ(&parts.headers)?;
        authenticate::verify(&gw, &presented)?;
        let Unlock { client_id, address } = read_json(body).await?;
        if client_id.is_empty() || client_id.len() > 257 || client_id.chars().any(char::is_control)
        {
            return Err(GatewayError::InvalidRequest {
                reason: "client_id must be 1 to 257 characters, without control characters"
                    .to_string(),
            });
        }
        let tenant = client_id
            .split_once('/')
            .map_or(gw.tenant.as_str(), |(tenant, _)| tenant);
        let by = admin(&gw, &parts, Some(tenant)).await?;
        // An address's count covers every tenant's clients tried from it: only an admin of
        // every tenant clears it along with the client's.
        let every_tenant = match (admin(&gw, &parts, None).await, address) {
            (Err(e), Some(_)) => return Err(e),
            (every, _) => every.is_ok(),
        };
        let addresses = brute_force::strikes_unlock_client(&gw, &client_id, every_tenant, address)
            .await
            .map_err(|e| {
                tracing::warn!(error = %e, "unlock: limit backend unavailable");
                GatewayError::LimiterUnavailable
            })?;
        let mut record = crate::audit::record_at(writ_audit::Kind::AdminChange, gw.clock.now());
        record.tenant = Some(tenant.to_string());
        record.agent = Some(by.agent().to_string());
        record.operation = Some("unlock_client".to_string());
        record.status = Some(200);
        let mut detail = serde_json::Map::new();
        detail.insert("client_id".into(), json!(client_id));
        // Addresses are pseudonymized as in every record (when so configured).
        let from: Vec<String> = addresses
            .iter()
            .filter_map(|ip| gw.audit.client_pseudonym(*ip))
            .collect();
        detail.insert("addresses".into(), json!(from));
        record.detail = Some(detail);
        gw.audit.record(record).await;
        tracing::warn!(
            admin = by.agent(),
            client_id,
            addresses = addresses.len(),
            "client unlocked"
        );
        Ok::<_, GatewayError>(
            axum::Json(json!({"unlocked": client_id, "addresses": addresses.len()}))
                .into_response(),
        )
    };
    outcome.await.unwrap_or_else(IntoResponse::into_response)
}

async fn reload_keys(State(gw): State<Arc<Gateway>>, req: Request) -> Response {
    let (parts, _) = req.into_parts();
    let outcome = async {
        let by = admin(&gw, &parts, None).await?;
        let before = trusted_kids(&gw);
        let kid = gw.reload_keys()?;
        record_admin_change(&gw, &by, "reload_root_keys", key_detail(&gw, &before)).await;
        Ok::<_, GatewayError>(axum::Json(json!({"signing_kid": kid.0})).into_response())
    };
    outcome.await.unwrap_or_else(IntoResponse::into_response)
}

/// The latest metered calls with their usage and cost, oldest first.
async fn usage_calls(State(gw): State<Arc<Gateway>>, req: Request) -> Response {
    let (parts, _) = req.into_parts();
    match admin(&gw, &parts, None).await {
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
    if let Err(e) = admin(&gw, &parts, tenant).await {
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
        admin(gw, parts, get("tenant")).await?;
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
