//! Why a limiter call failed: [`ReserveError`] tells a limit refusing from the backend
//! failing, and [`BackendError`] names each way the backend can fail, with no secret of
//! the Redis URL in any of them.

use std::fmt;
use std::io;

use ::redis::{ErrorKind, RedisError};

use crate::model::Refusal;

/// The limiter operation a [`BackendError`] happened in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Operation {
    /// Opening the connection (or parsing the URL).
    Connect,
    /// Loading the Lua scripts at connect.
    LoadScript,
    /// Reserving a request's charges.
    Reserve,
    /// Settling a reservation.
    Settle,
    /// Reading every counter for the admin read-out.
    Snapshot,
    /// Checking whether a key may authenticate.
    StrikeCheck,
    /// Recording a failed authentication.
    Strike,
    /// Forgetting failures after a successful authentication.
    StrikeClear,
    /// An operator's unlock.
    StrikeForget,
    /// Recording a one-time id.
    Replay,
    /// Binding, reading or ending an MCP session.
    Session,
    /// Publishing on a channel of the backend (the gateway's revocation fan-out).
    Publish,
    /// Subscribing to, or reading the shared state of, a channel of the backend (the
    /// gateway's revocation fan-out).
    Subscribe,
    /// Asking whether the backend answers (readiness).
    Probe,
}

impl Operation {
    /// The operation's name in messages.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Connect => "connect",
            Self::LoadScript => "load script",
            Self::Reserve => "reserve",
            Self::Settle => "settle",
            Self::Snapshot => "snapshot",
            Self::StrikeCheck => "strike check",
            Self::Strike => "strike",
            Self::StrikeClear => "strike clear",
            Self::StrikeForget => "strike forget",
            Self::Replay => "replay",
            Self::Session => "session",
            Self::Publish => "publish",
            Self::Subscribe => "subscribe",
            Self::Probe => "probe",
        }
    }
}

impl fmt::Display for Operation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The limit backend could not be reached or answered nonsense. No variant holds the Redis
/// URL or any part of it: a Redis failure keeps only its kind, whose text might quote it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BackendError {
    /// The Redis URL cannot be used (`redis://[user:password@]host:port[/db]` is expected).
    #[error("limit backend unavailable: redis {op}: the Redis URL is not valid")]
    InvalidUrl {
        /// Where it failed.
        op: Operation,
    },
    /// Redis did not answer in time.
    #[error("limit backend unavailable: redis {op}: timed out")]
    Timeout {
        /// Where it failed.
        op: Operation,
    },
    /// Redis could not be reached, or the connection broke.
    #[error("limit backend unavailable: redis {op}: cannot reach Redis ({io})")]
    Connection {
        /// Where it failed.
        op: Operation,
        /// The I/O failure's kind (`Other` when the client did not say).
        io: io::ErrorKind,
    },
    /// Redis refused the URL's credentials.
    #[error("limit backend unavailable: redis {op}: authentication failed")]
    Authentication {
        /// Where it failed.
        op: Operation,
    },
    /// Redis answered with an error (a script error, a key of the wrong type, …).
    #[error("limit backend unavailable: redis {op}: Redis answered an error ({kind:?})")]
    Server {
        /// Where it failed.
        op: Operation,
        /// The kind of error Redis answered.
        kind: ErrorKind,
    },
    /// The client failed in another way, of this kind.
    #[error("limit backend unavailable: redis {op}: client error ({kind:?})")]
    Client {
        /// Where it failed.
        op: Operation,
        /// The client's error kind.
        kind: ErrorKind,
    },
    /// A reply did not have the shape the script or command returns.
    #[error("limit backend unavailable: redis {op}: malformed reply")]
    MalformedReply {
        /// Where it failed.
        op: Operation,
    },
    /// The state kept at `key` is not what this backend writes there.
    #[error("limit backend unavailable: redis {op}: malformed state at {key}")]
    MalformedState {
        /// Where it failed.
        op: Operation,
        /// The Redis key.
        key: String,
    },
    /// The script and the Rust model reached different verdicts on `key`.
    #[error("limit backend unavailable: redis {op}: script and model disagree on {key}")]
    Disagreement {
        /// Where it failed.
        op: Operation,
        /// The Redis key.
        key: String,
    },
}

impl BackendError {
    /// The operation that failed.
    pub fn operation(&self) -> Operation {
        match self {
            Self::InvalidUrl { op }
            | Self::Timeout { op }
            | Self::Connection { op, .. }
            | Self::Authentication { op }
            | Self::Server { op, .. }
            | Self::Client { op, .. }
            | Self::MalformedReply { op }
            | Self::MalformedState { op, .. }
            | Self::Disagreement { op, .. } => *op,
        }
    }

    /// `e`, met during `op`, as the case it is: for callers that use the backend's Redis
    /// for their own purposes, so their failures are named as the limiter's are.
    pub fn redis(op: Operation, e: RedisError) -> Self {
        if e.is_timeout() {
            return Self::Timeout { op };
        }
        if e.is_io_error() || e.is_connection_refusal() || e.is_connection_dropped() {
            return Self::Connection {
                op,
                io: io_kind(&e),
            };
        }
        match e.kind() {
            ErrorKind::AuthenticationFailed => Self::Authentication { op },
            ErrorKind::InvalidClientConfig if op == Operation::Connect => Self::InvalidUrl { op },
            kind @ (ErrorKind::Server(_) | ErrorKind::Extension) => Self::Server { op, kind },
            kind => Self::Client { op, kind },
        }
    }
}

/// The kind of the I/O error under `e`, `Other` if there is none. The client keeps its
/// cause behind an `Arc`, which is looked through.
fn io_kind(e: &RedisError) -> io::ErrorKind {
    type Shared = std::sync::Arc<dyn std::error::Error + Send + Sync>;
    let mut next = std::error::Error::source(e);
    while let Some(cause) = next {
        if let Some(io) = cause.downcast_ref::<io::Error>() {
            return io.kind();
        }
        if let Some(io) = cause
            .downcast_ref::<Shared>()
            .and_then(|shared| shared.downcast_ref::<io::Error>())
        {
            return io.kind();
        }
        next = cause.source();
    }
    io::ErrorKind::Other
}

/// Why a reservation was not made.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ReserveError {
    /// A limit refused: the request is over it until `retry_after`.
    #[error("refused by the {} limit of {}", .0.dimension.as_str(), .0.scope)]
    Refused(Refusal),
    /// The backend failed; nothing is known about the limits.
    #[error(transparent)]
    Backend(#[from] BackendError),
}
