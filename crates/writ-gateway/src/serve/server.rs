//! The HTTP server: the route tables (the data plane's and the admin surface's, apart or
//! on one listener), the health endpoints, and a `serve` that tests can bind to port 0 and
//! stop cleanly.

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

/// The gateway's routes on one listener, as when `[admin] listen` is not set: those of
/// [`data_router`] and of [`admin_router`] together, and JSON 404/405 for everything else.
pub fn router(gw: Arc<Gateway>) -> Router {
    with_fallbacks(
        health(&gw)
            .merge(data_plane(&gw))
            .merge(crate::control::admin::public_keys(gw.clone()))
            .merge(admin_surface(&gw)),
    )
}

/// The data-plane listener's routes when the admin surface has a listener of its own:
/// `/healthz` (alive), `/readyz` (ready), every route of `writ_providers::ROUTES`, the
/// token endpoint and its discovery metadata, agents' approval status and the public key
/// set; JSON 404 for the admin API, `/metrics` and the console, as for any unknown path.
pub fn data_router(gw: Arc<Gateway>) -> Router {
    with_fallbacks(
        health(&gw)
            .merge(data_plane(&gw))
            .merge(crate::control::admin::public_keys(gw)),
    )
}

/// The admin listener's routes (`[admin] listen`): `/healthz`, `/readyz`, the admin API,
/// `/metrics`, the console and its assets, and the public key set; JSON 404 for the data
/// plane, which is served on the data-plane listener only.
pub fn admin_router(gw: Arc<Gateway>) -> Router {
    with_fallbacks(
        health(&gw)
            .merge(admin_surface(&gw))
            .merge(crate::control::admin::public_keys(gw)),
    )
}

/// `/healthz` and `/readyz`, served on every listener.
fn health(gw: &Arc<Gateway>) -> Router {
    Router::new().route("/healthz", get(healthz)).route(
        "/readyz",
        get(super::readiness::readyz).with_state(gw.clone()),
    )
}

/// What agents call: the provider routes, the token endpoint and its metadata, and the
/// state of their held approvals.
fn data_plane(gw: &Arc<Gateway>) -> Router {
    let mut router = Router::new();
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
}

/// What operators use: the admin API, `/metrics` and the console.
fn admin_surface(gw: &Arc<Gateway>) -> Router {
    crate::control::admin::routes(gw.clone()).merge(crate::console::routes(gw.clone()))
}

/// JSON 404 for unknown paths and 405 for a known path's other methods.
fn with_fallbacks(router: Router) -> Router {
    router
        .fallback(|| async { GatewayError::NotFound.into_response() })
        .method_not_allowed_fallback(|| async { GatewayError::MethodNotAllowed.into_response() })
}

async fn healthz() -> Response {
    axum::Json(serde_json::json!({"status": "ok"})).into_response()
}

/// Serves the gateway on `listener`, on the calling runtime, until `shutdown` completes,
/// then drains connections. Tests use this; `writ serve` uses [`serve_listeners`].
pub async fn serve(
    listener: TcpListener,
    gw: Arc<Gateway>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    serve_with_workers(listener, gw, 0, shutdown).await
}

/// Serves the gateway, every route on `listener`, until `shutdown` completes, then drains
/// connections. With `workers` > 0, connections are served on that many threads with a
/// runtime each (see `workers.rs`); with 0, on the calling runtime.
pub async fn serve_with_workers(
    listener: TcpListener,
    gw: Arc<Gateway>,
    workers: usize,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let listeners = Listeners {
        data: listener,
        admin: None,
    };
    serve_listeners(listeners, gw, workers, shutdown).await
}

/// The listeners a gateway serves on.
#[derive(Debug)]
pub struct Listeners {
    /// The data plane's (`[server] listen`); every route when `admin` is `None`.
    pub data: TcpListener,
    /// The admin surface's own (`[admin] listen`): the admin API, `/metrics` and the
    /// console there, not on `data`.
    pub admin: Option<TcpListener>,
}

/// Serves the gateway on `listeners` until `shutdown` completes; then both stop accepting
/// and drain their connections, and the audit log writes what is pending and signs a
/// final checkpoint. The data plane is served on `workers` threads as
/// [`serve_with_workers`] says; an admin listener on the calling runtime (operators'
/// requests are few), with the same TLS as the data plane when it serves TLS.
pub async fn serve_listeners(
    listeners: Listeners,
    gw: Arc<Gateway>,
    workers: usize,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let Listeners { data, admin } = listeners;
    if let Ok(addr) = data.local_addr() {
        gw.default_issuer(addr);
    }
    match admin.as_ref().map(TcpListener::local_addr) {
        Some(Ok(admin_addr)) => {
            gw.default_admin_url(admin_addr);
            tracing::info!(
                data_plane = %gw.issuer(),
                admin = %gw.admin_url(),
                "serving the data plane and, apart, the admin API, /metrics and the console"
            );
        }
        Some(Err(_)) | None => {
            tracing::info!(address = %gw.issuer(), "serving the data plane and the admin API");
        }
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
    let tls = gw.tls.clone().map(crate::serve::workers::acceptor);
    // One stop for both listeners.
    let (stop, stopped) = tokio::sync::watch::channel(false);
    let signal = tokio::spawn(async move {
        shutdown.await;
        let _ = stop.send(true);
    });
    let stop_when = |mut stopped: tokio::sync::watch::Receiver<bool>| async move {
        let _ = stopped.wait_for(|s| *s).await;
    };
    let (data_app, admin) = match admin {
        Some(listener) => (
            data_router(gw.clone()),
            Some((listener, admin_router(gw.clone()))),
        ),
        None => (router(gw.clone()), None),
    };
    let data_served = {
        let (tls, shutdown) = (tls.clone(), stop_when(stopped.clone()));
        async move {
            if workers == 0 {
                crate::serve::workers::serve_inline(data, data_app, tls, shutdown).await
            } else {
                crate::serve::workers::serve_threads(data, data_app, tls, workers, shutdown).await
            }
        }
    };
    let admin_served = async move {
        match admin {
            Some((listener, app)) => {
                crate::serve::workers::serve_inline(listener, app, tls, stop_when(stopped)).await
            }
            None => Ok(()),
        }
    };
    let (data_served, admin_served) = tokio::join!(data_served, admin_served);
    signal.abort();
    sweeper.abort();
    // Pending records written and a final checkpoint signed.
    gw.audit.close().await;
    if let Some(task) = listener_task {
        task.abort();
    }
    data_served.and(admin_served)
}
