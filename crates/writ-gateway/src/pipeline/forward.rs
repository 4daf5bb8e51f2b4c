//! Forward: send the request upstream with a deadline for the response headers. The
//! body is read by the meter phase. A failure names its class (DNS, egress, connect,
//! TLS, timeout), which is what the operator checks next.
//!
//! An MCP server the gateway started is reached over stdio instead ([`stdio`]); its
//! answer becomes an HTTP response like any upstream's, so the phases after this one
//! read it the same way.

use axum::body::Bytes;
use http::{HeaderName, StatusCode, header};
use http_body_util::{Either, Full};
use hyper::body::Incoming;

use crate::error::{GatewayError, UpstreamFailure};
use crate::pipeline::inject::Outbound;
use crate::upstream::client::Upstream;
use crate::upstream::stdio::{MessageError, Reply, StdioError, StdioServer};

/// An upstream's response body: streamed from an HTTP upstream, or a started server's
/// answer, whole.
pub(crate) type UpstreamBody = Either<Incoming, Full<Bytes>>;

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
) -> Result<http::Response<UpstreamBody>, GatewayError> {
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
    Ok(http::Response::from_parts(parts, Either::Left(incoming)))
}

/// Passes a JSON-RPC message to the server the gateway started for `upstream`: its answer
/// comes back as `200 application/json`, a notification as `202` with no body (as a
/// Streamable HTTP server answers). No credential is injected: the server's own are in
/// its environment.
pub(crate) async fn stdio(
    upstream: &Upstream,
    server: &StdioServer,
    body: &[u8],
) -> Result<http::Response<UpstreamBody>, GatewayError> {
    let reply = server.call(body).await.map_err(|e| {
        tracing::debug!(upstream = %upstream.name, error = %e, "stdio call failed");
        stdio_error(upstream, e)
    })?;
    let (status, body) = match reply {
        Reply::Answer(json) => (StatusCode::OK, Bytes::from(json)),
        Reply::Accepted => (StatusCode::ACCEPTED, Bytes::new()),
    };
    let mut response = http::Response::new(Either::Right(Full::new(body)));
    *response.status_mut() = status;
    if status == StatusCode::OK {
        response.headers_mut().insert(
            header::CONTENT_TYPE,
            http::HeaderValue::from_static("application/json"),
        );
    }
    Ok(response)
}

fn stdio_error(upstream: &Upstream, e: StdioError) -> GatewayError {
    let unreachable = |cause| GatewayError::UpstreamUnreachable {
        upstream: upstream.name.clone(),
        cause,
    };
    match e {
        StdioError::Message(MessageError::NotAnObject) => {
            GatewayError::InvalidBody(writ_providers::InspectError::NotJson)
        }
        StdioError::Message(MessageError::BadId) => {
            GatewayError::InvalidBody(writ_providers::InspectError::WrongType {
                field: "id",
                expected: "a string or an integer",
            })
        }
        StdioError::NotStarted(_) => unreachable(UpstreamFailure::NotStarted),
        StdioError::Exited => unreachable(UpstreamFailure::Exited),
        StdioError::NotReading => unreachable(UpstreamFailure::NotReading),
        StdioError::TooLarge => GatewayError::UpstreamTooLarge,
        StdioError::Timeout => unreachable(UpstreamFailure::Timeout {
            secs: upstream.timeout.as_secs_f64().ceil().max(1.0) as u64,
        }),
    }
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pipeline::fixture;
    use axum::body::Body;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::TcpListener;

    fn upstream(base: &str, extra: &str) -> Upstream {
        let toml = format!(
            "[upstreams.local]\nkind = \"http\"\nbase_url = \"{base}\"\napi_key = \"k-0123456789\"\nallow_plaintext = true\n{extra}"
        );
        fixture::upstream(&toml, "local")
    }

    fn get(url: String) -> Outbound {
        Outbound(http::Request::get(url).body(Body::empty()).unwrap())
    }

    /// Reads one request head from a connection the listener accepts.
    async fn accept_head(listener: &TcpListener) -> (tokio::net::TcpStream, String) {
        let (mut conn, _) = listener.accept().await.unwrap();
        let mut head = Vec::new();
        let mut buf = [0u8; 1024];
        while !head.windows(4).any(|w| w == b"\r\n\r\n") {
            let n = conn.read(&mut buf).await.unwrap();
            assert!(n > 0, "connection closed before the request head");
            head.extend_from_slice(&buf[..n]);
        }
        (conn, String::from_utf8(head).unwrap())
    }

    #[tokio::test]
    async fn sends_the_request_and_drops_the_hops_headers_from_the_response() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        let upstream = upstream(&base, "allow_private_network = true\n");
        let server = async {
            let (mut conn, head) = accept_head(&listener).await;
            conn.write_all(
                b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\nkeep-alive: timeout=5\r\n\
                  proxy-connection: keep-alive\r\ntrailer: x-sum\r\nx-kept: 1\r\n\r\nok",
            )
            .await
            .unwrap();
            head
        };
        let (head, response) = tokio::join!(server, send(&upstream, get(format!("{base}/v1/x"))));
        assert!(head.starts_with("GET /v1/x HTTP/1.1\r\n"), "{head}");
        let response = response.unwrap();
        assert_eq!(response.status(), 200);
        let headers = response.headers();
        for gone in ["keep-alive", "proxy-connection", "trailer"] {
            assert!(!headers.contains_key(gone), "{gone} was passed on");
        }
        assert_eq!(headers["x-kept"], "1");
    }

    #[tokio::test]
    async fn no_response_headers_in_time_is_a_timeout_in_whole_seconds() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        let upstream = upstream(&base, "allow_private_network = true\ntimeout = \"100ms\"\n");
        // The connection is accepted and read, never answered, until the test ends.
        let silent = async {
            let (conn, _head) = accept_head(&listener).await;
            conn
        };
        let (_conn, result) = tokio::join!(silent, send(&upstream, get(format!("{base}/"))));
        assert!(matches!(
            result,
            Err(GatewayError::UpstreamUnreachable { upstream, cause: UpstreamFailure::Timeout { secs: 1 } })
                if upstream == "local"
        ));
    }

    #[tokio::test]
    async fn a_refused_connection_is_a_connect_failure() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        drop(listener);
        let upstream = upstream(&base, "allow_private_network = true\n");
        assert!(matches!(
            send(&upstream, get(format!("{base}/"))).await,
            Err(GatewayError::UpstreamUnreachable {
                cause: UpstreamFailure::Connect,
                ..
            })
        ));
    }

    #[tokio::test]
    async fn a_name_resolving_to_a_private_address_is_an_egress_refusal() {
        let upstream = upstream("http://localhost:9", "");
        assert!(matches!(
            send(&upstream, get("http://localhost:9/".to_string())).await,
            Err(GatewayError::UpstreamUnreachable {
                cause: UpstreamFailure::Egress,
                ..
            })
        ));
    }
}
