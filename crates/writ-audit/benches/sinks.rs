//! Audit appends per second for each sink: SQLite (a database in a temporary directory,
//! WAL, `synchronous = FULL`, as the gateway opens it), PostgreSQL (127.0.0.1:5432,
//! database `test`) and a JSON-lines file (appended and `fdatasync`ed), each with batches
//! of 1 and of 64 lines. One `Sink::append` call per batch, one at a time, as the
//! gateway's single writer task makes them.
//!
//! The lines are realistic records (about 450 bytes: tenant, agent, writ pseudonym,
//! model, usage, cost, latency) built with `AuditLog::append`; a pool of them is built
//! once and stored again under fresh sequence numbers, so building lines is not measured.
//! Every run writes under fresh instance ids and deletes its PostgreSQL rows at the end,
//! so the shared database does not grow.
//!
//! After the criterion group, times each configuration itself and prints records/s per
//! sink and batch size.
//!
//! Needs PostgreSQL on 127.0.0.1:5432 (panics if it is unreachable). Run with
//! `cargo bench -p writ-audit --bench sinks` (shorter:
//! `... -- --warm-up-time 1 --measurement-time 3`).
#![allow(missing_docs, clippy::unwrap_used)]

use std::cell::Cell;
use std::time::{Duration, Instant, UNIX_EPOCH};

use criterion::{Criterion, Throughput};
use tokio::runtime::Runtime;
use writ_audit::sink::Sink;
use writ_audit::{AuditLog, AuditRecord, Kind, Usage};

const PG_URL: &str = "postgres://postgres@127.0.0.1:5432/test";
const BATCHES: [usize; 2] = [1, 64];

/// One sink under test, with the instance it writes under and the next free seq.
struct Target {
    label: &'static str,
    sink: Sink,
    instance: String,
    next: Cell<u64>,
}

impl Target {
    /// Appends `batches` batches of `lines`, one after another; the wall time.
    async fn append(&self, lines: &[String], batches: u64) -> Duration {
        let start = Instant::now();
        for _ in 0..batches {
            let first = self.next.get();
            self.sink
                .append(&self.instance, first, lines)
                .await
                .unwrap_or_else(|e| panic!("{}: append failed: {e}", self.label));
            self.next.set(first + lines.len() as u64);
        }
        start.elapsed()
    }
}

struct Setup {
    targets: Vec<Target>,
    /// 64 record lines.
    lines: Vec<String>,
    _dir: tempfile::TempDir,
    rt: Runtime,
}

fn lines(n: u64) -> Vec<String> {
    let mut log = AuditLog::new("bench", "writ.bench/audit/bench").unwrap();
    (0..n)
        .map(|i| {
            let at = UNIX_EPOCH + Duration::from_millis(1_772_366_400_000 + i * 37);
            let mut r = AuditRecord::new(Kind::RequestAllowed, at);
            r.tenant = Some("acme".into());
            r.agent = Some("support-bot".into());
            r.writ = Some(format!("{:032x}", rand::random::<u128>()));
            r.upstream = Some("openai".into());
            r.model = Some("gpt-4o-mini".into());
            r.operation = Some("chat.completions".into());
            r.status = Some(200);
            r.usage = Some(Usage {
                input_tokens: 812 + i,
                output_tokens: 164,
                cached_tokens: Some(512),
            });
            r.cost_usd_micros = Some(3_670);
            r.latency_ms = Some(1_432);
            log.append(r).0
        })
        .collect()
}

fn setup() -> Setup {
    if let Err(e) = std::net::TcpStream::connect_timeout(
        &"127.0.0.1:5432".parse().unwrap(),
        Duration::from_secs(3),
    ) {
        panic!(
            "the sinks benchmark needs PostgreSQL at {PG_URL} (trust auth, database `test`): {e}"
        );
    }
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let run = format!("{:016x}", rand::random::<u64>());
    let targets = rt.block_on(async {
        let sqlite = Sink::sqlite(&dir.path().join("audit.db")).await.unwrap();
        let postgres = Sink::postgres(PG_URL).await.unwrap();
        postgres
            .prepare()
            .await
            .unwrap_or_else(|e| panic!("PostgreSQL at {PG_URL}: {e}"));
        let file = Sink::file(dir.path().join("audit.jsonl"));
        [("sqlite", sqlite), ("postgres", postgres), ("file", file)]
            .into_iter()
            .map(|(label, sink)| Target {
                label,
                sink,
                instance: format!("bench-{label}-{run}"),
                next: Cell::new(0),
            })
            .collect()
    });
    Setup {
        targets,
        lines: lines(64),
        _dir: dir,
        rt,
    }
}

fn bench(c: &mut Criterion, s: &Setup) {
    let mut group = c.benchmark_group("audit sink append");
    for batch in BATCHES {
        group.throughput(Throughput::Elements(batch as u64));
        let lines = &s.lines[..batch];
        for t in &s.targets {
            // iter_custom: every iteration must write fresh seqs, so the target keeps count.
            group.bench_function(format!("{}, batch {batch}", t.label), |b| {
                b.iter_custom(|iters| s.rt.block_on(t.append(lines, iters)));
            });
        }
    }
    group.finish();
}

/// Times each sink and batch size for a while, interleaved over rounds so drift in the
/// machine affects all alike, and prints records/s. Outside `cargo bench` (criterion's
/// test mode) it appends a handful, as a smoke test.
fn rates(s: &Setup) {
    let bench_mode = std::env::args().any(|a| a == "--bench");
    let (rounds, per_round) = if bench_mode {
        (3, Duration::from_secs(1))
    } else {
        (1, Duration::ZERO)
    };
    let n = s.targets.len();
    let mut sent = vec![[0u64; 2]; n];
    let mut took = vec![[Duration::ZERO; 2]; n];
    for _ in 0..rounds {
        for (b, batch) in BATCHES.into_iter().enumerate() {
            for (i, t) in s.targets.iter().enumerate() {
                let start = Instant::now();
                loop {
                    let batches = if bench_mode { 4_096 / batch as u64 } else { 2 };
                    took[i][b] += s.rt.block_on(t.append(&s.lines[..batch], batches));
                    sent[i][b] += batches * batch as u64;
                    if start.elapsed() >= per_round {
                        break;
                    }
                }
            }
        }
    }
    println!();
    for (i, t) in s.targets.iter().enumerate() {
        for (b, batch) in BATCHES.into_iter().enumerate() {
            println!(
                "{:>8}, batch {batch:>2}: {:>9.0} records/s ({} records)",
                t.label,
                sent[i][b] as f64 / took[i][b].as_secs_f64(),
                sent[i][b]
            );
        }
    }
}

/// Deletes this run's rows from the shared PostgreSQL database.
fn clean_up(s: &Setup) {
    for t in &s.targets {
        if let Sink::Postgres(pool) = &t.sink {
            s.rt.block_on(async {
                sqlx::query("DELETE FROM audit_records WHERE instance = $1")
                    .bind(&t.instance)
                    .execute(pool)
                    .await
                    .unwrap();
            });
        }
    }
}

fn main() {
    let s = setup();
    let mut c = Criterion::default().configure_from_args();
    bench(&mut c, &s);
    c.final_summary();
    rates(&s);
    clean_up(&s);
}
