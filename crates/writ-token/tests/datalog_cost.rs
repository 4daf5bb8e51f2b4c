//! Datalog a holder appends is bounded before it runs: rules are refused, facts and joins
//! capped, and the work of every check bounded for the request at hand (issue 18, item 1).
#![allow(clippy::unwrap_used)]

use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use biscuit_auth::UnverifiedBiscuit;
use biscuit_auth::builder::BlockBuilder;
use writ_token::{
    Api, ArgValue, DatalogError, Grant, KeyId, MintRequest, RequestFacts, RootKeyPair, RootKeys,
    VerifiedWrit, WritError, attenuate, decode, mint, parse_grants,
};

fn t0() -> SystemTime {
    UNIX_EPOCH + Duration::from_secs(1_800_000_000)
}

fn key() -> RootKeyPair {
    RootKeyPair::generate(KeyId(1))
}

fn keys_for(key: &RootKeyPair) -> RootKeys {
    let mut keys = RootKeys::new();
    keys.insert(key.kid(), key.public());
    keys
}

fn mint_grants(key: &RootKeyPair, ceiling: &str, grants: &str) -> String {
    let ceiling: Vec<Grant> = parse_grants(ceiling).unwrap();
    let grants: Vec<Grant> = parse_grants(grants).unwrap();
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
    mint(key, &req).unwrap().0
}

fn llm_writ(key: &RootKeyPair) -> String {
    mint_grants(
        key,
        r#"{"type":"writ:llm","upstream":"demo"}"#,
        r#"{"type":"writ:llm","upstream":"demo","actions":["chat"],"models":["gpt-4o-mini"]}"#,
    )
}

/// Appends raw Datalog as a holder would, offline, with no key but the token's own.
fn append(writ: &str, datalog: &str) -> String {
    let body = writ.strip_prefix("writ_").unwrap();
    let token = UnverifiedBiscuit::from_base64(body).unwrap();
    let block = BlockBuilder::new().code(datalog).unwrap();
    format!("writ_{}", token.append(block).unwrap().to_base64().unwrap())
}

fn verify(key: &RootKeyPair, writ: &str) -> Result<VerifiedWrit, WritError> {
    decode(writ)?.verify(&keys_for(key))
}

fn chat() -> RequestFacts {
    RequestFacts {
        upstream: Some("demo".into()),
        model: Some("gpt-4o-mini".into()),
        ..RequestFacts::new(Api::Llm, "chat", "POST", "/v1/chat/completions")
    }
}

fn facts_source(n: usize) -> String {
    (0..n).map(|i| format!("n({i});")).collect::<String>()
}

/// The issue's bomb: facts and a four-way join in a rule.
fn rule_bomb(facts: usize) -> String {
    format!(
        "{} p($a,$b,$c,$d) <- n($a), n($b), n($c), n($d); check if p(1,2,3,4);",
        facts_source(facts)
    )
}

#[test]
fn rules_appended_by_a_holder_are_refused_before_evaluation() {
    let key = key();
    for facts in [25, 40] {
        let bomb = append(&llm_writ(&key), &rule_bomb(facts));
        let started = Instant::now();
        let err = verify(&key, &bomb).unwrap_err();
        let elapsed = started.elapsed();
        assert_eq!(
            err,
            WritError::Datalog(DatalogError::RulesInBlock { block: 2 }),
            "{facts} facts"
        );
        eprintln!("rule bomb with {facts} facts refused in {elapsed:?}");
    }
    // Even a harmless rule: a holder's block only tests.
    let ruled = append(&llm_writ(&key), "q(1) <- n(1); n(1); check if q(1);");
    assert!(matches!(
        verify(&key, &ruled),
        Err(WritError::Datalog(DatalogError::RulesInBlock { block: 2 }))
    ));
}

#[test]
fn a_cross_product_in_a_check_is_refused_before_it_runs() {
    // No rule at all: the join is in the check, which the library runs with no time limit.
    let key = key();
    let bomb = append(
        &llm_writ(&key),
        &format!(
            "{} check if n($a), n($b), n($c), n($d), $a + $b + $c + $d == -1;",
            facts_source(30)
        ),
    );
    let verified = verify(&key, &bomb).unwrap();
    let started = Instant::now();
    let err = verified.authorize(&chat(), t0()).unwrap_err();
    eprintln!("check bomb refused in {:?}", started.elapsed());
    assert!(
        matches!(
            err,
            WritError::Datalog(DatalogError::TooCostly { block: 2, .. })
        ),
        "{err:?}"
    );
    assert_eq!(
        verified.evaluations(),
        0,
        "refused before the authorizer ran"
    );
}

#[test]
fn too_many_facts_or_joins_in_one_block_are_refused() {
    let key = key();
    let many = append(&llm_writ(&key), &facts_source(33));
    assert_eq!(
        verify(&key, &many).unwrap_err(),
        WritError::Datalog(DatalogError::TooManyFacts {
            block: 2,
            count: 33,
            max: 32
        })
    );
    let body = (0..65)
        .map(|i| format!("model($m{i})"))
        .collect::<Vec<_>>()
        .join(", ");
    let wide = append(&llm_writ(&key), &format!("check if {body};"));
    assert!(matches!(
        verify(&key, &wide),
        Err(WritError::Datalog(DatalogError::TooManyPredicates {
            block: 2,
            count: 65,
            ..
        }))
    ));
}

#[test]
fn nested_closures_over_a_set_are_bounded() {
    // No facts, no join: the work is in the expression, `.all` inside `.all`.
    let key = key();
    let set = (0..200)
        .map(|i| i.to_string())
        .collect::<Vec<_>>()
        .join(",");
    let bomb = append(
        &llm_writ(&key),
        &format!(
            "check if {{{set}}}.all($x -> {{{set}}}.all($y -> {{{set}}}.all($z -> $x + $y + $z >= 0)));"
        ),
    );
    let verified = verify(&key, &bomb).unwrap();
    let started = Instant::now();
    let err = verified.authorize(&chat(), t0()).unwrap_err();
    eprintln!("closure bomb refused in {:?}", started.elapsed());
    assert!(matches!(
        err,
        WritError::Datalog(DatalogError::TooCostly { .. })
    ));
}

#[test]
fn a_join_over_request_facts_is_bounded_by_the_request() {
    // The holder's check joins the request's own arguments with themselves: cheap for a
    // call with three arguments, refused for one with 500.
    let key = key();
    let writ = mint_grants(
        &key,
        r#"{"type":"writ:tool","upstream":"travel","tool":"book_flight","additional_arguments":true}"#,
        r#"{"type":"writ:tool","upstream":"travel","tool":"book_flight","additional_arguments":true}"#,
    );
    let bomb = append(
        &writ,
        "check if arg($a, $x), arg($b, $y), arg($c, $z), $a != \"never\";",
    );
    let verified = verify(&key, &bomb).unwrap();
    let call = |n: usize| RequestFacts {
        upstream: Some("travel".into()),
        tool: Some("book_flight".into()),
        args: (0..n)
            .map(|i| (format!("a{i}"), ArgValue::Int(i as i64)))
            .collect(),
        ..RequestFacts::new(Api::Tool, "tool_call", "POST", "/mcp/travel")
    };
    verified.authorize(&call(3), t0()).unwrap();
    let started = Instant::now();
    let err = verified.authorize(&call(500), t0()).unwrap_err();
    eprintln!("500-argument join refused in {:?}", started.elapsed());
    assert!(matches!(
        err,
        WritError::Datalog(DatalogError::TooCostly { block: 2, .. })
    ));
}

#[test]
fn writs_attenuated_with_grants_and_checks_stay_within_the_bound() {
    // What writ itself appends (grants compiled to checks, budgets, a time bound and a
    // raw Datalog check) passes, for the largest request the gateway inspects.
    let key = key();
    let ceiling = r#"{"type":"writ:tool","upstream":"travel","tool":"book_flight","additional_arguments":true}"#;
    let mut writ = mint_grants(
        &key,
        ceiling,
        r#"{"type":"writ:tool","upstream":"travel","tool":"book_flight","arguments":{"flight":"LH123","date":"2026-12-01","seat":{"one_of":["1A","1B"]}}}"#,
    );
    for _ in 0..6 {
        let grants = parse_grants(
            r#"[{"type":"writ:tool","upstream":"travel","tool":"book_flight","arguments":{"flight":"LH123","date":"2026-12-01","seat":{"one_of":["1A","1B"]}}},
                {"type":"writ:budget","usd_micros":1500000}]"#,
        )
        .unwrap();
        writ = attenuate(&writ, &grants).unwrap();
    }
    writ = append(
        &writ,
        r#"check if time($t), $t <= 2100-01-01T00:00:00Z; check if arg("flight", $f), $f.starts_with("LH");"#,
    );
    let verified = verify(&key, &writ).unwrap();
    let mut args = vec![
        ("flight".to_string(), ArgValue::Str("LH123".into())),
        ("date".to_string(), ArgValue::Str("2026-12-01".into())),
        ("seat".to_string(), ArgValue::Str("1A".into())),
    ];
    let call = RequestFacts {
        upstream: Some("travel".into()),
        tool: Some("book_flight".into()),
        args: args.clone(),
        ..RequestFacts::new(Api::Tool, "tool_call", "POST", "/mcp/travel")
    };
    verified.authorize(&call, t0()).unwrap();
    // A call with the most arguments accepted and a long path is still evaluated (and
    // refused for its extra argument, by the grants, not by the bound).
    args.extend((3..writ_token::MAX_ARGS).map(|i| (format!("x{i}"), ArgValue::Int(1))));
    let big = RequestFacts {
        args,
        ..call.clone()
    };
    let err = verified.authorize(&big, t0()).unwrap_err();
    assert!(matches!(err, WritError::Denied(_)), "{err:?}");
}
