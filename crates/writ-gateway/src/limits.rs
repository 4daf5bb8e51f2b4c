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
        let outcome = match self
            .backend
            .reserve(id.clone(), charges.clone(), estimate, now_ns)
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
    /// concurrency released. In Redis the settlement is queued and sent after the response
    /// (see `settling.rs`); a backend failure then is logged, what was reserved stays
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
mod tests {
    use super::*;
    use writ_limits::{Field, RedisLimiter, Window};

    const REDIS: &str = "redis://127.0.0.1:6379/";

    /// A fixed instant (January 2027), so the day's window is known.
    fn now() -> SystemTime {
        SystemTime::UNIX_EPOCH + Duration::from_secs(1_800_000_000)
    }

    /// One request a day per agent, kept in `backend`, with `fallback` if given.
    fn one_a_day_spec() -> Vec<LimitSpec> {
        vec![LimitSpec {
            scope: vec![Field::Agent],
            dimension: Dimension::Requests,
            window: Window::Day,
            limit: 1,
            burst: 1,
            only: Vec::new(),
        }]
    }

    fn one_a_day(backend: Limiter, fallback: Option<Limiter>) -> Limits {
        Limits::with(backend, fallback, writ_limits::model::DEFAULT_LEASE_TTL, 0)
    }

    fn subject(agent: &str) -> Subject<'_> {
        Subject {
            tenant: "t",
            agent,
            writ: "w",
            upstream: "u",
            model: None,
        }
    }

    fn no_budgets() -> WritBudgets {
        WritBudgets {
            usd_micros: None,
            tokens: None,
            expires_at: now() + Duration::from_secs(60),
        }
    }

    fn one_request() -> Amounts {
        Amounts {
            requests: 1,
            ..Amounts::default()
        }
    }

    /// A Redis backend whose key for `agent` holds a hash, so every reservation on it fails
    /// in Redis (a real backend failure, not a refusal).
    async fn failing_redis(agent: &str) -> Limiter {
        let redis = RedisLimiter::connect(REDIS, writ_limits::model::DEFAULT_LEASE_TTL)
            .await
            .unwrap_or_else(|e| panic!("this test needs Redis at {REDIS}: {e}"));
        let limits = one_a_day(Limiter::Memory(MemoryLimiter::new()), None);
        let now_ns = nanos(now());
        let key = one_a_day_spec()[0]
            .charge(&subject(agent), &one_request(), now_ns, limits.lease_ttl)
            .unwrap()
            .key;
        let mut conn = redis::Client::open(REDIS)
            .unwrap()
            .get_multiplexed_async_connection()
            .await
            .unwrap();
        let () = redis::pipe()
            .hset(&key, "f", "v")
            .ignore()
            .expire(&key, 60)
            .ignore()
            .query_async(&mut conn)
            .await
            .unwrap();
        Limiter::Redis(redis)
    }

    fn unique_agent() -> String {
        format!("gw-limits-{:032x}", rand::random::<u128>())
    }

    /// One request in flight per agent, and a day's budget of 1000 tokens.
    fn one_in_flight_and_tokens() -> Vec<LimitSpec> {
        let spec = |dimension, window, limit| LimitSpec {
            scope: vec![Field::Agent],
            dimension,
            window,
            limit,
            burst: limit,
            only: Vec::new(),
        };
        vec![
            spec(Dimension::Concurrency, Window::InFlight, 1),
            spec(Dimension::Tokens, Window::Day, 1000),
        ]
    }

    /// A request whose client went away while the upstream worked is dropped with its
    /// reservation unsettled: its lease must come back at once (not after the lease TTL)
    /// and its estimate stay charged, as the upstream may have spent it.
    #[tokio::test]
    async fn a_reservation_dropped_unsettled_keeps_its_charge_and_frees_its_lease() {
        let limits = one_a_day(Limiter::Memory(MemoryLimiter::new()), None);
        let specs = one_in_flight_and_tokens();
        let estimate = Amounts {
            requests: 1,
            input_tokens: 100,
            output_tokens: 64,
            ..Amounts::default()
        };
        let (who, budgets) = (subject("a"), no_budgets());
        let reserve = || limits.reserve(&specs, &who, estimate, &budgets, now());
        let held = reserve().await.unwrap().expect("limits apply");
        assert!(
            matches!(reserve().await, Err(GatewayError::RateLimited(_))),
            "the one slot is taken"
        );
        drop(held);
        // The settlement runs on the runtime: poll, yielding to it, with a deadline.
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        let again = loop {
            match reserve().await {
                Ok(again) => break again.expect("limits apply"),
                Err(GatewayError::RateLimited(_)) if std::time::Instant::now() < deadline => {
                    tokio::task::yield_now().await;
                }
                Err(e) => panic!("the dropped reservation's lease was not released: {e:?}"),
            }
        };
        let tokens: Vec<u64> = limits
            .backend
            .snapshot(nanos(now()))
            .await
            .unwrap()
            .into_iter()
            .filter(|(key, _)| key.starts_with("writ:limit:tokens:"))
            .map(|(_, used)| used)
            .collect();
        assert_eq!(
            tokens,
            vec![2 * 164],
            "the dropped one's estimate stays charged"
        );
        again.settle(Amounts::default());
    }

    /// Two gateways on one Redis settle their reservations off the requests' path, in
    /// batches: once the queues are sent the budget holds exactly what was used (every
    /// estimate given back or charged over) and no lease is left held.
    #[tokio::test]
    async fn batched_settlements_on_two_gateways_are_exact() {
        let ttl = writ_limits::model::DEFAULT_LEASE_TTL;
        let gateway = || async {
            let redis = RedisLimiter::connect(REDIS, ttl)
                .await
                .unwrap_or_else(|e| panic!("this test needs Redis at {REDIS}: {e}"));
            Limits::with(Limiter::Redis(redis), None, ttl, 0)
        };
        let (a, b) = (gateway().await, gateway().await);
        let agent = unique_agent();
        let (who, budgets) = (subject(&agent), no_budgets());
        let specs = one_in_flight_and_tokens()
            .into_iter()
            .map(|mut s| {
                s.limit *= 40;
                s.burst = s.limit;
                s
            })
            .collect::<Vec<_>>();
        let estimate = Amounts {
            requests: 1,
            input_tokens: 10,
            output_tokens: 10,
            ..Amounts::default()
        };
        // 40 in flight at once, half on each gateway: the limit of 40 is reached.
        let mut held = Vec::new();
        for i in 0..40 {
            let limits = if i % 2 == 0 { &a } else { &b };
            let h = limits
                .reserve(&specs, &who, estimate, &budgets, now())
                .await;
            held.push(h.unwrap().expect("limits apply"));
        }
        let refused = a.reserve(&specs, &who, estimate, &budgets, now()).await;
        assert!(
            matches!(refused, Err(GatewayError::RateLimited(_))),
            "{refused:?}"
        );
        // Settled with 0..39 tokens each: 780 used in all.
        for (i, h) in held.into_iter().enumerate() {
            h.settle(Amounts {
                input_tokens: i as u64,
                ..Amounts::default()
            });
        }
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        while a.settling.queued() + b.settling.queued() > 0 {
            assert!(std::time::Instant::now() < deadline, "never sent");
            tokio::task::yield_now().await;
        }
        let mine: Vec<(String, u64)> = a
            .backend
            .snapshot(nanos(now()))
            .await
            .unwrap()
            .into_iter()
            .filter(|(key, n)| key.contains(&agent) && *n != 0)
            .collect();
        assert_eq!(
            mine.len(),
            1,
            "only the day's tokens, no lease held: {mine:?}"
        );
        assert!(mine[0].0.starts_with("writ:limit:tokens:"), "{mine:?}");
        assert_eq!(mine[0].1, 780);
    }

    #[tokio::test]
    async fn a_refusal_is_rate_limited() {
        let limits = one_a_day(Limiter::Memory(MemoryLimiter::new()), None);
        let first = limits
            .reserve(
                &one_a_day_spec(),
                &subject("a"),
                one_request(),
                &no_budgets(),
                now(),
            )
            .await;
        assert!(matches!(first, Ok(Some(_))), "{first:?}");
        let second = limits
            .reserve(
                &one_a_day_spec(),
                &subject("a"),
                one_request(),
                &no_budgets(),
                now(),
            )
            .await;
        assert!(
            matches!(&second, Err(GatewayError::RateLimited(r)) if r.limit == 1 && r.dimension == Dimension::Requests),
            "{second:?}"
        );
        let totals = limits.decisions.totals();
        assert!(totals.contains(&("requests", "allowed", 1)), "{totals:?}");
        assert!(totals.contains(&("requests", "refused", 1)), "{totals:?}");
        assert_eq!(totals.iter().map(|t| t.2).sum::<u64>(), 2, "{totals:?}");
    }

    #[tokio::test]
    async fn a_failing_backend_fails_closed_without_a_fallback() {
        let agent = unique_agent();
        let limits = one_a_day(failing_redis(&agent).await, None);
        let outcome = limits
            .reserve(
                &one_a_day_spec(),
                &subject(&agent),
                one_request(),
                &no_budgets(),
                now(),
            )
            .await;
        assert!(
            matches!(outcome, Err(GatewayError::LimiterUnavailable)),
            "{outcome:?}"
        );
        let totals = limits.decisions.totals();
        assert!(
            totals.contains(&("requests", "unavailable", 1)),
            "{totals:?}"
        );
    }

    #[tokio::test]
    async fn a_failing_backend_falls_back_to_local_limits_which_refuse_as_limits() {
        let agent = unique_agent();
        let limits = one_a_day(
            failing_redis(&agent).await,
            Some(Limiter::Memory(MemoryLimiter::new())),
        );
        let held = limits
            .reserve(
                &one_a_day_spec(),
                &subject(&agent),
                one_request(),
                &no_budgets(),
                now(),
            )
            .await
            .unwrap()
            .expect("a limit applies");
        assert!(
            Arc::ptr_eq(&held.settling.backend, limits.fallback.as_ref().unwrap()),
            "held in the local fallback"
        );
        let refused = limits
            .reserve(
                &one_a_day_spec(),
                &subject(&agent),
                one_request(),
                &no_budgets(),
                now(),
            )
            .await;
        assert!(
            matches!(refused, Err(GatewayError::RateLimited(_))),
            "{refused:?}"
        );
    }
}
