//! Reaching upstreams: the pooled HTTP client, OAuth access tokens for upstreams that need
//! them (Vertex), and the egress policy that keeps base URLs off the gateway's own network.

pub(crate) mod access_token;
pub(crate) mod client;
pub mod egress;
