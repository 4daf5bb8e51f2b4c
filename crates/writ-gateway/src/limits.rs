//! Limits at run time: the declared limits, the backend they are kept in (with the local
//! fallback when configured), and the rate-limit headers clients read.

pub(crate) mod headers;
mod lease_release;
pub(crate) mod replay;
pub(crate) mod sessions;
mod settling;

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use writ_limits::{
    Amounts, BackendError, Charge, Dimension, LimitSpec, Limiter, MemoryLimiter, Remaining,
    Reservation, ReserveError, Subject,
};

use crate::config::{LimiterBackend, LimiterConfig};
use crate::error::GatewayError;
use crate::metrics::{LimitDecisions, LimitOutcome};
use settling::Settling;

/// Where limits are kept (the limits themselves are the tenancy snapshot's: `writ.toml`'s
/// and every tenant's).
pub(crate) struct Limits {
    backend: Arc<Limiter>,
    fallback: Option<Arc<Limiter>>,
    /// Settles what is held in `backend`, and in `fallback`.
    settling: Arc<Settling>,
    fallback_settling: Option<Arc<Settling>>,
    lease_ttl: Duration,
    /// Output tokens reserved for a request that states no cap.
    pub(crate) default_output_tokens: u64,
    /// Decisions by dimension and outcome, for the metrics.
    pub(crate) decisions: LimitDecisions,
}

/// Budgets a writ states for itself (`writ:budget`), kept until it expires.
pub(crate) struct WritBudgets {
    /// Most spend over the writ's life.
    pub(crate) usd_micros: Option<u64>,
    /// Most tokens over the writ's life.
    pub(crate) tokens: Option<u64>,
    /// When the writ expires.
    pub(crate) expires_at: SystemTime,
}

/// An admitted request's reservation and the backend that holds it.
///
/// Dropped unsettled (the request's future was dropped: its client closed the connection
/// while the gateway awaited the upstream), it settles itself as if the call used exactly
/// its estimate: what may have been spent stays charged, and its concurrency leases are
/// released at once instead of after the lease TTL.
pub(crate) struct Held {
    /// `None` once settled.
    reservation: Option<Reservation>,
    /// Settles it in the backend that holds it.
    settling: Arc<Settling>,
}

impl std::fmt::Debug for Held {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Held")
            .field("id", &self.reservation.as_ref().map(|r| &r.id))
            .finish_non_exhaustive()
    }
}

/// Nanoseconds since the Unix epoch, as the limiter counts time.
pub(crate) fn nanos(t: SystemTime) -> u64 {
    t.duration_since(SystemTime::UNIX_EPOCH)
        .map(|d| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX))
        .unwrap_or(0)
}

impl Limits {
    /// Connects the configured backend (nothing to connect for memory). Fails with the
    /// backend's error when Redis cannot be reached, refuses the URL's credentials, or
    /// the URL is not valid.
    pub(crate) async fn start(config: &LimiterConfig) -> Result<Self, BackendError> {
        let backend = match &config.backend {
            LimiterBackend::Memory => Limiter::Memory(MemoryLimiter::new()),
            LimiterBackend::Redis(url) => Limiter::Redis(
                writ_limits::RedisLimiter::connect_with_timeout(
                    url.expose(),
                    config.lease_ttl,
                    config.timeout,
                )
                .await?
                // A connection per serving thread (see `workers.rs`).
                .per_thread(
                    crate::serve::workers::MAX_WORKERS + 1,
                    crate::serve::workers::current,
                ),
            ),
        };
        let fallback = config
            .local_fallback
            .then(|| Limiter::Memory(MemoryLimiter::new()));
        Ok(Self::with(
            backend,
            fallback,
            config.lease_ttl,
            config.default_output_tokens,
        ))
    }

    /// Limits kept in `backend`, with `fallback` when it fails.
    fn with(
        backend: Limiter,
        fallback: Option<Limiter>,
        lease_ttl: Duration,
        default_output_tokens: u64,
    ) -> Self {
        let backend = Arc::new(backend);
        let fallback = fallback.map(Arc::new);
        Self {
            settling: Settling::new(backend.clone(), lease_ttl),
            fallback_settling: fallback
                .as_ref()
                .map(|f| Settling::new(f.clone(), lease_ttl)),
            backend,
            fallback,
            lease_ttl,
            default_output_tokens,
            decisions: LimitDecisions::default(),
        }
    }

    /// Whether a reservation is a round trip to another server (Redis).
    pub(crate) fn reserves_remotely(&self) -> bool {
        matches!(*self.backend, Limiter::Redis(_))
    }

    /// The backend limit state is kept in.
    pub(crate) fn limiter(&self) -> &Limiter {
        &self.backend
    }

    /// The backend and the local fallback (when configured), which the replay and MCP
    /// session stores share.
    pub(crate) fn backends(&self) -> (Arc<Limiter>, Option<Arc<Limiter>>) {
        (self.backend.clone(), self.fallback.clone())
    }

    /// Reserves `estimate` on every limit of `specs` that applies to `subject`, all or
    /// nothing. `None` when no limit applies.
    pub(crate) async fn reserve(
        &self,
        specs: &[LimitSpec],
        subject: &Subject<'_>,
        estimate: Amounts,
        budgets: &WritBudgets,
        now: SystemTime,
    ) -> Result<Option<Held>, GatewayError> {
        let now_ns = nanos(now);
        let mut charges: Vec<_> = specs
            .iter()
            .filter_map(|s| s.charge(subject, &estimate, now_ns, self.lease_ttl))
            .collect();
        let expires_ns = nanos(budgets.expires_at);
        for (dimension, limit) in [
            (Dimension::Cost, budgets.usd_micros),
            (Dimension::Tokens, budgets.tokens),
        ] {
            if let Some(limit) = limit {
                charges.push(Charge::writ_budget(
                    subject.writ,
                    dimension,
                    limit,
                    estimate.of(dimension),
                    now_ns,
                    expires_ns,
                ));
            }
        }
        if charges.is_empty() {
            return Ok(None);
        }
        charges.sort_by(|a, b| a.key.cmp(&b.key));
        charges.dedup_by(|a, b| a.key == b.key);
        let id = format!("{:032x}", rand::random::<u128>());
        let mut settling = &self.settling;
        // This thread's queued settlements ride on the reservation's own call.
        let outcome = match self
            .settling
            .carry()
            .settle_then_reserve(id.clone(), charges.clone(), estimate, now_ns)
            .await
        {
            Err(ReserveError::Backend(e)) => match (&self.fallback, &self.fallback_settling) {
                (Some(local), Some(local_settling)) => {
                    tracing::warn!(error = %e, "limit backend unavailable; using local limits");
                    settling = local_settling;
                    local.reserve(id, charges.clone(), estimate, now_ns).await
                }
                _ => {
                    tracing::error!(error = %e, "limit backend unavailable; refusing (fail closed)");
                    self.count(&charges, LimitOutcome::Unavailable);
                    return Err(GatewayError::LimiterUnavailable);
                }
            },
            outcome => outcome,
        };
        match outcome {
            Ok(reservation) => {
                self.count(&reservation.charges, LimitOutcome::Allowed);
                Ok(Some(Held {
                    reservation: Some(reservation),
                    settling: settling.clone(),
                }))
            }
            Err(ReserveError::Refused(refusal)) => {
                self.decisions
                    .count(refusal.dimension, LimitOutcome::Refused);
                Err(GatewayError::RateLimited(Box::new(refusal)))
            }
            Err(ReserveError::Backend(_)) => {
                self.count(&charges, LimitOutcome::Unavailable);
                Err(GatewayError::LimiterUnavailable)
            }
        }
    }

    /// Counts `outcome` once for each limit of `charges`.
    fn count(&self, charges: &[Charge], outcome: LimitOutcome) {
        for charge in charges {
            self.decisions.count(charge.dimension, outcome);
        }
    }
}

/// One limit counter, for the admin read-out.
#[derive(Debug, Clone, serde::Serialize, utoipa::ToSchema)]
pub(crate) struct Counter {
    /// `tenant=acme,agent=travel`.
    pub(crate) scope: String,
    /// `requests`, `tokens`, …
    pub(crate) dimension: String,
    /// `r60` (rate per 60 s), `d20780` (UTC day), `m202611` (month), `c` (in flight).
    pub(crate) window: String,
    pub(crate) limit: u64,
    /// Used in the window; for rates, units still to drain; for concurrency, held now.
    pub(crate) used: u64,
}

impl Limits {
    /// Current counters whose scope includes every `field=value` pair of `filter`.
    pub(crate) async fn counters(
        &self,
        filter: &[(&str, &str)],
        now: SystemTime,
    ) -> Result<Vec<Counter>, GatewayError> {
        let now_ns = nanos(now);
        let raw = self
            .backend
            .snapshot(now_ns)
            .await
            .map_err(|_| GatewayError::LimiterUnavailable)?;
        let mut out = Vec::new();
        for (key, value) in raw {
            let Some(rest) = key.strip_prefix("writ:limit:") else {
                continue;
            };
            let mut parts = rest.splitn(4, ':');
            let (Some(dimension), Some(window), Some(limit), Some(scope)) =
                (parts.next(), parts.next(), parts.next(), parts.next())
            else {
                continue;
            };
            let Ok(limit) = limit.parse::<u64>() else {
                continue;
            };
            let pairs: Vec<&str> = scope.split(',').collect();
            if !filter
                .iter()
                .all(|(f, v)| pairs.contains(&format!("{f}={v}").as_str()))
            {
                continue;
            }
            // Rates are kept as time ahead of now; shown as units in use.
            let used = match window.strip_prefix('r').and_then(|p| p.parse::<u64>().ok()) {
                Some(period) if period > 0 => {
                    let unit_ns = period.saturating_mul(1_000_000_000) / limit.max(1);
                    value.div_ceil(unit_ns.max(1))
                }
                _ => value,
            };
            out.push(Counter {
                scope: scope.to_string(),
                dimension: dimension.to_string(),
                window: window.to_string(),
                limit,
                used,
            });
        }
        Ok(out)
    }
}

impl Held {
    /// What was left on each limit when the request was admitted.
    pub(crate) fn remaining(&self) -> &[Remaining] {
        self.reservation
            .as_ref()
            .map_or(&[], |r| r.remaining.as_slice())
    }

    /// Settles with what the request used: over-runs charged, the rest given back,
    /// concurrency released. In Redis the settlement is queued, and carried by the next
    /// reservation on this thread or sent after the response (see `settling.rs`); a
    /// backend failure then is logged, what was reserved stays
    /// charged, and releasing the leases is tried again until the backend answers (or the
    /// lease TTL has passed: they have lapsed then).
    pub(crate) fn settle(mut self, actual: Amounts) {
        if let Some(reservation) = self.reservation.take() {
            self.settling.settle(reservation, actual);
        }
    }
}

impl Drop for Held {
    fn drop(&mut self) {
        if let Some(reservation) = self.reservation.take() {
            let estimate = reservation.estimate;
            self.settling.settle(reservation, estimate);
        }
    }
}

#[cfg(test)]
mod tests;
