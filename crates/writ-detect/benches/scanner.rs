//! Secret-scanner throughput on a 1 MB model-like response (prose, lists, a little code):
//! whole-text `scan` and `redact`, and `StreamRedactor` fed 1 KiB chunks, each without
//! secrets and with 20 synthetic secrets from the test corpus sprinkled in; and what the
//! gateway scans per request: one short chat completion redacted, and (`per_request/…`) a
//! response's headers scanned one by one, that completion and a chat request. Criterion
//! reports MB/s.
//!
//! Run with `cargo bench -p writ-detect --bench scanner` (shorter:
//! `... -- --warm-up-time 1 --measurement-time 3`).
#![allow(missing_docs, clippy::unwrap_used)]

#[path = "../tests/support/corpus.rs"]
#[allow(dead_code)]
mod samples;

use std::hint::black_box;
use std::sync::Arc;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use writ_detect::{Scanner, StreamRedactor};

const SIZE: usize = 1 << 20;
const CHUNK: usize = 1024;

/// Words of an assistant's answer, including the ones that start rules (`token`,
/// `password`, `secret`, `key`) at a plausible rate.
const WORDS: &[&str] = &[
    "the",
    "a",
    "to",
    "of",
    "and",
    "in",
    "is",
    "that",
    "for",
    "it",
    "you",
    "can",
    "with",
    "this",
    "model",
    "request",
    "response",
    "tokens",
    "token",
    "output",
    "input",
    "function",
    "call",
    "agent",
    "tool",
    "use",
    "when",
    "your",
    "API",
    "gateway",
    "limit",
    "rate",
    "budget",
    "cost",
    "streaming",
    "server",
    "client",
    "data",
    "value",
    "config",
    "file",
    "example",
    "here",
    "first",
    "then",
    "returns",
    "error",
    "handle",
    "password",
    "secret",
    "key",
    "keys",
    "user",
    "should",
    "will",
    "not",
    "be",
    "are",
    "from",
    "each",
    "by",
    "on",
    "as",
    "or",
    "an",
    "if",
    "JSON",
    "field",
    "message",
    "content",
    "role",
    "assistant",
    "system",
    "chat",
    "completion",
    "Rust",
    "async",
    "await",
    "let",
    "fn",
    "struct",
    "impl",
    "vector",
    "embedding",
    "search",
];

/// A deterministic xorshift, so every run scans the same text.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
}

fn prose(size: usize) -> Vec<u8> {
    let mut rng = Rng(0x5eed_1234_abcd_0001);
    let mut out = Vec::with_capacity(size + 256);
    while out.len() < size {
        match rng.below(40) {
            0 => out.extend_from_slice(b"\n\n## Step "),
            1 => out.extend_from_slice(b"\n- "),
            2 => out.extend_from_slice(
                b"\n```rust\nlet client = Client::new(base_url, writ)?;\nlet reply = client.chat(&req).await?;\n```\n",
            ),
            3 => out.extend_from_slice(b"; usage: {\"prompt_tokens\": 412, \"completion_tokens\": 96}"),
            _ => {}
        }
        let n = 6 + rng.below(14);
        for i in 0..n {
            let w = WORDS[rng.below(WORDS.len())];
            if i == 0 {
                let mut c = w.as_bytes().to_vec();
                c[0] = c[0].to_ascii_uppercase();
                out.extend_from_slice(&c);
            } else {
                out.push(b' ');
                out.extend_from_slice(w.as_bytes());
            }
        }
        out.extend_from_slice(if rng.below(5) == 0 { b".\n" } else { b". " });
    }
    out.truncate(size);
    out
}

/// `text` with 20 corpus positives inserted at even intervals, then cut back to size.
fn with_secrets(text: &[u8]) -> Vec<u8> {
    let positives = samples::positives();
    let mut out = Vec::with_capacity(text.len() + 8192);
    let step = text.len() / 20;
    for i in 0..20 {
        out.extend_from_slice(&text[i * step..(i + 1) * step]);
        out.push(b' ');
        out.extend_from_slice(&positives[(i * 7) % positives.len()].text);
        out.push(b' ');
    }
    out
}

fn stream(scanner: &Arc<Scanner>, text: &[u8]) -> usize {
    let mut r = StreamRedactor::new(scanner.clone());
    let mut n = 0;
    for chunk in text.chunks(CHUNK) {
        n += r.push(chunk).len();
    }
    n + r.finish().len()
}

fn bench(c: &mut Criterion) {
    let scanner = Arc::new(samples::scanner());
    let clean = prose(SIZE);
    let dirty = with_secrets(&clean);
    assert!(scanner.scan(&clean).is_empty(), "bench prose must be clean");
    let found = scanner.scan(&dirty).len();
    assert!(found >= 20, "{found} findings");
    let mut streamed = Vec::new();
    let mut r = StreamRedactor::new(scanner.clone());
    for chunk in dirty.chunks(CHUNK) {
        streamed.extend(r.push(chunk));
    }
    streamed.extend(r.finish());
    assert_eq!(
        streamed,
        scanner.redact(&dirty).0,
        "stream and whole redaction differ"
    );

    let mut g = c.benchmark_group("detect");
    for (name, text) in [("clean", &clean), ("20_secrets", &dirty)] {
        g.throughput(Throughput::Bytes(text.len() as u64));
        g.bench_function(format!("scan/{name}"), |b| {
            b.iter(|| scanner.scan(black_box(text)).len())
        });
        g.bench_function(format!("redact/{name}"), |b| {
            b.iter(|| scanner.redact(black_box(text)).0.len())
        });
        g.bench_function(format!("stream_1KiB/{name}"), |b| {
            b.iter(|| stream(&scanner, black_box(text)))
        });
    }
    // What the gateway scans per request most often: one short, clean chat completion.
    g.throughput(Throughput::Bytes(CHAT_RESPONSE.len() as u64));
    g.bench_function("redact/chat_response", |b| {
        b.iter(|| {
            scanner
                .redact_where(black_box(CHAT_RESPONSE), |_| true)
                .1
                .len()
        })
    });
    // What a response is scanned with where the tenant's `response_secret` mode is off:
    // the gateway's own credentials (an upstream key) and writs only.
    let own = Scanner::new(
        [writ_detect::rules::builtin(writ_detect::RuleId::Writ)],
        &[(
            "upstream",
            "sk-proj-own0123456789abcdefghijklmnopqrstuvwxyzABCDEF",
        )],
    )
    .unwrap();
    g.bench_function("redact/chat_response_own_secrets", |b| {
        b.iter(|| own.redact_where(black_box(CHAT_RESPONSE), |_| true).1.len())
    });
    // The whole of it: a response's headers scanned one by one as `scrub_headers` does
    // (each name scanned, each value redacted), the chat completion redacted, and the
    // request body scanned as the outbound prompt-secret check does.
    let per_request = RESPONSE_HEADERS
        .iter()
        .map(|(n, v)| n.len() + v.len())
        .sum::<usize>()
        + CHAT_RESPONSE.len()
        + CHAT_REQUEST.len();
    g.throughput(Throughput::Bytes(per_request as u64));
    g.bench_function("per_request/headers", |b| {
        b.iter(|| scrub_headers(&scanner, black_box(RESPONSE_HEADERS)))
    });
    g.bench_function("per_request/all", |b| {
        b.iter(|| {
            scrub_headers(&scanner, black_box(RESPONSE_HEADERS))
                + scanner
                    .redact_where(black_box(CHAT_RESPONSE), |_| true)
                    .1
                    .len()
                + scanner.scan(black_box(CHAT_REQUEST)).len()
        })
    });
    g.finish();
}

/// What the gateway's `scrub_headers` costs: every name scanned, every value redacted.
fn scrub_headers(scanner: &Scanner, headers: &[(&str, &str)]) -> usize {
    let mut found = 0;
    for (name, value) in headers {
        found += scanner.scan(name.as_bytes()).len();
        found += scanner.redact_where(value.as_bytes(), |_| true).1.len();
    }
    found
}

/// Typical response headers of an OpenAI-style upstream behind nginx.
const RESPONSE_HEADERS: &[(&str, &str)] = &[
    ("content-type", "application/json"),
    ("date", "Mon, 07 Dec 2026 05:03:46 GMT"),
    ("server", "nginx/1.22.1"),
    ("x-request-id", "5f0c9a2e-7b1d-4c3e-9a8f-2d6b1e0c4a77"),
    ("content-length", "412"),
    ("openai-processing-ms", "187"),
    ("x-ratelimit-remaining-tokens", "149984"),
];

/// A chat request as an agent's SDK sends it (about 300 bytes).
const CHAT_REQUEST: &[u8] = br#"{"model":"gpt-4o-mini","messages":[{"role":"system","content":"You are a helpful assistant that answers briefly."},{"role":"user","content":"Summarise the release notes of version 2.4 in three bullet points, please, and mention the migration steps."}],"max_tokens":256,"temperature":0.2,"stream":false}"#;

/// An OpenAI chat completion as a model returns it (the bench/ mock upstream's answer).
const CHAT_RESPONSE: &[u8] = br#"{"id":"chatcmpl-bench0001","object":"chat.completion","created":1767225600,"model":"gpt-4o-mini-2024-07-18","choices":[{"index":0,"message":{"role":"assistant","content":"Hello! How can I help you today?","refusal":null},"logprobs":null,"finish_reason":"stop"}],"usage":{"prompt_tokens":14,"completion_tokens":9,"total_tokens":23},"system_fingerprint":"fp_bench"}"#;

criterion_group!(benches, bench);
criterion_main!(benches);
