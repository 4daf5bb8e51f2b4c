//! Route: which configured upstream a request goes to, and the path it is sent on.
//!
//! The router already matched the path to a route. OpenAI-style routes name no upstream:
//! it is the one in `x-writ-upstream`, or the only upstream serving the route's dialect,
//! or, when several do, the only one of them the writ's grants name. Tool and HTTP
//! routes name it in the path (`/mcp/{upstream}`, `/u/{upstream}/…`).
//!
//! The route is chosen before authorization and decides nothing by itself: the upstream
//! chosen is a request fact, and the writ must still allow it.

use std::collections::BTreeMap;
use std::sync::Arc;

use http::HeaderMap;
use writ_providers::{RouteSpec, UpstreamInPath};
use writ_token::VerifiedWrit;

use crate::error::GatewayError;
use crate::tenancy::{Resolved, Snapshot};
use crate::upstream::client::Upstream;

/// Header a client may set to choose among several upstreams of one dialect.
pub(crate) const UPSTREAM_HEADER: &str = "x-writ-upstream";

/// Where a request goes. It holds the upstream (and so the credential) it was routed to:
/// a rotation meanwhile applies to the next request, not to this one.
pub(crate) struct Target {
    pub(crate) upstream: Arc<Upstream>,
    /// Path appended to the upstream's base URL; also the `path` fact.
    pub(crate) path: String,
}

/// Where the request goes: the upstream it names (header or path), or the one its
/// dialect and `writ` leave, among those the writ's tenant sees in `snapshot`, the
/// request's (`writ.toml`'s, with the tenant's credential where it has one, and its own). Fails when the path does not fit
/// the route, the header is not text, no upstream (or more than one) is left, the one named
/// does not serve the route, or it has no credential for this tenant.
pub(crate) fn target(
    snapshot: &Snapshot,
    route: &RouteSpec,
    path: &str,
    headers: &HeaderMap,
    writ: &VerifiedWrit,
) -> Result<Target, GatewayError> {
    let tenant = writ.claims().tenant.as_str();
    let declared = &snapshot.declared.upstreams;
    let widened = snapshot.widens(tenant);
    let (name, upstream_path) = match route.upstream_in_path(path).ok_or(GatewayError::NotFound)? {
        UpstreamInPath::Unnamed => {
            let name = match headers.get(UPSTREAM_HEADER) {
                Some(v) => v
                    .to_str()
                    .map_err(|_| GatewayError::InvalidHeader {
                        name: UPSTREAM_HEADER,
                    })?
                    .to_string(),
                None if widened => chosen_by_writ(&snapshot.ready_for(tenant), route, writ)?,
                None => match snapshot.declared.defaults.get(&route.dialect()) {
                    Some(Ok(name)) => name.clone(),
                    Some(Err(_)) => chosen_by_writ(&declared_map(declared), route, writ)?,
                    None => {
                        return Err(GatewayError::NoUpstream {
                            reason: "none is configured",
                            choices: Vec::new(),
                        });
                    }
                },
            };
            (name, path.to_string())
        }
        UpstreamInPath::Named {
            name,
            rest,
            passthrough,
        } => {
            if passthrough {
                check_passthrough_path(rest)?;
            }
            (name.to_string(), rest.to_string())
        }
    };
    let upstream = match snapshot.resolve(tenant, &name) {
        Resolved::Upstream(upstream) => upstream,
        Resolved::Unknown => return Err(GatewayError::UnknownUpstream),
        Resolved::Unavailable(why) => {
            return Err(GatewayError::UpstreamUnavailable {
                tenant: tenant.to_string(),
                upstream: name,
                why,
            });
        }
    };
    if !upstream.provider.serves(route) {
        return Err(GatewayError::UnknownUpstream);
    }
    Ok(Target {
        upstream,
        path: upstream_path,
    })
}

/// `writ.toml`'s upstreams, as [`chosen_by_writ`] takes them.
fn declared_map(declared: &BTreeMap<String, Arc<Upstream>>) -> BTreeMap<&str, &Arc<Upstream>> {
    declared.iter().map(|(n, u)| (n.as_str(), u)).collect()
}

/// Of the several `upstreams` serving `route`, the one the writ's grants name; refused,
/// naming the choices, when the grants name none or more than one of them.
fn chosen_by_writ(
    upstreams: &BTreeMap<&str, &Arc<Upstream>>,
    route: &RouteSpec,
    writ: &VerifiedWrit,
) -> Result<String, GatewayError> {
    let named = writ.named_upstreams();
    let configured: Vec<&str> = upstreams
        .iter()
        .filter(|(_, u)| u.provider.serves(route))
        .map(|(name, _)| *name)
        .collect();
    if configured.is_empty() {
        return Err(GatewayError::NoUpstream {
            reason: "none is configured",
            choices: Vec::new(),
        });
    }
    let choices: Vec<&str> = configured
        .into_iter()
        .filter(|name| named.is_none_or(|n| n.contains(*name)))
        .collect();
    match choices.as_slice() {
        [one] => Ok(one.to_string()),
        [] => Err(GatewayError::NoUpstream {
            reason: "several are configured and this writ's grants name none of them",
            choices: Vec::new(),
        }),
        _ => Err(GatewayError::NoUpstream {
            reason: "several are configured and this writ's grants allow more than one; name one in the x-writ-upstream header",
            choices: choices.iter().map(|c| c.to_string()).collect(),
        }),
    }
}

/// A path is authorized as written and sent as written, so it must mean the same to
/// the upstream: no `.`/`..` segments, no empty segments, no encoded `/` or `\`.
fn check_passthrough_path(path: &str) -> Result<(), GatewayError> {
    let lower = path.to_ascii_lowercase();
    let segments: Vec<&str> = path[1..].split('/').collect();
    let last = segments.len() - 1;
    let bad = segments
        .iter()
        .enumerate()
        .any(|(i, s)| matches!(*s, "." | "..") || (s.is_empty() && i != last))
        || lower.contains("%2f")
        || lower.contains("%5c")
        || lower.contains("%2e")
        || path.contains('\\');
    if bad {
        return Err(GatewayError::InvalidPath);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pipeline::fixture::Fixture;

    const TWO_OPENAI: &str = "[upstreams.a]\nkind = \"openai\"\napi_key = \"sk-a-0123456789\"\n\
         [upstreams.b]\nkind = \"openai\"\napi_key = \"sk-b-0123456789\"\n\
         [upstreams.claude]\nkind = \"anthropic\"\napi_key = \"sk-ant-0123456789\"\n\
         [upstreams.crm]\nkind = \"http\"\nbase_url = \"https://crm.example.com\"\napi_key = \"c-0123456789\"\n";

    fn spec(pattern: &str) -> RouteSpec {
        *RouteSpec::find(pattern).expect("a route")
    }

    fn named(upstream: &str) -> HeaderMap {
        let mut headers = HeaderMap::new();
        headers.insert(UPSTREAM_HEADER, upstream.parse().unwrap());
        headers
    }

    #[tokio::test]
    async fn the_header_names_the_upstream_and_must_name_one_serving_the_route() {
        let f = Fixture::start(TWO_OPENAI).await;
        let writ = f.verified(&f.mint(r#"{"type":"writ:llm","upstream":"a"}"#, None));
        let chat = spec("/v1/chat/completions");
        let to = |headers: &HeaderMap| {
            target(
                &f.gw.tenancy.snapshot(),
                &chat,
                "/v1/chat/completions",
                headers,
                &writ,
            )
            .map(|t| (t.upstream.name.clone(), t.path))
        };
        // The header wins over the writ's grants: the writ still has to allow it.
        assert_eq!(
            to(&named("b")).unwrap(),
            ("b".to_string(), "/v1/chat/completions".to_string())
        );
        assert!(matches!(
            to(&named("claude")),
            Err(GatewayError::UnknownUpstream)
        ));
        assert!(matches!(
            to(&named("nope")),
            Err(GatewayError::UnknownUpstream)
        ));
        let mut bad = HeaderMap::new();
        bad.insert(
            UPSTREAM_HEADER,
            http::HeaderValue::from_bytes(b"\xff").unwrap(),
        );
        assert!(matches!(
            to(&bad),
            Err(GatewayError::InvalidHeader {
                name: UPSTREAM_HEADER
            })
        ));
    }

    #[tokio::test]
    async fn without_a_header_the_only_upstream_or_the_one_the_writ_names_is_chosen() {
        let f = Fixture::start(TWO_OPENAI).await;
        let chat = spec("/v1/chat/completions");
        let route_for = |grants: &str| {
            let writ = f.verified(&f.mint(grants, None));
            target(
                &f.gw.tenancy.snapshot(),
                &chat,
                "/v1/chat/completions",
                &HeaderMap::new(),
                &writ,
            )
            .map(|t| t.upstream.name.clone())
        };
        assert_eq!(
            route_for(r#"{"type":"writ:llm","upstream":"b"}"#).unwrap(),
            "b"
        );
        let both = r#"[{"type":"writ:llm","upstream":"a"},{"type":"writ:llm","upstream":"b"}]"#;
        assert!(matches!(
            route_for(both),
            Err(GatewayError::NoUpstream { choices, .. }) if choices == ["a", "b"]
        ));
        assert!(matches!(
            route_for(r#"{"type":"writ:llm","upstream":"claude"}"#),
            Err(GatewayError::NoUpstream { choices, reason })
                if choices.is_empty() && reason.contains("name none of them")
        ));
        // One anthropic upstream: it is the default whatever the writ names.
        let writ = f.verified(&f.mint(r#"{"type":"writ:llm","upstream":"a"}"#, None));
        let messages = spec("/v1/messages");
        let t = target(
            &f.gw.tenancy.snapshot(),
            &messages,
            "/v1/messages",
            &HeaderMap::new(),
            &writ,
        )
        .unwrap();
        assert_eq!(t.upstream.name, "claude");
        // No gemini upstream at all: refused, with no choice to offer.
        let gemini = spec("/v1beta/models/{*model_action}");
        let none = target(
            &f.gw.tenancy.snapshot(),
            &gemini,
            "/v1beta/models/m:generateContent",
            &HeaderMap::new(),
            &writ,
        );
        assert!(
            matches!(none, Err(GatewayError::NoUpstream { choices, reason })
                if choices.is_empty() && reason == "none is configured"),
            "not 'several are configured'"
        );
    }

    #[tokio::test]
    async fn a_passthrough_path_names_its_upstream_and_keeps_the_rest() {
        let f = Fixture::start(TWO_OPENAI).await;
        let writ = f.verified(&f.mint(r#"{"type":"writ:llm","upstream":"a"}"#, None));
        let http = spec("/u/{upstream}/{*rest}");
        let to = |path: &str| {
            target(
                &f.gw.tenancy.snapshot(),
                &http,
                path,
                &HeaderMap::new(),
                &writ,
            )
            .map(|t| (t.upstream.name.clone(), t.path))
        };
        assert_eq!(
            to("/u/crm/v1/bookings/42").unwrap(),
            ("crm".to_string(), "/v1/bookings/42".to_string())
        );
        assert!(matches!(to("/u/crm"), Err(GatewayError::NotFound)));
        assert!(matches!(
            to("/u/crm/a/../b"),
            Err(GatewayError::InvalidPath)
        ));
        // An upstream of another kind is not reachable through the passthrough route.
        assert!(matches!(
            to("/u/a/v1/chat/completions"),
            Err(GatewayError::UnknownUpstream)
        ));
    }

    #[test]
    fn refuses_paths_that_could_mean_something_else_upstream() {
        for bad in [
            "/a/../b",
            "/a/./b",
            "/a//b",
            "/a/%2e%2e/b",
            "/a%2Fb",
            "/a\\b",
            "/a/%5c",
        ] {
            assert!(
                matches!(check_passthrough_path(bad), Err(GatewayError::InvalidPath)),
                "{bad}"
            );
        }
        for good in ["/", "/v1/bookings/42", "/v1/bookings/42/", "/a%20b"] {
            assert!(check_passthrough_path(good).is_ok(), "{good}");
        }
    }
}
