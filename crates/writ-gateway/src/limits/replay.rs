//! Replay checks: each one-time id — a single-use writ's token id, a DPoP proof's `jti`,
//! a client assertion's `jti` — is accepted once. Ids are recorded in the limiter backend,
//! so with `[limiter] backend = "redis"` an id used on one instance is refused on every
//! other; with `on_backend_failure = "local"` this instance's memory stands in while Redis
//! is unreachable. [`Replay`] is the gateway's [`ReplayGuard`]: `writ-token` asks it
//! about DPoP proofs, the token endpoint about client assertions.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use writ_limits::{Limiter, ReplayError, ReplayId, ReplayKind};
use writ_token::{OneTimeId, ReplayGuard, ReplayUnavailable};

use crate::limits::{Limits, nanos};

/// How long an id is kept past the last moment it could be accepted: a writ's expiry is
/// checked at one-second resolution (it still verifies during the second after its
/// `expires_at`), and instances' clocks differ a little.
const MARGIN: Duration = Duration::from_secs(60);

/// Where one-time ids are recorded: the limiter's backend, and, with the local fallback
/// configured over Redis, this instance's memory as well.
pub(crate) struct Replay {
    backend: Arc<Limiter>,
    /// This instance's memory, with `on_backend_failure = "local"` over Redis. It records
    /// every id this instance sees, also those Redis accepted, and decides alone while Redis
    /// is unreachable: an id is then still refused again on this instance (whenever it was
    /// first used here), but another instance may accept it once.
    local: Option<Arc<Limiter>>,
}

impl Replay {
    /// The replay store of `limits`' backend and fallback.
    pub(crate) fn new(limits: &Limits) -> Self {
        let (backend, fallback) = limits.backends();
        let local = fallback.filter(|_| matches!(*backend, Limiter::Redis(_)));
        Self { backend, local }
    }

    /// Records the id made of `parts` (see [`ReplayId::new`]), if it is not recorded yet,
    /// until [`MARGIN`] past `last_valid`, the last moment the caller would accept it:
    /// `Ok(true)` the first time, `Ok(false)` on a replay. An error means the
    /// check could not be made (the backend unreachable without a local fallback, or the
    /// memory store full of unexpired ids): the caller refuses the request, 503.
    pub(crate) async fn record(
        &self,
        kind: ReplayKind,
        parts: &[&str],
        last_valid: SystemTime,
        now: SystemTime,
    ) -> Result<bool, ReplayError> {
        let id = ReplayId::new(kind, parts);
        let expires = last_valid.checked_add(MARGIN).unwrap_or(last_valid);
        let (expires_ns, now_ns) = (nanos(expires), nanos(now));
        let shared = self.backend.first_use(&id, expires_ns, now_ns).await;
        let Some(local) = &self.local else {
            if let Err(e) = &shared {
                tracing::error!(error = %e, kind = kind.as_str(), "replay check impossible; refusing (fail closed)");
            }
            return shared;
        };
        let here = local.first_use(&id, expires_ns, now_ns).await;
        match (shared, here) {
            // Refused if either has seen it: one first used here while Redis was away is
            // unknown to Redis.
            (Ok(first), Ok(first_here)) => Ok(first && first_here),
            // Memory full while Redis answers: Redis decides, as without the fallback.
            (Ok(first), Err(_)) => Ok(first),
            (Err(e), here) => {
                tracing::warn!(error = %e, kind = kind.as_str(), "replay backend unavailable; checking this instance's memory only");
                if let Err(e) = &here {
                    tracing::error!(error = %e, kind = kind.as_str(), "replay check impossible; refusing (fail closed)");
                }
                here
            }
        }
    }
}

/// Each one-time id is recorded under the [`ReplayKind`] and parts it always had, so ids
/// recorded before and after this interface (and by instances of either) are the same keys.
impl ReplayGuard for Replay {
    async fn first_use(
        &self,
        id: OneTimeId<'_>,
        last_valid: SystemTime,
        now: SystemTime,
    ) -> Result<bool, ReplayUnavailable> {
        let (kind, parts): (ReplayKind, &[&str]) = match id {
            OneTimeId::DpopProof { thumbprint, jti } => (ReplayKind::DpopProof, &[thumbprint, jti]),
            OneTimeId::Assertion { client, jti } => (ReplayKind::Assertion, &[client, jti]),
            OneTimeId::SingleUse { token_id } => (ReplayKind::SingleUse, &[token_id]),
        };
        self.record(kind, parts, last_valid, now)
            .await
            .map_err(|_| ReplayUnavailable)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::{Duration, UNIX_EPOCH};
    use writ_limits::MemoryLimiter;

    fn replay(local: bool) -> Replay {
        Replay {
            backend: Arc::new(Limiter::Memory(MemoryLimiter::new())),
            local: local.then(|| Arc::new(Limiter::Memory(MemoryLimiter::new()))),
        }
    }

    #[tokio::test]
    async fn an_id_is_accepted_once_per_kind_until_it_expires() {
        let r = replay(false);
        let t = UNIX_EPOCH + Duration::from_secs(1_000_000);
        let until = t + Duration::from_secs(30);
        let once = |kind, at| r.record(kind, &["thumb", "jti-1"], until, at);
        assert_eq!(once(ReplayKind::DpopProof, t).await, Ok(true));
        assert_eq!(once(ReplayKind::DpopProof, t).await, Ok(false));
        assert_eq!(once(ReplayKind::Assertion, t).await, Ok(true));
        assert_eq!(
            once(
                ReplayKind::DpopProof,
                until + MARGIN - Duration::from_millis(1)
            )
            .await,
            Ok(false),
            "kept a margin past the last moment it is valid"
        );
        assert_eq!(
            once(ReplayKind::DpopProof, until + MARGIN).await,
            Ok(true),
            "forgotten after that"
        );
    }

    #[tokio::test]
    async fn the_guard_records_each_id_under_the_kind_and_parts_it_always_had() {
        let r = replay(false);
        let t = UNIX_EPOCH + Duration::from_secs(1_000_000);
        let until = t + Duration::from_secs(30);
        let guard = |id| r.first_use(id, until, t);
        let proof = OneTimeId::DpopProof {
            thumbprint: "thumb",
            jti: "j",
        };
        assert_eq!(guard(proof).await, Ok(true));
        assert_eq!(guard(proof).await, Ok(false));
        let assertion = OneTimeId::Assertion {
            client: "agent",
            jti: "j",
        };
        assert_eq!(guard(assertion).await, Ok(true));
        let single = OneTimeId::SingleUse { token_id: "01H" };
        assert_eq!(guard(single).await, Ok(true));
        for (kind, parts) in [
            (ReplayKind::DpopProof, &["thumb", "j"][..]),
            (ReplayKind::Assertion, &["agent", "j"][..]),
            (ReplayKind::SingleUse, &["01H"][..]),
        ] {
            assert_eq!(r.record(kind, parts, until, t).await, Ok(false), "{kind:?}");
        }
    }

    #[tokio::test]
    async fn the_local_memory_refuses_what_it_saw_even_when_the_backend_forgot() {
        let r = replay(true);
        let t = UNIX_EPOCH + Duration::from_secs(1_000_000);
        let until = t + Duration::from_secs(30);
        assert_eq!(
            r.record(ReplayKind::SingleUse, &["id"], until, t).await,
            Ok(true)
        );
        // As if Redis had lost the key (a restart without persistence).
        let fresh = Replay {
            backend: Arc::new(Limiter::Memory(MemoryLimiter::new())),
            local: r.local.clone(),
        };
        assert_eq!(
            fresh.record(ReplayKind::SingleUse, &["id"], until, t).await,
            Ok(false)
        );
    }
}
