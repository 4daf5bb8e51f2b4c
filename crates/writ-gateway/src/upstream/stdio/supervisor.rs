//! The supervisor of one started server: a task that starts the process, does the MCP
//! handshake as its one client, passes calls in and answers out, answers the server's own
//! requests, and starts it again when it exits, with a growing pause between failures.
//!
//! Calls that arrive while no server runs wait for the next one; if it cannot start they
//! fail at once with the reason. A server that exits, or writes a line longer than the
//! cap, fails every call it was answering, since any of them may have been the one it
//! was working on.

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;
use std::time::Duration;

use tokio::io::AsyncReadExt;
use tokio::sync::{mpsc, oneshot};
use writ_providers::Launch;

use super::child::{Child, Unsent};
use super::failure::{Answer, StartFailure, StdioError};
use super::framing::{Frame, LineFramer};
use super::message::{self, Handshake, ServerMessage};

/// The upstream's limits, as they apply to a started server.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Limits {
    /// Longest wait for the answer to a request, from when it is handed to the server.
    pub(crate) timeout: Duration,
    /// Longest time to start the server and complete the handshake.
    pub(crate) connect_timeout: Duration,
    /// Longest line the server may write.
    pub(crate) max_line: usize,
}

/// Pause before the first restart; doubled after each run that answered nothing.
const FIRST_PAUSE: Duration = Duration::from_millis(100);
/// Longest pause between two starts.
pub(super) const LONGEST_PAUSE: Duration = Duration::from_secs(10);
/// How long a stopping server may take to exit after its stdin is closed.
const STOP_GRACE: Duration = Duration::from_secs(2);
/// Bytes read from stdout at a time.
const READ_CHUNK: usize = 64 * 1024;

/// What a client's call asks of the supervisor.
pub(super) enum Command {
    /// Pass `line` (a request carrying the gateway's id `gid`) to the server.
    Call(Call),
    /// The handshake's outcome, to answer a client's `initialize`; waits for a server.
    Initialize(oneshot::Sender<Result<Arc<Handshake>, StdioError>>),
    /// The caller of `gid` stopped waiting.
    Cancel(u64),
}

/// A request on its way to the server.
pub(super) struct Call {
    pub(super) gid: u64,
    pub(super) line: Vec<u8>,
    /// Told when the request has been handed to the server: the answer's deadline runs
    /// from then, not from a wait for the server to start.
    pub(super) sent: oneshot::Sender<()>,
    pub(super) answer: oneshot::Sender<Answer>,
}

/// Why a server's run ended.
enum Ended {
    /// The gateway is gone: no more calls can come.
    Closed,
    /// The server must be started again.
    Restart,
}

/// Supervises the server of upstream `name` until every handle to it is dropped.
pub(super) async fn run(
    name: String,
    launch: Launch,
    limits: Limits,
    mut commands: mpsc::Receiver<Command>,
) {
    let mut waiting = VecDeque::new();
    let mut pause = FIRST_PAUSE;
    loop {
        match start(&name, &launch, &limits).await {
            Err(failure) => {
                tracing::warn!(upstream = %name, %failure, "stdio server did not start");
                fail_waiting(&mut waiting, &mut commands, failure);
            }
            Ok(Started {
                child,
                handshake,
                framer,
                after,
            }) => {
                tracing::info!(upstream = %name, pid = child.process.id(), "stdio server started");
                let mut run = Run {
                    name: &name,
                    child,
                    handshake: Arc::new(handshake),
                    pending: HashMap::new(),
                    answered: false,
                    framer,
                };
                for line in after {
                    run.line(&line);
                }
                let ended = run.serve(&mut commands, &mut waiting).await;
                if run.answered {
                    pause = FIRST_PAUSE;
                }
                // A server being replaced has exited or misbehaved: no grace for it.
                let grace = match ended {
                    Ended::Closed => STOP_GRACE,
                    Ended::Restart => Duration::ZERO,
                };
                let status = run.child.stop(grace).await;
                if let Ended::Closed = ended {
                    return;
                }
                tracing::warn!(upstream = %name, ?status, restart_in = ?pause, "stdio server stopped");
            }
        }
        // Calls arriving meanwhile wait for the next server.
        let sleep = tokio::time::sleep(pause);
        tokio::pin!(sleep);
        loop {
            tokio::select! {
                () = &mut sleep => break,
                command = commands.recv() => match command {
                    None => return,
                    Some(Command::Cancel(gid)) => waiting.retain(|c| !matches!(c, Command::Call(call) if call.gid == gid)),
                    Some(command) => waiting.push_back(command),
                },
            }
        }
        pause = (pause * 2).min(LONGEST_PAUSE);
    }
}

/// Fails every call waiting for a server, and those queued, with why none started.
fn fail_waiting(
    waiting: &mut VecDeque<Command>,
    commands: &mut mpsc::Receiver<Command>,
    failure: StartFailure,
) {
    let queued = std::iter::from_fn(|| commands.try_recv().ok());
    for command in waiting.drain(..).chain(queued.collect::<Vec<_>>()) {
        match command {
            Command::Call(call) => {
                let _ = call.answer.send(Err(StdioError::NotStarted(failure)));
            }
            Command::Initialize(reply) => {
                let _ = reply.send(Err(StdioError::NotStarted(failure)));
            }
            Command::Cancel(_) => {}
        }
    }
}

/// A server that completed its handshake.
struct Started {
    child: Child,
    handshake: Handshake,
    /// Its stdout's framing, as the handshake left it.
    framer: LineFramer,
    /// Lines it wrote after its answer to `initialize`, in the same read.
    after: Vec<Vec<u8>>,
}

/// Starts the server and does the handshake, within the upstream's `connect_timeout`.
async fn start(name: &str, launch: &Launch, limits: &Limits) -> Result<Started, StartFailure> {
    let mut child = Child::spawn(name, launch).map_err(|e| {
        tracing::warn!(upstream = %name, program = %launch.program().display(), error = %e, "cannot start stdio server");
        StartFailure::Spawn(e.kind())
    })?;
    let mut framer = LineFramer::new(limits.max_line);
    let handshake =
        tokio::time::timeout(limits.connect_timeout, handshake(&mut child, &mut framer));
    match handshake.await {
        Ok(Ok((handshake, after))) => Ok(Started {
            child,
            handshake,
            framer,
            after,
        }),
        Ok(Err(failure)) => {
            child.stop(Duration::ZERO).await;
            Err(failure)
        }
        Err(_elapsed) => {
            child.stop(Duration::ZERO).await;
            Err(StartFailure::HandshakeTimeout)
        }
    }
}

/// The `initialize` exchange, as the server's one client: the server's requests in the
/// meantime are answered, its notifications dropped. Returns the lines read after the
/// answer, which the run handles first.
async fn handshake(
    child: &mut Child,
    framer: &mut LineFramer,
) -> Result<(Handshake, Vec<Vec<u8>>), StartFailure> {
    const GID: u64 = 0;
    let sent = child.send(message::initialize_request(GID));
    sent.map_err(|_| StartFailure::Exited)?;
    let mut chunk = vec![0; READ_CHUNK];
    loop {
        let n = match child.stdout.read(&mut chunk).await {
            Ok(0) | Err(_) => return Err(StartFailure::Exited),
            Ok(n) => n,
        };
        let mut frames = framer.push(&chunk[..n]).into_iter();
        while let Some(frame) = frames.next() {
            let Frame::Line(line) = frame else {
                return Err(StartFailure::TooLong);
            };
            match message::read_server(&line) {
                ServerMessage::Answer { gid: GID, message } => {
                    let handshake = Handshake::from_answer(message);
                    if let Handshake::Accepted(_) = handshake {
                        child
                            .send(message::initialized_notification())
                            .map_err(|_| StartFailure::Exited)?;
                    }
                    let mut after = Vec::new();
                    for frame in frames {
                        match frame {
                            Frame::Line(line) => after.push(line),
                            Frame::TooLong => return Err(StartFailure::TooLong),
                        }
                    }
                    return Ok((handshake, after));
                }
                ServerMessage::Request { id, method } => {
                    let _ = child.send(message::answer_server_request(&id, &method));
                }
                _ => {}
            }
        }
    }
}

/// One server's run: the calls it is answering.
struct Run<'a> {
    name: &'a str,
    child: Child,
    handshake: Arc<Handshake>,
    /// Who waits for the answer to each gateway id.
    pending: HashMap<u64, oneshot::Sender<Answer>>,
    /// Whether it answered a call (then the pause before the next start is reset).
    answered: bool,
    framer: LineFramer,
}

impl Run<'_> {
    /// Serves calls until the server stops (end of its stdout, or a line over the cap) or
    /// the gateway goes; the calls still pending then fail.
    async fn serve(
        &mut self,
        commands: &mut mpsc::Receiver<Command>,
        waiting: &mut VecDeque<Command>,
    ) -> Ended {
        while let Some(command) = waiting.pop_front() {
            self.command(command);
        }
        let mut chunk = vec![0; READ_CHUNK];
        loop {
            tokio::select! {
                command = commands.recv() => match command {
                    Some(command) => self.command(command),
                    None => {
                        self.fail_pending(StdioError::Exited);
                        return Ended::Closed;
                    }
                },
                read = self.child.stdout.read(&mut chunk) => {
                    let n = match read {
                        Ok(0) | Err(_) => {
                            self.fail_pending(StdioError::Exited);
                            return Ended::Restart;
                        }
                        Ok(n) => n,
                    };
                    for frame in self.framer.push(&chunk[..n]) {
                        match frame {
                            Frame::Line(line) => self.line(&line),
                            Frame::TooLong => {
                                tracing::warn!(upstream = %self.name, "stdio server wrote a line over max_response_bytes; restarting it");
                                self.fail_pending(StdioError::TooLarge);
                                return Ended::Restart;
                            }
                        }
                    }
                }
            }
        }
    }

    fn command(&mut self, command: Command) {
        match command {
            Command::Initialize(reply) => {
                let _ = reply.send(Ok(self.handshake.clone()));
            }
            Command::Cancel(gid) => {
                if self.pending.remove(&gid).is_some() {
                    let _ = self.child.send(message::cancelled(gid));
                }
            }
            Command::Call(call) => {
                if call.answer.is_closed() {
                    // Its caller stopped waiting before the server was ready.
                    return;
                }
                match self.child.send(call.line) {
                    Ok(()) => {
                        self.pending.insert(call.gid, call.answer);
                        let _ = call.sent.send(());
                    }
                    Err(unsent) => {
                        let error = match unsent {
                            Unsent::NotReading => StdioError::NotReading,
                            Unsent::Closed => StdioError::Exited,
                        };
                        let _ = call.answer.send(Err(error));
                    }
                }
            }
        }
    }

    fn line(&mut self, line: &[u8]) {
        match message::read_server(line) {
            ServerMessage::Answer { gid, message } => match self.pending.remove(&gid) {
                Some(caller) => {
                    self.answered = true;
                    let _ = caller.send(Ok(message));
                }
                None => {
                    tracing::debug!(upstream = %self.name, gid, "stdio server answered a call no one waits for")
                }
            },
            ServerMessage::Request { id, method } => {
                tracing::debug!(upstream = %self.name, %method, "stdio server asked the gateway; refused");
                let _ = self
                    .child
                    .send(message::answer_server_request(&id, &method));
            }
            ServerMessage::Notification { method } => {
                tracing::debug!(upstream = %self.name, %method, "stdio server notification dropped");
            }
            ServerMessage::Stray => {
                tracing::debug!(upstream = %self.name, "stdio server answered an id the gateway never sent");
            }
            ServerMessage::Garbage => {
                tracing::warn!(upstream = %self.name, bytes = line.len(), "stdio server wrote a line that is not a JSON-RPC message; ignored");
            }
        }
    }

    fn fail_pending(&mut self, error: StdioError) {
        for (_, caller) in self.pending.drain() {
            let _ = caller.send(Err(error));
        }
    }
}
