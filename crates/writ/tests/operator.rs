//! The operator's commands against a running gateway: agents, attenuation, revocation,
//! key rotation and retirement, admin writs.
#![allow(clippy::unwrap_used)]

use std::path::Path;
use std::process::Command;

use serde_json::Value;
use writ_testkit::ServeProcess;

const BIN: &str = env!("CARGO_BIN_EXE_writ");
const LLM: &str = r#"{"type":"writ:llm","upstream":"demo","models":["gpt-4o-mini","gpt-4o"]}"#;

fn chat(server: &ServeProcess, writ: &str, model: &str) -> Value {
    let out = Command::new("curl")
        .args([
            "-sS",
            &server.url("/v1/chat/completions"),
            "-H",
            &format!("Authorization: Bearer {writ}"),
        ])
        .args(["-H", "Content-Type: application/json", "-d"])
        .arg(format!(
            r#"{{"model":"{model}","messages":[{{"role":"user","content":"hi"}}]}}"#
        ))
        .output()
        .unwrap();
    serde_json::from_slice(&out.stdout).unwrap()
}

fn ok(out: std::process::Output) -> String {
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

fn start(dir: &Path) -> ServeProcess {
    ServeProcess::start(Path::new(BIN), dir, &["--demo", "--listen", "127.0.0.1:0"])
}

fn token_id(server: &ServeProcess, writ: &str) -> String {
    let shown = ok(server.writ(&["token", "inspect", writ]));
    shown
        .lines()
        .find_map(|l| l.strip_prefix("token id: "))
        .unwrap()
        .to_string()
}

#[test]
fn agents_attenuation_and_revocation() {
    let dir = tempfile::tempdir().unwrap();
    let server = start(dir.path());
    let gw = server.url("");

    // Register an agent with a narrower ceiling and mint for it.
    ok(server.writ(&[
        "agent",
        "add",
        "summarizer",
        "--ceiling",
        r#"{"type":"writ:llm","upstream":"demo","models":["gpt-4o-mini"]}"#,
    ]));
    assert!(ok(server.writ(&["agent", "list"])).contains("default/summarizer"));
    assert!(ok(server.writ(&["agent", "show", "summarizer"])).contains("gpt-4o-mini"));
    let out = server.writ(&["token", "mint", "--agent", "summarizer", "--grant", LLM]);
    let narrow = String::from_utf8(out.stdout).unwrap().trim().to_string();
    assert_eq!(
        chat(&server, &narrow, "gpt-4o-mini")["object"],
        "chat.completion"
    );
    assert_eq!(
        chat(&server, &narrow, "gpt-4o")["error"]["code"],
        "grant_denied",
        "the ceiling binds"
    );

    // Attenuate offline with the CLI; the gateway enforces the new block.
    let parent = server.mint(LLM, "30s");
    let child = ok(server.writ(&[
        "token",
        "attenuate",
        &parent,
        "--grant",
        r#"{"type":"writ:llm","upstream":"demo","models":["gpt-4o"]}"#,
    ]));
    let child = child.trim();
    assert_eq!(chat(&server, child, "gpt-4o")["object"], "chat.completion");
    let denied = chat(&server, child, "gpt-4o-mini");
    assert!(
        denied["error"]["detail"]
            .as_str()
            .unwrap()
            .contains("block 2 (attenuation)"),
        "{denied}"
    );

    // Revoke the parent by token id: the child goes with it, on the next request.
    let id = token_id(&server, &parent);
    ok(server.writ(&["revoke", "--token-id", &id, "--gateway", &gw]));
    assert_eq!(
        chat(&server, &parent, "gpt-4o")["error"]["code"],
        "revoked_writ"
    );
    assert_eq!(
        chat(&server, child, "gpt-4o")["error"]["code"],
        "revoked_writ"
    );
    assert_eq!(
        chat(&server, &narrow, "gpt-4o-mini")["object"],
        "chat.completion"
    );

    // Revoke an agent; remove it.
    ok(server.writ(&["revoke", "--agent", "summarizer", "--gateway", &gw]));
    assert_eq!(
        chat(&server, &narrow, "gpt-4o-mini")["error"]["code"],
        "revoked_writ"
    );
    ok(server.writ(&["agent", "remove", "summarizer"]));
    assert!(
        !server
            .writ(&["agent", "show", "summarizer"])
            .status
            .success()
    );

    // An admin writ reads the revocations.
    let admin = ok(server.writ(&["admin", "token"]));
    let out = Command::new("curl")
        .args([
            "-sS",
            &server.url("/admin/v1/revocations"),
            "-H",
            &format!("Authorization: Bearer {}", admin.trim()),
        ])
        .output()
        .unwrap();
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["revocations"].as_array().unwrap().len(), 2, "{v}");
}

#[test]
fn key_rotation_and_retirement() {
    let dir = tempfile::tempdir().unwrap();
    let server = start(dir.path());
    let gw = server.url("");
    let old = server.mint(LLM, "30s");
    let out = ok(server.writ(&["keys", "rotate", "--gateway", &gw]));
    assert!(out.contains("new signing key: id 2"), "{out}");
    let new = server.mint(LLM, "30s");
    assert!(ok(server.writ(&["token", "inspect", &new])).contains("root key id 2"));
    assert_eq!(
        chat(&server, &old, "gpt-4o")["object"],
        "chat.completion",
        "the old key is still trusted"
    );
    assert_eq!(chat(&server, &new, "gpt-4o")["object"], "chat.completion");
    let listed = ok(server.writ(&["keys", "list"]));
    assert!(
        listed.contains("1\ted25519")
            && listed.contains("2\ted25519")
            && listed.contains("signing"),
        "{listed}"
    );

    assert!(
        !server
            .writ(&["keys", "retire", "2", "--gateway", &gw])
            .status
            .success(),
        "the signing key cannot be retired"
    );
    ok(server.writ(&["keys", "retire", "1", "--gateway", &gw]));
    assert_eq!(
        chat(&server, &old, "gpt-4o")["error"]["code"],
        "invalid_signature"
    );
    assert_eq!(chat(&server, &new, "gpt-4o")["object"], "chat.completion");
}

#[test]
fn revocations_made_while_stopped_apply_at_start() {
    let dir = tempfile::tempdir().unwrap();
    let server = start(dir.path());
    let writ = server.mint(LLM, "30s");
    let id = token_id(&server, &writ);
    drop(server);
    let out = Command::new(BIN)
        .args(["revoke", "--token-id", &id, "--offline"])
        .current_dir(dir.path())
        .output()
        .unwrap();
    assert!(ok(out).contains("applied when a gateway starts"));
    let server = start(dir.path());
    assert_eq!(
        chat(&server, &writ, "gpt-4o")["error"]["code"],
        "revoked_writ"
    );
}

#[test]
fn operator_commands_refuse_bad_input() {
    let dir = tempfile::tempdir().unwrap();
    let server = start(dir.path());
    for (args, expect) in [
        (vec!["agent", "add", "x y", "--ceiling", LLM], "agent names"),
        (
            vec![
                "agent",
                "add",
                "a",
                "--ceiling",
                r#"{"type":"writ:budget","tokens":1}"#,
            ],
            "access grant",
        ),
        (
            vec!["agent", "add", "a", "--ceiling", LLM, "--max-ttl", "1h"],
            "--max-ttl",
        ),
        (
            vec!["agent", "add", "a", "--ceiling", "{"],
            "invalid --ceiling",
        ),
        (vec!["revoke"], "say what to revoke"),
        (
            vec!["revoke", "--token-id", "a", "--agent", "b"],
            "cannot be used with",
        ),
        (vec!["revoke", "--all-before", "yesterday-ish"], "RFC 3339"),
        (vec!["keys", "retire", "99"], "not a retirable key"),
        (
            vec!["token", "attenuate", "writ_nope", "--grant", LLM],
            "malformed",
        ),
        (vec!["token", "attenuate", "sk-123", "--grant", LLM], "writ"),
    ] {
        let out = server.writ(&args);
        assert!(!out.status.success(), "{args:?}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains(expect), "{args:?}: {err}");
    }
}
