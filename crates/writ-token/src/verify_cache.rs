//! The verified-writ cache: a writ's signatures are checked once, then looked up by hash
//! until it expires (DESIGN §2). [`crate::Verifier`] is its one user on the request path.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use sha2::{Digest, Sha256};

use crate::verification::Verification;
use crate::verify::VerifiedWrit;

/// What verifying each writ established, by SHA-256 of its text, bounded in size. Holds
/// no writ text: a request presents it, and the text whose digest finds an entry is the
/// text that entry was verified from.
pub struct VerifyCache {
    map: RwLock<HashMap<[u8; 32], Entry>>,
    capacity: usize,
}

/// A cached verification with its expiry (UNIX seconds) beside it, so sweeps read the
/// table alone instead of every writ (with 100 000 writs, one cache miss each).
struct Entry {
    expires_at: u64,
    verification: Arc<Verification>,
}

/// `t` in whole UNIX seconds (writ expiries are whole seconds).
fn secs(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs())
}

/// Whether an entry expiring at second `expires_at` has not expired before `now`.
fn live(expires_at: u64, now: SystemTime) -> bool {
    UNIX_EPOCH + Duration::from_secs(expires_at) >= now
}

impl VerifyCache {
    /// An empty cache holding at most `capacity` writs.
    pub fn new(capacity: usize) -> Self {
        Self {
            map: RwLock::new(HashMap::new()),
            capacity,
        }
    }

    /// The cache key of a writ's text.
    pub fn key(writ: &str) -> [u8; 32] {
        Sha256::digest(writ.as_bytes()).into()
    }

    /// The verified writ `writ` (its text, prefix included) stands for, if it is cached
    /// and did not expire before `now`.
    pub fn get(&self, writ: &str, now: SystemTime) -> Option<VerifiedWrit> {
        self.get_keyed(&Self::key(writ), writ, now)
    }

    /// [`VerifyCache::get`] for a text whose key the caller computed: `key` must be
    /// `VerifyCache::key(writ)`.
    pub(crate) fn get_keyed(
        &self,
        key: &[u8; 32],
        writ: &str,
        now: SystemTime,
    ) -> Option<VerifiedWrit> {
        let verification = {
            let map = self.map.read().unwrap_or_else(|p| p.into_inner());
            map.get(key)
                .filter(|e| live(e.expires_at, now))
                .map(|e| e.verification.clone())?
        };
        Some(VerifiedWrit::presented(verification, writ))
    }

    /// Number of writs held.
    pub fn len(&self) -> usize {
        self.map.read().unwrap_or_else(|p| p.into_inner()).len()
    }

    /// Whether no writ is held.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Drops every writ that expired before `now`.
    pub fn sweep(&self, now: SystemTime) {
        self.map
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .retain(|_, e| live(e.expires_at, now));
    }

    /// Drops every entry (after a revocation or a key change).
    pub fn clear(&self) {
        self.map.write().unwrap_or_else(|p| p.into_inner()).clear();
    }

    /// Stores what verifying `writ` established, under the key of its own text. Every 1024
    /// inserts, and whenever it is full, expired writs are dropped; if that frees nothing,
    /// the half that expires soonest goes (a miss costs one verification, so emptying it
    /// all would make every live writ's next request pay one).
    pub fn insert(&self, writ: &VerifiedWrit, now: SystemTime) {
        self.insert_keyed(Self::key(writ.text()), writ, now);
    }

    /// [`VerifyCache::insert`] for a writ whose key the caller computed: `key` must be
    /// `VerifyCache::key` of the writ's text.
    pub(crate) fn insert_keyed(&self, key: [u8; 32], writ: &VerifiedWrit, now: SystemTime) {
        let mut map = self.map.write().unwrap_or_else(|p| p.into_inner());
        if map.len() % 1024 == 1023 {
            map.retain(|_, e| live(e.expires_at, now));
        }
        if map.len() >= self.capacity {
            map.retain(|_, e| live(e.expires_at, now));
            if map.len() >= self.capacity {
                let mut expiries: Vec<u64> = map.values().map(|e| e.expires_at).collect();
                if !expiries.is_empty() {
                    let middle = expiries.len() / 2;
                    let (_, &mut median, _) = expiries.select_nth_unstable(middle);
                    map.retain(|_, e| e.expires_at > median);
                }
            }
        }
        let verification = writ.verification().clone();
        let expires_at = secs(verification.expires_at());
        map.insert(
            key,
            Entry {
                expires_at,
                verification,
            },
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{KeyId, MintRequest, RootKeyPair, RootKeys, decode, mint, parse_grants};
    use std::time::{Duration, UNIX_EPOCH};

    /// A root key, the keys trusting it, and the time writs are minted at.
    fn issuer() -> (RootKeyPair, RootKeys, SystemTime) {
        let key = RootKeyPair::generate(KeyId(1));
        let mut keys = RootKeys::new();
        keys.insert(key.kid(), key.public());
        (key, keys, UNIX_EPOCH + Duration::from_secs(1_800_000_000))
    }

    fn writ(
        key: &RootKeyPair,
        keys: &RootKeys,
        now: SystemTime,
        ttl: u64,
    ) -> (String, Arc<VerifiedWrit>) {
        let grants = parse_grants(r#"{"type":"writ:llm","upstream":"u"}"#).unwrap();
        let req = MintRequest {
            tenant: "t",
            agent: "a",
            ceiling: &grants,
            grants: &grants,
            ttl: Duration::from_secs(ttl),
            max_ttl: Duration::from_secs(30),
            now,
            cnf_jkt: None,
            audience: None,
        };
        let text = mint(key, &req).unwrap().0;
        let verified = Arc::new(decode(&text).unwrap().verify(keys).unwrap());
        (text, verified)
    }

    #[test]
    fn expired_writs_are_misses_and_get_swept() {
        let (key, keys, t0) = issuer();
        let cache = VerifyCache::new(4);
        let (short, v) = writ(&key, &keys, t0, 5);
        cache.insert(&v, t0);
        let (_, v) = writ(&key, &keys, t0, 30);
        cache.insert(&v, t0);
        assert!(cache.get(&short, t0).is_some());
        let later = t0 + Duration::from_secs(10);
        assert!(cache.get(&short, later).is_none());
        cache.sweep(later);
        assert_eq!(cache.len(), 1);
        // Bounded: a full cache of live writs drops those expiring soonest rather than grow.
        for _ in 0..5 {
            let (_, v) = writ(&key, &keys, t0, 30);
            cache.insert(&v, t0);
        }
        assert!(cache.len() <= 4);
    }

    /// A full cache of live writs keeps the ones that live longest, not none of them.
    #[test]
    fn a_full_cache_drops_the_writs_that_expire_soonest() {
        let (key, keys, t0) = issuer();
        let cache = VerifyCache::new(4);
        let texts: Vec<String> = (1..=4)
            .map(|ttl| {
                let (text, v) = writ(&key, &keys, t0, ttl * 5);
                cache.insert(&v, t0);
                text
            })
            .collect();
        let (newest, v) = writ(&key, &keys, t0, 30);
        cache.insert(&v, t0);
        // Expiring at +5, +10, +15, +20 s: those up to the median (+15 s) go, the latest
        // stays, with the new one. (Writs that all expire in the same second all go: no
        // worse than emptying the cache, as it did before.)
        let held = |text: &str| cache.get(text, t0).is_some();
        assert!(!held(&texts[0]) && !held(&texts[1]));
        assert!(held(&texts[3]));
        assert!(held(&newest));
        assert!(cache.len() >= 2 && cache.len() <= 4, "{}", cache.len());
        // A cache that may hold nothing stores nothing for long, and does not fail.
        let none = VerifyCache::new(0);
        let (_, v) = writ(&key, &keys, t0, 30);
        none.insert(&v, t0);
        assert!(none.len() <= 1);
    }

    /// The cache holds no text: an entry is found by the SHA-256 of the text it was
    /// verified from, and a hit is that verification with the text presented now.
    #[test]
    fn an_entry_is_found_only_by_the_text_it_was_verified_from() {
        let (key, keys, t0) = issuer();
        let cache = VerifyCache::new(4);
        let (text, v) = writ(&key, &keys, t0, 30);
        let (other, _) = writ(&key, &keys, t0, 30);
        cache.insert(&v, t0);
        let hit = cache.get(&text, t0).unwrap();
        assert!(hit.same_verification(&v));
        assert_eq!(hit.text(), text);
        assert!(cache.get(&other, t0).is_none(), "another writ's text");
        // One character changed: another key, another (unverified) writ.
        let mut altered = text.clone();
        altered.push('A');
        assert!(cache.get(&altered, t0).is_none());
    }
}
