//! Target `grant_datalog`: grant JSON (the token endpoint's `authorization_details`, an
//! agent's registered ceiling, `writ attenuate`'s input) parsed, validated and compiled to
//! Biscuit Datalog by minting.

use std::time::Duration;

use writ_token::{
    Api, ArgValue, Grant, GrantError, MintRequest, RequestFacts, WritError, attenuate, decode,
    mint, parse_grants,
};

use crate::fixed_key::{fixed_now, fixed_root_key, fixed_root_keys};

/// Input: grant JSON, one grant or an array.
///
/// Invariants: parsing never panics; grants it accepts that include an access grant mint
/// a writ (as ceiling and as requested grants) which verifies, whose evaluation for a
/// request each grant speaks of is within the cost bound (so the gateway never mints a writ
/// it would refuse as too costly), and which a holder can narrow with the same grants;
/// accepted grants without an access grant are refused by mint for exactly that.
pub fn grant_datalog(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let Ok(grants) = parse_grants(text) else {
        return;
    };
    let key = fixed_root_key();
    let request = MintRequest {
        tenant: "default",
        agent: "fuzz",
        ceiling: &grants,
        grants: &grants,
        ttl: Duration::from_secs(300),
        max_ttl: Duration::from_secs(3600),
        now: fixed_now() - Duration::from_secs(60),
        cnf_jkt: None,
        audience: None,
    };
    let minted = mint(&key, &request);
    if !grants.iter().any(Grant::is_access) {
        assert!(
            matches!(minted, Err(WritError::Grant(GrantError::NoAccessGrant))),
            "grants with no access grant were not refused for it: {minted:?}"
        );
        return;
    }
    let (writ, claims) = minted.unwrap_or_else(|e| panic!("accepted grants do not mint: {e}"));
    let keys = fixed_root_keys();
    let verified = decode(&writ)
        .and_then(|w| w.verify(&keys))
        .unwrap_or_else(|e| panic!("a writ minted from accepted grants does not verify: {e}"));
    assert_eq!(
        verified.claims(),
        &claims,
        "minted claims differ from verified ones"
    );
    for facts in grants.iter().filter_map(request_for) {
        if let Err(e) = verified.evaluation_work(&facts) {
            panic!("accepted grants compile beyond the evaluation-cost bound: {e}");
        }
        let _ = verified.authorize(&facts, fixed_now());
    }
    let narrowed = attenuate(&writ, &grants)
        .unwrap_or_else(|e| panic!("accepted grants cannot narrow a writ: {e}"));
    if let Err(e) = decode(&narrowed).and_then(|w| w.verify(&keys)) {
        panic!("a writ narrowed by accepted grants does not verify: {e}");
    }
}

/// A request of the kind `grant` allows, naming what it names.
fn request_for(grant: &Grant) -> Option<RequestFacts> {
    let args = |names: &mut dyn Iterator<Item = &String>| -> Vec<(String, ArgValue)> {
        names
            .map(|n| (n.clone(), ArgValue::Str("x".repeat(64))))
            .collect()
    };
    Some(match grant {
        Grant::Llm(g) => RequestFacts {
            upstream: Some(g.upstream.clone()),
            model: g.models.as_ref().and_then(|m| m.first().cloned()),
            max_output_tokens: g.max_output_tokens,
            ..RequestFacts::new(Api::Llm, "chat", "POST", "/v1/chat/completions")
        },
        Grant::Tool(g) => RequestFacts {
            upstream: Some(g.upstream.clone()),
            tool: Some(g.tool.clone()),
            mcp_method: Some("tools/call".into()),
            args: args(&mut g.arguments.keys()),
            ..RequestFacts::new(Api::Tool, "tool_call", "POST", "/mcp/fuzz")
        },
        Grant::Prompt(g) => RequestFacts {
            upstream: Some(g.upstream.clone()),
            prompt: Some(g.prompt.clone()),
            mcp_method: Some("prompts/get".into()),
            args: args(&mut g.arguments.keys()),
            ..RequestFacts::new(Api::Tool, "prompt_get", "POST", "/mcp/fuzz")
        },
        Grant::Resource(g) => RequestFacts {
            upstream: Some(g.upstream.clone()),
            uri: Some("file:///fuzz".into()),
            mcp_method: Some("resources/read".into()),
            ..RequestFacts::new(Api::Tool, "resource_read", "POST", "/mcp/fuzz")
        },
        Grant::Http(g) => RequestFacts {
            upstream: Some(g.upstream.clone()),
            ..RequestFacts::new(Api::Http, "http", "GET", &g.path)
        },
        Grant::Admin(g) => RequestFacts {
            admin_tenant: g.tenant.clone(),
            ..RequestFacts::new(Api::Admin, "admin", "GET", "/admin/v1/agents")
        },
        Grant::Budget(_) | Grant::Datalog(_) => return None,
    })
}
