//! The OAuth challenge of a refusal on a route whose clients discover their authorization
//! server from the resource (MCP): `WWW-Authenticate: Bearer resource_metadata="…"`.
//!
//! MCP clients read the challenge of a 401 to find the resource's RFC 9728 metadata, and
//! from it the token endpoint (MCP authorization spec; RFC 9728 §5.1); a 403 that says
//! `error="insufficient_scope"` tells them their token is valid but does not cover the
//! call (RFC 6750 §3.1). Other routes keep the gateway's plain Bearer challenge.

use axum::response::Response;
use http::HeaderValue;
use writ_providers::RouteSpec;
use writ_token::WritError;

use crate::error::GatewayError;
use crate::gateway::Gateway;

/// Where a protected resource's metadata is served: this path, then the resource's own
/// path (RFC 9728 §3.1), such as `/.well-known/oauth-protected-resource/mcp/travel`.
pub(crate) const RESOURCE_METADATA: &str = "/.well-known/oauth-protected-resource";

/// The OAuth scopes writ names for an MCP resource: one, `mcp`, asking for access to the
/// resource as far as the writ's `authorization_details` allow. What a writ allows is
/// stated by those grants (tool, arguments, budgets), never by a scope; the token
/// endpoint accepts `mcp` (and echoes it) and refuses any other scope.
pub(crate) const MCP_SCOPES: [&str; 1] = ["mcp"];

/// The upstream a request on `route` to `path` addresses as a protected resource: a
/// configured upstream that serves `route`, named in the path as the route reads it.
/// `None` for routes without discovery, unknown upstreams and upstreams of another
/// dialect, so nothing a client wrote is ever echoed back unchecked.
pub(crate) fn protected_upstream<'p>(
    gw: &Gateway,
    route: &RouteSpec,
    path: &'p str,
) -> Option<&'p str> {
    let name = route.protected_resource_upstream(path)?;
    let declared = gw.tenancy.declared();
    let upstream = declared.upstreams.get(name)?;
    upstream.provider.serves(route).then_some(name)
}

/// The canonical URI of the protected resource a request on `route` to `path` is at (see
/// [`protected_upstream`]): the gateway's issuer, then the path, byte for byte the
/// `resource` its metadata advertises and writs bound to it name as their audience.
pub(crate) fn resource_uri(gw: &Gateway, route: &RouteSpec, path: &str) -> Option<String> {
    protected_upstream(gw, route, path)?;
    Some(format!("{}{path}", gw.issuer()))
}

/// The metadata URL to challenge with for a request on `route` to `path`, when the path
/// addresses a protected resource (see [`protected_upstream`]): the gateway's issuer,
/// [`RESOURCE_METADATA`], then the path.
pub(crate) fn metadata_url(gw: &Gateway, route: &RouteSpec, path: &str) -> Option<String> {
    protected_upstream(gw, route, path)?;
    Some(format!("{}{RESOURCE_METADATA}{path}", gw.issuer()))
}

/// The response for `error` on a route of `dialect` (see `GatewayError::into_response_to`;
/// on MCP routes, a JSON-RPC error answering `rpc_id`), its `WWW-Authenticate` replaced by the challenge of [`www_authenticate`] when the
/// request addressed a resource whose metadata is at `metadata_url`.
pub(crate) fn refusal(
    error: GatewayError,
    dialect: writ_providers::Dialect,
    metadata_url: Option<&str>,
    rpc_id: Option<&serde_json::Value>,
) -> Response {
    let challenge = metadata_url.and_then(|url| www_authenticate(url, &error));
    // A 401 is answered before the body is read (but for an aged-out writ's, read for the
    // client's retry), and the server then drops the connection. Said outright, or a
    // client that pools connections sends its next request (MCP's SDKs: the metadata
    // fetch) into a closing socket.
    let unread = challenge.is_some()
        && error.classify().status == http::StatusCode::UNAUTHORIZED
        && !crate::pipeline::authenticate::only_aged(&error);
    let mut response = error.into_response_to(dialect, rpc_id);
    if let Some(value) = challenge {
        response
            .headers_mut()
            .insert(http::header::WWW_AUTHENTICATE, value);
    }
    if unread {
        response
            .headers_mut()
            .insert(http::header::CONNECTION, HeaderValue::from_static("close"));
    }
    response
}

/// The `WWW-Authenticate` value for `error` on a resource whose metadata is at
/// `metadata_url`: a grant denial is `insufficient_scope`; any other 401 points to the
/// metadata and names the scope (with `invalid_token` when a writ was presented). `None`
/// for other refusals, and for DPoP failures, whose own challenge (RFC 9449 §7.1) stands.
pub(crate) fn www_authenticate(metadata_url: &str, error: &GatewayError) -> Option<HeaderValue> {
    let value = match error {
        GatewayError::Dpop(_) => return None,
        GatewayError::Denied(_) | GatewayError::Writ(WritError::Denied(_)) => {
            // Every scope the call needs, in one challenge (RFC 6750 §3.1): writ names one.
            format!(
                r#"Bearer error="insufficient_scope", scope="{}", resource_metadata="{metadata_url}""#,
                MCP_SCOPES.join(" ")
            )
        }
        GatewayError::MissingWrit => format!(
            r#"Bearer realm="writ", resource_metadata="{metadata_url}", scope="{}""#,
            MCP_SCOPES.join(" ")
        ),
        other if other.classify().status == http::StatusCode::UNAUTHORIZED => format!(
            r#"Bearer realm="writ", error="invalid_token", resource_metadata="{metadata_url}", scope="{}""#,
            MCP_SCOPES.join(" ")
        ),
        _ => return None,
    };
    HeaderValue::try_from(value).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    const URL: &str = "https://gw.example/.well-known/oauth-protected-resource/mcp/travel";

    fn challenge(error: &GatewayError) -> Option<String> {
        www_authenticate(URL, error).map(|v| v.to_str().unwrap_or_default().to_string())
    }

    #[test]
    fn a_missing_writ_points_to_the_metadata_without_an_error_code() {
        assert_eq!(
            challenge(&GatewayError::MissingWrit).as_deref(),
            Some(
                format!(r#"Bearer realm="writ", resource_metadata="{URL}", scope="mcp""#).as_str()
            )
        );
    }

    #[test]
    fn an_invalid_writ_is_invalid_token() {
        let got = challenge(&GatewayError::Writ(WritError::BadSignature)).unwrap_or_default();
        assert!(
            got.starts_with(r#"Bearer realm="writ", error="invalid_token", "#),
            "{got}"
        );
        assert!(
            got.contains(&format!(r#"resource_metadata="{URL}""#)),
            "{got}"
        );
    }

    #[test]
    fn other_refusals_get_no_discovery_challenge() {
        assert_eq!(challenge(&GatewayError::NotFound), None);
        assert_eq!(challenge(&GatewayError::AlreadyUsed), None);
        assert_eq!(challenge(&GatewayError::UnknownUpstream), None);
    }
}
