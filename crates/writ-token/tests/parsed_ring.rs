//! The process's bounded ring of parsed tokens: however many writs are verified, at most
//! `PARSED_CAPACITY` parsed tokens are held, and a writ whose parsed token was pushed out
//! is decided exactly as before. One test in its own binary, so no other test's writs
//! share the ring with it.
#![allow(clippy::unwrap_used)]

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use writ_token::{
    Api, KeyId, MintRequest, PARSED_CAPACITY, RequestFacts, RootKeyPair, RootKeys, WritError,
    decode, mint, parse_grants,
};

fn t0() -> SystemTime {
    UNIX_EPOCH + Duration::from_secs(1_800_000_000)
}

fn chat(model: &str, cap: u64) -> RequestFacts {
    RequestFacts {
        upstream: Some("demo".into()),
        model: Some(model.into()),
        max_output_tokens: Some(cap),
        ..RequestFacts::new(Api::Llm, "chat", "POST", "/v1/chat/completions")
    }
}

#[test]
fn parsed_tokens_are_bounded_and_a_writ_pushed_out_is_decided_as_before() {
    let key = RootKeyPair::generate(KeyId(1));
    let mut keys = RootKeys::new();
    keys.insert(key.kid(), key.public());
    let ceiling = parse_grants(r#"{"type":"writ:llm","upstream":"demo"}"#).unwrap();
    let grants = parse_grants(
        r#"{"type":"writ:llm","upstream":"demo","actions":["chat"],"models":["gpt-4o-mini"],"max_output_tokens":100}"#,
    )
    .unwrap();
    let req = MintRequest {
        tenant: "default",
        agent: "demo",
        ceiling: &ceiling,
        grants: &grants,
        ttl: Duration::from_secs(30),
        max_ttl: Duration::from_secs(30),
        now: t0(),
        cnf_jkt: None,
        audience: None,
    };
    let text = mint(&key, &req).unwrap().0;
    let at = |secs: u64| t0() + Duration::from_secs(secs);
    let writ = decode(&text).unwrap().verify(&keys).unwrap();
    assert!(writ.authorize(&chat("gpt-4o-mini", 50), at(1)).is_ok());
    assert!(
        writ.holds_parsed(),
        "used once: kept while the ring has room"
    );

    // More writs verified than the ring holds: the oldest are let go, the newest kept.
    let others: Vec<_> = (0..PARSED_CAPACITY + 16)
        .map(|_| decode(&text).unwrap().verify(&keys).unwrap())
        .collect();
    let held = others.iter().filter(|w| w.holds_parsed()).count();
    assert!(held <= PARSED_CAPACITY, "{held} parsed tokens held");
    assert!(others.last().unwrap().holds_parsed());
    assert!(!others[0].holds_parsed());
    assert!(!writ.holds_parsed());

    // Requests that alternate facts, after the parsed token went: each decided by the
    // authorizer on the token parsed again, alike a fresh writ's decisions.
    let fresh = decode(&text).unwrap().verify(&keys).unwrap();
    let denied =
        |w: &writ_token::VerifiedWrit, facts: &RequestFacts| match w.authorize(facts, at(2)) {
            Err(WritError::Denied(denial)) => denial.failed_checks,
            other => panic!("not denied: {other:?}"),
        };
    assert_eq!(
        denied(&writ, &chat("gpt-4o", 50)),
        denied(&fresh, &chat("gpt-4o", 50))
    );
    assert!(writ.authorize(&chat("gpt-4o-mini", 80), at(2)).is_ok());
    assert!(writ.authorize(&chat("gpt-4o-mini", 50), at(3)).is_ok());
    assert_eq!(
        denied(&writ, &chat("gpt-4o-mini", 500)),
        denied(&fresh, &chat("gpt-4o-mini", 500))
    );
    assert!(writ.authorize(&chat("gpt-4o-mini", 80), at(4)).is_ok());
    assert_eq!(writ.evaluations(), 6);
    assert!(writ.holds_parsed(), "parsed again, it takes a slot");
}
