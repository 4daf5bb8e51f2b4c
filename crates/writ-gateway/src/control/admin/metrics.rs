//! `GET /metrics`: the gateway's Prometheus series as text, open to anyone who reaches
//! the listener, or with `[metrics] require_admin` only to a writ with a `writ:admin`
//! grant over every tenant.

use std::sync::Arc;

use axum::extract::{Request, State};
use axum::response::{IntoResponse, Response};

use crate::error::GatewayError;
use crate::gateway::Gateway;
use crate::metrics::Readings;

/// Renders the metrics, after checking the admin writ when one is required (refused as
/// every admin route refuses: 401 without a writ, 403 with one that is not an admin's).
pub(super) async fn serve(State(gw): State<Arc<Gateway>>, req: Request) -> Response {
    if gw.metrics.require_admin() {
        // As the admin routes: no admin writ is asked for where it would travel in clear.
        if !gw.admin_api {
            return GatewayError::AdminApiDisabled.into_response();
        }
        let (parts, _) = req.into_parts();
        if let Err(e) = super::admin(&gw, &parts, None).await {
            return e.into_response();
        }
    }
    match gw.metrics.render(readings(&gw)) {
        Ok(text) => (
            [(http::header::CONTENT_TYPE, crate::metrics::CONTENT_TYPE)],
            text,
        )
            .into_response(),
        Err(_) => GatewayError::Internal("metrics could not be rendered").into_response(),
    }
}

/// What a scrape reads from where it is counted.
fn readings(gw: &Gateway) -> Readings {
    Readings {
        detections: gw.detections.totals(),
        webhooks: gw.webhooks.as_ref().map(|w| {
            [
                ("delivered", w.delivered()),
                ("failed", w.failed()),
                ("dropped", w.dropped()),
            ]
        }),
        limit_decisions: gw.limits.decisions.totals(),
        audit_queue: gw.audit.stats.queued(),
        audit_sink_failures: gw.audit.stats.failures(),
        writ_cache: u64::try_from(gw.writs.cached()).unwrap_or(u64::MAX),
    }
}
