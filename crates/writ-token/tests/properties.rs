//! Properties of the writ format over generated inputs: decoding never panics, a signed
//! writ cannot be altered into another valid one, and compiled grants mean what they say.
#![allow(clippy::unwrap_used)]

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use proptest::prelude::*;
use writ_token::{
    Api, Grant, KeyId, LlmGrant, MintRequest, RequestFacts, RootKeyPair, RootKeys, WritError,
    decode, mint, parse_grants,
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
        cnf_jkt: None,
        audience: None,
    };
    mint(key, &req).unwrap().0
}

fn facts(model: &str, cap: Option<u64>) -> RequestFacts {
    RequestFacts {
        upstream: Some("u".into()),
        model: Some(model.into()),
        max_output_tokens: cap,
        ..RequestFacts::new(Api::Llm, "chat", "POST", "/v1/chat/completions")
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
        // Arbitrary text is refused for its form or its signature, never as a writ that
        // verified and then expired, was revoked or was denied.
        let refused_as_no_writ = |e: &WritError| matches!(
            e,
            WritError::Malformed { .. }
                | WritError::TooLarge { .. }
                | WritError::TooManyBlocks { .. }
                | WritError::UnknownKeyId { .. }
                | WritError::BadSignature
        );
        if let Ok(unverified) = decode(&text) {
            let e = unverified.verify(&keys).unwrap_err();
            prop_assert!(refused_as_no_writ(&e), "{:?}", e);
        }
        let prefixed = format!("writ_{text}");
        if let Ok(unverified) = decode(&prefixed) {
            let e = unverified.verify(&keys).unwrap_err();
            prop_assert!(refused_as_no_writ(&e), "{:?}", e);
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
            prop_assert!(matches!(
                v.authorize(&facts("other", None), t0()),
                Err(WritError::Denied(_))
            ));
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
            single_use: false,
        });
        let json = serde_json::to_string(&grant).unwrap();
        prop_assert_eq!(parse_grants(&json).unwrap(), vec![grant.clone()]);
        let writ = decode(&mint_one(&key, &[grant])).unwrap().verify(&keys).unwrap();
        let allowed = writ.authorize(&facts(&models[0], Some(asked)), t0());
        prop_assert_eq!(allowed.is_ok(), asked <= cap);
        if let Err(e) = allowed {
            prop_assert!(matches!(e, WritError::Denied(_)), "{:?}", e);
        }
        let outside = writ.authorize(&facts(&other, Some(1)), t0());
        prop_assert_eq!(outside.is_ok(), models.contains(&other));
        if let Err(e) = outside {
            prop_assert!(matches!(e, WritError::Denied(_)));
        }
    }
}

/// A random `writ:llm` or `writ:tool` grant over a small universe, so requests often match.
fn small_grant() -> impl Strategy<Value = Grant> {
    let pick = |xs: &'static [&'static str]| {
        proptest::option::of(
            proptest::sample::subsequence(xs, 1..=xs.len())
                .prop_map(|v| v.into_iter().map(String::from).collect::<Vec<_>>()),
        )
    };
    let llm = (
        prop_oneof![Just("u"), Just("v")],
        pick(&["chat", "embeddings"]),
        pick(&["a", "b", "c"]),
        proptest::option::of(0u64..40),
    )
        .prop_map(|(u, actions, models, cap)| {
            Grant::Llm(LlmGrant {
                upstream: u.into(),
                actions,
                models,
                max_output_tokens: cap,
                single_use: false,
            })
        });
    let tool = (
        prop_oneof![Just("u"), Just("v")],
        prop_oneof![Just("t1"), Just("t2")],
        proptest::option::of(0i64..5),
        any::<bool>(),
    )
        .prop_map(|(u, tool, max, extra)| {
            let mut arguments = std::collections::BTreeMap::new();
            if let Some(max) = max {
                arguments.insert(
                    "n".to_string(),
                    writ_token::Constraint::Rule(writ_token::ConstraintRule {
                        max: Some(max),
                        ..Default::default()
                    }),
                );
            }
            Grant::Tool(writ_token::ToolGrant {
                upstream: u.into(),
                tool: tool.into(),
                arguments,
                additional_arguments: extra,
                single_use: false,
            })
        });
    prop_oneof![llm, tool]
}

fn small_request() -> impl Strategy<Value = RequestFacts> {
    let llm = (
        prop_oneof![Just("u"), Just("v")],
        prop_oneof![Just("chat"), Just("embeddings")],
        prop_oneof![Just("a"), Just("b"), Just("c"), Just("d")],
        proptest::option::of(0u64..50),
    )
        .prop_map(|(u, op, model, cap)| RequestFacts {
            upstream: Some(u.into()),
            model: Some(model.into()),
            max_output_tokens: cap,
            ..RequestFacts::new(Api::Llm, op, "POST", "/v1/x")
        });
    let tool = (
        prop_oneof![Just("u"), Just("v")],
        prop_oneof![Just("t1"), Just("t2")],
        0i64..6,
        any::<bool>(),
    )
        .prop_map(|(u, tool, n, extra)| {
            let args = if extra {
                serde_json::json!({"n": n, "x": 1})
            } else {
                serde_json::json!({"n": n})
            };
            RequestFacts {
                upstream: Some(u.into()),
                tool: Some(tool.into()),
                args: writ_token::flatten_arguments(&args).unwrap(),
                ..RequestFacts::new(Api::Tool, "tool_call", "POST", "/mcp/u")
            }
        });
    prop_oneof![llm, tool]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]

    /// A sub-agent holding an attenuated writ can do nothing its parent's writ could not.
    #[test]
    fn attenuated_allow_implies_parent_allow(
        grants in prop::collection::vec(small_grant(), 1..4),
        attenuations in prop::collection::vec(prop::collection::vec(small_grant(), 1..3), 1..3),
        requests in prop::collection::vec(small_request(), 8),
    ) {
        let (key, keys) = setup();
        let ceiling = parse_grants(r#"[{"type":"writ:llm","upstream":"u"},{"type":"writ:llm","upstream":"v"},
            {"type":"writ:tool","upstream":"u","tool":"t1","additional_arguments":true},
            {"type":"writ:tool","upstream":"v","tool":"t2","additional_arguments":true}]"#).unwrap();
        let req = MintRequest { tenant: "t", agent: "a", ceiling: &ceiling, grants: &grants, ttl: Duration::from_secs(30), max_ttl: Duration::from_secs(30), now: t0() ,    cnf_jkt: None, audience: None,};
        let parent_text = mint(&key, &req).unwrap().0;
        let parent = decode(&parent_text).unwrap().verify(&keys).unwrap();
        let mut child_text = parent_text.clone();
        for block in &attenuations {
            child_text = writ_token::attenuate(&child_text, block).unwrap();
        }
        let child = decode(&child_text).unwrap().verify(&keys).unwrap();
        for facts in &requests {
            if child.authorize(facts, t0()).is_ok() {
                prop_assert!(parent.authorize(facts, t0()).is_ok(), "child allowed what the parent does not: {facts:?}");
            }
        }
    }
}

/// One time check as Datalog: `check if` or `reject if`, the time compared either way
/// round with any operator to t0 + `offset` seconds, optionally or'ed with a model.
fn time_check() -> impl Strategy<Value = String> {
    (
        prop::bool::ANY,
        prop::sample::select(vec!["<", "<=", ">", ">=", "=="]),
        prop::bool::ANY,
        0u64..35,
        prop::bool::ANY,
    )
        .prop_map(|(reject, op, var_left, offset, or_model)| {
            // t0 is 2027-01-15T08:00:00Z.
            let date = format!("2027-01-15T08:00:{offset:02}Z");
            let cmp = if var_left {
                format!("$t {op} {date}")
            } else {
                format!("{date} {op} $t")
            };
            let kind = if reject { "reject if" } else { "check if" };
            let alt = if or_model { " or model(\"m2\")" } else { "" };
            format!("{kind} time($t), {cmp}{alt};")
        })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    /// The memo of the last allowed request never changes an answer: a writ asked the same
    /// requests over seconds answers each exactly as a freshly verified copy that runs the
    /// authorizer every time, whatever time checks its blocks hold.
    #[test]
    fn remembered_answers_equal_fresh_evaluation(
        checks in prop::collection::vec(time_check(), 1..4),
        asks in prop::collection::vec((0u64..33, prop::bool::ANY), 1..24),
    ) {
        let (key, keys) = setup();
        let code = serde_json::to_string(&checks.concat()).unwrap();
        let grants = parse_grants(&format!(
            r#"[{{"type":"writ:llm","upstream":"u"}},{{"type":"writ:datalog","code":{code}}}]"#
        )).unwrap();
        let text = mint_one(&key, &grants);
        let remembering = decode(&text).unwrap().verify(&keys).unwrap();
        for (secs, second_model) in asks {
            let facts = facts(if second_model { "m2" } else { "m1" }, None);
            let now = t0() + Duration::from_secs(secs);
            let fresh = decode(&text).unwrap().verify(&keys).unwrap();
            prop_assert_eq!(
                remembering.authorize(&facts, now).is_ok(),
                fresh.authorize(&facts, now).is_ok(),
                "{} at t0+{}s for {:?}", checks.concat(), secs, facts.model
            );
        }
    }
}
