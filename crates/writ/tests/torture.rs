//! The budget torture harness (`bench/torture`) in its CI-sized form, against the `writ`
//! just built: three replicas on a Redis of the harness's own, 2 000 concurrent requests
//! and streams, every replica SIGKILLed and restarted once and Redis restarted once
//! mid-run. The harness's verdict is asserted: spend within the budget plus the in-flight
//! over-runs, the usage ledger equal to what the mock upstream served, no lease left held.
#![allow(clippy::unwrap_used)]

use std::path::Path;
use std::process::Command;

const BIN: &str = env!("CARGO_BIN_EXE_writ");
const HARNESS: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../bench/torture");

fn run(args: &[&str]) -> (bool, String, String) {
    let out = Command::new(writ_testkit::python())
        .args(args)
        .current_dir(Path::new(HARNESS))
        .output()
        .expect("run the harness with the test venv's python");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// The harness's judgement fails a made-up run for each way a gateway can get a budget
/// wrong (over-admission, a ledger off by one token, a leaked lease, a cut or abandoned
/// call counted wrong, no refusal at all, a call forwarded twice, usage changed on the
/// way, the caller's key sent upstream).
#[test]
fn the_harness_fails_every_kind_of_budget_error() {
    let (ok, stdout, stderr) = run(&["-m", "unittest", "-v", "test_ledger"]);
    assert!(ok, "stdout:\n{stdout}\nstderr:\n{stderr}");
    assert!(stderr.trim_end().ends_with("OK"), "{stderr}");
}

#[test]
fn three_replicas_pass_the_budget_torture() {
    let (ok, stdout, stderr) = run(&[
        "torture.py",
        "--writ-bin",
        BIN,
        "--replicas",
        "3",
        "--requests",
        "2000",
    ]);
    let verdict = stdout
        .lines()
        .find(|l| l.starts_with("torture: "))
        .unwrap_or_default();
    assert!(
        ok && verdict.starts_with("torture: PASS"),
        "verdict: {verdict}\nstdout:\n{stdout}\nstderr:\n{stderr}"
    );
    // The run did what it claims: the budget was reached, and the faults happened.
    for part in ["kills=3", "redis_restarts=1", "leases_after_ttl=0"] {
        assert!(verdict.contains(part), "{part} missing from: {verdict}");
    }
    let limited: u64 = verdict
        .split(' ')
        .find_map(|kv| kv.strip_prefix("limited="))
        .and_then(|n| n.parse().ok())
        .unwrap();
    assert!(limited > 0, "{verdict}");
}
