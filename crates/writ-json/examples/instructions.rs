//! Runs one strict-JSON operation `n` times on the benchmark's chat body, for counting
//! instructions per call where timings are too noisy (a shared machine):
//!
//! ```text
//! cargo build --release -p writ-json --example instructions
//! valgrind --tool=callgrind target/release/examples/instructions value 1000   # minus `none 1000`
//! ```
//!
//! Operations: `none`, `value` (serde_json's own `Value`, what `writ_json::value`
//! replaces in request inspection), `strict` (`writ_json::value`), `outline`
//! (`writ_json::outline` keeping what a chat inspection reads), `check`, `scan_text`.

use std::hint::black_box;

const CHAT_BODY: &str = include_str!("../benches/chat_body.json");

fn main() {
    let mut args = std::env::args().skip(1);
    let what = args.next().unwrap_or_default();
    let n: usize = args.next().and_then(|s| s.parse().ok()).unwrap_or(0);
    let body = CHAT_BODY.as_bytes();
    let mut total = 0usize;
    for _ in 0..n {
        total += match what.as_str() {
            "value" => {
                usize::from(serde_json::from_slice::<serde_json::Value>(black_box(body)).is_ok())
            }
            "strict" => usize::from(writ_json::value(black_box(body)).is_ok()),
            "outline" => usize::from(
                writ_json::outline(
                    black_box(body),
                    &[
                        "model",
                        "max_completion_tokens",
                        "max_tokens",
                        "stream",
                        "stream_options",
                    ],
                )
                .is_ok(),
            ),
            "check" => usize::from(writ_json::check(black_box(body)).is_ok()),
            "scan_text" => writ_json::scan_text(black_box(body)).len(),
            _ => 0,
        };
    }
    println!("{total}");
}
