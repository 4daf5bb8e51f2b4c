//! Strict audit with the PostgreSQL sink, against a real PostgreSQL at 127.0.0.1:5432
//! (database `test`, user `postgres`, trust auth) reached through a TCP forwarder in this
//! test, which can take the database away and bring it back: from the first request after
//! it goes away the gateway refuses (503 `audit_unavailable`) and nothing reaches the
//! upstream, since a request's decision is committed before it is forwarded; when it is
//! back the gateway recovers by itself and no record was lost.
//!
//! Each test writes to a database of its own (`FreshDatabase`), dropped after it: the
//! shared `test` database keeps every other run's records (benchmarks' too), which an
//! export would read.
//!
//! Needs PostgreSQL (panics if it cannot be reached; never skips). Run with
//! `cargo test -p writ-gateway --test audit_postgres`.
#![allow(clippy::unwrap_used)]

use std::net::{Ipv4Addr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use reqwest::StatusCode;
use serde_json::{Value, json};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::{AbortHandle, JoinHandle};
use writ_audit::sink::{LANE_APPLICATION_NAME, PostgresLanes, Sink, split_export};
use writ_testkit::{MockUpstream, TestGateway};

const KEY: &str = "sk-upstream-audit-pg-0123456789";
const PG_ADDR: &str = "127.0.0.1:5432";
const PG_URL: &str = "postgres://postgres@127.0.0.1:5432/test";

/// A TCP forwarder to PostgreSQL that can be switched off: while down, it closes every
/// connection it accepts at once and has cut every connection it was piping.
struct Forwarder {
    addr: SocketAddr,
    state: Arc<Mutex<ForwarderState>>,
    accept: JoinHandle<()>,
}

struct ForwarderState {
    up: bool,
    /// The pipes of connections accepted while up.
    pipes: Vec<AbortHandle>,
}

impl Forwarder {
    async fn start(target: SocketAddr) -> Self {
        let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).await.unwrap();
        let addr = listener.local_addr().unwrap();
        let state = Arc::new(Mutex::new(ForwarderState {
            up: true,
            pipes: Vec::new(),
        }));
        let shared = state.clone();
        let accept = tokio::spawn(async move {
            loop {
                let Ok((mut inbound, _)) = listener.accept().await else {
                    continue;
                };
                // Checked and registered under the lock, so `down` cannot slip in between
                // and miss a pipe.
                let mut state = shared.lock().unwrap();
                if !state.up {
                    drop(inbound);
                    continue;
                }
                let pipe = tokio::spawn(async move {
                    if let Ok(mut outbound) = TcpStream::connect(target).await {
                        let _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound).await;
                    }
                });
                state.pipes.retain(|p| !p.is_finished());
                state.pipes.push(pipe.abort_handle());
            }
        });
        Self {
            addr,
            state,
            accept,
        }
    }

    /// The database goes away: new connections are closed at once, open ones are cut.
    fn down(&self) {
        let mut state = self.state.lock().unwrap();
        state.up = false;
        for pipe in state.pipes.drain(..) {
            pipe.abort();
        }
    }

    /// The database comes back.
    fn up(&self) {
        self.state.lock().unwrap().up = true;
    }
}

impl Drop for Forwarder {
    fn drop(&mut self) {
        self.accept.abort();
        self.down();
    }
}

/// Panics, saying what is needed, unless PostgreSQL is reachable; creates the audit
/// tables so the gateway's first write does not race another test's.
async fn require_postgres() {
    let addr: SocketAddr = PG_ADDR.parse().unwrap();
    if let Err(e) = std::net::TcpStream::connect_timeout(&addr, Duration::from_secs(3)) {
        panic!(
            "this test needs PostgreSQL at {PG_URL} (trust auth, database `test`); \
             nothing accepts connections on {addr}: {e}"
        );
    }
    let sink = Sink::postgres(PG_URL).await.unwrap();
    let mut attempt = 0;
    while let Err(e) = sink.prepare().await {
        attempt += 1;
        assert!(
            attempt < 3,
            "PostgreSQL at {PG_URL} is reachable but the audit tables cannot be created: {e}"
        );
    }
}

/// A strict gateway writing its audit log to `db`, a checkpoint every `every` records,
/// with the upstream `mock`.
async fn pg_gateway(
    db: &writ_testkit::FreshDatabase,
    upstream: &MockUpstream,
    every: u64,
) -> TestGateway {
    TestGateway::start(&format!(
        "[audit]\nsink = \"postgres\"\npostgres_url = \"{}\"\ncheckpoint_every = {every}\n\
         [upstreams.mock]\nkind = \"openai\"\nbase_url = \"{}\"\nallow_private_network = true\napi_key = \"{KEY}\"\n",
        db.url(),
        upstream.base_url()
    ))
    .await
}

/// Checkpoints `gw`'s log and checks it: one instance, `n` records, every one signed and
/// every decision with its outcome. Returns how many checkpoints it has.
async fn assert_one_log_verifies(gw: &TestGateway, n: u64) -> usize {
    gw.gateway().audit_checkpoint().await;
    let export = gw.gateway().audit_export().await.unwrap();
    let logs = split_export(&export);
    assert_eq!(logs.len(), 1, "one instance");
    let (instance, records, checkpoints) = &logs[0];
    assert_eq!(records.len() as u64, n, "every record once");
    let records: Vec<&str> = records.iter().map(String::as_str).collect();
    let checkpoints: Vec<&str> = checkpoints.iter().map(String::as_str).collect();
    let summary = writ_audit::verify_log(
        &records,
        &checkpoints,
        &gw.gateway().audit_verifier_key(),
        &writ_gateway::audit::origin(instance),
        Some(n),
    )
    .unwrap();
    assert_eq!(summary.unsigned_records(), 0);
    assert_eq!(summary.open_decisions, 0);
    checkpoints.len()
}

/// The record lines and checkpoint notes of `instance` in an export.
/// `GET /readyz`: its status and body.
async fn readiness(client: &reqwest::Client, gw: &TestGateway) -> (StatusCode, Value) {
    let r = client.get(gw.url("/readyz")).send().await.unwrap();
    (r.status(), r.json().await.unwrap())
}

fn log_of(export: &[String], instance: &str) -> (Vec<String>, Vec<String>) {
    split_export(export)
        .into_iter()
        .find(|(i, _, _)| i == instance)
        .map(|(_, records, checkpoints)| (records, checkpoints))
        .unwrap_or_default()
}

#[tokio::test]
async fn strict_postgres_sink_refuses_while_the_database_is_away_and_recovers() {
    require_postgres().await;
    // A database of this test's own (the shared one holds every other run's records, which
    // the export below would read too), reached through the forwarder.
    let db = writ_testkit::FreshDatabase::create().await;
    let db_name = db.url().rsplit('/').next().unwrap().to_string();
    let forwarder = Forwarder::start(PG_ADDR.parse().unwrap()).await;
    let upstream = MockUpstream::start(KEY).await;
    // An upstream name of this run's own: its records name it, which finds our instance
    // among the other runs' in the shared database.
    let name = format!("pg{:016x}", rand::random::<u64>());
    let gw = TestGateway::start(&format!(
        "[audit]\nsink = \"postgres\"\npostgres_url = \"postgres://postgres@{}/{db_name}\"\n\
         [upstreams.{name}]\nkind = \"openai\"\nbase_url = \"{}\"\nallow_private_network = true\napi_key = \"{KEY}\"\n",
        forwarder.addr,
        upstream.base_url()
    ))
    .await;
    let client = reqwest::Client::new();
    let url = gw.url("/v1/chat/completions");
    let writ = gw.mint(
        &name,
        &format!(r#"{{"type":"writ:llm","upstream":"{name}","models":["gpt-4o-mini"]}}"#),
        30,
    );
    let send = || {
        let request = client.post(&url).bearer_auth(&writ).json(&json!({
            "model": "gpt-4o-mini",
            "messages": [{"role": "user", "content": "hi"}],
            "max_tokens": 5
        }));
        async move {
            let r = request.send().await.unwrap();
            let status = r.status();
            let body: Value = r.json().await.unwrap();
            if status == StatusCode::SERVICE_UNAVAILABLE {
                assert_eq!(body["error"]["code"], "audit_unavailable", "{body}");
            } else {
                assert_eq!(status, StatusCode::OK, "{body}");
            }
            status
        }
    };
    let mut responses: Vec<StatusCode> = Vec::new();

    // Up: ready, served, and recorded.
    let (status, ready) = readiness(&client, &gw).await;
    assert_eq!(status, StatusCode::OK, "{ready}");
    assert_eq!(
        ready["checks"]["audit_sink"]["detail"],
        format!("PostgreSQL at {}/{db_name}", forwarder.addr)
    );
    responses.push(send().await);
    assert_eq!(responses[0], StatusCode::OK);
    let export = gw.gateway().audit_export().await.unwrap();
    let instance = split_export(&export)
        .into_iter()
        .find(|(_, records, _)| {
            records.iter().any(|l| {
                let r: Value = serde_json::from_str(l).unwrap();
                r["upstream"] == name.as_str()
            })
        })
        .map(|(instance, _, _)| instance)
        .expect("this run's record is in the export");
    // Its decision was committed before it was forwarded; its outcome follows.
    let (records, _) = log_of(&export, &instance);
    assert!((1..=2).contains(&records.len()), "{records:?}");
    let first: Value = serde_json::from_str(&records[0]).unwrap();
    assert_eq!(first["kind"], "request_allowed");
    assert_eq!(upstream.requests().len(), 1);
    // The first outcome is written before the database goes away, so the gateway does
    // not know of the outage before the next request tries to commit its decision.
    gw.gateway().audit_checkpoint().await;

    // Down: the very next request is refused, and neither it nor any after it reaches
    // the upstream (issue 18 item 5: one used to, and was refused only after).
    forwarder.down();
    for _ in 0..6 {
        let status = send().await;
        responses.push(status);
        assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    }
    assert_eq!(
        upstream.requests().len(),
        1,
        "a request reached the upstream while the audit log could not be written"
    );
    // Alive, but not ready: `/readyz` names the sink that is away, and where.
    let health = client.get(gw.url("/healthz")).send().await.unwrap();
    assert_eq!(health.status(), StatusCode::OK);
    let (status, ready) = readiness(&client, &gw).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{ready}");
    assert_eq!(ready["status"], "not_ready");
    assert_eq!(ready["checks"]["audit_sink"]["ok"], false, "{ready}");
    let detail = ready["checks"]["audit_sink"]["detail"].as_str().unwrap();
    assert!(
        detail.starts_with(&format!("PostgreSQL at {}/{db_name}: ", forwarder.addr)),
        "{detail}"
    );
    for other in ["keys", "store", "limiter"] {
        assert_eq!(ready["checks"][other]["ok"], true, "{other}: {ready}");
    }

    // Back: the gateway recovers by itself.
    forwarder.up();
    let mut attempts = 0;
    loop {
        attempts += 1;
        let status = send().await;
        responses.push(status);
        if status == StatusCode::OK {
            break;
        }
        assert!(attempts < 5000, "never recovered");
        tokio::task::yield_now().await;
    }
    let (status, ready) = readiness(&client, &gw).await;
    assert_eq!(status, StatusCode::OK, "ready again: {ready}");
    assert_eq!(ready["status"], "ready");

    // Every response has its records, the refusals included: nothing was lost. A request
    // that reached the upstream has a decision and an outcome naming it; the first
    // refusal has the decision it could not commit (written later) ended by a 503
    // outcome; the others are 503 refusals.
    gw.gateway().audit_checkpoint().await;
    let export = gw.gateway().audit_export().await.unwrap();
    let (records, checkpoints) = log_of(&export, &instance);
    let parsed: Vec<Value> = records
        .iter()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let hits = upstream.requests().len();
    assert_eq!(hits, 2, "the first and the last request");
    let decisions: Vec<&Value> = parsed
        .iter()
        .filter(|r| r["kind"] == "request_allowed")
        .collect();
    let outcomes: Vec<&Value> = parsed
        .iter()
        .filter(|r| r["kind"] == "request_outcome")
        .collect();
    let refused = parsed
        .iter()
        .filter(|r| {
            r["kind"] == "request_denied"
                && r["status"] == 503
                && r["decision"]["code"] == "audit_unavailable"
        })
        .count();
    assert_eq!(decisions.len(), outcomes.len(), "{parsed:?}");
    for outcome in &outcomes {
        let decision = &parsed[outcome["decision_seq"].as_u64().unwrap() as usize];
        assert_eq!(decision["kind"], "request_allowed", "{outcome}");
    }
    // Served first and last; in between only decisions that could not be committed
    // (the first after the cut, and any the recovery raced), each ended by its 503.
    let statuses: Vec<u64> = outcomes
        .iter()
        .map(|o| o["status"].as_u64().unwrap())
        .collect();
    assert!(statuses.len() >= 3, "{statuses:?}");
    assert_eq!(statuses.first(), Some(&200));
    assert_eq!(statuses.last(), Some(&200));
    for o in &outcomes[1..outcomes.len() - 1] {
        assert_eq!(o["status"], 503, "{o}");
        assert_eq!(o["decision"]["code"], "audit_unavailable", "{o}");
    }
    assert_eq!(
        refused + outcomes.len(),
        responses.len(),
        "one refusal record per other response"
    );
    assert!(
        parsed.iter().all(|r| r["upstream"] == name.as_str()),
        "only this run's records are in its log"
    );

    // The log verifies offline against the checkpoint just signed.
    let records: Vec<&str> = records.iter().map(String::as_str).collect();
    let checkpoints: Vec<&str> = checkpoints.iter().map(String::as_str).collect();
    let summary = writ_audit::verify_log(
        &records,
        &checkpoints,
        &gw.gateway().audit_verifier_key(),
        &writ_gateway::audit::origin(&instance),
        Some(parsed.len() as u64),
    )
    .unwrap();
    assert_eq!(summary.records, parsed.len() as u64);
    assert_eq!(summary.unsigned_records(), 0);
    assert_eq!(summary.open_decisions, 0);
    eprintln!(
        "{} responses: 2 served, {} refused; {hits} reached the upstream; \
         {attempts} attempts to recover",
        responses.len(),
        responses.len() - 2,
    );
}

/// Reading the log in pages on PostgreSQL, as the console's live writs count follows it:
/// the instances (by a loose index scan), an instance's records after a number, oldest
/// first, and before one, newest first.
#[tokio::test]
async fn the_postgres_sink_reads_the_log_in_pages() {
    let db = writ_testkit::FreshDatabase::create().await;
    let sink = Sink::postgres(&db.url()).await.unwrap();
    sink.prepare().await.unwrap();
    assert!(sink.instances().await.unwrap().is_empty());
    for instance in ["b", "a"] {
        let lines: Vec<String> = (0..5)
            .map(|n| format!(r#"{{"v":1,"seq":{n},"instance":"{instance}"}}"#))
            .collect();
        sink.append(instance, 0, &lines).await.unwrap();
    }
    assert_eq!(sink.instances().await.unwrap(), vec!["a", "b"]);
    let seqs = |page: Vec<(u64, String)>| page.into_iter().map(|(n, _)| n).collect::<Vec<_>>();
    assert_eq!(
        seqs(sink.records_after("a", None, 2).await.unwrap()),
        vec![0, 1]
    );
    assert_eq!(
        seqs(sink.records_after("a", Some(1), 9).await.unwrap()),
        vec![2, 3, 4]
    );
    assert_eq!(
        seqs(sink.records_before("b", None, 2).await.unwrap()),
        vec![4, 3]
    );
    assert_eq!(
        seqs(sink.records_before("b", Some(1), 9).await.unwrap()),
        vec![0]
    );
    let (n, line) = &sink.records_after("b", Some(3), 1).await.unwrap()[0];
    assert_eq!(
        (*n, line.as_str()),
        (4, r#"{"v":1,"seq":4,"instance":"b"}"#)
    );
}

/// A checkpoint's commit waits for PostgreSQL's WAL flush; the writer stores it on a
/// connection of its own and goes on committing decisions meanwhile, so no request waits
/// behind a checkpoint. Here the checkpoints table is locked by another session, so every
/// checkpoint store hangs until it is let go: requests are still served, each after its
/// decision is committed; once the lock goes, the checkpoints are stored and the whole log
/// (every record, chained) verifies against them.
#[tokio::test]
async fn requests_are_served_while_a_checkpoint_waits_to_be_stored() {
    let db = writ_testkit::FreshDatabase::create().await;
    let upstream = MockUpstream::start(KEY).await;
    let gw = pg_gateway(&db, &upstream, 2).await;
    let admin = sqlx::PgPool::connect(&db.url()).await.unwrap();
    let mut lock = admin.begin().await.unwrap();
    sqlx::query("LOCK TABLE audit_checkpoints IN ACCESS EXCLUSIVE MODE")
        .execute(&mut *lock)
        .await
        .unwrap();
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()
        .unwrap();
    let writ = gw.mint(
        "mock",
        r#"{"type":"writ:llm","upstream":"mock","models":["gpt-4o-mini"]}"#,
        30,
    );
    let requests = 12;
    for i in 0..requests {
        let r = client
            .post(gw.url("/v1/chat/completions"))
            .bearer_auth(&writ)
            .json(&json!({"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}]}))
            .send()
            .await
            .unwrap_or_else(|e| panic!("request {i} while a checkpoint waits: {e}"));
        assert_eq!(r.status(), StatusCode::OK, "request {i}");
        // Each decision was committed before its request reached the upstream.
        let decisions: i64 = sqlx::query_scalar(
            "SELECT COUNT(*) FROM audit_records WHERE line LIKE '%\"kind\":\"request_allowed\"%'",
        )
        .fetch_one(&admin)
        .await
        .unwrap();
        assert_eq!(decisions, i + 1);
        assert_eq!(upstream.requests().len() as i64, i + 1);
    }
    // Nothing could be checkpointed while the table was locked.
    let stored: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM audit_records")
        .fetch_one(&admin)
        .await
        .unwrap();
    assert!(stored >= 2 * requests - 1, "{stored} records stored");
    lock.rollback().await.unwrap();

    // A decision and an outcome each, and a checkpoint stored after the lock went.
    let checkpoints = assert_one_log_verifies(&gw, 2 * requests as u64).await;
    assert!(checkpoints >= 2, "{checkpoints} checkpoints");
}

/// A lane (a connection of one thread's own) appends where the instance's records end and
/// nowhere else: a write that does not follow them is refused whole, saying where they
/// end, and the lane stays open; a lane whose session the server ended is closed and
/// opened again.
#[tokio::test]
async fn a_lane_appends_only_where_the_log_ends_and_reopens_after_its_session_ends() {
    let db = writ_testkit::FreshDatabase::create().await;
    let sink = Sink::postgres(&db.url()).await.unwrap();
    sink.prepare().await.unwrap();
    let lanes = Arc::new(
        PostgresLanes::new(&db.url(), writ_audit::sink::Durability::Committed, 3).unwrap(),
    );
    // A closed lane lends nothing at once: it starts opening.
    assert!(lanes.borrow(1).is_none());
    let lines = |from: u64, n: u64| -> Vec<String> {
        (from..from + n)
            .map(|s| format!(r#"{{"v":1,"seq":{s},"instance":"i"}}"#))
            .collect()
    };
    let lane = lanes.open_and_borrow(2).await.expect("lane 2 opens");
    assert!(lanes.borrow(2).is_none(), "a lent lane is lent once");
    lane.append("i", 0, &lines(0, 3)).await.unwrap();
    assert!(lanes.is_idle(2), "given back after its write");
    let lane = lanes.borrow(2).unwrap();
    match lane.append("i", 5, &lines(5, 1)).await {
        Err(writ_audit::sink::SinkError::NotContiguous { held: 3, first: 5 }) => {}
        other => panic!("a gap must be refused, saying where the log ends: {other:?}"),
    }
    assert!(lanes.is_idle(2), "a refused write keeps the lane open");
    let lane = lanes.borrow(2).unwrap();
    match lane.append("i", 1, &lines(1, 4)).await {
        Err(writ_audit::sink::SinkError::NotContiguous { held: 3, first: 1 }) => {}
        other => panic!("an overlap must be refused whole: {other:?}"),
    }
    // The server ends the lane's session: the next write fails and closes the lane.
    let admin = sqlx::PgPool::connect(&db.url()).await.unwrap();
    let ended: Vec<bool> = sqlx::query_scalar(
        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity \
         WHERE application_name = $1 AND datname = current_database()",
    )
    .bind(LANE_APPLICATION_NAME)
    .fetch_all(&admin)
    .await
    .unwrap();
    assert!(!ended.is_empty(), "the lane's session is named");
    let lane = lanes.borrow(2).unwrap();
    assert!(lane.append("i", 3, &lines(3, 2)).await.is_err());
    assert!(!lanes.is_idle(2), "a failed lane is closed");
    let lane = lanes.open_and_borrow(2).await.expect("lane 2 opens again");
    lane.append("i", 3, &lines(3, 2)).await.unwrap();
    let (records, _) = log_of(&sink.export().await.unwrap(), "i");
    assert_eq!(records, lines(0, 5), "every record once, in order");
}

/// The gateway's serving threads write a request's decision on their own connections
/// (lanes) when it is served alone; the log they and the writer make together is one
/// chain. When a lane's session dies, its record goes to the writer and the request is
/// still served, its decision committed first; nothing is written twice or lost.
#[tokio::test]
async fn decisions_written_on_the_serving_threads_lanes_form_one_log_with_the_writers() {
    let db = writ_testkit::FreshDatabase::create().await;
    let upstream = MockUpstream::start(KEY).await;
    let gw = pg_gateway(&db, &upstream, 5).await;
    let admin = sqlx::PgPool::connect(&db.url()).await.unwrap();
    let client = reqwest::Client::new();
    let writ = gw.mint(
        "mock",
        r#"{"type":"writ:llm","upstream":"mock","models":["gpt-4o-mini"]}"#,
        30,
    );
    let chat = json!({"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}]});
    let decisions = || async {
        sqlx::query_scalar::<_, i64>(
            "SELECT COUNT(*) FROM audit_records WHERE line LIKE '%\"kind\":\"request_allowed\"%'",
        )
        .fetch_one(&admin)
        .await
        .unwrap()
    };
    let mut served = 0;
    for round in 0..3 {
        for _ in 0..10 {
            let r = client
                .post(gw.url("/v1/chat/completions"))
                .bearer_auth(&writ)
                .json(&chat)
                .send()
                .await
                .unwrap();
            assert_eq!(r.status(), StatusCode::OK, "round {round}");
            served += 1;
            // Strict: each decision was committed before its request was forwarded.
            assert_eq!(decisions().await, served);
            assert_eq!(upstream.requests().len() as i64, served);
        }
        // Every lane's session ends under it.
        sqlx::query(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = $1",
        )
        .bind(LANE_APPLICATION_NAME)
        .execute(&admin)
        .await
        .unwrap();
    }
    let alone = gw.gateway().audit_records_written_alone();
    assert!(
        (1..=30).contains(&alone),
        "decisions written on the serving threads' lanes: {alone}"
    );
    // A decision and an outcome each, once.
    let _ = assert_one_log_verifies(&gw, 60).await;
}
