//! End-to-end cost of strict audit: requests/s through a real gateway on a loopback port,
//! with 16 requests in flight (`POST /v1/chat/completions`, non-streamed, to the built-in
//! mock upstream), for three gateways started from the same config but for `[audit]`:
//!
//! - best_effort: `mode = "best_effort"`, the default SQLite sink; records are queued and
//!   the response does not wait for them (the baseline: audit cannot be turned off);
//! - strict-sqlite: the default, strict mode with the SQLite sink (`audit.db` in the data
//!   directory, WAL, `synchronous = FULL`); each response waits until its record is
//!   committed, in a batch with whatever else is queued;
//! - strict-file: strict mode with the JSON-lines file sink, each batch appended and
//!   `fdatasync`ed.
//!
//! Every gateway has a data directory of its own, in a temporary directory, as has the file
//! sink. Client, gateways and mock share this machine's cores and disk.
//!
//! After the criterion group, runs the three in turn itself and prints the throughput
//! ratios `strict-sqlite/best_effort` and `strict-file/best_effort`.
//!
//! Run with `cargo bench -p writ-gateway --bench audit_e2e` (shorter:
//! `... -- --warm-up-time 1 --measurement-time 3`).
#![allow(missing_docs, clippy::unwrap_used)]

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use criterion::{Criterion, Throughput};
use tokio::runtime::Runtime;
use writ_mock::{MockKey, MockServer};
use writ_testkit::TestGateway;

const KEY: &str = "sk-bench-audit-e2e-0123456789abcdef";
const UPSTREAM: &str = "bench";
const BODY: &str =
    r#"{"model":"gpt-4o-mini","messages":[{"role":"user","content":"hi"}],"max_tokens":5}"#;
const IN_FLIGHT: u64 = 16;

fn config(base_url: &str, audit: &str) -> String {
    format!(
        "{audit}\n[upstreams.{UPSTREAM}]\nkind = \"openai\"\nbase_url = \"{base_url}\"\nallow_private_network = true\napi_key = \"{KEY}\"\n"
    )
}

/// One gateway under test.
struct Target {
    label: &'static str,
    gw: TestGateway,
    url: String,
}

impl Target {
    /// A writ for the upstream; the gateway's clock stands still, so it stays valid, but a
    /// fresh one per batch keeps within the 30 s a writ may live regardless.
    fn writ(&self) -> String {
        let grant = format!(r#"{{"type":"writ:llm","upstream":"{UPSTREAM}"}}"#);
        self.gw.mint(UPSTREAM, &grant, 30)
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
        let took = start.elapsed();
        // Untimed: let the writer catch up (best effort queues records without waiting
        // for them), so a backlog never spills over into another gateway's measurement.
        self.gw.gateway().audit_checkpoint().await;
        took
    }
}

/// Everything the benchmark runs against, on one runtime (dropped last).
struct Setup {
    targets: Vec<Target>,
    _mock: MockServer,
    _dir: tempfile::TempDir,
    client: reqwest::Client,
    rt: Runtime,
}

fn setup() -> Setup {
    // TestGateway installs a debug-level subscriber printing every request; a benchmark
    // must not. Installing a silent one first makes its attempt a no-op.
    let _ = tracing::subscriber::set_global_default(tracing::subscriber::NoSubscriber::default());
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("audit.jsonl");
    let (mock, targets) = rt.block_on(async {
        // The plain mock rather than the recording one: a benchmark's hundreds of
        // thousands of requests should not pile up in memory.
        let mock = MockServer::start(MockKey::new(KEY)).await.unwrap();
        let base_url = mock.base_url();
        let mut targets = Vec::new();
        for (label, audit) in [
            (
                "best_effort",
                "[audit]\nmode = \"best_effort\"\n".to_string(),
            ),
            ("strict-sqlite", String::new()),
            (
                "strict-file",
                format!(
                    "[audit]\nsink = \"file\"\nfile = {:?}\n",
                    file.display().to_string()
                ),
            ),
        ] {
            let gw = TestGateway::start(&config(&base_url, &audit)).await;
            let url = gw.url("/v1/chat/completions");
            targets.push(Target { label, gw, url });
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
        _dir: dir,
        client,
        rt,
    }
}

fn bench(c: &mut Criterion, s: &Setup) {
    let mut group = c.benchmark_group("gateway e2e audit, 16 in flight");
    group.throughput(Throughput::Elements(1));
    for t in &s.targets {
        let name = match t.label {
            "best_effort" => "best_effort, sqlite",
            "strict-sqlite" => "strict, sqlite",
            _ => "strict, file",
        };
        group.bench_function(name, |b| {
            b.iter_custom(|iters| s.rt.block_on(t.send(&s.client, iters)))
        });
    }
    group.finish();
}

/// Runs the three gateways in turn, interleaved over a few rounds so drift in the machine
/// affects all alike, and prints requests/s and the ratios to best effort. Outside
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
            "{:>13}: {:>9.0} requests/s ({} requests, 16 in flight)",
            t.label,
            rate(i),
            sent[i]
        );
    }
    println!(
        "strict-sqlite/best_effort throughput ratio: {:.3}",
        rate(1) / rate(0)
    );
    println!(
        "strict-file/best_effort throughput ratio: {:.3}",
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
