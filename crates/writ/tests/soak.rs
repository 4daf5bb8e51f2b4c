//! The soak (`bench/soak`) in a short form, against the `writ` just built: 45 s of mixed
//! traffic (chat, streams, token endpoint mints, revocations, refusals) at 20 calls a second.
//! The harness's verdict is asserted: every answer the expected one, memory, file
//! descriptors and the writ cache flat after the warm-up. The ten-minute run's figures are
//! in bench/results.
#![allow(clippy::unwrap_used)]

use std::path::Path;
use std::process::Command;

const BIN: &str = env!("CARGO_BIN_EXE_writ");
const HARNESS: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../bench/soak");

#[test]
fn a_short_soak_passes_with_every_kind_of_call() {
    let out = Command::new(writ_testkit::python())
        .args([
            "soak.py",
            "--writ-bin",
            BIN,
            "--minutes",
            "0.75",
            "--rate",
            "20",
        ])
        .args(["--warmup", "15"])
        .current_dir(Path::new(HARNESS))
        .output()
        .expect("run the soak with the test venv's python");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    let verdict = stdout
        .lines()
        .find(|l| l.starts_with("soak: "))
        .unwrap_or_default();
    assert!(
        out.status.success() && verdict.starts_with("soak: PASS"),
        "verdict: {verdict}\nstdout:\n{stdout}\nstderr:\n{stderr}"
    );
    // Every kind of call happened, the refusals included, and nothing was unexpected.
    for kind in [
        "chat",
        "stream",
        "mint",
        "revoked",
        "no_writ",
        "garbage_writ",
        "wrong_model",
        "over_budget",
    ] {
        let n: u64 = verdict
            .split(' ')
            .find_map(|kv| kv.strip_prefix(&format!("{kind}=")))
            .and_then(|n| n.parse().ok())
            .unwrap_or(0);
        assert!(n > 0, "no {kind} call in: {verdict}");
    }
    assert!(verdict.contains(" unexpected=0 "), "{verdict}");
}
