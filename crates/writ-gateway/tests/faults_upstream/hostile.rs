//! `Hostile`: an upstream that is a raw TCP server on loopback. It reads each HTTP request
//! whole and then does what its script says, byte for byte — including what no HTTP
//! server would: garbage for a status line, a `Content-Length` that lies, a reset in the
//! middle of a body, a stall after the headers.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Notify;

/// One thing the upstream does after reading a request.
pub enum Act {
    /// Writes these bytes (and flushes).
    Send(Vec<u8>),
    /// Resets the connection: `SO_LINGER` 0, then closed, so the peer reads an RST.
    Reset,
    /// Closes the connection cleanly (FIN), whatever the body promised.
    Close,
    /// Keeps the connection open and silent until the server is dropped.
    Hang,
    /// Waits until the test notifies, then goes on.
    WaitFor(Arc<Notify>),
}

/// A hostile upstream serving scripts; stops when dropped.
pub struct Hostile {
    addr: std::net::SocketAddr,
    requests: Arc<AtomicUsize>,
    server: tokio::task::JoinHandle<()>,
}

impl Drop for Hostile {
    fn drop(&mut self) {
        self.server.abort();
    }
}

impl Hostile {
    /// Serves `script(n)` to the `n`th request (from 0), on as many connections as the
    /// gateway opens; a connection is kept for the next request when the script ends
    /// without closing, resetting or hanging it.
    pub async fn start(script: impl Fn(usize) -> Vec<Act> + Send + Sync + 'static) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind the hostile upstream");
        let addr = listener.local_addr().expect("its address");
        let requests = Arc::new(AtomicUsize::new(0));
        let script = Arc::new(script);
        let counter = requests.clone();
        let server = tokio::spawn(async move {
            // Connections live in this set: aborting the server drops them all.
            let mut connections = tokio::task::JoinSet::new();
            loop {
                let Ok((conn, _)) = listener.accept().await else {
                    return;
                };
                let script = script.clone();
                let counter = counter.clone();
                connections.spawn(async move {
                    serve(conn, &*script, &counter).await;
                });
                while connections.try_join_next().is_some() {}
            }
        });
        Self {
            addr,
            requests,
            server,
        }
    }

    /// `http://127.0.0.1:<port>`.
    pub fn base_url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// How many requests it has read.
    pub fn requests(&self) -> usize {
        self.requests.load(Ordering::SeqCst)
    }
}

async fn serve(
    mut conn: TcpStream,
    script: &(dyn Fn(usize) -> Vec<Act> + Send + Sync),
    counter: &AtomicUsize,
) {
    let mut buffered = Vec::new();
    loop {
        if !read_request(&mut conn, &mut buffered).await {
            return;
        }
        let n = counter.fetch_add(1, Ordering::SeqCst);
        for act in script(n) {
            match act {
                Act::Send(bytes) => {
                    if conn.write_all(&bytes).await.is_err() || conn.flush().await.is_err() {
                        return;
                    }
                }
                Act::Reset => {
                    let _ = conn.set_zero_linger();
                    return;
                }
                Act::Close => {
                    let _ = conn.shutdown().await;
                    return;
                }
                Act::Hang => {
                    std::future::pending::<()>().await;
                }
                Act::WaitFor(go) => go.notified().await,
            }
        }
    }
}

/// Reads one request (head and body, by `Content-Length` or chunked) from `conn`; `false`
/// when the connection ends first.
async fn read_request(conn: &mut TcpStream, buffered: &mut Vec<u8>) -> bool {
    let head_end = loop {
        if let Some(i) = buffered.windows(4).position(|w| w == b"\r\n\r\n") {
            break i + 4;
        }
        if !read_more(conn, buffered).await {
            return false;
        }
    };
    let head = String::from_utf8_lossy(&buffered[..head_end]).to_ascii_lowercase();
    let length = head
        .lines()
        .find_map(|l| l.strip_prefix("content-length:"))
        .and_then(|v| v.trim().parse::<usize>().ok());
    let chunked = head.contains("transfer-encoding: chunked");
    let end = loop {
        let body = &buffered[head_end..];
        let complete = match (length, chunked) {
            (Some(n), _) if body.len() >= n => Some(head_end + n),
            (_, true) => body
                .windows(5)
                .position(|w| w == b"0\r\n\r\n")
                .map(|i| head_end + i + 5),
            (None, false) => Some(head_end),
            _ => None,
        };
        if let Some(end) = complete {
            break end;
        }
        if !read_more(conn, buffered).await {
            return false;
        }
    };
    buffered.drain(..end);
    true
}

async fn read_more(conn: &mut TcpStream, buffered: &mut Vec<u8>) -> bool {
    let mut buf = [0u8; 8192];
    match conn.read(&mut buf).await {
        Ok(0) | Err(_) => false,
        Ok(n) => {
            buffered.extend_from_slice(&buf[..n]);
            true
        }
    }
}

/// A response head: status line, `Content-Type`, then `headers` (full lines, `\r\n` each).
pub fn head(status: u16, content_type: &str, headers: &str) -> Vec<u8> {
    format!("HTTP/1.1 {status} X\r\ncontent-type: {content_type}\r\n{headers}\r\n").into_bytes()
}

/// A whole JSON response with an honest `Content-Length`.
pub fn json(status: u16, body: &str) -> Act {
    let mut out = head(
        status,
        "application/json",
        &format!("content-length: {}\r\n", body.len()),
    );
    out.extend_from_slice(body.as_bytes());
    Act::Send(out)
}

/// The head of an event stream sent in chunked encoding.
pub fn sse_head() -> Act {
    Act::Send(head(
        200,
        "text/event-stream",
        "transfer-encoding: chunked\r\n",
    ))
}

/// `bytes` as one chunk of a chunked body.
pub fn chunk(bytes: &[u8]) -> Vec<u8> {
    let mut out = format!("{:x}\r\n", bytes.len()).into_bytes();
    out.extend_from_slice(bytes);
    out.extend_from_slice(b"\r\n");
    out
}

/// The last chunk of a chunked body.
pub fn last_chunk() -> Act {
    Act::Send(b"0\r\n\r\n".to_vec())
}
