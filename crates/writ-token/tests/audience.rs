//! Audience-bound writs (RFC 8707): minted or delegated for one resource, refused at any
//! other and wherever no resource is stated; the audience read back only from what the
//! gateway signed.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use biscuit_auth::builder::BlockBuilder;
use writ_token::{
    Api, Delegation, DeniedBy, Grant, KeyId, MintRequest, RequestFacts, RootKeyPair, RootKeys,
    VerifiedWrit, WRIT_PREFIX, WritError, decode, flatten_arguments, mint, parse_grants,
};

const TRAVEL: &str = "https://gw.example/mcp/travel";
const CRM: &str = "https://gw.example/mcp/crm";

fn t0() -> SystemTime {
    UNIX_EPOCH + Duration::from_secs(1_800_000_000)
}

fn grants() -> Vec<Grant> {
    parse_grants(
        r#"[{"type":"writ:tool","upstream":"travel","tool":"book_flight","additional_arguments":true},
            {"type":"writ:tool","upstream":"crm","tool":"book_flight","additional_arguments":true},
            {"type":"writ:llm","upstream":"openai"}]"#,
    )
    .expect("grants parse")
}

fn mint_for(key: &RootKeyPair, audience: Option<&str>) -> String {
    let grants = grants();
    let req = MintRequest {
        tenant: "default",
        agent: "planner",
        ceiling: &grants,
        grants: &grants,
        ttl: Duration::from_secs(30),
        max_ttl: Duration::from_secs(30),
        now: t0(),
        cnf_jkt: None,
        audience,
    };
    mint(key, &req).expect("mint").0
}

fn keys(key: &RootKeyPair) -> RootKeys {
    let mut keys = RootKeys::new();
    keys.insert(key.kid(), key.public());
    keys
}

fn verify(writ: &str, key: &RootKeyPair) -> VerifiedWrit {
    decode(writ)
        .expect("decodes")
        .verify(&keys(key))
        .expect("verifies")
}

/// A `tools/call` of `book_flight` on `upstream`, at `resource` as the gateway states it.
fn call(upstream: &str, resource: Option<&str>) -> RequestFacts {
    RequestFacts {
        upstream: Some(upstream.into()),
        tool: Some("book_flight".into()),
        args: flatten_arguments(&serde_json::json!({"flight": "LH123"})).expect("arguments"),
        resource: resource.map(str::to_string),
        ..RequestFacts::new(Api::Tool, "tool_call", "POST", "/")
    }
}

fn chat() -> RequestFacts {
    RequestFacts {
        upstream: Some("openai".into()),
        model: Some("gpt-4o".into()),
        ..RequestFacts::new(Api::Llm, "chat", "POST", "/v1/chat/completions")
    }
}

fn at() -> SystemTime {
    t0() + Duration::from_secs(1)
}

fn denial(result: Result<writ_token::Authorization, WritError>) -> writ_token::Denial {
    match result {
        Err(WritError::Denied(d)) => d,
        other => panic!("expected a denial, got {other:?}"),
    }
}

#[test]
fn a_writ_for_one_resource_is_refused_at_any_other_and_off_resources() {
    let key = RootKeyPair::generate(KeyId(1));
    let writ = verify(&mint_for(&key, Some(TRAVEL)), &key);
    assert_eq!(writ.claims().audience.as_deref(), Some(TRAVEL));

    writ.authorize(&call("travel", Some(TRAVEL)), at())
        .expect("allowed at its resource");
    // The grants would allow each of these; the audience does not.
    for facts in [
        call("crm", Some(CRM)),
        call("travel", Some(CRM)),
        call("travel", None),
        call("travel", Some("https://gw.example/mcp/travel/")),
        chat(),
    ] {
        let d = denial(writ.authorize(&facts, at()));
        assert_eq!(d.denied_by(), DeniedBy::Audience, "{facts:?}: {d}");
    }
    // The memo of the allowed call is never an answer for another resource.
    writ.authorize(&call("travel", Some(TRAVEL)), at())
        .expect("still allowed");
    denial(writ.authorize(&call("travel", Some(CRM)), at()));
}

#[test]
fn a_writ_without_audience_works_at_every_resource_and_route() {
    let key = RootKeyPair::generate(KeyId(1));
    let writ = verify(&mint_for(&key, None), &key);
    assert_eq!(writ.claims().audience, None);
    for facts in [
        call("travel", Some(TRAVEL)),
        call("crm", Some(CRM)),
        call("travel", None),
        chat(),
    ] {
        writ.authorize(&facts, at()).expect("no audience: allowed");
    }
}

#[test]
fn the_audience_is_a_value_never_datalog() {
    let key = RootKeyPair::generate(KeyId(1));
    let hostile = r#"https://gw.example/mcp/x"); check if false; //"#;
    let writ = verify(&mint_for(&key, Some(hostile)), &key);
    assert_eq!(writ.claims().audience.as_deref(), Some(hostile));
    writ.authorize(&call("travel", Some(hostile)), at())
        .expect("the exact string is the audience");
    denial(writ.authorize(&call("travel", Some("https://gw.example/mcp/x")), at()));

    let grants = grants();
    let long = "a".repeat(writ_token::MAX_AUDIENCE_BYTES + 1);
    for bad in ["", long.as_str(), "https://gw.example/\u{0}"] {
        let req = MintRequest {
            tenant: "default",
            agent: "planner",
            ceiling: &grants,
            grants: &grants,
            ttl: Duration::from_secs(30),
            max_ttl: Duration::from_secs(30),
            now: t0(),
            cnf_jkt: None,
            audience: Some(bad),
        };
        assert!(
            matches!(mint(&key, &req), Err(WritError::InvalidAudience { .. })),
            "{bad:.20}"
        );
    }
}

#[test]
fn a_holder_cannot_state_the_audience_claim() {
    let key = RootKeyPair::generate(KeyId(1));
    for (minted, expected) in [(None, None), (Some(TRAVEL), Some(TRAVEL))] {
        let writ = mint_for(&key, minted);
        let body = writ.strip_prefix(WRIT_PREFIX).expect("prefix");
        let token = biscuit_auth::UnverifiedBiscuit::from_base64(body).expect("parses");
        let block = BlockBuilder::new()
            .fact(format!(r#"audience("{CRM}")"#).as_str())
            .expect("a fact");
        let appended = format!(
            "{WRIT_PREFIX}{}",
            token
                .append(block)
                .expect("appends")
                .to_base64()
                .expect("encodes")
        );
        let appended = verify(&appended, &key);
        assert_eq!(appended.claims().audience.as_deref(), expected);
    }
}

fn delegate(
    writ: &VerifiedWrit,
    key: &RootKeyPair,
    audience: Option<&str>,
) -> Result<String, WritError> {
    let grants = grants();
    writ.delegate(&Delegation {
        grants: &grants,
        actor_ceiling: &grants,
        delegated_to: "default/researcher",
        expires_at: t0() + Duration::from_secs(20),
        signer: key,
        audience,
    })
}

#[test]
fn delegation_keeps_or_adds_the_audience_and_never_changes_it() {
    let key = RootKeyPair::generate(KeyId(1));

    // Unbound subject: the delegated writ may be bound.
    let open = verify(&mint_for(&key, None), &key);
    let bound = verify(&delegate(&open, &key, Some(TRAVEL)).expect("adds"), &key);
    assert_eq!(bound.claims().audience.as_deref(), Some(TRAVEL));
    bound
        .authorize(&call("travel", Some(TRAVEL)), at())
        .expect("at its resource");
    let d = denial(bound.authorize(&call("crm", Some(CRM)), at()));
    assert_eq!(d.denied_by(), DeniedBy::Audience, "{d}");
    denial(bound.authorize(&chat(), at()));
    // The subject itself is unchanged.
    open.authorize(&chat(), at()).expect("subject unbound");

    // Bound subject: the same audience, or none asked, keeps it; another is refused.
    let subject = verify(&mint_for(&key, Some(TRAVEL)), &key);
    for asked in [Some(TRAVEL), None] {
        let kept = verify(&delegate(&subject, &key, asked).expect("keeps"), &key);
        assert_eq!(kept.claims().audience.as_deref(), Some(TRAVEL), "{asked:?}");
        kept.authorize(&call("travel", Some(TRAVEL)), at())
            .expect("at its resource");
        denial(kept.authorize(&call("crm", Some(CRM)), at()));
    }
    assert_eq!(
        delegate(&subject, &key, Some(CRM)).expect_err("another audience"),
        WritError::AudienceConflict {
            current: TRAVEL.to_string()
        }
    );
    // Delegating a delegated, bound writ again to another audience: refused too.
    assert!(matches!(
        delegate(&bound, &key, Some(CRM)),
        Err(WritError::AudienceConflict { .. })
    ));
}
