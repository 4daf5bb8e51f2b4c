//! Memory per live writ, per structure, and the cost of a writ's first use against a
//! cached one. Mints `LIVE_WRITS` (default 100 000) real writs as `bench/run`'s scaling
//! row does (100 agents, two `writ:llm` grants), passes each through the structures a
//! gateway keeps per writ — the verified-writ cache ([`Verifier`], with each writ's memo
//! of its last allowed request), an in-memory limiter cell for a tokens-per-day-per-writ
//! limit, and the revocation ids the revocation test reads — and prints the heap bytes
//! each holds per live writ, counted by jemalloc's statistics (sampled every 1 000 writs
//! for the peaks), and the time of a first use
//! (verify + authorize) against a cached use on one thread, as a ratio.
//!
//! Run with `cargo bench -p writ-token --bench live_writs`; `LIVE_WRITS=1000` for a
//! quick run. Nothing here is asserted: it prints numbers to compare between commits.
#![allow(missing_docs, clippy::unwrap_used)]

use std::hint::black_box;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant, UNIX_EPOCH};

use tikv_jemalloc_ctl::{epoch, stats};
use writ_limits::{Amounts, Dimension, Field, LimitSpec, MemoryLimiter, Subject, Window};
use writ_token::{
    Api, KeyId, MintRequest, RequestFacts, RevocationIds, RevocationSet, RootKeyPair, RootKeys,
    Verifier, mint, parse_grants,
};

/// jemalloc, as the `writ` binary runs with: its statistics count the bytes held.
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

/// The most bytes seen allocated at once since it was last reset.
static PEAK: AtomicUsize = AtomicUsize::new(0);

/// Bytes allocated now (jemalloc's `stats.allocated`, refreshed), noted towards the peak.
fn live() -> usize {
    let _ = epoch::advance();
    let now = stats::allocated::read().unwrap_or(0);
    PEAK.fetch_max(now, Ordering::Relaxed);
    now
}

/// Bytes per writ, from a count of bytes over `n` writs.
fn per(bytes: isize, n: usize) -> f64 {
    bytes as f64 / n as f64
}

fn main() {
    let n: usize = std::env::var("LIVE_WRITS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(100_000);
    let t0 = UNIX_EPOCH + Duration::from_secs(1_800_000_000);
    let key = RootKeyPair::generate(KeyId(1));
    let mut trusted = RootKeys::new();
    trusted.insert(key.kid(), key.public());
    let ceiling = parse_grants(
        r#"[{"type":"writ:llm","upstream":"mock"},{"type":"writ:llm","upstream":"mockstream"}]"#,
    )
    .unwrap();
    let grants = parse_grants(
        r#"[{"type":"writ:llm","upstream":"mock","actions":["chat"],"models":["gpt-4o-mini"]},
            {"type":"writ:llm","upstream":"mockstream","actions":["chat"],"models":["gpt-4o-mini"]}]"#,
    )
    .unwrap();
    let agents: Vec<String> = (0..100).map(|i| format!("agent-{i:04}")).collect();
    let started = Instant::now();
    let writs: Vec<String> = (0..n)
        .map(|i| {
            let req = MintRequest {
                tenant: "default",
                agent: &agents[i % agents.len()],
                ceiling: &ceiling,
                grants: &grants,
                ttl: Duration::from_secs(3600),
                max_ttl: Duration::from_secs(3600),
                now: t0,
                cnf_jkt: None,
                audience: None,
            };
            mint(&key, &req).unwrap().0
        })
        .collect();
    let text_bytes: usize = writs.iter().map(String::len).sum();
    println!(
        "{n} writs minted in {:.1} s, {:.0} bytes of text each",
        started.elapsed().as_secs_f64(),
        per(text_bytes as isize, n)
    );
    let facts = RequestFacts {
        upstream: Some("mock".into()),
        model: Some("gpt-4o-mini".into()),
        ..RequestFacts::new(Api::Llm, "chat", "POST", "/v1/chat/completions")
    };
    let now = t0 + Duration::from_secs(1);
    let revocations = RevocationSet::new();

    // The verified-writ cache, and the first use of each writ (verify + authorize).
    let verifier = Verifier::new(n.max(1));
    let base = live();
    PEAK.store(base, Ordering::Relaxed);
    let started = Instant::now();
    let mut sampling = Duration::ZERO;
    let mut first_authorize = Duration::ZERO;
    for (i, text) in writs.iter().enumerate() {
        let writ = verifier.check(text, &trusted, now, &revocations).unwrap();
        let authorizing = Instant::now();
        black_box(writ.authorize(&facts, now).unwrap());
        first_authorize += authorizing.elapsed();
        if i % 1000 == 999 {
            let sampled = Instant::now();
            live();
            sampling += sampled.elapsed();
        }
    }
    let first = started.elapsed() - sampling;
    let after_first = live();
    let peak_first = PEAK.load(Ordering::Relaxed);
    PEAK.store(after_first, Ordering::Relaxed);

    // Second use: verified and authorized, answered from the cache and the memo.
    let started = Instant::now();
    let mut sampling = Duration::ZERO;
    for (i, text) in writs.iter().enumerate() {
        let writ = verifier.check(text, &trusted, now, &revocations).unwrap();
        black_box(writ.authorize(&facts, now).unwrap());
        if i % 1000 == 999 {
            let sampled = Instant::now();
            live();
            sampling += sampled.elapsed();
        }
    }
    let second = started.elapsed() - sampling;
    let after_second = live();
    // Third use: steady state.
    let started = Instant::now();
    for text in &writs {
        let writ = verifier.check(text, &trusted, now, &revocations).unwrap();
        black_box(writ.authorize(&facts, now).unwrap());
    }
    let third = started.elapsed();
    let after_third = live();
    let peak_uses = PEAK.load(Ordering::Relaxed).max(peak_first);

    // The memo's share: what authorizing adds to a writ only verified (measured on a
    // second cache, over at most 10 000 writs).
    let sample = n.min(10_000);
    let memo_verifier = Verifier::new(sample.max(1));
    let verified: Vec<_> = writs[..sample]
        .iter()
        .map(|t| memo_verifier.check(t, &trusted, now, &revocations).unwrap())
        .collect();
    let before_memo = live();
    for w in &verified {
        w.authorize(&facts, now).unwrap();
    }
    let memo_first = live() as isize - before_memo as isize;
    for w in &verified {
        w.authorize(&facts, now).unwrap();
    }
    let memo_second = live() as isize - before_memo as isize;
    drop(verified);
    drop(memo_verifier);

    // The revocation ids kept of each writ, as held (part of the cache's bytes above).
    let before_ids = live();
    let ids: Vec<RevocationIds> = writs[..sample]
        .iter()
        .map(|t| {
            verifier
                .check(t, &trusted, now, &revocations)
                .unwrap()
                .revocation_ids()
                .clone()
        })
        .collect();
    let ids_bytes = live() as isize - before_ids as isize;
    let blocks = ids.first().map_or(0, RevocationIds::len);
    drop(ids);

    // Limiter cells: a tokens-per-day limit scoped to the writ, reserved and settled once
    // per writ, as `bench/run`'s writ full config has.
    let limiter = MemoryLimiter::new();
    let spec = LimitSpec {
        scope: vec![Field::Writ],
        dimension: Dimension::Tokens,
        window: Window::Day,
        limit: 1_000_000_000_000,
        burst: 0,
        only: vec![],
    };
    let now_ns = u64::try_from(now.duration_since(UNIX_EPOCH).unwrap().as_nanos()).unwrap();
    let estimate = Amounts {
        requests: 1,
        input_tokens: 20,
        output_tokens: 100,
        cost_usd_micros: 0,
        compute_ms: 0,
    };
    let ids: Vec<String> = writs
        .iter()
        .map(|t| {
            verifier
                .check(t, &trusted, now, &revocations)
                .unwrap()
                .claims()
                .token_id
                .clone()
        })
        .collect();
    let before_cells = live();
    for (i, id) in ids.iter().enumerate() {
        let subject = Subject {
            tenant: "default",
            agent: &agents[i % agents.len()],
            writ: id,
            upstream: "mock",
            model: Some("gpt-4o-mini"),
        };
        let charge = spec
            .charge(&subject, &estimate, now_ns, Duration::from_secs(300))
            .unwrap();
        let reservation = limiter
            .reserve(format!("r{i}"), vec![charge], estimate, now_ns)
            .unwrap();
        limiter.settle(&reservation, &estimate);
    }
    let cells = live() as isize - before_cells as isize;

    let cache = after_third as isize - base as isize;
    println!("\nresident heap bytes per live writ ({n} writs; counted by the allocator):");
    println!(
        "  writ cache, after first use        {:>9.0}",
        per(after_first as isize - base as isize, n)
    );
    println!(
        "  writ cache, after second use       {:>9.0}",
        per(after_second as isize - base as isize, n)
    );
    println!(
        "  writ cache, after third use        {:>9.0}",
        per(cache, n)
    );
    println!(
        "    of which the memo, after 1st/2nd {:>9.0} / {:.0}",
        per(memo_first, sample),
        per(memo_second, sample)
    );
    println!(
        "    of which revocation ids          {:>9.0} ({blocks} blocks)",
        per(ids_bytes, sample)
    );
    println!(
        "  limiter cells (tokens/day/writ)    {:>9.0}",
        per(cells, n)
    );
    println!(
        "  total                              {:>9.0}",
        per(cache + cells, n)
    );
    println!(
        "  peak over the first use            {:>9.0}  ({:.1} MiB)",
        per(peak_first as isize - base as isize, n),
        (peak_first - base) as f64 / 1_048_576.0
    );
    println!(
        "  peak over three uses               {:>9.0}  ({:.1} MiB)",
        per(peak_uses as isize - base as isize, n),
        (peak_uses - base) as f64 / 1_048_576.0
    );
    let us = |d: Duration| d.as_secs_f64() * 1e6 / n as f64;
    println!("\nCPU per writ, one thread (verify + authorize):");
    println!("  first use   {:>8.1} µs", us(first));
    println!(
        "    of which verifying {:.1} µs, authorizing {:.1} µs",
        us(first - first_authorize),
        us(first_authorize)
    );
    println!("  second use  {:>8.1} µs", us(second));
    println!("  third use   {:>8.1} µs", us(third));
    println!(
        "  first use / cached use: {:.1}× the time (cached throughput / first-use throughput)",
        first.as_secs_f64() / third.as_secs_f64()
    );
}
