//! `Limiter`: the backend the gateway reserves and settles on, behind one interface.

use crate::error::{BackendError, ReserveError};
use crate::memory::MemoryLimiter;
use crate::model::{Amounts, Charge, Reservation, StrikeOutcome, StrikePolicy, StrikeVerdict};
use crate::redis::RedisLimiter;
use crate::replay::{ReplayError, ReplayId};
use crate::session::{Bound, SessionKey, SessionOwner};

/// Where limit state lives.
#[derive(Debug)]
pub enum Limiter {
    /// In this process (single node).
    Memory(MemoryLimiter),
    /// In Redis, shared by every gateway process that uses it.
    Redis(RedisLimiter),
}

impl Limiter {
    /// Reserves every charge or none: [`ReserveError::Refused`] names the first charge
    /// that refuses, [`ReserveError::Backend`] the backend failing.
    pub async fn reserve(
        &self,
        id: String,
        charges: Vec<Charge>,
        estimate: Amounts,
        now_ns: u64,
    ) -> Result<Reservation, ReserveError> {
        match self {
            Limiter::Memory(m) => m
                .reserve(id, charges, estimate, now_ns)
                .map_err(ReserveError::Refused),
            Limiter::Redis(r) => r.reserve(id, charges, estimate, now_ns).await,
        }
    }

    /// Settles a reservation with what the request actually used.
    pub async fn settle(
        &self,
        reservation: &Reservation,
        actual: &Amounts,
        _now_ns: u64,
    ) -> Result<(), BackendError> {
        match self {
            Limiter::Memory(m) => {
                m.settle(reservation, actual);
                Ok(())
            }
            Limiter::Redis(r) => r.settle(reservation, actual).await,
        }
    }

    /// Settles several reservations, each with what its request used: in Redis one round
    /// trip for all of them, which either all apply or (on an error) possibly none.
    pub async fn settle_many(
        &self,
        settlements: &[(&Reservation, &Amounts)],
    ) -> Result<(), BackendError> {
        match self {
            Limiter::Memory(m) => {
                for (reservation, actual) in settlements {
                    m.settle(reservation, actual);
                }
                Ok(())
            }
            Limiter::Redis(r) => r.settle_many(settlements).await,
        }
    }

    /// Settles `settlements` as [`settle_many`](Self::settle_many), then reserves as
    /// [`reserve`](Self::reserve): in Redis one round trip for both, atomic over every key.
    /// The settlements apply whether the reservation is admitted or refused; on
    /// [`ReserveError::Backend`] it is not known whether they did (they must not be sent
    /// again: settling twice is not idempotent).
    pub async fn settle_then_reserve(
        &self,
        settlements: &[(&Reservation, &Amounts)],
        id: String,
        charges: Vec<Charge>,
        estimate: Amounts,
        now_ns: u64,
    ) -> Result<Reservation, ReserveError> {
        match self {
            Limiter::Memory(m) => {
                for (reservation, actual) in settlements {
                    m.settle(reservation, actual);
                }
                m.reserve(id, charges, estimate, now_ns)
                    .map_err(ReserveError::Refused)
            }
            Limiter::Redis(r) => {
                r.settle_then_reserve(settlements, id, charges, estimate, now_ns)
                    .await
            }
        }
    }

    /// Current counters by key, for the admin read-out.
    pub async fn snapshot(&self, now_ns: u64) -> Result<Vec<(String, u64)>, BackendError> {
        match self {
            Limiter::Memory(m) => Ok(m.snapshot(now_ns)),
            Limiter::Redis(r) => r.snapshot(now_ns).await,
        }
    }

    /// Whether `key` (a client id, a source IP) may try to authenticate now, at `now_ns`;
    /// changes nothing.
    pub async fn strike_check(
        &self,
        key: &str,
        policy: &StrikePolicy,
        now_ns: u64,
    ) -> Result<StrikeVerdict, BackendError> {
        match self {
            Limiter::Memory(m) => Ok(m.strike_check(key, policy, now_ns)),
            Limiter::Redis(r) => r.strike_check(key, policy, now_ns).await,
        }
    }

    /// Records one failed authentication of `key` at `now_ns`, atomically, and reports the
    /// verdict after it and whether it started a lock-out.
    pub async fn strike(
        &self,
        key: &str,
        policy: &StrikePolicy,
        now_ns: u64,
    ) -> Result<StrikeOutcome, BackendError> {
        match self {
            Limiter::Memory(m) => Ok(m.strike(key, policy, now_ns)),
            Limiter::Redis(r) => r.strike(key, policy, now_ns).await,
        }
    }

    /// Forgets the failures and lock-outs of every key that starts with `prefix` (an
    /// operator's unlock); returns those keys. Not atomic with strikes made meanwhile,
    /// which count afresh.
    pub async fn strike_forget_prefix(&self, prefix: &str) -> Result<Vec<String>, BackendError> {
        match self {
            Limiter::Memory(m) => Ok(m.strike_forget_prefix(prefix)),
            Limiter::Redis(r) => r.strike_forget_prefix(prefix).await,
        }
    }

    /// Forgets `key`'s failures and its lock-out (an operator's unlock).
    pub async fn strike_forget(&self, key: &str) -> Result<(), BackendError> {
        match self {
            Limiter::Memory(m) => {
                m.strike_forget(key);
                Ok(())
            }
            Limiter::Redis(r) => r.strike_forget(key).await,
        }
    }

    /// Whether the backend answers now: always for memory; Redis must answer a `PING`.
    pub async fn probe(&self) -> Result<(), BackendError> {
        match self {
            Limiter::Memory(_) => Ok(()),
            Limiter::Redis(r) => r.probe().await,
        }
    }

    /// Forgets `key`'s failures, not its lock-out: after a successful authentication.
    pub async fn strike_clear(&self, key: &str) -> Result<(), BackendError> {
        match self {
            Limiter::Memory(m) => {
                m.strike_clear(key);
                Ok(())
            }
            Limiter::Redis(r) => r.strike_clear(key).await,
        }
    }

    /// Records the one-time `id` until `expires_ns` if it is not recorded yet ("set if
    /// absent, with expiry"), atomically: `Ok(true)` the first time, `Ok(false)` while it
    /// is recorded. In Redis the answer holds across every gateway sharing it. An error
    /// means it could not be told: the caller must not accept the id.
    pub async fn first_use(
        &self,
        id: &ReplayId,
        expires_ns: u64,
        now_ns: u64,
    ) -> Result<bool, ReplayError> {
        match self {
            Limiter::Memory(m) => m.first_use(id, expires_ns, now_ns),
            Limiter::Redis(r) => r.first_use(id, expires_ns, now_ns).await,
        }
    }

    /// Binds the MCP session `key` to `owner` until `expires_ns` if it is not bound yet
    /// ("set if absent, with expiry"), atomically; an existing binding is left as it is.
    /// Reports what it found. In Redis the binding holds across every gateway sharing it.
    pub async fn session_bind(
        &self,
        key: &SessionKey,
        owner: SessionOwner,
        expires_ns: u64,
        now_ns: u64,
    ) -> Result<Bound, BackendError> {
        match self {
            Limiter::Memory(m) => Ok(m.session_bind(key, owner, expires_ns, now_ns)),
            Limiter::Redis(r) => r.session_bind(key, owner, expires_ns, now_ns).await,
        }
    }

    /// Whom the MCP session `key` is bound to at `now_ns`, if anyone.
    pub async fn session_owner(
        &self,
        key: &SessionKey,
        now_ns: u64,
    ) -> Result<Option<SessionOwner>, BackendError> {
        match self {
            Limiter::Memory(m) => Ok(m.session_owner(key, now_ns)),
            Limiter::Redis(r) => r.session_owner(key).await,
        }
    }

    /// Forgets the MCP session `key`'s binding if it is bound to `owner`, atomically;
    /// `Ok(true)` if it was.
    pub async fn session_end(
        &self,
        key: &SessionKey,
        owner: SessionOwner,
    ) -> Result<bool, BackendError> {
        match self {
            Limiter::Memory(m) => Ok(m.session_end(key, owner)),
            Limiter::Redis(r) => r.session_end(key, owner).await,
        }
    }
}
