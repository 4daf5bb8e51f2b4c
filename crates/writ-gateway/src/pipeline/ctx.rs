//! `RequestCtx`: what one request carries from phase to phase.

use std::net::IpAddr;
use std::sync::Arc;
use std::time::Instant;

use http::{HeaderMap, Method};
use serde_json::Value;
use writ_providers::mcp::list::ListKind;
use writ_providers::{ProviderKind, RouteSpec};

use crate::detect::detections::Detection;
use crate::gateway::Gateway;
use crate::pipeline::audit::{Answer, AuditDue, Ending};
use crate::pipeline::identity::Identity;
use crate::traces::{Outgoing, Phase, RequestTrace};

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
    /// The MCP call, once inspect read it: its id and the list it asks for.
    pub(crate) mcp: Option<McpCall>,
    /// The tenancy snapshot taken when the request arrived: its upstreams, policies and
    /// limits are the ones every phase reads, so a reload or a store change meanwhile
    /// applies to the next request, not to this one.
    pub(crate) snapshot: Arc<crate::tenancy::Snapshot>,
}

/// What the phases after inspect need of an MCP call.
#[derive(Debug, Clone, Default, PartialEq)]
pub(crate) struct McpCall {
    /// The request's JSON-RPC id, which a refusal answers.
    pub(crate) id: Option<Value>,
    /// The list the request asks for, whose answer the filter phase cuts.
    pub(crate) list: Option<ListKind>,
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
            mcp: None,
            snapshot: gw.tenancy.snapshot(),
        }
    }
}

/// The request's trace (`[traces]`): one call per phase in `run`, each nothing but a
/// branch when traces are off.
impl RequestCtx {
    /// Starts the request's trace, when traces are on.
    pub(crate) fn trace_begin(&mut self, gw: &Gateway, method: &Method, headers: &HeaderMap) {
        if let (Some(traces), Some(due)) = (&gw.traces, self.audit.as_mut()) {
            let trace = traces.begin(
                gw.clock.now(),
                self.started,
                method,
                self.route.path,
                headers,
            );
            due.trace = Some(trace);
        }
    }

    /// Ends the traced phase running (if any) and starts `next` (if any).
    pub(crate) fn phase(&mut self, next: Option<Phase>) {
        if let Some(trace) = self.trace() {
            trace.phase(next);
        }
    }

    /// MCP: the client's trace context from the message's `params._meta`, when it sent
    /// no `traceparent` header.
    pub(crate) fn trace_mcp(&mut self, message: &writ_providers::mcp::McpMessage) {
        if let Some(trace) = self.trace() {
            let state = message.meta_tracestate.as_deref();
            trace.mcp_meta(message.meta_traceparent.as_deref(), state);
        }
    }

    /// The upstream call to an upstream of kind `provider` starts: the trace context to
    /// send it, naming the call's span.
    pub(crate) fn trace_upstream(&mut self, provider: ProviderKind) -> Option<Outgoing> {
        self.trace()?.upstream(provider)
    }

    fn trace(&mut self) -> Option<&mut RequestTrace> {
        self.audit.as_mut()?.trace.as_deref_mut()
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

#[cfg(test)]
mod tests {
    use std::time::{Duration, Instant as Deadline};

    use serde_json::Value;
    use writ_providers::ROUTES;

    use super::*;
    use crate::pipeline::fixture::Fixture;

    /// The log's records (not its checkpoints), everything pending written first.
    async fn records(f: &Fixture) -> Vec<Value> {
        f.gw.audit_checkpoint().await;
        f.gw.audit_export()
            .await
            .unwrap()
            .iter()
            .filter(|l| !l.starts_with("{\"checkpoint\""))
            .map(|l| serde_json::from_str(l).unwrap())
            .collect()
    }

    #[tokio::test]
    async fn a_new_context_knows_its_route_and_client_and_owes_its_record() {
        let f = Fixture::start("").await;
        let client: IpAddr = "192.0.2.7".parse().unwrap();
        let mut ctx = RequestCtx::new(&f.gw, ROUTES[0], Some(client));
        assert_eq!(ctx.route.path, ROUTES[0].path);
        assert_eq!(ctx.id.operation, ROUTES[0].operation.as_str());
        assert_eq!(ctx.id.client, Some(client));
        assert!(ctx.id.tenant.is_none() && ctx.id.agent.is_none());
        assert!(ctx.detection.is_none() && ctx.answer.is_none());
        let due = ctx.audit.take().expect("the record is owed from arrival");
        assert_eq!(due.decision(), None);
        assert!(!due.is_allowed());
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_context_dropped_with_its_record_owed_writes_client_closed() {
        let f = Fixture::start("").await;
        let mut ctx = RequestCtx::new(&f.gw, ROUTES[0], None);
        ctx.id.agent = Some("demo".into());
        ctx.id.token_id = Some("tok-1".into());
        drop(ctx);
        // A bounded wait on the condition: the record is written by a task of its own.
        let deadline = Deadline::now() + Duration::from_secs(20);
        let record = loop {
            let all = records(&f).await;
            if let Some(r) = all.iter().find(|r| r["agent"] == "demo") {
                break r.clone();
            }
            assert!(Deadline::now() < deadline, "no record written: {all:?}");
            tokio::task::yield_now().await;
        };
        assert_eq!(record["kind"], "request_denied", "{record}");
        assert_eq!(record["status"], 499, "{record}");
        assert_eq!(
            record["decision"]["code"], "client_closed_request",
            "{record}"
        );
        assert_ne!(record["writ"], "tok-1", "named by its pseudonym");
        assert_eq!(records(&f).await.len(), 1, "exactly one record");
    }
}
