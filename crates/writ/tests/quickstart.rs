//! The README's quickstart, run as a new user runs it: the real binary, `curl`, a fresh directory.
#![allow(clippy::unwrap_used)]

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::Command;

use serde_json::Value;
use writ_testkit::ServeProcess;

const BIN: &str = env!("CARGO_BIN_EXE_writ");
const GRANT: &str =
    r#"{"type":"writ:llm","upstream":"demo","actions":["chat"],"models":["gpt-4o-mini"]}"#;

fn curl_chat(url: &str, writ: &str, model: &str) -> Value {
    let out = Command::new("curl")
        .args(["-sS", url, "-H", &format!("Authorization: Bearer {writ}")])
        .args(["-H", "Content-Type: application/json", "-d"])
        .arg(format!(
            r#"{{"model":"{model}","messages":[{{"role":"user","content":"Hello!"}}]}}"#
        ))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

#[test]
fn demo_quickstart_with_curl() {
    let dir = tempfile::tempdir().unwrap();
    let server = ServeProcess::start(
        Path::new(BIN),
        dir.path(),
        &["--demo", "--listen", "127.0.0.1:0"],
    );
    assert!(
        server.banner().contains("token mint --agent demo --grant"),
        "{}",
        server.banner()
    );
    assert!(server.banner().contains("upstreams: demo (mock)"));

    let writ = server.mint(GRANT, "30s");
    assert!(writ.starts_with("writ_"), "{writ}");
    let v = curl_chat(&server.url("/v1/chat/completions"), &writ, "gpt-4o-mini");
    assert_eq!(v["object"], "chat.completion", "{v}");
    assert!(
        v["choices"][0]["message"]["content"]
            .as_str()
            .unwrap()
            .contains("Hello!")
    );

    let v = curl_chat(&server.url("/v1/chat/completions"), &writ, "gpt-4o");
    assert_eq!(v["error"]["code"], "grant_denied", "{v}");

    let out = server.writ(&["token", "inspect", &writ]);
    let shown = String::from_utf8(out.stdout).unwrap();
    assert!(
        shown.contains("signature: valid") && shown.contains("gpt-4o-mini"),
        "{shown}"
    );
}

/// A gateway stopped with SIGTERM leaves its whole audit log in the database file itself:
/// a copy of the data directory without SQLite's WAL verifies to the same records and
/// final checkpoint as the original.
#[test]
fn a_stopped_gateway_leaves_its_audit_log_on_disk() {
    let dir = tempfile::tempdir().unwrap();
    let server = ServeProcess::start(
        Path::new(BIN),
        dir.path(),
        &["--demo", "--listen", "127.0.0.1:0"],
    );
    let writ = server.mint(GRANT, "30s");
    for model in ["gpt-4o-mini", "gpt-4o-mini", "gpt-4o"] {
        curl_chat(&server.url("/v1/chat/completions"), &writ, model);
    }
    assert!(server.stop().success());
    let verify = |at: &Path| {
        let out = Command::new(BIN)
            .args(["audit", "verify"])
            .current_dir(at)
            .env("WRIT_LOG", "warn")
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    };
    // Strict audit: each of the two allowed requests has its decision and its outcome,
    // the refused one its refusal.
    let original = verify(dir.path());
    assert!(
        original.contains("5 records, checkpoint at 5, ok"),
        "{original}"
    );
    let copy = tempfile::tempdir().unwrap();
    let (from, to) = (dir.path().join("writ-data"), copy.path().join("writ-data"));
    std::fs::create_dir_all(to.join("keys")).unwrap();
    for entry in ["audit.db", "writ.db", "keys/audit.key", "keys/master.key"] {
        if from.join(entry).exists() {
            std::fs::copy(from.join(entry), to.join(entry)).unwrap();
        }
    }
    assert_eq!(verify(copy.path()), original);
}

#[test]
fn serve_without_arguments_creates_private_state() {
    let dir = tempfile::tempdir().unwrap();
    // Port 0 instead of 8787 so tests never collide with a running gateway.
    let server = ServeProcess::start(Path::new(BIN), dir.path(), &["--listen", "127.0.0.1:0"]);
    assert!(
        server.banner().contains("upstreams: none"),
        "{}",
        server.banner()
    );
    let health = Command::new("curl")
        .args(["-sS", &server.url("/healthz")])
        .output()
        .unwrap();
    assert_eq!(
        String::from_utf8_lossy(&health.stdout),
        r#"{"status":"ok"}"#
    );
    let data = dir.path().join("writ-data");
    assert!(data.join("writ.db").exists());
    assert_eq!(
        std::fs::metadata(&data).unwrap().permissions().mode() & 0o777,
        0o700
    );
    for key in ["keys/root-1.key", "keys/master.key"] {
        let mode = std::fs::metadata(data.join(key))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600, "{key}");
    }
    // No demo agent without --demo: minting says why.
    let out = server.writ(&["token", "mint", "--agent", "demo", "--grant", GRANT]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("no agent `demo`"));
}

fn writ_in(dir: &Path, args: &[&str]) -> std::process::Output {
    Command::new(BIN)
        .args(args)
        .current_dir(dir)
        .env("WRIT_LOG", "warn")
        .output()
        .unwrap()
}

#[test]
fn cli_refuses_bad_arguments_clearly() {
    let dir = tempfile::tempdir().unwrap();
    let server = ServeProcess::start(
        Path::new(BIN),
        dir.path(),
        &["--demo", "--listen", "127.0.0.1:0"],
    );
    let cases: &[(&[&str], &str)] = &[
        (
            &["token", "mint", "--agent", "demo", "--grant", "not json"],
            "invalid --grant",
        ),
        (
            &[
                "token",
                "mint",
                "--agent",
                "demo",
                "--grant",
                r#"{"type":"writ:root"}"#,
            ],
            "invalid --grant",
        ),
        (
            &[
                "token", "mint", "--agent", "demo", "--grant", GRANT, "--ttl", "31s",
            ],
            "ttl",
        ),
        (
            &[
                "token", "mint", "--agent", "demo", "--grant", GRANT, "--ttl", "banana",
            ],
            "--ttl",
        ),
        (
            &["token", "mint", "--agent", "nobody", "--grant", GRANT],
            "no agent `nobody`",
        ),
        (&["token", "mint", "--agent", "demo"], "--grant"),
        // Last-wins would mint gpt-4o while whoever reviewed the command read gpt-4o-mini.
        (
            &[
                "token",
                "mint",
                "--agent",
                "demo",
                "--grant",
                r#"{"type":"writ:llm","upstream":"demo","models":["gpt-4o-mini"],"models":["gpt-4o"]}"#,
            ],
            "the key `models` more than once",
        ),
        (&["token", "inspect", "writ_garbage"], "malformed"),
        (&["serve", "--listen", "not-an-address"], "--listen"),
    ];
    for (args, expect) in cases {
        let out = server.writ(args);
        assert!(!out.status.success(), "{args:?} succeeded");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains(expect), "{args:?}: {err}");
        assert!(out.stdout.is_empty(), "{args:?} printed to stdout");
    }
}

#[test]
fn init_writes_a_config_that_serve_accepts() {
    let dir = tempfile::tempdir().unwrap();
    let out = writ_in(dir.path(), &["init"]);
    assert!(out.status.success());
    let again = writ_in(dir.path(), &["init"]);
    assert!(!again.status.success(), "init must not overwrite");
    assert!(String::from_utf8_lossy(&again.stderr).contains("--force"));
    let server = ServeProcess::start(
        Path::new(BIN),
        dir.path(),
        &["--config", "writ.toml", "--listen", "127.0.0.1:0"],
    );
    assert!(
        server.banner().contains("upstreams: none"),
        "no mock upstream unless asked for: {}",
        server.banner()
    );
    drop(server);
    // The demo's mock is started by `serve --demo`, on any config; `init` writes none.
    let out = writ_in(dir.path(), &["init", "--demo", "--force", "demo.toml"]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("writ serve --demo --config demo.toml"),
        "{err}"
    );
    assert!(!dir.path().join("demo.toml").exists());
    let server = ServeProcess::start(
        Path::new(BIN),
        dir.path(),
        &["--demo", "--config", "writ.toml", "--listen", "127.0.0.1:0"],
    );
    assert!(
        server.banner().contains("upstreams: demo (mock)"),
        "{}",
        server.banner()
    );
    let writ = server.mint(GRANT, "30s");
    let v = curl_chat(&server.url("/v1/chat/completions"), &writ, "gpt-4o-mini");
    assert_eq!(v["object"], "chat.completion", "{v}");
}

/// A config still declaring `kind = "mock"` (as `writ init --demo` once wrote) is refused
/// by every command that reads it, saying what replaces it; `config check` says so once.
#[test]
fn a_retired_mock_upstream_in_a_config_says_what_replaces_it() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("writ.toml"),
        "[server]\nlisten = \"127.0.0.1:0\"\n\n[upstreams.demo]\nkind = \"mock\"\n",
    )
    .unwrap();
    for args in [&["serve"][..], &["agent", "list"], &["config", "check"]] {
        let out = writ_in(dir.path(), args);
        assert!(!out.status.success(), "{args:?} accepted kind = \"mock\"");
        let said = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(said.contains("upstreams.demo.kind"), "{args:?}: {said}");
        assert!(said.contains("writ serve --demo"), "{args:?}: {said}");
        assert!(!said.contains("unknown kind"), "{args:?}: {said}");
    }
}

#[test]
fn bad_config_files_are_refused_with_the_cause() {
    let dir = tempfile::tempdir().unwrap();
    let cases = [
        ("[server]\nlisen = \"x\"\n", "lisen"),
        (
            "[upstreams.o]\nkind = \"openai\"\napi_key = \"${env:WRIT_TEST_SURELY_UNSET}\"\n",
            "WRIT_TEST_SURELY_UNSET",
        ),
        ("this is = = not toml", "invalid config"),
        (
            &format!("[server]\nlisten = \"{}\"\n", "9".repeat(100_000)),
            "server.listen",
        ),
    ];
    for (text, expect) in cases {
        std::fs::write(dir.path().join("bad.toml"), text).unwrap();
        let out = writ_in(
            dir.path(),
            &["serve", "--config", "bad.toml", "--listen", "127.0.0.1:0"],
        );
        assert!(!out.status.success());
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains(expect), "{expect}: {err}");
    }
    let out = writ_in(dir.path(), &["serve", "--config", "missing.toml"]);
    assert!(String::from_utf8_lossy(&out.stderr).contains("cannot read config"));
}

/// Stops `writ serve` run under `timeout` and waits for it: SIGTERM to `timeout`, which
/// passes it on to the server (a SIGKILL would end `timeout` alone and leave the server
/// running after the test, holding its ports).
fn stop_timed(child: &mut std::process::Child) -> std::process::ExitStatus {
    // Fails only if it has exited already, which the wait below then reports.
    let _ = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status();
    child.wait().unwrap()
}

/// Log lines: text without colour codes when standard error is not a terminal, one JSON
/// object per line with `WRIT_LOG_FORMAT=json`, and a clear refusal of another format.
#[test]
fn logs_are_plain_text_or_json_as_asked() {
    use std::io::{BufRead, BufReader};
    let dir = tempfile::tempdir().unwrap();
    // The server's log up to its "audit log started" line (or its end), then it is
    // stopped; `timeout` bounds a server that never says it.
    let log = |format: Option<&str>| {
        let mut cmd = Command::new("timeout");
        cmd.args(["30", BIN, "serve", "--demo", "--listen", "127.0.0.1:0"])
            .current_dir(dir.path())
            .env("WRIT_LOG", "info")
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::piped());
        if let Some(format) = format {
            cmd.env("WRIT_LOG_FORMAT", format);
        }
        let mut child = cmd.spawn().unwrap();
        let mut lines = Vec::new();
        for line in BufReader::new(child.stderr.take().unwrap()).lines() {
            let line = line.unwrap();
            let done = line.contains("audit log started");
            lines.push(line);
            if done {
                break;
            }
        }
        let status = stop_timed(&mut child);
        (status, lines)
    };
    let (_, text) = log(None);
    let started = text
        .iter()
        .find(|l| l.contains("audit log started"))
        .unwrap_or_else(|| panic!("{text:?}"));
    assert!(started.contains(" INFO "), "{started}");
    assert!(
        !text.iter().any(|l| l.contains('\u{1b}')),
        "no colour codes off a terminal: {text:?}"
    );

    let (_, json) = log(Some("json"));
    let started = json
        .iter()
        .find(|l| l.contains("audit log started"))
        .unwrap_or_else(|| panic!("{json:?}"));
    let line: serde_json::Value = serde_json::from_str(started).unwrap();
    assert_eq!(line["level"], "INFO", "{line}");
    assert_eq!(line["fields"]["message"], "audit log started", "{line}");

    // `[log] format` in the config, when the environment does not say.
    std::fs::write(dir.path().join("writ.toml"), "[log]\nformat = \"json\"\n").unwrap();
    let (_, configured) = log(None);
    let started = configured
        .iter()
        .find(|l| l.contains("audit log started"))
        .unwrap_or_else(|| panic!("{configured:?}"));
    assert!(
        serde_json::from_str::<serde_json::Value>(started).is_ok(),
        "{started}"
    );
    std::fs::remove_file(dir.path().join("writ.toml")).unwrap();

    let (status, bad) = log(Some("xml"));
    assert!(!status.success());
    let said = bad.join("\n");
    assert!(
        said.contains("WRIT_LOG_FORMAT") && said.contains("json or text"),
        "{said}"
    );
}

/// `[log] requests = true`: one line per request, as its audit record has it — the writ by
/// pseudonym, never the writ itself or the prompt.
#[test]
fn a_line_per_request_when_asked() {
    use std::io::{BufRead, BufReader};
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("writ.toml"),
        "[log]\nformat = \"json\"\nrequests = true\n",
    )
    .unwrap();
    let mut child = Command::new("timeout")
        .args(["30", BIN, "serve", "--demo", "--listen", "127.0.0.1:0"])
        .current_dir(dir.path())
        .env("WRIT_LOG", "info")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdout = BufReader::new(child.stdout.take().unwrap()).lines();
    let url = loop {
        let line = stdout.next().expect("the banner").unwrap();
        if let Some(url) = line.split("listening on ").nth(1) {
            break url.trim().to_string();
        }
    };
    let minted = writ_in(
        dir.path(),
        &["token", "mint", "--agent", "demo", "--grant", GRANT],
    );
    let writ = String::from_utf8(minted.stdout).unwrap().trim().to_string();
    curl_chat(&format!("{url}/v1/chat/completions"), &writ, "gpt-4o-mini");
    let mut logged = None;
    for line in BufReader::new(child.stderr.take().unwrap()).lines() {
        let line = line.unwrap();
        if line.contains("writ::request") {
            logged = Some(line);
            break;
        }
    }
    let _ = stop_timed(&mut child);
    let line = logged.expect("a request line");
    assert!(!line.contains(&writ) && !line.contains("Hello!"), "{line}");
    let line: Value = serde_json::from_str(&line).unwrap();
    let fields = &line["fields"];
    assert_eq!(fields["agent"], "demo", "{line}");
    assert_eq!(fields["upstream"], "demo", "{line}");
    assert_eq!(fields["status"], 200, "{line}");
    assert_eq!(
        fields["writ"].as_str().unwrap().len(),
        32,
        "a pseudonym: {line}"
    );
    assert!(fields["output_tokens"].as_u64().unwrap() > 0, "{line}");
}
