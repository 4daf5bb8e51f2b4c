//! Throughput of usage reading: the SSE stream meter, the Bedrock event-stream meter and
//! the JSON usage reader, in bytes/s.
//! Run with `cargo bench -p writ-providers`.
#![allow(missing_docs, clippy::unwrap_used)]

use std::hint::black_box;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use writ_providers::{Dialect, RouteSpec, StreamMeter, openai};

fn dialect(route: &str) -> Dialect {
    RouteSpec::find(route).expect("a route").dialect()
}

fn stream(events: usize) -> Vec<u8> {
    let mut s = String::new();
    for i in 0..events {
        s.push_str(&format!(
            "data: {{\"id\":\"chatcmpl-1\",\"object\":\"chat.completion.chunk\",\"created\":1,\"model\":\"gpt-4o-mini\",\"choices\":[{{\"index\":0,\"delta\":{{\"content\":\"word{i} \"}},\"finish_reason\":null}}]}}\n\n"
        ));
    }
    s.push_str("data: {\"choices\":[],\"usage\":{\"prompt_tokens\":12,\"completion_tokens\":500,\"total_tokens\":512}}\n\ndata: [DONE]\n\n");
    s.into_bytes()
}

/// A Converse stream of `events` text deltas and a usage frame, in event-stream framing.
fn event_stream(events: usize) -> Vec<u8> {
    let frame = |kind: &str, payload: String| {
        writ_providers::bedrock::event_frame(kind, payload.into_bytes())
    };
    let mut s = Vec::new();
    for i in 0..events {
        s.extend(frame(
            "contentBlockDelta",
            format!(r#"{{"contentBlockIndex":0,"delta":{{"text":"word{i} "}}}}"#),
        ));
    }
    s.extend(frame(
        "metadata",
        r#"{"usage":{"inputTokens":12,"outputTokens":500,"totalTokens":512},"metrics":{"latencyMs":9}}"#.to_string(),
    ));
    s
}

fn bench(c: &mut Criterion) {
    let body = stream(500);
    let mut group = c.benchmark_group("usage");
    group.throughput(Throughput::Bytes(body.len() as u64));
    group.bench_function("sse stream meter (1 KiB chunks)", |b| {
        b.iter(|| {
            let mut meter = StreamMeter::new(dialect("/v1/chat/completions"), false);
            for chunk in black_box(&body).chunks(1024) {
                meter.feed(chunk);
            }
            meter.finish();
            meter.usage().unwrap()
        })
    });
    let frames = event_stream(500);
    group.throughput(Throughput::Bytes(frames.len() as u64));
    group.bench_function("bedrock event-stream meter (1 KiB chunks)", |b| {
        b.iter(|| {
            let mut meter = StreamMeter::new(dialect("/model/{model}/converse"), false);
            for chunk in black_box(&frames).chunks(1024) {
                meter.feed(chunk);
            }
            meter.usage().unwrap()
        })
    });
    let json = br#"{"id":"chatcmpl-1","object":"chat.completion","created":1,"model":"gpt-4o-mini","choices":[{"index":0,"message":{"role":"assistant","content":"Hello there, this is a reply of moderate length for the benchmark."},"finish_reason":"stop"}],"usage":{"prompt_tokens":12,"completion_tokens":20,"total_tokens":32}}"#;
    group.throughput(Throughput::Bytes(json.len() as u64));
    group.bench_function("json usage reader", |b| {
        b.iter(|| openai::usage_from_json(black_box(json)).unwrap())
    });
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
