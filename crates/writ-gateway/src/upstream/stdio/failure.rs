//! How a call to a started server fails, and why a server could not be started: the
//! vocabulary the supervisor answers callers with.

use serde_json::{Map, Value};

use super::message::MessageError;

/// The server's answer to one call: its message with the gateway's id, or why not.
pub(super) type Answer = Result<Map<String, Value>, StdioError>;

/// Why a server could not be started.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub(crate) enum StartFailure {
    /// The process could not be created.
    #[error("the program could not be started ({0})")]
    Spawn(std::io::ErrorKind),
    /// It exited (or closed its stdout) before answering `initialize`.
    #[error("it exited before completing the MCP handshake")]
    Exited,
    /// It did not answer `initialize` within `connect_timeout`.
    #[error("it did not answer the MCP handshake within connect_timeout")]
    HandshakeTimeout,
    /// Its answer to `initialize` was longer than `max_response_bytes`.
    #[error("its handshake answer exceeds max_response_bytes")]
    TooLong,
}

/// Why a call to a started server failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub(crate) enum StdioError {
    /// The client's message cannot be passed on.
    #[error(transparent)]
    Message(#[from] MessageError),
    /// No server is running, and starting one failed.
    #[error("the server could not be started: {0}")]
    NotStarted(StartFailure),
    /// The server exited (it is being started again) before answering.
    #[error("the server exited before answering")]
    Exited,
    /// No answer within the upstream's `timeout`.
    #[error("the server did not answer in time")]
    Timeout,
    /// The server wrote a line over the cap (it is being started again).
    #[error("the server's answer exceeds max_response_bytes")]
    TooLarge,
    /// The server does not read its stdin.
    #[error("the server is not reading its input")]
    NotReading,
}
