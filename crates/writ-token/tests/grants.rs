//! Tool, HTTP and admin grants; budgets and single use; attenuation; hostile blocks.
#![allow(clippy::unwrap_used)]

use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use biscuit_auth::builder::BlockBuilder;
use biscuit_auth::{Biscuit, UnverifiedBiscuit};
use serde_json::json;
use writ_token::{
    Api, Grant, KeyId, MintRequest, RequestFacts, RootKeyPair, RootKeys, VerifiedWrit, WritError,
    attenuate, decode, flatten_arguments, mint, parse_grants,
};

fn t0() -> SystemTime {
    UNIX_EPOCH + Duration::from_secs(1_800_000_000)
}

struct Fixture {
    key: RootKeyPair,
    keys: RootKeys,
}

impl Fixture {
    fn new() -> Self {
        let key = RootKeyPair::generate(KeyId(1));
        let mut keys = RootKeys::new();
        keys.insert(key.kid(), key.public());
        Self { key, keys }
    }

    fn mint(&self, ceiling: &str, grants: &str) -> String {
        let ceiling = parse_grants(ceiling).unwrap();
        let grants = parse_grants(grants).unwrap();
        let req = MintRequest {
            tenant: "acme",
            agent: "travel-agent",
            ceiling: &ceiling,
            grants: &grants,
            ttl: Duration::from_secs(30),
            max_ttl: Duration::from_secs(30),
            now: t0(),
            cnf_jkt: None,
            audience: None,
        };
        mint(&self.key, &req).unwrap().0
    }

    fn verify(&self, writ: &str) -> Result<VerifiedWrit, WritError> {
        decode(writ)?.verify(&self.keys)
    }
}

fn tool_call(tool: &str, args: serde_json::Value) -> RequestFacts {
    RequestFacts {
        upstream: Some("travel".into()),
        tool: Some(tool.into()),
        args: flatten_arguments(&args).unwrap(),
        ..RequestFacts::new(Api::Tool, "tool_call", "POST", "/mcp/travel")
    }
}

fn http(method: &str, path: &str) -> RequestFacts {
    RequestFacts {
        upstream: Some("crm".into()),
        ..RequestFacts::new(Api::Http, "http", method, path)
    }
}

const FLIGHT_CEILING: &str =
    r#"{"type":"writ:tool","upstream":"travel","tool":"book_flight","additional_arguments":true}"#;
const FLIGHT: &str = r#"{"type":"writ:tool","upstream":"travel","tool":"book_flight","arguments":{"flight":"LH123","date":"2026-12-01"}}"#;

fn denied_block(r: Result<writ_token::Authorization, WritError>) -> u32 {
    match r {
        Err(WritError::Denied(d)) => d.failed_checks[0].0,
        other => panic!("expected a denial, got {other:?}"),
    }
}

#[test]
fn the_flight_example() {
    let f = Fixture::new();
    let writ = f.verify(&f.mint(FLIGHT_CEILING, FLIGHT)).unwrap();
    let ok = tool_call(
        "book_flight",
        json!({"flight": "LH123", "date": "2026-12-01"}),
    );
    assert!(writ.authorize(&ok, t0()).is_ok());
    for bad in [
        tool_call(
            "book_flight",
            json!({"flight": "LH124", "date": "2026-12-01"}),
        ),
        tool_call(
            "book_flight",
            json!({"flight": "LH123", "date": "2026-12-02"}),
        ),
        tool_call(
            "cancel_flight",
            json!({"flight": "LH123", "date": "2026-12-01"}),
        ),
        tool_call("book_flight", json!({"flight": "LH123"})),
        tool_call(
            "book_flight",
            json!({"flight": "LH123", "date": "2026-12-01", "class": "first"}),
        ),
    ] {
        let Err(WritError::Denied(d)) = writ.authorize(&bad, t0()) else {
            panic!("{bad:?} allowed")
        };
        assert!(d.failed_checks.iter().any(|(block, _)| *block == 1), "{d}");
    }
    // Another tool is outside the ceiling too.
    let f2 = Fixture::new();
    let writ = f2
        .verify(&f2.mint(
            FLIGHT_CEILING,
            r#"{"type":"writ:tool","upstream":"travel","tool":"cancel_flight"}"#,
        ))
        .unwrap();
    assert_eq!(
        denied_block(writ.authorize(&tool_call("cancel_flight", json!({})), t0())),
        0
    );
}

#[test]
fn argument_constraints() {
    let f = Fixture::new();
    let writ = f
        .verify(&f.mint(
            FLIGHT_CEILING,
            r#"{"type":"writ:tool","upstream":"travel","tool":"book_flight","arguments":{
                "seats":{"min":1,"max":2},"class":{"one_of":["economy","premium"]},
                "passenger.name":{"prefix":"Ada "},"insured":true}}"#,
        ))
        .unwrap();
    let call = |v| writ.authorize(&tool_call("book_flight", v), t0());
    let good = json!({"seats": 2, "class": "economy", "passenger": {"name": "Ada Lovelace"}, "insured": true});
    assert!(call(good).is_ok());
    for bad in [
        json!({"seats": 3, "class": "economy", "passenger": {"name": "Ada L"}, "insured": true}),
        json!({"seats": 0, "class": "economy", "passenger": {"name": "Ada L"}, "insured": true}),
        json!({"seats": "2", "class": "economy", "passenger": {"name": "Ada L"}, "insured": true}),
        json!({"seats": 1, "class": "first", "passenger": {"name": "Ada L"}, "insured": true}),
        json!({"seats": 1, "class": "economy", "passenger": {"name": "Bob"}, "insured": true}),
        json!({"seats": 1, "class": "economy", "passenger": {"name": 7}, "insured": true}),
        json!({"seats": 1, "class": "economy", "passenger": {"name": "Ada L"}, "insured": false}),
        json!({"seats": 1, "class": "economy", "passenger": {"name": "Ada L", "age": 3}, "insured": true}),
    ] {
        assert!(
            matches!(call(bad.clone()), Err(WritError::Denied(_))),
            "{bad}"
        );
    }
}

#[test]
fn http_path_templates() {
    let f = Fixture::new();
    let writ = f
        .verify(&f.mint(
            r#"{"type":"writ:http","upstream":"crm","path":"/v1/bookings/{id}"}"#,
            r#"{"type":"writ:http","upstream":"crm","methods":["GET"],"path":"/v1/bookings/{id}","params":{"id":{"max":100}}}"#,
        ))
        .unwrap();
    assert!(
        writ.authorize(&http("GET", "/v1/bookings/42"), t0())
            .is_ok()
    );
    for (method, path) in [
        ("DELETE", "/v1/bookings/42"),
        ("GET", "/v1/bookings/101"),
        ("GET", "/v1/bookings/abc"),
        ("GET", "/v1/bookings/42/extra"),
        ("GET", "/v1/bookings"),
        ("GET", "/v1/bookingsX/42"),
        ("GET", "/x/v1/bookings/42"),
    ] {
        assert!(
            matches!(
                writ.authorize(&http(method, path), t0()),
                Err(WritError::Denied(_))
            ),
            "{method} {path}"
        );
    }
    let exact = f
        .verify(&f.mint(
            r#"{"type":"writ:http","upstream":"crm","path":"/v1/bookings/{id}"}"#,
            r#"{"type":"writ:http","upstream":"crm","path":"/v1/bookings/{id}","params":{"id":"bk_9"}}"#,
        ))
        .unwrap();
    assert!(
        exact
            .authorize(&http("PUT", "/v1/bookings/bk_9"), t0())
            .is_ok()
    );
    assert!(matches!(
        exact.authorize(&http("PUT", "/v1/bookings/bk_8"), t0()),
        Err(WritError::Denied(_))
    ));
}

#[test]
fn grants_of_one_kind_never_match_another() {
    let f = Fixture::new();
    // A writ:llm grant on "travel" does not allow tool calls on an upstream of that name.
    let writ = f
        .verify(&f.mint(
            r#"{"type":"writ:llm","upstream":"travel"}"#,
            r#"{"type":"writ:llm","upstream":"travel"}"#,
        ))
        .unwrap();
    assert!(matches!(
        writ.authorize(&tool_call("book_flight", json!({})), t0()),
        Err(WritError::Denied(_))
    ));
    let mut admin = RequestFacts::new(Api::Admin, "admin", "POST", "/admin/v1/revocations");
    admin.admin_tenant = Some("acme".into());
    assert!(matches!(
        writ.authorize(&admin, t0()),
        Err(WritError::Denied(_))
    ));
    let admin_writ = f
        .verify(&f.mint(
            r#"{"type":"writ:admin","tenant":"acme"}"#,
            r#"{"type":"writ:admin","tenant":"acme"}"#,
        ))
        .unwrap();
    assert!(admin_writ.authorize(&admin, t0()).is_ok());
    admin.admin_tenant = Some("other".into());
    assert!(matches!(
        admin_writ.authorize(&admin, t0()),
        Err(WritError::Denied(_))
    ));
    assert!(matches!(
        admin_writ.authorize(&tool_call("book_flight", json!({})), t0()),
        Err(WritError::Denied(_))
    ));
}

#[test]
fn budgets_take_the_minimum_and_single_use_sticks() {
    let f = Fixture::new();
    let writ = f.mint(
        r#"[{"type":"writ:llm","upstream":"u"},{"type":"writ:budget","tokens":1000,"usd_micros":500}]"#,
        r#"[{"type":"writ:llm","upstream":"u"},{"type":"writ:budget","tokens":2000}]"#,
    );
    let claims = f.verify(&writ).unwrap().claims().clone();
    assert_eq!(
        (
            claims.budget_tokens,
            claims.budget_usd_micros,
            claims.single_use
        ),
        (Some(1000), Some(500), false)
    );
    let narrowed = attenuate(
        &writ,
        &parse_grants(r#"{"type":"writ:budget","tokens":10}"#).unwrap(),
    )
    .unwrap();
    let narrowed = attenuate(
        &narrowed,
        &parse_grants(r#"{"type":"writ:llm","upstream":"u","single_use":true}"#).unwrap(),
    )
    .unwrap();
    let claims = f.verify(&narrowed).unwrap().claims().clone();
    assert_eq!(
        (
            claims.budget_tokens,
            claims.budget_usd_micros,
            claims.single_use
        ),
        (Some(10), Some(500), true)
    );
}

#[test]
fn attenuation_narrows_and_is_enforced() {
    let f = Fixture::new();
    let writ = f.mint(
        r#"{"type":"writ:llm","upstream":"u"}"#,
        r#"{"type":"writ:llm","upstream":"u","models":["a","b"]}"#,
    );
    let narrowed = attenuate(
        &writ,
        &parse_grants(r#"{"type":"writ:llm","upstream":"u","models":["a"]}"#).unwrap(),
    )
    .unwrap();
    let v = f.verify(&narrowed).unwrap();
    assert_eq!(v.claims().block_count, 3);
    let chat = |m: &str| RequestFacts {
        upstream: Some("u".into()),
        model: Some(m.into()),
        ..RequestFacts::new(Api::Llm, "chat", "POST", "/v1/chat/completions")
    };
    assert!(v.authorize(&chat("a"), t0()).is_ok());
    assert_eq!(denied_block(v.authorize(&chat("b"), t0())), 2);
    // Widening in an attenuation changes nothing: block 1 still holds.
    let wider = attenuate(
        &writ,
        &parse_grants(r#"{"type":"writ:llm","upstream":"u","models":["c"]}"#).unwrap(),
    )
    .unwrap();
    assert!(matches!(
        f.verify(&wider).unwrap().authorize(&chat("c"), t0()),
        Err(WritError::Denied(_))
    ));
    assert!(matches!(
        attenuate(
            "sk-nope",
            &parse_grants(r#"{"type":"writ:llm","upstream":"u"}"#).unwrap()
        ),
        Err(WritError::MissingPrefix)
    ));
}

/// Appends raw Datalog the way a hostile holder would.
fn append_raw(writ: &str, code: &str) -> String {
    let token = UnverifiedBiscuit::from_base64(writ.strip_prefix("writ_").unwrap()).unwrap();
    let block = BlockBuilder::new().code(code).unwrap();
    format!("writ_{}", token.append(block).unwrap().to_base64().unwrap())
}

#[test]
fn facts_in_appended_blocks_widen_nothing() {
    let f = Fixture::new();
    let writ = f.mint(
        r#"{"type":"writ:llm","upstream":"u"}"#,
        r#"{"type":"writ:llm","upstream":"u","models":["a"]}"#,
    );
    let chat_b = RequestFacts {
        upstream: Some("u".into()),
        model: Some("b".into()),
        ..RequestFacts::new(Api::Llm, "chat", "POST", "/v1/chat/completions")
    };
    for code in [
        r#"time(9999-01-01T00:00:00Z); expires_at(9999-01-01T00:00:00Z);"#,
        r#"right("u", "chat"); grant_ok("g0"); model("a"); writ_version(1);"#,
        r#"agent("root"); tenant("other"); token_id("x");"#,
    ] {
        let hostile = f.verify(&append_raw(&writ, code)).unwrap();
        assert_eq!(hostile.claims().agent, "travel-agent", "{code}");
        assert_eq!(hostile.claims().tenant, "acme");
        assert!(
            matches!(hostile.authorize(&chat_b, t0()), Err(WritError::Denied(_))),
            "{code} widened the writ"
        );
        let late = t0() + Duration::from_secs(31);
        let mut chat_a = chat_b.clone();
        chat_a.model = Some("a".into());
        assert!(
            matches!(
                hostile.authorize(&chat_a, late),
                Err(WritError::Expired { .. })
            ),
            "{code}"
        );
    }
}

#[test]
fn rules_in_appended_blocks_are_refused() {
    // A rule could derive what earlier checks look for; a holder's block may only test.
    let f = Fixture::new();
    let writ = f.mint(
        r#"{"type":"writ:llm","upstream":"u"}"#,
        r#"{"type":"writ:llm","upstream":"u","models":["a"]}"#,
    );
    let hostile = append_raw(
        &writ,
        r#"model("a") <- model($m); upstream("u") <- time($t);"#,
    );
    assert!(matches!(
        f.verify(&hostile),
        Err(WritError::Datalog(writ_token::DatalogError::RulesInBlock {
            block: 2
        }))
    ));
}

#[test]
fn exploding_datalog_hits_the_run_limits() {
    let f = Fixture::new();
    let writ = f.mint(
        r#"{"type":"writ:llm","upstream":"u"}"#,
        r#"{"type":"writ:llm","upstream":"u"}"#,
    );
    let many_facts: String = (0..2000).map(|i| format!("n({i});")).collect();
    let edges: String = (0..300).map(|i| format!("edge({i}, {});", i + 1)).collect();
    let recursive = format!(
        "{edges} path($a, $b) <- edge($a, $b); path($a, $c) <- path($a, $b), edge($b, $c);"
    );
    let cross = "a(1);a(2);a(3);a(4);a(5);a(6);a(7);a(8);a(9);a(10); p($a,$b,$c,$d) <- a($a),a($b),a($c),a($d);";
    // Each is refused before it is evaluated: too large to decode, or a rule in a block.
    let cases = [
        (many_facts.as_str(), true),
        (recursive.as_str(), false),
        (cross, false),
    ];
    for (code, too_large) in cases {
        let started = Instant::now();
        let hostile = append_raw(&writ, code);
        let outcome = f.verify(&hostile).and_then(|v| {
            let facts = RequestFacts {
                upstream: Some("u".into()),
                ..RequestFacts::new(Api::Llm, "chat", "POST", "/")
            };
            v.authorize(&facts, t0())
        });
        assert!(
            match &outcome {
                Err(WritError::TooLarge { .. }) => too_large,
                Err(WritError::Datalog(writ_token::DatalogError::RulesInBlock { block: 2 })) => {
                    !too_large
                }
                _ => false,
            },
            "{}: {:?}",
            &code[..30.min(code.len())],
            outcome.err()
        );
        assert!(
            started.elapsed() < Duration::from_secs(2),
            "evaluation stalled"
        );
    }
}

#[test]
fn revocation_ids_cover_every_block() {
    let f = Fixture::new();
    let writ = f.mint(
        r#"{"type":"writ:llm","upstream":"u"}"#,
        r#"{"type":"writ:llm","upstream":"u"}"#,
    );
    let parent = f.verify(&writ).unwrap().revocation_ids().to_vec();
    let child_writ = attenuate(
        &writ,
        &parse_grants(r#"{"type":"writ:llm","upstream":"u"}"#).unwrap(),
    )
    .unwrap();
    let child = f.verify(&child_writ).unwrap().revocation_ids().to_vec();
    assert_eq!(child.len(), 3);
    assert_eq!(&child[..2], &parent[..], "a child carries its parent's ids");
    // Sanity: the library agrees on what a verified token is.
    Biscuit::from_base64(writ.strip_prefix("writ_").unwrap(), f.key.public()).unwrap();
}

#[test]
fn minting_needs_an_access_grant() {
    let f = Fixture::new();
    let budget_only = parse_grants(r#"{"type":"writ:budget","tokens":5}"#).unwrap();
    let ceiling = parse_grants(r#"{"type":"writ:llm","upstream":"u"}"#).unwrap();
    let req = MintRequest {
        tenant: "t",
        agent: "a",
        ceiling: &ceiling,
        grants: &budget_only,
        ttl: Duration::from_secs(5),
        max_ttl: Duration::from_secs(30),
        now: t0(),
        cnf_jkt: None,
        audience: None,
    };
    assert!(matches!(mint(&f.key, &req), Err(WritError::Grant(_))));
    let _: &[Grant] = &budget_only;
}
