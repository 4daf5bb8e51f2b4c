//! End-to-end cost of response scanning: throughput through a real gateway on a loopback
//! port (`POST /v1/chat/completions`, non-streamed), with scanning on and off, for two
//! model responses:
//!
//! - 4 KiB: an OpenAI `chat.completion` of about 4 KiB, 16 requests in flight;
//! - 1 MiB: the same shape at about 1 MiB (the issue's 1 MB response), 4 in flight.
//!
//! The response is played back by the test kit's scripted mock upstream, the same bytes
//! for every request: a `chat.completion` whose assistant content is prose with lists,
//! code blocks and the words that start rules (`token`, `password`, `secret`, `key`) at a
//! plausible rate, but no secret, plus a `usage` object. So nothing is redacted and the
//! body arrives as sent (checked for every response by length, once in full).
//!
//! Both gateways of a size start from the same config (`best_effort` audit, so the audit
//! writer does not dominate):
//!
//! - scanning on: the gateway as deployed. The whole response passes the secret scanner
//!   (the 15 built-in rules plus the upstream's own key) before it is released, and the
//!   request body is scanned for secrets (`prompt_secret`);
//! - scanning off: the same gateway configured with the detectors `prompt_secret` and
//!   `response_secret` off (`[detection.modes]`), as an operator can run it. The response
//!   is then scanned only for the gateway's own upstream key and writs, which are redacted
//!   in every mode. Everything else, buffering the response, parsing its usage, audit, is
//!   the same.
//!
//! Client, gateways and mock share this machine's cores. The mock records every request it
//! receives (a few hundred bytes each, not the response), so a long run grows its memory
//! slowly; it clones the scripted body for every response, as a real upstream would write it.
//!
//! Criterion reports requests as bytes of response per second. After the criterion groups,
//! runs both gateways of each size in turn itself, interleaved, and prints requests/s and
//! MB/s (10^6 bytes of response body) of each and the ratios `scanning-on/off`.
//!
//! Run with `cargo bench -p writ-gateway --bench scanning_e2e` (shorter:
//! `... -- --warm-up-time 1 --measurement-time 3`).
#![allow(missing_docs, clippy::unwrap_used)]

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use criterion::{Criterion, Throughput};
use tokio::runtime::Runtime;
use writ_testkit::{MockUpstream, Script, ScriptEnd, TestGateway};

const KEY: &str = "sk-bench-scanning-e2e-0123456789abcdef";
const UPSTREAM: &str = "bench";
const REQUEST: &str = r#"{"model":"gpt-4o-mini","messages":[{"role":"user","content":"Explain how the gateway meters a streamed response, with an example."}]}"#;

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
    "chat",
    "completion",
    "Rust",
    "async",
    "await",
    "let",
    "fn",
    "struct",
    "impl",
];

/// A deterministic xorshift, so every run sends the same text.
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

/// About `size` bytes of an assistant's answer: sentences, headings, list items and the
/// odd code block or config snippet, without secrets.
fn prose(size: usize) -> String {
    let mut rng = Rng(0x5eed_cafe_0042_0001);
    let mut out = String::with_capacity(size + 256);
    while out.len() < size {
        match rng.below(40) {
            0 => out.push_str("\n\n## Step "),
            1 => out.push_str("\n- "),
            2 => out.push_str(
                "\n```rust\nlet client = Client::new(base_url, writ)?;\nlet reply = client.chat(&req).await?;\nprintln!(\"{} tokens\", reply.usage.total_tokens);\n```\n",
            ),
            3 => out.push_str(
                "\n```toml\n[upstreams.openai]\nkind = \"openai\"\napi_key = { env = \"OPENAI_API_KEY\" }\n```\n",
            ),
            4 => out.push_str("; usage: {\"prompt_tokens\": 412, \"completion_tokens\": 96}"),
            _ => {}
        }
        let n = 6 + rng.below(14);
        for i in 0..n {
            let w = WORDS[rng.below(WORDS.len())];
            if i == 0 {
                let mut c = w.chars();
                if let Some(first) = c.next() {
                    out.push(first.to_ascii_uppercase());
                    out.push_str(c.as_str());
                }
            } else {
                out.push(' ');
                out.push_str(w);
            }
        }
        out.push_str(if rng.below(5) == 0 { ".\n" } else { ". " });
    }
    out.truncate(size);
    out
}

/// A `chat.completion` of about `size` bytes whose answer is [`prose`].
fn completion(size: usize) -> Vec<u8> {
    let shell = |content: &str| {
        serde_json::to_vec(&serde_json::json!({
            "id": "chatcmpl-bench0000000000000000000000",
            "object": "chat.completion",
            "created": 1_700_000_000,
            "model": "gpt-4o-mini-2024-07-18",
            "choices": [{
                "index": 0,
                "message": {"role": "assistant", "content": content, "refusal": null},
                "logprobs": null,
                "finish_reason": "stop",
            }],
            "usage": {
                "prompt_tokens": 23,
                "completion_tokens": size / 4,
                "total_tokens": 23 + size / 4,
            },
            "system_fingerprint": "fp_bench",
        }))
        .unwrap()
    };
    // The content's newlines and quotes grow by their escapes; near enough to `size`.
    let overhead = shell("").len();
    shell(&prose(size.saturating_sub(overhead + size / 50)))
}

/// One gateway under test.
struct Target {
    label: &'static str,
    gw: TestGateway,
    url: String,
    in_flight: u64,
    /// The mock's body, which arrives unchanged.
    expected: Arc<Vec<u8>>,
}

impl Target {
    /// A writ for the upstream; the gateway's clock stands still, so it stays valid, but a
    /// fresh one per batch keeps within the 30 s a writ may live regardless.
    fn writ(&self) -> String {
        let grant = format!(r#"{{"type":"writ:llm","upstream":"{UPSTREAM}"}}"#);
        self.gw.mint(UPSTREAM, &grant, 30)
    }

    /// Sends `n` requests, `in_flight` at a time, each checked for 200 and the body's
    /// length; the wall time.
    async fn send(&self, client: &reqwest::Client, n: u64) -> Duration {
        let writ = Arc::new(self.writ());
        let next = Arc::new(AtomicU64::new(0));
        let start = Instant::now();
        let workers: Vec<_> = (0..self.in_flight.min(n.max(1)))
            .map(|_| {
                let (client, url, writ, next) =
                    (client.clone(), self.url.clone(), writ.clone(), next.clone());
                let (label, expected) = (self.label, self.expected.len());
                tokio::spawn(async move {
                    while next.fetch_add(1, Ordering::Relaxed) < n {
                        let response = client
                            .post(&url)
                            .bearer_auth(&*writ)
                            .header("content-type", "application/json")
                            .body(REQUEST)
                            .send()
                            .await
                            .unwrap_or_else(|e| panic!("{label}: request failed: {e}"));
                        let status = response.status();
                        let body = response
                            .bytes()
                            .await
                            .unwrap_or_else(|e| panic!("{label}: reading the body failed: {e}"));
                        assert!(
                            status == reqwest::StatusCode::OK,
                            "{label}: expected 200, got {status}: {}",
                            String::from_utf8_lossy(&body[..body.len().min(2048)])
                        );
                        assert_eq!(body.len(), expected, "{label}: body length changed");
                    }
                })
            })
            .collect();
        for w in workers {
            w.await.unwrap();
        }
        let took = start.elapsed();
        // Untimed: let the audit writer catch up (best effort queues records without
        // waiting for them), so a backlog never spills over into another measurement.
        self.gw.gateway().audit_checkpoint().await;
        took
    }

    /// One request, untimed: the body arrives byte for byte as the mock sent it.
    async fn check_intact(&self, client: &reqwest::Client) {
        let response = client
            .post(&self.url)
            .bearer_auth(self.writ())
            .header("content-type", "application/json")
            .body(REQUEST)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), reqwest::StatusCode::OK, "{}", self.label);
        let body = response.bytes().await.unwrap();
        assert!(
            body[..] == self.expected[..],
            "{}: the body was changed in transit",
            self.label
        );
    }
}

/// One response size: its mock and the two gateways in front of it.
struct Size {
    name: &'static str,
    /// Requests per batch in the self-timed run.
    batch: u64,
    on: Target,
    off: Target,
    _mock: MockUpstream,
}

impl Size {
    fn targets(&self) -> [&Target; 2] {
        [&self.on, &self.off]
    }

    fn body_len(&self) -> usize {
        self.on.expected.len()
    }
}

/// Everything the benchmark runs against, on one runtime (dropped last).
struct Setup {
    sizes: Vec<Size>,
    client: reqwest::Client,
    rt: Runtime,
}

/// The gateway's config; `detectors` is the `[detection.modes]` table's body.
fn config(base_url: &str, detectors: &str) -> String {
    format!(
        "[audit]\nmode = \"best_effort\"\n[detection.modes]\n{detectors}[upstreams.{UPSTREAM}]\nkind = \"openai\"\nbase_url = \"{base_url}\"\nallow_private_network = true\napi_key = \"{KEY}\"\n"
    )
}

/// The secret detectors as deployed by default, and switched off.
const DETECTORS_ON: &str = "prompt_secret = \"block\"\nresponse_secret = \"block\"\n";
const DETECTORS_OFF: &str = "prompt_secret = \"off\"\nresponse_secret = \"off\"\n";

async fn size(name: &'static str, bytes: usize, in_flight: u64, batch: u64) -> Size {
    let body = completion(bytes);
    // As the gateway builds its scanner: the built-in rules and the upstream's key.
    let scanner =
        writ_detect::Scanner::new(writ_detect::rules::BUILTIN.iter(), &[(UPSTREAM, KEY)]).unwrap();
    let found = scanner.scan(&body);
    assert!(
        found.is_empty(),
        "the {name} response must hold no secret: {found:?}"
    );
    let expected = Arc::new(body.clone());
    let mock = MockUpstream::start_scripted(
        KEY,
        Script {
            status: 200,
            content_type: "application/json",
            chunks: vec![body],
            then: ScriptEnd::End,
        },
    )
    .await;
    let base_url = mock.base_url();
    let target = |label, gw: TestGateway| Target {
        label,
        url: gw.url("/v1/chat/completions"),
        gw,
        in_flight,
        expected: expected.clone(),
    };
    let on = target(
        "scanning on",
        TestGateway::start(&config(&base_url, DETECTORS_ON)).await,
    );
    let off = target(
        "scanning off",
        TestGateway::start(&config(&base_url, DETECTORS_OFF)).await,
    );
    Size {
        name,
        batch,
        on,
        off,
        _mock: mock,
    }
}

fn setup() -> Setup {
    // TestGateway installs a debug-level subscriber printing every request; a benchmark
    // must not. Installing a silent one first makes its attempt a no-op.
    let _ = tracing::subscriber::set_global_default(tracing::subscriber::NoSubscriber::default());
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    let sizes = rt.block_on(async {
        vec![
            size("4 KiB", 4 << 10, 16, 2_000).await,
            size("1 MiB", 1 << 20, 4, 40).await,
        ]
    });
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(16)
        .build()
        .unwrap();
    // Checked requests each: a misconfigured gateway fails here, not mid-measurement.
    for s in &sizes {
        for t in s.targets() {
            rt.block_on(t.check_intact(&client));
            rt.block_on(t.send(&client, 1));
        }
    }
    Setup { sizes, client, rt }
}

fn bench(c: &mut Criterion, s: &Setup) {
    for size in &s.sizes {
        let mut group = c.benchmark_group(format!(
            "gateway e2e response scanning, {} response, {} in flight",
            size.name, size.on.in_flight
        ));
        group.throughput(Throughput::BytesDecimal(size.body_len() as u64));
        if size.body_len() > 64 << 10 {
            // Criterion's fewest iterations for 100 samples would take a minute here.
            group.sample_size(10);
        }
        for t in size.targets() {
            group.bench_function(t.label, |b| {
                b.iter_custom(|iters| s.rt.block_on(t.send(&s.client, iters)))
            });
        }
        group.finish();
    }
}

/// Runs every gateway in turn, interleaved over a few rounds so drift in the machine
/// affects all alike, and prints requests/s, MB/s and the on/off ratio per size. Outside
/// `cargo bench` (criterion's test mode) it sends a handful, as a smoke test.
fn ratio(s: &Setup) {
    let bench_mode = std::env::args().any(|a| a == "--bench");
    let (rounds, per_round) = if bench_mode {
        (3, Duration::from_secs(2))
    } else {
        (1, Duration::ZERO)
    };
    // [size][on, off]
    let mut sent = vec![[0u64; 2]; s.sizes.len()];
    let mut took = vec![[Duration::ZERO; 2]; s.sizes.len()];
    for _ in 0..rounds {
        for (k, size) in s.sizes.iter().enumerate() {
            for (i, t) in size.targets().into_iter().enumerate() {
                // Batches until the round's time is up (at least one batch).
                let start = Instant::now();
                loop {
                    let n = if bench_mode { size.batch } else { 8 };
                    took[k][i] += s.rt.block_on(t.send(&s.client, n));
                    sent[k][i] += n;
                    if start.elapsed() >= per_round {
                        break;
                    }
                }
            }
        }
    }
    let rate = |k: usize, i: usize| sent[k][i] as f64 / took[k][i].as_secs_f64();
    println!();
    for (k, size) in s.sizes.iter().enumerate() {
        for (i, t) in size.targets().into_iter().enumerate() {
            println!(
                "{} response ({} bytes), {:>12}: {:>7.0} requests/s, {:>7.1} MB/s ({} requests, {} in flight)",
                size.name,
                size.body_len(),
                t.label,
                rate(k, i),
                rate(k, i) * size.body_len() as f64 / 1e6,
                sent[k][i],
                t.in_flight
            );
        }
    }
    for (k, size) in s.sizes.iter().enumerate() {
        println!(
            "scanning-on/off throughput ratio ({} response): {:.2}",
            size.name,
            rate(k, 0) / rate(k, 1)
        );
    }
}

fn main() {
    let s = setup();
    let mut c = Criterion::default().configure_from_args();
    bench(&mut c, &s);
    c.final_summary();
    ratio(&s);
}
