//! A webhook receiver over HTTPS behind the test CA: it keeps every delivery for the test
//! to read, in order.

use axum::extract::Request;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::service::TowerToHyperService;
use tokio::sync::mpsc;

use crate::TestCertificates;

/// One delivery: the request's headers and body.
pub type Delivery = (http::HeaderMap, bytes::Bytes);

/// Receives webhook deliveries at `https://localhost:{port}/hook`.
pub struct WebhookReceiver {
    port: u16,
    deliveries: mpsc::UnboundedReceiver<Delivery>,
}

impl WebhookReceiver {
    /// Starts a receiver serving TLS with `certs` (trust `certs.ca` to reach it).
    pub async fn start(certs: &TestCertificates) -> Self {
        let tls =
            writ_gateway::serve::tls::load(&certs.cert, &certs.key).expect("test certificate");
        let acceptor = tokio_rustls::TlsAcceptor::from(tls);
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let port = listener.local_addr().expect("bound address").port();
        let (tx, deliveries) = mpsc::unbounded_channel::<Delivery>();
        let app = axum::Router::new().route(
            "/hook",
            axum::routing::post(move |req: Request| {
                let tx = tx.clone();
                async move {
                    let (parts, body) = req.into_parts();
                    let body = axum::body::to_bytes(body, 1 << 20)
                        .await
                        .unwrap_or_default();
                    let _ = tx.send((parts.headers, body));
                    "ok"
                }
            }),
        );
        tokio::spawn(async move {
            while let Ok((tcp, _)) = listener.accept().await {
                let acceptor = acceptor.clone();
                let service = TowerToHyperService::new(app.clone());
                tokio::spawn(async move {
                    let Ok(tls) = acceptor.accept(tcp).await else {
                        return;
                    };
                    let _ = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new())
                        .serve_connection(TokioIo::new(tls), service)
                        .await;
                });
            }
        });
        Self { port, deliveries }
    }

    /// The URL to configure as the webhook's `url`.
    pub fn url(&self) -> String {
        format!("https://localhost:{}/hook", self.port)
    }

    /// The next delivery, waiting for it.
    pub async fn next(&mut self) -> Delivery {
        self.deliveries
            .recv()
            .await
            .expect("the receiver runs as long as the test")
    }
}
