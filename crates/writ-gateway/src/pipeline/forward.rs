//! Forward: send the request upstream with a deadline for the response headers. The
//! body is read by the meter phase.

use http::HeaderName;
use hyper::body::Incoming;

use crate::error::GatewayError;
use crate::pipeline::inject::Outbound;
use crate::upstream::Upstream;

/// Response headers that describe the upstream hop, not the response.
const HOP_BY_HOP: &[&str] = &[
    "connection",
    "keep-alive",
    "proxy-connection",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
];

pub(crate) async fn send(
    upstream: &Upstream,
    outbound: Outbound,
) -> Result<http::Response<Incoming>, GatewayError> {
    let pending = upstream.client().request(outbound.0);
    let response = match tokio::time::timeout(upstream.timeout, pending).await {
        Err(_elapsed) => return Err(GatewayError::UpstreamTimeout),
        Ok(Err(e)) if e.is_connect() => {
            tracing::warn!(upstream = %upstream.name, error = %e, "connect failed");
            return Err(GatewayError::UpstreamUnreachable);
        }
        Ok(Err(e)) => {
            tracing::warn!(upstream = %upstream.name, error = %e, "request failed");
            return Err(GatewayError::UpstreamFailed);
        }
        Ok(Ok(response)) => response,
    };
    let (mut parts, incoming) = response.into_parts();
    for name in HOP_BY_HOP {
        parts.headers.remove(HeaderName::from_static(name));
    }
    Ok(http::Response::from_parts(parts, incoming))
}
