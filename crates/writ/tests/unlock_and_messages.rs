//! The operator's `writ unlock` against a running gateway, and CLI messages a person can
//! act on: `--ttl` rounding as its help says, grant errors that name the field and the
//! allowed values once, and a writ from other keys named by its key id.
#![allow(clippy::unwrap_used)]

use std::path::Path;
use std::process::{Command, Output};

use writ_testkit::ServeProcess;

const BIN: &str = env!("CARGO_BIN_EXE_writ");
const LLM: &str = r#"{"type":"writ:llm","upstream":"demo"}"#;

fn ok(out: Output) -> String {
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

fn failed(out: Output) -> String {
    assert!(
        !out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    String::from_utf8(out.stderr).unwrap()
}

fn token(server: &ServeProcess, secret: &str) -> u16 {
    let out = Command::new("curl")
        .args([
            "-sS",
            "-o",
            "/dev/null",
            "-w",
            "%{http_code}",
            "--interface",
            "127.0.0.1",
        ])
        .arg(server.url("/oauth2/token"))
        .args([
            "-d",
            "grant_type=client_credentials",
            "-d",
            "client_id=clumsy",
        ])
        .args(["--data-urlencode", &format!("client_secret={secret}")])
        .args([
            "--data-urlencode",
            &format!("authorization_details=[{LLM}]"),
        ])
        .output()
        .unwrap();
    String::from_utf8(out.stdout).unwrap().parse().unwrap()
}

#[test]
fn writ_unlock_lifts_a_lock_out() {
    let dir = tempfile::tempdir().unwrap();
    let server = ServeProcess::start(
        Path::new(BIN),
        dir.path(),
        &["--demo", "--listen", "127.0.0.1:0"],
    );
    let gw = server.url("");
    let added = ok(server.writ(&[
        "agent",
        "add",
        "clumsy",
        "--ceiling",
        LLM,
        "--generate-secret",
    ]));
    let secret = added
        .lines()
        .find_map(|l| l.strip_prefix("client_secret: "))
        .unwrap()
        .to_string();
    assert_eq!(token(&server, &secret), 200);
    let mut last = 0;
    for _ in 0..25 {
        last = token(&server, "wcs_wrong");
    }
    assert_eq!(last, 429);
    assert_eq!(token(&server, &secret), 429, "locked out");

    let out = ok(server.writ(&["unlock", "clumsy", "--gateway", &gw]));
    assert!(out.contains("unlocked: clumsy"), "{out}");
    assert_eq!(token(&server, &secret), 200, "unlocked");

    let audit = ok(server.writ(&["audit", "export"]));
    assert!(audit.contains("\"unlock_client\""), "{audit}");
    // Without a gateway to reach, the unlock is an error, not a silent success.
    let err = failed(server.writ(&["unlock", "clumsy", "--gateway", "http://127.0.0.1:9"]));
    assert!(
        err.contains("connection refused") && err.contains("nothing was unlocked"),
        "{err}"
    );
}

#[test]
fn cli_messages_say_what_to_do_once() {
    let dir = tempfile::tempdir().unwrap();
    let server = ServeProcess::start(
        Path::new(BIN),
        dir.path(),
        &["--demo", "--listen", "127.0.0.1:0"],
    );
    // --ttl counts whole seconds, rounding down as its help says: 1500ms is 1s.
    let help = ok(server.writ(&["token", "mint", "--help"]));
    assert!(help.contains("1500ms is 1s"), "{help}");
    let writ = server.mint(LLM, "1500ms");
    let shown = ok(server.writ(&["token", "inspect", &writ]));
    let unix = |name: &str| -> u64 {
        let line = shown.lines().find(|l| l.starts_with(name)).unwrap();
        let n = line.rsplit("(unix ").next().unwrap();
        n.trim_end_matches(')').parse().unwrap()
    };
    assert_eq!(unix("expires at:") - unix("issued at:"), 1, "{shown}");
    let err = failed(server.writ(&[
        "token", "mint", "--agent", "demo", "--grant", LLM, "--ttl", "500ms",
    ]));
    assert!(err.contains("at least 1s"), "{err}");

    // Grant errors: said once, with the field and the values allowed.
    let err = failed(server.writ(&["token", "mint", "--agent", "demo", "--grant", "not json"]));
    assert_eq!(err.matches("JSON").count(), 1, "{err}");
    let err = failed(server.writ(&[
        "token",
        "mint",
        "--agent",
        "demo",
        "--grant",
        r#"{"type":"writ:tool","upstream":"demo","tool":"t","arguments":{"a":{"oneof":[1]}}}"#,
    ]));
    assert!(
        err.contains("`one_of`") && !err.contains("untagged"),
        "{err}"
    );

    // A writ signed by another gateway's key: its key id is named.
    let other = tempfile::tempdir().unwrap();
    let elsewhere = ServeProcess::start(
        Path::new(BIN),
        other.path(),
        &["--demo", "--listen", "127.0.0.1:0"],
    );
    let foreign = elsewhere.mint(LLM, "30s");
    let err = failed(server.writ(&["token", "inspect", &foreign]));
    assert!(err.contains("another gateway's root key"), "{err}");
    ok(elsewhere.writ(&["keys", "rotate", "--gateway", &elsewhere.url("")]));
    let foreign = elsewhere.mint(LLM, "30s");
    let err = failed(server.writ(&["token", "inspect", &foreign]));
    assert!(
        err.contains("root key id 2") && !err.contains("None"),
        "{err}"
    );
}
