//! The real `writ` binary: agents have a lifecycle (add refuses to overwrite, update keeps
//! credentials, show names them), revocations of nothing are refused unless `--force`,
//! `--list` says when, by whom and why, `--lift` brings an agent back, a revoked agent is
//! minted nothing, and `token inspect` labels a delegation block.
#![allow(clippy::unwrap_used)]

use std::path::Path;
use std::process::{Command, Output};

use serde_json::Value;
use writ_testkit::ServeProcess;

const BIN: &str = env!("CARGO_BIN_EXE_writ");
const LLM: &str = r#"{"type":"writ:llm","upstream":"demo"}"#;
const NARROW: &str = r#"{"type":"writ:llm","upstream":"demo","models":["gpt-4o-mini"]}"#;
/// RFC 8037 appendix A's Ed25519 public key, and its RFC 7638 thumbprint (A.3).
const RFC8037_KEY: &str = "-----BEGIN PUBLIC KEY-----\nMCowBQYDK2VwAyEA11qYAYKxCrfVS/7TyWQHOg7hcvPapiMlrwIaaPcHURo=\n-----END PUBLIC KEY-----\n";
const RFC8037_THUMBPRINT: &str = "kPrK_qmxVWaYVA9wwBF6Iuo3vVzz7TxHCTwXBygrS4k";

fn start(dir: &Path) -> ServeProcess {
    ServeProcess::start(Path::new(BIN), dir, &["--demo", "--listen", "127.0.0.1:0"])
}

fn ok(out: Output) -> String {
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

/// The command fails, and its error says `expect` (compared in lower case).
fn refused(out: Output, expect: &str) -> String {
    let err = String::from_utf8_lossy(&out.stderr).to_lowercase();
    assert!(!out.status.success(), "succeeded; expected: {expect}");
    assert!(err.contains(&expect.to_lowercase()), "{err}");
    err
}

fn secret_of(added: &str) -> String {
    added
        .lines()
        .find_map(|l| l.strip_prefix("client_secret: "))
        .unwrap()
        .to_string()
}

/// `POST /oauth2/token` with `form` (curl, as an operator would try it).
fn token(server: &ServeProcess, form: &[(&str, &str)]) -> Value {
    let mut cmd = Command::new("curl");
    cmd.args(["-sS", &server.url("/oauth2/token")]);
    for (k, v) in form {
        cmd.args(["--data-urlencode", &format!("{k}={v}")]);
    }
    serde_json::from_slice(&cmd.output().unwrap().stdout).unwrap()
}

fn by_secret(server: &ServeProcess, agent: &str, secret: &str) -> Value {
    token(
        server,
        &[
            ("grant_type", "client_credentials"),
            ("client_id", agent),
            ("client_secret", secret),
            ("authorization_details", NARROW),
        ],
    )
}

/// What `mint` answers once the running gateway has applied the CLI's change to the store:
/// the CLI writes the store, and a gateway applies a change at its next poll of the store
/// (`[store] poll_interval`, 250 ms by default), so the answer is asked again until `done`
/// says it shows the change (for at most ten seconds).
fn once_applied(mint: impl Fn() -> Value, done: impl Fn(&Value) -> bool) -> Value {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        let answer = mint();
        if done(&answer) || std::time::Instant::now() > deadline {
            return answer;
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
}

fn token_id(server: &ServeProcess, writ: &str) -> String {
    ok(server.writ(&["token", "inspect", writ]))
        .lines()
        .find_map(|l| l.strip_prefix("token id: "))
        .unwrap()
        .to_string()
}

#[test]
fn agents_are_added_once_updated_in_place_and_show_their_credentials() {
    let dir = tempfile::tempdir().unwrap();
    let server = start(dir.path());
    let added = ok(server.writ(&["agent", "add", "dp", "--ceiling", LLM, "--generate-secret"]));
    let secret = secret_of(&added);
    refused(
        server.writ(&["agent", "add", "dp", "--ceiling", LLM]),
        "agent dp already exists in tenant default: change it with `writ agent update dp`",
    );
    assert!(
        by_secret(&server, "dp", &secret)["access_token"].is_string(),
        "the refused add left the agent as it was"
    );

    // The ceiling and lifetime change; the secret still works.
    let updated = ok(server.writ(&[
        "agent",
        "update",
        "dp",
        "--ceiling",
        NARROW,
        "--max-ttl",
        "10s",
    ]));
    assert!(
        updated.contains("max_ttl=10s") && updated.contains("gpt-4o-mini"),
        "{updated}"
    );
    let minted = once_applied(
        || by_secret(&server, "dp", &secret),
        |m| m["expires_in"] == 10,
    );
    assert_eq!(minted["expires_in"], 10, "{minted}");

    // Keys are added and removed by thumbprint; show never prints the hash.
    let key = dir.path().join("dp.pem");
    std::fs::write(&key, RFC8037_KEY).unwrap();
    ok(server.writ(&[
        "agent",
        "update",
        "dp",
        "--add-public-key",
        key.to_str().unwrap(),
    ]));
    let shown = ok(server.writ(&["agent", "show", "dp"]));
    assert!(
        shown.contains(&format!(
            "public key: EdDSA thumbprint {RFC8037_THUMBPRINT}"
        )),
        "{shown}"
    );
    assert!(shown.contains("client secret: set"), "{shown}");
    assert!(
        !shown.contains("$argon2") && !shown.contains("$writ-hmac") && !shown.contains(&secret),
        "{shown}"
    );
    ok(server.writ(&["agent", "update", "dp", "--remove-key", RFC8037_THUMBPRINT]));
    let shown = ok(server.writ(&["agent", "show", "dp"]));
    assert!(shown.contains("public keys: none"), "{shown}");
    refused(
        server.writ(&["agent", "update", "dp", "--remove-key", RFC8037_THUMBPRINT]),
        "has no key with thumbprint",
    );
    refused(server.writ(&["agent", "update", "dp"]), "nothing to change");
    refused(
        server.writ(&["agent", "update", "nosuchagent", "--max-ttl", "5s"]),
        "no agent nosuchagent in tenant default",
    );

    // A rotated secret replaces the old one.
    let rotated = secret_of(&ok(server.writ(&[
        "agent",
        "update",
        "dp",
        "--rotate-secret",
    ])));
    let old = once_applied(
        || by_secret(&server, "dp", &secret),
        |m| m["error"] == "invalid_client",
    );
    assert_eq!(old["error"], "invalid_client", "{old}");
    assert!(by_secret(&server, "dp", &rotated)["access_token"].is_string());

    // --replace overwrites the registration, credentials included.
    ok(server.writ(&["agent", "add", "dp", "--ceiling", LLM, "--replace"]));
    let replaced = once_applied(
        || by_secret(&server, "dp", &rotated),
        |m| m["error"] == "invalid_client",
    );
    assert_eq!(replaced["error"], "invalid_client", "{replaced}");
    let shown = ok(server.writ(&["agent", "show", "dp"]));
    assert!(shown.contains("client secret: none"), "{shown}");
}

#[test]
fn revocations_are_checked_listed_lifted_and_refuse_new_writs() {
    let dir = tempfile::tempdir().unwrap();
    let server = start(dir.path());
    let gw = server.url("");
    refused(
        server.writ(&["revoke", "--agent", "nosuchagent", "--gateway", &gw]),
        "no agent nosuchagent in tenant default",
    );
    refused(
        server.writ(&["revoke", "--tenant", "nosuchtenant", "--gateway", &gw]),
        "no tenant nosuchtenant",
    );
    refused(
        server.writ(&["revoke", "--token-id", "nonsense", "--gateway", &gw]),
        "not a token id",
    );
    ok(server.writ(&[
        "revoke",
        "--agent",
        "nosuchagent",
        "--force",
        "--gateway",
        &gw,
    ]));

    let added = ok(server.writ(&["agent", "add", "dp", "--ceiling", LLM, "--generate-secret"]));
    let secret = secret_of(&added);
    let writ = ok(server.writ(&["token", "mint", "--agent", "dp", "--grant", NARROW]));
    let revoked = ok(server.writ(&[
        "revoke",
        "--agent",
        "dp",
        "--reason",
        "key seen in a CI log",
        "--gateway",
        &gw,
    ]));
    assert!(
        revoked.contains("revoked agent dp in tenant default"),
        "{revoked}"
    );
    refused(
        server.writ(&["token", "mint", "--agent", "dp", "--grant", NARROW]),
        "agent revoked",
    );
    let refusal = by_secret(&server, "dp", &secret);
    assert_eq!(
        (
            refusal["error"].as_str(),
            refusal["error_description"].as_str()
        ),
        (Some("invalid_client"), Some("agent revoked"))
    );

    let listed = ok(server.writ(&["revoke", "--list", "--gateway", &gw]));
    let line = listed
        .lines()
        .find(|l| l.contains("agent default/dp"))
        .unwrap();
    assert!(
        line.contains(&format!("by {}", writ_testkit::OPERATOR))
            && line.contains("reason: key seen in a CI log")
            && line.contains("[in force]"),
        "{listed}"
    );
    let id = line.split('\t').next().unwrap().to_string();
    let lifted = ok(server.writ(&["revoke", "--lift", &id, "--gateway", &gw]));
    assert!(
        lifted.contains(&format!("lifted revocation {id}")),
        "{lifted}"
    );
    assert!(by_secret(&server, "dp", &secret)["access_token"].is_string());
    ok(server.writ(&["token", "mint", "--agent", "dp", "--grant", NARROW]));
    let listed = ok(server.writ(&["revoke", "--list", "--gateway", &gw]));
    assert!(listed.contains("[lifted "), "{listed}");

    // A writ's revocation: listed by pseudonym, never lifted.
    let raw = token_id(&server, writ.trim());
    ok(server.writ(&["revoke", "--token-id", &raw, "--gateway", &gw]));
    let listed = ok(server.writ(&["revoke", "--list", "--gateway", &gw]));
    assert!(!listed.contains(&raw), "{listed}");
    let line = listed.lines().find(|l| l.contains("\twrit ")).unwrap();
    let id = line.split('\t').next().unwrap();
    refused(
        server.writ(&["revoke", "--lift", id, "--gateway", &gw]),
        "permanent",
    );
    refused(
        server.writ(&["revoke", "--lift", "999", "--gateway", &gw]),
        "no revocation with id 999",
    );
}

#[test]
fn without_a_gateway_the_cli_checks_lists_and_lifts_itself() {
    let dir = tempfile::tempdir().unwrap();
    let server = start(dir.path());
    ok(server.writ(&["agent", "add", "dp", "--ceiling", LLM]));
    drop(server);
    let writ = |args: &[&str]| {
        Command::new(BIN)
            .args(args)
            .arg("--offline")
            .current_dir(dir.path())
            .env("WRIT_LOG", "warn")
            .output()
            .unwrap()
    };
    refused(
        writ(&["revoke", "--agent", "nosuchagent"]),
        "no agent nosuchagent in tenant default; pass --force",
    );
    ok(writ(&[
        "revoke",
        "--agent",
        "dp",
        "--reason",
        "offline test",
    ]));
    refused(
        Command::new(BIN)
            .args(["token", "mint", "--agent", "dp", "--grant", LLM])
            .current_dir(dir.path())
            .output()
            .unwrap(),
        "agent revoked",
    );
    let listed = ok(writ(&["revoke", "--list"]));
    let line = listed
        .lines()
        .find(|l| l.contains("agent default/dp"))
        .unwrap();
    assert!(
        line.contains("reason: offline test") && line.contains("[in force]"),
        "{listed}"
    );
    let id = line.split('\t').next().unwrap();
    ok(writ(&["revoke", "--lift", id]));
    ok(Command::new(BIN)
        .args(["token", "mint", "--agent", "dp", "--grant", LLM])
        .current_dir(dir.path())
        .output()
        .unwrap());
}

#[test]
fn token_inspect_labels_a_delegation_block() {
    let dir = tempfile::tempdir().unwrap();
    let server = start(dir.path());
    let planner = secret_of(&ok(server.writ(&[
        "agent",
        "add",
        "planner",
        "--ceiling",
        LLM,
        "--generate-secret",
    ])));
    let researcher = secret_of(&ok(server.writ(&[
        "agent",
        "add",
        "researcher",
        "--ceiling",
        LLM,
        "--generate-secret",
    ])));
    let subject = by_secret(&server, "planner", &planner)["access_token"]
        .as_str()
        .unwrap()
        .to_string();
    let delegated = token(
        &server,
        &[
            (
                "grant_type",
                "urn:ietf:params:oauth:grant-type:token-exchange",
            ),
            ("subject_token", &subject),
            (
                "subject_token_type",
                "urn:ietf:params:oauth:token-type:access_token",
            ),
            ("client_id", "researcher"),
            ("client_secret", &researcher),
            ("authorization_details", NARROW),
        ],
    );
    let delegated = delegated["access_token"].as_str().unwrap();
    let shown = ok(server.writ(&["token", "inspect", delegated]));
    assert!(
        shown.contains("== block 2: delegation to default/researcher"),
        "{shown}"
    );
    // Attenuated after delegation: the next block is the holder's, not a delegation.
    let narrower = ok(server.writ(&["token", "attenuate", delegated, "--grant", NARROW]));
    let shown = ok(server.writ(&["token", "inspect", narrower.trim()]));
    assert!(shown.contains("== block 3: attenuation"), "{shown}");
    let shown = ok(server.writ(&["token", "inspect", &subject]));
    assert!(!shown.contains("delegation to"), "{shown}");
}
