//! Limits on four dimensions at once — requests, tokens, cost, concurrency and compute —
//! reserved before a request is forwarded and settled with what it actually used.
//!
//! [`model`] is pure: which limits apply to a request, GCRA and calendar-budget
//! arithmetic, and strikes (failed authentications per key, with back-off and lock-out).
//! [`replay`] names one-time ids (single-use writs, DPoP proof and client-assertion
//! `jti`s), recorded with "set if absent, with expiry" so each is accepted once.
//! [`session`] names MCP sessions and the agents they are bound to, kept the same way.
//! [`memory`] keeps the state in this process, [`redis`] in Redis, shared by every gateway
//! process that uses it; the gateway picks a backend.

mod error;
mod limiter;
pub mod memory;
pub mod model;
pub mod redis;
pub mod replay;
pub mod session;

pub use error::{BackendError, Operation, ReserveError};
pub use limiter::Limiter;

pub use crate::redis::RedisLimiter;
pub use memory::{MemoryLimiter, MemoryReplay, MemorySessions};
pub use model::{
    Amounts, Charge, Dimension, Field, LimitSpec, Refusal, Remaining, Reservation, StrikeOutcome,
    StrikePolicy, StrikeState, StrikeVerdict, Subject, Window,
};
pub use replay::{ReplayError, ReplayId, ReplayKind};
pub use session::{Bound, SessionKey, SessionOwner};
