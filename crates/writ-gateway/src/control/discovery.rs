//! OAuth discovery for clients that find their authorization server from the resource
//! (MCP): RFC 9728 protected-resource metadata for each MCP upstream and for the gateway
//! itself, and RFC 8414 authorization-server metadata for the token endpoint (with an
//! authorization endpoint that only refuses, for clients that insist on one).
//!
//! Every document names the gateway's issuer (`Gateway::issuer`, the URL client
//! assertions name in `aud`) byte for byte, so the URL a client discovered, the issuer it
//! checks and the audience it signs for are one string. The documents are public: they
//! hold nothing that the token endpoint's own errors would not tell.

use std::sync::Arc;

use axum::Router;
use axum::extract::{Request, State};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use http::{HeaderValue, header};
use serde_json::{Value, json};
use writ_token::{Api, GRANT_TYPES};

use crate::control::token_endpoint;
use crate::error::GatewayError;
use crate::gateway::Gateway;
use crate::pipeline::challenge::{MCP_SCOPES, RESOURCE_METADATA, protected_upstream};

/// Where the authorization-server metadata is served (RFC 8414 §3).
const AUTHORIZATION_SERVER_METADATA: &str = "/.well-known/oauth-authorization-server";

/// The discovery routes: the gateway's own resource metadata, one per MCP upstream under
/// it, and the authorization server's.
pub(crate) fn routes(gw: Arc<Gateway>) -> Router {
    Router::new()
        .route(RESOURCE_METADATA, get(gateway_resource))
        .route(
            &format!("{RESOURCE_METADATA}/{{*resource}}"),
            get(upstream_resource),
        )
        .route(AUTHORIZATION_SERVER_METADATA, get(authorization_server))
        .route(
            token_endpoint::AUTHORIZE_PATH,
            get(token_endpoint::authorize).post(token_endpoint::authorize),
        )
        .with_state(gw)
}

/// `GET /.well-known/oauth-protected-resource`: the gateway as one resource, for clients
/// that fall back to the root form. It names no scope: writs state what they allow in
/// `authorization_details`, of any type.
async fn gateway_resource(State(gw): State<Arc<Gateway>>) -> Response {
    let issuer = gw.issuer();
    document(json!({
        "resource": issuer,
        "authorization_servers": [issuer],
        "bearer_methods_supported": ["header"],
        "dpop_signing_alg_values_supported": dpop_algs(),
        "authorization_details_types_supported": GRANT_TYPES,
        "resource_name": "writ gateway",
    }))
}

/// `GET /.well-known/oauth-protected-resource/mcp/{upstream}`: the metadata of one MCP
/// upstream's endpoint, read from the raw path as the data plane reads it (nothing is
/// percent-decoded). A 404 in the gateway's error shape, echoing nothing, for any path
/// that does not name a configured upstream serving a discoverable route.
async fn upstream_resource(State(gw): State<Arc<Gateway>>, req: Request) -> Response {
    let path = req
        .uri()
        .path()
        .strip_prefix(RESOURCE_METADATA)
        .unwrap_or_default();
    let Some(name) = writ_providers::ROUTES
        .iter()
        .find_map(|route| protected_upstream(&gw, route, path))
    else {
        return GatewayError::NotFound.into_response();
    };
    let issuer = gw.issuer();
    document(json!({
        "resource": format!("{issuer}{path}"),
        "authorization_servers": [issuer],
        "scopes_supported": MCP_SCOPES,
        "bearer_methods_supported": ["header"],
        "dpop_signing_alg_values_supported": dpop_algs(),
        "authorization_details_types_supported": Api::Tool.grant_types(),
        "resource_name": format!("MCP server `{name}` through writ"),
    }))
}

/// `GET /.well-known/oauth-authorization-server`: the token endpoint and what it accepts
/// (its grant types include CIBA's polling grant, for mints held for approval; there is no
/// backchannel authentication endpoint: a mint is held at the token endpoint itself).
/// No response type is supported: the authorization endpoint named only refuses (see
/// `token_endpoint::authorize`), since agents authenticate themselves and no person is
/// asked.
async fn authorization_server(State(gw): State<Arc<Gateway>>) -> Response {
    let issuer = gw.issuer();
    document(json!({
        "issuer": issuer,
        "authorization_endpoint": format!("{issuer}{}", token_endpoint::AUTHORIZE_PATH),
        "token_endpoint": format!("{issuer}{}", token_endpoint::PATH),
        "grant_types_supported": token_endpoint::GRANT_TYPES,
        "response_types_supported": [],
        "token_endpoint_auth_methods_supported": token_endpoint::AUTH_METHODS,
        "token_endpoint_auth_signing_alg_values_supported": token_endpoint::ASSERTION_ALGS,
        "authorization_details_types_supported": GRANT_TYPES,
        "dpop_signing_alg_values_supported": dpop_algs(),
    }))
}

/// The DPoP proof algorithms `writ-token` accepts.
fn dpop_algs() -> Vec<&'static str> {
    writ_token::dpop::ALGS.split(' ').collect()
}

/// A metadata document as JSON, readable from any origin: browser-based MCP clients
/// fetch it cross-origin, and it holds nothing private.
fn document(body: Value) -> Response {
    let mut response = axum::Json(body).into_response();
    response.headers_mut().insert(
        header::ACCESS_CONTROL_ALLOW_ORIGIN,
        HeaderValue::from_static("*"),
    );
    response
}
