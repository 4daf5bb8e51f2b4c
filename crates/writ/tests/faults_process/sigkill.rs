//! SIGKILL of `writ serve` while strict audit writes to the file sink under concurrent
//! load: after a restart on the same data directory the log verifies, every request a
//! client got a 2xx for has its decision on record exactly once, nothing is written twice,
//! and the restarted gateway serves.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use writ_testkit::MockUpstream;

use super::{
    GRANT, PATIENCE, assert_no_duplicate_seq, chat, count_by_kind_and_model, file_records, gateway,
    verify,
};

/// Clients sending requests at once.
const CLIENTS: usize = 8;
/// Requests answered 2xx before the gateway is killed.
const ACKED_BEFORE_KILL: usize = 150;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_during_strict_file_audit_loses_no_acknowledged_record() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("audit.jsonl");
    let audit = format!(
        "[audit]\nmode = \"strict\"\nsink = \"file\"\nfile = \"{}\"\ncheckpoint_every = 40\n",
        log.display()
    );
    let key = writ_mock::random_key();
    let mock = MockUpstream::start(key.expose()).await;
    let server = gateway(dir.path(), &mock, key.expose(), &audit);
    let writ = server.mint(GRANT, "5m");
    let url = server.url("");

    let acked = Arc::new(AtomicUsize::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    let clients: Vec<_> = (0..CLIENTS)
        .map(|c| {
            let (acked, stop, url, writ) = (acked.clone(), stop.clone(), url.clone(), writ.clone());
            tokio::spawn(async move {
                let client = reqwest::Client::new();
                let mut answered = Vec::new();
                let mut n = 0;
                while !stop.load(Ordering::Acquire) {
                    let model = format!("kill-{c}-{n}");
                    n += 1;
                    match chat(&client, &url, &writ, &model).await {
                        Ok((status, _)) if (200..300).contains(&status) => {
                            acked.fetch_add(1, Ordering::AcqRel);
                            answered.push(model);
                        }
                        // Refused or cut off by the kill: not acknowledged.
                        Ok(_) | Err(_) => {}
                    }
                }
                answered
            })
        })
        .collect();
    let deadline = Instant::now() + PATIENCE;
    while acked.load(Ordering::Acquire) < ACKED_BEFORE_KILL {
        assert!(Instant::now() < deadline, "the load never got going");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    // SIGKILL with requests in flight (dropping the process kills it and reaps it).
    drop(server);
    stop.store(true, Ordering::Release);
    let mut answered = Vec::new();
    for client in clients {
        answered.extend(client.await.unwrap());
    }
    assert!(answered.len() >= ACKED_BEFORE_KILL);

    // Restarted on the same data directory and log, it serves.
    let server = gateway(dir.path(), &mock, key.expose(), &audit);
    let (status, body) = chat(
        &reqwest::Client::new(),
        &server.url(""),
        &writ,
        "after-restart",
    )
    .await
    .unwrap();
    assert_eq!(status, 200, "{body}");
    let exit = server.stop();
    assert!(exit.success(), "{exit:?}");

    let report = verify(dir.path());
    let records = file_records(&log);
    assert_no_duplicate_seq(&records);
    let counts = count_by_kind_and_model(&records);
    for model in &answered {
        assert_eq!(
            counts.get(&("request_allowed".to_string(), model.clone())),
            Some(&1),
            "request {model} was answered 2xx but its decision is not on record once\n{report}"
        );
    }
    for ((kind, model), n) in &counts {
        assert_eq!(*n, 1, "{kind} of {model} is on record {n} times");
    }
    let killed = records
        .iter()
        .find(|r| r["model"] == "kill-0-0")
        .map(|r| r["instance"].clone())
        .unwrap();
    let restarted: Vec<_> = records
        .iter()
        .filter(|r| r["model"] == "after-restart")
        .collect();
    assert_eq!(restarted.len(), 2, "its decision and its outcome");
    assert!(restarted.iter().all(|r| r["instance"] != killed));
    eprintln!(
        "{} requests acknowledged before the kill, all on record; {report}",
        answered.len()
    );
}
