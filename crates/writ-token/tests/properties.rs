//! Properties of the writ format over generated inputs: decoding never panics, a signed
//! writ cannot be altered into another valid one, and compiled grants mean what they say.
#![allow(clippy::unwrap_used)]

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use proptest::prelude::*;
use writ_token::{
    Grant, KeyId, LlmGrant, MintRequest, RequestFacts, RootKeyPair, RootKeys, WritError, decode,
    mint, parse_grants,
};

fn t0() -> SystemTime {
    UNIX_EPOCH + Duration::from_secs(1_800_000_000)
}

fn setup() -> (RootKeyPair, RootKeys) {
    let key = RootKeyPair::generate(KeyId(1));
    let mut keys = RootKeys::new();
    keys.insert(key.kid(), key.public());
    (key, keys)
}

fn mint_one(key: &RootKeyPair, grants: &[Grant]) -> String {
    let ceiling = parse_grants(r#"{"type":"writ:llm","upstream":"u"}"#).unwrap();
    let req = MintRequest {
        tenant: "t",
        agent: "a",
        ceiling: &ceiling,
        grants,
        ttl: Duration::from_secs(30),
        max_ttl: Duration::from_secs(30),
        now: t0(),
    };
    mint(key, &req).unwrap().0
}

fn facts(model: &str, cap: Option<u64>) -> RequestFacts {
    RequestFacts {
        upstream: "u".into(),
        operation: "chat".into(),
        method: "POST".into(),
        path: "/v1/chat/completions".into(),
        model: Some(model.into()),
        max_output_tokens: cap,
        stream: false,
    }
}

/// Names as grants allow them: printable, including quotes and Datalog punctuation.
fn name() -> impl Strategy<Value = String> {
    "[ -~]{1,24}"
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn decoding_arbitrary_text_never_panics(text in ".{0,600}") {
        let (_, keys) = setup();
        if let Ok(unverified) = decode(&text) {
            prop_assert!(unverified.verify(&keys).is_err());
        }
        let prefixed = format!("writ_{text}");
        if let Ok(unverified) = decode(&prefixed) {
            prop_assert!(unverified.verify(&keys).is_err());
        }
    }

    #[test]
    fn a_changed_character_never_yields_a_different_valid_writ(pos in any::<prop::sample::Index>(), c in "[A-Za-z0-9_=-]") {
        let (key, keys) = setup();
        let grants = parse_grants(r#"{"type":"writ:llm","upstream":"u","models":["m"]}"#).unwrap();
        let writ = mint_one(&key, &grants);
        let original = decode(&writ).unwrap().verify(&keys).unwrap();
        let at = "writ_".len() + pos.index(writ.len() - "writ_".len());
        let mut changed = writ.clone();
        changed.replace_range(at..at + 1, &c);
        if let Ok(v) = decode(&changed).unwrap().verify(&keys) {
            // Only an encoding-equivalent text may verify, and it must be the same writ.
            prop_assert_eq!(v.claims(), original.claims());
            prop_assert!(v.authorize(&facts("other", None), t0()).is_err());
        }
    }

    #[test]
    fn compiled_llm_grants_mean_what_they_say(
        models in prop::collection::vec(name(), 1..4),
        other in name(),
        cap in 1u64..10_000,
        asked in 0u64..20_000,
    ) {
        let (key, keys) = setup();
        let grant = Grant::Llm(LlmGrant {
            upstream: "u".into(),
            actions: Some(vec!["chat".into()]),
            models: Some(models.clone()),
            max_output_tokens: Some(cap),
        });
        let json = serde_json::to_string(&grant).unwrap();
        prop_assert_eq!(parse_grants(&json).unwrap(), vec![grant.clone()]);
        let writ = decode(&mint_one(&key, &[grant])).unwrap().verify(&keys).unwrap();
        let allowed = writ.authorize(&facts(&models[0], Some(asked)), t0());
        prop_assert_eq!(allowed.is_ok(), asked <= cap);
        let outside = writ.authorize(&facts(&other, Some(1)), t0());
        prop_assert_eq!(outside.is_ok(), models.contains(&other));
        if let Err(e) = outside {
            prop_assert!(matches!(e, WritError::Denied(_)));
        }
    }
}
