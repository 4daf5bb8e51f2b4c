//! What scanning a stream's text costs a client: first-content-byte latency of an ordinary
//! OpenAI chat stream through a gateway on loopback, with response scanning on and off,
//! and how much of a channel's text the redactor holds back.
//!
//! - first content byte: a scripted mock upstream sends the first event of a stream (a
//!   four-character delta) and then nothing; the client measures from sending the request
//!   to receiving the first body bytes that hold a `content` delta.
//! - whole stream: the mock sends a stream of prose in four-character deltas (363 events,
//!   53 KB) at once; the client measures until the stream's end: what processing every
//!   event costs.
//!
//! `N` sequential requests per gateway, the two gateways interleaved. "off" is the same
//! gateway configured with the detector `response_secret` off (`[detection.modes]`): the
//! stream is then scanned only for the gateway's own upstream key and writs, which are
//! redacted in every mode.
//! - hold-back: the same prose through one channel's redactor (the built-in rules and the
//!   upstream key, as the gateway scans a channel), four characters a push: bytes held
//!   after each push, and how many pushes released less than they received.
//!
//! Run with `cargo run --release -p writ-gateway --example stream_ttft [N]`.
#![allow(missing_docs, clippy::unwrap_used)]

use std::sync::Arc;
use std::time::{Duration, Instant};

use futures_util::StreamExt;
use serde_json::json;
use writ_testkit::{MockUpstream, Script, ScriptEnd, TestGateway};

const KEY: &str = "sk-proj-UpstreamKeyForTheStreamLatencyRun0123456789";

/// An assistant's answer, with words that start rules (`token`, `password`, `secret`,
/// `key`) at a plausible rate.
const PROSE: &str = "Hello! To rotate the API key, open the settings page and choose a new \
    token. The gateway keeps the secret in its store, encrypted, and never shows the \
    password to an agent. Each request carries a short-lived writ instead; when it \
    expires, the agent asks for another one. Streaming responses pass through as they \
    arrive, and usage is metered from the final chunk. ";

fn pieces(text: &str) -> Vec<String> {
    let chars: Vec<char> = text.chars().collect();
    chars.chunks(4).map(|c| c.iter().collect()).collect()
}

fn stream_body() -> Vec<u8> {
    let mut out = String::new();
    for p in pieces(&PROSE.repeat(4)) {
        out.push_str(&format!(
            "data: {}\n\n",
            json!({"id": "c1", "object": "chat.completion.chunk", "model": "gpt-4o-mini",
                "choices": [{"index": 0, "delta": {"content": p}, "finish_reason": null}]})
        ));
    }
    out.push_str("data: {\"id\":\"c1\",\"choices\":[{\"index\":0,\"delta\":{},\"finish_reason\":\"stop\"}]}\n\ndata: [DONE]\n\n");
    out.into_bytes()
}

/// Time to the first `content` bytes, or with `whole` to the end of the stream.
async fn first_content(
    client: &reqwest::Client,
    gw: &TestGateway,
    writ: &str,
    whole: bool,
) -> Duration {
    let started = Instant::now();
    let resp = client
        .post(gw.url("/v1/chat/completions"))
        .bearer_auth(writ)
        .json(&json!({"model": "gpt-4o-mini", "stream": true, "messages": [{"role": "user", "content": "hi"}]}))
        .send()
        .await
        .unwrap();
    let mut body = resp.bytes_stream();
    while let Some(chunk) = body.next().await {
        if chunk.unwrap().windows(9).any(|w| w == b"\"content\"") && !whole {
            // The rest never comes: dropping the body ends the request.
            return started.elapsed();
        }
    }
    started.elapsed()
}

fn percentile(sorted: &[Duration], p: f64) -> f64 {
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i].as_secs_f64() * 1e6
}

/// Prose without the words that start rules.
const PLAIN: &str = "Hello! To change the settings, open the page and choose a new value. \
    The gateway keeps everything in its store, encrypted, and never shows it to an agent. \
    Each request carries a short-lived credential instead; when it expires, the agent asks \
    for another one. Responses pass through as they arrive, and usage is metered at the end. ";

fn hold_back(label: &str, prose: &str) {
    let scanner =
        Arc::new(writ_detect::Scanner::new(writ_detect::rules::BUILTIN, &[("demo", KEY)]).unwrap());
    let mut redactor = writ_detect::StreamRedactor::new(scanner.clone());
    let (mut held_sum, mut held_max, mut short, mut pushes) = (0usize, 0usize, 0usize, 0usize);
    for p in pieces(&prose.repeat(4)) {
        let out = redactor.push(p.as_bytes());
        let held = redactor.held_back();
        held_sum += held;
        held_max = held_max.max(held);
        short += usize::from(out.len() < p.len());
        pushes += 1;
    }
    println!(
        "hold-back, {label}, {pushes} four-character deltas: mean {:.1} bytes held after a push, max {held_max}; {short} pushes ({:.0}%) released less than they received; bound per channel {} bytes (Scanner::max_held_back)",
        held_sum as f64 / pushes as f64,
        100.0 * short as f64 / pushes as f64,
        scanner.max_held_back()
    );
}

fn main() {
    let n: usize = std::env::args()
        .nth(1)
        .and_then(|a| a.parse().ok())
        .unwrap_or(300);
    hold_back("prose with key/token/secret/password", PROSE);
    hold_back("prose without them", PLAIN);
    if n == 0 {
        return;
    }
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let body = stream_body();
        let first_event = body
            .windows(2)
            .position(|w| w == b"\n\n")
            .map_or(body.len(), |i| i + 2);
        for whole in [false, true] {
            let script = Script {
                status: 200,
                content_type: "text/event-stream",
                chunks: vec![if whole {
                    body.clone()
                } else {
                    body[..first_event].to_vec()
                }],
                then: if whole {
                    ScriptEnd::End
                } else {
                    ScriptEnd::Hang
                },
            };
            measure(n, whole, script).await;
        }
    });
}

async fn measure(n: usize, whole: bool, script: Script) {
    {
        let upstream = MockUpstream::start_scripted(KEY, script).await;
        let config = |mode: &str| {
            format!(
                "[upstreams.demo]\nkind = \"openai\"\nbase_url = \"{}\"\nallow_private_network = true\napi_key = \"{KEY}\"\n[audit]\nmode = \"best_effort\"\n[detection.modes]\nresponse_secret = \"{mode}\"\n",
                upstream.base_url()
            )
        };
        let on = TestGateway::start(&config("block")).await;
        let off = TestGateway::start(&config("off")).await;
        let grant = r#"{"type":"writ:llm","upstream":"demo"}"#;
        let (writ_on, writ_off) = (on.mint("demo", grant, 30), off.mint("demo", grant, 30));
        let client = reqwest::Client::new();
        // Warm the pools.
        for _ in 0..20 {
            first_content(&client, &on, &writ_on, whole).await;
            first_content(&client, &off, &writ_off, whole).await;
        }
        let (mut t_on, mut t_off) = (Vec::with_capacity(n), Vec::with_capacity(n));
        for _ in 0..n {
            t_on.push(first_content(&client, &on, &writ_on, whole).await);
            t_off.push(first_content(&client, &off, &writ_off, whole).await);
        }
        t_on.sort_unstable();
        t_off.sort_unstable();
        for (name, t) in [("scanning on ", &t_on), ("scanning off", &t_off)] {
            let what = if whole {
                "whole 53 KB stream"
            } else {
                "first content byte"
            };
            println!(
                "{what}, {name}: p50 {:.0} us, p90 {:.0} us, p99 {:.0} us ({n} requests)",
                percentile(t, 0.5),
                percentile(t, 0.9),
                percentile(t, 0.99),
            );
        }
    }
}
