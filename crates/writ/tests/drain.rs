//! Stopping `writ serve` with streams in flight (issue 25): SIGTERM stops accepting on
//! both listeners, lets the streams finish, and the audit log verifies with a final
//! checkpoint over every record; past `[server] drain_timeout`, or at a second SIGTERM, it
//! exits with the streams cut and their decisions on record.
//!
//! The mock upstream sends each stream's first event and holds the rest until the test
//! releases it, so the streams are in flight for as long as the test needs: nothing here
//! waits for time to pass.
#![allow(clippy::unwrap_used)]

use std::net::SocketAddr;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use futures_util::StreamExt;
use serde_json::{Value, json};
use tokio::sync::mpsc;
use writ_testkit::{Behavior, MockUpstream, ServeProcess};

const BIN: &str = env!("CARGO_BIN_EXE_writ");
const GRANT: &str =
    r#"{"type":"writ:llm","upstream":"demo","actions":["chat"],"models":["gpt-4o-mini"]}"#;
/// Longest wait for anything the test expects to happen (never reached when it works).
const PATIENCE: Duration = Duration::from_secs(30);

/// A gateway whose upstream `demo` is `mock` (holding streams after their first event),
/// with its admin surface apart, stopping with `drain_timeout`.
fn gateway(dir: &Path, mock: &MockUpstream, key: &str, drain_timeout: &str) -> ServeProcess {
    std::fs::write(
        dir.join("writ.toml"),
        format!(
            "[server]\ndrain_timeout = \"{drain_timeout}\"\n\n[admin]\nlisten = \"127.0.0.1:0\"\n\n\
             [upstreams.demo]\nkind = \"openai\"\nbase_url = \"{}\"\napi_key = \"{key}\"\n\
             allow_private_network = true\n",
            mock.base_url()
        ),
    )
    .unwrap();
    ServeProcess::start(Path::new(BIN), dir, &["--demo", "--listen", "127.0.0.1:0"])
}

/// What one streaming client received: everything, and whether the body ended cleanly.
struct Received {
    text: String,
    clean: bool,
}

/// Streams a chat completion, telling `first` its number once the first bytes arrive.
async fn stream(
    url: String,
    writ: String,
    n: usize,
    first: mpsc::UnboundedSender<usize>,
) -> Received {
    let response = reqwest::Client::new()
        .post(url)
        .bearer_auth(writ)
        .json(&json!({
            "model": "gpt-4o-mini",
            "stream": true,
            "messages": [{"role": "user", "content": format!("stream {n}")}],
        }))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let mut body = response.bytes_stream();
    let mut text = String::new();
    while let Some(chunk) = body.next().await {
        match chunk {
            Ok(bytes) => {
                if text.is_empty() {
                    let _ = first.send(n);
                }
                text.push_str(&String::from_utf8_lossy(&bytes));
            }
            Err(_) => return Received { text, clean: false },
        }
    }
    Received { text, clean: true }
}

/// The answer's text, put together from its events' deltas.
fn content(text: &str) -> String {
    text.lines()
        .filter_map(|l| l.strip_prefix("data: "))
        .filter(|d| *d != "[DONE]")
        .map(|d| serde_json::from_str::<Value>(d).unwrap())
        .filter_map(|v| {
            v["choices"][0]["delta"]["content"]
                .as_str()
                .map(String::from)
        })
        .collect()
}

/// Starts `count` streams and returns once every one has received its first event.
async fn streams_in_flight(
    server: &ServeProcess,
    writ: &str,
    count: usize,
) -> Vec<tokio::task::JoinHandle<Received>> {
    let (first_tx, mut first_rx) = mpsc::unbounded_channel();
    let clients: Vec<_> = (0..count)
        .map(|n| {
            tokio::spawn(stream(
                server.url("/v1/chat/completions"),
                writ.to_string(),
                n,
                first_tx.clone(),
            ))
        })
        .collect();
    let mut started = std::collections::BTreeSet::new();
    while started.len() < count {
        let n = tokio::time::timeout(PATIENCE, first_rx.recv())
            .await
            .expect("every stream's first event arrives")
            .unwrap();
        started.insert(n);
    }
    clients
}

/// Waits until nothing accepts connections at `addr` any more.
async fn refused_at(addr: SocketAddr) {
    let deadline = Instant::now() + PATIENCE;
    loop {
        match tokio::net::TcpStream::connect(addr).await {
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionRefused => return,
            _ => {}
        }
        assert!(
            Instant::now() < deadline,
            "{addr} still accepts connections"
        );
        tokio::task::yield_now().await;
    }
}

fn admin_addr(server: &ServeProcess) -> SocketAddr {
    server
        .admin_url("")
        .trim_start_matches("http://")
        .parse()
        .unwrap()
}

/// `writ audit verify` in `dir`: its report, which must say the log verified.
fn verify(dir: &Path) -> String {
    let out = Command::new(BIN)
        .args(["audit", "verify"])
        .current_dir(dir)
        .env("WRIT_LOG", "warn")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

/// The report's line for the gateway's own log (not the CLI's, `cli-…`).
fn gateway_line(report: &str) -> &str {
    report
        .lines()
        .find(|l| l.starts_with("instance ") && !l.starts_with("instance cli-"))
        .unwrap_or_else(|| panic!("{report}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_during_twenty_streams_lets_them_all_finish_and_seals_the_log() {
    let dir = tempfile::tempdir().unwrap();
    let key = writ_mock::random_key();
    let mock = MockUpstream::start_with(key.expose(), Behavior::HoldStreamAfterFirstEvent).await;
    let mut server = gateway(dir.path(), &mock, key.expose(), "30s");
    let writ = server.mint(GRANT, "30s");
    let clients = streams_in_flight(&server, &writ, 20).await;

    server.terminate();
    // Neither listener takes new connections, while all 20 streams are still held.
    refused_at(server.addr()).await;
    refused_at(admin_addr(&server)).await;
    assert!(clients.iter().all(|c| !c.is_finished()));

    mock.release();
    for (n, client) in clients.into_iter().enumerate() {
        let received = client.await.unwrap();
        assert!(received.clean, "stream {n} was cut: {}", received.text);
        assert!(
            received.text.trim_end().ends_with("data: [DONE]"),
            "stream {n}: {}",
            received.text
        );
        assert_eq!(
            content(&received.text),
            format!("Hello from the writ mock upstream. You said: stream {n}")
        );
    }
    let status = tokio::task::block_in_place(|| server.exit_within(PATIENCE));
    assert!(status.expect("writ serve exits").success());

    // Strict audit: each stream's decision and its outcome, all under the final checkpoint.
    let report = verify(dir.path());
    let line = gateway_line(&report);
    assert!(
        line.contains(": 40 records, checkpoint at 40, ok; 0 unsigned record(s) after it")
            && !line.contains("no outcome record"),
        "{report}"
    );
}

/// Streams that outlast `drain_timeout` are cut when it ends; the process still exits 0
/// after writing the log's last records and final checkpoint. Each cut stream's
/// `request_allowed` decision is on record; it has no outcome record, and verification
/// names it as in flight when the log ended.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn streams_outlasting_the_drain_timeout_are_cut_and_the_log_still_verifies() {
    let dir = tempfile::tempdir().unwrap();
    let key = writ_mock::random_key();
    let mock = MockUpstream::start_with(key.expose(), Behavior::HoldStreamAfterFirstEvent).await;
    let mut server = gateway(dir.path(), &mock, key.expose(), "500ms");
    let writ = server.mint(GRANT, "30s");
    let clients = streams_in_flight(&server, &writ, 3).await;

    let stopped = Instant::now();
    server.terminate();
    let status = tokio::task::block_in_place(|| server.exit_within(PATIENCE));
    assert!(status.expect("writ serve exits").success());
    assert!(stopped.elapsed() >= Duration::from_millis(500));
    for client in clients {
        let received = client.await.unwrap();
        assert!(!received.text.contains("[DONE]"), "{}", received.text);
    }
    drop(mock);

    let report = verify(dir.path());
    let line = gateway_line(&report);
    assert!(
        line.contains(": 3 records, checkpoint at 3, ok; 0 unsigned record(s) after it")
            && line.contains("; 3 allowed request(s) with no outcome record"),
        "{report}"
    );
}

/// A second SIGTERM during the drain ends it at once: the drain timeout here is an hour.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_sigterm_during_the_drain_exits_at_once() {
    let dir = tempfile::tempdir().unwrap();
    let key = writ_mock::random_key();
    let mock = MockUpstream::start_with(key.expose(), Behavior::HoldStreamAfterFirstEvent).await;
    let mut server = gateway(dir.path(), &mock, key.expose(), "1h");
    let writ = server.mint(GRANT, "30s");
    let clients = streams_in_flight(&server, &writ, 2).await;

    server.terminate();
    // The first signal has been taken: the listeners are closed, the drain under way.
    refused_at(server.addr()).await;
    server.terminate();
    let status = tokio::task::block_in_place(|| server.exit_within(PATIENCE));
    assert!(
        status
            .expect("writ serve exits at the second signal")
            .success()
    );
    for client in clients {
        assert!(!client.await.unwrap().text.contains("[DONE]"));
    }
    drop(mock);
    let report = verify(dir.path());
    assert!(
        gateway_line(&report).contains("; 2 allowed request(s) with no outcome record"),
        "{report}"
    );
}
