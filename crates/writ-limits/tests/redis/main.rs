//! The Redis backend against the real Redis at 127.0.0.1:6379: the same answers as
//! `MemoryLimiter` on the same inputs, exact under concurrency across processes'
//! connections, and leases that expire by the time passed in; likewise for strikes
//! (failed authentications), their back-off and lock-out.
//!
//! These fail, never skip, when Redis is not running. Every test keys its limits by a scope
//! of its own, so they run in parallel and again and again on the same Redis.
#![allow(clippy::unwrap_used, missing_docs)]

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use writ_limits::model::DEFAULT_LEASE_TTL;
use writ_limits::{
    Amounts, BackendError, Charge, Dimension, Field, LimitSpec, Limiter, MemoryLimiter, Operation,
    RedisLimiter, Refusal, Reservation, ReserveError, StrikeOutcome, StrikePolicy, StrikeVerdict,
    Subject, Window,
};

mod backend;
mod carried;
mod concurrency;
mod reserve_settle;
mod strikes;

const URL: &str = "redis://127.0.0.1:6379/";

/// A reservation's verdict, panicking if the backend failed instead of answering.
fn verdict(r: Result<Reservation, ReserveError>) -> Result<Reservation, Refusal> {
    match r {
        Ok(r) => Ok(r),
        Err(ReserveError::Refused(refusal)) => Err(refusal),
        Err(ReserveError::Backend(e)) => panic!("the backend failed: {e}"),
    }
}
const NS: u64 = 1_000_000_000;

async fn connect(lease_ttl: Duration) -> RedisLimiter {
    match RedisLimiter::connect(URL, lease_ttl).await {
        Ok(r) => r,
        Err(e) => panic!("these tests need Redis at {URL}: {e}"),
    }
}

/// An agent name no other test, run or process uses.
fn unique_agent() -> String {
    static N: AtomicU64 = AtomicU64::new(0);
    format!(
        "test-{}-{}-{}",
        std::process::id(),
        now_ns(),
        N.fetch_add(1, Ordering::Relaxed)
    )
}

/// The real time: budget keys expire at their window's end by Redis' clock, so the times
/// these tests pass must be real ones.
#[allow(clippy::disallowed_methods)]
fn now_ns() -> u64 {
    u64::try_from(
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .as_nanos(),
    )
    .unwrap()
}

fn spec(dimension: Dimension, window: Window, limit: u64) -> LimitSpec {
    LimitSpec {
        scope: vec![Field::Agent],
        dimension,
        window,
        limit,
        burst: limit,
        only: Vec::new(),
    }
}

fn requests(n: u64) -> Amounts {
    Amounts {
        requests: n,
        ..Amounts::default()
    }
}

fn input_tokens(n: u64) -> Amounts {
    Amounts {
        input_tokens: n,
        ..Amounts::default()
    }
}

/// A `MemoryLimiter` and a `RedisLimiter` fed the same calls, asserting the same answers.
struct Both {
    memory: MemoryLimiter,
    redis: RedisLimiter,
    agent: String,
    specs: Vec<LimitSpec>,
    lease_ttl: Duration,
}

impl Both {
    async fn new(specs: Vec<LimitSpec>) -> Self {
        Self::with_ttl(specs, DEFAULT_LEASE_TTL).await
    }

    async fn with_ttl(specs: Vec<LimitSpec>, lease_ttl: Duration) -> Self {
        Self {
            memory: MemoryLimiter::new(),
            redis: connect(lease_ttl).await,
            agent: unique_agent(),
            specs,
            lease_ttl,
        }
    }

    fn charges(&self, amounts: &Amounts, now: u64) -> Vec<Charge> {
        let subject = Subject {
            tenant: "t",
            agent: &self.agent,
            writ: "w",
            upstream: "u",
            model: Some("m"),
        };
        self.specs
            .iter()
            .filter_map(|s| s.charge(&subject, amounts, now, self.lease_ttl))
            .collect()
    }

    async fn reserve(&self, id: &str, amounts: Amounts, now: u64) -> Result<Reservation, Refusal> {
        let charges = self.charges(&amounts, now);
        let m = self
            .memory
            .reserve(id.to_string(), charges.clone(), amounts, now);
        let r = verdict(
            self.redis
                .reserve(id.to_string(), charges, amounts, now)
                .await,
        );
        assert_eq!(r, m, "redis and memory disagree reserving {id} at {now}");
        r
    }

    async fn settle(&self, reservation: &Reservation, actual: Amounts) {
        self.memory.settle(reservation, &actual);
        self.redis.settle(reservation, &actual).await.unwrap();
    }

    /// This test's counters, asserted equal in both. A zero counter and an absent key mean
    /// the same (Redis deletes an emptied lease set; memory keeps the empty entry).
    async fn snapshot(&self, now: u64) -> Vec<(String, u64)> {
        let mine = |v: Vec<(String, u64)>| -> Vec<(String, u64)> {
            v.into_iter()
                .filter(|(k, n)| k.contains(&self.agent) && *n != 0)
                .collect()
        };
        let m = mine(self.memory.snapshot(now));
        let r = mine(self.redis.snapshot(now).await.unwrap());
        assert_eq!(r, m, "redis and memory snapshots disagree at {now}");
        r
    }
}

async fn redis_conn() -> redis::aio::MultiplexedConnection {
    redis::Client::open(URL)
        .unwrap()
        .get_multiplexed_async_connection()
        .await
        .unwrap()
}
