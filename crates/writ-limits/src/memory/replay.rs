//! `MemoryReplay`: one-time ids recorded in this process until they expire, bounded per
//! kind. Expired ids are dropped in expiry order as new ones arrive (a heap beside the
//! map), so recording costs O(log n) whether the store is empty or full, and a full store
//! of unexpired ids refuses new ones instead of forgetting live ones.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap};
use std::sync::Mutex;

use super::MemoryLimiter;
use crate::replay::{ReplayError, ReplayId, ReplayKind, ttl_ms};

/// How many unexpired ids of each kind a store holds unless told otherwise: at most about
/// 170 MB per kind when full (a 40-byte map entry and a 40-byte heap entry per id, in
/// tables that grow by doubling).
pub const DEFAULT_REPLAY_CAPACITY: usize = 1_000_000;

/// The ids of one kind: when each may be forgotten, by id and in expiry order. Every id in
/// the map is in the heap exactly once, with the same expiry.
#[derive(Default)]
struct Seen {
    until: HashMap<[u8; 32], u64>,
    by_expiry: BinaryHeap<Reverse<(u64, [u8; 32])>>,
}

impl Seen {
    /// Forgets every id whose expiry is at or before `now_ns`.
    fn forget_expired(&mut self, now_ns: u64) {
        while let Some(Reverse((expires, digest))) = self.by_expiry.peek().copied() {
            if expires > now_ns {
                break;
            }
            self.by_expiry.pop();
            self.until.remove(&digest);
        }
    }
}

/// One-time ids seen, each kept until its expiry on the clock callers pass in.
pub struct MemoryReplay {
    // Boxed: the limiter holding it stays small enough to move cheaply.
    kinds: Box<[Mutex<Seen>; ReplayKind::ALL.len()]>,
    capacity: usize,
}

impl std::fmt::Debug for MemoryReplay {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MemoryReplay")
            .field("capacity", &self.capacity)
            .finish_non_exhaustive()
    }
}

impl Default for MemoryReplay {
    fn default() -> Self {
        Self::new(DEFAULT_REPLAY_CAPACITY)
    }
}

impl MemoryReplay {
    /// An empty store holding at most `capacity` unexpired ids of each kind.
    pub fn new(capacity: usize) -> Self {
        Self {
            kinds: Default::default(),
            capacity,
        }
    }

    /// Records `id` until `expires_ns` (at least a millisecond past `now_ns`, as in Redis)
    /// if it is not recorded already. `Ok(true)`: first use; `Ok(false)`: recorded before
    /// and not yet expired. [`ReplayError::Full`] when the id's kind already holds
    /// `capacity` unexpired ids: nothing is forgotten to make room.
    pub fn first_use(
        &self,
        id: &ReplayId,
        expires_ns: u64,
        now_ns: u64,
    ) -> Result<bool, ReplayError> {
        let kind: ReplayKind = id.kind();
        // A panic while holding the lock leaves map and heap consistent or with a heap
        // entry whose id is gone, which `forget_expired` tolerates. Keep serving.
        let mut seen = self.kinds[kind.index()]
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        seen.forget_expired(now_ns);
        if seen.until.contains_key(id.digest()) {
            return Ok(false);
        }
        if seen.until.len() >= self.capacity {
            return Err(ReplayError::Full {
                kind,
                capacity: self.capacity,
            });
        }
        let until = now_ns.saturating_add(ttl_ms(expires_ns, now_ns).saturating_mul(1_000_000));
        seen.until.insert(*id.digest(), until);
        seen.by_expiry.push(Reverse((until, *id.digest())));
        Ok(true)
    }

    /// How many ids of `kind` are held, expired ones not yet dropped included.
    pub fn len(&self, kind: ReplayKind) -> usize {
        self.kinds[kind.index()]
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .until
            .len()
    }

    /// Whether no id of any kind is held.
    pub fn is_empty(&self) -> bool {
        ReplayKind::ALL.iter().all(|k| self.len(*k) == 0)
    }
}

impl MemoryLimiter {
    /// Records `id` in this process's replay store: see [`MemoryReplay::first_use`].
    pub fn first_use(
        &self,
        id: &ReplayId,
        expires_ns: u64,
        now_ns: u64,
    ) -> Result<bool, ReplayError> {
        self.replay.first_use(id, expires_ns, now_ns)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: u64 = 1_000_000_000;

    fn id(kind: ReplayKind, text: &str) -> ReplayId {
        ReplayId::new(kind, &[text])
    }

    #[test]
    fn an_id_is_first_once_until_it_expires() {
        let store = MemoryReplay::new(10);
        let a = id(ReplayKind::SingleUse, "a");
        let t = 1_000 * S;
        assert_eq!(store.first_use(&a, t + 10 * S, t), Ok(true));
        assert_eq!(store.first_use(&a, t + 10 * S, t + 5 * S), Ok(false));
        assert_eq!(
            store.first_use(&a, t + 60 * S, t + 10 * S - 1),
            Ok(false),
            "still recorded a nanosecond before its expiry"
        );
        assert_eq!(
            store.first_use(&a, t + 60 * S, t + 10 * S),
            Ok(true),
            "forgotten at its expiry, and recorded afresh"
        );
        assert_eq!(store.first_use(&a, t + 60 * S, t + 59 * S), Ok(false));
    }

    #[test]
    fn kinds_are_separate_namespaces() {
        let store = MemoryReplay::new(10);
        let t = 1_000 * S;
        for kind in ReplayKind::ALL {
            assert_eq!(store.first_use(&id(kind, "same"), t + S, t), Ok(true));
        }
        assert_eq!(
            store.first_use(&id(ReplayKind::Assertion, "same"), t + S, t),
            Ok(false)
        );
    }

    #[test]
    fn a_full_kind_refuses_new_ids_until_old_ones_expire() {
        let store = MemoryReplay::new(2);
        let t = 1_000 * S;
        let dpop = |n: &str| id(ReplayKind::DpopProof, n);
        assert_eq!(store.first_use(&dpop("a"), t + 10 * S, t), Ok(true));
        assert_eq!(store.first_use(&dpop("b"), t + 20 * S, t), Ok(true));
        assert_eq!(
            store.first_use(&dpop("c"), t + 20 * S, t + S),
            Err(ReplayError::Full {
                kind: ReplayKind::DpopProof,
                capacity: 2
            }),
            "full of live ids: refuse, never forget one"
        );
        assert_eq!(
            store.first_use(&dpop("a"), t + 10 * S, t + S),
            Ok(false),
            "a replay is still told apart from a full store"
        );
        assert_eq!(
            store.first_use(&id(ReplayKind::SingleUse, "c"), t + 20 * S, t + S),
            Ok(true),
            "one kind filling up does not refuse another"
        );
        assert_eq!(
            store.first_use(&dpop("c"), t + 20 * S, t + 10 * S),
            Ok(true),
            "`a` expired and made room"
        );
        assert_eq!(store.len(ReplayKind::DpopProof), 2);
        assert_eq!(
            store.first_use(&dpop("b"), t + 20 * S, t + 10 * S),
            Ok(false)
        );
    }

    #[test]
    fn expired_ids_are_dropped_as_time_passes() {
        let store = MemoryReplay::new(1_000);
        let t = 1_000 * S;
        for n in 0..500u64 {
            let text = n.to_string();
            let kind = ReplayKind::Assertion;
            assert_eq!(store.first_use(&id(kind, &text), t + S + n, t), Ok(true));
        }
        assert_eq!(store.len(ReplayKind::Assertion), 500);
        let late = id(ReplayKind::Assertion, "late");
        assert_eq!(store.first_use(&late, t + 10 * S, t + 2 * S), Ok(true));
        assert_eq!(
            store.len(ReplayKind::Assertion),
            1,
            "only the unexpired id is kept"
        );
        assert!(!store.is_empty());
    }

    #[test]
    fn an_id_already_expired_is_kept_a_millisecond() {
        let store = MemoryReplay::new(10);
        let t = 1_000 * S;
        let a = id(ReplayKind::SingleUse, "a");
        assert_eq!(store.first_use(&a, t - S, t), Ok(true));
        assert_eq!(store.first_use(&a, t - S, t + 999_999), Ok(false));
        assert_eq!(store.first_use(&a, t - S, t + 1_000_000), Ok(true));
    }
}
