//! Process-level faults of a real `writ serve` (issue 26): ten thousand idle connections
//! and slow-loris clients, SIGKILL in the middle of strict audit writes, and the audit
//! file's disk filling up. Each test starts its own gateway and mock upstream on loopback
//! and waits for conditions with bounded deadlines, never for time to pass.
#![allow(clippy::unwrap_used)]

#[path = "faults_process/connections.rs"]
mod connections;
#[path = "faults_process/disk_full.rs"]
mod disk_full;
#[path = "faults_process/sigkill.rs"]
mod sigkill;

use std::collections::BTreeMap;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use serde_json::{Value, json};
use writ_testkit::{MockUpstream, ServeProcess};

const BIN: &str = env!("CARGO_BIN_EXE_writ");
/// Any model: each request names a model of its own, which its audit records carry, so a
/// client's request is found in the log by it.
const GRANT: &str = r#"{"type":"writ:llm","upstream":"demo","actions":["chat"]}"#;
/// Longest wait for anything the tests expect to happen (never reached when it works).
const PATIENCE: Duration = Duration::from_secs(30);

/// Writes `writ.toml` in `dir` (writs of up to five minutes, upstream `demo` is `mock`,
/// then `extra`) and starts `writ serve --demo` there.
fn gateway(dir: &Path, mock: &MockUpstream, key: &str, extra: &str) -> ServeProcess {
    std::fs::write(
        dir.join("writ.toml"),
        format!(
            "[tokens]\nmax_ttl = \"5m\"\n\n[upstreams.demo]\nkind = \"openai\"\nbase_url = \"{}\"\napi_key = \"{key}\"\n\
             allow_private_network = true\n\n{extra}",
            mock.base_url()
        ),
    )
    .unwrap();
    ServeProcess::start(Path::new(BIN), dir, &["--demo", "--listen", "127.0.0.1:0"])
}

/// A chat completion asking for `model`: its status and JSON body (`Null` when the body
/// is not JSON), or the transport error's text.
async fn chat(
    client: &reqwest::Client,
    server_url: &str,
    writ: &str,
    model: &str,
) -> Result<(u16, Value), String> {
    let response = client
        .post(format!("{server_url}/v1/chat/completions"))
        .bearer_auth(writ)
        .json(&json!({"model": model, "messages": [{"role": "user", "content": "hi"}]}))
        .send()
        .await
        .map_err(|e| e.to_string())?;
    let status = response.status().as_u16();
    let body = response.bytes().await.map_err(|e| e.to_string())?;
    Ok((status, serde_json::from_slice(&body).unwrap_or(Value::Null)))
}

/// `writ audit verify` in `dir`: its report, which must say the log verified.
fn verify(dir: &Path) -> String {
    let out = Command::new(BIN)
        .args(["audit", "verify"])
        .current_dir(dir)
        .env("WRIT_LOG", "warn")
        .output()
        .unwrap();
    let report = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "writ audit verify failed:\n{report}");
    report
}

/// The record lines of a file sink, as JSON, in file order. Panics on a line that is not
/// JSON: a torn record. Read under the file's lock, as its appenders write: a write the
/// disk cut short is cut off again before the lock is let go, so a reader without it
/// could see the fragment of a retry in progress.
fn file_records(path: &Path) -> Vec<Value> {
    let file = std::fs::File::open(path).unwrap();
    file.lock_shared().unwrap();
    let text = std::io::read_to_string(&file).unwrap();
    file.unlock().unwrap();
    assert!(
        text.is_empty() || text.ends_with('\n'),
        "the log ends in a torn line"
    );
    text.lines()
        .map(|line| {
            serde_json::from_str::<Value>(line)
                .unwrap_or_else(|e| panic!("torn or damaged line in the audit file ({e}): {line}"))
        })
        .filter(|v| v.get("seq").is_some())
        .collect()
}

/// How many records of each (kind, model) pair the records hold.
fn count_by_kind_and_model(records: &[Value]) -> BTreeMap<(String, String), usize> {
    let mut counts = BTreeMap::new();
    for r in records {
        if let (Some(kind), Some(model)) = (r["kind"].as_str(), r["model"].as_str()) {
            *counts
                .entry((kind.to_string(), model.to_string()))
                .or_insert(0) += 1;
        }
    }
    counts
}

/// Asserts no instance's log holds a `seq` twice.
fn assert_no_duplicate_seq(records: &[Value]) {
    let mut seen = std::collections::BTreeSet::new();
    for r in records {
        let key = (
            r["instance"].as_str().unwrap().to_string(),
            r["seq"].as_u64().unwrap(),
        );
        assert!(seen.insert(key.clone()), "record {key:?} written twice");
    }
}
