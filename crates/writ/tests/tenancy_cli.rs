//! `writ tenant|upstream|secret|policy|limit` against a running gateway: what they change
//! is there through the admin API, `--output json` is the API's JSON, a secret goes in
//! through stdin only and comes out nowhere, and refusals are the gateway's words with a
//! failing exit code.
#![allow(clippy::unwrap_used)]

use std::io::Write;
use std::path::Path;
use std::process::{Command, Output, Stdio};

use serde_json::Value;
use writ_testkit::{OPERATOR, ServeProcess};

const BIN: &str = env!("CARGO_BIN_EXE_writ");

fn start(dir: &Path) -> ServeProcess {
    ServeProcess::start(Path::new(BIN), dir, &["--demo", "--listen", "127.0.0.1:0"])
}

/// `writ <args> --gateway <server>` in the server's directory.
fn writ(server: &ServeProcess, args: &[&str]) -> Output {
    let gateway = server.url("");
    let mut all = args.to_vec();
    all.extend(["--gateway", gateway.as_str()]);
    server.writ(&all)
}

/// `writ <args> --gateway <server>` with `input` on its stdin (a pipe, not a terminal).
fn writ_with_stdin(dir: &Path, server: &ServeProcess, args: &[&str], input: &[u8]) -> Output {
    let mut child = Command::new(BIN)
        .args(args)
        .args(["--gateway", &server.url("")])
        .current_dir(dir)
        .env("WRIT_LOG", "warn")
        .env("WRIT_OPERATOR", OPERATOR)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(input).unwrap();
    child.wait_with_output().unwrap()
}

fn ok(out: Output) -> String {
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

fn json(out: Output) -> Value {
    let text = ok(out);
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("not JSON ({e}): {text}"))
}

/// The stderr of a command that must fail, with nothing on stdout.
fn refused(out: Output) -> String {
    let stderr = String::from_utf8(out.stderr).unwrap();
    assert!(!out.status.success(), "succeeded; stderr: {stderr}");
    assert!(
        out.stdout.is_empty(),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    stderr
}

/// Every output of `outs` as text, to search for what must not be there.
fn all_output(outs: &[&Output]) -> String {
    outs.iter()
        .map(|o| {
            format!(
                "{}{}",
                String::from_utf8_lossy(&o.stdout),
                String::from_utf8_lossy(&o.stderr)
            )
        })
        .collect()
}

/// Whether any file under `dir` holds `needle`.
fn any_file_holds(dir: &Path, needle: &[u8]) -> bool {
    std::fs::read_dir(dir).unwrap().any(|entry| {
        let path = entry.unwrap().path();
        if path.is_dir() {
            return any_file_holds(&path, needle);
        }
        let bytes = std::fs::read(&path).unwrap_or_default();
        bytes.windows(needle.len()).any(|w| w == needle)
    })
}

#[test]
fn tenants_upstreams_and_secrets_are_managed_through_the_gateway() {
    let dir = tempfile::tempdir().unwrap();
    let server = start(dir.path());

    // A tenant.
    let added = ok(writ(
        &server,
        &["tenant", "add", "acme", "--display-name", "Acme Inc"],
    ));
    assert!(added.starts_with("added tenant acme (Acme Inc)"), "{added}");
    let listed = json(writ(&server, &["tenant", "list", "--output", "json"]));
    let acme = listed["tenants"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["name"] == "acme")
        .unwrap_or_else(|| panic!("acme not listed: {listed}"));
    assert_eq!(acme["display_name"], "Acme Inc");
    assert_eq!(acme["declared"], false);
    let table = ok(writ(&server, &["tenant", "list"]));
    assert!(table.starts_with("NAME"), "{table}");
    assert!(
        table.contains("acme") && table.contains("Acme Inc"),
        "{table}"
    );
    let duplicate = refused(writ(&server, &["tenant", "add", "acme"]));
    assert!(duplicate.contains("no tenant was added"), "{duplicate}");
    assert!(duplicate.contains("409"), "{duplicate}");

    // Its own upstream: settings from flags, shown back, updated in place.
    let upstream = json(writ(
        &server,
        &[
            "upstream",
            "add",
            "llm",
            "--kind",
            "openai",
            "--tenant",
            "acme",
            "--set",
            "timeout=30s",
            "--output",
            "json",
        ],
    ));
    assert_eq!(upstream["name"], "llm");
    assert_eq!(upstream["tenant"], "acme");
    assert_eq!(upstream["shared"], false);
    assert_eq!(upstream["kind"], "openai");
    assert_eq!(upstream["settings"]["timeout"], "30s");
    ok(writ(
        &server,
        &[
            "upstream",
            "update",
            "llm",
            "--tenant",
            "acme",
            "--set",
            "read_timeout=20s",
        ],
    ));
    let shown = json(writ(
        &server,
        &[
            "upstream", "show", "llm", "--tenant", "acme", "--output", "json",
        ],
    ));
    assert_eq!(shown["settings"]["timeout"], "30s", "kept: {shown}");
    assert_eq!(shown["settings"]["read_timeout"], "20s", "{shown}");
    let listed = json(writ(
        &server,
        &["upstream", "list", "--tenant", "acme", "--output", "json"],
    ));
    assert!(
        listed["upstreams"]
            .as_array()
            .unwrap()
            .iter()
            .any(|u| u["name"] == "llm" && u["tenant"] == "acme"),
        "{listed}"
    );
    let private = refused(writ(
        &server,
        &[
            "upstream",
            "add",
            "inside",
            "--kind",
            "openai",
            "--tenant",
            "acme",
            "--base-url",
            "http://169.254.169.254/v1",
        ],
    ));
    assert!(private.contains("no upstream was added"), "{private}");
    assert!(
        private.contains("400") && private.contains("base_url"),
        "{private}"
    );

    // A credential, from stdin only: versions and fingerprints come back, the secret never.
    const FIRST: &str = "sk-tenancy-cli-first-0123456789abcdef";
    const SECOND: &str = "sk-tenancy-cli-second-fedcba9876543210";
    let set_first = writ_with_stdin(
        dir.path(),
        &server,
        &["secret", "set", "llm", "--tenant", "acme"],
        format!("{FIRST}\n").as_bytes(),
    );
    let said = String::from_utf8_lossy(&set_first.stdout).to_string();
    assert!(set_first.status.success(), "{}", all_output(&[&set_first]));
    let first_fp = writ_providers::UpstreamSecret::new(FIRST).fingerprint();
    assert!(said.contains("stored version 1"), "{said}");
    assert!(
        said.contains(&first_fp),
        "the fingerprint of the secret sent: {said}"
    );
    let set_second = writ_with_stdin(
        dir.path(),
        &server,
        &[
            "secret", "set", "llm", "--tenant", "acme", "--output", "json",
        ],
        SECOND.as_bytes(),
    );
    assert!(
        set_second.status.success(),
        "{}",
        all_output(&[&set_second])
    );
    let second: Value = serde_json::from_slice(&set_second.stdout).unwrap();
    assert_eq!(second["version"], 2);
    assert_eq!(second["active"], true);
    assert_eq!(
        second["fingerprint"],
        writ_providers::UpstreamSecret::new(SECOND).fingerprint()
    );
    let versions = writ(
        &server,
        &[
            "secret", "list", "llm", "--tenant", "acme", "--output", "json",
        ],
    );
    let listed: Value = serde_json::from_slice(&versions.stdout).unwrap();
    let active: Vec<&Value> = listed["versions"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|v| v["active"] == true)
        .collect();
    assert_eq!(active.len(), 1, "{listed}");
    assert_eq!(active[0]["version"], 2);
    // Roll back to 1, retire 2; the active one cannot be retired.
    let rolled = writ(
        &server,
        &["secret", "activate", "llm", "1", "--tenant", "acme"],
    );
    let refused_retire = writ(
        &server,
        &["secret", "retire", "llm", "1", "--tenant", "acme"],
    );
    let retired = writ(
        &server,
        &["secret", "retire", "llm", "2", "--tenant", "acme"],
    );
    let table = writ(&server, &["secret", "list", "llm", "--tenant", "acme"]);
    assert!(rolled.status.success(), "{}", all_output(&[&rolled]));
    assert!(!refused_retire.status.success());
    assert!(
        all_output(&[&refused_retire]).contains("409"),
        "{}",
        all_output(&[&refused_retire])
    );
    assert!(retired.status.success(), "{}", all_output(&[&retired]));
    let table_text = String::from_utf8_lossy(&table.stdout).to_string();
    assert!(table_text.starts_with("VERSION"), "{table_text}");
    assert!(table_text.contains(&first_fp), "{table_text}");
    let rewrapped = json(writ(&server, &["secret", "rewrap", "--output", "json"]));
    assert!(rewrapped["rewrapped"].as_u64().is_some(), "{rewrapped}");
    assert!(rewrapped["master_kid"].is_string(), "{rewrapped}");

    // Neither secret appears in anything printed, nor in any file of the data directory.
    let outputs = all_output(&[
        &set_first,
        &set_second,
        &versions,
        &rolled,
        &refused_retire,
        &retired,
        &table,
    ]);
    for secret in [FIRST, SECOND] {
        assert!(!outputs.contains(secret), "a secret was printed");
        assert!(
            !any_file_holds(&dir.path().join("writ-data"), secret.as_bytes()),
            "a secret is in the data directory in clear"
        );
    }

    // Deleting the upstream takes its credentials; then the tenant can go.
    ok(writ(
        &server,
        &["upstream", "delete", "llm", "--tenant", "acme"],
    ));
    let gone = refused(writ(
        &server,
        &["upstream", "show", "llm", "--tenant", "acme"],
    ));
    assert!(gone.contains("404"), "{gone}");
    let deleted = writ(&server, &["tenant", "delete", "acme", "--output", "json"]);
    assert!(deleted.status.success(), "{}", all_output(&[&deleted]));
    assert!(
        deleted.stdout.is_empty(),
        "a deletion answers nothing in JSON"
    );
    let gone = refused(writ(&server, &["tenant", "show", "acme"]));
    assert!(gone.contains("refused (404"), "{gone}");
}

#[test]
fn a_secret_cannot_be_given_on_the_command_line_and_an_empty_one_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let server = start(dir.path());
    ok(writ(&server, &["tenant", "add", "acme"]));
    ok(writ(
        &server,
        &[
            "upstream", "add", "llm", "--kind", "openai", "--tenant", "acme",
        ],
    ));

    // No argument or flag takes it: each attempt is a usage error and stores nothing.
    for attempt in [
        &["secret", "set", "llm", "sk-on-argv", "--tenant", "acme"][..],
        &[
            "secret",
            "set",
            "llm",
            "--tenant",
            "acme",
            "--secret",
            "sk-on-argv",
        ],
        &[
            "secret",
            "set",
            "llm",
            "--tenant",
            "acme",
            "--value=sk-on-argv",
        ],
    ] {
        let out = writ_with_stdin(dir.path(), &server, attempt, b"");
        assert_eq!(out.status.code(), Some(2), "a usage error: {attempt:?}");
    }
    let help = ok(server.writ(&["secret", "set", "--help"]));
    assert!(help.contains("standard input"), "{help}");

    for empty in [&b""[..], b"\n", b"\r\n"] {
        let stderr = refused(writ_with_stdin(
            dir.path(),
            &server,
            &["secret", "set", "llm", "--tenant", "acme"],
            empty,
        ));
        assert!(stderr.contains("no secret on standard input"), "{stderr}");
    }
    let versions = json(writ(
        &server,
        &[
            "secret", "list", "llm", "--tenant", "acme", "--output", "json",
        ],
    ));
    assert_eq!(
        versions["versions"],
        serde_json::json!([]),
        "nothing stored"
    );
}

#[test]
fn policies_and_limits_are_set_shown_and_deleted() {
    let dir = tempfile::tempdir().unwrap();
    let server = start(dir.path());
    ok(writ(&server, &["tenant", "add", "acme"]));

    // A policy from a file, another from stdin.
    let file = dir.path().join("no-gpt4.datalog");
    std::fs::write(&file, "reject if model(\"gpt-4\");\n").unwrap();
    let set = ok(writ(
        &server,
        &[
            "policy",
            "set",
            "no-gpt4",
            "--tenant",
            "acme",
            "--file",
            file.to_str().unwrap(),
        ],
    ));
    assert!(set.contains("set policy no-gpt4 of tenant acme"), "{set}");
    let from_stdin = writ_with_stdin(
        dir.path(),
        &server,
        &["policy", "set", "chat-only", "--tenant", "acme"],
        b"check if operation(\"chat\");\n",
    );
    assert!(
        from_stdin.status.success(),
        "{}",
        all_output(&[&from_stdin])
    );
    let shown = ok(writ(
        &server,
        &["policy", "show", "no-gpt4", "--tenant", "acme"],
    ));
    assert!(shown.contains("reject if model(\"gpt-4\");"), "{shown}");
    let listed = json(writ(
        &server,
        &["policy", "list", "--tenant", "acme", "--output", "json"],
    ));
    let names: Vec<&str> = listed["policies"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["name"].as_str().unwrap())
        .collect();
    assert_eq!(names.len(), 2, "{listed}");
    assert!(names.contains(&"no-gpt4") && names.contains(&"chat-only"));
    let bad = writ_with_stdin(
        dir.path(),
        &server,
        &["policy", "set", "bad", "--tenant", "acme"],
        b"allow if true;\n",
    );
    let stderr = refused(bad);
    assert!(
        stderr.contains("the policy was not set") && stderr.contains("400"),
        "{stderr}"
    );
    ok(writ(
        &server,
        &["policy", "delete", "chat-only", "--tenant", "acme"],
    ));
    let gone = refused(writ(
        &server,
        &["policy", "show", "chat-only", "--tenant", "acme"],
    ));
    assert!(gone.contains("404"), "{gone}");

    // A limit from --set keys.
    let limit = json(writ(
        &server,
        &[
            "limit",
            "set",
            "rpm",
            "--tenant",
            "acme",
            "--set",
            "scope=agent",
            "--set",
            "dimension=requests",
            "--set",
            "per=minute",
            "--set",
            "limit=100",
            "--output",
            "json",
        ],
    ));
    assert_eq!(limit["name"], "rpm");
    assert_eq!(limit["spec"]["limit"], 100);
    assert_eq!(limit["spec"]["per"], "minute");
    let shown = ok(writ(&server, &["limit", "list", "--tenant", "acme"]));
    assert!(
        shown.contains("rpm") && shown.contains("limit=100"),
        "{shown}"
    );
    ok(writ(
        &server,
        &["limit", "delete", "rpm", "--tenant", "acme"],
    ));
    let listed = json(writ(
        &server,
        &["limit", "list", "--tenant", "acme", "--output", "json"],
    ));
    assert_eq!(listed["limits"], serde_json::json!([]));
}

#[test]
fn unknown_tenants_and_a_stopped_gateway_are_refused_in_words() {
    let dir = tempfile::tempdir().unwrap();
    let server = start(dir.path());

    let no_upstream = refused(writ(
        &server,
        &[
            "upstream", "add", "llm", "--kind", "openai", "--tenant", "nope",
        ],
    ));
    assert!(
        no_upstream.contains("no upstream was added"),
        "{no_upstream}"
    );
    assert!(
        no_upstream.contains("nope"),
        "names the tenant: {no_upstream}"
    );
    let no_secret = refused(writ_with_stdin(
        dir.path(),
        &server,
        &["secret", "set", "demo", "--tenant", "nope"],
        b"sk-for-nobody\n",
    ));
    assert!(
        no_secret.contains("no credential was stored"),
        "{no_secret}"
    );
    assert!(!no_secret.contains("sk-for-nobody"), "{no_secret}");
    for args in [
        &["tenant", "show", "nope"][..],
        &["tenant", "delete", "nope"],
        &["policy", "list", "--tenant", "nope"],
        &["limit", "show", "x", "--tenant", "nope"],
    ] {
        let stderr = refused(writ(&server, args));
        assert!(stderr.contains("refused (404"), "{args:?}: {stderr}");
    }
    let invalid = refused(writ(&server, &["tenant", "add", "not/a/name"]));
    assert!(invalid.contains("invalid tenant name"), "{invalid}");

    // No gateway there: say how to start one.
    let closed = writ_testkit::closed_port_url();
    let out = server.writ(&["tenant", "list", "--gateway", &closed]);
    let stderr = refused(out);
    assert!(stderr.contains("is `writ serve` running"), "{stderr}");
}

#[test]
fn a_secret_set_through_the_cli_is_the_key_the_tenants_requests_carry() {
    const FILE_KEY: &str = "sk-file-key-0123456789";
    const ACME_KEY: &str = "sk-acme-from-stdin-0123456789";
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let mock = runtime.block_on(writ_testkit::MockUpstream::start_accepting(&[
        FILE_KEY, ACME_KEY,
    ]));
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("writ.toml"),
        format!(
            "[upstreams.openai]\nkind = \"openai\"\nbase_url = \"{}\"\nallow_private_network = true\n\
             api_key = \"{FILE_KEY}\"\n\n[tenants.acme]\n",
            mock.base_url()
        ),
    )
    .unwrap();
    let server = ServeProcess::start(Path::new(BIN), dir.path(), &["--listen", "127.0.0.1:0"]);
    let ceiling = r#"{"type":"writ:llm","upstream":"openai"}"#;
    ok(server.writ(&[
        "agent",
        "add",
        "bot",
        "--tenant",
        "acme",
        "--ceiling",
        ceiling,
    ]));
    let set = writ_with_stdin(
        dir.path(),
        &server,
        &["secret", "set", "openai", "--tenant", "acme"],
        format!("{ACME_KEY}\n").as_bytes(),
    );
    assert!(set.status.success(), "{}", all_output(&[&set]));
    let writ = ok(server.writ(&[
        "token", "mint", "--agent", "bot", "--tenant", "acme", "--grant", ceiling,
    ]));
    let out = Command::new("curl")
        .args(["-sS", &server.url("/v1/chat/completions"), "-H"])
        .arg(format!("Authorization: Bearer {}", writ.trim()))
        .args(["-H", "Content-Type: application/json", "-d"])
        .arg(r#"{"model":"gpt-4o-mini","messages":[{"role":"user","content":"hi"}]}"#)
        .output()
        .unwrap();
    let answer: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(answer["object"], "chat.completion", "{answer}");
    let seen: Vec<String> = mock
        .requests()
        .iter()
        .map(|r| r.headers["authorization"].to_str().unwrap().to_string())
        .collect();
    assert_eq!(seen, vec![format!("Bearer {ACME_KEY}")]);
    drop(server);
    drop(runtime);
}
