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

#[tokio::test]
async fn all_or_nothing() {
    let both = Both::new(vec![
        spec(Dimension::Requests, Window::Day, 10),
        spec(Dimension::Tokens, Window::Day, 100),
    ])
    .await;
    let now = now_ns();
    let big = Amounts {
        requests: 1,
        input_tokens: 60,
        ..Amounts::default()
    };
    let r = both.reserve("1", big, now).await.unwrap();
    assert_eq!(r.remaining[0].remaining, 9);
    assert_eq!(r.remaining[1].remaining, 40);
    // The second fails on tokens, so requests must not be taken either.
    let refusal = both.reserve("2", big, now).await.unwrap_err();
    assert_eq!(refusal.dimension, Dimension::Tokens);
    assert_eq!(refusal.scope, format!("agent={}", both.agent));
    let small = Amounts {
        requests: 1,
        input_tokens: 40,
        ..Amounts::default()
    };
    let r2 = both.reserve("3", small, now).await.unwrap();
    assert_eq!(r2.remaining[0].remaining, 8);
    let snapshot = both.snapshot(now).await;
    let values: Vec<u64> = snapshot.iter().map(|(_, n)| *n).collect();
    assert_eq!(values, vec![2, 100]);
}

#[tokio::test]
async fn settle_charges_overruns_and_refunds_the_rest() {
    let both = Both::new(vec![spec(Dimension::Cost, Window::Day, 1_000)]).await;
    let now = now_ns();
    let cost = |n| Amounts {
        cost_usd_micros: n,
        ..Amounts::default()
    };
    let est = cost(300);
    let r = both.reserve("1", est, now).await.unwrap();
    // Used more than estimated: charged.
    both.settle(&r, cost(500)).await;
    assert_eq!(both.snapshot(now).await[0].1, 500);
    let r = both.reserve("2", est, now).await.unwrap();
    // Failed upstream: refunded.
    both.settle(&r, Amounts::default()).await;
    assert_eq!(both.snapshot(now).await[0].1, 500);
    // 500 left: 300 fits once, not twice.
    let r3 = both.reserve("3", est, now).await.unwrap();
    let refusal = both.reserve("4", est, now).await.unwrap_err();
    assert_eq!(refusal.dimension, Dimension::Cost);
    both.settle(&r3, cost(100)).await;
    assert_eq!(both.snapshot(now).await[0].1, 600);

    // The budget key lives until its window's end plus a day, by the Redis clock.
    let key = &r.charges[0].key;
    let mut conn = redis::Client::open(URL)
        .unwrap()
        .get_multiplexed_async_connection()
        .await
        .unwrap();
    let pttl: i64 = redis::cmd("PTTL")
        .arg(key)
        .query_async(&mut conn)
        .await
        .unwrap();
    assert!(
        pttl > 86_400_000 && pttl <= 2 * 86_400_000,
        "budget key PTTL {pttl}"
    );

    // Given back more than is counted (the counter was lowered meanwhile): zero, never below,
    // as `saturating_sub` in memory.
    let r = both.reserve("5", cost(10), now).await.unwrap();
    let () = redis::cmd("SET")
        .arg(key)
        .arg("3")
        .arg("KEEPTTL")
        .query_async(&mut conn)
        .await
        .unwrap();
    both.redis.settle(&r, &Amounts::default()).await.unwrap();
    let left: String = redis::cmd("GET")
        .arg(key)
        .query_async(&mut conn)
        .await
        .unwrap();
    assert_eq!(left, "0");
}

/// Several reservations settled in one call (as the gateway sends a batch) end exactly where
/// settling each in turn does: rates, budgets and leases, with two of them on the same keys.
#[tokio::test]
async fn a_batch_of_settlements_is_settled_as_each_would_be() {
    let both = Both::new(vec![
        spec(
            Dimension::Requests,
            Window::Rate {
                period: Duration::from_secs(60),
            },
            100,
        ),
        spec(Dimension::Tokens, Window::Day, 1_000),
        spec(Dimension::Concurrency, Window::InFlight, 3),
    ])
    .await;
    let now = now_ns();
    let estimate = Amounts {
        requests: 1,
        input_tokens: 100,
        ..Amounts::default()
    };
    let a = both.reserve("a", estimate, now).await.unwrap();
    let b = both.reserve("b", estimate, now).await.unwrap();
    let c = both.reserve("c", estimate, now).await.unwrap();
    assert!(
        both.reserve("d", estimate, now).await.is_err(),
        "three in flight"
    );
    let (over, under) = (input_tokens(250), input_tokens(10));
    let failed = Amounts::default();
    both.memory.settle(&a, &over);
    both.memory.settle(&b, &under);
    both.memory.settle(&c, &failed);
    both.redis
        .settle_many(&[(&a, &over), (&b, &under), (&c, &failed)])
        .await
        .unwrap();
    let tokens: Vec<u64> = both
        .snapshot(now)
        .await
        .into_iter()
        .filter(|(k, _)| k.starts_with("writ:limit:tokens:"))
        .map(|(_, n)| n)
        .collect();
    assert_eq!(tokens, vec![260], "250 + 10 + 0, each estimate given back");
    // Every lease is back: three fit again.
    for id in ["e", "f", "g"] {
        both.reserve(id, estimate, now).await.unwrap();
    }
    // An empty batch is no call.
    both.redis.settle_many(&[]).await.unwrap();
}

#[tokio::test]
async fn concurrency_leases_are_released_and_expire() {
    let both = Both::new(vec![spec(Dimension::Concurrency, Window::InFlight, 2)]).await;
    let now = now_ns();
    let one = requests(1);
    let a = both.reserve("a", one, now).await.unwrap();
    let _b = both.reserve("b", one, now).await.unwrap();
    let refusal = both.reserve("c", one, now).await.unwrap_err();
    assert_eq!(refusal.retry_after, Duration::from_secs(1));
    assert_eq!(both.snapshot(now).await[0].1, 2);
    both.settle(&a, one).await;
    assert_eq!(both.snapshot(now).await[0].1, 1);
    let _d = both.reserve("d", one, now).await.unwrap();
    // Reserving again under a held id does not count that id twice.
    both.reserve("d", one, now).await.unwrap();
    // Leases never released expire after their TTL.
    let later = now + DEFAULT_LEASE_TTL.as_secs() * NS + 1;
    both.reserve("e", one, later).await.unwrap();
    both.reserve("f", one, later).await.unwrap();
    both.reserve("g", one, later).await.unwrap_err();
    assert_eq!(both.snapshot(later).await[0].1, 2);
}

#[tokio::test]
async fn rates_refill_over_time() {
    let both = Both::new(vec![spec(
        Dimension::Tokens,
        Window::Rate {
            period: Duration::from_secs(60),
        },
        600,
    )])
    .await;
    let now = now_ns();
    let est = input_tokens(300);
    let r1 = both.reserve("1", est, now).await.unwrap();
    both.reserve("2", est, now).await.unwrap();
    let refusal = both.reserve("3", est, now).await.unwrap_err();
    assert_eq!(refusal.retry_after, Duration::from_secs(30));
    assert_eq!(both.snapshot(now).await[0].1, 60 * NS);
    // The first used only 60 tokens: 240 come back at once.
    both.settle(&r1, input_tokens(60)).await;
    both.reserve("4", est, now).await.unwrap_err();
    both.reserve("5", input_tokens(240), now).await.unwrap();
    // Ten seconds later, 100 tokens have come back.
    let later = now + 10 * NS;
    both.reserve("6", input_tokens(101), later)
        .await
        .unwrap_err();
    let r = both.reserve("7", input_tokens(100), later).await.unwrap();
    assert_eq!(r.remaining[0].remaining, 0);
    // Larger than the burst: never admissible.
    let refusal = both
        .reserve("8", input_tokens(601), later + 3600 * NS)
        .await;
    assert_eq!(refusal.unwrap_err().retry_after, Duration::from_secs(60));
}

/// Uneven periods (increments that are not whole microseconds) and times in nanoseconds
/// near the top of `u64`'s present-day range: the script's arithmetic must stay exact.
#[tokio::test]
async fn rates_are_exact_to_the_nanosecond() {
    let mut uneven = spec(
        Dimension::Requests,
        Window::Rate {
            period: Duration::from_nanos(7 * NS + 3),
        },
        3,
    );
    uneven.burst = 2;
    let both = Both::new(vec![uneven]).await;
    let mut now = now_ns() | 0x3ff;
    for i in 0..40 {
        let id = i.to_string();
        match both.reserve(&id, requests(1 + i % 2), now).await {
            Ok(r) if i % 3 == 0 => both.settle(&r, requests(i % 4)).await,
            _ => {}
        }
        both.snapshot(now).await;
        now += 1_234_567_891 + i * 7;
    }
}

/// Sums whose low nine digits carry exactly, and sums past `u64::MAX` (saturating as in
/// memory): the script's two-limb arithmetic must match `u64`'s.
#[tokio::test]
async fn arithmetic_is_exact_at_carries_and_saturation() {
    // One unit per nanosecond, so the arrival time moves by exactly the amount.
    let rate = Both::new(vec![spec(
        Dimension::Requests,
        Window::Rate {
            period: Duration::from_secs(1),
        },
        NS,
    )])
    .await;
    let now = now_ns() / NS * NS + 123_456_789;
    rate.reserve("1", requests(NS - 123_456_789), now)
        .await
        .unwrap();
    assert_eq!(rate.snapshot(now).await[0].1, NS - 123_456_789);
    rate.reserve("2", requests(123_456_789), now).await.unwrap();
    rate.reserve("3", requests(1), now).await.unwrap_err();
    assert_eq!(rate.snapshot(now).await[0].1, NS);

    let budget = Both::new(vec![spec(Dimension::Cost, Window::Day, u64::MAX)]).await;
    let cost = |n| Amounts {
        cost_usd_micros: n,
        ..Amounts::default()
    };
    let r = budget.reserve("1", cost(u64::MAX - 5), now).await.unwrap();
    budget.settle(&r, cost(u64::MAX)).await;
    assert_eq!(budget.snapshot(now).await[0].1, 5);
    budget.reserve("2", cost(999_999_995), now).await.unwrap();
    assert_eq!(budget.snapshot(now).await[0].1, NS);
    let r = budget.reserve("3", cost(u64::MAX), now).await.unwrap();
    assert_eq!(budget.snapshot(now).await[0].1, u64::MAX);
    budget.reserve("4", cost(1), now).await.unwrap();
    budget.settle(&r, cost(0)).await;
    // Saturated, then the reserved u64::MAX given back: nothing left (zeros are not listed).
    assert!(budget.snapshot(now).await.is_empty());
}

/// A random mix of every way of counting, reserves and settles, with time moving on in whole
/// microseconds: both backends give the same answers throughout.
#[tokio::test]
async fn random_operations_agree_with_memory() {
    let mut small_burst = spec(
        Dimension::Tokens,
        Window::Rate {
            period: Duration::from_secs(60),
        },
        1_000,
    );
    small_burst.burst = 300;
    let both = Both::with_ttl(
        vec![
            spec(Dimension::Requests, Window::Day, 40),
            spec(Dimension::Cost, Window::Month, 5_000),
            small_burst,
            spec(
                Dimension::Requests,
                Window::Rate {
                    period: Duration::from_secs(1),
                },
                7,
            ),
            spec(Dimension::Concurrency, Window::InFlight, 3),
        ],
        Duration::from_secs(5),
    )
    .await;
    let mut seed: u64 = 0x9e37_79b9_7f4a_7c15;
    let mut rand = move |n: u64| {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed % n
    };
    // Noon (UTC) of today: the run advances up to ten minutes, and must not cross into
    // the next day, where memory has dropped yesterday's day window while Redis keeps the
    // key until it expires (both right; the snapshots would differ only in that).
    const DAY_NS: u64 = 86_400 * 1_000_000_000;
    let mut now = now_ns() / DAY_NS * DAY_NS + DAY_NS / 2;
    let mut open: Vec<Reservation> = Vec::new();
    for i in 0..300 {
        let amounts = Amounts {
            requests: 1,
            input_tokens: rand(200),
            output_tokens: rand(100),
            cost_usd_micros: rand(200),
            compute_ms: 0,
        };
        if let Ok(r) = both.reserve(&format!("r{i}"), amounts, now).await {
            open.push(r);
        }
        if !open.is_empty() && rand(3) > 0 {
            let r = open.swap_remove(usize::try_from(rand(open.len() as u64)).unwrap());
            let actual = Amounts {
                requests: rand(2),
                input_tokens: rand(300),
                output_tokens: rand(100),
                cost_usd_micros: rand(400),
                compute_ms: 0,
            };
            both.settle(&r, actual).await;
        }
        if i % 10 == 0 {
            both.snapshot(now).await;
        }
        now += rand(2_000_000) * 1_000;
    }
}

/// One request's charge against a fresh agent's budget of `limit` requests a day, and the
/// time it is charged at.
fn daily_request_budget(limit: u64) -> (Charge, u64) {
    let agent = unique_agent();
    let subject = Subject {
        tenant: "t",
        agent: &agent,
        writ: "w",
        upstream: "u",
        model: None,
    };
    let now = now_ns();
    let charge = spec(Dimension::Requests, Window::Day, limit)
        .charge(&subject, &requests(1), now, DEFAULT_LEASE_TTL)
        .unwrap();
    (charge, now)
}

/// Three limiters on three connections, 300 reservations at once on a budget of 100: exactly
/// 100 are admitted.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exact_under_concurrency() {
    let limiters = [
        Arc::new(connect(DEFAULT_LEASE_TTL).await),
        Arc::new(connect(DEFAULT_LEASE_TTL).await),
        Arc::new(connect(DEFAULT_LEASE_TTL).await),
    ];
    let (charge, now) = daily_request_budget(100);
    let tasks: Vec<_> = (0..300)
        .map(|i| {
            let limiter = Arc::clone(&limiters[i % 3]);
            let charge = charge.clone();
            tokio::spawn(async move {
                limiter
                    .reserve(format!("r{i}"), vec![charge], requests(1), now)
                    .await
            })
        })
        .collect();
    let mut admitted = 0;
    let mut refused = 0;
    for task in tasks {
        match verdict(task.await.unwrap()) {
            Ok(r) => {
                assert!(r.remaining[0].remaining < 100);
                admitted += 1;
            }
            Err(refusal) => {
                assert_eq!(refusal.dimension, Dimension::Requests);
                refused += 1;
            }
        }
    }
    assert_eq!((admitted, refused), (100, 200));
    let snapshot = limiters[0].snapshot(now).await.unwrap();
    let used: Vec<u64> = snapshot
        .iter()
        .filter(|(k, _)| *k == charge.key)
        .map(|(_, n)| *n)
        .collect();
    assert_eq!(used, vec![100]);
}

/// A lease with a one-second TTL still holds its slot half a second on and has freed it two
/// seconds on, by the times passed in (no sleeping: the script must not read Redis' clock).
#[tokio::test]
async fn leases_expire_by_the_time_passed_in() {
    let ttl = Duration::from_secs(1);
    let both = Both::with_ttl(vec![spec(Dimension::Concurrency, Window::InFlight, 1)], ttl).await;
    let now = now_ns();
    let held = both.reserve("held", requests(1), now).await.unwrap();
    both.reserve("x", requests(1), now).await.unwrap_err();
    both.reserve("y", requests(1), now + NS / 2)
        .await
        .unwrap_err();
    both.reserve("z", requests(1), now + 2 * NS).await.unwrap();

    // The key itself vanishes (Redis clock) a lease TTL after its last reservation, so a
    // crashed gateway's leases do not linger.
    let mut conn = redis::Client::open(URL)
        .unwrap()
        .get_multiplexed_async_connection()
        .await
        .unwrap();
    let pttl: i64 = redis::cmd("PTTL")
        .arg(&held.charges[0].key)
        .query_async(&mut conn)
        .await
        .unwrap();
    assert!(pttl > 0 && pttl <= 1_000, "lease key PTTL {pttl}");
}

#[tokio::test]
async fn unreachable_redis_fails_fast_and_names_no_secret() {
    let started = std::time::Instant::now();
    let err = RedisLimiter::connect("redis://user:hunter2@127.0.0.1:1/", DEFAULT_LEASE_TTL)
        .await
        .unwrap_err();
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "{:?}",
        started.elapsed()
    );
    assert!(!format!("{err} {err:?}").contains("hunter2"), "{err:?}");
    assert!(
        matches!(
            err,
            BackendError::Connection {
                op: Operation::Connect,
                io: std::io::ErrorKind::ConnectionRefused,
            }
        ),
        "{err:?}"
    );

    let limiter = connect(DEFAULT_LEASE_TTL).await;
    let debug = format!("{limiter:?}");
    assert!(!debug.contains("redis://"), "{debug}");
}

/// State this backend did not write under a limit's key is a backend failure, never a
/// refusal or an admission.
#[tokio::test]
async fn foreign_state_under_a_limit_key_is_a_backend_error() {
    let limiter = Limiter::Redis(connect(DEFAULT_LEASE_TTL).await);
    let agent = unique_agent();
    let subject = Subject {
        tenant: "t",
        agent: &agent,
        writ: "w",
        upstream: "u",
        model: None,
    };
    let now = now_ns();
    let charge = spec(Dimension::Requests, Window::Day, 5)
        .charge(&subject, &requests(1), now, DEFAULT_LEASE_TTL)
        .unwrap();
    let mut conn = redis_conn().await;
    let () = redis::cmd("SET")
        .arg(&charge.key)
        .arg("not-a-number")
        .arg("EX")
        .arg(60)
        .query_async(&mut conn)
        .await
        .unwrap();
    let err = limiter
        .reserve("1".into(), vec![charge.clone()], requests(1), now)
        .await
        .unwrap_err();
    // The script itself stops on it: Redis answers an error.
    assert!(
        matches!(
            err,
            ReserveError::Backend(BackendError::Server {
                op: Operation::Reserve,
                kind: redis::ErrorKind::Server(_) | redis::ErrorKind::Extension,
            })
        ),
        "{err:?}"
    );
}

#[tokio::test]
async fn through_the_limiter_enum() {
    let limiter = writ_limits::Limiter::Redis(connect(DEFAULT_LEASE_TTL).await);
    let agent = unique_agent();
    let subject = Subject {
        tenant: "t",
        agent: &agent,
        writ: "w",
        upstream: "u",
        model: None,
    };
    let now = now_ns();
    let charge = spec(Dimension::Requests, Window::Day, 1)
        .charge(&subject, &requests(1), now, DEFAULT_LEASE_TTL)
        .unwrap();
    let r = limiter
        .reserve("1".into(), vec![charge.clone()], requests(1), now)
        .await
        .unwrap();
    let refused = limiter
        .reserve("2".into(), vec![charge.clone()], requests(1), now)
        .await;
    assert!(
        matches!(&refused, Err(ReserveError::Refused(r)) if r.dimension == Dimension::Requests),
        "{refused:?}"
    );
    limiter.settle(&r, &requests(0), now).await.unwrap();
    let snapshot = limiter.snapshot(now).await.unwrap();
    assert!(snapshot.contains(&(charge.key.clone(), 0)));
}

/// A key under the prefix that this backend did not write does not sink the read-out.
#[tokio::test]
async fn snapshot_skips_foreign_keys() {
    let limiter = connect(DEFAULT_LEASE_TTL).await;
    let agent = unique_agent();
    let mut conn = redis::Client::open(URL)
        .unwrap()
        .get_multiplexed_async_connection()
        .await
        .unwrap();
    let hash = format!("writ:limit:requests:d1:1:agent={agent}-hash");
    let text = format!("writ:limit:requests:d1:1:agent={agent}-text");
    let good = format!("writ:limit:requests:d1:1:agent={agent}-good");
    let () = redis::pipe()
        .hset(&hash, "f", "v")
        .ignore()
        .set(&text, "not a number")
        .ignore()
        .set(&good, "7")
        .ignore()
        .expire(&hash, 60)
        .ignore()
        .expire(&text, 60)
        .ignore()
        .expire(&good, 60)
        .ignore()
        .query_async(&mut conn)
        .await
        .unwrap();
    let mine: Vec<(String, u64)> = limiter
        .snapshot(now_ns())
        .await
        .unwrap()
        .into_iter()
        .filter(|(k, _)| k.contains(&agent))
        .collect();
    assert_eq!(mine, vec![(good, 7)]);
}

// Strikes: failed authentications, with back-off and lock-out.

const MS: u64 = 1_000_000;

fn strike_policy() -> StrikePolicy {
    StrikePolicy {
        window: Duration::from_secs(60),
        backoff_after: 2,
        backoff_base: Duration::from_secs(1),
        backoff_max: Duration::from_secs(8),
        lockout_after: 5,
        lockout: Duration::from_secs(120),
    }
}

/// A strike key no other test, run or process uses, with characters that need escaping.
fn unique_strike_key() -> String {
    format!("client:{}=x,%", unique_agent())
}

/// Both backends behind `Limiter`, fed the same calls, asserting the same answers.
struct BothStrikes {
    memory: Limiter,
    redis: Limiter,
}

impl BothStrikes {
    async fn new() -> Self {
        Self {
            memory: Limiter::Memory(MemoryLimiter::new()),
            redis: Limiter::Redis(connect(DEFAULT_LEASE_TTL).await),
        }
    }

    async fn strike(&self, key: &str, policy: &StrikePolicy, now: u64) -> StrikeOutcome {
        let m = self.memory.strike(key, policy, now).await.unwrap();
        let r = self.redis.strike(key, policy, now).await.unwrap();
        assert_eq!(r, m, "redis and memory disagree striking {key} at {now}");
        r
    }

    async fn check(&self, key: &str, policy: &StrikePolicy, now: u64) -> StrikeVerdict {
        let m = self.memory.strike_check(key, policy, now).await.unwrap();
        let r = self.redis.strike_check(key, policy, now).await.unwrap();
        assert_eq!(r, m, "redis and memory disagree checking {key} at {now}");
        r
    }

    async fn clear(&self, key: &str) {
        self.memory.strike_clear(key).await.unwrap();
        self.redis.strike_clear(key).await.unwrap();
    }
}

async fn redis_conn() -> redis::aio::MultiplexedConnection {
    redis::Client::open(URL)
        .unwrap()
        .get_multiplexed_async_connection()
        .await
        .unwrap()
}

#[tokio::test]
async fn strikes_back_off_then_lock_out_then_release_clean() {
    let both = BothStrikes::new().await;
    let p = strike_policy();
    let key = unique_strike_key();
    let now = now_ns();
    let secs = |s: u64| Duration::from_secs(s);
    assert_eq!(both.check(&key, &p, now).await, StrikeVerdict::Clear);
    let o = both.strike(&key, &p, now).await;
    assert_eq!((o.verdict, o.failures), (StrikeVerdict::Clear, 1));
    let mut verdicts = Vec::new();
    for _ in 0..3 {
        verdicts.push(both.strike(&key, &p, now).await.verdict);
    }
    assert_eq!(
        verdicts,
        [1, 2, 4].map(|s| StrikeVerdict::Backoff {
            retry_after: secs(s)
        })
    );
    assert_eq!(
        both.check(&key, &p, now + 3 * NS).await,
        StrikeVerdict::Backoff {
            retry_after: secs(1)
        }
    );
    assert_eq!(
        both.check(&key, &p, now + 4 * NS).await,
        StrikeVerdict::Clear
    );
    // The fifth locks the key out, reported once.
    let at = now + 4 * NS;
    let o = both.strike(&key, &p, at).await;
    assert_eq!(
        o,
        StrikeOutcome {
            verdict: StrikeVerdict::Locked {
                retry_after: secs(120)
            },
            failures: 5,
            locked_now: true
        }
    );
    let o = both.strike(&key, &p, at + NS).await;
    assert_eq!(
        o,
        StrikeOutcome {
            verdict: StrikeVerdict::Locked {
                retry_after: secs(119)
            },
            failures: 0,
            locked_now: false
        }
    );
    // Clearing failures does not lift a lock-out.
    both.clear(&key).await;
    assert_eq!(
        both.check(&key, &p, at + 120 * NS - MS).await,
        StrikeVerdict::Locked {
            retry_after: Duration::from_millis(1)
        }
    );
    // Released after the lock-out, by the time passed in, with a clean slate.
    let end = at + 120 * NS;
    assert_eq!(both.check(&key, &p, end).await, StrikeVerdict::Clear);
    let o = both.strike(&key, &p, end).await;
    assert_eq!((o.verdict, o.failures), (StrikeVerdict::Clear, 1));

    // Both Redis keys live as long as the longer of the window and the lock-out.
    let [failures, lock] = RedisLimiter::strike_keys(&key);
    assert!(
        failures.starts_with("writ:strike:client%3Atest-"),
        "{failures}"
    );
    assert!(failures.ends_with("%3Dx%2C%25"), "{failures}");
    assert!(lock.starts_with("writ:strike-lock:client%3A"), "{lock}");
    let mut conn = redis_conn().await;
    let pttl: i64 = redis::cmd("PTTL")
        .arg(&failures)
        .query_async(&mut conn)
        .await
        .unwrap();
    assert!(pttl > 60_000 && pttl <= 120_000, "failures PTTL {pttl}");
}

#[tokio::test]
async fn strike_clear_forgets_failures() {
    let both = BothStrikes::new().await;
    let p = strike_policy();
    let (key, other) = (unique_strike_key(), unique_strike_key());
    let now = now_ns();
    for _ in 0..4 {
        both.strike(&key, &p, now).await;
    }
    both.strike(&other, &p, now).await;
    both.strike(&other, &p, now).await;
    assert!(!both.check(&key, &p, now).await.is_clear());
    both.clear(&key).await;
    assert_eq!(both.check(&key, &p, now).await, StrikeVerdict::Clear);
    assert_eq!(both.strike(&key, &p, now).await.failures, 1);
    // Other keys keep theirs.
    assert_eq!(both.strike(&other, &p, now).await.failures, 3);
    // Clearing a key never struck is harmless.
    both.clear(&unique_strike_key()).await;
    let [failures, _] = RedisLimiter::strike_keys(&key);
    let mut conn = redis_conn().await;
    let n: u64 = redis::cmd("ZCARD")
        .arg(&failures)
        .query_async(&mut conn)
        .await
        .unwrap();
    assert_eq!(n, 1);
}

/// Failures leave the window by the time passed in, and at most `lockout_after` are kept.
#[tokio::test]
async fn strikes_leave_the_window() {
    let both = BothStrikes::new().await;
    let p = strike_policy();
    let key = unique_strike_key();
    let now = now_ns();
    both.strike(&key, &p, now).await;
    both.strike(&key, &p, now + 30 * NS).await;
    // 60 s after the first: it has left the window.
    let o = both.strike(&key, &p, now + 60 * NS).await;
    assert_eq!(o.failures, 2);
    assert_eq!(
        both.check(&key, &p, now + 61 * NS).await,
        StrikeVerdict::Clear
    );
    // No lock-out: the back-off caps, and only `backoff_after + 64` failures are kept.
    let never = StrikePolicy {
        lockout_after: 0,
        ..p
    };
    let key = unique_strike_key();
    for i in 0..70 {
        let o = both.strike(&key, &never, now + i * MS).await;
        assert_eq!(o.failures, u32::try_from(i + 1).unwrap().min(66));
        assert!(!o.locked_now);
    }
    let [failures, _] = RedisLimiter::strike_keys(&key);
    let n: u64 = redis::cmd("ZCARD")
        .arg(&failures)
        .query_async(&mut redis_conn().await)
        .await
        .unwrap();
    assert_eq!(n, 66);
}

/// A few hundred random strikes, checks and clears on a few keys under two policies, with
/// time moving on unevenly (and now and then back, as another gateway's clock may be):
/// both backends give the same answers throughout. Windows are far longer than the test
/// runs, so Redis' own expiry (real clock) never drops a key that still counts.
#[tokio::test]
async fn random_strikes_agree_with_memory() {
    let both = BothStrikes::new().await;
    let policies = [
        StrikePolicy {
            window: Duration::from_millis(25_000),
            backoff_after: 1,
            backoff_base: Duration::from_millis(1_000),
            backoff_max: Duration::from_millis(7_000),
            lockout_after: 4,
            lockout: Duration::from_millis(15_000),
        },
        StrikePolicy {
            window: Duration::from_nanos(19_999_999_999),
            backoff_after: 0,
            backoff_base: Duration::from_nanos(1),
            backoff_max: Duration::from_secs(3_600),
            lockout_after: 0,
            lockout: Duration::ZERO,
        },
    ];
    let keys: Vec<(String, usize)> = (0..4).map(|i| (unique_strike_key(), i % 2)).collect();
    let mut seed: u64 = 0x9e37_79b9_7f4a_7c15;
    let mut rand = move |n: u64| {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed % n
    };
    let mut now = now_ns();
    let mut locks = 0;
    for _ in 0..400 {
        let (key, policy) = &keys[usize::try_from(rand(4)).unwrap()];
        let policy = &policies[*policy];
        match rand(10) {
            0 => both.clear(key).await,
            1..=3 => {
                both.check(key, policy, now).await;
            }
            _ => {
                if both.strike(key, policy, now).await.locked_now {
                    locks += 1;
                }
            }
        }
        // Mostly forward by up to 3 s, in nanoseconds; sometimes a little back.
        now = if rand(20) == 0 {
            now - rand(500 * MS)
        } else {
            now + rand(3_000 * MS)
        };
    }
    assert!(locks > 0, "the random walk should lock some key out");
}

/// Fifty failures at once on one key from two connections (two gateways): counted exactly,
/// and the lock-out they reach reported started exactly once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_strikes_count_exactly() {
    let limiters = [
        Arc::new(connect(DEFAULT_LEASE_TTL).await),
        Arc::new(connect(DEFAULT_LEASE_TTL).await),
    ];
    for lockout_after in [50, 20] {
        let policy = StrikePolicy {
            lockout_after,
            ..strike_policy()
        };
        let key = unique_strike_key();
        let now = now_ns();
        let tasks: Vec<_> = (0..50)
            .map(|i| {
                let limiter = Arc::clone(&limiters[i % 2]);
                let key = key.clone();
                tokio::spawn(async move { limiter.strike(&key, &policy, now).await })
            })
            .collect();
        let mut counted = Vec::new();
        let mut started = 0;
        let mut refused = 0;
        for task in tasks {
            let o = task.await.unwrap().unwrap();
            if o.locked_now {
                started += 1;
                assert_eq!(o.failures, lockout_after);
            }
            if o.failures == 0 {
                refused += 1;
                assert!(matches!(o.verdict, StrikeVerdict::Locked { .. }));
            } else {
                counted.push(o.failures);
            }
        }
        counted.sort_unstable();
        assert_eq!(counted, (1..=lockout_after).collect::<Vec<_>>());
        assert_eq!((started, refused), (1, 50 - lockout_after));
        assert_eq!(
            limiters[0].strike_check(&key, &policy, now).await.unwrap(),
            StrikeVerdict::Locked {
                retry_after: Duration::from_secs(120)
            }
        );
    }
}

/// Neither errors nor `Debug` name the Redis URL's password, on strikes as elsewhere.
#[tokio::test]
async fn strike_errors_name_no_secret() {
    // The default user has no password, so Redis accepts any with a user name.
    let url = "redis://default:hunter2@127.0.0.1:6379/";
    let limiter = RedisLimiter::connect(url, DEFAULT_LEASE_TTL).await.unwrap();
    let debug = format!("{limiter:?}");
    assert!(
        !debug.contains("hunter2") && !debug.contains("redis://"),
        "{debug}"
    );
    // A key holding the wrong type makes every operation fail.
    let key = unique_strike_key();
    let [failures, lock] = RedisLimiter::strike_keys(&key);
    let mut conn = redis_conn().await;
    let () = redis::pipe()
        .hset(&failures, "f", "v")
        .ignore()
        .hset(&lock, "f", "v")
        .ignore()
        .expire(&failures, 60)
        .ignore()
        .expire(&lock, 60)
        .ignore()
        .query_async(&mut conn)
        .await
        .unwrap();
    let limiter = Limiter::Redis(limiter);
    let p = strike_policy();
    let now = now_ns();
    let errors = [
        (
            Operation::Strike,
            limiter.strike(&key, &p, now).await.unwrap_err(),
        ),
        (
            Operation::StrikeCheck,
            limiter.strike_check(&key, &p, now).await.unwrap_err(),
        ),
    ];
    for (op, err) in errors {
        let text = format!("{err} {err:?}");
        assert!(!text.contains("hunter2"), "{text}");
        assert!(
            matches!(err, BackendError::Server { op: o, .. } if o == op),
            "{err:?}"
        );
    }
    let err = RedisLimiter::connect("redis://user:hunter2@127.0.0.1:1/", DEFAULT_LEASE_TTL)
        .await
        .unwrap_err();
    assert!(!format!("{err} {err:?}").contains("hunter2"), "{err:?}");
}

std::thread_local! {
    static SLOT: std::cell::Cell<usize> = const { std::cell::Cell::new(0) };
}

fn slot() -> usize {
    SLOT.with(std::cell::Cell::get)
}

/// Threads with a runtime each (as the gateway's serving threads) each get a connection of
/// their own, made on their runtime, and the budget stays exact across them; the shared
/// connection keeps serving callers with no slot, also after those threads and their
/// runtimes are gone.
#[tokio::test]
async fn per_thread_connections_stay_exact() {
    let limiter = Arc::new(connect(DEFAULT_LEASE_TTL).await.per_thread(4, slot));
    let (charge, now) = daily_request_budget(50);
    let threads: Vec<_> = (1..=3)
        .map(|t| {
            let (limiter, charge) = (Arc::clone(&limiter), charge.clone());
            std::thread::spawn(move || {
                SLOT.with(|s| s.set(t));
                let runtime = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .unwrap();
                runtime.block_on(async move {
                    let mut admitted = 0;
                    for i in 0..20 {
                        let r = verdict(
                            limiter
                                .reserve(
                                    format!("t{t}-{i}"),
                                    vec![charge.clone()],
                                    requests(1),
                                    now,
                                )
                                .await,
                        );
                        admitted += usize::from(r.is_ok());
                    }
                    admitted
                })
            })
        })
        .collect();
    let admitted: usize = threads.into_iter().map(|t| t.join().unwrap()).sum();
    assert_eq!(admitted, 50, "60 asked of a budget of 50");
    // The threads' runtimes (and their connections) are gone; slot 0 still answers.
    let last = limiter
        .reserve("main".to_string(), vec![charge], requests(1), now)
        .await;
    assert!(
        matches!(last, Err(ReserveError::Refused(_))),
        "the budget is spent: {last:?}"
    );
}
