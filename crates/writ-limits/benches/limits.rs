//! Per-request cost of limits: build the charges of three limits (requests per minute by
//! GCRA, a tokens-per-day budget, a concurrency lease), reserve them and settle them, on
//! `MemoryLimiter` (one thread; four threads on one key; four threads on distinct keys) and
//! on `RedisLimiter` against the Redis at 127.0.0.1:6379 (one at a time; 16 in flight);
//! and building the charges alone, the part of each of those that is not the backend.
//! Limits are far above what a run uses, so nothing is refused; every run keys its limits by
//! an agent name of its own, so state left in Redis by earlier runs does not count.
//!
//! After the criterion groups, times a fixed number of sequential reserve+settle calls on
//! each backend itself and prints `redis/memory reserve+settle time ratio: X.Y`.
//!
//! Needs Redis on 127.0.0.1:6379 (panics if it is unreachable). Run with
//! `cargo bench -p writ-limits --bench limits` (shorter:
//! `... -- --warm-up-time 1 --measurement-time 3`).
#![allow(missing_docs, clippy::unwrap_used)]

use std::hint::black_box;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use criterion::{Criterion, Throughput, criterion_group};
use tokio::runtime::Runtime;
use writ_limits::model::DEFAULT_LEASE_TTL;
use writ_limits::{
    Amounts, Charge, Dimension, Field, LimitSpec, MemoryLimiter, RedisLimiter, Subject, Window,
};

const REDIS: &str = "redis://127.0.0.1:6379/";

/// The estimate reserved and the usage settled: 1 request, 100 input tokens, up to 50
/// output tokens of which 30 were used.
const ESTIMATE: Amounts = Amounts {
    requests: 1,
    input_tokens: 100,
    output_tokens: 50,
    cost_usd_micros: 0,
    compute_ms: 0,
};
const ACTUAL: Amounts = Amounts {
    requests: 1,
    input_tokens: 100,
    output_tokens: 30,
    cost_usd_micros: 0,
    compute_ms: 0,
};

/// Real time: Redis expires budget keys at their window's end by its own clock, so the
/// times passed in must be real ones. Read once; [`Clock::now_ns`] adds `Instant` time.
#[allow(clippy::disallowed_methods)]
fn wall_ns() -> u64 {
    u64::try_from(
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .as_nanos(),
    )
    .unwrap()
}

#[derive(Clone, Copy)]
struct Clock {
    base_ns: u64,
    start: Instant,
}

impl Clock {
    fn new() -> Self {
        Self {
            base_ns: wall_ns(),
            start: Instant::now(),
        }
    }

    fn now_ns(&self) -> u64 {
        self.base_ns + u64::try_from(self.start.elapsed().as_nanos()).unwrap()
    }
}

/// The three limits of every request; large enough that nothing is refused.
fn specs() -> Vec<LimitSpec> {
    let spec = |scope: Vec<Field>, dimension, window, limit| LimitSpec {
        scope,
        dimension,
        window,
        limit,
        burst: limit,
        only: Vec::new(),
    };
    vec![
        spec(
            vec![Field::Agent],
            Dimension::Requests,
            Window::Rate {
                period: Duration::from_secs(60),
            },
            100_000_000,
        ),
        spec(
            vec![Field::Tenant, Field::Agent],
            Dimension::Tokens,
            Window::Day,
            1_000_000_000_000_000,
        ),
        spec(
            vec![Field::Agent],
            Dimension::Concurrency,
            Window::InFlight,
            1_000_000,
        ),
    ]
}

/// An agent name no earlier run (or other benchmark in this run) used.
fn unique_agent(what: &str) -> String {
    static N: AtomicU64 = AtomicU64::new(0);
    format!(
        "bench-{what}-{}-{}-{}",
        std::process::id(),
        wall_ns(),
        N.fetch_add(1, Ordering::Relaxed)
    )
}

/// One request's worth of work up to the backend: its charges and a unique reservation id.
struct Request<'a> {
    specs: &'a [LimitSpec],
    agent: &'a str,
    clock: Clock,
}

impl Request<'_> {
    fn charges(&self, now_ns: u64) -> Vec<Charge> {
        let subject = Subject {
            tenant: "bench",
            agent: self.agent,
            writ: "w",
            upstream: "demo",
            model: Some("gpt-4o-mini"),
        };
        self.specs
            .iter()
            .filter_map(|s| s.charge(&subject, &ESTIMATE, now_ns, DEFAULT_LEASE_TTL))
            .collect()
    }
}

fn next_id() -> String {
    static ID: AtomicU64 = AtomicU64::new(0);
    format!("r{}", ID.fetch_add(1, Ordering::Relaxed))
}

fn memory_once(limiter: &MemoryLimiter, req: &Request<'_>) {
    let now = req.clock.now_ns();
    let charges = req.charges(now);
    let reservation = limiter
        .reserve(next_id(), charges, ESTIMATE, now)
        .unwrap_or_else(|refusal| panic!("limit refused in a benchmark: {refusal:?}"));
    limiter.settle(black_box(&reservation), &ACTUAL);
}

async fn redis_once(limiter: &RedisLimiter, req: &Request<'_>) {
    let now = req.clock.now_ns();
    let charges = req.charges(now);
    let reservation = limiter
        .reserve(next_id(), charges, ESTIMATE, now)
        .await
        .unwrap_or_else(|e| panic!("redis reserve failed or was refused: {e}"));
    limiter
        .settle(black_box(&reservation), &ACTUAL)
        .await
        .unwrap_or_else(|e| panic!("redis settle failed: {e}"));
}

fn runtime() -> Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap()
}

fn connect(rt: &Runtime) -> RedisLimiter {
    rt.block_on(RedisLimiter::connect(REDIS, DEFAULT_LEASE_TTL))
        .unwrap_or_else(|e| {
            panic!("the limits benchmark needs Redis at {REDIS} (start it: redis-server --daemonize yes --port 6379): {e}")
        })
}

/// `threads` threads doing `iters` reserve+settle calls between them, each on the agent
/// `agents[thread % agents.len()]`; the wall time of all of them.
fn memory_threads(
    limiter: &MemoryLimiter,
    specs: &[LimitSpec],
    agents: &[String],
    clock: Clock,
    threads: u64,
    iters: u64,
) -> Duration {
    let start = Instant::now();
    std::thread::scope(|s| {
        for t in 0..threads {
            let agent = &agents[usize::try_from(t).unwrap() % agents.len()];
            let n = iters / threads + u64::from(t < iters % threads);
            s.spawn(move || {
                let req = Request {
                    specs,
                    agent,
                    clock,
                };
                for _ in 0..n {
                    memory_once(limiter, &req);
                }
            });
        }
    });
    start.elapsed()
}

fn bench(c: &mut Criterion) {
    let specs = specs();
    let clock = Clock::new();

    let mut group = c.benchmark_group("limits memory");
    group.throughput(Throughput::Elements(1));
    let memory = MemoryLimiter::new();
    let agent = unique_agent("memory");
    let req = Request {
        specs: &specs,
        agent: &agent,
        clock,
    };
    // The part of every reserve+settle below that is not the backend: building the keys.
    group.bench_function("charges only, 3 limits", |b| {
        b.iter(|| (req.charges(req.clock.now_ns()), next_id()))
    });
    group.bench_function("reserve+settle, 3 limits", |b| {
        b.iter(|| memory_once(&memory, &req))
    });
    let one_key = vec![unique_agent("memory-one-key")];
    group.bench_function("reserve+settle, 3 limits, 4 threads on one key", |b| {
        b.iter_custom(|iters| memory_threads(&memory, &specs, &one_key, clock, 4, iters))
    });
    let distinct: Vec<String> = (0..4).map(|_| unique_agent("memory-distinct")).collect();
    group.bench_function("reserve+settle, 3 limits, 4 threads on 4 keys", |b| {
        b.iter_custom(|iters| memory_threads(&memory, &specs, &distinct, clock, 4, iters))
    });
    group.finish();

    let rt = runtime();
    let redis = connect(&rt);
    let mut group = c.benchmark_group("limits redis");
    group.throughput(Throughput::Elements(1));
    let agent = unique_agent("redis");
    let req = Request {
        specs: &specs,
        agent: &agent,
        clock,
    };
    group.bench_function("reserve+settle, 3 limits", |b| {
        b.to_async(&rt).iter(|| redis_once(&redis, &req))
    });
    // Many requests at once on one connection, as a busy gateway sends them: Redis runs
    // the scripts one after another, but the round trips overlap.
    let agent = unique_agent("redis-16");
    let req = Request {
        specs: &specs,
        agent: &agent,
        clock,
    };
    group.bench_function("reserve+settle, 3 limits, 16 in flight on one key", |b| {
        b.to_async(&rt).iter_custom(|iters| {
            let (redis, req) = (&redis, &req);
            async move {
                let next = AtomicU64::new(0);
                let next = &next;
                let start = Instant::now();
                let workers = (0..16).map(|_| async move {
                    while next.fetch_add(1, Ordering::Relaxed) < iters {
                        redis_once(redis, req).await;
                    }
                });
                futures_join_all(workers).await;
                start.elapsed()
            }
        })
    });
    group.finish();
}

/// Polls every future to completion concurrently on this task.
async fn futures_join_all<F: std::future::Future<Output = ()>>(futures: impl Iterator<Item = F>) {
    let mut set = Vec::new();
    for f in futures {
        set.push(Box::pin(f));
    }
    std::future::poll_fn(|cx| {
        set.retain_mut(|f| f.as_mut().poll(cx).is_pending());
        if set.is_empty() {
            std::task::Poll::Ready(())
        } else {
            std::task::Poll::Pending
        }
    })
    .await;
}

/// Times `n` sequential reserve+settle calls on each backend and prints the ratio of their
/// means. Outside `cargo bench` (criterion's test mode) it runs a handful, as a smoke test.
fn ratio() {
    let bench_mode = std::env::args().any(|a| a == "--bench");
    let (n_memory, n_redis) = if bench_mode {
        (200_000u32, 5_000u32)
    } else {
        (100, 10)
    };
    let specs = specs();
    let clock = Clock::new();

    let memory = MemoryLimiter::new();
    let agent = unique_agent("ratio-memory");
    let req = Request {
        specs: &specs,
        agent: &agent,
        clock,
    };
    for _ in 0..n_memory / 10 {
        memory_once(&memory, &req);
    }
    let start = Instant::now();
    for _ in 0..n_memory {
        memory_once(&memory, &req);
    }
    let memory_mean = start.elapsed() / n_memory;

    let rt = runtime();
    let redis = connect(&rt);
    let agent = unique_agent("ratio-redis");
    let req = Request {
        specs: &specs,
        agent: &agent,
        clock,
    };
    let redis_mean = rt.block_on(async {
        for _ in 0..n_redis / 10 {
            redis_once(&redis, &req).await;
        }
        let start = Instant::now();
        for _ in 0..n_redis {
            redis_once(&redis, &req).await;
        }
        start.elapsed() / n_redis
    });

    println!();
    println!("memory reserve+settle (3 limits): {memory_mean:?} mean over {n_memory} calls");
    println!("redis  reserve+settle (3 limits): {redis_mean:?} mean over {n_redis} calls");
    println!(
        "redis/memory reserve+settle time ratio: {:.1}",
        redis_mean.as_secs_f64() / memory_mean.as_secs_f64()
    );
}

criterion_group!(benches, bench);

fn main() {
    benches();
    Criterion::default().configure_from_args().final_summary();
    ratio();
}
