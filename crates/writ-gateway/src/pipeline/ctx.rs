//! `RequestCtx`: what one request carries from phase to phase.

use std::net::IpAddr;
use std::sync::Arc;
use std::time::Instant;

use writ_providers::RouteSpec;

use crate::detect::detections::Detection;
use crate::gateway::Gateway;
use crate::pipeline::audit::{Answer, AuditDue, Ending};
use crate::pipeline::identity::Identity;

/// Per-request state, built once in [`super::handle`] and passed from phase to phase.
#[derive(Debug)]
pub(crate) struct RequestCtx {
    /// The route the request came in on.
    pub(crate) route: RouteSpec,
    /// When the gateway received it, for latency.
    pub(crate) started: Instant,
    /// Who asked, for what.
    pub(crate) id: Identity,
    /// The detection that refused the request, recorded in its one audit record.
    pub(crate) detection: Option<Detection>,
    /// What the upstream's answer amounted to, once the meter phase measured it.
    pub(crate) answer: Option<Answer>,
    /// The request's one audit record, still owed. The meter phase takes it into a
    /// streamed response's body, whose end writes it; otherwise [`super::handle`] does.
    pub(crate) audit: Option<AuditDue>,
}

impl RequestCtx {
    /// The context of a request that arrived on `route` from `client`.
    pub(crate) fn new(gw: &Arc<Gateway>, route: RouteSpec, client: Option<IpAddr>) -> Self {
        let started = Instant::now();
        Self {
            route,
            started,
            id: Identity {
                client,
                operation: route.operation.as_str(),
                ..Identity::default()
            },
            detection: None,
            answer: None,
            audit: Some(AuditDue::new(gw.clone(), started)),
        }
    }
}

impl Drop for RequestCtx {
    /// A request dropped with its record still owed was abandoned by its client (the
    /// connection closed while a phase awaited): the audit phase still runs, on its own.
    fn drop(&mut self) {
        let Some(due) = self.audit.take() else {
            return;
        };
        let id = std::mem::take(&mut self.id);
        if let Ok(runtime) = tokio::runtime::Handle::try_current() {
            runtime.spawn(async move { due.write(&id, Ending::ClientClosed).await });
        }
    }
}
