//! Decisions shared by writs of one shape: a writ this process minted is allowed, without
//! evaluating its Datalog, a request another writ minted with the same tenant, agent,
//! binding, audience, ceiling and grants was allowed, at a second that decision holds for;
//! and nothing else is let through by it. Each test mints for an agent of its own, so the
//! process-wide memo of one test never answers another's.
#![allow(clippy::unwrap_used)]

use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use writ_token::{
    Api, Grant, KeyId, MintRequest, RequestFacts, RootKeyPair, RootKeys, VerifiedWrit, WritError,
    decode, mint_verified, parse_grants,
};

fn t0() -> SystemTime {
    UNIX_EPOCH + Duration::from_secs(1_800_000_000)
}

fn at(secs: u64) -> SystemTime {
    t0() + Duration::from_secs(secs)
}

fn ceiling() -> Vec<Grant> {
    parse_grants(r#"{"type":"writ:llm","upstream":"demo"}"#).unwrap()
}

fn grants(models: &str) -> Vec<Grant> {
    parse_grants(&format!(
        r#"{{"type":"writ:llm","upstream":"demo","actions":["chat"],"models":[{models}],"max_output_tokens":100}}"#
    ))
    .unwrap()
}

fn chat(model: &str, cap: u64) -> RequestFacts {
    RequestFacts {
        upstream: Some("demo".into()),
        model: Some(model.into()),
        max_output_tokens: Some(cap),
        ..RequestFacts::new(Api::Llm, "chat", "POST", "/v1/chat/completions")
    }
}

/// A writ minted here at second `minted` (after t0) for `agent`, living `ttl` seconds.
fn minted(
    key: &RootKeyPair,
    agent: &str,
    grants: &[Grant],
    minted: u64,
    ttl: u64,
) -> Arc<VerifiedWrit> {
    let ceiling = ceiling();
    mint_verified(
        key,
        &MintRequest {
            tenant: "default",
            agent,
            ceiling: &ceiling,
            grants,
            ttl: Duration::from_secs(ttl),
            max_ttl: Duration::from_secs(30),
            now: at(minted),
            cnf_jkt: None,
            audience: None,
        },
    )
    .unwrap()
    .writ()
    .clone()
}

#[test]
fn a_writ_of_the_same_shape_is_allowed_what_another_was_without_evaluating() {
    let key = RootKeyPair::generate(KeyId(1));
    let g = grants(r#""gpt-4o-mini""#);
    let first = minted(&key, "shared-same", &g, 0, 30);
    assert!(first.authorize(&chat("gpt-4o-mini", 50), at(1)).is_ok());
    assert_eq!(first.evaluations(), 1);
    // Minted later, with another id and expiry: the same request is answered.
    let second = minted(&key, "shared-same", &g, 2, 30);
    assert_ne!(first.claims().token_id, second.claims().token_id);
    let allowed = second.authorize(&chat("gpt-4o-mini", 50), at(3)).unwrap();
    assert_eq!(second.evaluations(), 0);
    assert_eq!(allowed.token_id(), second.claims().token_id);
    // Other facts are evaluated, and refused where the writ refuses them.
    assert!(matches!(
        second.authorize(&chat("gpt-4o", 50), at(3)),
        Err(WritError::Denied(_))
    ));
    assert!(second.authorize(&chat("gpt-4o-mini", 80), at(3)).is_ok());
    assert_eq!(second.evaluations(), 2);
}

#[test]
fn a_denial_is_never_shared() {
    let key = RootKeyPair::generate(KeyId(1));
    let g = grants(r#""gpt-4o-mini""#);
    let first = minted(&key, "shared-denied", &g, 0, 30);
    assert!(first.authorize(&chat("gpt-4o", 50), at(1)).is_err());
    let second = minted(&key, "shared-denied", &g, 0, 30);
    assert!(matches!(
        second.authorize(&chat("gpt-4o", 50), at(1)),
        Err(WritError::Denied(_))
    ));
    assert_eq!(second.evaluations(), 1);
}

#[test]
fn writs_of_other_shapes_decide_for_themselves() {
    let key = RootKeyPair::generate(KeyId(1));
    let wide = grants(r#""gpt-4o-mini", "gpt-4o""#);
    let narrow = grants(r#""gpt-4o-mini""#);
    let allowed_wide = minted(&key, "shared-shapes", &wide, 0, 30);
    assert!(allowed_wide.authorize(&chat("gpt-4o", 50), at(1)).is_ok());
    // Other grants: the allow of `gpt-4o` to the wider writ is not this writ's.
    let other_grants = minted(&key, "shared-shapes", &narrow, 0, 30);
    assert!(matches!(
        other_grants.authorize(&chat("gpt-4o", 50), at(1)),
        Err(WritError::Denied(_))
    ));
    // Another agent, another root key: evaluated.
    let other_agent = minted(&key, "shared-shapes-2", &wide, 0, 30);
    assert!(other_agent.authorize(&chat("gpt-4o", 50), at(1)).is_ok());
    assert_eq!(other_agent.evaluations(), 1);
    let other_key = minted(
        &RootKeyPair::generate(KeyId(1)),
        "shared-shapes",
        &wide,
        0,
        30,
    );
    assert!(other_key.authorize(&chat("gpt-4o", 50), at(1)).is_ok());
    assert_eq!(other_key.evaluations(), 1);
}

#[test]
fn a_writ_past_its_expiry_is_refused_whatever_its_shape_was_allowed() {
    let key = RootKeyPair::generate(KeyId(1));
    let g = grants(r#""gpt-4o-mini""#);
    let long = minted(&key, "shared-expiry", &g, 0, 30);
    let short = minted(&key, "shared-expiry", &g, 0, 5);
    // The long-lived writ's decision holds through its expiry (second 30)...
    assert!(long.authorize(&chat("gpt-4o-mini", 50), at(4)).is_ok());
    assert!(short.authorize(&chat("gpt-4o-mini", 50), at(5)).is_ok());
    assert_eq!(short.evaluations(), 0);
    // ...yet the short-lived writ is answered only while it lives.
    assert!(matches!(
        short.authorize(&chat("gpt-4o-mini", 50), at(6)),
        Err(WritError::Expired { .. })
    ));
}

/// A writ whose raw Datalog reads the time has no shape either: a writ minted with the
/// same grants decides for itself, in the same second as in the next.
#[test]
fn a_writ_whose_raw_datalog_reads_the_time_decides_for_itself() {
    let key = RootKeyPair::generate(KeyId(1));
    let g = parse_grants(
        r#"[{"type":"writ:llm","upstream":"demo","actions":["chat"],"models":["gpt-4o-mini"],"max_output_tokens":100},
            {"type":"writ:datalog","code":"reject if time($t), $t > 2027-01-15T08:00:02Z;"}]"#,
    )
    .unwrap();
    let first = minted(&key, "shared-second", &g, 0, 30);
    assert!(first.authorize(&chat("gpt-4o-mini", 50), at(1)).is_ok());
    let second = minted(&key, "shared-second", &g, 0, 30);
    assert!(second.authorize(&chat("gpt-4o-mini", 50), at(1)).is_ok());
    assert_eq!(second.evaluations(), 1);
    let third = minted(&key, "shared-second", &g, 0, 30);
    assert!(matches!(
        third.authorize(&chat("gpt-4o-mini", 50), at(3)),
        Err(WritError::Denied(_))
    ));
    assert_eq!(third.evaluations(), 1);
}

/// Only writs minted here have a shape: the same writ verified from its text decides for
/// itself.
#[test]
fn a_writ_verified_from_its_text_decides_for_itself() {
    let key = RootKeyPair::generate(KeyId(1));
    let g = grants(r#""gpt-4o-mini""#);
    let ceiling = ceiling();
    let request = MintRequest {
        tenant: "default",
        agent: "shared-text",
        ceiling: &ceiling,
        grants: &g,
        ttl: Duration::from_secs(30),
        max_ttl: Duration::from_secs(30),
        now: t0(),
        cnf_jkt: None,
        audience: None,
    };
    let first = mint_verified(&key, &request).unwrap();
    assert!(
        first
            .writ()
            .authorize(&chat("gpt-4o-mini", 50), at(1))
            .is_ok()
    );
    let mut keys = RootKeys::new();
    keys.insert(key.kid(), key.public());
    let second = mint_verified(&key, &request).unwrap();
    let verified = decode(second.text()).unwrap().verify(&keys).unwrap();
    assert!(verified.authorize(&chat("gpt-4o-mini", 50), at(1)).is_ok());
    assert_eq!(verified.evaluations(), 1);
}

/// A raw Datalog grant may read the claims that differ between writs of one shape (here
/// "issued no later than t0 + 1 s"): such a writ has no shape, and decides for itself.
#[test]
fn a_writ_whose_raw_datalog_reads_its_own_claims_decides_for_itself() {
    let key = RootKeyPair::generate(KeyId(1));
    let mut g = grants(r#""gpt-4o-mini""#);
    g.extend(
        parse_grants(
            r#"{"type":"writ:datalog","code":"check if issued_at($i), $i <= 2027-01-15T08:00:01Z;"}"#,
        )
        .unwrap(),
    );
    let first = minted(&key, "shared-raw", &g, 0, 30);
    assert!(first.authorize(&chat("gpt-4o-mini", 50), at(3)).is_ok());
    // Issued at t0 + 2 s: its own check refuses it, whenever it is used.
    let second = minted(&key, "shared-raw", &g, 2, 30);
    assert!(matches!(
        second.authorize(&chat("gpt-4o-mini", 50), at(3)),
        Err(WritError::Denied(_))
    ));
    assert_eq!(second.evaluations(), 1);
}
