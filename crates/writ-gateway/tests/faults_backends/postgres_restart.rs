//! PostgreSQL crashed (`pg_ctl stop -m immediate`) and started again under load, with
//! strict audit on the PostgreSQL sink of a gateway. The server is this test's own, so
//! its log is the gateway's alone (audit_postgres.rs fakes the outage with a TCP
//! forwarder in front of the shared server; here the server itself goes down and
//! recovers from its WAL).
//!
//! Every call carries a marker twice: its writ's agent (`call-<n>`), which its audit
//! records keep, and its message text, which the mock upstream records. What is checked:
//! - while the server is down, every call taken in and answered is refused, 503
//!   `audit_unavailable`, without waiting out a write attempt (median under a second; a
//!   write attempt takes the sink's 2 s connection timeout), and none reaches the upstream;
//! - after the restart the gateway serves again by itself, within a bound;
//! - the calls that reached the upstream are exactly the calls answered 2xx, once each;
//! - every 2xx call has exactly one `request_allowed` decision and exactly one outcome
//!   (status 200) linked to it; every refused call exactly one ending record (a 503
//!   refusal, or the outcome of a decision that could not be committed); nothing else;
//! - the log read back from the database verifies against the gateway's checkpoint.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use writ_audit::sink::split_export;
use writ_testkit::{MockUpstream, OwnPostgres, TestGateway};

use crate::load::{Call, Caller, Load};

const KEY: &str = "sk-upstream-faults-pg-0123456";
const CALLERS: usize = 16;
const UPSTREAM: &str = "pgload";

fn agent(marker: u64) -> String {
    format!("call-{marker}")
}

fn caller(client: &reqwest::Client, gw: &Arc<TestGateway>) -> Caller {
    let (client, gw) = (client.clone(), gw.clone());
    let grant = format!(r#"{{"type":"writ:llm","upstream":"{UPSTREAM}"}}"#);
    Arc::new(move |marker| {
        let writ = gw.mint_for(&agent(marker), &grant, &grant, 30);
        let request = client
            .post(gw.url("/v1/chat/completions"))
            .bearer_auth(writ)
            .json(
                &json!({"model": "gpt-4o-mini", "max_tokens": 5, "stream": marker % 2 == 0,
                "messages": [{"role": "user", "content": format!("marker-{marker}-end")}]}),
            );
        Box::pin(async move {
            let resp = request.send().await.expect("the gateway answers");
            let status = resp.status().as_u16();
            (status, resp.text().await.unwrap_or_default())
        })
    })
}

/// The marker in a request the upstream received.
fn marker_of(body: &[u8]) -> u64 {
    let v: Value = serde_json::from_slice(body).unwrap();
    let text = v["messages"][0]["content"].as_str().unwrap();
    text.strip_prefix("marker-")
        .and_then(|t| t.strip_suffix("-end"))
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no marker in {text}"))
}

async fn crash_and_restart_under_strict_audit(durability: &str) {
    let mut pg = tokio::task::block_in_place(OwnPostgres::start);
    let upstream = MockUpstream::start(KEY).await;
    let gw = Arc::new(
        TestGateway::start(&format!(
            "[audit]\nmode = \"strict\"\nsink = \"postgres\"\npostgres_url = \"{}\"\n\
             durability = \"{durability}\"\n\
             [upstreams.{UPSTREAM}]\nkind = \"openai\"\nbase_url = \"{}\"\n\
             allow_private_network = true\napi_key = \"{KEY}\"\n",
            pg.url(),
            upstream.base_url()
        ))
        .await,
    );
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(30))
        .build()
        .unwrap();
    let load = Load::start((0..CALLERS).map(|_| (0, caller(&client, &gw))).collect());
    let ok_since = |calls: &[Call], from: Instant| {
        calls
            .iter()
            .filter(|c| c.status == 200 && c.started >= from)
            .count()
    };
    let begun = Instant::now();
    load.until("calls are served", Duration::from_secs(30), |calls| {
        ok_since(calls, begun) >= 20
    })
    .await;

    // Down: the server crashes.
    tokio::task::block_in_place(|| pg.stop_immediately());
    let down = Instant::now();
    // Calls in flight when it died wait for the write that finds it dead; from the first
    // refusal on, the gateway knows. Enough calls must start after that.
    load.until(
        "calls meet the database known dead",
        Duration::from_secs(30),
        |calls| match known_dead(calls, down) {
            Some(known) => calls.iter().filter(|c| c.started >= known).count() >= 8,
            None => false,
        },
    )
    .await;
    let restart = Instant::now();
    tokio::task::block_in_place(|| pg.start_again());
    let up = Instant::now();
    eprintln!(
        "down {:?} after the load began; restarted after {:?}, in {:?}",
        down - begun,
        restart - down,
        up - restart
    );
    load.until(
        "the gateway serves again",
        Duration::from_secs(30),
        |calls| ok_since(calls, up) >= 20,
    )
    .await;
    let calls = load.stop().await;

    for c in &calls {
        match (c.status, c.kind.as_deref(), c.code.as_deref()) {
            (200, None, None) | (503, Some("server_error"), Some("audit_unavailable")) => {}
            other => panic!("unexpected answer {other:?} to call {}", c.marker),
        }
    }
    let while_down: Vec<&Call> = calls.iter().filter(|c| c.within(down, restart)).collect();
    assert!(while_down.len() >= 8);
    assert!(
        while_down.iter().all(|c| c.status == 503),
        "served while the database was down: {:?}",
        while_down
            .iter()
            .filter(|c| c.status != 503)
            .collect::<Vec<_>>()
    );
    let known = known_dead(&calls, down).unwrap();
    let mut refusal_times: Vec<Duration> = while_down
        .iter()
        .filter(|c| c.started >= known)
        .map(|c| c.ended - c.started)
        .collect();
    refusal_times.sort_unstable();
    assert!(
        refusal_times.len() >= 4,
        "refusals once known: {refusal_times:?}"
    );
    // A refusal while the database is known to be down does not wait for a write attempt
    // (each takes the sink's 2 s connection timeout), so most come at once.
    let median = refusal_times[refusal_times.len() / 2];
    assert!(
        median < Duration::from_secs(1),
        "refusals waited: {refusal_times:?}"
    );
    let recovered = calls
        .iter()
        .filter(|c| c.status == 200 && c.started >= up)
        .map(|c| c.ended - up)
        .min()
        .unwrap();

    // Exactly the calls answered 2xx reached the upstream, each once.
    let served: BTreeSet<u64> = calls
        .iter()
        .filter(|c| c.status == 200)
        .map(|c| c.marker)
        .collect();
    let mut reached: Vec<u64> = upstream
        .requests()
        .iter()
        .map(|r| marker_of(&r.body))
        .collect();
    reached.sort_unstable();
    let reached_once: BTreeSet<u64> = reached.iter().copied().collect();
    assert_eq!(
        reached.len(),
        reached_once.len(),
        "a call reached the upstream twice"
    );
    let refused_but_reached: Vec<&u64> = reached_once.difference(&served).collect();
    assert!(
        refused_but_reached.is_empty(),
        "refused yet forwarded: {refused_but_reached:?}"
    );
    assert_eq!(
        reached_once, served,
        "served calls that never reached the upstream"
    );

    // The log: written (what is pending) and checkpointed, read back from the database.
    gw.gateway().audit_checkpoint().await;
    let export = gw.gateway().audit_export().await.unwrap();
    let logs = split_export(&export);
    assert_eq!(logs.len(), 1, "one instance wrote to this database");
    let (instance, records, checkpoints) = &logs[0];
    let parsed: Vec<Value> = records
        .iter()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    for (i, r) in parsed.iter().enumerate() {
        assert_eq!(r["seq"], i as u64, "the log has no gap and no repeat");
    }
    let by_agent = |r: &Value| -> u64 {
        r["agent"]
            .as_str()
            .and_then(|a| a.strip_prefix("call-"))
            .and_then(|n| n.parse().ok())
            .unwrap_or_else(|| panic!("a record of no call: {r}"))
    };
    let mut of_call: BTreeMap<u64, Vec<&Value>> = BTreeMap::new();
    for r in &parsed {
        of_call.entry(by_agent(r)).or_default().push(r);
    }
    let answered: BTreeMap<u64, &Call> = calls.iter().map(|c| (c.marker, c)).collect();
    for (marker, call) in &answered {
        let records = of_call.remove(marker).unwrap_or_default();
        let kinds: Vec<&str> = records
            .iter()
            .map(|r| r["kind"].as_str().unwrap())
            .collect();
        let decisions: Vec<&&Value> = records
            .iter()
            .filter(|r| r["kind"] == "request_allowed")
            .collect();
        let outcomes: Vec<&&Value> = records
            .iter()
            .filter(|r| r["kind"] == "request_outcome")
            .collect();
        if call.status == 200 {
            assert_eq!(
                kinds,
                ["request_allowed", "request_outcome"],
                "call {marker}"
            );
            assert_eq!(outcomes[0]["status"], 200, "call {marker}");
            assert_eq!(
                outcomes[0]["decision_seq"], decisions[0]["seq"],
                "call {marker}"
            );
        } else if decisions.is_empty() {
            assert_eq!(kinds, ["request_denied"], "call {marker}");
            assert_eq!(records[0]["status"], 503, "call {marker}");
            assert_eq!(
                records[0]["decision"]["code"], "audit_unavailable",
                "call {marker}"
            );
        } else {
            // Its decision could not be committed: refused, and its outcome says so.
            assert_eq!(
                kinds,
                ["request_allowed", "request_outcome"],
                "call {marker}"
            );
            assert_eq!(outcomes[0]["status"], 503, "call {marker}");
            assert_eq!(
                outcomes[0]["decision_seq"], decisions[0]["seq"],
                "call {marker}"
            );
        }
    }
    assert!(
        of_call.is_empty(),
        "records of calls never made: {:?}",
        of_call.keys()
    );

    let lines: Vec<&str> = records.iter().map(String::as_str).collect();
    let notes: Vec<&str> = checkpoints.iter().map(String::as_str).collect();
    let summary = writ_audit::verify_log(
        &lines,
        &notes,
        &gw.gateway().audit_verifier_key(),
        &writ_gateway::audit::origin(instance),
        Some(parsed.len() as u64),
    )
    .unwrap_or_else(|e| panic!("the log does not verify: {e:?}"));
    assert_eq!(summary.records, parsed.len() as u64);
    assert_eq!(summary.unsigned_records(), 0);
    assert_eq!(summary.open_decisions, 0);
    eprintln!(
        "durability {durability}: {} calls, {} served, {} refused while down; \
         refusals took {:?} (median) to {:?}; recovered {recovered:?} after the restart; \
         {} records",
        calls.len(),
        served.len(),
        while_down.len(),
        median,
        refusal_times.last().unwrap(),
        parsed.len()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_crash_under_strict_audit_committed_durability() {
    crash_and_restart_under_strict_audit("committed").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_crash_under_strict_audit_synced_durability() {
    crash_and_restart_under_strict_audit("synced").await;
}

/// When the gateway first answered a refusal to a call started after `down`: from then
/// on it knows the database is away.
fn known_dead(calls: &[Call], down: Instant) -> Option<Instant> {
    calls
        .iter()
        .filter(|c| c.started >= down && c.status == 503)
        .map(|c| c.ended)
        .min()
}
