//! Explaining denials and reading which upstreams a writ reaches.
#![allow(clippy::unwrap_used)]

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use writ_token::{
    Api, Grant, KeyId, MintRequest, RequestFacts, RootKeyPair, RootKeys, VerifiedWrit, WritError,
    attenuate, decode, mint, parse_grants,
};

fn t0() -> SystemTime {
    UNIX_EPOCH + Duration::from_secs(1_800_000_000)
}

fn grants(json: &str) -> Vec<Grant> {
    parse_grants(json).unwrap()
}

fn minted(key: &RootKeyPair, ceiling: &str, asked: &str) -> String {
    let (ceiling, asked) = (grants(ceiling), grants(asked));
    let req = MintRequest {
        tenant: "default",
        agent: "a",
        ceiling: &ceiling,
        grants: &asked,
        ttl: Duration::from_secs(30),
        max_ttl: Duration::from_secs(30),
        now: t0(),
        cnf_jkt: None,
        audience: None,
    };
    mint(key, &req).unwrap().0
}

fn verified(key: &RootKeyPair, writ: &str) -> VerifiedWrit {
    let mut keys = RootKeys::new();
    keys.insert(key.kid(), key.public());
    decode(writ).unwrap().verify(&keys).unwrap()
}

fn chat(cap: Option<u64>) -> RequestFacts {
    RequestFacts {
        upstream: Some("openai".into()),
        model: Some("gpt-4o-mini".into()),
        max_output_tokens: cap,
        ..RequestFacts::new(Api::Llm, "chat", "POST", "/v1/chat/completions")
    }
}

/// A key and a writ whose blocks cap output at 1 000 (ceiling) and 500 (grants), and the
/// same writ narrowed by an attenuation capping it at 700.
fn capped_three_times() -> (RootKeyPair, String, String) {
    let key = RootKeyPair::generate(KeyId(1));
    let writ = minted(
        &key,
        r#"{"type":"writ:llm","upstream":"openai","max_output_tokens":1000}"#,
        r#"{"type":"writ:llm","upstream":"openai","models":["gpt-4o-mini"],"max_output_tokens":500}"#,
    );
    let narrowed = attenuate(
        &writ,
        &grants(r#"{"type":"writ:llm","upstream":"openai","max_output_tokens":700}"#),
    )
    .unwrap();
    (key, writ, narrowed)
}

#[test]
fn the_largest_cap_is_the_smallest_any_block_allows() {
    let (key, writ, narrowed) = capped_three_times();
    for (writ, asked) in [(&writ, Some(800)), (&writ, None), (&narrowed, Some(4000))] {
        let v = verified(&key, writ);
        let Err(WritError::Denied(denial)) = v.authorize(&chat(asked), t0()) else {
            panic!("allowed {asked:?}");
        };
        assert_eq!(
            v.largest_output_cap(&denial, &chat(asked), t0(), u64::MAX),
            Some(500),
            "{asked:?}"
        );
    }
}

/// Explaining a refusal tries lower caps, some refused too: none of them displaces the
/// refusal of the request as asked, which a repeat still gets from memory.
#[test]
fn explaining_a_refusal_leaves_it_remembered() {
    let (key, _, narrowed) = capped_three_times();
    let v = verified(&key, &narrowed);
    let asked = chat(Some(4000));
    let Err(WritError::Denied(denial)) = v.authorize(&asked, t0()) else {
        panic!("allowed");
    };
    assert_eq!(v.evaluations(), 1);
    assert_eq!(
        v.largest_output_cap(&denial, &asked, t0(), u64::MAX),
        Some(500)
    );
    assert_eq!(
        v.evaluations(),
        4,
        "1 000 and 700 refused, then 500 allowed"
    );
    let Err(WritError::Denied(again)) = v.authorize(&asked, t0()) else {
        panic!("allowed");
    };
    assert_eq!(again, denial);
    assert_eq!(v.evaluations(), 4, "the refusal came from memory");
}

#[test]
fn no_cap_is_suggested_when_something_else_refused_it() {
    let key = RootKeyPair::generate(KeyId(1));
    let writ = minted(
        &key,
        r#"{"type":"writ:llm","upstream":"openai"}"#,
        r#"{"type":"writ:llm","upstream":"openai","models":["gpt-4o-mini"],"max_output_tokens":500}"#,
    );
    let v = verified(&key, &writ);
    let mut other_model = chat(Some(800));
    other_model.model = Some("gpt-4o".into());
    let Err(WritError::Denied(denial)) = v.authorize(&other_model, t0()) else {
        panic!("allowed");
    };
    assert_eq!(
        v.largest_output_cap(&denial, &other_model, t0(), u64::MAX),
        None
    );
    assert_eq!(denial.denied_by(), writ_token::DeniedBy::MintGrants);
}

#[test]
fn named_upstreams_are_those_every_block_allows() {
    let key = RootKeyPair::generate(KeyId(1));
    let names = |writ: &str| {
        let writ = verified(&key, writ);
        let first = writ.named_upstreams();
        // Read once per verified writ: a second request gets the same set, not a new reading.
        assert!(match (first, writ.named_upstreams()) {
            (Some(a), Some(b)) => std::ptr::eq(a, b),
            (a, b) => a.is_none() && b.is_none(),
        });
        first.map(|s| s.iter().cloned().collect::<Vec<_>>())
    };
    let both = r#"[{"type":"writ:llm","upstream":"openai"},{"type":"writ:llm","upstream":"groq"}]"#;
    assert_eq!(
        names(&minted(
            &key,
            both,
            r#"{"type":"writ:llm","upstream":"groq"}"#
        )),
        Some(vec!["groq".to_string()])
    );
    assert_eq!(
        names(&minted(&key, both, both)),
        Some(vec!["groq".to_string(), "openai".to_string()])
    );
    // An admin grant names no upstream: the writ is not limited by upstream.
    assert_eq!(
        names(&minted(
            &key,
            r#"{"type":"writ:admin"}"#,
            r#"{"type":"writ:admin"}"#
        )),
        None
    );
}
