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
mod series;

use std::sync::atomic::AtomicU64;
use std::sync::{Arc, OnceLock};
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

use self::series::{Remembered, Values as LabelValues};
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

/// The series a request with one upstream, model, operation and status counts in; its
/// timing series are made the first time they are needed, so a refusal (no upstream time)
/// leaves them out of what `/metrics` shows, as the family would.
#[derive(Debug)]
struct RequestSeries {
    requests: Counter,
    overhead: OnceLock<Histogram>,
    upstream_time: OnceLock<Histogram>,
    /// The timing series' label, for when they are first needed.
    timing: UpstreamLabels,
}

/// The series the usage of one tenant, agent and model counts in, each made when first
/// counted in (a direction with no tokens, or no cost, shows no series).
#[derive(Debug)]
struct UsageSeries {
    input: OnceLock<Counter>,
    output: OnceLock<Counter>,
    cost: OnceLock<Counter<f64, AtomicU64>>,
    labels: CostLabels,
}

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
    /// The series of each upstream, model, operation and status seen.
    by_request: Remembered<RequestSeries>,
    /// The series of each tenant, agent and model seen with usage.
    by_usage: Remembered<UsageSeries>,
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
            by_request: Remembered::new(),
            by_usage: Remembered::new(),
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
        let status = record.status.unwrap_or(0);
        let values = LabelValues {
            names: [
                record.upstream.as_deref(),
                record.model.as_deref(),
                record.operation.as_deref(),
            ],
            number: status,
        };
        let resolve = || {
            let labels = RequestLabels {
                upstream: v.upstreams.get_opt(record.upstream.as_deref()),
                model: v.models.get_opt(record.model.as_deref()),
                operation: v.operations.get_opt(record.operation.as_deref()),
                status,
            };
            RequestSeries {
                requests: self.requests.get_or_create(&labels).clone(),
                overhead: OnceLock::new(),
                upstream_time: OnceLock::new(),
                timing: UpstreamLabels {
                    upstream: labels.upstream,
                },
            }
        };
        self.by_request.with(values, resolve, |s| {
            s.requests.inc();
            if let Some(overhead) = overhead {
                s.overhead
                    .get_or_init(|| self.overhead.get_or_create(&s.timing).clone())
                    .observe(overhead.as_secs_f64());
            }
            if let Some(upstream) = upstream {
                s.upstream_time
                    .get_or_init(|| self.upstream_time.get_or_create(&s.timing).clone())
                    .observe(upstream.as_secs_f64());
            }
        });
        let micros = record.cost_usd_micros.filter(|m| *m > 0);
        let tokens = record
            .usage
            .as_ref()
            .map_or((0, 0), |u| (u.input_tokens, u.output_tokens));
        if tokens == (0, 0) && micros.is_none() {
            return;
        }
        // Unnamed agents share one series: their names are not part of the key.
        let agent = record.agent.as_deref().filter(|_| self.config.agent_labels);
        let values = LabelValues {
            names: [record.tenant.as_deref(), agent, record.model.as_deref()],
            number: 0,
        };
        let resolve = || UsageSeries {
            input: OnceLock::new(),
            output: OnceLock::new(),
            cost: OnceLock::new(),
            labels: CostLabels {
                tenant: v.tenants.get_opt(record.tenant.as_deref()),
                agent: if self.config.agent_labels {
                    v.agents.get_opt(agent)
                } else {
                    self.unnamed.clone()
                },
                model: v.models.get_opt(record.model.as_deref()),
            },
        };
        self.by_usage.with(values, resolve, |s| {
            let token_series = |direction| {
                let l = &s.labels;
                self.tokens
                    .get_or_create(&TokenLabels {
                        tenant: l.tenant.clone(),
                        agent: l.agent.clone(),
                        model: l.model.clone(),
                        direction,
                    })
                    .clone()
            };
            if tokens.0 > 0 {
                s.input
                    .get_or_init(|| token_series("input"))
                    .inc_by(tokens.0);
            }
            if tokens.1 > 0 {
                s.output
                    .get_or_init(|| token_series("output"))
                    .inc_by(tokens.1);
            }
            if let Some(micros) = micros {
                s.cost
                    .get_or_init(|| self.cost.get_or_create(&s.labels).clone())
                    .inc_by(micros as f64 / 1_000_000.0);
            }
        });
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
