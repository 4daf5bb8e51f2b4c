//! Reaching upstreams: the pooled HTTP client, OAuth access tokens for upstreams that need
//! them (Vertex), the egress policy that keeps base URLs off the gateway's own network,
//! and the MCP servers the gateway starts itself and reaches over stdio.

pub(crate) mod access_token;
pub(crate) mod client;
pub mod egress;
pub(crate) mod mcp_params;
pub(crate) mod stdio;

/// The pooled client every upstream is reached with: HTTPS (or plain HTTP where allowed)
/// through the egress policy's resolver.
pub(crate) type HttpClient = hyper_util::client::legacy::Client<
    hyper_rustls::HttpsConnector<
        hyper_util::client::legacy::connect::HttpConnector<egress::EgressResolver>,
    >,
    axum::body::Body,
>;
