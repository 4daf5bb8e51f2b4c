//! Per-request cost of a writ already verified once: hash the presented text and look it up.
//! Run with `cargo bench -p writ-gateway`.
#![allow(missing_docs, clippy::unwrap_used)]

use std::hint::black_box;
use std::time::{Duration, UNIX_EPOCH};

use criterion::{Criterion, criterion_group, criterion_main};
use writ_token::{
    KeyId, MintRequest, RootKeyPair, RootKeys, VerifyCache, decode, mint, parse_grants,
};

fn bench(c: &mut Criterion) {
    let now = UNIX_EPOCH + Duration::from_secs(1_800_000_000);
    let key = RootKeyPair::generate(KeyId(1));
    let mut keys = RootKeys::new();
    keys.insert(key.kid(), key.public());
    let grants =
        parse_grants(r#"{"type":"writ:llm","upstream":"openai","models":["gpt-4o-mini"]}"#)
            .unwrap();
    let cache = VerifyCache::new(100_000);
    // A cache holding 10 000 other writs, as a busy gateway's would.
    let mut writ = String::new();
    for i in 0..10_000u64 {
        let req = MintRequest {
            tenant: "default",
            agent: "demo",
            ceiling: &grants,
            grants: &grants,
            ttl: Duration::from_secs(30),
            max_ttl: Duration::from_secs(30),
            now: now + Duration::from_secs(i % 7),
            cnf_jkt: None,
            audience: None,
        };
        writ = mint(&key, &req).unwrap().0;
        let verified = decode(&writ).unwrap().verify(&keys).unwrap();
        cache.insert(&verified, now);
    }
    c.bench_function("verify (cached: hash + lookup)", |b| {
        b.iter(|| cache.get(black_box(&writ), now).unwrap())
    });
}

criterion_group!(benches, bench);
criterion_main!(benches);
