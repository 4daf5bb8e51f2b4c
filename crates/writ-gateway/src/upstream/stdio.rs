//! MCP servers the gateway starts itself (`kind = "mcp"` with `command`) and speaks to
//! over stdio (newline-delimited JSON-RPC, MCP's stdio transport), shared by every client
//! of the upstream: [`StdioServer`] is a handle to the [`supervisor`] task that owns the
//! process.
//!
//! The gateway is the server's one MCP client: it does the `initialize` handshake when it
//! starts the server and answers each client's `initialize` from it, so no client can
//! reset the session the others use. Requests go through with gateway-unique ids;
//! notifications from clients are accepted and dropped.

mod child;
mod failure;
mod framing;
mod message;
mod supervisor;

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use tokio::sync::{mpsc, oneshot};
use writ_providers::Launch;

pub(crate) use self::failure::{StartFailure, StdioError};
pub(crate) use self::message::MessageError;
use self::message::{ClientMessage, Handshake};
pub(crate) use self::supervisor::Limits;
use self::supervisor::{Call, Command};

/// Calls queued for the supervisor before senders wait.
const QUEUE: usize = 1024;

/// What the server (or the gateway for it) answers a client's message.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Reply {
    /// A JSON-RPC answer carrying the client's id.
    Answer(Vec<u8>),
    /// Nothing to answer: the message was a notification or a response.
    Accepted,
}

/// A handle to a started server, shared by every request to its upstream. Dropping the
/// last handle stops the server.
#[derive(Debug)]
pub(crate) struct StdioServer {
    commands: mpsc::Sender<Command>,
    /// Gateway ids: unique for the life of the gateway (0 is the handshake's).
    next_id: AtomicU64,
    limits: Limits,
}

impl StdioServer {
    /// Starts supervising the server of upstream `name` (on the current Tokio runtime):
    /// it is started now, and again whenever it exits.
    pub(crate) fn start(name: &str, launch: &Launch, limits: Limits) -> Self {
        let (commands, queue) = mpsc::channel(QUEUE);
        tokio::spawn(supervisor::run(
            name.to_string(),
            launch.clone(),
            limits,
            queue,
        ));
        Self {
            commands,
            next_id: AtomicU64::new(1),
            limits,
        }
    }

    /// Passes one client message (a JSON-RPC request or notification, read whole) to the
    /// server and returns its answer, with the client's id.
    pub(crate) async fn call(&self, body: &[u8]) -> Result<Reply, StdioError> {
        let gid = self.next_id.fetch_add(1, Ordering::Relaxed);
        match message::read_client(body, gid)? {
            ClientMessage::Accepted => Ok(Reply::Accepted),
            ClientMessage::Initialize { id } => {
                let (reply, handshake) = oneshot::channel();
                let handshake: Arc<Handshake> = self
                    .until_started(async {
                        self.commands
                            .send(Command::Initialize(reply))
                            .await
                            .map_err(|_| StdioError::Exited)?;
                        handshake.await.map_err(|_| StdioError::Exited)?
                    })
                    .await?;
                Ok(Reply::Answer(handshake.answer(id)))
            }
            ClientMessage::Request { id, line } => {
                let (sent, handed) = oneshot::channel();
                let (answer, answered) = oneshot::channel();
                let mut waiting = Waiting {
                    gid,
                    commands: &self.commands,
                    done: false,
                };
                let call = Call {
                    gid,
                    line,
                    sent,
                    answer,
                };
                self.until_started(async {
                    self.commands
                        .send(Command::Call(call))
                        .await
                        .map_err(|_| StdioError::Exited)?;
                    // Dropped unsent when the call failed before reaching the server:
                    // its answer then says why.
                    let _ = handed.await;
                    Ok(())
                })
                .await?;
                let answer = tokio::time::timeout(self.limits.timeout, answered).await;
                let message = match answer {
                    Err(_elapsed) => return Err(StdioError::Timeout),
                    Ok(Err(_gone)) => Err(StdioError::Exited),
                    Ok(Ok(answer)) => answer,
                };
                waiting.done = true;
                Ok(Reply::Answer(message::restore(message?, id)))
            }
        }
    }

    /// Bounds the wait for a server to take a call: a healthy supervisor starts one within
    /// its longest pause plus the handshake's deadline (twice that, for a call queued while
    /// a start was under way).
    async fn until_started<T>(
        &self,
        step: impl Future<Output = Result<T, StdioError>>,
    ) -> Result<T, StdioError> {
        let bound = supervisor::LONGEST_PAUSE + self.limits.connect_timeout * 2;
        tokio::time::timeout(bound, step)
            .await
            .unwrap_or(Err(StdioError::NotStarted(StartFailure::HandshakeTimeout)))
    }
}

/// A call whose caller may stop waiting (a timeout, a client gone): the server is then
/// told to cancel it, as MCP asks of a requester that gives up.
struct Waiting<'a> {
    gid: u64,
    commands: &'a mpsc::Sender<Command>,
    done: bool,
}

impl Drop for Waiting<'_> {
    fn drop(&mut self) {
        if !self.done {
            let _ = self.commands.try_send(Command::Cancel(self.gid));
        }
    }
}
