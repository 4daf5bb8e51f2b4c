//! One-time ids and the interface that remembers them: each DPoP proof, client assertion
//! and single-use writ is accepted once. This crate does no I/O, so it only asks; the
//! caller answers from wherever ids are kept (the limiter backend, shared by every
//! instance with Redis).

use std::future::Future;
use std::time::SystemTime;

/// An id that may be accepted once, with the parts that scope it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OneTimeId<'a> {
    /// A DPoP proof's `jti`, scoped by the thumbprint of the key that signed it.
    DpopProof {
        /// RFC 7638 thumbprint of the proof's key.
        thumbprint: &'a str,
        /// The proof's `jti`.
        jti: &'a str,
    },
    /// A client assertion's `jti` (RFC 7523), scoped by the client it authenticates.
    Assertion {
        /// The client id (`sub` of the assertion).
        client: &'a str,
        /// The assertion's `jti`.
        jti: &'a str,
    },
    /// The token id of a writ that may be used once.
    SingleUse {
        /// The writ's `token_id`.
        token_id: &'a str,
    },
}

/// The replay store could not tell whether an id was used (its backend unreachable, or
/// full of unexpired ids): the caller refuses, fail closed, and the client may retry with
/// a fresh proof or assertion.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("the replay store cannot tell whether this id was used")]
pub struct ReplayUnavailable;

/// Where one-time ids are recorded: "set if absent, with expiry".
pub trait ReplayGuard: Sync {
    /// Records `id` unless it is recorded already, and keeps it at least until
    /// `last_valid`, the last moment the caller would accept it (an implementation may
    /// keep it a margin longer, for clock differences between instances). `now` is the
    /// caller's clock, for expiring older ids.
    ///
    /// Returns `Ok(true)` the first time, `Ok(false)` for an id already recorded and not
    /// yet expired, and [`ReplayUnavailable`] when it cannot tell.
    fn first_use(
        &self,
        id: OneTimeId<'_>,
        last_valid: SystemTime,
        now: SystemTime,
    ) -> impl Future<Output = Result<bool, ReplayUnavailable>> + Send;
}
