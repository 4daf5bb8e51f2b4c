//! Per-operation cost of the writ lifecycle: mint, verify (cold), authorize — evaluated
//! (each call different facts than the last, so the Datalog authorizer runs) and repeated
//! (the same facts again, answered from the writ's memo of its last allow).
//! Run with `cargo bench -p writ-token`.
#![allow(missing_docs, clippy::unwrap_used)]

use std::hint::black_box;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use criterion::{Criterion, criterion_group, criterion_main};
use writ_token::{
    Api, KeyId, MintRequest, RequestFacts, RootKeyPair, RootKeys, decode, mint, parse_grants,
};

fn t0() -> SystemTime {
    UNIX_EPOCH + Duration::from_secs(1_800_000_000)
}

fn bench(c: &mut Criterion) {
    let key = RootKeyPair::generate(KeyId(1));
    let mut keys = RootKeys::new();
    keys.insert(key.kid(), key.public());
    let ceiling = parse_grants(r#"{"type":"writ:llm","upstream":"openai"}"#).unwrap();
    let grants = parse_grants(
        r#"{"type":"writ:llm","upstream":"openai","actions":["chat"],"models":["gpt-4o-mini"],"max_output_tokens":1000}"#,
    )
    .unwrap();
    let req = MintRequest {
        tenant: "default",
        agent: "demo",
        ceiling: &ceiling,
        grants: &grants,
        ttl: Duration::from_secs(30),
        max_ttl: Duration::from_secs(30),
        now: t0(),
        cnf_jkt: None,
    };
    c.bench_function("mint", |b| b.iter(|| mint(&key, black_box(&req)).unwrap()));

    let (writ, _) = mint(&key, &req).unwrap();
    c.bench_function("verify (cold: parse, signatures, claims)", |b| {
        b.iter(|| decode(black_box(&writ)).unwrap().verify(&keys).unwrap())
    });

    let verified = decode(&writ).unwrap().verify(&keys).unwrap();
    let facts = RequestFacts {
        upstream: Some("openai".into()),
        model: Some("gpt-4o-mini".into()),
        max_output_tokens: Some(500),
        ..RequestFacts::new(Api::Llm, "chat", "POST", "/v1/chat/completions")
    };
    let other = RequestFacts {
        max_output_tokens: Some(400),
        ..facts.clone()
    };
    let mut flip = false;
    c.bench_function("authorize (evaluated)", |b| {
        b.iter(|| {
            flip = !flip;
            let f = if flip { &facts } else { &other };
            verified.authorize(black_box(f), t0()).unwrap()
        })
    });
    c.bench_function("authorize (repeated)", |b| {
        b.iter(|| verified.authorize(black_box(&facts), t0()).unwrap())
    });
}

criterion_group!(benches, bench);
criterion_main!(benches);
