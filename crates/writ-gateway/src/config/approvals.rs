//! `[approvals]`: how long a held request or mint waits for a person, how often clients
//! may poll, and how many may wait at once per agent and per tenant.

use std::time::Duration;

use serde::Deserialize;

use super::ConfigError;

/// Default wait for a decision (never past the writ's own expiry).
pub const DEFAULT_TTL: Duration = Duration::from_secs(300);
/// Default seconds between polls a client is asked to keep.
pub const DEFAULT_POLL_INTERVAL: Duration = Duration::from_secs(5);
/// Default most approvals one agent may have waiting.
pub const DEFAULT_MAX_PENDING_PER_AGENT: u64 = 100;
/// Default most approvals one tenant may have waiting.
pub const DEFAULT_MAX_PENDING_PER_TENANT: u64 = 1_000;
/// Longest wait allowed.
const MAX_TTL: Duration = Duration::from_secs(24 * 3600);

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawApprovals {
    #[serde(default, with = "humantime_serde")]
    ttl: Option<Duration>,
    #[serde(default, with = "humantime_serde")]
    poll_interval: Option<Duration>,
    max_pending_per_agent: Option<u64>,
    max_pending_per_tenant: Option<u64>,
}

/// The approvals' settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApprovalsConfig {
    /// How long an approval waits for a decision, and once approved for its use; never
    /// past the writ's expiry.
    pub ttl: Duration,
    /// Seconds between polls a client is asked to keep (CIBA `interval`).
    pub poll_interval: Duration,
    /// Most approvals one agent may have waiting; one more is refused (429).
    pub max_pending_per_agent: u64,
    /// Most approvals one tenant may have waiting; one more is refused (429).
    pub max_pending_per_tenant: u64,
}

impl Default for ApprovalsConfig {
    fn default() -> Self {
        Self {
            ttl: DEFAULT_TTL,
            poll_interval: DEFAULT_POLL_INTERVAL,
            max_pending_per_agent: DEFAULT_MAX_PENDING_PER_AGENT,
            max_pending_per_tenant: DEFAULT_MAX_PENDING_PER_TENANT,
        }
    }
}

pub(super) fn approvals_config(
    raw: RawApprovals,
    problems: &mut Vec<ConfigError>,
) -> ApprovalsConfig {
    let invalid = |field: &str, reason: &str| ConfigError::Invalid {
        field: format!("approvals.{field}"),
        reason: reason.to_string(),
    };
    let mut out = ApprovalsConfig::default();
    match raw.ttl {
        Some(t) if t < Duration::from_secs(1) || t > MAX_TTL => {
            problems.push(invalid("ttl", "must be 1s to 24h"))
        }
        Some(t) => out.ttl = t,
        None => {}
    }
    match raw.poll_interval {
        Some(t) if t < Duration::from_secs(1) || t > Duration::from_secs(60) => {
            problems.push(invalid("poll_interval", "must be 1s to 60s"))
        }
        Some(t) => out.poll_interval = t,
        None => {}
    }
    for (field, value, slot) in [
        (
            "max_pending_per_agent",
            raw.max_pending_per_agent,
            &mut out.max_pending_per_agent,
        ),
        (
            "max_pending_per_tenant",
            raw.max_pending_per_tenant,
            &mut out.max_pending_per_tenant,
        ),
    ] {
        match value {
            Some(n) if n == 0 || n > 1_000_000 => {
                problems.push(invalid(field, "must be 1 to 1000000"))
            }
            Some(n) => *slot = n,
            None => {}
        }
    }
    if out.max_pending_per_agent > out.max_pending_per_tenant {
        problems.push(invalid(
            "max_pending_per_agent",
            "must not be more than max_pending_per_tenant",
        ));
    }
    out
}
