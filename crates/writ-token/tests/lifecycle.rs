//! Mint → verify → authorize, and the ways each step refuses.
#![allow(clippy::unwrap_used)]

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use writ_token::{
    Api, Grant, KeyId, MintRequest, RequestFacts, Revocation, RevocationSet, RootKeyPair, RootKeys,
    VerifiedWrit, Verifier, WritError, decode, mint, mint_verified, parse_grants,
};

fn t0() -> SystemTime {
    UNIX_EPOCH + Duration::from_secs(1_800_000_000)
}

fn ceiling() -> Vec<Grant> {
    parse_grants(r#"{"type":"writ:llm","upstream":"demo"}"#).unwrap()
}

fn grants() -> Vec<Grant> {
    parse_grants(r#"{"type":"writ:llm","upstream":"demo","actions":["chat"],"models":["gpt-4o-mini"],"max_output_tokens":100}"#).unwrap()
}

fn mint_with(key: &RootKeyPair, ceiling: &[Grant], grants: &[Grant], ttl: u64) -> String {
    mint_for(key, "default", "demo", ceiling, grants, ttl)
}

fn mint_for(
    key: &RootKeyPair,
    tenant: &str,
    agent: &str,
    ceiling: &[Grant],
    grants: &[Grant],
    ttl: u64,
) -> String {
    mint(key, &request(tenant, agent, ceiling, grants, ttl))
        .unwrap()
        .0
}

/// What a mint at `t0` of `grants` under `ceiling` asks, unbound, for `ttl` seconds.
fn request<'a>(
    tenant: &'a str,
    agent: &'a str,
    ceiling: &'a [Grant],
    grants: &'a [Grant],
    ttl: u64,
) -> MintRequest<'a> {
    MintRequest {
        tenant,
        agent,
        ceiling,
        grants,
        ttl: Duration::from_secs(ttl),
        max_ttl: Duration::from_secs(30),
        now: t0(),
        cnf_jkt: None,
        audience: None,
    }
}

fn keys_for(key: &RootKeyPair) -> RootKeys {
    let mut keys = RootKeys::new();
    keys.insert(key.kid(), key.public());
    keys
}

fn chat(model: &str, cap: Option<u64>) -> RequestFacts {
    RequestFacts {
        upstream: Some("demo".into()),
        model: Some(model.into()),
        max_output_tokens: cap,
        ..RequestFacts::new(Api::Llm, "chat", "POST", "/v1/chat/completions")
    }
}

/// A writ minted with `mint_verified` comes back as verifying its text gives it: the same
/// claims and revocation ids, the same answers; remembered, its first check is that writ
/// (no signature verified), and revocation and expiry still apply to it.
#[test]
fn a_writ_minted_verified_is_what_verifying_its_text_gives() {
    let key = RootKeyPair::generate(KeyId(1));
    let keys = keys_for(&key);
    let (ceiling, grants) = (ceiling(), grants());
    let req = request("default", "demo", &ceiling, &grants, 30);
    let minted = mint_verified(&key, &req).unwrap();
    assert!(!format!("{minted:?}").contains(minted.text()));
    let parsed = decode(minted.text()).unwrap().verify(&keys).unwrap();
    assert_eq!(minted.writ().claims(), parsed.claims());
    assert_eq!(minted.writ().revocation_ids(), parsed.revocation_ids());
    let later = t0() + Duration::from_secs(5);
    for (facts, allowed) in [
        (chat("gpt-4o-mini", Some(50)), true),
        (chat("gpt-4o", Some(50)), false),
        (chat("gpt-4o-mini", Some(500)), false),
    ] {
        assert_eq!(minted.writ().authorize(&facts, later).is_ok(), allowed);
        assert_eq!(parsed.authorize(&facts, later).is_ok(), allowed);
    }

    // Remembered: the first check returns this writ, not a new verification of the text.
    let verifier = Verifier::new(16);
    let none = RevocationSet::default();
    verifier.remember(&minted, t0());
    let checked = verifier.check(minted.text(), &keys, later, &none).unwrap();
    assert!(checked.same_verification(minted.writ()));
    // Another root key's keys would refuse the text, but the cached writ is served only
    // for that text: a different writ still needs its own signatures.
    let other = RootKeyPair::generate(KeyId(1));
    let forged = mint_with(&other, &ceiling, &grants, 30);
    assert!(verifier.check(&forged, &keys, later, &none).is_err());
    // Revocation and expiry apply to a remembered writ as to any other.
    let mut revoked = RevocationSet::default();
    revoked.insert(&Revocation::TokenId {
        token_id: minted.writ().claims().token_id.clone(),
    });
    assert!(matches!(
        verifier.check(minted.text(), &keys, later, &revoked),
        Err(WritError::Revoked)
    ));
    let expired = t0() + Duration::from_secs(31);
    assert!(matches!(
        verifier.check(minted.text(), &keys, expired, &none),
        Err(WritError::Expired { .. })
    ));
    // A writ already expired is not remembered.
    let stale = Verifier::new(16);
    stale.remember(&minted, expired);
    assert_eq!(stale.cached(), 0);

    // Every claim a mint can state reads back the same: budgets (the smallest of the
    // ceiling's and the grants'), single use, a DPoP binding and an audience.
    let ceiling = parse_grants(
        r#"[{"type":"writ:llm","upstream":"demo"},{"type":"writ:budget","usd_micros":900,"tokens":18446744073709551615}]"#,
    )
    .unwrap();
    let grants = parse_grants(
        r#"[{"type":"writ:llm","upstream":"demo","single_use":true},{"type":"writ:budget","usd_micros":100000,"tokens":5000}]"#,
    )
    .unwrap();
    let req = MintRequest {
        ceiling: &ceiling,
        grants: &grants,
        cnf_jkt: Some("0ZcOCORZNYy-DWpqq30jZyJGHTN0d2HglBV3uiguA4I"),
        audience: Some("https://gw.example/v1"),
        ..req
    };
    let minted = mint_verified(&key, &req).unwrap();
    let parsed = decode(minted.text()).unwrap().verify(&keys).unwrap();
    assert_eq!(minted.writ().claims(), parsed.claims());
    let claims = minted.writ().claims();
    assert_eq!(claims.budget_usd_micros, Some(900));
    assert_eq!(claims.budget_tokens, Some(5000));
    assert!(claims.single_use);
    assert!(claims.cnf_jkt.is_some() && claims.audience.is_some());
}

#[test]
fn minted_writ_allows_what_it_names() {
    let key = RootKeyPair::generate(KeyId(1));
    let writ = mint_with(&key, &ceiling(), &grants(), 30);
    assert!(writ.starts_with("writ_"));
    let verified = decode(&writ).unwrap().verify(&keys_for(&key)).unwrap();
    assert_eq!(verified.claims().agent, "demo");
    assert_eq!(verified.claims().block_count, 2);
    let auth = verified
        .authorize(
            &chat("gpt-4o-mini", Some(50)),
            t0() + Duration::from_secs(5),
        )
        .unwrap();
    assert_eq!(auth.agent(), "demo");
}

#[test]
fn denies_other_model_and_names_the_check() {
    let key = RootKeyPair::generate(KeyId(1));
    let writ = mint_with(&key, &ceiling(), &grants(), 30);
    let verified = decode(&writ).unwrap().verify(&keys_for(&key)).unwrap();
    let err = verified
        .authorize(&chat("gpt-4o", Some(50)), t0())
        .unwrap_err();
    let WritError::Denied(denial) = err else {
        panic!("expected denial, got {err:?}")
    };
    assert_eq!(denial.failed_checks.len(), 1);
    assert_eq!(denial.failed_checks[0].0, 1);
    assert!(denial.failed_checks[0].1.contains("model("), "{denial}");
}

#[test]
fn denies_missing_or_excess_output_cap() {
    let key = RootKeyPair::generate(KeyId(1));
    let writ = mint_with(&key, &ceiling(), &grants(), 30);
    let verified = decode(&writ).unwrap().verify(&keys_for(&key)).unwrap();
    assert!(matches!(
        verified.authorize(&chat("gpt-4o-mini", Some(101)), t0()),
        Err(WritError::Denied(_))
    ));
    assert!(matches!(
        verified.authorize(&chat("gpt-4o-mini", None), t0()),
        Err(WritError::Denied(_))
    ));
}

#[test]
fn grants_cannot_exceed_ceiling() {
    let key = RootKeyPair::generate(KeyId(1));
    let ceiling =
        parse_grants(r#"{"type":"writ:llm","upstream":"demo","models":["small"]}"#).unwrap();
    let wide = parse_grants(r#"{"type":"writ:llm","upstream":"demo"}"#).unwrap();
    let writ = mint_with(&key, &ceiling, &wide, 30);
    let verified = decode(&writ).unwrap().verify(&keys_for(&key)).unwrap();
    let err = verified.authorize(&chat("large", None), t0()).unwrap_err();
    let WritError::Denied(denial) = err else {
        panic!()
    };
    assert_eq!(
        denial.failed_checks[0].0, 0,
        "the ceiling (authority) check fails"
    );
    assert!(verified.authorize(&chat("small", None), t0()).is_ok());
}

#[test]
fn expires_after_ttl() {
    let key = RootKeyPair::generate(KeyId(1));
    let writ = mint_with(&key, &ceiling(), &grants(), 30);
    let verified = decode(&writ).unwrap().verify(&keys_for(&key)).unwrap();
    let at30 = t0() + Duration::from_secs(30);
    assert!(
        verified
            .authorize(&chat("gpt-4o-mini", Some(1)), at30)
            .is_ok()
    );
    let at31 = t0() + Duration::from_secs(31);
    assert!(matches!(
        verified.authorize(&chat("gpt-4o-mini", Some(1)), at31),
        Err(WritError::Expired { .. })
    ));
}

#[test]
fn ttl_is_capped() {
    let key = RootKeyPair::generate(KeyId(1));
    let req = MintRequest {
        tenant: "default",
        agent: "demo",
        ceiling: &ceiling(),
        grants: &grants(),
        ttl: Duration::from_secs(31),
        max_ttl: Duration::from_secs(30),
        now: t0(),
        cnf_jkt: None,
        audience: None,
    };
    assert!(matches!(
        mint(&key, &req),
        Err(WritError::TtlOutOfRange { .. })
    ));
}

#[test]
fn refuses_other_root_key_and_unknown_kid() {
    let ours = RootKeyPair::generate(KeyId(1));
    let theirs = RootKeyPair::generate(KeyId(1));
    let forged = mint_with(&theirs, &ceiling(), &grants(), 30);
    assert_eq!(
        decode(&forged)
            .unwrap()
            .verify(&keys_for(&ours))
            .unwrap_err(),
        WritError::BadSignature
    );
    let other_kid = RootKeyPair::generate(KeyId(7));
    let writ = mint_with(&other_kid, &ceiling(), &grants(), 30);
    let refused = decode(&writ).unwrap().verify(&keys_for(&ours)).unwrap_err();
    assert_eq!(refused, WritError::UnknownKeyId { kid: Some(7) });
    assert!(refused.to_string().contains("root key id 7"), "{refused}");
}

#[test]
fn refuses_bad_envelopes() {
    let key = RootKeyPair::generate(KeyId(1));
    let keys = keys_for(&key);
    assert_eq!(decode("").unwrap_err(), WritError::MissingPrefix);
    assert_eq!(decode("sk-abc").unwrap_err(), WritError::MissingPrefix);
    assert!(matches!(decode("writ_"), Err(WritError::Malformed { .. })));
    let huge = format!("writ_{}", "A".repeat(10 * 1024));
    assert!(matches!(decode(&huge), Err(WritError::TooLarge { .. })));
    // Valid base64url, not a Biscuit.
    let not_biscuit = "writ_aGVsbG8gd29ybGQgdGhpcyBpcyBub3QgYSBiaXNjdWl0";
    assert!(matches!(
        decode(not_biscuit).unwrap().verify(&keys),
        Err(WritError::Malformed { .. })
    ));
    assert!(matches!(
        decode("writ_!!!not base64").unwrap().verify(&keys),
        Err(WritError::Malformed { .. })
    ));
}

#[test]
fn corrupted_appended_block_is_refused() {
    let key = RootKeyPair::generate(KeyId(1));
    let writ = mint_with(&key, &ceiling(), &grants(), 30);
    // Flip one byte near the end: inside block 1 or its signature.
    let mut bytes = writ.into_bytes();
    let i = bytes.len() - 20;
    bytes[i] = if bytes[i] == b'A' { b'B' } else { b'A' };
    let corrupted = String::from_utf8(bytes).unwrap();
    let err = decode(&corrupted)
        .unwrap()
        .verify(&keys_for(&key))
        .unwrap_err();
    assert!(
        matches!(err, WritError::BadSignature | WritError::Malformed { .. }),
        "{err:?}"
    );
}

#[test]
fn datalog_in_grant_values_stays_a_value() {
    // Values that look like Datalog must bind as strings, never widen the grant.
    let key = RootKeyPair::generate(KeyId(1));
    let hostile = parse_grants(
        r#"{"type":"writ:llm","upstream":"demo\"), true or upstream(\"x","models":["a\") or true; check if (\"b"]}"#,
    )
    .unwrap();
    let writ = mint_with(&key, &hostile, &hostile, 30);
    let verified = decode(&writ).unwrap().verify(&keys_for(&key)).unwrap();
    let mut facts = chat("a", None);
    facts.upstream = Some("x".into());
    assert!(matches!(
        verified.authorize(&facts, t0()),
        Err(WritError::Denied(_))
    ));
    facts.upstream = Some("demo".into());
    assert!(matches!(
        verified.authorize(&facts, t0()),
        Err(WritError::Denied(_))
    ));
}

/// A verified writ for gpt-4o-mini on `demo` (output capped at 100) that its own Datalog
/// allows only up to t0 + 5 s (a time check written as Datalog), living 30 s.
fn verified_with_deadline() -> VerifiedWrit {
    let key = RootKeyPair::generate(KeyId(1));
    let deadline = "2027-01-15T08:00:05Z";
    let limited: Vec<Grant> = parse_grants(&format!(
        r#"[{{"type":"writ:llm","upstream":"demo","actions":["chat"],"models":["gpt-4o-mini"],"max_output_tokens":100}},
            {{"type":"writ:datalog","code":"check if time($t), $t <= {deadline};"}}]"#
    ))
    .unwrap();
    let writ = mint_with(&key, &ceiling(), &limited, 30);
    decode(&writ).unwrap().verify(&keys_for(&key)).unwrap()
}

/// Authorization remembers the last request a writ allowed, for as long as the writ's
/// Datalog cannot tell one second from another (here: up to its own deadline check):
/// repeating it skips the authorizer, and nothing else is let through by the memo — not
/// other facts, not a second past the deadline, not after expiry.
#[test]
fn repeated_requests_get_the_same_answer_and_only_them() {
    let verified = verified_with_deadline();
    let at = |secs: u64| t0() + Duration::from_secs(secs);
    // t0 is 2027-01-15T08:00:00Z.
    assert_eq!(verified.holds_through(), Some(1_800_000_005));
    let facts = chat("gpt-4o-mini", Some(50));
    for _ in 0..3 {
        assert!(verified.authorize(&facts, at(1)).is_ok());
    }
    assert_eq!(verified.evaluations(), 1);
    // Other facts are evaluated, not remembered.
    assert!(matches!(
        verified.authorize(&chat("gpt-4o", Some(50)), at(1)),
        Err(WritError::Denied(_))
    ));
    assert_eq!(verified.evaluations(), 2);
    // Later seconds up to the deadline get the remembered answer.
    for secs in 1..=5 {
        assert!(verified.authorize(&facts, at(secs)).is_ok());
    }
    assert_eq!(verified.evaluations(), 2);
    // Past the deadline the same facts are evaluated afresh, and refused.
    assert!(matches!(
        verified.authorize(&facts, at(6)),
        Err(WritError::Denied(_))
    ));
    assert_eq!(verified.evaluations(), 3);
    // And past expiry, whatever was remembered.
    assert!(matches!(
        verified.authorize(&facts, at(31)),
        Err(WritError::Expired { .. })
    ));
}

/// A refusal by the writ's checks is remembered as an allow is: the same refused request,
/// repeated while the answer holds, is refused with the same denial without the
/// authorizer (so a refused call costs an agent no more than an allowed one); an allowed
/// request in between does not displace it; other facts, and a second past the bound,
/// are decided afresh.
#[test]
fn a_repeated_refusal_is_answered_from_memory_and_only_it() {
    let verified = verified_with_deadline();
    let at = |secs: u64| t0() + Duration::from_secs(secs);
    let denial = |facts: &RequestFacts, secs: u64| match verified.authorize(facts, at(secs)) {
        Err(WritError::Denied(d)) => d,
        other => panic!("not denied: {other:?}"),
    };
    let refused = chat("gpt-4o", Some(50));
    let first = denial(&refused, 1);
    assert_eq!(verified.evaluations(), 1);
    for secs in 1..=5 {
        assert_eq!(denial(&refused, secs), first);
    }
    assert_eq!(verified.evaluations(), 1);
    // An allowed request is evaluated and remembered beside the refusal.
    assert!(
        verified
            .authorize(&chat("gpt-4o-mini", Some(50)), at(2))
            .is_ok()
    );
    assert_eq!(denial(&refused, 3), first);
    assert_eq!(verified.evaluations(), 2);
    // Other refused facts are evaluated.
    let other = denial(&chat("gpt-4o", Some(60)), 3);
    assert_eq!(other.failed_checks, first.failed_checks);
    assert_eq!(verified.evaluations(), 3);
    // Past the deadline the first request is evaluated afresh: the time check fails too.
    let late = denial(&refused, 6);
    assert_eq!(verified.evaluations(), 4);
    assert!(
        late.failed_checks.len() > first.failed_checks.len(),
        "{late:?}"
    );
}

/// A writ that reads the time other than as an expiry (here: refused from t0 + 3 s on,
/// written as a lower bound) is decided again every second: a remembered allow would let
/// the third second through.
#[test]
fn a_writ_that_reads_the_time_otherwise_is_decided_every_second() {
    let key = RootKeyPair::generate(KeyId(1));
    let limited: Vec<Grant> = parse_grants(
        r#"[{"type":"writ:llm","upstream":"demo","actions":["chat"],"models":["gpt-4o-mini"],"max_output_tokens":100},
            {"type":"writ:datalog","code":"reject if time($t), $t > 2027-01-15T08:00:02Z;"}]"#,
    )
    .unwrap();
    let writ = mint_with(&key, &ceiling(), &limited, 30);
    let verified = decode(&writ).unwrap().verify(&keys_for(&key)).unwrap();
    assert_eq!(verified.holds_through(), None);
    let at = |secs: u64| t0() + Duration::from_secs(secs);
    let facts = chat("gpt-4o-mini", Some(50));
    assert!(verified.authorize(&facts, at(1)).is_ok());
    assert!(verified.authorize(&facts, at(1)).is_ok());
    assert!(verified.authorize(&facts, at(2)).is_ok());
    assert_eq!(verified.evaluations(), 2);
    assert!(matches!(
        verified.authorize(&facts, at(3)),
        Err(WritError::Denied(_))
    ));
    // Decided every second, so its parsed token is kept.
    assert!(verified.holds_parsed());
}

/// A plain writ (its only time check is its expiry) is decided once for a repeated
/// request over its whole life, and refused the second after it expires.
#[test]
fn a_plain_writ_is_decided_once_for_its_life() {
    let key = RootKeyPair::generate(KeyId(1));
    let grants: Vec<Grant> = parse_grants(
        r#"{"type":"writ:llm","upstream":"demo","actions":["chat"],"models":["gpt-4o-mini"],"max_output_tokens":100}"#,
    )
    .unwrap();
    let writ = mint_with(&key, &ceiling(), &grants, 30);
    let verified = decode(&writ).unwrap().verify(&keys_for(&key)).unwrap();
    assert_eq!(verified.holds_through(), Some(1_800_000_030));
    let facts = chat("gpt-4o-mini", Some(50));
    for secs in 0..=30 {
        assert!(
            verified
                .authorize(&facts, t0() + Duration::from_secs(secs))
                .is_ok()
        );
    }
    assert_eq!(verified.evaluations(), 1);
    assert!(matches!(
        verified.authorize(&facts, t0() + Duration::from_secs(31)),
        Err(WritError::Expired { .. })
    ));
}

/// A plain writ answered from its memo a second time keeps only what verification read of
/// it (the parsed token is most of a cached writ's memory). A request with other facts parses it
/// again, signatures checked, and is decided exactly as before; so are the writ's other
/// uses (its blocks, its revocation ids, delegating it).
#[test]
fn a_remembered_writ_keeps_only_its_bytes_and_parses_them_again_when_needed() {
    let key = RootKeyPair::generate(KeyId(1));
    let writ = mint_with(&key, &ceiling(), &grants(), 30);
    let verified = decode(&writ).unwrap().verify(&keys_for(&key)).unwrap();
    let at = |secs: u64| t0() + Duration::from_secs(secs);
    let facts = chat("gpt-4o-mini", Some(50));
    assert!(verified.holds_parsed());
    assert!(verified.authorize(&facts, at(1)).is_ok());
    assert!(verified.holds_parsed(), "one answer is not yet a pattern");
    assert!(verified.authorize(&facts, at(2)).is_ok());
    assert!(
        !verified.holds_parsed(),
        "answered from the memo again: dropped"
    );
    assert!(verified.authorize(&facts, at(20)).is_ok());
    assert!(!verified.holds_parsed());
    assert_eq!(verified.evaluations(), 1);
    // Other facts: parsed again and refused by the same check as a fresh writ.
    let Err(WritError::Denied(denial)) = verified.authorize(&chat("gpt-4o", Some(50)), at(21))
    else {
        panic!("not denied")
    };
    let fresh = decode(&writ).unwrap().verify(&keys_for(&key)).unwrap();
    let Err(WritError::Denied(fresh_denial)) = fresh.authorize(&chat("gpt-4o", Some(50)), at(21))
    else {
        panic!("not denied")
    };
    assert_eq!(denial.failed_checks, fresh_denial.failed_checks);
    assert!(verified.holds_parsed());
    assert_eq!(verified.evaluations(), 2);
    // Other allowed facts are allowed, remembered, and dropped again once repeated.
    let other = chat("gpt-4o-mini", Some(80));
    assert!(verified.authorize(&other, at(22)).is_ok());
    assert!(verified.authorize(&other, at(23)).is_ok());
    assert!(!verified.holds_parsed());
    assert_eq!(verified.evaluations(), 3);
    // Everything else a verified writ is used for still works from the bytes.
    assert_eq!(verified.revocation_ids(), fresh.revocation_ids());
    assert!(
        !verified.holds_parsed(),
        "revocation ids are kept, not parsed"
    );
    assert_eq!(verified.blocks_source(), fresh.blocks_source());
    assert!(verified.delegation_chain().is_empty());
}

#[test]
fn an_agent_revocation_reaches_that_agent_of_that_tenant_only() {
    let key = RootKeyPair::generate(KeyId(1));
    let keys = keys_for(&key);
    let writ_of = |tenant: &str, agent: &str| {
        let text = mint_for(&key, tenant, agent, &ceiling(), &grants(), 30);
        decode(&text).unwrap().verify(&keys).unwrap()
    };
    let revoked = writ_of("acme", "travel");
    let same_agent_other_tenant = writ_of("globex", "travel");
    let other_agent_same_tenant = writ_of("acme", "billing");
    let mut set = RevocationSet::new();
    assert!(!set.is_revoked(&revoked));
    set.insert(&Revocation::Agent {
        tenant: "acme".into(),
        agent: "travel".into(),
    });
    assert!(set.is_revoked(&revoked));
    assert!(!set.is_revoked(&same_agent_other_tenant));
    assert!(!set.is_revoked(&other_agent_same_tenant));
    // A second agent of the same tenant joins the first.
    set.insert(&Revocation::Agent {
        tenant: "acme".into(),
        agent: "billing".into(),
    });
    assert!(set.is_revoked(&revoked) && set.is_revoked(&other_agent_same_tenant));
    assert!(!set.is_revoked(&same_agent_other_tenant));
}

#[test]
fn a_writs_revocation_subject_is_revoked_exactly_when_the_writ_is() {
    let key = RootKeyPair::generate(KeyId(1));
    let keys = keys_for(&key);
    let text = mint_for(&key, "acme", "travel", &ceiling(), &grants(), 30);
    let writ = decode(&text).unwrap().verify(&keys).unwrap();
    let subject = writ_token::RevocationSubject::of(&writ);
    // Kept as JSON (a console session's store row), read back the same.
    let json = serde_json::to_string(&subject).unwrap();
    assert!(!json.contains(&text), "no token text in the subject");
    let subject: writ_token::RevocationSubject = serde_json::from_str(&json).unwrap();
    let issued = writ
        .claims()
        .issued_at
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let rid = hex::encode(&writ.revocation_ids()[0]);
    let cases = [
        (None, false),
        (
            Some(Revocation::TokenId {
                token_id: writ.claims().token_id.clone(),
            }),
            true,
        ),
        (Some(Revocation::RevocationId { revocation_id: rid }), true),
        (
            Some(Revocation::Agent {
                tenant: "acme".into(),
                agent: "travel".into(),
            }),
            true,
        ),
        (
            Some(Revocation::Agent {
                tenant: "acme".into(),
                agent: "billing".into(),
            }),
            false,
        ),
        (
            Some(Revocation::Tenant {
                tenant: "acme".into(),
            }),
            true,
        ),
        (
            Some(Revocation::IssuedBefore {
                tenant: Some("acme".into()),
                before: issued + 1,
            }),
            true,
        ),
        (
            Some(Revocation::IssuedBefore {
                tenant: None,
                before: issued,
            }),
            false,
        ),
        (
            Some(Revocation::IssuedBefore {
                tenant: Some("globex".into()),
                before: issued + 1,
            }),
            false,
        ),
    ];
    for (revocation, revoked) in cases {
        let set = RevocationSet::from_revocations(revocation.iter());
        assert_eq!(set.is_revoked(&writ), revoked, "{revocation:?}");
        assert_eq!(set.revokes(&subject), revoked, "{revocation:?}");
    }
}

/// What the console's live writs count asks without a writ: whether a writ of this agent,
/// issued then, is stopped by an agent, tenant or issued-before revocation.
#[test]
fn a_writ_is_known_stopped_from_its_tenant_agent_and_issue_time() {
    let at = |secs: u64| UNIX_EPOCH + Duration::from_secs(secs);
    let mut set = RevocationSet::new();
    assert!(!set.revokes_issued("acme", "bot", at(100)));
    set.insert(&Revocation::Agent {
        tenant: "acme".into(),
        agent: "bot".into(),
    });
    set.insert(&Revocation::IssuedBefore {
        tenant: Some("globex".into()),
        before: 100,
    });
    set.insert(&Revocation::TokenId {
        token_id: "01JAAAAAAAAAAAAAAAAAAAAAAA".into(),
    });
    assert!(set.revokes_issued("acme", "bot", at(100)));
    assert!(!set.revokes_issued("acme", "other", at(100)));
    assert!(set.revokes_issued("globex", "any", at(99)));
    assert!(!set.revokes_issued("globex", "any", at(100)));
    set.insert(&Revocation::Tenant {
        tenant: "initech".into(),
    });
    assert!(set.revokes_issued("initech", "any", at(1)));
    set.insert(&Revocation::IssuedBefore {
        tenant: None,
        before: 50,
    });
    assert!(set.revokes_issued("hooli", "any", at(49)));
    assert_eq!(
        set.token_ids().collect::<Vec<_>>(),
        vec!["01JAAAAAAAAAAAAAAAAAAAAAAA"]
    );
}

/// Found by the `grant_datalog` fuzz target (issue 26): mint returned no budget and no
/// single use in its claims while the writ stated them, so mint's claims and the verified
/// writ's disagreed.
#[test]
fn minted_claims_are_the_claims_the_writ_verifies_to() {
    let key = RootKeyPair::generate(KeyId(1));
    let budgeted = parse_grants(
        r#"[{"type":"writ:llm","upstream":"demo"},{"type":"writ:budget","usd_micros":900,"tokens":18446744073709551615}]"#,
    )
    .unwrap();
    let requested = parse_grants(
        r#"[{"type":"writ:llm","upstream":"demo","single_use":true},{"type":"writ:budget","usd_micros":100000,"tokens":5000}]"#,
    )
    .unwrap();
    let req = MintRequest {
        tenant: "default",
        agent: "demo",
        ceiling: &budgeted,
        grants: &requested,
        ttl: Duration::from_secs(30),
        max_ttl: Duration::from_secs(30),
        now: t0(),
        cnf_jkt: None,
        audience: None,
    };
    let (writ, claims) = mint(&key, &req).unwrap();
    assert_eq!(claims.budget_usd_micros, Some(900));
    assert_eq!(claims.budget_tokens, Some(5000));
    assert!(claims.single_use);
    let verified = decode(&writ).unwrap().verify(&keys_for(&key)).unwrap();
    assert_eq!(verified.claims(), &claims);

    let plain = mint_with(&key, &ceiling(), &grants(), 30);
    let verified = decode(&plain).unwrap().verify(&keys_for(&key)).unwrap();
    assert_eq!(verified.claims().budget_tokens, None);
    assert!(!verified.claims().single_use);
}
