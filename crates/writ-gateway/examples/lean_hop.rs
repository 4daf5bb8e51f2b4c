//! The leaner hop: `hop`'s proxy with hyper used directly, `bench/run`'s "lean hop" row.
//!
//! What differs from `hop` (issue 27, "stack floor"): no axum router (hyper's HTTP/1.1
//! server connection calls a `service_fn`), and no hyper-util pool: each serving thread
//! keeps its own idle HTTP/1.1 connections per upstream (`hyper::client::conn::http1`
//! handshakes, a small stack of ready `SendRequest` handles). The rest is as `hop`: one
//! single-threaded runtime per core fed round-robin by an acceptor, the body read whole and
//! sent on with a fixed `Authorization` header, the response (streams included) passed back
//! untouched. A connection is lent to one request until its response body has ended, so
//! responses never mix; one the upstream closed is dropped and a new one opened.
//!
//! Usage: `lean_hop [--server=S] [--client=C] LISTEN_ADDR UPSTREAM_URL [STREAM_UPSTREAM_URL]
//! API_KEY`; a request with `x-writ-upstream: mockstream` goes to the stream upstream.
//!
//! The two ideas can be measured apart (issue 27): `--server=http1` (the default) serves
//! HTTP/1.1 connections with hyper on the example's own threads; `--server=direct` serves
//! on the gateway's own serving threads (`serve_threads`: HTTP/1.1 and HTTP/2 by
//! `auto::Builder`, graceful shutdown, first-byte timeout) with the handler called straight,
//! no axum router; `--server=axum` is the same through an axum router, as `hop`.
//! `--client=stack` (the default) is the per-thread stack of connections above;
//! `--client=pool` is `hop`'s hyper-util pool, one per serving thread.

use std::cell::{OnceCell, RefCell};
use std::convert::Infallible;
use std::net::SocketAddr;
use std::pin::Pin;
use std::process::ExitCode;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http::{HeaderValue, Request, Response, StatusCode, Uri, header};
use http_body::{Body, Frame, SizeHint};
use http_body_util::{BodyExt, Either, Full, Limited};
use hyper::body::Incoming;
use hyper::client::conn::http1::SendRequest;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;

/// Longest a connection may wait for a request's headers (as `writ serve`).
const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(10);

/// Idle upstream connections a serving thread keeps per upstream; more are closed.
const MAX_IDLE: usize = 64;

/// Largest request body read.
const MAX_BODY: usize = 10 * 1024 * 1024;

/// One upstream: where to connect, its `Host` header and the path prefix of its URL.
pub struct Upstream {
    /// `http://host:port/prefix`, for the pooled client's absolute URIs.
    base: String,
    addr: String,
    host: HeaderValue,
    prefix: String,
}

impl Upstream {
    /// An `http://host:port[/prefix]` URL's upstream; `None` for any other URL.
    pub fn parse(url: &str) -> Option<Upstream> {
        let uri: Uri = url.trim_end_matches('/').parse().ok()?;
        if uri.scheme_str() != Some("http") {
            return None;
        }
        let authority = uri.authority()?;
        let port = authority.port_u16().unwrap_or(80);
        Some(Upstream {
            base: format!(
                "http://{}{}",
                authority.as_str(),
                uri.path().trim_end_matches('/')
            ),
            addr: format!("{}:{port}", authority.host()),
            host: HeaderValue::from_str(authority.as_str()).ok()?,
            prefix: uri.path().trim_end_matches('/').to_string(),
        })
    }
}

/// Where requests go and with which key.
pub struct Hop {
    /// The upstream of every request but those marked `x-writ-upstream: mockstream`.
    pub upstream: Upstream,
    /// The upstream of requests marked `x-writ-upstream: mockstream`.
    pub stream_upstream: Upstream,
    /// The `Authorization` header sent upstream.
    pub authorization: HeaderValue,
    /// Whether requests go through a hyper-util pool per thread instead of the stack.
    pub pooled: bool,
}

type Pool = Client<HttpConnector, Full<Bytes>>;

thread_local! {
    /// This thread's hyper-util pool (`--client=pool`), as `hop` keeps.
    static POOL: OnceCell<Pool> = const { OnceCell::new() };
}

fn pool() -> Pool {
    POOL.with(|c| {
        c.get_or_init(|| {
            let mut http = HttpConnector::new();
            http.set_nodelay(true);
            Client::builder(TokioExecutor::new()).build(http)
        })
        .clone()
    })
}

type Sender = SendRequest<Full<Bytes>>;

thread_local! {
    /// This thread's idle upstream connections: index 0 the upstream, 1 the stream upstream.
    static IDLE: RefCell<[Vec<Sender>; 2]> = const { RefCell::new([Vec::new(), Vec::new()]) };
}

/// An idle connection to upstream `which` that is ready for a request, if this thread has one.
async fn checkout(which: usize) -> Option<Sender> {
    loop {
        let mut sender = IDLE.with(|idle| idle.borrow_mut()[which].pop())?;
        if sender.is_closed() {
            continue;
        }
        // Ready at once unless the connection is still finishing its previous response.
        if sender.ready().await.is_ok() {
            return Some(sender);
        }
    }
}

/// Gives a connection whose last response has ended back to this thread's idle stack.
fn checkin(which: usize, sender: Sender) {
    if sender.is_closed() {
        return;
    }
    IDLE.with(|idle| {
        let mut idle = idle.borrow_mut();
        if idle[which].len() < MAX_IDLE {
            idle[which].push(sender);
        }
    });
}

/// A new HTTP/1.1 connection to `upstream`, its connection task spawned on this thread.
async fn connect(upstream: &Upstream) -> Option<Sender> {
    let tcp = TcpStream::connect(&upstream.addr).await.ok()?;
    let _ = tcp.set_nodelay(true);
    let (sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(tcp))
        .await
        .ok()?;
    tokio::spawn(async move {
        let _ = connection.await;
    });
    Some(sender)
}

/// A response body from upstream that, once it has ended, gives its connection back.
pub struct Lent {
    body: Incoming,
    sender: Option<(usize, Sender)>,
    ended: bool,
}

impl Body for Lent {
    type Data = Bytes;
    type Error = hyper::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, hyper::Error>>> {
        let polled = Pin::new(&mut self.body).poll_frame(cx);
        if let Poll::Ready(None) = polled {
            self.ended = true;
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.body.size_hint()
    }
}

impl Drop for Lent {
    fn drop(&mut self) {
        // A body dropped before its end leaves its connection mid-response: not reused.
        if (self.ended || self.body.is_end_stream())
            && let Some((which, sender)) = self.sender.take()
        {
            checkin(which, sender);
        }
    }
}

/// A response body: from a lent connection, from the pool, or the hop's own.
pub type AnswerBody = Either<Lent, Either<Incoming, Full<Bytes>>>;

type Answer = Response<AnswerBody>;

fn plain(status: StatusCode, text: &'static str) -> Answer {
    let mut response = Response::new(Either::Right(Either::Right(Full::new(Bytes::from_static(
        text.as_bytes(),
    )))));
    *response.status_mut() = status;
    response
}

/// Forwards one request and answers with the upstream's response.
pub async fn forward<B>(hop: Arc<Hop>, req: Request<B>) -> Answer
where
    B: Body<Data = Bytes>,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    let (parts, body) = req.into_parts();
    let Ok(body) = Limited::new(body, MAX_BODY).collect().await else {
        return plain(StatusCode::PAYLOAD_TOO_LARGE, "body too large");
    };
    let which = match parts.headers.get("x-writ-upstream") {
        Some(v) if v == "mockstream" => 1,
        _ => 0,
    };
    let upstream = if which == 1 {
        &hop.stream_upstream
    } else {
        &hop.upstream
    };
    let path = parts.uri.path_and_query().map_or("/", |p| p.as_str());
    let mut out = Request::builder().method(parts.method);
    out = if hop.pooled {
        out.uri(format!("{}{path}", upstream.base))
    } else {
        out.uri(format!("{}{path}", upstream.prefix))
            .header(header::HOST, upstream.host.clone())
    };
    out = out
        .header(header::CONTENT_TYPE, "application/json")
        .header(header::AUTHORIZATION, hop.authorization.clone());
    if let Some(accept) = parts.headers.get(header::ACCEPT) {
        out = out.header(header::ACCEPT, accept);
    }
    let Ok(mut out) = out.body(Full::new(body.to_bytes())) else {
        return plain(StatusCode::BAD_REQUEST, "bad request");
    };
    if hop.pooled {
        return match pool().request(out).await {
            Ok(response) => response.map(|body| Either::Right(Either::Left(body))),
            Err(_) => plain(StatusCode::BAD_GATEWAY, "upstream failed"),
        };
    }
    // An idle connection first; a request it could not take (closed meanwhile) is sent
    // once more on a new connection. One that was sent and then failed is not resent.
    let mut fresh = false;
    loop {
        let sender = match checkout(which).await {
            Some(s) => Some(s),
            None => {
                fresh = true;
                connect(upstream).await
            }
        };
        let Some(mut sender) = sender else {
            return plain(StatusCode::BAD_GATEWAY, "upstream failed");
        };
        match sender.try_send_request(out).await {
            Ok(response) => {
                return response.map(|body| {
                    Either::Left(Lent {
                        body,
                        sender: Some((which, sender)),
                        ended: false,
                    })
                });
            }
            Err(mut e) => match e.take_message() {
                Some(unsent) if !fresh => out = unsent,
                _ => return plain(StatusCode::BAD_GATEWAY, "upstream failed"),
            },
        }
    }
}

/// Serves one client connection (HTTP/1.1) on this thread.
async fn connection(tcp: TcpStream, hop: Arc<Hop>) {
    let service = hyper::service::service_fn(move |req: Request<Incoming>| {
        let hop = hop.clone();
        async move { Ok::<_, Infallible>(forward(hop, req).await) }
    });
    let _ = hyper::server::conn::http1::Builder::new()
        .timer(TokioTimer::new())
        .header_read_timeout(HEADER_READ_TIMEOUT)
        .serve_connection(TokioIo::new(tcp), service)
        .await;
}

/// One serving thread: a single-threaded runtime serving the connections it is handed.
fn worker(mut queue: mpsc::Receiver<std::net::TcpStream>, hop: Arc<Hop>) {
    let Ok(runtime) = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    else {
        return;
    };
    runtime.block_on(async move {
        // As `writ serve`'s workers: a timer always due first, so the per-request header
        // read timers do not each wake the driver.
        tokio::spawn(async {
            let mut tick = tokio::time::interval(Duration::from_millis(500));
            loop {
                tick.tick().await;
            }
        });
        while let Some(std) = queue.recv().await {
            if let Ok(tcp) = TcpStream::from_std(std) {
                tokio::spawn(connection(tcp, hop.clone()));
            }
        }
    });
}

/// Serves `hop` on `listener` with `workers` serving threads, connections handed to them in
/// turn, until the process ends.
pub async fn serve(listener: TcpListener, hop: Arc<Hop>, workers: usize) -> std::io::Result<()> {
    let mut queues = Vec::with_capacity(workers.max(1));
    for index in 1..=workers.max(1) {
        let (tx, rx) = mpsc::channel(1024);
        let hop = hop.clone();
        std::thread::Builder::new()
            .name(format!("lean-hop-{index}"))
            .spawn(move || worker(rx, hop))?;
        queues.push(tx);
    }
    let mut next = 0;
    loop {
        let tcp = match listener.accept().await {
            Ok((tcp, _)) => tcp,
            Err(_) => {
                tokio::time::sleep(Duration::from_millis(10)).await;
                continue;
            }
        };
        let _ = tcp.set_nodelay(true);
        let std = tcp.into_std()?;
        let queue = &queues[next];
        next = (next + 1) % queues.len();
        if queue.send(std).await.is_err() {
            return Err(std::io::Error::other("a serving thread stopped"));
        }
    }
}

/// The handler the gateway's serving threads call straight (`--server=direct`).
#[derive(Clone)]
pub struct Direct(pub Arc<Hop>);

impl writ_gateway::serve::workers::Handler for Direct {
    type Body = AnswerBody;
    type BodyError = Box<dyn std::error::Error + Send + Sync>;

    fn call(
        self,
        req: Request<Incoming>,
        _peer: SocketAddr,
    ) -> impl Future<Output = Answer> + Send + 'static {
        forward(self.0, req)
    }
}

/// The same behind an axum router (`--server=axum`), as `hop` and the gateway serve.
pub fn router(hop: Arc<Hop>) -> axum::Router {
    axum::Router::new().fallback(move |req: axum::extract::Request| {
        let hop = hop.clone();
        async move { forward(hop, req).await.map(axum::body::Body::new) }
    })
}

/// Which serving stack (`--server=`).
#[derive(Clone, Copy, PartialEq)]
enum Server {
    Http1,
    Direct,
    Axum,
}

#[allow(dead_code)] // the tests include this file as a module
fn main() -> ExitCode {
    let mut server = Server::Http1;
    let mut pooled = false;
    let mut args: Vec<String> = Vec::new();
    for arg in std::env::args().skip(1) {
        match arg.as_str() {
            "--server=http1" => server = Server::Http1,
            "--server=direct" => server = Server::Direct,
            "--server=axum" => server = Server::Axum,
            "--client=stack" => pooled = false,
            "--client=pool" => pooled = true,
            a if a.starts_with("--") => {
                eprintln!("lean_hop: unknown option {a}");
                return ExitCode::from(2);
            }
            _ => args.push(arg),
        }
    }
    let (listen, upstream, stream_upstream, key) = match args.as_slice() {
        [l, u, k] => (l, u, u, k),
        [l, u, s, k] => (l, u, s, k),
        _ => {
            eprintln!(
                "usage: lean_hop [--server=http1|direct|axum] [--client=stack|pool] LISTEN_ADDR UPSTREAM_URL [STREAM_UPSTREAM_URL] API_KEY"
            );
            return ExitCode::from(2);
        }
    };
    let Ok(listen) = listen.parse::<SocketAddr>() else {
        eprintln!("lean_hop: {listen} is not an address such as 127.0.0.1:8080");
        return ExitCode::from(2);
    };
    let (Some(upstream), Some(stream_upstream)) =
        (Upstream::parse(upstream), Upstream::parse(stream_upstream))
    else {
        eprintln!("lean_hop: upstream URLs must be http://host:port");
        return ExitCode::from(2);
    };
    let Ok(authorization) = HeaderValue::try_from(format!("Bearer {key}")) else {
        eprintln!("lean_hop: the API key is not a valid header value");
        return ExitCode::from(2);
    };
    let hop = Arc::new(Hop {
        upstream,
        stream_upstream,
        authorization,
        pooled,
    });
    let workers = std::thread::available_parallelism().map_or(1, |n| n.get());
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("lean_hop: {e}");
            return ExitCode::FAILURE;
        }
    };
    let served = runtime.block_on(async move {
        let listener = TcpListener::bind(listen).await?;
        let stop = async {
            let _ = tokio::signal::ctrl_c().await;
        };
        use writ_gateway::serve::workers::serve_threads;
        match server {
            Server::Http1 => tokio::select! {
                served = serve(listener, hop, workers) => served,
                () = stop => Ok(()),
            },
            Server::Direct => serve_threads(listener, Direct(hop), None, workers, stop).await,
            Server::Axum => serve_threads(listener, router(hop), None, workers, stop).await,
        }
    });
    match served {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("lean_hop: {e}");
            ExitCode::FAILURE
        }
    }
}
