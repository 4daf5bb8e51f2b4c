//! Forward: send the request upstream with a deadline for the response headers, and
//! stream the response body back as it arrives.

use axum::body::Body;
use axum::response::Response;
use http::HeaderName;

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
) -> Result<Response, GatewayError> {
    let pending = upstream.client.request(outbound.0);
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
    // The body is passed through frame by frame: a streamed completion reaches the client
    // as the upstream produces it.
    Ok(Response::from_parts(parts, Body::new(incoming)))
}
