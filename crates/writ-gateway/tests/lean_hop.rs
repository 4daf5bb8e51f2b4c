//! The lean hop example (`bench/run`'s "lean hop" row) is a correct proxy: it forwards a
//! request's body with the upstream key, streams a response as it comes, never mixes two
//! requests' responses, and opens a new upstream connection once the upstream closes one.
#![allow(clippy::unwrap_used)]

#[allow(dead_code, missing_docs)]
#[path = "../examples/lean_hop.rs"]
mod lean_hop;

use std::convert::Infallible;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use bytes::Bytes;
use http::{HeaderValue, Request, Response};
use http_body_util::{BodyExt, Either, Full, StreamBody};
use hyper::body::{Frame, Incoming};
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;
use tokio::sync::{Mutex, mpsc};

const KEY: &str = "sk-lean-hop-test-key";

type Chunks = mpsc::Receiver<Result<Frame<Bytes>, Infallible>>;

/// A mock upstream on HTTP/1.1. `/echo` answers with the request's body and an
/// `x-seen` header of its `Authorization`; `/close` does the same and closes the
/// connection after it; `/stream` answers with the chunks the test sends it.
struct Mock {
    base: String,
    connections: Arc<AtomicUsize>,
    stream: mpsc::Sender<Chunks>,
}

async fn mock() -> Mock {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}/prefix", listener.local_addr().unwrap());
    let connections = Arc::new(AtomicUsize::new(0));
    let (stream, streams) = mpsc::channel::<Chunks>(4);
    let streams = Arc::new(Mutex::new(streams));
    let counted = connections.clone();
    tokio::spawn(async move {
        loop {
            let (tcp, _) = listener.accept().await.unwrap();
            counted.fetch_add(1, Ordering::SeqCst);
            let streams = streams.clone();
            let service = hyper::service::service_fn(move |req: Request<Incoming>| {
                let streams = streams.clone();
                async move { Ok::<_, Infallible>(answer(req, streams).await) }
            });
            tokio::spawn(
                hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(tcp), service),
            );
        }
    });
    Mock {
        base,
        connections,
        stream,
    }
}

async fn answer(
    req: Request<Incoming>,
    streams: Arc<Mutex<mpsc::Receiver<Chunks>>>,
) -> Response<Either<Full<Bytes>, StreamBody<tokio_stream_shim::Stream>>> {
    let path = req.uri().path().to_string();
    let seen = req
        .headers()
        .get(http::header::AUTHORIZATION)
        .cloned()
        .unwrap_or(HeaderValue::from_static("none"));
    let body = req.into_body().collect().await.unwrap().to_bytes();
    match path.as_str() {
        "/prefix/stream" => {
            let chunks = streams.lock().await.recv().await.unwrap();
            Response::new(Either::Right(StreamBody::new(tokio_stream_shim::Stream(
                chunks,
            ))))
        }
        p => {
            let mut response = Response::new(Either::Left(Full::new(body)));
            response.headers_mut().insert("x-seen", seen);
            if p == "/prefix/close" {
                response
                    .headers_mut()
                    .insert(http::header::CONNECTION, HeaderValue::from_static("close"));
            }
            response
        }
    }
}

/// An mpsc receiver as a `futures` stream.
mod tokio_stream_shim {
    use std::pin::Pin;
    use std::task::{Context, Poll};

    pub struct Stream(pub super::Chunks);

    impl futures_util::Stream for Stream {
        type Item = Result<hyper::body::Frame<bytes::Bytes>, std::convert::Infallible>;
        fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
            self.0.poll_recv(cx)
        }
    }
}

/// The lean hop in front of `upstream`, on two serving threads: its base URL.
async fn hop(upstream: &str) -> String {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let hop = Arc::new(lean_hop::Hop {
        upstream: lean_hop::Upstream::parse(upstream).unwrap(),
        stream_upstream: lean_hop::Upstream::parse(upstream).unwrap(),
        authorization: HeaderValue::from_str(&format!("Bearer {KEY}")).unwrap(),
        pooled: false,
    });
    tokio::spawn(lean_hop::serve(listener, hop, 2));
    format!("http://{addr}")
}

#[tokio::test]
async fn forwards_the_body_with_the_key_and_never_mixes_responses() {
    let mock = mock().await;
    let hop = hop(&mock.base).await;
    let client = reqwest::Client::new();
    let sent = (0..64).map(|i| {
        let (client, hop) = (client.clone(), hop.clone());
        async move {
            let body = format!("{{\"request\":{i}}}");
            let r = client
                .post(format!("{hop}/echo"))
                .body(body.clone())
                .send()
                .await
                .unwrap();
            assert_eq!(r.status(), 200);
            assert_eq!(r.headers()["x-seen"], format!("Bearer {KEY}").as_str());
            assert_eq!(r.text().await.unwrap(), body);
        }
    });
    futures_util::future::join_all(sent).await;
    // One after another on one client connection, the requests share an upstream connection.
    let before = mock.connections.load(Ordering::SeqCst);
    let single = reqwest::Client::builder()
        .pool_max_idle_per_host(1)
        .build()
        .unwrap();
    for i in 0..10 {
        let r = single
            .post(format!("{hop}/echo"))
            .body(format!("one by one {i}"))
            .send()
            .await
            .unwrap();
        assert_eq!(r.text().await.unwrap(), format!("one by one {i}"));
    }
    assert!(mock.connections.load(Ordering::SeqCst) - before <= 2);
}

/// The variants `bench/run`'s A/B measures (`--server=direct|axum`, `--client=pool`) are
/// proxies too: the body with the key, each request its own response.
#[tokio::test]
async fn the_gateway_stack_variants_forward_each_request_with_the_key() {
    use writ_gateway::serve::workers::serve_threads;
    let mock = mock().await;
    for (server, pooled) in [("direct", true), ("direct", false), ("axum", false)] {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let hop = Arc::new(lean_hop::Hop {
            upstream: lean_hop::Upstream::parse(&mock.base).unwrap(),
            stream_upstream: lean_hop::Upstream::parse(&mock.base).unwrap(),
            authorization: HeaderValue::from_str(&format!("Bearer {KEY}")).unwrap(),
            pooled,
        });
        let never = std::future::pending::<()>();
        if server == "direct" {
            tokio::spawn(serve_threads(
                listener,
                lean_hop::Direct(hop),
                None,
                2,
                never,
            ));
        } else {
            tokio::spawn(serve_threads(
                listener,
                lean_hop::router(hop),
                None,
                2,
                never,
            ));
        }
        let client = reqwest::Client::new();
        let sent = (0..16).map(|i| {
            let client = client.clone();
            async move {
                let body = format!("{{\"{server} {pooled}\":{i}}}");
                let r = client
                    .post(format!("http://{addr}/echo"))
                    .body(body.clone())
                    .send()
                    .await
                    .unwrap();
                assert_eq!(r.status(), 200);
                assert_eq!(r.headers()["x-seen"], format!("Bearer {KEY}").as_str());
                assert_eq!(r.text().await.unwrap(), body);
            }
        });
        futures_util::future::join_all(sent).await;
    }
}

#[tokio::test]
async fn streams_a_response_as_the_upstream_sends_it() {
    let mock = mock().await;
    let hop = hop(&mock.base).await;
    let (chunks, rx) = mpsc::channel(4);
    mock.stream.send(rx).await.unwrap();
    chunks
        .send(Ok(Frame::data(Bytes::from_static(b"data: one\n\n"))))
        .await
        .unwrap();
    let mut r = reqwest::Client::new()
        .post(format!("{hop}/stream"))
        .header("x-writ-upstream", "mockstream")
        .body("{}")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    // The first chunk arrives while the upstream has not yet sent the second.
    let first = tokio::time::timeout(Duration::from_secs(10), r.chunk())
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    assert_eq!(&first[..], b"data: one\n\n");
    chunks
        .send(Ok(Frame::data(Bytes::from_static(b"data: [DONE]\n\n"))))
        .await
        .unwrap();
    drop(chunks);
    let mut rest = Vec::new();
    while let Some(c) = r.chunk().await.unwrap() {
        rest.extend_from_slice(&c);
    }
    assert_eq!(rest, b"data: [DONE]\n\n");
}

#[tokio::test]
async fn opens_a_new_connection_after_the_upstream_closes_one() {
    let mock = mock().await;
    let hop = hop(&mock.base).await;
    // One client connection, so every request lands on the same serving thread.
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(1)
        .build()
        .unwrap();
    for i in 0..5 {
        let r = client
            .post(format!("{hop}/close"))
            .body(format!("close {i}"))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
        assert_eq!(r.text().await.unwrap(), format!("close {i}"));
    }
    // Each closed connection was replaced by a new one.
    assert!(mock.connections.load(Ordering::SeqCst) >= 5);
    let r = client
        .post(format!("{hop}/echo"))
        .body("after")
        .send()
        .await
        .unwrap();
    assert_eq!(r.text().await.unwrap(), "after");
}
