//! `UsageLog`: what each call consumed and cost, kept for the latest calls. The audit log
//! (DESIGN §7) and the limiter's settle step read the same records.

use std::collections::VecDeque;
use std::sync::Mutex;

use serde::Serialize;
use writ_providers::Usage;

/// How a metered call ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    /// The whole response reached the client.
    Completed,
    /// The upstream stopped mid-response, stalled, or sent too much.
    UpstreamCut,
    /// The client went away before the end.
    ClientGone,
}

/// One metered call.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct UsageRecord {
    /// The pseudonym of the writ's token id, as the audit log records it (the id itself
    /// would let whoever reads it revoke, or single out, that writ).
    pub writ: String,
    /// Tenant of the agent.
    pub tenant: String,
    /// The agent.
    pub agent: String,
    /// Upstream called.
    pub upstream: String,
    /// Model, when the request named one.
    pub model: Option<String>,
    /// Upstream response status.
    pub status: u16,
    /// Tokens consumed.
    pub usage: Usage,
    /// Set when the provider reported no usage and the numbers are the gateway's estimate.
    pub estimated: bool,
    /// Cost by the pricing table; `None` for an unpriced model.
    pub cost_usd_micros: Option<u64>,
    /// How the call ended.
    pub outcome: Outcome,
}

/// The latest records, bounded.
pub struct UsageLog {
    records: Mutex<VecDeque<UsageRecord>>,
    capacity: usize,
}

impl UsageLog {
    pub(crate) fn new(capacity: usize) -> Self {
        Self {
            records: Mutex::new(VecDeque::new()),
            capacity,
        }
    }

    pub(crate) fn push(&self, record: UsageRecord) {
        // Debug: the audit record of the call holds the same usage; a synchronous log line
        // per request was a sizeable part of its cost (bench/run profile).
        tracing::debug!(
            writ = %record.writ,
            agent = %record.agent,
            upstream = %record.upstream,
            model = record.model.as_deref(),
            input_tokens = record.usage.input_tokens,
            output_tokens = record.usage.output_tokens,
            estimated = record.estimated,
            cost_usd_micros = record.cost_usd_micros,
            outcome = ?record.outcome,
            "usage"
        );
        let mut records = self.records.lock().unwrap_or_else(|p| p.into_inner());
        if records.len() == self.capacity {
            records.pop_front();
        }
        records.push_back(record);
    }

    /// The latest records, oldest first.
    pub fn recent(&self) -> Vec<UsageRecord> {
        self.records
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .iter()
            .cloned()
            .collect()
    }
}
