//! End-to-end cost of limits: requests/s through a real gateway on a loopback port, with
//! 16 requests in flight (`POST /v1/chat/completions`, non-streamed, to the built-in mock
//! upstream), for three gateways started from the same config but for limits:
//!
//! - none: no `[[limit]]` at all;
//! - memory: three limits (requests per minute, tokens per day, concurrency), kept in this
//!   process;
//! - redis: the same three limits kept in the Redis at 127.0.0.1:6379.
//!
//! Limits are far above what a run uses, so nothing is refused; every run uses an upstream
//! name of its own, which every limit is scoped by, so Redis state left by earlier runs does
//! not count. Client, gateways, mock and Redis share this machine's cores.
//!
//! After the criterion group, runs the three in turn itself and prints the throughput
//! ratios `memory-limits/none` and `redis-limits/none`.
//!
//! Needs Redis on 127.0.0.1:6379 (panics if it is unreachable). Run with
//! `cargo bench -p writ-gateway --bench limits_e2e` (shorter:
//! `... -- --warm-up-time 1 --measurement-time 3`).
#![allow(missing_docs, clippy::unwrap_used)]

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use criterion::{Criterion, Throughput};
use tokio::runtime::Runtime;
use writ_mock::{MockKey, MockServer};
use writ_testkit::TestGateway;

const KEY: &str = "sk-bench-limits-e2e-0123456789abcdef";
const REDIS: &str = "redis://127.0.0.1:6379";
const BODY: &str =
    r#"{"model":"gpt-4o-mini","messages":[{"role":"user","content":"hi"}],"max_tokens":5}"#;
const IN_FLIGHT: u64 = 16;

/// Three limits, each scoped by the upstream too so that a fresh upstream name is a fresh
/// set of keys.
const LIMITS: &str = r#"
[[limit]]
scope = ["agent", "upstream"]
dimension = "requests"
per = "minute"
limit = 100000000

[[limit]]
scope = ["tenant", "agent", "upstream"]
dimension = "tokens"
per = "day"
limit = 100000000000

[[limit]]
scope = ["agent", "upstream"]
dimension = "concurrency"
limit = 100000
"#;

#[derive(Clone, Copy)]
enum Limits {
    None,
    Memory,
    Redis,
}

fn config(base_url: &str, upstream: &str, limits: Limits) -> String {
    let (limiter, limits) = match limits {
        Limits::None => ("", ""),
        Limits::Memory => ("", LIMITS),
        Limits::Redis => (
            "[limiter]\nbackend = \"redis\"\nredis_url = \"redis://127.0.0.1:6379\"\n",
            LIMITS,
        ),
    };
    format!(
        "{limiter}{limits}\n[upstreams.{upstream}]\nkind = \"openai\"\nbase_url = \"{base_url}\"\nallow_private_network = true\napi_key = \"{KEY}\"\n"
    )
}

/// One gateway under test.
struct Target {
    label: &'static str,
    gw: TestGateway,
    url: String,
    upstream: String,
}

impl Target {
    /// A writ for the upstream; the gateway's clock stands still, so it stays valid, but a
    /// fresh one per batch keeps within the 30 s a writ may live regardless.
    fn writ(&self) -> String {
        let grant = format!(r#"{{"type":"writ:llm","upstream":"{}"}}"#, self.upstream);
        self.gw.mint(&self.upstream, &grant, 30)
    }

    /// Sends `n` requests, `IN_FLIGHT` at a time, each checked for 200; the wall time.
    async fn send(&self, client: &reqwest::Client, n: u64) -> Duration {
        let writ = Arc::new(self.writ());
        let next = Arc::new(AtomicU64::new(0));
        let start = Instant::now();
        let workers: Vec<_> = (0..IN_FLIGHT.min(n.max(1)))
            .map(|_| {
                let (client, url, writ, next) =
                    (client.clone(), self.url.clone(), writ.clone(), next.clone());
                let label = self.label;
                tokio::spawn(async move {
                    while next.fetch_add(1, Ordering::Relaxed) < n {
                        let response = client
                            .post(&url)
                            .bearer_auth(&*writ)
                            .header("content-type", "application/json")
                            .body(BODY)
                            .send()
                            .await
                            .unwrap_or_else(|e| panic!("{label}: request failed: {e}"));
                        let status = response.status();
                        let body = response
                            .bytes()
                            .await
                            .unwrap_or_else(|e| panic!("{label}: reading the body failed: {e}"));
                        assert!(
                            status == reqwest::StatusCode::OK,
                            "{label}: expected 200, got {status}: {}",
                            String::from_utf8_lossy(&body)
                        );
                    }
                })
            })
            .collect();
        for w in workers {
            w.await.unwrap();
        }
        start.elapsed()
    }
}

/// Everything the benchmark runs against, on one runtime (dropped last).
struct Setup {
    targets: Vec<Target>,
    _mock: MockServer,
    client: reqwest::Client,
    rt: Runtime,
}

fn setup() -> Setup {
    // TestGateway installs a debug-level subscriber printing every request; a benchmark
    // must not. Installing a silent one first makes its attempt a no-op.
    let _ = tracing::subscriber::set_global_default(tracing::subscriber::NoSubscriber::default());
    if let Err(e) = std::net::TcpStream::connect_timeout(
        &"127.0.0.1:6379".parse().unwrap(),
        Duration::from_secs(3),
    ) {
        panic!(
            "the limits_e2e benchmark needs Redis at {REDIS} (start it: redis-server --daemonize yes --port 6379): {e}"
        );
    }
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    let upstream = format!("bench-{:016x}", rand::random::<u64>());
    let (mock, targets) = rt.block_on(async {
        // The plain mock rather than the recording one: a benchmark's hundreds of
        // thousands of requests should not pile up in memory.
        let mock = MockServer::start(MockKey::new(KEY)).await.unwrap();
        let base_url = mock.base_url();
        let mut targets = Vec::new();
        for (label, limits) in [
            ("none", Limits::None),
            ("memory", Limits::Memory),
            ("redis", Limits::Redis),
        ] {
            let gw = TestGateway::start(&config(&base_url, &upstream, limits)).await;
            let url = gw.url("/v1/chat/completions");
            targets.push(Target {
                label,
                gw,
                url,
                upstream: upstream.clone(),
            });
        }
        (mock, targets)
    });
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(usize::try_from(IN_FLIGHT).unwrap())
        .build()
        .unwrap();
    // One checked request each: a misconfigured gateway fails here, not mid-measurement.
    for t in &targets {
        rt.block_on(t.send(&client, 1));
    }
    Setup {
        targets,
        _mock: mock,
        client,
        rt,
    }
}

fn bench(c: &mut Criterion, s: &Setup) {
    let mut group = c.benchmark_group("gateway e2e, 16 in flight");
    group.throughput(Throughput::Elements(1));
    for t in &s.targets {
        let name = match t.label {
            "none" => "no limits",
            "memory" => "3 limits, memory",
            _ => "3 limits, redis",
        };
        group.bench_function(name, |b| {
            b.iter_custom(|iters| s.rt.block_on(t.send(&s.client, iters)))
        });
    }
    group.finish();
}

/// Runs the three gateways in turn, interleaved over a few rounds so drift in the machine
/// affects all alike, and prints requests/s and the ratios to no limits. Outside
/// `cargo bench` (criterion's test mode) it sends a handful, as a smoke test.
fn ratio(s: &Setup) {
    let bench_mode = std::env::args().any(|a| a == "--bench");
    let (rounds, per_round) = if bench_mode {
        (3, Duration::from_secs(2))
    } else {
        (1, Duration::ZERO)
    };
    let mut sent = [0u64; 3];
    let mut took = [Duration::ZERO; 3];
    for _ in 0..rounds {
        for (i, t) in s.targets.iter().enumerate() {
            // Batches of 2 000 until the round's time is up (at least one batch).
            let start = Instant::now();
            loop {
                let n = if bench_mode { 2_000 } else { 32 };
                took[i] += s.rt.block_on(t.send(&s.client, n));
                sent[i] += n;
                if start.elapsed() >= per_round {
                    break;
                }
            }
        }
    }
    let rate = |i: usize| sent[i] as f64 / took[i].as_secs_f64();
    println!();
    for (i, t) in s.targets.iter().enumerate() {
        println!(
            "{:>6}: {:>9.0} requests/s ({} requests, 16 in flight)",
            t.label,
            rate(i),
            sent[i]
        );
    }
    println!(
        "memory-limits/none throughput ratio: {:.3}",
        rate(1) / rate(0)
    );
    println!(
        "redis-limits/none throughput ratio: {:.3}",
        rate(2) / rate(0)
    );
}

fn main() {
    let s = setup();
    let mut c = Criterion::default().configure_from_args();
    bench(&mut c, &s);
    c.final_summary();
    ratio(&s);
}
