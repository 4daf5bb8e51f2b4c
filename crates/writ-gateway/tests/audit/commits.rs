//! How strict records reach the sink: written by their request's own thread while it is
//! the one request being served, committed in groups by the serving threads while several
//! are, or handed to the audit writer; one log that verifies whichever way each went.

use super::*;

/// The decisions in the sink now (without waiting for the writer).
async fn durable_decisions(gw: &TestGateway) -> usize {
    log_of(gw)
        .await
        .0
        .iter()
        .filter(|l| serde_json::from_str::<Value>(l).unwrap()["kind"] == "request_allowed")
        .count()
}

#[tokio::test]
async fn a_request_served_alone_writes_its_own_decision_and_checkpoints_follow() {
    let upstream = MockUpstream::start(KEY).await;
    let gw = gateway(&upstream, "[audit]\ncheckpoint_every = 10\n").await;
    let client = reqwest::Client::new();
    for i in 1..=25 {
        assert_eq!(send_chat(&client, &gw).await, StatusCode::OK);
        // Strict: the decision was durable before the request was forwarded.
        assert_eq!(durable_decisions(&gw).await, i);
    }
    // Decisions are written by the requests' own threads, but for those whose thread found
    // the connection busy with the writer (writing the outcome before, or a checkpoint).
    let alone = gw.gateway().audit_records_written_alone();
    assert!((1..=25).contains(&alone), "{alone}");
    eprintln!("{alone} of 25 decisions written by their requests' threads");
    // The writer still signs a checkpoint every ten records or so, told by the requests
    // and by its own writes: at least four over the 50 records.
    let mut attempts = 0;
    loop {
        let sizes = log_of(&gw).await.1;
        if sizes.len() >= 4 && sizes.windows(2).all(|w| w[0] < w[1]) {
            break;
        }
        attempts += 1;
        assert!(
            attempts < 10_000,
            "checkpoints every ten records: {sizes:?}"
        );
        tokio::task::yield_now().await;
    }
    assert_log_verifies(&gw, 50).await;
}

#[tokio::test]
async fn records_written_alone_and_by_the_writer_form_one_log() {
    let upstream = MockUpstream::start(KEY).await;
    let gw = gateway(&upstream, "[audit]\ncheckpoint_every = 7\n").await;
    let client = reqwest::Client::new();
    let mut n = 0;
    for _ in 0..5 {
        assert_eq!(send_chat(&client, &gw).await, StatusCode::OK);
        send_together(&client, &gw, 16, StatusCode::OK).await;
        n += 17;
    }
    let alone = gw.gateway().audit_records_written_alone();
    assert!(alone >= 1 && alone <= n as u64, "{alone}");
    assert_every_request_answered_200(&gw, n).await;
}

/// Sends `count` chat calls at once and asserts that each is answered `want`.
async fn send_together(client: &reqwest::Client, gw: &TestGateway, count: usize, want: StatusCode) {
    let statuses = futures_util::future::join_all((0..count).map(|_| send_chat(client, gw))).await;
    assert!(statuses.iter().all(|s| *s == want), "{statuses:?}");
}

/// The log holds `n` requests, each a decision and an outcome linked to it, all answered
/// 200, and verifies.
async fn assert_every_request_answered_200(gw: &TestGateway, n: usize) {
    let all = requests(&records(gw).await);
    assert_eq!(all.len(), n);
    assert!(all.iter().all(|r| r["status"] == 200), "{all:?}");
    assert_log_verifies(gw, 2 * n).await;
}

/// Sends chat calls until one is answered 200 (the sink is back); how many were not.
async fn attempts_until_served(client: &reqwest::Client, gw: &TestGateway) -> usize {
    let mut attempts = 0;
    while send_chat(client, gw).await != StatusCode::OK {
        attempts += 1;
        assert!(attempts < 5000, "never recovered");
        tokio::task::yield_now().await;
    }
    attempts
}

/// A request at the token endpoint counts as a request being served, as a data-plane one
/// does: while a mint is in progress (here: its client still sending the form), another
/// request's decision goes to the writer, to be committed with what else arrives, instead
/// of being written by its own thread; once the mint is gone, a request alone writes its
/// own again.
#[tokio::test]
async fn a_request_at_the_token_endpoint_counts_as_one_being_served() {
    use tokio::io::AsyncWriteExt;
    let upstream = MockUpstream::start(KEY).await;
    let gw = gateway(&upstream, "").await;
    let client = reqwest::Client::new();
    assert_eq!(send_chat(&client, &gw).await, StatusCode::OK);
    assert_eq!(gw.gateway().audit_records_written_alone(), 1);
    let gateway = gw.gateway();
    let open = |want: usize| async move {
        let mut attempts = 0;
        while gateway.audit_requests_open() != Some(want) {
            attempts += 1;
            assert!(attempts < 100_000, "{want} request(s) never counted open");
            tokio::task::yield_now().await;
        }
    };
    open(0).await;
    // A mint whose form is still on its way.
    let addr = gw
        .url("/")
        .trim_start_matches("http://")
        .trim_end_matches('/')
        .to_string();
    let mut mint = tokio::net::TcpStream::connect(addr).await.unwrap();
    mint.write_all(
        b"POST /oauth2/token HTTP/1.1\r\nHost: writ\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: 200\r\n\r\ngrant_type=",
    )
    .await
    .unwrap();
    open(1).await;
    assert_eq!(send_chat(&client, &gw).await, StatusCode::OK);
    assert_eq!(
        gw.gateway().audit_records_written_alone(),
        1,
        "a decision made while a mint was served was written alone"
    );
    drop(mint);
    open(0).await;
    assert_eq!(send_chat(&client, &gw).await, StatusCode::OK);
    assert_eq!(gw.gateway().audit_records_written_alone(), 2);
    assert_log_verifies(&gw, 6).await;
}

/// Issue 18 item 5 on SQLite: a sink that stops taking writes (another connection holds
/// its write lock) refuses the very next request with 503 `audit_unavailable` before it
/// reaches the upstream, not after. Its decision is kept and written later, with the
/// refusal as its outcome; nothing is lost.
#[tokio::test]
async fn a_decision_that_cannot_be_committed_is_not_forwarded_and_is_written_later() {
    let upstream = MockUpstream::start(KEY).await;
    let gw = gateway(&upstream, "").await;
    let client = reqwest::Client::new();
    assert_eq!(send_chat(&client, &gw).await, StatusCode::OK);
    assert_eq!(gw.gateway().audit_records_written_alone(), 1);
    // The first request's outcome is written, so the sink is healthy as far as the
    // gateway knows when the lock is taken.
    gw.gateway().audit_checkpoint().await;
    // Another connection holds the database's write lock past the writer's patience.
    let db = rusqlite::Connection::open(gw.gateway().data_dir().join("audit.db")).unwrap();
    db.execute_batch("BEGIN EXCLUSIVE").unwrap();
    let r = client
        .post(gw.url("/v1/chat/completions"))
        .bearer_auth(gw.mint("demo", GRANT, 30))
        .json(&chat("gpt-4o-mini", false))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::SERVICE_UNAVAILABLE);
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["error"]["code"], "audit_unavailable", "{body}");
    assert_eq!(
        upstream.requests().len(),
        1,
        "the request whose decision could not be committed reached the upstream"
    );
    // Refused while the sink fails.
    assert_eq!(
        send_chat(&client, &gw).await,
        StatusCode::SERVICE_UNAVAILABLE
    );
    assert_eq!(upstream.requests().len(), 1);
    db.execute_batch("COMMIT").unwrap();
    let attempts = attempts_until_served(&client, &gw).await;
    assert_eq!(upstream.requests().len(), 2);
    // Nothing lost: the first, the one that failed (its kept decision, ended by the
    // refusal), every refusal and the last.
    let all = records(&gw).await;
    let requests = requests(&all);
    let statuses: Vec<u64> = requests
        .iter()
        .map(|r| r["status"].as_u64().unwrap())
        .collect();
    assert_eq!(statuses.first(), Some(&200));
    assert_eq!(statuses[1], 503);
    assert_eq!(requests[1]["kind"], "request_allowed");
    assert_eq!(requests[1]["decision"]["code"], "audit_unavailable");
    assert_eq!(statuses.last(), Some(&200));
    assert_eq!(statuses.len(), attempts + 4, "{statuses:?}");
    assert_log_verifies(&gw, all.len()).await;
}

/// Decisions that arrive while other requests are being served are committed in groups by
/// the serving threads themselves, not handed one by one to the writer's thread; those
/// written alone, in groups and by the writer (outcomes, checkpoints) form one log, every
/// decision durable before its request was forwarded.
#[tokio::test]
async fn concurrent_decisions_are_committed_in_groups_by_the_serving_threads() {
    let upstream = MockUpstream::start(KEY).await;
    let gw = gateway(&upstream, "workers = 2\n[audit]\ncheckpoint_every = 9\n").await;
    let client = reqwest::Client::new();
    let mut n = 0;
    for _ in 0..4 {
        send_together(&client, &gw, 24, StatusCode::OK).await;
        n += 24;
    }
    let groups = gw.gateway().audit_group_commits();
    assert!(groups >= 1, "no decision was committed in a group");
    eprintln!("{groups} group commits for {n} requests");
    assert_eq!(upstream.requests().len(), n);
    assert_every_request_answered_200(&gw, n).await;
}

/// A group commit that fails (another connection holds the database's write lock) forwards
/// none of its requests: each is refused 503 `audit_unavailable`, and every decision is
/// kept and written once the lock is gone, ended by its refusal. Nothing is lost.
#[tokio::test]
async fn decisions_of_a_failed_group_commit_are_kept_and_not_forwarded() {
    let upstream = MockUpstream::start(KEY).await;
    let gw = gateway(&upstream, "workers = 2\n").await;
    let client = reqwest::Client::new();
    assert_eq!(send_chat(&client, &gw).await, StatusCode::OK);
    gw.gateway().audit_checkpoint().await;
    let db = rusqlite::Connection::open(gw.gateway().data_dir().join("audit.db")).unwrap();
    db.execute_batch("BEGIN EXCLUSIVE").unwrap();
    send_together(&client, &gw, 8, StatusCode::SERVICE_UNAVAILABLE).await;
    assert_eq!(
        upstream.requests().len(),
        1,
        "a request reached the upstream"
    );
    db.execute_batch("COMMIT").unwrap();
    let attempts = attempts_until_served(&client, &gw).await;
    assert_eq!(upstream.requests().len(), 2);
    let all = records(&gw).await;
    let requests = requests(&all);
    let refused = requests.iter().filter(|r| r["status"] == 503).count();
    assert_eq!(refused, 8 + attempts, "{requests:?}");
    assert_eq!(requests.len(), 8 + attempts + 2);
    assert_log_verifies(&gw, all.len()).await;
}

/// Once no record has come for a while, the SQLite WAL is cut back to nothing (so a burst
/// after a quiet spell writes fresh blocks rather than reading old ones back from disk);
/// every record stays, and writing goes on.
#[tokio::test]
async fn a_quiet_log_has_its_wal_cut_back_and_keeps_every_record() {
    let upstream = MockUpstream::start(KEY).await;
    // Ticks of 20 ms: quiet after 1.2 s.
    let gw = gateway(&upstream, "[audit]\ncheckpoint_interval = \"20ms\"\n").await;
    let client = reqwest::Client::new();
    for _ in 0..20 {
        assert_eq!(send_chat(&client, &gw).await, StatusCode::OK);
    }
    let wal = gw.gateway().data_dir().join("audit.db-wal");
    let wal_len = || std::fs::metadata(&wal).map_or(0, |m| m.len());
    assert!(wal_len() > 0, "no WAL written");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    while wal_len() > 0 {
        assert!(
            std::time::Instant::now() < deadline,
            "the WAL of a quiet log kept {} bytes",
            wal_len()
        );
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    assert_eq!(send_chat(&client, &gw).await, StatusCode::OK);
    assert_every_request_answered_200(&gw, 21).await;
}
