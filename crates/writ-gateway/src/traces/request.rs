//! One request's spans: the SERVER span, child spans for the phases that decide and
//! call (authenticate, authorize, limit, the upstream call as a CLIENT span) and the
//! audit phase, and their attributes, read from the request's audit record.
//!
//! Phases are timed with `Instant`s and their spans built with explicit times once the
//! server span exists, which is as late as possible: an MCP client's parent may only be
//! known once the body is read (`params._meta.traceparent`). The server span is built
//! when the upstream call starts (its `traceparent` must name a span of this trace) or
//! when the request ends. Attribute values come only from the audit record (pseudonyms,
//! names, counts): never a writ, its token id, a prompt or a credential.

use std::borrow::Cow;
use std::time::{Instant, SystemTime};

use opentelemetry::trace::{Span as _, SpanContext, SpanKind, Status, TraceContextExt, Tracer};
use opentelemetry::{Context, KeyValue};
use opentelemetry_sdk::trace::SdkTracer;
use writ_audit::AuditRecord;
use writ_providers::ProviderKind;

use super::trace_context::{self, Outgoing};

/// A traced phase of the pipeline (DESIGN §4), by its span's name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Phase {
    /// Extract, throttle, verify the writ, proof of possession.
    Authenticate,
    /// The writ's checks, the operator's policies, approvals, the prompt's secret scan.
    Authorize,
    /// Limits reserved, and in strict audit the decision committed.
    Limit,
}

impl Phase {
    fn name(self) -> &'static str {
        match self {
            Phase::Authenticate => "authenticate",
            Phase::Authorize => "authorize",
            Phase::Limit => "limit",
        }
    }
}

/// The spans of one traced request, from arrival to its audit record.
pub(crate) struct RequestTrace {
    tracer: SdkTracer,
    /// When the request arrived, by the gateway's clock and by the monotonic one: phase
    /// instants become span times relative to it.
    arrived: (SystemTime, Instant),
    /// `<method> <route>`, the server span's name.
    name: String,
    /// The client's span, from its `traceparent` (or MCP `_meta`).
    parent: Option<SpanContext>,
    /// Whether the client sent a `traceparent` header (valid or not): `_meta` is read
    /// only when it did not.
    header_sent: bool,
    /// The server span, once built.
    server: Option<Context>,
    /// Phases ended, with their start and end.
    done: Vec<(Phase, Instant, Instant)>,
    /// The phase running now.
    open: Option<(Phase, Instant)>,
    /// The upstream call's CLIENT span, and when the call ended (the span itself ends
    /// with the request, once its attributes are known).
    upstream: Option<(opentelemetry_sdk::trace::Span, Option<Instant>)>,
    /// The upstream's kind, once called.
    provider: Option<ProviderKind>,
}

impl std::fmt::Debug for RequestTrace {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RequestTrace")
            .field("name", &self.name)
            .finish_non_exhaustive()
    }
}

impl RequestTrace {
    /// The trace of a request `method route` that arrived at `arrived` with `headers`.
    pub(crate) fn new(
        tracer: SdkTracer,
        arrived: (SystemTime, Instant),
        method: &http::Method,
        route: &str,
        headers: &http::HeaderMap,
    ) -> Self {
        let mut values = headers.get_all("traceparent").iter();
        let header_sent = headers.contains_key("traceparent");
        // Two `traceparent` headers name no one parent.
        let parent = match (values.next(), values.next()) {
            (Some(value), None) => trace_context::parent(value.as_bytes(), tracestate(headers)),
            _ => None,
        };
        Self {
            tracer,
            arrived,
            name: format!("{method} {route}"),
            parent,
            header_sent,
            server: None,
            done: Vec::with_capacity(3),
            open: None,
            upstream: None,
            provider: None,
        }
    }

    /// An MCP message's `params._meta.traceparent` (and `tracestate`): the client's span
    /// when no `traceparent` header was sent.
    pub(crate) fn mcp_meta(&mut self, traceparent: Option<&str>, tracestate: Option<&str>) {
        if self.header_sent || self.server.is_some() {
            return;
        }
        if let Some(value) = traceparent {
            self.parent = trace_context::parent(value.as_bytes(), tracestate);
        }
    }

    /// Ends the phase running (if any) and starts `next` (if any).
    pub(crate) fn phase(&mut self, next: Option<Phase>) {
        let now = Instant::now();
        self.close(now);
        self.open = next.map(|p| (p, now));
    }

    /// Starts the upstream call to an upstream of kind `provider`: the phase running ends,
    /// the CLIENT span starts. Returns the `traceparent` to send upstream, naming it.
    pub(crate) fn upstream(&mut self, provider: ProviderKind) -> Option<Outgoing> {
        let now = Instant::now();
        self.close(now);
        self.provider = Some(provider);
        let server = self.server();
        let span = self
            .tracer
            .span_builder("upstream")
            .with_kind(SpanKind::Client)
            .with_start_time(self.at(now))
            .start_with_context(&self.tracer, &server);
        let outgoing = Outgoing::of(span.span_context());
        self.upstream = Some((span, None));
        outgoing
    }

    /// The request is over and `record` is its audit record (`allowed`: it was let
    /// through to the upstream): the spans get their attributes, and the audit phase's
    /// span starts, ended by [`Ending::end`] once the record is handed to the log.
    pub(crate) fn ending(mut self, record: &AuditRecord, allowed: bool) -> Ending {
        let now = Instant::now();
        // The phase still running is the one that refused the request.
        let failed = self.open.map(|(phase, _)| phase);
        self.close(now);
        let server = self.server();
        let attributes = attributes(record, allowed, self.provider);
        let error = record.decision.as_ref().and_then(|d| d.code.clone());
        let upstream_failed = record.status.is_some_and(|s| s >= 500);
        for &(phase, start, end) in &self.done {
            let mut span = self
                .tracer
                .span_builder(phase.name())
                .with_start_time(self.at(start))
                .start_with_context(&self.tracer, &server);
            if Some(phase) == failed
                && let Some(code) = &error
            {
                span.set_status(Status::error(code.clone()));
            }
            span.end_with_timestamp(self.at(end));
        }
        if let Some((mut span, ended)) = self.upstream.take() {
            if span.is_recording() {
                span.set_attributes(attributes.iter().cloned());
                if upstream_failed {
                    span.set_status(Status::error(error.clone().unwrap_or_default()));
                }
            }
            span.end_with_timestamp(self.at(ended.unwrap_or(now)));
        }
        let span = server.span();
        if span.is_recording() {
            span.set_attributes(attributes);
            if upstream_failed {
                span.set_status(Status::error(error.unwrap_or_default()));
            }
        }
        let audit = self
            .tracer
            .span_builder("audit")
            .with_start_time(self.at(now))
            .start_with_context(&self.tracer, &server);
        Ending { trace: self, audit }
    }

    /// Ends the phase running at `now`, and the upstream call if it runs.
    fn close(&mut self, now: Instant) {
        if let Some((phase, start)) = self.open.take() {
            self.done.push((phase, start, now));
        }
        if let Some((_, ended @ None)) = &mut self.upstream {
            *ended = Some(now);
        }
    }

    /// The server span's context, built the first time with the client's span as parent.
    fn server(&mut self) -> Context {
        if let Some(server) = &self.server {
            return server.clone();
        }
        let parent = match &self.parent {
            Some(parent) => Context::new().with_remote_span_context(parent.clone()),
            None => Context::new(),
        };
        let span = self
            .tracer
            .span_builder(Cow::Owned(std::mem::take(&mut self.name)))
            .with_kind(SpanKind::Server)
            .with_start_time(self.arrived.0)
            .start_with_context(&self.tracer, &parent);
        let server = Context::new().with_span(span);
        self.server = Some(server.clone());
        server
    }

    /// The wall-clock time of `instant`.
    fn at(&self, instant: Instant) -> SystemTime {
        self.arrived.0 + instant.saturating_duration_since(self.arrived.1)
    }
}

/// The audit phase's span, running while the record is handed to the log.
#[must_use]
pub(crate) struct Ending {
    trace: RequestTrace,
    audit: opentelemetry_sdk::trace::Span,
}

impl Ending {
    /// Ends the audit phase's span and the server span: the request's trace is complete.
    pub(crate) fn end(mut self) {
        let now = self.trace.at(Instant::now());
        self.audit.end_with_timestamp(now);
        if let Some(server) = &self.trace.server {
            server.span().end_with_timestamp(now);
        }
    }
}

/// The `tracestate` header's values, joined, when they are text.
fn tracestate(headers: &http::HeaderMap) -> Option<&str> {
    // Several `tracestate` headers are one list; only a single one is read, as joining
    // would allocate on every traced request for a case no known client produces.
    let mut values = headers.get_all("tracestate").iter();
    match (values.next(), values.next()) {
        (Some(value), None) => value.to_str().ok(),
        _ => None,
    }
}

/// The GenAI semantic conventions' attributes and writ's own, from the audit record.
fn attributes(
    record: &AuditRecord,
    allowed: bool,
    provider: Option<ProviderKind>,
) -> Vec<KeyValue> {
    let mut out = Vec::with_capacity(14);
    let mcp_method = record
        .detail
        .as_ref()
        .and_then(|d| d.get("mcp"))
        .and_then(|m| m.get("method"))
        .and_then(|m| m.as_str());
    let operation = match (record.operation.as_deref(), mcp_method) {
        (Some("chat" | "responses"), _) => Some("chat"),
        (Some("embeddings"), _) => Some("embeddings"),
        (Some("invoke"), _) => Some("generate_content"),
        (_, Some("tools/call")) => Some("execute_tool"),
        (other, _) => other,
    };
    if let Some(operation) = operation {
        out.push(KeyValue::new(
            "gen_ai.operation.name",
            operation.to_string(),
        ));
    }
    if let Some(name) = provider.and_then(provider_name) {
        out.push(KeyValue::new("gen_ai.provider.name", name));
    }
    if let Some(model) = &record.model {
        // For an MCP call the record's "model" is the tool or prompt it names.
        let key = if mcp_method.is_some() {
            "gen_ai.tool.name"
        } else {
            "gen_ai.request.model"
        };
        out.push(KeyValue::new(key, model.clone()));
    }
    if let Some(method) = mcp_method {
        out.push(KeyValue::new("mcp.method.name", method.to_string()));
    }
    if let Some(usage) = &record.usage {
        out.push(KeyValue::new(
            "gen_ai.usage.input_tokens",
            i64::try_from(usage.input_tokens).unwrap_or(i64::MAX),
        ));
        out.push(KeyValue::new(
            "gen_ai.usage.output_tokens",
            i64::try_from(usage.output_tokens).unwrap_or(i64::MAX),
        ));
    }
    let text = [
        ("writ.tenant", &record.tenant),
        ("writ.agent", &record.agent),
        ("writ.writ", &record.writ),
        ("writ.upstream", &record.upstream),
    ];
    for (key, value) in text {
        if let Some(value) = value {
            out.push(KeyValue::new(key, value.clone()));
        }
    }
    out.push(KeyValue::new(
        "writ.decision",
        if allowed { "allowed" } else { "denied" },
    ));
    if let Some(failed) = record.decision.as_ref().and_then(failed_check) {
        out.push(KeyValue::new("writ.failed_check", failed));
    }
    if let Some(status) = record.status {
        out.push(KeyValue::new(
            "http.response.status_code",
            i64::from(status),
        ));
    }
    out
}

/// What refused the request: the check, else the limit (`scope/dimension`), else the
/// error code.
fn failed_check(decision: &writ_audit::record::Decision) -> Option<String> {
    decision
        .check
        .clone()
        .or_else(|| {
            decision
                .limit
                .as_ref()
                .map(|l| format!("{}/{}", l.scope, l.dimension))
        })
        .or_else(|| decision.code.clone())
}

/// The GenAI conventions' `gen_ai.provider.name` of an upstream kind; none for a tool
/// server or a plain HTTP API.
fn provider_name(kind: ProviderKind) -> Option<&'static str> {
    match kind {
        ProviderKind::OpenAi => Some("openai"),
        ProviderKind::Anthropic => Some("anthropic"),
        ProviderKind::Gemini => Some("gcp.gemini"),
        ProviderKind::Azure => Some("azure.ai.openai"),
        ProviderKind::Bedrock => Some("aws.bedrock"),
        ProviderKind::Vertex => Some("gcp.vertex_ai"),
        ProviderKind::Mcp | ProviderKind::Http => None,
    }
}
