//! A small log built from a fixed key and fixed times, checked in under `tests/vectors/`,
//! so any change to the record encoding, the chain or the checkpoint format shows up as a
//! diff, and other implementations have a sample to verify.
//!
//! After an intended format change, regenerate with
//! `WRIT_AUDIT_BLESS=1 cargo test -p writ-audit --test golden`.
#![allow(clippy::unwrap_used)] // test helpers outside #[test] fns

use std::path::PathBuf;
use std::time::{Duration, UNIX_EPOCH};

use writ_audit::{
    AuditKey, AuditLog, AuditRecord, Decision, Kind, LimitHit, Pseudonymizer, Usage, VerifierKey,
    verify_log,
};

const ORIGIN: &str = "gw.example/audit/01J9Z3Q4W8K2M5N7P9R1S3T5V7";

fn build() -> (String, String, String) {
    let key = AuditKey::from_seed(ORIGIN, &[1; 32]).unwrap();
    let names = Pseudonymizer::new(&[2; 32]);
    let mut log = AuditLog::new("01J9Z3Q4W8K2M5N7P9R1S3T5V7", ORIGIN).unwrap();
    let at = |ms: u64| UNIX_EPOCH + Duration::from_millis(1_772_366_400_000 + ms);
    let writ = names.pseudonym("wrt_01J9Z3QA7B");

    let mut minted = AuditRecord::new(Kind::WritMinted, at(0));
    minted.tenant = Some("acme".into());
    minted.agent = Some("support-bot".into());
    minted.writ = Some(writ.clone());
    minted.operation = Some("mint".into());
    minted.status = Some(200);

    let mut allowed = AuditRecord::new(Kind::RequestAllowed, at(1_250));
    allowed.tenant = Some("acme".into());
    allowed.agent = Some("support-bot".into());
    allowed.writ = Some(writ.clone());
    allowed.client = Some(names.pseudonym("203.0.113.7"));
    allowed.upstream = Some("openai".into());
    allowed.model = Some("gpt-4o".into());
    allowed.operation = Some("chat.completions".into());
    allowed.status = Some(200);
    allowed.usage = Some(Usage {
        input_tokens: 812,
        output_tokens: 164,
        cached_tokens: Some(512),
    });
    allowed.cost_usd_micros = Some(3_670);
    allowed.latency_ms = Some(1_432);

    let mut denied = AuditRecord::new(Kind::RequestDenied, at(2_000));
    denied.tenant = Some("acme".into());
    denied.agent = Some("support-bot".into());
    denied.writ = Some(writ);
    denied.upstream = Some("openai".into());
    denied.model = Some("gpt-4o".into());
    denied.operation = Some("chat.completions".into());
    denied.status = Some(429);
    denied.decision = Some(Decision {
        check: None,
        limit: Some(LimitHit {
            scope: "agent:support-bot".into(),
            dimension: "tokens".into(),
        }),
        code: Some("rate_limited".into()),
    });
    denied.latency_ms = Some(2);

    let mut admin = AuditRecord::new(Kind::AdminChange, at(60_000));
    admin.tenant = Some("acme".into());
    admin.operation = Some("grant.update".into());
    admin.detail = serde_json::json!({
        "actor": "admin@acme.example",
        "grant": "support",
        "changed": {"models": {"added": ["gpt-4o-mini"]}},
    })
    .as_object()
    .cloned();

    let mut lines = String::new();
    for record in [minted, allowed, denied, admin] {
        lines.push_str(&log.append(record).0);
        lines.push('\n');
    }
    (
        lines,
        log.checkpoint(&key),
        format!("{}\n", key.verifier_key()),
    )
}

fn vectors() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/vectors")
}

#[test]
fn sample_log_is_unchanged_and_verifies() {
    let (lines, checkpoint, vkey) = build();
    let files = [
        ("sample-audit.jsonl", &lines),
        ("sample-checkpoint.txt", &checkpoint),
        ("sample-vkey.txt", &vkey),
    ];
    if std::env::var_os("WRIT_AUDIT_BLESS").is_some() {
        for (name, content) in files {
            std::fs::write(vectors().join(name), content).unwrap();
        }
    }
    for (name, content) in files {
        let stored = std::fs::read_to_string(vectors().join(name)).unwrap();
        assert_eq!(
            &stored, content,
            "{name} changed; if the format change is intended, rerun with WRIT_AUDIT_BLESS=1"
        );
    }

    let verifier = VerifierKey::parse(&vkey).unwrap();
    let records: Vec<&str> = lines.lines().collect();
    let summary = verify_log(&records, &[&checkpoint], &verifier, ORIGIN, Some(4)).unwrap();
    assert_eq!((summary.records, summary.signed_size), (4, 4));
}
