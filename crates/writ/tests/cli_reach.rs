//! The CLI finds its gateway and its state, and never reports success it did not
//! achieve: revocation and key rotation over TLS with a private CA, a stopped gateway
//! (an error unless `--offline`), commands run in the wrong directory (nothing created),
//! operator commands in a shell without provider keys, and `writ config check`.
#![allow(clippy::unwrap_used)]

use std::path::Path;
use std::process::{Command, Output};

use serde_json::Value;
use writ_testkit::{ServeProcess, TestCertificates};

const BIN: &str = env!("CARGO_BIN_EXE_writ");
const LLM: &str = r#"{"type":"writ:llm","upstream":"demo","models":["gpt-4o-mini"]}"#;

/// A port nothing listens on right now, for a config's `listen` (the CLI derives the
/// gateway's URL from it, so it cannot be port 0).
fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// `writ <args>` in `dir`, with no WRIT_CONFIG inherited.
fn run(dir: &Path, args: &[&str]) -> Output {
    Command::new(BIN)
        .args(args)
        .current_dir(dir)
        .env("WRIT_LOG", "warn")
        .env_remove("WRIT_CONFIG")
        .output()
        .unwrap()
}

/// `writ <args>` in `dir` in a shell holding only PATH and HOME: no provider key.
fn writ_bare(dir: &Path, args: &[&str]) -> Output {
    Command::new(BIN)
        .args(args)
        .current_dir(dir)
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("HOME", dir)
        .env("WRIT_LOG", "warn")
        .output()
        .unwrap()
}

fn ok(out: Output) -> String {
    assert!(
        out.status.success(),
        "stdout: {}\nstderr: {}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

/// Stderr of a command that must fail with exit code 1 (not a clap error, not a panic).
fn fails(out: Output) -> String {
    let err = String::from_utf8_lossy(&out.stderr).into_owned();
    assert_eq!(
        out.status.code(),
        Some(1),
        "stdout: {}\nstderr: {err}",
        String::from_utf8_lossy(&out.stdout)
    );
    assert!(!err.contains("panicked"), "{err}");
    err
}

/// A chat request through the gateway, trusting `ca` for HTTPS.
fn chat(server: &ServeProcess, ca: Option<&Path>, writ: &str) -> Value {
    let mut cmd = Command::new("curl");
    // HTTP/1.1: over HTTP/2 the gateway answers a refused writ before reading the body
    // and resets the stream, which curl 7.88 can report as a framing error when it has
    // not finished sending the body (a race seen under load).
    cmd.args(["-sS", "--http1.1", &server.url("/v1/chat/completions")]);
    if let Some(ca) = ca {
        cmd.arg("--cacert").arg(ca);
    }
    let out = cmd
        .args(["-H", &format!("Authorization: Bearer {writ}")])
        .args(["-H", "Content-Type: application/json", "-d"])
        .arg(r#"{"model":"gpt-4o-mini","messages":[{"role":"user","content":"hi"}]}"#)
        .output()
        .unwrap();
    serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|_| panic!("{}", String::from_utf8_lossy(&out.stderr)))
}

fn token_id(server: &ServeProcess, writ: &str) -> String {
    ok(server.writ(&["token", "inspect", writ]))
        .lines()
        .find_map(|l| l.strip_prefix("token id: "))
        .unwrap()
        .to_string()
}

/// A `./writ.toml` serving HTTPS on a fixed loopback port with `certs`, and the gateway
/// started from it (found as `./writ.toml`, as the CLI finds it).
fn tls_gateway(dir: &Path, certs: &TestCertificates) -> ServeProcess {
    std::fs::write(
        dir.join("writ.toml"),
        format!(
            "[server]\nlisten = \"127.0.0.1:{}\"\ntls_cert = \"{}\"\ntls_key = \"{}\"\n",
            free_port(),
            certs.cert.display(),
            certs.key.display()
        ),
    )
    .unwrap();
    let server = ServeProcess::start(Path::new(BIN), dir, &["--demo"]);
    assert!(
        server.url("").starts_with("https://"),
        "{}",
        server.banner()
    );
    server
}

#[test]
fn revocation_over_tls_needs_the_ca_and_takes_effect_at_once() {
    let dir = tempfile::tempdir().unwrap();
    let certs = TestCertificates::generate();
    let server = tls_gateway(dir.path(), &certs);
    let ca = certs.ca.to_str().unwrap();
    let writ = server.mint(LLM, "30s");
    let id = token_id(&server, &writ);
    assert_eq!(
        chat(&server, Some(&certs.ca), &writ)["object"],
        "chat.completion"
    );

    // No CA: the public roots do not know the private CA. The failure is named, and
    // nothing is recorded: the writ keeps working.
    let err = fails(server.writ(&["revoke", "--token-id", &id]));
    assert!(
        err.contains("https://127.0.0.1:"),
        "the scheme comes from the config: {err}"
    );
    assert!(err.contains("TLS") && err.contains("unknown CA"), "{err}");
    assert!(err.contains("nothing was revoked or recorded"), "{err}");
    // Another CA: the same.
    let other = TestCertificates::generate();
    let err = fails(server.writ(&[
        "revoke",
        "--token-id",
        &id,
        "--ca-file",
        other.ca.to_str().unwrap(),
    ]));
    assert!(err.contains("unknown CA"), "{err}");
    assert_eq!(
        chat(&server, Some(&certs.ca), &writ)["object"],
        "chat.completion"
    );

    // The right CA: revoked, at once.
    let out = ok(server.writ(&["revoke", "--token-id", &id, "--ca-file", ca]));
    assert!(out.contains("effective now at https://127.0.0.1:"), "{out}");
    assert_eq!(
        chat(&server, Some(&certs.ca), &writ)["error"]["code"],
        "revoked_writ"
    );

    // The CA named in the config does as well as --ca-file.
    let config = std::fs::read_to_string(dir.path().join("writ.toml")).unwrap();
    std::fs::write(
        dir.path().join("writ.toml"),
        format!("{config}tls_ca = \"{ca}\"\n"),
    )
    .unwrap();
    let second = server.mint(LLM, "30s");
    let id = token_id(&server, &second);
    ok(server.writ(&["revoke", "--token-id", &id]));
    assert_eq!(
        chat(&server, Some(&certs.ca), &second)["error"]["code"],
        "revoked_writ"
    );
}

#[test]
fn key_rotation_over_tls_is_trusted_by_the_running_gateway() {
    let dir = tempfile::tempdir().unwrap();
    let certs = TestCertificates::generate();
    let server = tls_gateway(dir.path(), &certs);
    let ca = certs.ca.to_str().unwrap();
    let old = server.mint(LLM, "30s");

    let err = fails(server.writ(&["keys", "rotate"]));
    assert!(
        err.contains("unknown CA") && err.contains("no key was rotated"),
        "{err}"
    );
    assert!(
        !ok(server.writ(&["keys", "list"])).contains("2\ted25519"),
        "a failed rotation leaves the keys alone"
    );

    let out = ok(server.writ(&["keys", "rotate", "--ca-file", ca]));
    assert!(out.contains("new signing key: id 2"), "{out}");
    let new = server.mint(LLM, "30s");
    assert!(ok(server.writ(&["token", "inspect", &new])).contains("root key id 2"));
    assert_eq!(
        chat(&server, Some(&certs.ca), &new)["object"],
        "chat.completion",
        "the running gateway verifies writs of the new key"
    );
    let out = ok(server.writ(&["keys", "retire", "1", "--ca-file", ca]));
    assert!(out.contains("no longer trusts it"), "{out}");
    assert_eq!(
        chat(&server, Some(&certs.ca), &old)["error"]["code"],
        "invalid_signature"
    );
    let out = ok(server.writ(&["keys", "reload", "--ca-file", ca]));
    assert!(out.contains("signing key id 2"), "{out}");
}

#[test]
fn a_stopped_gateway_is_an_error_unless_offline() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    std::fs::write(
        dir.path().join("writ.toml"),
        format!("[server]\nlisten = \"127.0.0.1:{port}\"\n"),
    )
    .unwrap();
    let start = || ServeProcess::start(Path::new(BIN), dir.path(), &["--demo"]);
    let server = start();
    let writ = server.mint(LLM, "30s");
    let id = token_id(&server, &writ);
    server.stop();

    let err = fails(run(dir.path(), &["revoke", "--token-id", &id]));
    assert!(
        err.contains(&format!("http://127.0.0.1:{port}")) && err.contains("connection refused"),
        "{err}"
    );
    assert!(
        err.contains("--offline records it for its next start"),
        "{err}"
    );
    let err = fails(run(dir.path(), &["keys", "rotate"]));
    assert!(err.contains("connection refused"), "{err}");
    let err = fails(run(dir.path(), &["keys", "retire", "1"]));
    assert!(
        err.contains("key id 1 is not a retirable key"),
        "checked before the gateway is asked: {err}"
    );

    // Nothing was recorded: the writ still works after a restart.
    let server = start();
    assert_eq!(chat(&server, None, &writ)["object"], "chat.completion");
    assert!(!ok(server.writ(&["keys", "list"])).contains("2\ted25519"));
    server.stop();

    // --offline records both, and says the gateway applies them when it starts.
    let out = ok(run(dir.path(), &["revoke", "--token-id", &id, "--offline"]));
    assert!(out.contains("applied when a gateway starts"), "{out}");
    let out = ok(run(dir.path(), &["keys", "rotate", "--offline"]));
    assert!(
        out.contains("new signing key: id 2") && out.contains("--offline"),
        "{out}"
    );
    let server = start();
    assert_eq!(chat(&server, None, &writ)["error"]["code"], "revoked_writ");
    let new = server.mint(LLM, "30s");
    assert!(ok(server.writ(&["token", "inspect", &new])).contains("root key id 2"));
    // --offline and a gateway to tell contradict each other.
    let out = run(
        dir.path(),
        &[
            "revoke",
            "--token-id",
            &id,
            "--offline",
            "--gateway",
            "http://x",
        ],
    );
    assert_eq!(out.status.code(), Some(2));
}

#[test]
fn commands_in_a_directory_without_gateway_state_create_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let commands: Vec<Vec<&str>> = vec![
        vec!["token", "inspect", "writ_abc"],
        vec!["token", "mint", "--agent", "demo", "--grant", LLM],
        vec!["agent", "add", "bot", "--ceiling", LLM],
        vec!["agent", "list"],
        vec!["agent", "show", "bot"],
        vec!["admin", "token"],
        vec!["keys", "list"],
        vec!["keys", "rotate"],
        vec!["keys", "rotate", "--offline"],
        vec!["keys", "retire", "1", "--offline"],
        vec!["keys", "reload"],
        vec!["revoke", "--agent", "bot"],
        vec!["revoke", "--agent", "bot", "--offline"],
        vec!["audit", "verify"],
        vec!["audit", "key"],
    ];
    for args in &commands {
        let err = fails(run(dir.path(), args));
        assert!(
            err.contains("no writ data directory at")
                && err.contains("run it where the gateway runs or pass --data-dir"),
            "{args:?}: {err}"
        );
        assert!(
            err.contains("no writ.toml; using embedded defaults, data dir ./writ-data"),
            "{args:?} says which config it used: {err}"
        );
        assert!(
            !dir.path().join("writ-data").exists(),
            "{args:?} created a data directory"
        );
    }
    // A data directory whose keys are missing: read, never generated.
    let keys = dir.path().join("writ-data/keys");
    std::fs::create_dir_all(&keys).unwrap();
    for args in [
        vec!["token", "inspect", "writ_abc"],
        vec!["token", "mint", "--agent", "demo", "--grant", LLM],
        vec!["admin", "token"],
        vec!["keys", "list"],
        vec!["keys", "rotate", "--offline"],
        vec!["revoke", "--agent", "bot"],
        vec!["audit", "key"],
    ] {
        let err = fails(run(dir.path(), &args));
        assert!(err.contains("created by `writ serve`"), "{args:?}: {err}");
        assert_eq!(
            std::fs::read_dir(&keys).unwrap().count(),
            0,
            "{args:?} created a key"
        );
    }
}

/// A config referencing provider keys, and the same gateway's config without them for
/// `writ serve --demo` to run on (the test's own environment has no provider key either).
fn configs(dir: &Path, port: u16) {
    let server = format!("[server]\nlisten = \"127.0.0.1:{port}\"\n");
    std::fs::write(dir.join("serve.toml"), &server).unwrap();
    std::fs::write(
        dir.join("writ.toml"),
        format!(
            "{server}\n[upstreams.openai]\nkind = \"openai\"\napi_key = \"${{env:OPENAI_API_KEY}}\"\n"
        ),
    )
    .unwrap();
}

#[test]
fn operator_commands_need_no_provider_keys() {
    let dir = tempfile::tempdir().unwrap();
    configs(dir.path(), free_port());
    let server = ServeProcess::start(
        Path::new(BIN),
        dir.path(),
        &["--demo", "--config", "serve.toml"],
    );
    let d = dir.path();
    let out = writ_bare(d, &["agent", "add", "bot", "--ceiling", LLM]);
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("using config writ.toml"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    ok(out);
    assert!(ok(writ_bare(d, &["agent", "list"])).contains("default/bot"));
    assert!(ok(writ_bare(d, &["agent", "show", "bot"])).contains("gpt-4o-mini"));
    let minted = ok(writ_bare(
        d,
        &["token", "mint", "--agent", "bot", "--grant", LLM],
    ));
    assert!(minted.starts_with("writ_"), "{minted}");
    assert!(ok(writ_bare(d, &["admin", "token"])).starts_with("writ_"));
    assert!(ok(writ_bare(d, &["keys", "list"])).contains("1\ted25519"));
    let out = ok(writ_bare(d, &["revoke", "--agent", "bot"]));
    assert!(out.contains("effective now at http://127.0.0.1:"), "{out}");
    assert_eq!(
        chat(&server, None, minted.trim())["error"]["code"],
        "revoked_writ"
    );

    // The one command that uses the key says which variable it lacks.
    let err = fails(writ_bare(d, &["serve", "--listen", "127.0.0.1:0"]));
    assert!(err.contains("OPENAI_API_KEY"), "{err}");
    assert!(err.contains("upstreams.openai.api_key"), "{err}");
}

#[test]
fn config_check_lists_every_problem_at_once() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("writ.toml"),
        r#"[server]
listen = "127.0.0.1:8787"
tls_cafile = "/etc/ca.pem"

[upstreams.openai]
kind = "openai"
api_key = "${env:OPENAI_API_KEY}"

[upstreams.claude]
kind = "anthropic"
api_key = "${env:ANTHROPIC_API_KEY}"
colour = "blue"

[upstreams.tools]
kind = "http"
base_url = "http://tools.example.com"
api_key = "${env:OPENAI_API_KEY}"

[tokens]
tenant = "bad tenant"
"#,
    )
    .unwrap();
    let out = writ_bare(dir.path(), &["config", "check"]);
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    fails(out);
    for expect in [
        "unknown key `server.tls_cafile` at line 3",
        "unknown key `upstreams.claude.colour` at line 12",
        "`OPENAI_API_KEY` is not set",
        "`ANTHROPIC_API_KEY` is not set",
        "invalid `tokens.tenant`",
    ] {
        assert!(stdout.contains(expect), "{expect}: {stdout}");
    }
    assert_eq!(
        stdout
            .lines()
            .filter(|l| l.contains("OPENAI_API_KEY"))
            .count(),
        1,
        "one line per variable: {stdout}"
    );

    // With the variables set, the plaintext upstream is what is left, and it is refused.
    let out = Command::new(BIN)
        .args(["config", "check"])
        .current_dir(dir.path())
        .env("OPENAI_API_KEY", "sk-test")
        .env("ANTHROPIC_API_KEY", "sk-ant-test")
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    fails(out);
    assert!(
        stdout.contains("upstreams.tools.base_url") && stdout.contains("allow_plaintext"),
        "{stdout}"
    );
    assert!(!stdout.contains("sk-test"), "no secret printed: {stdout}");

    // Files serve would open are checked too.
    std::fs::write(
        dir.path().join("tls.toml"),
        "[server]\ntls_cert = \"missing.pem\"\ntls_key = \"missing.key\"\ntls_ca = \"writ.toml\"\n",
    )
    .unwrap();
    let out = writ_bare(dir.path(), &["config", "check", "--config", "tls.toml"]);
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    fails(out);
    assert!(
        stdout.contains("tls_cert `missing.pem`") && stdout.contains("invalid `server.tls_ca`"),
        "{stdout}"
    );

    // Warnings alone exit 0.
    std::fs::write(
        dir.path().join("open.toml"),
        "[server]\nlisten = \"0.0.0.0:8787\"\n",
    )
    .unwrap();
    let out = ok(writ_bare(
        dir.path(),
        &["config", "check", "--config", "open.toml"],
    ));
    assert!(
        out.contains("warning: server.listen = 0.0.0.0:8787") && out.contains("ok, 1 warning"),
        "{out}"
    );
}

#[test]
fn the_admin_api_is_refused_on_a_plaintext_public_listener() {
    let dir = tempfile::tempdir().unwrap();
    let server = ServeProcess::start(
        Path::new(BIN),
        dir.path(),
        &["--demo", "--listen", "0.0.0.0:0"],
    );
    let gw = format!("http://127.0.0.1:{}", server.addr().port());
    let err = fails(server.writ(&["revoke", "--agent", "demo", "--gateway", &gw]));
    assert!(
        err.contains("403") && err.contains("admin API is disabled on this listener"),
        "{err}"
    );
    assert!(err.contains("allow_plaintext_admin"), "{err}");
    // The data plane is served.
    let writ = server.mint(LLM, "30s");
    let out = Command::new("curl")
        .args(["-sS", &format!("{gw}/v1/chat/completions")])
        .args(["-H", &format!("Authorization: Bearer {writ}")])
        .args(["-H", "Content-Type: application/json", "-d"])
        .arg(r#"{"model":"gpt-4o-mini","messages":[{"role":"user","content":"hi"}]}"#)
        .output()
        .unwrap();
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["object"], "chat.completion", "{v}");
}
