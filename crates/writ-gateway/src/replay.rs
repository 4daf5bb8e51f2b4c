//! `ReplayCache`: one-time identifiers (assertion `jti`, DPoP proof `jti`) seen until they
//! expire, so each can be used once.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::SystemTime;

/// Seen identifiers with the time after which they may be forgotten.
pub(crate) struct ReplayCache {
    seen: Mutex<HashMap<String, SystemTime>>,
    capacity: usize,
}

impl ReplayCache {
    pub(crate) fn new(capacity: usize) -> Self {
        Self {
            seen: Mutex::new(HashMap::new()),
            capacity,
        }
    }

    /// Records `id` until `until`; false if it was already recorded and not yet expired.
    /// When full, expired entries are dropped; if it is still full the id is refused, so
    /// a flood fails closed rather than forgetting live ids.
    pub(crate) fn first_use(&self, id: String, until: SystemTime, now: SystemTime) -> bool {
        let mut seen = self.seen.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(expiry) = seen.get(&id)
            && *expiry >= now
        {
            return false;
        }
        if seen.len() >= self.capacity {
            seen.retain(|_, expiry| *expiry >= now);
            if seen.len() >= self.capacity {
                return false;
            }
        }
        seen.insert(id, until);
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::{Duration, UNIX_EPOCH};

    #[test]
    fn an_id_is_accepted_once_until_it_expires() {
        let cache = ReplayCache::new(2);
        let t = UNIX_EPOCH + Duration::from_secs(1000);
        assert!(cache.first_use("a".into(), t + Duration::from_secs(10), t));
        assert!(!cache.first_use(
            "a".into(),
            t + Duration::from_secs(10),
            t + Duration::from_secs(5)
        ));
        assert!(cache.first_use(
            "a".into(),
            t + Duration::from_secs(30),
            t + Duration::from_secs(11)
        ));
        assert!(cache.first_use("b".into(), t + Duration::from_secs(30), t));
        assert!(
            !cache.first_use("c".into(), t + Duration::from_secs(30), t),
            "full of live ids: refuse"
        );
    }
}
