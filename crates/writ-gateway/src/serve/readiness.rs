//! Readiness: whether this instance can serve now — its keys loaded, its store answering,
//! its audit sink taking writes, its limiter backend answering — each check named, with
//! what is wrong and where (`GET /readyz`, and the start-up log).
//!
//! `/healthz` says the process is alive; `/readyz` says a load balancer may send it
//! traffic. A failing check names the backend's kind and address (never a password), so
//! an operator knows which one to look at.

use std::future::Future;
use std::time::Duration;

use axum::extract::State;
use axum::response::{IntoResponse, Response};
use http::StatusCode;
use serde::Serialize;

use crate::gateway::Gateway;

/// How long one check may take before it counts as failed.
const CHECK_TIMEOUT: Duration = Duration::from_secs(2);

/// One readiness check's answer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub(crate) struct Check {
    /// What was checked: `keys`, `store`, `audit_sink`, `limiter`.
    pub(crate) name: &'static str,
    /// Whether it can serve.
    pub(crate) ok: bool,
    /// What it is and where; when not ok, what is wrong.
    pub(crate) detail: String,
}

/// Runs `probe` for at most [`CHECK_TIMEOUT`]: ok with `what`, or failed naming `what`
/// and why.
async fn check<E: std::fmt::Display>(
    name: &'static str,
    what: String,
    probe: impl Future<Output = Result<(), E>>,
) -> Check {
    let (ok, detail) = match tokio::time::timeout(CHECK_TIMEOUT, probe).await {
        Ok(Ok(())) => (true, what),
        Ok(Err(e)) => (false, format!("{what}: {e}")),
        Err(_) => (
            false,
            format!("{what}: no answer within {}s", CHECK_TIMEOUT.as_secs()),
        ),
    };
    Check { name, ok, detail }
}

/// Every check of `gw`, run at once.
pub(crate) async fn checks(gw: &Gateway) -> Vec<Check> {
    checks_with(gw, true).await
}

/// Every check of `gw`, run at once; the store only named, not asked, unless
/// `probe_store` (at start the gateway has just opened and migrated it, and a start-up
/// query would only contend with the first writes).
async fn checks_with(gw: &Gateway, probe_store: bool) -> Vec<Check> {
    let keys = gw.keys();
    let trusted = keys.trusted.iter().count();
    let keys = Check {
        name: "keys",
        ok: trusted > 0,
        detail: format!(
            "signing with key {}; {trusted} root key(s) trusted",
            keys.signing.kid().0
        ),
    };
    let store = gw.store();
    let sink = gw.audit.reader();
    let limiter = gw.limits.limiter();
    let limiter_what = match limiter {
        writ_limits::Limiter::Memory(_) => "memory (this instance)".to_string(),
        writ_limits::Limiter::Redis(_) => "Redis".to_string(),
    };
    let (store, sink, limiter) = tokio::join!(
        check("store", store.describe().to_string(), async {
            if probe_store {
                store.probe().await
            } else {
                Ok(())
            }
        }),
        check("audit_sink", sink.describe(), sink.probe()),
        check("limiter", limiter_what, limiter.probe()),
    );
    vec![keys, store, sink, limiter]
}

/// `GET /readyz`: 200 when every check passes, else 503; the body names each check
/// (`{"status": "ready" | "not_ready", "checks": {name: {"ok", "detail"}}}`).
pub(crate) async fn readyz(State(gw): State<std::sync::Arc<Gateway>>) -> Response {
    let checks = checks(&gw).await;
    let ready = checks.iter().all(|c| c.ok);
    let body: serde_json::Map<String, serde_json::Value> = checks
        .iter()
        .map(|c| {
            (
                c.name.to_string(),
                serde_json::json!({"ok": c.ok, "detail": c.detail}),
            )
        })
        .collect();
    let status = if ready {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    let json = serde_json::json!({
        "status": if ready { "ready" } else { "not_ready" },
        "checks": body,
    });
    (status, axum::Json(json)).into_response()
}

/// Logs each check once, at start: what the instance connected to, and loudly what it
/// cannot use.
pub(crate) async fn log_at_start(gw: &Gateway) {
    for c in checks_with(gw, false).await {
        if c.ok {
            tracing::info!(check = c.name, "{}", c.detail);
        } else {
            tracing::error!(
                check = c.name,
                "not ready: {} (GET /readyz answers 503 until it is)",
                c.detail
            );
        }
    }
}
