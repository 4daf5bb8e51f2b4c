//! The console (`/console`): server-rendered pages for the people who oversee agents —
//! pending approvals to approve or deny, live usage, the audit log and its verification,
//! the detections feed, agents to stop and upstreams by their credentials' fingerprints —
//! behind a session cookie (opened by a passkey, an admin writ or an approver token),
//! CSRF tokens on every state change, and a strict Content-Security-Policy on every
//! response. No build step, no CDN: templates are compiled in (askama) and the stylesheet
//! and script are embedded in the binary.

mod agents;
mod approvals;
mod assets;
mod audit;
mod ceiling;
mod detections;
mod enrol;
mod live_writs;
pub(crate) mod passkey;
mod passkey_sign_in;
mod paths;
mod record_list;
mod refusal;
mod session;
mod signin;
mod state;
mod upstreams;
mod usage;
mod verification;
mod view;

use std::sync::Arc;

use axum::Router;
use axum::extract::Request;
use axum::middleware::Next;
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use http::HeaderValue;
use http::header;

use self::paths::{HOME as HOME_PATH, SESSION as SESSION_PATH, SIGN_IN as SIGN_IN_PATH};
use self::refusal::Refusal;
use self::state::Console;
use crate::gateway::Gateway;

/// Every console response's `Content-Security-Policy`: only the console's own script
/// and stylesheet, no inline code, no framing, forms posting back to the console only.
pub const CONTENT_SECURITY_POLICY: &str = "default-src 'self'; script-src 'self'; \
    style-src 'self'; img-src 'self' data:; frame-ancestors 'none'; form-action 'self'; \
    base-uri 'none'";

/// The console's routes, each response carrying the console's security headers.
pub(crate) fn routes(gw: Arc<Gateway>) -> Router {
    let console = Arc::new(Console {
        gw,
        live_writs: live_writs::LiveWrits::default(),
        verification: verification::VerificationCache::default(),
        usage: usage::metered::MeteredCalls::default(),
    });
    Router::new()
        .route("/console", get(home))
        .route("/console/", get(home))
        .route(SIGN_IN_PATH, get(signin::page))
        .route(SESSION_PATH, post(signin::sign_in))
        .route("/console/sign-out", post(signin::sign_out))
        .route("/console/enrol/{token}", get(enrol::page))
        .route("/console/enrol/{token}/options", post(enrol::options))
        .route("/console/enrol/{token}/finish", post(enrol::finish))
        .route("/console/passkey/options", post(passkey_sign_in::options))
        .route("/console/passkey/finish", post(passkey_sign_in::finish))
        .route(HOME_PATH, get(approvals::list))
        .route("/console/approvals/{id}", get(approvals::one))
        .route("/console/approvals/{id}/approve", post(approvals::approve))
        .route("/console/approvals/{id}/deny", post(approvals::deny))
        .route("/console/agents", get(agents::index))
        .route("/console/stop", post(agents::stop_all))
        .route("/console/stop-writ", post(agents::stop_writ))
        .route("/console/tenants/{tenant}/agents", get(agents::list))
        .route(
            "/console/tenants/{tenant}/agents/{agent}/stop",
            post(agents::stop_agent),
        )
        .route("/console/tenants/{tenant}/stop", post(agents::stop_tenant))
        .route("/console/upstreams", get(upstreams::index))
        .route("/console/tenants/{tenant}/upstreams", get(upstreams::list))
        .route("/console/audit", get(audit::index))
        .route("/console/tenants/{tenant}/audit", get(audit::tenant_page))
        .route("/console/detections", get(detections::index))
        .route("/console/detections/feed", get(detections::index_feed))
        .route(
            "/console/tenants/{tenant}/detections",
            get(detections::tenant_page),
        )
        .route(
            "/console/tenants/{tenant}/detections/feed",
            get(detections::tenant_feed),
        )
        .route("/console/usage", get(usage::index))
        .route("/console/tenants/{tenant}/usage", get(usage::page))
        .route("/console/tenants/{tenant}/usage/live", get(usage::live))
        .route("/console/assets/console.css", get(assets::stylesheet))
        .route("/console/assets/console.js", get(assets::script))
        .route("/console/assets/favicon.svg", get(assets::favicon))
        .route("/console/{*rest}", axum::routing::any(not_found))
        .method_not_allowed_fallback(not_allowed)
        .layer(axum::middleware::from_fn_with_state(
            console.clone(),
            console_gate,
        ))
        .with_state(console)
        .layer(axum::middleware::from_fn(security_headers))
}

async fn home() -> Response {
    Redirect::to(HOME_PATH).into_response()
}

async fn not_found() -> Response {
    Refusal::NotFound.into_response()
}

async fn not_allowed() -> Response {
    Refusal::MethodNotAllowed.into_response()
}

/// Refuses every console route where the admin API is not served (a plaintext listener
/// reachable from other hosts, unless `allow_plaintext_admin`): the console carries the
/// same credentials, and its session cookie, in the clear otherwise.
async fn console_gate(
    axum::extract::State(console): axum::extract::State<Arc<Console>>,
    req: Request,
    next: Next,
) -> Response {
    if console.gw.admin_api {
        next.run(req).await
    } else {
        Refusal::ConsoleDisabled.into_response()
    }
}

/// Sets the console's security headers on every response: CSP, `nosniff`, no referrer,
/// no caching.
async fn security_headers(req: Request, next: Next) -> Response {
    let mut response = next.run(req).await;
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CONTENT_SECURITY_POLICY),
    );
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    headers.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    headers.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    response
}
