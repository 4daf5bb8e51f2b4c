//! The HTTP server: the route table, the health endpoint, and a `serve` that tests can
//! bind to port 0 and stop cleanly.

use std::future::Future;
use std::sync::Arc;

use axum::Router;
use axum::extract::Request;
use axum::response::{IntoResponse, Response};
use axum::routing::{MethodFilter, any, get, on};
use http::Method;
use tokio::net::TcpListener;

use crate::error::GatewayError;
use crate::gateway::Gateway;
use crate::pipeline;

/// The gateway's routes: `/healthz` (alive), `/readyz` (ready), every data-plane route of `writ_providers::ROUTES`,
/// the token endpoint and its discovery metadata, agents' approval status, the admin API,
/// and JSON 404/405 for
/// everything else.
pub fn router(gw: Arc<Gateway>) -> Router {
    let mut router = Router::new().route("/healthz", get(healthz)).route(
        "/readyz",
        get(super::readiness::readyz).with_state(gw.clone()),
    );
    for spec in writ_providers::ROUTES {
        let gw = gw.clone();
        let handler = move |req: Request| pipeline::handle(gw.clone(), *spec, req);
        let method_router = match spec.method {
            None => any(handler),
            Some(m) => {
                let method = Method::from_bytes(m.as_bytes()).unwrap_or(Method::POST);
                let filter = MethodFilter::try_from(method).unwrap_or(MethodFilter::POST);
                on(filter, handler)
            }
        };
        router = router.route(spec.path, method_router);
    }
    router
        .route(
            crate::control::token_endpoint::PATH,
            axum::routing::post(crate::control::token_endpoint::token).with_state(gw.clone()),
        )
        .route(
            crate::control::approval_status::PATH,
            axum::routing::get(crate::control::approval_status::status).with_state(gw.clone()),
        )
        .merge(crate::control::discovery::routes(gw.clone()))
        .merge(crate::control::admin::routes(gw.clone()))
        .merge(crate::console::routes(gw))
        .fallback(|| async { GatewayError::NotFound.into_response() })
        .method_not_allowed_fallback(|| async { GatewayError::MethodNotAllowed.into_response() })
}

async fn healthz() -> Response {
    axum::Json(serde_json::json!({"status": "ok"})).into_response()
}

/// Serves the gateway on `listener`, on the calling runtime, until `shutdown` completes,
/// then drains connections. Tests use this; `writ serve` uses [`serve_with_workers`].
pub async fn serve(
    listener: TcpListener,
    gw: Arc<Gateway>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    serve_with_workers(listener, gw, 0, shutdown).await
}

/// Serves the gateway on `listener` until `shutdown` completes, then drains connections.
/// With `workers` > 0, connections are served on that many threads with a runtime each
/// (see `workers.rs`); with 0, on the calling runtime.
pub async fn serve_with_workers(
    listener: TcpListener,
    gw: Arc<Gateway>,
    workers: usize,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    if let Ok(addr) = listener.local_addr() {
        gw.default_issuer(addr);
    }
    // Says what this instance connected to, and names what it cannot use, without
    // holding up the first requests.
    tokio::spawn({
        let gw = gw.clone();
        async move { super::readiness::log_at_start(&gw).await }
    });
    // Expired writs leave the cache within seconds, whether or not it fills up.
    let sweeper = {
        let gw = gw.clone();
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(std::time::Duration::from_secs(5));
            loop {
                tick.tick().await;
                gw.writs.sweep(gw.clock.now());
                // Approvals nobody decided (or used) in time get their `expired` record.
                crate::approval::ledger::sweep_if_due(&gw.approval_ledger()).await;
            }
        })
    };
    let listener_task = gw
        .fanout
        .clone()
        .map(|fanout| tokio::spawn(fanout.listen(Arc::downgrade(&gw))));
    let app = router(gw.clone());
    let tls = gw.tls.clone().map(crate::serve::workers::acceptor);
    let served = if workers == 0 {
        crate::serve::workers::serve_inline(listener, app, tls, shutdown).await
    } else {
        crate::serve::workers::serve_threads(listener, app, tls, workers, shutdown).await
    };
    sweeper.abort();
    // Pending records written and a final checkpoint signed.
    gw.audit.close().await;
    if let Some(task) = listener_task {
        task.abort();
    }
    served
}
