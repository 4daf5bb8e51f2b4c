//! `BearerShim`: a loopback forwarder that adds `Authorization: Bearer <token>` to every
//! request it passes on, for HTTP clients that cannot hold a token themselves (the MCP
//! conformance suite has no option for one).
//!
//! It changes nothing else: method, path, query, every header (`Host` and `Origin`
//! included, so a gateway sees what the client sent) and the bodies both ways are passed
//! through as they stream, so Server-Sent Events arrive event by event.

use std::net::SocketAddr;

use axum::body::Body;
use axum::extract::Request;
use http::header::AUTHORIZATION;
use http::{HeaderValue, Uri};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::service::TowerToHyperService;

/// Forwards `http://127.0.0.1:{port}/…` to the same path at `target`; stops when dropped.
pub struct BearerShim {
    addr: SocketAddr,
    task: tokio::task::JoinHandle<()>,
}

impl BearerShim {
    /// Starts forwarding to `target` (`http://host:port`, no path). A request that already
    /// carries an `Authorization` header keeps its own.
    pub async fn start(target: SocketAddr, token: &str) -> Self {
        let bearer =
            HeaderValue::from_str(&format!("Bearer {token}")).expect("a token fit for a header");
        let client: Client<HttpConnector, Body> =
            Client::builder(TokioExecutor::new()).build(HttpConnector::new());
        let app = axum::Router::new().fallback(move |req: Request| {
            let client = client.clone();
            let bearer = bearer.clone();
            async move {
                let (mut parts, body) = req.into_parts();
                let path = parts
                    .uri
                    .path_and_query()
                    .map_or("/", |p| p.as_str())
                    .to_string();
                parts.uri = Uri::builder()
                    .scheme("http")
                    .authority(target.to_string())
                    .path_and_query(path)
                    .build()
                    .expect("a forwarded URI");
                parts.headers.entry(AUTHORIZATION).or_insert(bearer);
                match client.request(Request::from_parts(parts, body)).await {
                    Ok(resp) => resp.map(Body::new),
                    Err(_) => http::Response::builder()
                        .status(http::StatusCode::BAD_GATEWAY)
                        .body(Body::from("bearer shim: the target did not answer"))
                        .expect("a static response"),
                }
            }
        });
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind the shim");
        let addr = listener.local_addr().expect("shim address");
        let task = tokio::spawn(async move {
            while let Ok((tcp, _)) = listener.accept().await {
                let service = TowerToHyperService::new(app.clone());
                tokio::spawn(async move {
                    let _ = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new())
                        .serve_connection(TokioIo::new(tcp), service)
                        .await;
                });
            }
        });
        Self { addr, task }
    }

    /// `http://127.0.0.1:{port}{path}`.
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }
}

impl Drop for BearerShim {
    fn drop(&mut self) {
        self.task.abort();
    }
}
