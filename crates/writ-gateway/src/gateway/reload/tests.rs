//! The diff between two configurations, and a reload applied to a started gateway.

use std::sync::Arc;

use super::*;
use crate::config::{Detector, Mode};
use crate::pipeline::fixture::{Fixture, config};
use crate::tenancy::Resolved;

const BASE: &str = r#"
[upstreams.a]
kind = "openai"
base_url = "https://a.example"
api_key = "sk-aaaaaaaaaaaaaaaaaaaa"

[[limit]]
scope = "tenant"
dimension = "requests"
per = "minute"
limit = 100
"#;

fn with(extra: &str) -> String {
    format!("{BASE}{extra}")
}

const B: &str = r#"
[upstreams.b]
kind = "anthropic"
base_url = "https://b.example"
api_key = "sk-ant-bbbbbbbbbbbbbbbbbbbb"
"#;

#[test]
fn the_same_config_changes_nothing() {
    let changes = ConfigChanges::between(&config(BASE), &config(BASE));
    assert!(changes.is_empty(), "{changes:?}");
    assert_eq!(changes.to_string(), "nothing changed");
}

#[test]
fn upstreams_added_removed_and_changed_are_named() {
    let running = config(&with(B));
    let next = config(
        &BASE
            .replace("https://a.example", "https://a2.example")
            .replace("[[limit]]", "[upstreams.c]\nkind = \"gemini\"\napi_key = \"AIzaSyCCCCCCCCCCCCCCCCCC\"\n\n[[limit]]"),
    );
    let changes = ConfigChanges::between(&running, &next);
    assert_eq!(changes.upstreams_added, ["c"]);
    assert_eq!(changes.upstreams_removed, ["b"]);
    assert_eq!(changes.upstreams_changed, ["a"]);
    assert!(!changes.limits_changed);
    assert!(changes.needs_restart.is_empty(), "{changes:?}");
}

#[test]
fn a_rotated_key_alone_changes_the_upstream_and_is_never_shown() {
    let next = config(&BASE.replace("sk-aaaaaaaaaaaaaaaaaaaa", "sk-zzzzzzzzzzzzzzzzzzzz"));
    let changes = ConfigChanges::between(&config(BASE), &next);
    assert_eq!(changes.upstreams_changed, ["a"]);
    let shown = format!("{changes} {changes:?} {}", Value::Object(changes.detail()));
    assert!(!shown.contains("sk-"), "{shown}");
}

#[test]
fn limits_policies_tenants_and_detection_modes_are_seen() {
    let next = config(&format!(
        "{}\n[tenants.acme.policies]\nno_gpt4 = 'check if model($m), $m != \"gpt-4\";'\n\n[detection.modes]\nprompt_secret = \"monitor\"\n",
        BASE.replace("limit = 100", "limit = 5")
    ));
    let changes = ConfigChanges::between(&config(BASE), &next);
    assert!(changes.limits_changed);
    assert_eq!(changes.tenants_added, ["acme"]);
    assert_eq!(changes.policies_changed, ["acme"]);
    assert!(changes.detection_changed);
    assert!(changes.needs_restart.is_empty(), "{changes:?}");
    let line = changes.to_string();
    assert!(
        line.contains("tenants added: acme") && line.contains("limits changed"),
        "{line}"
    );
    let back = ConfigChanges::between(&next, &config(BASE));
    assert_eq!(back.tenants_removed, ["acme"]);
}

#[test]
fn settings_only_a_restart_applies_are_named() {
    let next = config(&format!(
        "[server]\nlisten = \"127.0.0.1:9999\"\nmax_body_bytes = 1000\n[audit]\nmode = \"best_effort\"\n[pricing.my-model]\ninput = 1.0\noutput = 2.0\n{BASE}"
    ));
    let changes = ConfigChanges::between(&config(BASE), &next);
    assert_eq!(
        changes.needs_restart,
        ["server.listen", "server.max_body_bytes", "audit", "pricing"]
    );
    assert!(!changes.tenancy_changed());
    assert!(changes.to_string().contains("needs a restart"));
}

#[test]
fn a_detection_webhook_needs_a_restart_its_modes_do_not() {
    let next = config(&with(
        "\n[[detection.webhooks]]\nurl = \"https://hooks.example/writ\"\nsecret = \"whsec-0123456789abcdef\"\n",
    ));
    let changes = ConfigChanges::between(&config(BASE), &next);
    assert_eq!(changes.needs_restart, ["detection.webhooks"]);
    assert!(!changes.detection_changed);
}

#[tokio::test]
async fn a_reload_applies_to_the_next_request_not_to_one_in_flight() {
    let f = Fixture::start(BASE).await;
    let in_flight = f.gw.tenancy.snapshot();
    let a_before = f.gw.tenancy.declared().upstreams["a"].clone();

    let next = config(&with(B).replace("limit = 100", "limit = 7"));
    let changes = f.gw.reload_config(&next).await.unwrap();
    assert_eq!(changes.upstreams_added, ["b"]);
    assert!(changes.limits_changed);

    let now = f.gw.tenancy.snapshot();
    assert!(matches!(now.resolve("default", "b"), Resolved::Upstream(_)));
    assert_eq!(now.limits[0].limit, 7);
    // The unchanged upstream is the same one, connections and all.
    assert!(Arc::ptr_eq(
        &f.gw.tenancy.declared().upstreams["a"],
        &a_before
    ));
    // A request that took its snapshot before keeps what it started with.
    assert!(matches!(
        in_flight.resolve("default", "b"),
        Resolved::Unknown
    ));
    assert_eq!(in_flight.limits[0].limit, 100);

    // Removed: the next request does not find it; one holding it still does.
    let holding = f.gw.tenancy.snapshot();
    f.gw.reload_config(&config(BASE)).await.unwrap();
    assert!(matches!(
        f.gw.tenancy.snapshot().resolve("default", "b"),
        Resolved::Unknown
    ));
    assert!(matches!(
        holding.resolve("default", "b"),
        Resolved::Upstream(_)
    ));
    assert_eq!(
        f.gw.upstreams()
            .into_iter()
            .map(|(n, _)| n)
            .collect::<Vec<_>>(),
        ["a"]
    );
}

#[tokio::test]
async fn detection_modes_and_declared_tenants_apply() {
    let f = Fixture::start(BASE).await;
    assert_eq!(
        f.gw.detections.mode(Detector::PromptSecret, None),
        Mode::Block
    );
    let next = config(&with(
        "\n[tenants.acme]\n[detection.modes]\nprompt_secret = \"monitor\"\n",
    ));
    f.gw.reload_config(&next).await.unwrap();
    assert_eq!(
        f.gw.detections.mode(Detector::PromptSecret, None),
        Mode::Monitor
    );
    assert!(f.gw.declared_tenant("acme"));
    assert!(f.gw.store().tenant("acme").await.unwrap().is_some());
}

#[tokio::test]
async fn a_restart_only_setting_keeps_its_running_value_and_is_named_again() {
    let f = Fixture::start(BASE).await;
    let next = config(&format!("[server]\nlisten = \"127.0.0.1:9999\"\n{B}{BASE}"));
    let first = f.gw.reload_config(&next).await.unwrap();
    assert_eq!(first.needs_restart, ["server.listen"]);
    assert_eq!(first.upstreams_added, ["b"]);
    // The running listen address is still the old one: the same file names it again,
    // and nothing else.
    let again = f.gw.reload_config(&next).await.unwrap();
    assert_eq!(again.needs_restart, ["server.listen"]);
    assert!(again.upstreams_added.is_empty());
}

#[tokio::test]
async fn an_upstream_the_admin_api_created_is_refused_and_the_old_config_kept() {
    let f = Fixture::start(BASE).await;
    f.gw.store()
        .create_upstream(&writ_store::UpstreamRecord {
            tenant: None,
            name: "b".to_string(),
            kind: "anthropic".to_string(),
            settings: serde_json::json!({"kind": "anthropic", "base_url": "https://b.example"}),
            created_at: 0,
            updated_at: 0,
        })
        .await
        .unwrap();
    let next = config(&with(B).replace("limit = 100", "limit = 7"));
    let err = f.gw.reload_config(&next).await.unwrap_err();
    assert!(
        matches!(
            &err,
            ReloadError::Tenancy(crate::tenancy::TenancyError::Disagree { name, .. }) if name == "b"
        ),
        "{err:?}"
    );
    assert_eq!(f.gw.tenancy.snapshot().limits[0].limit, 100);
    assert!(!f.gw.declared_upstream("b"));
    // Still the running config: a reload of the same next file names the same changes.
    let err = f.gw.reload_config(&next).await.unwrap_err();
    assert!(matches!(err, ReloadError::Tenancy(_)));
}

#[tokio::test]
async fn each_reload_is_an_audit_record_naming_what_changed() {
    let f = Fixture::start(BASE).await;
    f.gw.reload_config(&config(&with(B))).await.unwrap();
    f.gw.audit_checkpoint().await;
    let lines = f.gw.audit_export().await.unwrap();
    let record: Value = lines
        .iter()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .find(|r| r["operation"] == "config.reload")
        .expect("a config.reload record");
    assert_eq!(record["kind"], "admin_change", "{record}");
    assert_eq!(
        record["detail"]["upstreams_added"],
        json!(["b"]),
        "{record}"
    );
    assert_eq!(record["detail"]["source"], "writ.toml");
    assert!(!record.to_string().contains("sk-"), "{record}");
}
