//! MCP session bindings at run time: which agent each session an MCP upstream assigned
//! belongs to, kept in the limiter backend so that with `[limiter] backend = "redis"` a
//! session learned on one instance is honoured, and refused to anyone else, on every other.
//!
//! A binding lasts [`SESSION_TTL`] from the response that assigned the session, whatever
//! its use: after that the gateway answers 404 and the client starts a new session, as the
//! MCP spec has clients do whenever a session ends. With `on_backend_failure = "local"`
//! this instance's memory stands in while Redis is unreachable: bindings made meanwhile
//! are unknown to Redis afterwards (their clients get a 404 and start again), and no
//! binding is ever read from where it was not written.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use writ_limits::{BackendError, Bound, Limiter, SessionKey, SessionOwner};

use crate::limits::{Limits, nanos};

/// How long a binding lasts from the response that assigned its session.
pub(crate) const SESSION_TTL: Duration = Duration::from_secs(24 * 3600);

/// Where bindings are kept: the limiter's backend and, with the local fallback configured
/// over Redis, this instance's memory as well.
pub(crate) struct Sessions {
    backend: Arc<Limiter>,
    /// This instance's memory, with `on_backend_failure = "local"` over Redis: every
    /// binding this instance makes is written here too, and read from here only while
    /// Redis cannot answer.
    local: Option<Arc<Limiter>>,
}

impl Sessions {
    /// The session store of `limits`' backend and fallback.
    pub(crate) fn new(limits: &Limits) -> Self {
        let (backend, fallback) = limits.backends();
        let local = fallback.filter(|_| matches!(*backend, Limiter::Redis(_)));
        Self { backend, local }
    }

    /// Binds `key` to `owner` for [`SESSION_TTL`] from `now` unless it is bound already,
    /// and says what it found. An error means no store could bind it.
    pub(crate) async fn bind(
        &self,
        key: &SessionKey,
        owner: SessionOwner,
        now: SystemTime,
    ) -> Result<Bound, BackendError> {
        let now_ns = nanos(now);
        let expires_ns = nanos(now + SESSION_TTL);
        let shared = self
            .backend
            .session_bind(key, owner, expires_ns, now_ns)
            .await;
        let Some(local) = &self.local else {
            return shared;
        };
        let here = local.session_bind(key, owner, expires_ns, now_ns).await;
        match shared {
            Ok(found) => Ok(found),
            Err(e) => {
                tracing::warn!(error = %e, "session backend unavailable; binding in this instance's memory only");
                here
            }
        }
    }

    /// Whom `key` is bound to at `now`, if anyone. An error means no store could tell.
    pub(crate) async fn owner(
        &self,
        key: &SessionKey,
        now: SystemTime,
    ) -> Result<Option<SessionOwner>, BackendError> {
        let now_ns = nanos(now);
        match (self.backend.session_owner(key, now_ns).await, &self.local) {
            (Ok(owner), _) => Ok(owner),
            (Err(e), Some(local)) => {
                tracing::warn!(error = %e, "session backend unavailable; reading this instance's memory only");
                local.session_owner(key, now_ns).await
            }
            (Err(e), None) => Err(e),
        }
    }

    /// Forgets `key`'s binding wherever it is bound to `owner`. An error means the backend
    /// could not be told (without a local fallback): the binding may outlive its session
    /// until it expires, which lets no one else in.
    pub(crate) async fn end(
        &self,
        key: &SessionKey,
        owner: SessionOwner,
    ) -> Result<(), BackendError> {
        let shared = self.backend.session_end(key, owner).await;
        if let Some(local) = &self.local {
            let _ = local.session_end(key, owner).await;
            if let Err(e) = &shared {
                tracing::warn!(error = %e, "session backend unavailable; ended in this instance's memory only");
            }
            return Ok(());
        }
        shared.map(|_| ())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::UNIX_EPOCH;
    use writ_limits::MemoryLimiter;

    fn sessions(local: bool) -> Sessions {
        Sessions {
            backend: Arc::new(Limiter::Memory(MemoryLimiter::new())),
            local: local.then(|| Arc::new(Limiter::Memory(MemoryLimiter::new()))),
        }
    }

    #[tokio::test]
    async fn a_binding_lasts_its_ttl_from_when_it_was_made() {
        let s = sessions(false);
        let key = SessionKey::new("travel", "s-1");
        let (alice, bob) = (
            SessionOwner::new("default", "alice"),
            SessionOwner::new("default", "bob"),
        );
        let t = UNIX_EPOCH + Duration::from_secs(1_000_000);
        assert_eq!(s.bind(&key, alice, t).await, Ok(Bound::New));
        assert_eq!(s.bind(&key, bob, t).await, Ok(Bound::Other));
        let last = t + SESSION_TTL - Duration::from_nanos(1);
        assert_eq!(s.owner(&key, last).await, Ok(Some(alice)));
        assert_eq!(s.owner(&key, t + SESSION_TTL).await, Ok(None));
    }

    #[tokio::test]
    async fn ending_forgets_the_binding_in_both_stores() {
        let s = sessions(true);
        let key = SessionKey::new("travel", "s-2");
        let alice = SessionOwner::new("default", "alice");
        let t = UNIX_EPOCH + Duration::from_secs(1_000_000);
        assert_eq!(s.bind(&key, alice, t).await, Ok(Bound::New));
        let local = s.local.clone().expect("a local fallback");
        assert_eq!(local.session_owner(&key, nanos(t)).await, Ok(Some(alice)));
        assert_eq!(s.end(&key, alice).await, Ok(()));
        assert_eq!(s.owner(&key, t).await, Ok(None));
        assert_eq!(local.session_owner(&key, nanos(t)).await, Ok(None));
    }
}
