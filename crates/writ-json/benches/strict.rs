//! What strict JSON costs a request: the duplicate-key walk and the decoding for the
//! secret scan, on an ordinary chat body and on hostile shapes.

use criterion::{Criterion, criterion_group, criterion_main};
use std::hint::black_box;

/// A chat body of the usual shape (a system prompt, six turns, a tool; 1.76 KB), shared
/// with `examples/instructions.rs`.
const CHAT_BODY: &str = include_str!("chat_body.json");

fn strict(c: &mut Criterion) {
    let body = CHAT_BODY;
    assert!(body.contains('\\'), "the chat body has escapes, as most do");
    println!("chat body: {} bytes", body.len());
    c.bench_function("check chat body", |b| {
        b.iter(|| writ_json::check(black_box(body.as_bytes())))
    });
    c.bench_function("scan_text chat body", |b| {
        b.iter(|| writ_json::scan_text(black_box(body.as_bytes())).len())
    });
    c.bench_function("strict Value parse chat body", |b| {
        b.iter(|| writ_json::value(black_box(body.as_bytes())))
    });
    // What a chat inspection reads (openai::inspect_chat): the messages' types, not their text.
    let keep = [
        "model",
        "max_completion_tokens",
        "max_tokens",
        "stream",
        "stream_options",
    ];
    c.bench_function("strict outline chat body (inspection)", |b| {
        b.iter(|| writ_json::outline(black_box(body.as_bytes()), black_box(&keep)))
    });
    c.bench_function("serde_json Value parse chat body (what it replaces)", |b| {
        b.iter(|| serde_json::from_slice::<serde_json::Value>(black_box(body.as_bytes())))
    });

    let mut wide = String::from("{");
    for i in 0..100_000 {
        wide.push_str(&format!("\"k{i}\":0,"));
    }
    wide.push_str("\"end\":0}");
    println!("wide object: {} bytes", wide.len());
    c.bench_function("check 100k keys in one object", |b| {
        b.iter(|| writ_json::check(black_box(wide.as_bytes())))
    });
    let escaped = format!("{{\"a\":\"{}\"}}", "\\u0061".repeat(100_000));
    c.bench_function("check+unescape 100k escapes", |b| {
        b.iter(|| {
            writ_json::check(black_box(escaped.as_bytes())).ok();
            writ_json::unescape(black_box(escaped.as_bytes())).len()
        })
    });
}

criterion_group!(benches, strict);
criterion_main!(benches);
