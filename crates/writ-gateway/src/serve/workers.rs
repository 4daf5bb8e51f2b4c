//! Serving threads: accepted connections are handed round-robin to worker threads, each
//! running its own single-threaded runtime, so a request is read, forwarded and answered
//! on one thread without waking another.
//!
//! A multi-threaded runtime moves tasks between threads: under load on a small machine the
//! gateway spent more time switching and waking threads than proxying (`bench/run`
//! profile). With one runtime per core, a connection, the upstream connections its
//! requests use (each worker has its own pools, see [`current`]) and the tasks that serve
//! them stay on one thread. Shared state (limits, audit writer, caches) is reached through
//! the same `Arc<Gateway>` as before.

use std::cell::{Cell, RefCell};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use bytes::Bytes;
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use hyper_util::server::graceful::{GracefulShutdown, Watcher};
use tokio::io::{AsyncBufReadExt, AsyncRead, AsyncWrite};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, oneshot, watch};
use tokio_rustls::TlsAcceptor;

/// Longest a client may take to finish the TLS handshake.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// Longest a connection may go without a request: from its start to its first byte, from
/// a request's first byte to the end of its headers, and idle between two requests of an
/// HTTP/1 connection (hyper's header read timeout runs from when it waits for a request).
/// Without it a client that sent nothing, or a header a byte at a time (slow loris), held
/// its connection, a task and their buffers for ever.
const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(10);

/// The buffer a TLS connection's first bytes are awaited in (see `connection`); hyper's
/// own reads, larger, bypass it once it is empty.
const FIRST_READ_BYTES: usize = 1024;

/// How long an HTTP/2 connection may be silent before the server pings it; one that does
/// not answer within [`HEADER_READ_TIMEOUT`] is closed.
const HTTP2_PING_INTERVAL: Duration = Duration::from_secs(10);

/// Most worker threads a gateway runs.
pub const MAX_WORKERS: usize = 256;

/// Accepted connections waiting for a worker, per worker, before the acceptor waits.
const QUEUE: usize = 1024;

thread_local! {
    static WORKER: Cell<usize> = const { Cell::new(0) };
    /// Tasks this worker finishes before its runtime ends (see [`spawn_to_finish`]).
    static TO_FINISH: RefCell<Vec<tokio::task::JoinHandle<()>>> = const { RefCell::new(Vec::new()) };
}

/// Spawns `task` on the current runtime; false without one. On a worker thread the worker
/// awaits it before its runtime ends, once its connections have closed: work a request
/// leaves to run after its response (settling its limits) is not cut off by a graceful
/// stop.
pub(crate) fn spawn_to_finish(task: impl Future<Output = ()> + Send + 'static) -> bool {
    let Ok(runtime) = tokio::runtime::Handle::try_current() else {
        return false;
    };
    let handle = runtime.spawn(task);
    if current() != 0 {
        TO_FINISH.with(|tasks| {
            let mut tasks = tasks.borrow_mut();
            tasks.retain(|t| !t.is_finished());
            tasks.push(handle);
        });
    }
    true
}

/// The serving thread this code runs on: 1..=N on a worker thread, 0 anywhere else (the
/// main runtime, tests). Upstream connection pools are kept per worker by this number.
pub(crate) fn current() -> usize {
    WORKER.with(Cell::get)
}

/// Serves `app` on connections from `listener`, on the calling runtime (no worker threads),
/// until `shutdown` completes; then waits for open connections to finish.
pub(crate) async fn serve_inline<H: Handler>(
    listener: TcpListener,
    app: H,
    tls: Option<TlsAcceptor>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let graceful = GracefulShutdown::new();
    let (stopping, stop) = watch::channel(());
    let mut shutdown = std::pin::pin!(shutdown);
    loop {
        let (tcp, peer) = tokio::select! {
            () = &mut shutdown => break,
            accepted = accept(&listener) => accepted,
        };
        tokio::spawn(connection(
            tcp,
            peer,
            app.clone(),
            tls.clone(),
            Watched(graceful.watcher(), stop.clone()),
        ));
    }
    drop(listener);
    drop(stopping);
    graceful.shutdown().await;
    Ok(())
}

/// Serves `app` on `workers` threads fed from `listener`, until `shutdown` completes; then
/// stops accepting and waits for every worker to finish its open connections. Public so
/// `bench/run` can measure this serving stack with no gateway work on it (the `hop` example).
pub async fn serve_threads<H: Handler>(
    listener: TcpListener,
    app: H,
    tls: Option<TlsAcceptor>,
    workers: usize,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let workers = workers.clamp(1, MAX_WORKERS);
    let mut queues = Vec::with_capacity(workers);
    let mut finished = Vec::with_capacity(workers);
    for index in 1..=workers {
        let (tx, rx) = mpsc::channel(QUEUE);
        let (done_tx, done_rx) = oneshot::channel();
        let (app, tls) = (app.clone(), tls.clone());
        std::thread::Builder::new()
            .name(format!("writ-worker-{index}"))
            .spawn(move || {
                WORKER.with(|w| w.set(index));
                match tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                {
                    Ok(runtime) => runtime.block_on(worker(rx, app, tls)),
                    Err(e) => tracing::error!(error = %e, "worker runtime failed to start"),
                }
                let _ = done_tx.send(());
            })?;
        queues.push(tx);
        finished.push(done_rx);
    }
    let mut shutdown = std::pin::pin!(shutdown);
    let mut next = 0;
    loop {
        let (tcp, peer) = tokio::select! {
            () = &mut shutdown => break,
            accepted = accept(&listener) => accepted,
        };
        // Registered again with the worker's own reactor.
        let std = match tcp.into_std() {
            Ok(std) => std,
            Err(e) => {
                tracing::warn!(error = %e, "could not hand a connection over");
                continue;
            }
        };
        // The next worker in turn; one whose thread has stopped is passed over.
        let mut connection = Some((std, peer));
        for _ in 0..queues.len() {
            let queue = &queues[next];
            next = (next + 1) % queues.len();
            match connection.take() {
                Some(c) => match queue.send(c).await {
                    Ok(()) => break,
                    Err(mpsc::error::SendError(c)) => connection = Some(c),
                },
                None => break,
            }
        }
        if connection.is_some() {
            tracing::error!("no worker thread is running; connection dropped");
        }
    }
    drop(listener);
    // Closing the queues tells the workers to drain and stop.
    drop(queues);
    for done in finished {
        let _ = done.await;
    }
    Ok(())
}

/// The next connection, with Nagle off. Accept errors (out of file descriptors and the
/// like) are logged and waited out briefly; the other connections keep being served.
async fn accept(listener: &TcpListener) -> (TcpStream, SocketAddr) {
    loop {
        match listener.accept().await {
            Ok((tcp, peer)) => {
                let _ = tcp.set_nodelay(true);
                return (tcp, peer);
            }
            Err(e) => {
                tracing::warn!(error = %e, "accept failed");
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        }
    }
}

/// One worker thread's loop: serve every connection it is handed until the queue closes,
/// then let open connections finish.
async fn worker<H: Handler>(
    mut queue: mpsc::Receiver<(std::net::TcpStream, SocketAddr)>,
    app: H,
    tls: Option<TlsAcceptor>,
) {
    let graceful = GracefulShutdown::new();
    let (stopping, stop) = watch::channel(());
    tokio::spawn(keep_timer_armed());
    while let Some((std, peer)) = queue.recv().await {
        match TcpStream::from_std(std) {
            Ok(tcp) => {
                tokio::spawn(connection(
                    tcp,
                    peer,
                    app.clone(),
                    tls.clone(),
                    Watched(graceful.watcher(), stop.clone()),
                ));
            }
            Err(e) => tracing::warn!(%peer, error = %e, "could not take a connection over"),
        }
    }
    drop(stopping);
    graceful.shutdown().await;
    while let Some(task) = TO_FINISH.with(|tasks| tasks.borrow_mut().pop()) {
        let _ = task.await;
    }
}

/// Keeps a timer due within [`TIMER_ARM`] on this thread's runtime, for as long as it runs.
///
/// Tokio wakes its driver (an eventfd write and one more `epoll_wait`) whenever a timer is
/// set to fire before the driver's next planned wake-up. Every request sets timers (the
/// upstream timeout, the body-read idle timeout), and without an earlier timer each of
/// them was such a wake: one extra system call pair per request on the serving thread.
/// With this timer due first, the request timers (seconds away) no longer wake the driver;
/// the cost is one wake-up per [`TIMER_ARM`] per thread.
async fn keep_timer_armed() {
    let mut tick = tokio::time::interval(TIMER_ARM);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
    }
}

/// How often [`keep_timer_armed`] fires.
const TIMER_ARM: Duration = Duration::from_millis(500);

/// What tells a connection the server is stopping: hyper's graceful shutdown once hyper
/// serves it, and before that (while it waits for its first byte) the sender's end of the
/// channel being dropped.
struct Watched(Watcher, watch::Receiver<()>);

/// Serves one connection, over TLS when `tls` is set, HTTP/1.1 or HTTP/2.
async fn connection<H: Handler>(
    tcp: TcpStream,
    peer: SocketAddr,
    app: H,
    tls: Option<TlsAcceptor>,
    Watched(watcher, mut stop): Watched,
) {
    match tls {
        None => {
            // hyper reads the first bytes (HTTP/1 or HTTP/2?) with no timeout of its own.
            let first = tokio::select! {
                first = tokio::time::timeout(HEADER_READ_TIMEOUT, tcp.readable()) => first,
                // Stopping: a connection that has sent nothing is closed at once.
                _ = stop.changed() => return,
            };
            match first {
                Ok(Ok(())) => http(tcp, Protocol::Sniffed, peer, app, watcher).await,
                Ok(Err(e)) => tracing::debug!(%peer, error = %e, "connection failed"),
                Err(_) => tracing::debug!(%peer, "no request on a new connection; closed"),
            }
        }
        Some(acceptor) => {
            match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(tcp)).await {
                Ok(Ok(tls)) => {
                    // The protocol is the one ALPN chose, not sniffed from the first bytes.
                    let protocol = match tls.get_ref().1.alpn_protocol() {
                        Some(b"h2") => Protocol::Http2,
                        _ => Protocol::Http1,
                    };
                    // As on plain TCP, a first byte must come within the timeout: hyper's
                    // header read timeout starts only with one. Waited for without being
                    // consumed, in a small buffer hyper then reads through.
                    let mut tls = tokio::io::BufReader::with_capacity(FIRST_READ_BYTES, tls);
                    let first = tokio::select! {
                        first = tokio::time::timeout(HEADER_READ_TIMEOUT, tls.fill_buf()) => {
                            first.map(|read| read.map(|bytes| !bytes.is_empty()))
                        }
                        _ = stop.changed() => return,
                    };
                    match first {
                        Ok(Ok(true)) => http(tls, protocol, peer, app, watcher).await,
                        Ok(Ok(false)) => {}
                        Ok(Err(e)) => tracing::debug!(%peer, error = %e, "connection failed"),
                        Err(_) => tracing::debug!(%peer, "no request after the handshake; closed"),
                    }
                }
                Ok(Err(e)) => tracing::debug!(%peer, error = %e, "TLS handshake failed"),
                Err(_) => tracing::debug!(%peer, "TLS handshake timed out"),
            }
        }
    }
}

/// Which HTTP a connection speaks.
#[derive(Clone, Copy)]
enum Protocol {
    /// HTTP/1.1 or HTTP/2 with prior knowledge, read from its first bytes (plain TCP,
    /// once a first byte has come).
    Sniffed,
    /// HTTP/1.1 (TLS without ALPN, or ALPN `http/1.1`).
    Http1,
    /// HTTP/2 (ALPN `h2`).
    Http2,
}

async fn http<Io, H: Handler>(
    io: Io,
    protocol: Protocol,
    peer: SocketAddr,
    app: H,
    watcher: Watcher,
) where
    Io: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let service = hyper::service::service_fn(move |req: http::Request<Incoming>| {
        let answer = app.clone().call(req, peer);
        async move { Ok::<_, std::convert::Infallible>(answer.await) }
    });
    let mut builder = auto::Builder::new(TokioExecutor::new());
    // hyper applies a header read timeout only with a timer.
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(HEADER_READ_TIMEOUT);
    // HTTP/2 has no header read timeout: a connection whose peer stops answering pings is
    // closed instead (an idle client that answers them is a client, and keeps it).
    builder
        .http2()
        .timer(TokioTimer::new())
        .keep_alive_interval(HTTP2_PING_INTERVAL)
        .keep_alive_timeout(HEADER_READ_TIMEOUT);
    match protocol {
        Protocol::Sniffed => {}
        Protocol::Http1 => builder = builder.http1_only(),
        Protocol::Http2 => builder = builder.http2_only(),
    }
    let connection = builder.serve_connection_with_upgrades(TokioIo::new(io), service);
    if let Err(e) = watcher.watch(connection.into_owned()).await {
        tracing::debug!(%peer, error = %e, "connection ended with an error");
    }
}

/// What the serving threads call for each request: the gateway's axum router, or a handler
/// of its own (the `lean_hop` example's, which skips the router).
pub trait Handler: Clone + Send + Sync + 'static {
    /// The body of its responses.
    type Body: http_body::Body<Data = Bytes, Error = Self::BodyError> + Send + 'static;
    /// The error the body may end with.
    type BodyError: Into<Box<dyn std::error::Error + Send + Sync>>;
    /// Answers `req`, which came from `peer`; every request gets a response. Called on a
    /// clone per request, so the future borrows nothing.
    fn call(
        self,
        req: http::Request<Incoming>,
        peer: SocketAddr,
    ) -> impl Future<Output = http::Response<Self::Body>> + Send + 'static;
}

impl Handler for Router {
    type Body = axum::body::Body;
    type BodyError = axum::Error;

    fn call(
        mut self,
        mut req: http::Request<Incoming>,
        peer: SocketAddr,
    ) -> impl Future<Output = http::Response<Self::Body>> + Send + 'static {
        // The client's address, as axum's `ConnectInfo`.
        req.extensions_mut()
            .insert(axum::extract::ConnectInfo(peer));
        async move {
            match tower_service::Service::call(&mut self, req).await {
                Ok(response) => response,
                Err(never) => match never {},
            }
        }
    }
}

/// The TLS acceptor for a server configuration.
pub(crate) fn acceptor(config: Arc<rustls::ServerConfig>) -> TlsAcceptor {
    TlsAcceptor::from(config)
}
