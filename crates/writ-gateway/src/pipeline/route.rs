//! Route: which configured upstream a request goes to.
//!
//! The path already chose the API family and operation (the router only sends known
//! routes here). The upstream is the one named in `x-writ-upstream`, or else the only
//! upstream configured for that family.

use http::HeaderMap;
use writ_providers::RouteSpec;

use crate::error::GatewayError;
use crate::gateway::Gateway;
use crate::upstream::Upstream;

/// Header a client may set to choose among several upstreams of one API family.
pub(crate) const UPSTREAM_HEADER: &str = "x-writ-upstream";

pub(crate) fn upstream<'g>(
    gw: &'g Gateway,
    route: &RouteSpec,
    headers: &HeaderMap,
) -> Result<&'g Upstream, GatewayError> {
    let name = match headers.get(UPSTREAM_HEADER) {
        Some(v) => v.to_str().map_err(|_| GatewayError::InvalidHeader {
            name: UPSTREAM_HEADER,
        })?,
        None => match gw.defaults.get(&route.family) {
            Some(Ok(name)) => name.as_str(),
            Some(Err(reason)) => return Err(GatewayError::NoUpstream { reason }),
            None => {
                return Err(GatewayError::NoUpstream {
                    reason: "none is configured",
                });
            }
        },
    };
    let upstream = gw
        .upstreams
        .get(name)
        .ok_or(GatewayError::UnknownUpstream)?;
    if upstream.kind.family() != route.family {
        return Err(GatewayError::UnknownUpstream);
    }
    Ok(upstream)
}
