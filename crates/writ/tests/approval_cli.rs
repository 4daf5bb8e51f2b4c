//! `writ approver` and `writ approve|deny|approvals` against a running gateway: an
//! approver's token is printed once and decides their tenant's approvals; the operator
//! decides without one; what the agent asked is printed inertly, so no control character
//! in it reaches the terminal.
#![allow(clippy::unwrap_used)]

use std::path::Path;
use std::process::{Command, Output};
use std::time::UNIX_EPOCH;

use serde_json::{Value, json};
use writ_store::{ApprovalKind, NewApproval, PendingBounds, Store};
use writ_testkit::{OPERATOR, ServeProcess};

const BIN: &str = env!("CARGO_BIN_EXE_writ");
/// A tool argument meant to clear the screen, ring the bell and run script in a web view.
const HOSTILE: &str = "\u{1b}[2J\u{7}<script>alert(1)</script>\r\u{9b}31m";

fn start(dir: &Path) -> ServeProcess {
    ServeProcess::start(Path::new(BIN), dir, &["--demo", "--listen", "127.0.0.1:0"])
}

/// `writ <args> --gateway <server>` in the server's directory, with `env` set.
fn writ_env(server: &ServeProcess, dir: &Path, args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut command = Command::new(BIN);
    command
        .args(args)
        .args(["--gateway", &server.url("")])
        .current_dir(dir)
        .env("WRIT_LOG", "warn")
        .env("WRIT_OPERATOR", OPERATOR)
        .env_remove("WRIT_APPROVER_TOKEN");
    for (k, v) in env {
        command.env(k, v);
    }
    command.output().unwrap()
}

/// The status of `GET link` (an enrolment link names `localhost`; the server listens on
/// 127.0.0.1).
fn get_status(server: &ServeProcess, link: &str) -> u16 {
    let path = &link[link.find("/console/").unwrap()..];
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        reqwest::get(server.url(path))
            .await
            .unwrap()
            .status()
            .as_u16()
    })
}

fn ok(out: Output) -> String {
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

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

/// Stores a pending request approval of `tenant` in the gateway's own database, as the
/// request path does when an approval rule holds a request.
fn pending(dir: &Path, tenant: &str) -> String {
    let data = dir.join(writ_gateway::config::Config::embedded_default().data_dir);
    let database = writ_store::DataDir::open_existing(&data)
        .unwrap()
        .database_path();
    let now = writ_token::Clock::now(&writ_token::SystemClock)
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let new = NewApproval {
        id: writ_token::new_approval_id(),
        tenant: tenant.to_string(),
        agent: "demo".to_string(),
        kind: ApprovalKind::Request,
        reason: "payments over 100".to_string(),
        summary: json!({"tool": "pay", "arguments": {"amount": 250, "memo": HOSTILE}}).to_string(),
        summary_digest: "c".repeat(64),
        request_digest: "d".repeat(64),
        writ_token_id: None,
        writ_revocation_ids: Vec::new(),
        writ_issued_at: Some(now),
        ticket: None,
        mint_request: None,
        created_at: now,
        expires_at: now + 600,
        poll_interval: 5,
    };
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let store = Store::open(&database).await.unwrap();
        let bounds = PendingBounds {
            per_agent: 100,
            per_tenant: 1000,
        };
        store.create_approval(&new, bounds).await.unwrap().id
    })
}

#[test]
fn approvers_and_the_operator_decide_approvals_from_the_command_line() {
    let dir = tempfile::tempdir().unwrap();
    let dir = dir.path();
    let server = start(dir);
    let writ = |args: &[&str]| writ_env(&server, dir, args, &[]);
    ok(writ(&["tenant", "add", "acme"]));

    // An approver: the token, then the console enrolment link, on stdout alone, once,
    // with the warning on stderr.
    let added = writ(&["approver", "add", "alice", "--tenant", "acme"]);
    let stderr = String::from_utf8_lossy(&added.stderr).to_string();
    let printed = ok(added);
    let lines: Vec<&str> = printed.lines().collect();
    assert_eq!(lines.len(), 2, "{printed}");
    let token = lines[0].to_string();
    assert!(token.starts_with("wap_") && !token.contains(' '), "{token}");
    let link = lines[1].to_string();
    assert!(link.contains("/console/enrol/"), "{link}");
    assert!(stderr.contains("never again"), "{stderr}");
    assert!(
        !stderr.contains(&token) && !stderr.contains(&link),
        "{stderr}"
    );
    assert_eq!(get_status(&server, &link), 200, "the link works");
    let listed = ok(writ(&["approver", "list", "--tenant", "acme"]));
    assert!(
        listed.contains("alice") && !listed.contains(&token),
        "{listed}"
    );
    let listed = ok(writ(&[
        "approver", "list", "--tenant", "acme", "--output", "json",
    ]));
    assert!(!listed.contains(&token[4..]), "{listed}");
    let as_alice = [("WRIT_APPROVER_TOKEN", token.as_str())];

    // The pending list and the approval, with the agent's text made inert.
    let id = pending(dir, "acme");
    let list = ok(writ_env(
        &server,
        dir,
        &["approvals", "--status", "pending"],
        &as_alice,
    ));
    assert!(
        list.contains(&id) && list.contains("payments over 100"),
        "{list}"
    );
    let shown = ok(writ_env(
        &server,
        dir,
        &["approvals", "show", &id],
        &as_alice,
    ));
    for raw in ['\u{1b}', '\u{7}', '\r', '\u{9b}'] {
        assert!(!shown.contains(raw), "{raw:?} printed raw: {shown:?}");
    }
    assert!(
        shown.contains(
            r#"arguments.memo = "\u{1b}[2J\u{7}<script>alert(1)</script>\u{d}\u{9b}31m""#
        ),
        "{shown}"
    );
    assert!(shown.contains("status:     pending"), "{shown}");

    // Approved by alice, with her reason; --output json is the API's answer as is.
    let approved = ok(writ_env(
        &server,
        dir,
        &["approve", &id, "--reason", "invoice checked"],
        &as_alice,
    ));
    assert!(
        approved.contains(&format!("approved approval {id}")),
        "{approved}"
    );
    assert!(approved.contains("as alice"), "{approved}");
    let record: Value = serde_json::from_str(&ok(writ_env(
        &server,
        dir,
        &["approvals", "show", &id, "--output", "json"],
        &as_alice,
    )))
    .unwrap();
    assert_eq!(record["status"], "approved");
    assert_eq!(record["decided_by"], "alice");
    assert_eq!(record["decided_method"], "approver_token");
    assert_eq!(record["decision_reason"], "invoice checked");
    assert_eq!(record["summary"]["arguments"]["memo"], HOSTILE);
    let again = refused(writ_env(&server, dir, &["deny", &id], &as_alice));
    assert!(
        again.contains("409") && again.contains("approved"),
        "{again}"
    );

    // The token from a file works the same; the operator decides without a token.
    let token_file = dir.join("alice.token");
    std::fs::write(&token_file, format!("{token}\n")).unwrap();
    let second = pending(dir, "acme");
    let file = token_file.to_str().unwrap();
    let denied = ok(writ(&[
        "deny",
        &second,
        "--reason",
        "not this week",
        "--approver-token-file",
        file,
    ]));
    assert!(denied.contains("denied approval"), "{denied}");
    let third = pending(dir, "acme");
    let by_operator = ok(writ(&["approve", &third, "--output", "json"]));
    let by_operator: Value = serde_json::from_str(&by_operator).unwrap();
    assert_eq!(by_operator["decided_by"], OPERATOR);
    assert_eq!(by_operator["decided_method"], "admin_writ");

    // Refusals: a bad reason, a malformed id, a token that is not one.
    let fourth = pending(dir, "acme");
    let long = "x".repeat(501);
    let bad = refused(writ_env(
        &server,
        dir,
        &["approve", &fourth, "--reason", &long],
        &as_alice,
    ));
    assert!(
        bad.contains("400") && bad.contains("500 characters"),
        "{bad}"
    );
    let bad = refused(writ(&["approve", "../tenants"]));
    assert!(bad.contains("not an approval id"), "{bad}");
    let bad = refused(writ_env(
        &server,
        dir,
        &["approvals"],
        &[("WRIT_APPROVER_TOKEN", "sk-not-a-token")],
    ));
    assert!(
        bad.contains("WRIT_APPROVER_TOKEN") && !bad.contains("sk-not"),
        "{bad}"
    );

    // A new link voids the first.
    let again = ok(writ(&["approver", "enrol", "alice", "--tenant", "acme"]));
    let newer = again.trim();
    assert!(
        newer.contains("/console/enrol/") && newer != link,
        "{again}"
    );
    assert_eq!(get_status(&server, &link), 404, "voided");
    assert_eq!(get_status(&server, newer), 200);

    // Removed: the token and the link stop working at once.
    ok(writ(&["approver", "remove", "alice", "--tenant", "acme"]));
    assert_eq!(get_status(&server, newer), 404);
    let gone = refused(writ_env(&server, dir, &["approve", &fourth], &as_alice));
    assert!(gone.contains("401") && gone.contains("approver"), "{gone}");
    assert!(!gone.contains(&token[4..]), "{gone}");
    let still: Value = serde_json::from_str(&ok(writ(&[
        "approvals",
        "show",
        &fourth,
        "--output",
        "json",
    ])))
    .unwrap();
    assert_eq!(still["status"], "pending");
}

#[test]
fn console_admins_are_added_with_a_link_listed_and_removed_from_the_command_line() {
    let dir = tempfile::tempdir().unwrap();
    let dir = dir.path();
    let server = start(dir);
    let writ = |args: &[&str]| writ_env(&server, dir, args, &[]);
    ok(writ(&["tenant", "add", "acme"]));

    // An admin of every tenant: the link on stdout alone, once.
    let added = writ(&["admin", "add", "root"]);
    let stderr = String::from_utf8_lossy(&added.stderr).to_string();
    let root_link = ok(added).trim().to_string();
    assert!(
        root_link.starts_with("http://localhost:") && root_link.contains("/console/enrol/"),
        "{root_link}"
    );
    assert!(
        stderr.contains("once") && !stderr.contains(&root_link),
        "{stderr}"
    );
    assert_eq!(get_status(&server, &root_link), 200);
    let twice = refused(writ(&["admin", "add", "root"]));
    assert!(twice.contains("409") || twice.contains("exists"), "{twice}");

    // An admin of acme, then a new link voiding the first.
    let ann_link = ok(writ(&["admin", "add", "ann", "--tenant", "acme"]));
    let newer = ok(writ(&["admin", "enrol", "ann", "--tenant", "acme"]));
    assert_ne!(ann_link.trim(), newer.trim());
    assert_eq!(get_status(&server, ann_link.trim()), 404);
    assert_eq!(get_status(&server, newer.trim()), 200);
    let json: Value = serde_json::from_str(&ok(writ(&[
        "admin", "enrol", "ann", "--tenant", "acme", "--output", "json",
    ])))
    .unwrap();
    assert_eq!(json["role"], "admin");
    assert_eq!(json["tenant"], "acme");
    assert_eq!(
        get_status(&server, newer.trim()),
        404,
        "voided by the JSON one"
    );

    // Listed without links; every admin, or one tenant's.
    let listed = ok(writ(&["admin", "list"]));
    assert!(
        listed.contains("root") && listed.contains("(every tenant)"),
        "{listed}"
    );
    assert!(
        listed.contains("ann") && !listed.contains("/console/enrol/"),
        "{listed}"
    );
    let acme = ok(writ(&["admin", "list", "--tenant", "acme"]));
    assert!(acme.contains("ann") && !acme.contains("root"), "{acme}");

    // Hostile and unknown names are refused, inertly.
    for bad in ["\u{1b}[2J", "a/b", &"a".repeat(65)] {
        let said = refused(writ(&["admin", "add", bad]));
        assert!(!said.contains('\u{1b}'), "{said}");
        let said = refused(writ(&["admin", "add", "x", "--tenant", bad]));
        assert!(!said.contains('\u{1b}'), "{said}");
    }
    let none = refused(writ(&["admin", "enrol", "nobody", "--tenant", "acme"]));
    assert!(none.contains("404") || none.contains("no "), "{none}");

    // Removed: their link stops working.
    let link = ok(writ(&["admin", "enrol", "root"]));
    ok(writ(&["admin", "remove", "root"]));
    assert_eq!(get_status(&server, link.trim()), 404);
    let gone = ok(writ(&["admin", "list"]));
    assert!(!gone.contains("root"), "{gone}");
    refused(writ(&["admin", "remove", "root"]));
}
