//! Forward: send the request upstream with a deadline for the response headers. The
//! body is read by the meter phase. A failure names its class (DNS, egress, connect,
//! TLS, timeout), which is what the operator checks next.

use http::HeaderName;
use hyper::body::Incoming;

use crate::error::{GatewayError, UpstreamFailure};
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
    let unreachable = |cause| GatewayError::UpstreamUnreachable {
        upstream: upstream.name.clone(),
        cause,
    };
    let response = match tokio::time::timeout(upstream.timeout, pending).await {
        Err(_elapsed) => {
            let secs = upstream.timeout.as_secs_f64().ceil().max(1.0) as u64;
            return Err(unreachable(UpstreamFailure::Timeout { secs }));
        }
        Ok(Err(e)) => {
            let cause = failure_class(&e);
            tracing::warn!(upstream = %upstream.name, error = ?e, ?cause, "upstream request failed");
            return Err(unreachable(cause));
        }
        Ok(Ok(response)) => response,
    };
    let (mut parts, incoming) = response.into_parts();
    for name in HOP_BY_HOP {
        parts.headers.remove(HeaderName::from_static(name));
    }
    Ok(http::Response::from_parts(parts, incoming))
}

/// The class of a failed upstream request, read from its chain of causes. hyper-util does
/// not export its connect error type, so its stage is read from its message
/// (`dns error`, `tcp connect error`); TLS failures carry a `rustls::Error`.
fn failure_class(e: &hyper_util::client::legacy::Error) -> UpstreamFailure {
    if !e.is_connect() {
        return UpstreamFailure::Broken;
    }
    let mut dns = false;
    let mut source: Option<&(dyn std::error::Error + 'static)> = Some(e);
    while let Some(err) = source {
        if err.is::<rustls::Error>() {
            return UpstreamFailure::Tls;
        }
        if let Some(io) = err.downcast_ref::<std::io::Error>() {
            // An io::Error's `source` skips the error it wraps: unwrap them by hand.
            let mut inner = io.get_ref();
            while let Some(e) = inner {
                if e.is::<rustls::Error>() {
                    return UpstreamFailure::Tls;
                }
                inner = e
                    .downcast_ref::<std::io::Error>()
                    .and_then(std::io::Error::get_ref);
            }
            if dns && io.kind() == std::io::ErrorKind::PermissionDenied {
                // The egress resolver's refusal (`egress.rs`).
                return UpstreamFailure::Egress;
            }
        }
        if err.to_string() == "dns error" {
            dns = true;
        }
        source = err.source();
    }
    if dns {
        UpstreamFailure::Dns
    } else {
        UpstreamFailure::Connect
    }
}
