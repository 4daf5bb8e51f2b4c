//! Ten thousand idle connections and slow-loris clients against one `writ serve`: other
//! clients are served meanwhile with bounded latency, the gateway's memory stays within a
//! stated bound, and the gateway closes both kinds of connection itself within a bound.

use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use writ_testkit::MockUpstream;

use super::{GRANT, PATIENCE, chat, gateway};

/// Connections that send nothing.
const IDLE: usize = 10_000;
/// Clients that send a request's headers one byte at a time.
const SLOW_LORIS: usize = 8;
/// Between two bytes of a slow-loris client.
const DRIP: Duration = Duration::from_millis(300);
/// The gateway's bound on reading a request's headers (and on a connection's first byte).
const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(10);
/// Slack over [`HEADER_READ_TIMEOUT`] for a loaded two-core machine.
const CLOSE_SLACK: Duration = Duration::from_secs(10);
/// Most the gateway's resident memory may grow by with every connection open.
const RSS_GROWTH_BOUND_KB: u64 = 160 * 1024;
/// Longest a normal call may take while the connections are open.
const CALL_LATENCY_BOUND: Duration = Duration::from_secs(5);

/// Raises this process's soft limit on open files to its hard limit (`prlimit`), so it can
/// hold every idle connection; panics if that is too low.
fn raise_own_open_file_limit() {
    let pid = std::process::id().to_string();
    let limits = std::fs::read_to_string("/proc/self/limits").unwrap();
    let hard: u64 = limits
        .lines()
        .find(|l| l.starts_with("Max open files"))
        .and_then(|l| l.split_whitespace().nth(4))
        .and_then(|h| h.parse().ok())
        .unwrap_or(u64::MAX);
    let needed = IDLE as u64 + 1_000;
    assert!(
        hard >= needed,
        "this test needs {needed} open files, the hard limit is {hard}: raise it (ulimit -Hn)"
    );
    let out = std::process::Command::new("prlimit")
        .args(["--pid", &pid, &format!("--nofile={hard}:{hard}")])
        .output()
        .unwrap_or_else(|e| panic!("prlimit (util-linux) is needed to raise the limit: {e}"));
    assert!(
        out.status.success(),
        "prlimit failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// The process's resident memory, in kB (`VmRSS`).
fn rss_kb(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .unwrap()
}

/// How many file descriptors the process has open.
fn open_fds(pid: u32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/fd"))
        .unwrap()
        .count()
}

/// Polls until `done` holds, panicking with `what` and the gateway's open descriptors
/// after [`PATIENCE`].
async fn until(what: &str, pid: u32, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + PATIENCE;
    while !done() {
        assert!(
            Instant::now() < deadline,
            "{what}: the gateway has {} descriptors open",
            open_fds(pid)
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// A slow-loris client: sends a request's headers a byte every [`DRIP`] (they would take
/// a minute in all) and returns how long after its first byte the gateway closed the
/// connection, and how many bytes it had sent by then; `None` if the gateway never did.
async fn slow_loris(addr: std::net::SocketAddr) -> Option<(Duration, usize)> {
    let head = format!(
        "POST /v1/chat/completions HTTP/1.1\r\nhost: {addr}\r\ncontent-type: application/json\r\n\
         x-slow: {}\r\ncontent-length: 2\r\n\r\n{{}}",
        "a".repeat(160)
    );
    let (mut read, mut write) = TcpStream::connect(addr).await.unwrap().into_split();
    let started = Instant::now();
    let closed = tokio::spawn(async move {
        let mut buf = [0u8; 1024];
        // Whatever the gateway answers (nothing, or a 408), it then closes.
        loop {
            match read.read(&mut buf).await {
                Ok(0) | Err(_) => return started.elapsed(),
                Ok(_) => {}
            }
        }
    });
    for (sent, byte) in head.bytes().enumerate() {
        if closed.is_finished() || write.write_all(&[byte]).await.is_err() {
            return Some((closed.await.unwrap(), sent));
        }
        tokio::time::sleep(DRIP).await;
    }
    None
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ten_thousand_idle_connections_and_slow_loris_clients_leave_others_served() {
    raise_own_open_file_limit();
    let dir = tempfile::tempdir().unwrap();
    let key = writ_mock::random_key();
    let mock = MockUpstream::start(key.expose()).await;
    let server = gateway(dir.path(), &mock, key.expose(), "");
    let pid = server.pid();
    let url = server.url("");
    let writ = server.mint(GRANT, "5m");
    let client = reqwest::Client::new();
    // Warm up (worker pools, caches), then measure the baseline.
    for n in 0..5 {
        let (status, _) = chat(&client, &url, &writ, &format!("warm-{n}"))
            .await
            .unwrap();
        assert_eq!(status, 200);
    }
    let rss_before = rss_kb(pid);
    let fds_before = open_fds(pid);

    let lorises: Vec<_> = (0..SLOW_LORIS)
        .map(|_| tokio::spawn(slow_loris(server.addr())))
        .collect();
    // All must be open well within the gateway's first-byte timeout, which starts
    // closing the first ones 10 s after they connect.
    let connecting = Instant::now();
    let mut idle = Vec::with_capacity(IDLE);
    for _ in 0..IDLE {
        idle.push(TcpStream::connect(server.addr()).await.unwrap());
    }
    let connected_in = connecting.elapsed();
    // Every connection has been accepted: the gateway holds a descriptor for each.
    until(
        &format!("the gateway accepts every idle connection (connected in {connected_in:?})"),
        pid,
        || open_fds(pid) >= fds_before + IDLE,
    )
    .await;
    let rss_with = rss_kb(pid);

    // Other clients are served meanwhile, on fresh connections.
    let mut slowest = Duration::ZERO;
    for n in 0..5 {
        let fresh = reqwest::Client::new();
        let started = Instant::now();
        let (status, body) = chat(&fresh, &url, &writ, &format!("during-{n}"))
            .await
            .unwrap();
        slowest = slowest.max(started.elapsed());
        assert_eq!(status, 200, "{body}");
    }
    eprintln!(
        "gateway RSS {rss_before} kB before, {rss_with} kB with {IDLE} idle and {SLOW_LORIS} \
         slow-loris connections ({} bytes per connection); connected in {connected_in:?}; \
         slowest call meanwhile {slowest:?}",
        (rss_with.saturating_sub(rss_before) * 1024) / IDLE as u64
    );
    assert!(
        slowest < CALL_LATENCY_BOUND,
        "a call took {slowest:?} with the connections open"
    );
    assert!(
        rss_with < rss_before + RSS_GROWTH_BOUND_KB,
        "RSS grew from {rss_before} kB to {rss_with} kB"
    );

    // The gateway closes slow-loris connections itself, long before their headers end.
    for loris in lorises {
        let (after, sent) = loris
            .await
            .unwrap()
            .expect("the gateway never closed a slow-loris connection");
        assert!(
            after < HEADER_READ_TIMEOUT + CLOSE_SLACK,
            "a slow-loris connection was closed only after {after:?}"
        );
        assert!(
            after >= HEADER_READ_TIMEOUT - Duration::from_secs(1),
            "closed after {after:?}, {sent} bytes: sooner than the header read timeout"
        );
    }
    // And the idle ones: every descriptor they held is released.
    until("the gateway closes the idle connections", pid, || {
        open_fds(pid) <= fds_before + 16
    })
    .await;
    let mut probe = [0u8; 1];
    let first = idle.first_mut().unwrap();
    let read = tokio::time::timeout(PATIENCE, first.read(&mut probe))
        .await
        .expect("the idle connection is closed");
    assert!(matches!(read, Ok(0) | Err(_)), "{read:?}");

    // Still serving, and memory measured once more for the record.
    let (status, _) = chat(&reqwest::Client::new(), &url, &writ, "after")
        .await
        .unwrap();
    assert_eq!(status, 200);
    eprintln!(
        "gateway RSS {} kB after the connections were closed",
        rss_kb(pid)
    );
    drop(idle);
}

/// The first-byte wait gives way to a stop: SIGTERM with a connection that has sent
/// nothing exits at once, not when the connection's [`HEADER_READ_TIMEOUT`] ends.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_connection_that_sent_nothing_does_not_hold_up_a_stop() {
    let dir = tempfile::tempdir().unwrap();
    let key = writ_mock::random_key();
    let mock = MockUpstream::start(key.expose()).await;
    let mut server = gateway(dir.path(), &mock, key.expose(), "");
    let pid = server.pid();
    let fds_before = open_fds(pid);
    let _silent = TcpStream::connect(server.addr()).await.unwrap();
    until("the gateway accepts the connection", pid, || {
        open_fds(pid) > fds_before
    })
    .await;
    let stopped = Instant::now();
    server.terminate();
    let status = tokio::task::block_in_place(|| server.exit_within(PATIENCE));
    assert!(status.expect("writ serve exits").success());
    assert!(
        stopped.elapsed() < HEADER_READ_TIMEOUT / 2,
        "the stop waited {:?} for a silent connection",
        stopped.elapsed()
    );
}
