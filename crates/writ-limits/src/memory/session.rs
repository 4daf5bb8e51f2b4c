//! `MemorySessions`: MCP session bindings kept in this process until they expire, bounded
//! in number. Expired bindings are dropped in expiry order as new ones arrive (a heap beside
//! the map), so binding costs O(log n) whether the store is empty or full.
//!
//! A full store of live bindings forgets the one closest to expiring to make room. Unlike
//! a forgotten one-time id (which could then be replayed), a forgotten binding only costs
//! its client a 404 and a new `initialize`, as the MCP spec has every client do when a
//! session ends; it never lets anyone else into the session.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap};
use std::sync::Mutex;

use super::MemoryLimiter;
use crate::session::{Bound, SessionKey, SessionOwner};

/// How many live bindings a store holds unless told otherwise: about 30 MB when full (a
/// 72-byte map entry and a 40-byte heap entry per binding, in tables that grow by doubling).
pub const DEFAULT_SESSION_CAPACITY: usize = 200_000;

/// The bindings: owner and expiry by session, and the sessions in expiry order. A heap
/// entry whose session is gone, or was bound again with another expiry, is stale and
/// skipped when it comes up.
#[derive(Default)]
struct Bindings {
    by_key: HashMap<[u8; 32], (SessionOwner, u64)>,
    by_expiry: BinaryHeap<Reverse<(u64, [u8; 32])>>,
}

impl Bindings {
    /// Forgets every binding whose expiry is at or before `now_ns`.
    fn forget_expired(&mut self, now_ns: u64) {
        while let Some(Reverse((expires, _))) = self.by_expiry.peek().copied() {
            if expires > now_ns {
                break;
            }
            self.pop_one();
        }
    }

    /// Pops the heap's first entry, and forgets its binding unless the entry is stale.
    /// `true` if a binding was forgotten.
    fn pop_one(&mut self) -> bool {
        let Some(Reverse((expires, digest))) = self.by_expiry.pop() else {
            return false;
        };
        let live = self
            .by_key
            .get(&digest)
            .is_some_and(|(_, until)| *until == expires);
        if live {
            self.by_key.remove(&digest);
        }
        live
    }

    /// Forgets the binding that expires first (and any stale heap entries before it).
    fn pop_earliest(&mut self) {
        while !self.by_expiry.is_empty() && !self.pop_one() {}
    }

    /// Drops stale heap entries once they outnumber live bindings, so ending sessions by
    /// DELETE (which leaves its heap entry behind) cannot grow the heap without bound.
    fn compact(&mut self) {
        if self.by_expiry.len() > 2 * self.by_key.len() + 1024 {
            let live = &self.by_key;
            self.by_expiry
                .retain(|Reverse((e, d))| live.get(d).is_some_and(|(_, until)| until == e));
        }
    }
}

/// MCP session bindings, each kept until its expiry on the clock callers pass in.
pub struct MemorySessions {
    bindings: Mutex<Bindings>,
    capacity: usize,
}

impl std::fmt::Debug for MemorySessions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MemorySessions")
            .field("capacity", &self.capacity)
            .finish_non_exhaustive()
    }
}

impl Default for MemorySessions {
    fn default() -> Self {
        Self::new(DEFAULT_SESSION_CAPACITY)
    }
}

impl MemorySessions {
    /// An empty store holding at most `capacity` (at least one) live bindings.
    pub fn new(capacity: usize) -> Self {
        Self {
            bindings: Mutex::default(),
            capacity: capacity.max(1),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Bindings> {
        // Map and heap stay consistent enough across a panic (a stale heap entry is
        // skipped): keep serving.
        self.bindings
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Binds `key` to `owner` until `expires_ns` if no live binding holds it; an existing
    /// one is left as it is, expiry included. Reports what it found.
    pub fn bind(
        &self,
        key: &SessionKey,
        owner: SessionOwner,
        expires_ns: u64,
        now_ns: u64,
    ) -> Bound {
        let mut b = self.lock();
        b.forget_expired(now_ns);
        let found = Bound::of(b.by_key.get(key.digest()).map(|(o, _)| *o), owner);
        if found != Bound::New {
            return found;
        }
        if b.by_key.len() >= self.capacity {
            b.pop_earliest();
        }
        let until = expires_ns.max(now_ns.saturating_add(1));
        b.by_key.insert(*key.digest(), (owner, until));
        b.by_expiry.push(Reverse((until, *key.digest())));
        Bound::New
    }

    /// Whom `key` is bound to at `now_ns`, if anyone.
    pub fn owner(&self, key: &SessionKey, now_ns: u64) -> Option<SessionOwner> {
        let b = self.lock();
        b.by_key
            .get(key.digest())
            .filter(|(_, until)| *until > now_ns)
            .map(|(owner, _)| *owner)
    }

    /// Forgets `key`'s binding if it is bound to `owner`; `true` if it was.
    pub fn end(&self, key: &SessionKey, owner: SessionOwner) -> bool {
        let mut b = self.lock();
        let ended = b.by_key.get(key.digest()).is_some_and(|(o, _)| *o == owner);
        if ended {
            b.by_key.remove(key.digest());
            b.compact();
        }
        ended
    }

    /// How many bindings are held, expired ones not yet dropped included.
    pub fn len(&self) -> usize {
        self.lock().by_key.len()
    }

    /// Whether no binding is held.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

impl MemoryLimiter {
    /// Binds an MCP session in this process: see [`MemorySessions::bind`].
    pub fn session_bind(
        &self,
        key: &SessionKey,
        owner: SessionOwner,
        expires_ns: u64,
        now_ns: u64,
    ) -> Bound {
        self.sessions.bind(key, owner, expires_ns, now_ns)
    }

    /// Whom an MCP session is bound to: see [`MemorySessions::owner`].
    pub fn session_owner(&self, key: &SessionKey, now_ns: u64) -> Option<SessionOwner> {
        self.sessions.owner(key, now_ns)
    }

    /// Ends an MCP session's binding: see [`MemorySessions::end`].
    pub fn session_end(&self, key: &SessionKey, owner: SessionOwner) -> bool {
        self.sessions.end(key, owner)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: u64 = 1_000_000_000;

    fn key(id: &str) -> SessionKey {
        SessionKey::new("travel", id)
    }

    #[test]
    fn a_session_is_bound_once_until_it_expires() {
        let store = MemorySessions::new(10);
        let (a, b) = (SessionOwner::new("t", "a"), SessionOwner::new("t", "b"));
        let t = 1_000 * S;
        assert_eq!(store.bind(&key("s"), a, t + 10 * S, t), Bound::New);
        assert_eq!(store.bind(&key("s"), a, t + 20 * S, t + S), Bound::Same);
        assert_eq!(store.bind(&key("s"), b, t + 20 * S, t + S), Bound::Other);
        assert_eq!(store.owner(&key("s"), t + 10 * S - 1), Some(a));
        assert_eq!(
            store.owner(&key("s"), t + 10 * S),
            None,
            "the first expiry stands: binding again did not extend it"
        );
        assert_eq!(store.bind(&key("s"), b, t + 30 * S, t + 10 * S), Bound::New);
        assert_eq!(store.owner(&key("s"), t + 11 * S), Some(b));
    }

    #[test]
    fn only_the_owner_ends_a_binding() {
        let store = MemorySessions::new(10);
        let (a, b) = (SessionOwner::new("t", "a"), SessionOwner::new("t", "b"));
        let t = 1_000 * S;
        store.bind(&key("s"), a, t + 10 * S, t);
        assert!(!store.end(&key("s"), b));
        assert_eq!(store.owner(&key("s"), t), Some(a));
        assert!(store.end(&key("s"), a));
        assert_eq!(store.owner(&key("s"), t), None);
        assert!(!store.end(&key("s"), a), "ended already");
        // Bound afresh after ending: the old heap entry must not end the new binding.
        store.bind(&key("s"), b, t + 20 * S, t + S);
        store.bind(&key("other"), a, t + 15 * S, t + 12 * S);
        assert_eq!(store.owner(&key("s"), t + 12 * S), Some(b));
    }

    #[test]
    fn a_full_store_forgets_the_binding_closest_to_expiry() {
        let store = MemorySessions::new(2);
        let a = SessionOwner::new("t", "a");
        let t = 1_000 * S;
        store.bind(&key("old"), a, t + 10 * S, t);
        store.bind(&key("new"), a, t + 20 * S, t);
        assert_eq!(store.bind(&key("third"), a, t + 30 * S, t + S), Bound::New);
        assert_eq!(store.len(), 2);
        assert_eq!(store.owner(&key("old"), t + S), None);
        assert_eq!(store.owner(&key("new"), t + S), Some(a));
        assert_eq!(store.owner(&key("third"), t + S), Some(a));
    }

    #[test]
    fn ending_many_sessions_keeps_the_heap_bounded() {
        let store = MemorySessions::new(100_000);
        let a = SessionOwner::new("t", "a");
        let t = 1_000 * S;
        for n in 0..10_000u64 {
            let k = key(&n.to_string());
            store.bind(&k, a, t + 100 * S, t);
            assert!(store.end(&k, a));
        }
        assert!(store.is_empty());
        assert!(store.lock().by_expiry.len() <= 1024 + 1);
    }
}
