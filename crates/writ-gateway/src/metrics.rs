//! Metrics: the Prometheus registry, what the request path and the token endpoint record
//! in it, and the text `/metrics` serves (Prometheus text format 0.0.4).
//!
//! A request's series are recorded once, from its one audit record, when the audit phase
//! writes it ([`Metrics::request`]): they count exactly what the audit log holds. Values
//! kept elsewhere (detections, webhooks, limiter decisions, the audit queue, the writ
//! cache) are read when scraped ([`Readings`]). Every open-ended label value goes through
//! a [`CappedValues`], so no label has more than [`MAX_LABEL_VALUES`] values; agents are
//! named only when `[metrics] agent_labels` says so. No label ever holds a writ, a token
//! id or a client address: the label sources are names (tenant, agent, upstream, model,
//! operation) and fixed vocabularies.

mod capped;
mod readings;

use std::sync::Arc;
use std::sync::atomic::AtomicU64;
use std::time::Duration;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::encoding::prometheus_text;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::{Registry, Unit};
use writ_audit::AuditRecord;

pub(crate) use capped::{CappedValues, MAX_LABEL_VALUES, NONE};
pub(crate) use readings::{AuditStats, LimitDecisions, LimitOutcome, Readings};

use crate::config::MetricsConfig;

/// The `Content-Type` of what `/metrics` serves.
pub(crate) const CONTENT_TYPE: &str = prometheus_text::CONTENT_TYPE;

/// Bucket bounds of the gateway's own time per request, in seconds: 50 µs to 2.5 s.
const OVERHEAD_BUCKETS: [f64; 14] = [
    0.000_05, 0.000_1, 0.000_25, 0.000_5, 0.001, 0.002_5, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0,
    2.5,
];

/// Bucket bounds of an upstream call's time, in seconds: 5 ms to 5 min (streams last).
const UPSTREAM_BUCKETS: [f64; 15] = [
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0,
];

/// `writ_requests_total`'s labels.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RequestLabels {
    upstream: Arc<str>,
    model: Arc<str>,
    operation: Arc<str>,
    status: u16,
}

/// `writ_tokens_total`'s labels.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct TokenLabels {
    tenant: Arc<str>,
    agent: Arc<str>,
    model: Arc<str>,
    direction: &'static str,
}

/// `writ_cost_usd_total`'s labels.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct CostLabels {
    tenant: Arc<str>,
    agent: Arc<str>,
    model: Arc<str>,
}

/// The latency histograms' label.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct UpstreamLabels {
    upstream: Arc<str>,
}

/// `writ_mints_total`'s label: `issued`, or the OAuth error code of the refusal.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct MintLabels {
    outcome: &'static str,
}

type Histograms = Family<UpstreamLabels, Histogram, fn() -> Histogram>;

/// The label values seen so far, per open-ended label.
#[derive(Debug)]
struct Values {
    tenants: CappedValues,
    agents: CappedValues,
    upstreams: CappedValues,
    models: CappedValues,
    operations: CappedValues,
}

/// The gateway's metrics: counters and histograms recorded as requests end, and the
/// registry they are rendered from.
pub(crate) struct Metrics {
    registry: Registry,
    config: MetricsConfig,
    values: Values,
    /// The `agent` label when agents are not named.
    unnamed: Arc<str>,
    requests: Family<RequestLabels, Counter>,
    tokens: Family<TokenLabels, Counter>,
    cost: Family<CostLabels, Counter<f64, AtomicU64>>,
    overhead: Histograms,
    upstream_time: Histograms,
    mints: Family<MintLabels, Counter>,
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Metrics")
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

impl Metrics {
    /// Empty series, labelled as `config` says.
    pub(crate) fn new(config: MetricsConfig) -> Self {
        let capped = || CappedValues::new(MAX_LABEL_VALUES);
        let requests = Family::<RequestLabels, Counter>::default();
        let tokens = Family::<TokenLabels, Counter>::default();
        let cost = Family::<CostLabels, Counter<f64, AtomicU64>>::default();
        let overhead: Histograms =
            Family::new_with_constructor(|| Histogram::new(OVERHEAD_BUCKETS));
        let upstream_time: Histograms =
            Family::new_with_constructor(|| Histogram::new(UPSTREAM_BUCKETS));
        let mints = Family::<MintLabels, Counter>::default();
        let mut registry = Registry::default();
        registry.register(
            "writ_requests",
            "Requests by upstream, model (or tool), operation and the status answered",
            requests.clone(),
        );
        registry.register_with_unit(
            "writ_gateway_overhead",
            "Time a request spent in the gateway itself: its whole time less the upstream call's",
            Unit::Seconds,
            overhead.clone(),
        );
        registry.register_with_unit(
            "writ_upstream_duration",
            "Time of upstream calls, from sending the request to the end of the answer's body or stream",
            Unit::Seconds,
            upstream_time.clone(),
        );
        registry.register(
            "writ_tokens",
            "Tokens used by tenant, agent, model and direction (input or output), as reported by the upstream or estimated",
            tokens.clone(),
        );
        registry.register(
            "writ_cost_usd",
            "Cost in US dollars by tenant, agent and model, from the pricing table",
            cost.clone(),
        );
        registry.register(
            "writ_mints",
            "Token endpoint answers by outcome: issued, or the OAuth error code",
            mints.clone(),
        );
        Self {
            registry,
            config,
            values: Values {
                tenants: capped(),
                agents: capped(),
                upstreams: capped(),
                models: capped(),
                operations: capped(),
            },
            unnamed: Arc::from(NONE),
            requests,
            tokens,
            cost,
            overhead,
            upstream_time,
            mints,
        }
    }

    /// Whether `/metrics` needs an admin writ (`[metrics] require_admin`).
    pub(crate) fn require_admin(&self) -> bool {
        self.config.require_admin
    }

    /// Records a request that ended with `record` (its one audit record): the request, its
    /// tokens and cost, the gateway's time (`overhead`, when known) and the upstream
    /// call's (`upstream`, when one was measured).
    pub(crate) fn request(
        &self,
        record: &AuditRecord,
        overhead: Option<Duration>,
        upstream: Option<Duration>,
    ) {
        let v = &self.values;
        let upstream_label = v.upstreams.get_opt(record.upstream.as_deref());
        let model = v.models.get_opt(record.model.as_deref());
        self.requests
            .get_or_create(&RequestLabels {
                upstream: upstream_label.clone(),
                model: model.clone(),
                operation: v.operations.get_opt(record.operation.as_deref()),
                status: record.status.unwrap_or(0),
            })
            .inc();
        let timing = UpstreamLabels {
            upstream: upstream_label,
        };
        if let Some(overhead) = overhead {
            self.overhead
                .get_or_create(&timing)
                .observe(overhead.as_secs_f64());
        }
        if let Some(upstream) = upstream {
            self.upstream_time
                .get_or_create(&timing)
                .observe(upstream.as_secs_f64());
        }
        if record.usage.is_none() && record.cost_usd_micros.is_none() {
            return;
        }
        let tenant = v.tenants.get_opt(record.tenant.as_deref());
        let agent = if self.config.agent_labels {
            v.agents.get_opt(record.agent.as_deref())
        } else {
            self.unnamed.clone()
        };
        if let Some(usage) = &record.usage {
            for (direction, n) in [
                ("input", usage.input_tokens),
                ("output", usage.output_tokens),
            ] {
                if n > 0 {
                    self.tokens
                        .get_or_create(&TokenLabels {
                            tenant: tenant.clone(),
                            agent: agent.clone(),
                            model: model.clone(),
                            direction,
                        })
                        .inc_by(n);
                }
            }
        }
        if let Some(micros) = record.cost_usd_micros.filter(|m| *m > 0) {
            self.cost
                .get_or_create(&CostLabels {
                    tenant,
                    agent,
                    model,
                })
                .inc_by(micros as f64 / 1_000_000.0);
        }
    }

    /// Records a token endpoint answer: `issued`, or the OAuth error code it refused with.
    pub(crate) fn mint(&self, outcome: &'static str) {
        self.mints.get_or_create(&MintLabels { outcome }).inc();
    }

    /// The text `/metrics` serves: every series recorded here, then `readings`.
    pub(crate) fn render(&self, readings: Readings) -> Result<String, std::fmt::Error> {
        let mut text = String::with_capacity(16 * 1024);
        prometheus_text::encode(&mut text, &self.registry)?;
        let mut scraped = Registry::default();
        scraped.register_collector(Box::new(readings));
        prometheus_text::encode(&mut text, &scraped)?;
        Ok(text)
    }
}

#[cfg(test)]
mod tests;
