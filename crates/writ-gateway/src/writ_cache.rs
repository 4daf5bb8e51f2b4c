//! The verified-writ cache: a writ's signatures are checked once, then looked up by hash
//! until it expires.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};
use std::time::SystemTime;

use sha2::{Digest, Sha256};
use writ_token::VerifiedWrit;

/// Verified writs by SHA-256 of their text, bounded in size. Holds no writ text.
pub struct WritCache {
    map: RwLock<HashMap<[u8; 32], Arc<VerifiedWrit>>>,
    capacity: usize,
}

impl WritCache {
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

    /// The verified writ cached under `key`.
    pub fn get(&self, key: &[u8; 32]) -> Option<Arc<VerifiedWrit>> {
        self.map
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .get(key)
            .cloned()
    }

    /// Drops every entry (after a revocation or a key change).
    pub fn clear(&self) {
        self.map.write().unwrap_or_else(|p| p.into_inner()).clear();
    }

    /// Stores a verified writ; when full, first drops every writ expired at `now`, and if
    /// that frees nothing, starts over empty (a cache miss costs one signature check).
    pub fn insert(&self, key: [u8; 32], writ: Arc<VerifiedWrit>, now: SystemTime) {
        let mut map = self.map.write().unwrap_or_else(|p| p.into_inner());
        if map.len() >= self.capacity {
            map.retain(|_, w| w.claims().expires_at >= now);
            if map.len() >= self.capacity {
                map.clear();
            }
        }
        map.insert(key, writ);
    }
}
