//! What writing a request's audit record line costs: `AuditRecord::to_line` (written field
//! by field, `record/line.rs`) against `serde_json::to_string` of the same record, the
//! encoding it must equal byte for byte and the baseline measured in the same run.
//!
//! The record is a forwarded request's, as the gateway writes it (about 400 bytes: tenant,
//! agent, writ and client pseudonyms, upstream, model, usage, cost, latency, the hash link).
//! After the criterion group, prints both times and their ratio.
//!
//! Run with `cargo bench -p writ-audit --bench record_line`.
#![allow(missing_docs, clippy::unwrap_used)]

use std::hint::black_box;
use std::time::{Duration, Instant, UNIX_EPOCH};

use criterion::Criterion;
use writ_audit::{AuditRecord, Kind, Usage};

fn request_record() -> AuditRecord {
    let mut r = AuditRecord::new(
        Kind::RequestAllowed,
        UNIX_EPOCH + Duration::from_millis(1_796_685_342_250),
    );
    r.seq = 1_234_567;
    r.instance = "01M99CN6583SEDG85K9N4B929N".into();
    r.tenant = Some("acme".into());
    r.agent = Some("support-bot".into());
    r.writ = Some("c5f8c77e8b9c3dac2483c3575ee3dcd0".into());
    r.client = Some("398ef9ba3a19524bb6f926668118e7e0".into());
    r.upstream = Some("openai".into());
    r.model = Some("gpt-4o-mini".into());
    r.operation = Some("chat".into());
    r.status = Some(200);
    r.usage = Some(Usage {
        input_tokens: 812,
        output_tokens: 164,
        cached_tokens: Some(512),
    });
    r.cost_usd_micros = Some(3_670);
    r.latency_ms = Some(1_432);
    r.prev = "94e2613a7f2a02accf3173ea5341cfe1".repeat(2);
    r
}

/// Mean time of `f` over `n` calls.
fn mean(n: u32, mut f: impl FnMut() -> usize) -> Duration {
    let start = Instant::now();
    let mut bytes = 0;
    for _ in 0..n {
        bytes += f();
    }
    black_box(bytes);
    start.elapsed() / n
}

fn main() {
    let record = request_record();
    let line = record.to_line();
    assert_eq!(
        line,
        serde_json::to_string(&record).unwrap(),
        "the same bytes"
    );
    println!("record line: {} bytes", line.len());

    let mut c = Criterion::default().configure_from_args();
    c.bench_function("to_line (field by field)", |b| {
        b.iter(|| black_box(&record).to_line())
    });
    c.bench_function("serde_json::to_string (the baseline)", |b| {
        b.iter(|| serde_json::to_string(black_box(&record)).unwrap())
    });
    c.final_summary();

    let n = 200_000;
    let ours = mean(n, || black_box(&record).to_line().len());
    let serde = mean(n, || {
        serde_json::to_string(black_box(&record)).unwrap().len()
    });
    println!(
        "record line: to_line {ours:?}, serde_json {serde:?}, {:.2}x faster",
        serde.as_secs_f64() / ours.as_secs_f64()
    );
}
