//! One proxy hop on writ's own serving stack with none of the gateway's work: `bench/run`'s
//! "hop on writ's stack" row, the floor under writ minimal's cost per request.
//!
//! The same serving threads (one single-threaded runtime per core, connections handed
//! round-robin), the same axum router and hyper-util pooled client (one pool per thread)
//! as `writ serve`; each request's body is read whole, as the gateway reads it, and sent on
//! with a fixed `Authorization` header; the response streams back untouched. No writ is
//! verified, nothing is authorized, limited, metered, scanned or audited.
//!
//! Usage: `hop LISTEN_ADDR UPSTREAM_URL [STREAM_UPSTREAM_URL] API_KEY`; a request with
//! `x-writ-upstream: mockstream` goes to the stream upstream.

use std::cell::OnceCell;
use std::net::SocketAddr;
use std::process::ExitCode;
use std::sync::Arc;

use axum::Router;
use axum::body::{Body, to_bytes};
use axum::extract::{Request, State};
use axum::response::{IntoResponse, Response};
use http::{HeaderValue, StatusCode, header};
use http_body_util::Full;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;

/// Where requests go and with which key.
struct Hop {
    upstream: String,
    stream_upstream: String,
    authorization: HeaderValue,
}

type HopClient = Client<HttpConnector, Full<bytes::Bytes>>;

thread_local! {
    /// One connection pool per serving thread, as the gateway keeps.
    static CLIENT: OnceCell<HopClient> = const { OnceCell::new() };
}

fn client() -> HopClient {
    CLIENT.with(|c| {
        c.get_or_init(|| {
            let mut http = HttpConnector::new();
            http.set_nodelay(true);
            Client::builder(TokioExecutor::new()).build(http)
        })
        .clone()
    })
}

async fn forward(State(hop): State<Arc<Hop>>, req: Request) -> Response {
    let (parts, body) = req.into_parts();
    let Ok(body) = to_bytes(body, writ_gateway::config::DEFAULT_MAX_BODY_BYTES).await else {
        return (StatusCode::PAYLOAD_TOO_LARGE, "body too large").into_response();
    };
    let base = match parts.headers.get("x-writ-upstream") {
        Some(v) if v == "mockstream" => &hop.stream_upstream,
        _ => &hop.upstream,
    };
    let path = parts.uri.path_and_query().map_or("/", |p| p.as_str());
    let mut out = http::Request::builder()
        .method(parts.method)
        .uri(format!("{base}{path}"))
        .header(header::CONTENT_TYPE, "application/json")
        .header(header::AUTHORIZATION, hop.authorization.clone());
    if let Some(accept) = parts.headers.get(header::ACCEPT) {
        out = out.header(header::ACCEPT, accept);
    }
    let Ok(out) = out.body(Full::new(body)) else {
        return (StatusCode::BAD_REQUEST, "bad request").into_response();
    };
    match client().request(out).await {
        Ok(resp) => resp.map(Body::new).into_response(),
        Err(_) => (StatusCode::BAD_GATEWAY, "upstream failed").into_response(),
    }
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let (listen, upstream, stream_upstream, key) = match args.as_slice() {
        [l, u, k] => (l, u, u, k),
        [l, u, s, k] => (l, u, s, k),
        _ => {
            eprintln!("usage: hop LISTEN_ADDR UPSTREAM_URL [STREAM_UPSTREAM_URL] API_KEY");
            return ExitCode::from(2);
        }
    };
    let Ok(listen) = listen.parse::<SocketAddr>() else {
        eprintln!("hop: {listen} is not an address such as 127.0.0.1:8080");
        return ExitCode::from(2);
    };
    let Ok(authorization) = HeaderValue::try_from(format!("Bearer {key}")) else {
        eprintln!("hop: the API key is not a valid header value");
        return ExitCode::from(2);
    };
    let hop = Arc::new(Hop {
        upstream: upstream.trim_end_matches('/').to_string(),
        stream_upstream: stream_upstream.trim_end_matches('/').to_string(),
        authorization,
    });
    let app = Router::new().fallback(forward).with_state(hop);
    let workers = std::thread::available_parallelism().map_or(1, |n| n.get());
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("hop: {e}");
            return ExitCode::FAILURE;
        }
    };
    let served = runtime.block_on(async move {
        let listener = tokio::net::TcpListener::bind(listen).await?;
        let shutdown = async {
            let _ = tokio::signal::ctrl_c().await;
        };
        writ_gateway::serve::workers::serve_threads(listener, app, None, workers, shutdown).await
    });
    match served {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("hop: {e}");
            ExitCode::FAILURE
        }
    }
}
