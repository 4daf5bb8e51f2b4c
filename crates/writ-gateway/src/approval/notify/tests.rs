//! Approval webhooks end to end inside the crate (`pending` is the gateway's own): a real
//! gateway from TOML, approvals in its store, and a local receiver that checks every
//! signature with the secret of the webhook it was sent to.

use std::sync::Arc;
use std::time::{Duration, UNIX_EPOCH};

use axum::Router;
use axum::extract::State;
use axum::http::{HeaderMap, Uri};
use bytes::Bytes;
use serde_json::Value;
use tokio::sync::mpsc;
use writ_store::{ApprovalKind, ApprovalRecord, NewApproval, PendingBounds};
use writ_token::ManualClock;

use super::pending;
use super::webhooks::scrub;
use crate::config::{Config, RawConfig};
use crate::detect::webhook::{ID_HEADER, SIGNATURE_HEADER, TIMESTAMP_HEADER, verify_signature};
use crate::gateway::Gateway;

const T0: u64 = 1_800_000_000;
const ACME_SECRET: &str = "whsec-acme-0123456789abcdef";
const GLOBEX_SECRET: &str = "whsec-globex-0123456789abcdef";
const ALL_SECRET: &str = "whsec-everyone-0123456789abcdef";
const LEAKED_KEY: &str = "sk-proj-AbCdEfGhIjKlMnOpQrStUvWxYz0123456789abcdEFGH";

/// One request the receiver got: its path, whether its signature verified with the
/// secret of that path's webhook, and the body.
struct Hit {
    path: String,
    timestamp: String,
    verified: bool,
    body: Value,
    raw: Bytes,
}

async fn receive(
    State(tx): State<mpsc::UnboundedSender<Hit>>,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> &'static str {
    let header = |name: &str| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_string()
    };
    let secret = match uri.path() {
        "/acme" => ACME_SECRET,
        "/globex" => GLOBEX_SECRET,
        _ => ALL_SECRET,
    };
    let verified = verify_signature(
        secret.as_bytes(),
        &header(ID_HEADER),
        &header(TIMESTAMP_HEADER),
        &body,
        &header(SIGNATURE_HEADER),
    );
    let _ = tx.send(Hit {
        path: uri.path().to_string(),
        timestamp: header(TIMESTAMP_HEADER),
        verified,
        body: serde_json::from_slice(&body).unwrap_or(Value::Null),
        raw: body,
    });
    "ok"
}

/// A receiver on a loopback port: its base URL and the requests it got, in order.
async fn receiver() -> (String, mpsc::UnboundedReceiver<Hit>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let (tx, rx) = mpsc::unbounded_channel();
    let app = Router::new().fallback(receive).with_state(tx);
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    (base, rx)
}

async fn next(rx: &mut mpsc::UnboundedReceiver<Hit>) -> Hit {
    tokio::time::timeout(Duration::from_secs(10), rx.recv())
        .await
        .expect("a delivery within 10s")
        .expect("receiver runs")
}

/// A gateway whose approval webhooks are `/acme` (tenant acme), `/globex` (tenant globex)
/// and `/all` (every tenant) on `base`; the directory must outlive it.
async fn gateway(base: &str) -> (Gateway, tempfile::TempDir) {
    let hook = |path: &str, secret: &str, tenants: &str| {
        format!(
            "[[approvals.webhooks]]\nurl = \"{base}{path}\"\nsecret = \"{secret}\"\n\
             allow_private_network = true\nbackoff_base = \"5ms\"\n{tenants}"
        )
    };
    let toml = format!(
        "[server]\npublic_url = \"https://writ.example.com/\"\n{}{}{}",
        hook("/acme", ACME_SECRET, "tenants = [\"acme\"]\n"),
        hook("/globex", "${env:GLOBEX_HOOK}", "tenants = [\"globex\"]\n"),
        hook("/all", ALL_SECRET, ""),
    );
    let env = |name: &str| (name == "GLOBEX_HOOK").then(|| GLOBEX_SECRET.to_string());
    let config = Config::from_raw(RawConfig::from_toml(&toml).unwrap(), &env).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let data = writ_store::DataDir::open_or_create(dir.path().join("writ-data")).unwrap();
    let store = writ_store::Store::open(&data.database_path())
        .await
        .unwrap();
    let clock = Arc::new(ManualClock::new(UNIX_EPOCH + Duration::from_secs(T0)));
    let gw = Gateway::start(&config, data, store, clock).await.unwrap();
    (gw, dir)
}

async fn waiting(gw: &Gateway, tenant: &str, summary: &str, reason: &str) -> ApprovalRecord {
    let new = NewApproval {
        id: writ_token::new_approval_id(),
        tenant: tenant.into(),
        agent: "planner".into(),
        kind: ApprovalKind::Request,
        reason: reason.into(),
        summary: summary.into(),
        summary_digest: "aa".repeat(32),
        request_digest: "bb".repeat(32),
        writ_token_id: Some("01JTOKENIDNEVERSENTOUT0000".into()),
        writ_revocation_ids: vec!["cc".repeat(64)],
        writ_issued_at: Some(T0),
        ticket: Some(b"ticket-bytes-never-sent".to_vec()),
        mint_request: None,
        created_at: T0,
        expires_at: T0 + 300,
        poll_interval: 5,
    };
    let bounds = PendingBounds {
        per_agent: 10,
        per_tenant: 10,
    };
    gw.store().create_approval(&new, bounds).await.unwrap()
}

#[tokio::test]
async fn a_pending_approval_reaches_its_tenants_webhooks_signed_and_without_secrets() {
    let (base, mut rx) = receiver().await;
    let (gw, _dir) = gateway(&base).await;
    let writ = writ_token::mint(
        &gw.keys().signing,
        &writ_token::MintRequest {
            tenant: "acme",
            agent: "planner",
            ceiling: &writ_token::parse_grants(r#"{"type":"writ:llm","upstream":"x"}"#).unwrap(),
            grants: &writ_token::parse_grants(r#"{"type":"writ:llm","upstream":"x"}"#).unwrap(),
            ttl: Duration::from_secs(30),
            max_ttl: Duration::from_secs(30),
            now: UNIX_EPOCH + Duration::from_secs(T0),
            cnf_jkt: None,
            audience: None,
        },
    )
    .unwrap()
    .0;
    let summary = serde_json::json!({
        "tool": "pay",
        "arguments": {"amount": 250, "note": format!("key {LEAKED_KEY}"), "token": writ},
        "html": "<script>alert(1)</script>",
    })
    .to_string();
    let acme = waiting(&gw, "acme", &summary, "payments over 100").await;
    let globex = waiting(&gw, "globex", "not json \u{1}", "globex rule").await;

    pending(&gw, &acme);
    pending(&gw, &globex);

    let mut hits = Vec::new();
    for _ in 0..4 {
        hits.push(next(&mut rx).await);
    }
    hits.sort_by(|a, b| {
        (&a.path, a.body["approval"]["tenant"].as_str())
            .cmp(&(&b.path, b.body["approval"]["tenant"].as_str()))
    });
    let seen: Vec<(String, String)> = hits
        .iter()
        .map(|h| {
            (
                h.path.clone(),
                h.body["approval"]["tenant"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    let pairs = |list: &[(&str, &str)]| -> Vec<(String, String)> {
        list.iter()
            .map(|(a, b)| (a.to_string(), b.to_string()))
            .collect()
    };
    assert_eq!(
        seen,
        pairs(&[
            ("/acme", "acme"),
            ("/all", "acme"),
            ("/all", "globex"),
            ("/globex", "globex")
        ])
    );
    for hit in &hits {
        assert!(hit.verified, "{} signed with its own secret", hit.path);
        assert_eq!(hit.timestamp, T0.to_string());
        let text = String::from_utf8_lossy(&hit.raw);
        for never in [
            LEAKED_KEY,
            writ.as_str(),
            "01JTOKENIDNEVERSENTOUT0000",
            &"bb".repeat(32),
            &"cc".repeat(64),
            "ticket-bytes",
            ACME_SECRET,
            GLOBEX_SECRET,
            ALL_SECRET,
        ] {
            assert!(!text.contains(never), "{} leaked {never}: {text}", hit.path);
        }
    }
    let acme_event = &hits[0].body;
    assert_eq!(acme_event["event"], "approval_pending");
    let approval = &acme_event["approval"];
    let keys: Vec<&str> = approval
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    assert_eq!(
        keys,
        [
            "agent",
            "expires_at",
            "id",
            "kind",
            "link",
            "reason",
            "summary",
            "tenant"
        ]
    );
    assert_eq!(approval["id"], acme.id.as_str());
    assert_eq!(approval["agent"], "planner");
    assert_eq!(approval["kind"], "request");
    assert_eq!(approval["reason"], "payments over 100");
    assert_eq!(approval["expires_at"], T0 + 300);
    assert_eq!(
        approval["link"],
        format!("https://writ.example.com/admin/v1/approvals/{}", acme.id)
    );
    let shown = &approval["summary"];
    assert_eq!(shown["tool"], "pay");
    assert_eq!(shown["arguments"]["amount"], 250);
    assert_eq!(shown["html"], "<script>alert(1)</script>");
    let note = shown["arguments"]["note"].as_str().unwrap();
    assert!(note.starts_with("key [REDACTED:"), "{note}");
    assert!(
        shown["arguments"]["token"]
            .as_str()
            .unwrap()
            .starts_with("[REDACTED:"),
        "{shown}"
    );
    // A summary that is not JSON is sent as the text it is.
    assert_eq!(hits[3].body["approval"]["summary"], "not json \u{1}");
}

#[tokio::test]
async fn tenant_filters_choose_whole_webhooks() {
    let (base, _rx) = receiver().await;
    let (gw, _dir) = gateway(&base).await;
    let hooks = gw.approval_webhooks.as_ref().unwrap();
    let event = serde_json::json!({"event": "approval_pending"});
    // acme's webhook and the one for everyone; globex's likewise; a tenant no webhook
    // names reaches only the one for everyone.
    assert_eq!(hooks.send("acme", &event), 2);
    assert_eq!(hooks.send("globex", &event), 2);
    assert_eq!(hooks.send("initech", &event), 1);
    assert_eq!(hooks.send("ACME", &event), 1);
}

#[tokio::test]
async fn without_webhooks_pending_sends_nothing_and_does_not_fail() {
    let config = Config::from_raw(RawConfig::from_toml("").unwrap(), &|_| None).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let data = writ_store::DataDir::open_or_create(dir.path().join("writ-data")).unwrap();
    let store = writ_store::Store::open(&data.database_path())
        .await
        .unwrap();
    let clock = Arc::new(ManualClock::new(UNIX_EPOCH + Duration::from_secs(T0)));
    let gw = Gateway::start(&config, data, store, clock).await.unwrap();
    assert!(gw.approval_webhooks.is_none());
    let record = waiting(&gw, "default", "{}", "r").await;
    pending(&gw, &record);
}

#[test]
fn scrub_keeps_structure_and_redacts_keys_and_values() {
    let scanner = writ_detect::Scanner::builtin().unwrap();
    let mut value = serde_json::json!({
        LEAKED_KEY: [1, "plain", {"deep": format!("\"{LEAKED_KEY}\"")}],
        "n": null,
    });
    scrub(&scanner, &mut value);
    let text = value.to_string();
    assert!(!text.contains(LEAKED_KEY), "{text}");
    let map = value.as_object().unwrap();
    assert_eq!(map.len(), 2);
    let (key, list) = map.iter().find(|(k, _)| *k != "n").unwrap();
    assert!(key.starts_with("[REDACTED:"), "{key}");
    assert_eq!(list[0], 1);
    assert_eq!(list[1], "plain");
    let deep = list[2]["deep"].as_str().unwrap();
    assert!(
        deep.starts_with("\"[REDACTED:") && deep.ends_with('"'),
        "{deep}"
    );
}
