//! The audit log sees the operator: each change the CLI makes to local state, each writ it
//! issues, and each admin action through the gateway is one record naming who did it, in
//! logs `writ audit verify` checks with the gateway's own.
#![allow(clippy::unwrap_used)]

use std::path::Path;
use std::process::{Command, Output};

use serde_json::Value;
use writ_testkit::{OPERATOR, ServeProcess};

const BIN: &str = env!("CARGO_BIN_EXE_writ");
const LLM: &str = r#"{"type":"writ:llm","upstream":"demo","models":["gpt-4o-mini"]}"#;

fn ok(out: Output) -> String {
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

/// `writ …` in `dir` with the gateway stopped, as `operator`.
fn offline(dir: &Path, operator: &str, args: &[&str]) -> Output {
    Command::new(BIN)
        .args(args)
        .current_dir(dir)
        .env("WRIT_LOG", "warn")
        .env("WRIT_OPERATOR", operator)
        .output()
        .unwrap()
}

fn records(dir: &Path) -> Vec<Value> {
    ok(offline(
        dir,
        "auditor",
        &["audit", "export", "--out", "all.jsonl"],
    ));
    std::fs::read_to_string(dir.join("all.jsonl"))
        .unwrap()
        .lines()
        .filter(|l| !l.starts_with("{\"checkpoint\""))
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

fn find<'a>(records: &'a [Value], operation: &str) -> Vec<&'a Value> {
    records
        .iter()
        .filter(|r| r["operation"] == operation)
        .collect()
}

#[test]
fn every_operator_action_is_one_record_naming_the_operator() {
    let dir = tempfile::tempdir().unwrap();
    let server = ServeProcess::start(
        Path::new(BIN),
        dir.path(),
        &["--demo", "--listen", "127.0.0.1:0"],
    );
    let gw = server.url("");
    // Agent changes and a mint on local state, while the gateway runs.
    ok(server.writ(&[
        "agent",
        "add",
        "planner",
        "--ceiling",
        LLM,
        "--generate-secret",
    ]));
    ok(server.writ(&["agent", "update", "planner", "--max-ttl", "20s"]));
    let writ = ok(server.writ(&["token", "mint", "--agent", "planner", "--grant", LLM]));
    // Admin actions through the gateway: the admin writ's subject is the operator.
    ok(server.writ(&["keys", "rotate", "--gateway", &gw]));
    ok(server.writ(&[
        "revoke",
        "--agent",
        "planner",
        "--reason",
        "test",
        "--gateway",
        &gw,
    ]));
    let admin = ok(server.writ(&["admin", "token", "--as", "alice"]));
    ok(server.writ(&["agent", "remove", "planner"]));
    assert_eq!(server.stop().code(), Some(0));
    // With the gateway stopped: offline changes, by another operator.
    ok(offline(
        dir.path(),
        "bob",
        &["keys", "retire", "1", "--offline"],
    ));

    let all = records(dir.path());
    let by = |r: &Value| r["detail"]["by"].as_str().map(str::to_string);
    for (operation, kind) in [
        ("add_agent", "admin_change"),
        ("update_agent", "admin_change"),
        ("remove_agent", "admin_change"),
        ("mint", "writ_minted"),
        ("issue_admin_writ", "writ_minted"),
    ] {
        let found = find(&all, operation);
        let from_cli: Vec<_> = found
            .iter()
            .filter(|r| r["detail"]["via"] == "cli")
            .collect();
        assert_eq!(from_cli.len(), 1, "{operation}: {found:?}");
        assert_eq!(from_cli[0]["kind"], kind, "{operation}");
        let expect = if operation == "issue_admin_writ" {
            "alice"
        } else {
            OPERATOR
        };
        assert_eq!(by(from_cli[0]).as_deref(), Some(expect), "{operation}");
    }
    let minted = find(&all, "mint");
    assert_eq!(
        minted[0]["detail"]["ttl_secs"], 20,
        "without --ttl, the agent's own maximum (20s after the update)"
    );
    let update = find(&all, "update_agent")[0];
    assert_eq!(update["detail"]["changed"], serde_json::json!(["max_ttl"]));
    assert_eq!(update["detail"]["secret_set"], true);
    let rotation = find(&all, "rotate_root_key");
    assert_eq!(rotation.len(), 1);
    assert_eq!(rotation[0]["agent"], OPERATOR, "the admin writ's subject");
    let revocation = find(&all, "revoke");
    assert_eq!(revocation.len(), 1, "{revocation:?}");
    let retire = find(&all, "retire_root_key");
    assert_eq!(retire.len(), 1);
    assert_eq!(by(retire[0]).as_deref(), Some("bob"));
    assert_eq!(retire[0]["detail"]["offline"], true);

    // No writ, secret or token id in any record.
    let text = std::fs::read_to_string(dir.path().join("all.jsonl")).unwrap();
    for secret in [writ.trim(), admin.trim()] {
        assert!(!text.contains(secret));
    }
    // The operator logs verify with the gateway's.
    let out = ok(offline(dir.path(), "auditor", &["audit", "verify"]));
    assert!(
        out.contains("cli-"),
        "each command's log is verified: {out}"
    );
}
