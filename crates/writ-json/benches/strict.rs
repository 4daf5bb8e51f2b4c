//! What strict JSON costs a request: the duplicate-key walk and the decoding for the
//! secret scan, on an ordinary chat body and on hostile shapes.

use criterion::{Criterion, criterion_group, criterion_main};
use std::hint::black_box;

/// A chat body of the usual shape: a system prompt, a few turns, tools, ~2.5 KB.
fn chat_body() -> String {
    let mut messages = vec![serde_json::json!({
        "role": "system",
        "content": "You are a helpful travel assistant.\nAnswer briefly and cite the booking reference.",
    })];
    for i in 0..6 {
        messages.push(serde_json::json!({"role": "user", "content": format!("Question {i}: which flights leave Frankfurt for Lisbon tomorrow morning, and what do they cost in economy?")}));
        messages.push(serde_json::json!({"role": "assistant", "content": format!("Answer {i}: LH1166 at 07:05 (EUR 189) and TP575 at 09:40 (EUR 142).")}));
    }
    serde_json::json!({
        "model": "gpt-4o-mini",
        "messages": messages,
        "max_tokens": 256,
        "stream": false,
        "tools": [{"type": "function", "function": {"name": "book_flight", "parameters": {"type": "object", "properties": {"flight": {"type": "string"}, "date": {"type": "string"}}, "required": ["flight"]}}}],
    })
    .to_string()
}

fn strict(c: &mut Criterion) {
    let body = chat_body();
    assert!(body.contains('\\'), "the chat body has escapes, as most do");
    println!("chat body: {} bytes", body.len());
    c.bench_function("check chat body", |b| {
        b.iter(|| writ_json::check(black_box(body.as_bytes())))
    });
    c.bench_function("unescape chat body", |b| {
        b.iter(|| writ_json::unescape(black_box(body.as_bytes())).len())
    });
    c.bench_function("serde_json Value parse chat body (for scale)", |b| {
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
