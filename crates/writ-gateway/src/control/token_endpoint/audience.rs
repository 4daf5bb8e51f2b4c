//! The audience a token request asks for: the RFC 8707 `resource` parameter, held byte
//! for byte to the MCP resources the gateway advertises in its RFC 9728 metadata, and the
//! grants a resource implies when the client (MCP's own SDKs) sends no
//! `authorization_details`.

use writ_store::Agent;
use writ_token::Grant;

use super::oauth_error::OAuthError;
use crate::gateway::Gateway;
use crate::pipeline::challenge::protected_upstream;

/// Most resources named in one refusal; the rest are counted.
const MAX_LISTED: usize = 16;

/// A protected resource a writ is asked for: its canonical URI and the upstream behind it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Resource {
    /// The URI, as the resource's metadata advertises it (`<issuer>/mcp/<upstream>`).
    pub(super) uri: String,
    /// The configured upstream it fronts.
    pub(super) upstream: String,
}

/// Every protected resource the gateway serves, by URI: the same set its
/// protected-resource metadata is served for, with the same `resource` value.
fn advertised(gw: &Gateway) -> Vec<Resource> {
    let issuer = gw.issuer();
    let declared = gw.tenancy.declared();
    let mut resources: Vec<Resource> = declared
        .upstreams
        .keys()
        .flat_map(|name| {
            writ_providers::ROUTES.iter().filter_map(|route| {
                let path = route.protected_resource_path(name)?;
                protected_upstream(gw, route, &path)?;
                Some(Resource {
                    uri: format!("{issuer}{path}"),
                    upstream: name.clone(),
                })
            })
        })
        .collect();
    resources.sort_by(|a, b| a.uri.cmp(&b.uri));
    resources.dedup();
    resources
}

/// The resource a token request names in `resource`, if any: one the gateway advertises,
/// compared byte for byte (no normalisation: a trailing slash, another spelling of the
/// host, a query or a fragment is another resource). Anything else is `invalid_target`,
/// listing the resources there are; the value sent is never echoed.
pub(super) fn requested(
    gw: &Gateway,
    resource: Option<&str>,
) -> Result<Option<Resource>, OAuthError> {
    let Some(asked) = resource else {
        return Ok(None);
    };
    let resources = advertised(gw);
    if let Some(found) = resources.iter().find(|r| r.uri == asked) {
        return Ok(Some(found.clone()));
    }
    let known = if resources.is_empty() {
        "this gateway serves no MCP resource".to_string()
    } else {
        let mut listed: Vec<String> = resources
            .iter()
            .take(MAX_LISTED)
            .map(|r| r.uri.clone())
            .collect();
        if resources.len() > MAX_LISTED {
            listed.push(format!("and {} more", resources.len() - MAX_LISTED));
        }
        format!("the resources are: {}", listed.join(", "))
    };
    Err(OAuthError::invalid_target(format!(
        "resource must be the URI of an MCP endpoint of this gateway, exactly as its metadata advertises it; {known}"
    )))
}

/// The grants a writ for `resource` gets when none are asked for: the agent's ceiling
/// grants for the resource's upstream, with the ceiling's budgets. `invalid_target` when
/// the ceiling names that upstream nowhere.
pub(super) fn ceiling_grants(agent: &Agent, resource: &Resource) -> Result<Vec<Grant>, OAuthError> {
    let grants: Vec<Grant> = agent
        .ceiling
        .iter()
        .filter(|g| {
            g.upstream() == Some(resource.upstream.as_str()) || matches!(g, Grant::Budget(_))
        })
        .cloned()
        .collect();
    if !grants.iter().any(Grant::is_access) {
        return Err(OAuthError::invalid_target(format!(
            "agent `{}` may not use {}",
            agent.name, resource.uri
        )));
    }
    Ok(grants)
}

/// Refuses (`invalid_target`) grants asked for alongside `resource` when an access grant
/// is for anything but the resource's upstream: the writ could never use it there.
pub(super) fn grants_for(grants: &[Grant], resource: &Resource) -> Result<(), OAuthError> {
    match grants
        .iter()
        .position(|g| g.is_access() && g.upstream() != Some(resource.upstream.as_str()))
    {
        None => Ok(()),
        Some(i) => Err(OAuthError::invalid_target(format!(
            "authorization_details[{i}] is not for {}",
            resource.uri
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;
    use writ_store::AgentCredentials;

    fn agent(ceiling: &str) -> Agent {
        Agent {
            tenant: "default".into(),
            name: "planner".into(),
            ceiling: writ_token::parse_grants(ceiling).expect("ceiling"),
            max_ttl: Duration::from_secs(30),
            credentials: AgentCredentials {
                public_keys: vec![],
                secret_hash: None,
            },
        }
    }

    fn travel() -> Resource {
        Resource {
            uri: "https://gw.example/mcp/travel".into(),
            upstream: "travel".into(),
        }
    }

    #[test]
    fn ceiling_grants_are_the_ceilings_for_the_upstream_and_its_budgets() {
        let a = agent(
            r#"[{"type":"writ:tool","upstream":"travel","tool":"book_flight"},
                {"type":"writ:tool","upstream":"crm","tool":"find"},
                {"type":"writ:llm","upstream":"openai"},
                {"type":"writ:budget","usd_micros":5000},
                {"type":"writ:tool","upstream":"travel","tool":"list_flights"}]"#,
        );
        let grants = ceiling_grants(&a, &travel()).expect("granted");
        let expected: Vec<Grant> = [0, 3, 4].iter().map(|&i| a.ceiling[i].clone()).collect();
        assert_eq!(grants, expected);
    }

    #[test]
    fn a_ceiling_without_the_upstream_is_an_invalid_target() {
        let a = agent(
            r#"[{"type":"writ:tool","upstream":"crm","tool":"find"},{"type":"writ:budget","tokens":5}]"#,
        );
        let e = ceiling_grants(&a, &travel()).expect_err("nothing for travel");
        assert_eq!(e.code, super::super::OAuthErrorCode::InvalidTarget);
        assert_eq!(
            e.description,
            "agent `planner` may not use https://gw.example/mcp/travel"
        );
    }

    #[test]
    fn asked_grants_must_all_be_for_the_resource() {
        let ok = writ_token::parse_grants(
            r#"[{"type":"writ:tool","upstream":"travel","tool":"book_flight"},{"type":"writ:budget","tokens":5}]"#,
        )
        .expect("grants");
        assert!(grants_for(&ok, &travel()).is_ok());
        let other = writ_token::parse_grants(
            r#"[{"type":"writ:tool","upstream":"travel","tool":"book_flight"},{"type":"writ:admin"}]"#,
        )
        .expect("grants");
        let e = grants_for(&other, &travel()).expect_err("admin is no grant on travel");
        assert_eq!(e.code, super::super::OAuthErrorCode::InvalidTarget);
        assert!(
            e.description.starts_with("authorization_details[1]"),
            "{}",
            e.description
        );
    }
}
