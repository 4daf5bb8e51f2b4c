//! Values kept where they are counted and read when `/metrics` is scraped: limiter
//! decisions, audit queue and sink failures, the writ cache, detections and webhooks.

use std::sync::atomic::{AtomicU64, Ordering};

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric};
use prometheus_client::metrics::MetricType;
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::gauge::ConstGauge;
use writ_limits::Dimension;

/// Every limit dimension, in the order they are shown.
const DIMENSIONS: [Dimension; 7] = [
    Dimension::Requests,
    Dimension::InputTokens,
    Dimension::OutputTokens,
    Dimension::Tokens,
    Dimension::Cost,
    Dimension::Concurrency,
    Dimension::Compute,
];

/// How the limiter decided on one limit a request was charged against.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum LimitOutcome {
    /// Reserved: the request may go on.
    Allowed,
    /// The limit refused the request (429).
    Refused,
    /// The backend could not be asked and there is no local fallback: refused, 503.
    Unavailable,
}

impl LimitOutcome {
    const ALL: [LimitOutcome; 3] = [Self::Allowed, Self::Refused, Self::Unavailable];

    /// The `outcome` label.
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Self::Allowed => "allowed",
            Self::Refused => "refused",
            Self::Unavailable => "unavailable",
        }
    }
}

/// Limiter decisions counted by dimension and outcome: one per limit a request was
/// charged against (a request under two limits counts twice when allowed; a refusal
/// counts once, for the limit that refused).
#[derive(Debug, Default)]
pub(crate) struct LimitDecisions {
    counts: [[AtomicU64; 3]; 7],
}

impl LimitDecisions {
    /// Counts one decision.
    pub(crate) fn count(&self, dimension: Dimension, outcome: LimitOutcome) {
        let d = DIMENSIONS.iter().position(|x| *x == dimension).unwrap_or(0);
        self.counts[d][outcome as usize].fetch_add(1, Ordering::Relaxed);
    }

    /// Every (dimension, outcome, count), zeros included.
    pub(crate) fn totals(&self) -> Vec<(&'static str, &'static str, u64)> {
        let mut out = Vec::with_capacity(DIMENSIONS.len() * LimitOutcome::ALL.len());
        for (d, dimension) in DIMENSIONS.iter().enumerate() {
            for outcome in LimitOutcome::ALL {
                out.push((
                    dimension.as_str(),
                    outcome.as_str(),
                    self.counts[d][outcome as usize].load(Ordering::Relaxed),
                ));
            }
        }
        out
    }
}

/// The audit writer's counts: records handed to it and written, and failed sink writes.
#[derive(Debug, Default)]
pub(crate) struct AuditStats {
    received: AtomicU64,
    written: AtomicU64,
    failures: AtomicU64,
}

impl AuditStats {
    /// `n` more records were handed to the log.
    pub(crate) fn received(&self, n: u64) {
        self.received.fetch_add(n, Ordering::Relaxed);
    }

    /// `n` records were written to the sink.
    pub(crate) fn written(&self, n: u64) {
        self.written.fetch_add(n, Ordering::Relaxed);
    }

    /// A write to the sink (records or a checkpoint) failed.
    pub(crate) fn failed(&self) {
        self.failures.fetch_add(1, Ordering::Relaxed);
    }

    /// Records handed to the log and not yet written to the sink.
    pub(crate) fn queued(&self) -> u64 {
        let written = self.written.load(Ordering::Relaxed);
        self.received
            .load(Ordering::Relaxed)
            .saturating_sub(written)
    }

    /// Failed sink writes since start.
    pub(crate) fn failures(&self) -> u64 {
        self.failures.load(Ordering::Relaxed)
    }
}

/// What a scrape reads from where it is kept.
#[derive(Debug, Default)]
pub(crate) struct Readings {
    /// (detector, action, count) for every detector and action.
    pub(crate) detections: Vec<(&'static str, &'static str, u64)>,
    /// (outcome, count) of detection webhook events, when webhooks are configured.
    pub(crate) webhooks: Option<[(&'static str, u64); 3]>,
    /// (dimension, outcome, count) of limiter decisions.
    pub(crate) limit_decisions: Vec<(&'static str, &'static str, u64)>,
    /// Records not yet written to the audit sink.
    pub(crate) audit_queue: u64,
    /// Failed audit sink writes.
    pub(crate) audit_sink_failures: u64,
    /// Verified writs in the verifier's cache.
    pub(crate) writ_cache: u64,
}

impl Collector for Readings {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let (counter, gauge) = (MetricType::Counter, MetricType::Gauge);
        {
            let mut family = encoder.encode_descriptor(
                "writ_detections",
                "Detections by detector and action.",
                None,
                counter,
            )?;
            for (detector, action, n) in &self.detections {
                let labels = [("detector", *detector), ("action", *action)];
                ConstCounter::new(*n).encode(family.encode_family(&labels)?)?;
            }
        }
        if let Some(webhooks) = &self.webhooks {
            let mut family = encoder.encode_descriptor(
                "writ_webhook_events",
                "Detection webhook events by outcome.",
                None,
                counter,
            )?;
            for (outcome, n) in webhooks {
                let labels = [("outcome", *outcome)];
                ConstCounter::new(*n).encode(family.encode_family(&labels)?)?;
            }
        }
        {
            let mut family = encoder.encode_descriptor(
                "writ_limit_decisions",
                "Limiter decisions by dimension and outcome, one per limit a request was charged against.",
                None,
                counter,
            )?;
            for (dimension, outcome, n) in &self.limit_decisions {
                let labels = [("dimension", *dimension), ("outcome", *outcome)];
                ConstCounter::new(*n).encode(family.encode_family(&labels)?)?;
            }
        }
        ConstGauge::new(self.audit_queue).encode(encoder.encode_descriptor(
            "writ_audit_queue_depth",
            "Audit records handed to the log and not yet written to its sink.",
            None,
            gauge,
        )?)?;
        ConstCounter::new(self.audit_sink_failures).encode(encoder.encode_descriptor(
            "writ_audit_sink_failures",
            "Failed writes to the audit sink (records or checkpoints); the records are kept and retried.",
            None,
            counter,
        )?)?;
        ConstGauge::new(self.writ_cache).encode(encoder.encode_descriptor(
            "writ_writ_cache_entries",
            "Verified writs held in the verifier's cache.",
            None,
            gauge,
        )?)?;
        Ok(())
    }
}
