//! Strikes in memory: each key's [`StrikeState`] in shards of their own, swept of keys
//! whose failures have all left the window and whose lock-out has ended.

use std::collections::HashMap;
use std::sync::MutexGuard;
use std::sync::atomic::Ordering;

use super::{MemoryLimiter, SHARDS};
use crate::model::{StrikeOutcome, StrikePolicy, StrikeState, StrikeVerdict, strike_ms};

/// Every this many strikes, the next strike shard in turn is swept of expired keys: each
/// shard once per `SWEEP_EVERY * SHARDS` strikes, so a sweep costs, per strike, about the
/// keys created by that many strikes divided by it.
const SWEEP_EVERY: usize = 16;

#[derive(Debug)]
struct StrikeEntry {
    state: StrikeState,
    /// From when (ms) the state no longer matters and may be dropped.
    expires_ms: u64,
}

#[derive(Debug, Default)]
pub(super) struct StrikeShard {
    keys: HashMap<String, StrikeEntry>,
}

impl MemoryLimiter {
    fn strike_shard(&self, key: &str) -> MutexGuard<'_, StrikeShard> {
        self.lock_strikes(self.shard_of(key))
    }

    fn lock_strikes(&self, shard: usize) -> MutexGuard<'_, StrikeShard> {
        // Every write to a strike state completes before anything can panic. Keep serving.
        self.strikes[shard]
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Whether `key` may try now, at `now_ns`; changes nothing.
    pub fn strike_check(&self, key: &str, policy: &StrikePolicy, now_ns: u64) -> StrikeVerdict {
        let shard = self.strike_shard(key);
        shard.keys.get(key).map_or(StrikeVerdict::Clear, |e| {
            e.state.verdict(strike_ms(now_ns), policy)
        })
    }

    /// Records one failure of `key` at `now_ns` and reports the verdict after it (see
    /// [`StrikeState::strike`]).
    pub fn strike(&self, key: &str, policy: &StrikePolicy, now_ns: u64) -> StrikeOutcome {
        let now = strike_ms(now_ns);
        let count = self.strike_count.fetch_add(1, Ordering::Relaxed);
        if count.is_multiple_of(SWEEP_EVERY) {
            // Holding no other shard, so this cannot deadlock.
            self.lock_strikes((count / SWEEP_EVERY) % SHARDS)
                .keys
                .retain(|_, e| e.expires_ms > now);
        }
        let mut shard = self.strike_shard(key);
        let entry = match shard.keys.get_mut(key) {
            Some(entry) => entry,
            None => shard.keys.entry(key.to_string()).or_insert(StrikeEntry {
                state: StrikeState::default(),
                expires_ms: 0,
            }),
        };
        let outcome = entry.state.strike(now, policy);
        entry.expires_ms = entry.state.expires_ms(policy);
        outcome
    }

    /// Forgets `key`'s failures, not its lock-out: after a successful authentication.
    pub fn strike_clear(&self, key: &str) {
        let mut shard = self.strike_shard(key);
        if let Some(entry) = shard.keys.get_mut(key) {
            entry.state.clear();
            if entry.state.locked_until == 0 {
                shard.keys.remove(key);
            }
        }
    }

    /// Forgets the failures and lock-outs of every key starting with `prefix`; returns
    /// those keys.
    pub fn strike_forget_prefix(&self, prefix: &str) -> Vec<String> {
        let mut forgotten = Vec::new();
        for i in 0..SHARDS {
            let mut shard = self.lock_strikes(i);
            shard.keys.retain(|key, _| {
                let keep = !key.starts_with(prefix);
                if !keep {
                    forgotten.push(key.clone());
                }
                keep
            });
        }
        forgotten.sort();
        forgotten
    }

    /// Forgets `key`'s failures and lock-out.
    pub fn strike_forget(&self, key: &str) {
        self.strike_shard(key).keys.remove(key);
    }

    /// How many strike keys are held, for tests of the sweep.
    #[cfg(test)]
    fn strike_keys(&self) -> usize {
        (0..SHARDS).map(|i| self.lock_strikes(i).keys.len()).sum()
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    const NS: u64 = 1_000_000_000;

    fn strike_policy() -> StrikePolicy {
        StrikePolicy {
            window: Duration::from_secs(60),
            backoff_after: 2,
            backoff_base: Duration::from_secs(1),
            backoff_max: Duration::from_secs(30),
            lockout_after: 3,
            lockout: Duration::from_secs(120),
        }
    }

    #[test]
    fn strikes_back_off_lock_out_and_clear() {
        let limiter = MemoryLimiter::new();
        let p = strike_policy();
        let now = 1_000_000 * NS;
        assert_eq!(limiter.strike_check("c", &p, now), StrikeVerdict::Clear);
        assert_eq!(limiter.strike("c", &p, now).failures, 1);
        let o = limiter.strike("c", &p, now);
        assert_eq!(
            o.verdict,
            StrikeVerdict::Backoff {
                retry_after: Duration::from_secs(1)
            }
        );
        assert_eq!(limiter.strike_check("c", &p, now), o.verdict);
        // Another key is untouched.
        assert_eq!(limiter.strike_check("d", &p, now), StrikeVerdict::Clear);
        limiter.strike_clear("c");
        assert_eq!(limiter.strike_check("c", &p, now), StrikeVerdict::Clear);
        for _ in 0..2 {
            limiter.strike("c", &p, now);
        }
        let o = limiter.strike("c", &p, now);
        assert!(o.locked_now);
        // Clearing keeps the lock-out.
        limiter.strike_clear("c");
        assert_eq!(
            limiter.strike_check("c", &p, now),
            StrikeVerdict::Locked {
                retry_after: Duration::from_secs(120)
            }
        );
        assert_eq!(
            limiter.strike_check("c", &p, now + 120 * NS),
            StrikeVerdict::Clear
        );
    }

    #[test]
    fn expired_strike_keys_are_swept() {
        let limiter = MemoryLimiter::new();
        let p = strike_policy();
        let now = 1_000_000 * NS;
        for i in 0..1_000 {
            limiter.strike(&format!("k{i}"), &p, now);
        }
        assert_eq!(limiter.strike_keys(), 1_000);
        // A window later, striking other keys sweeps the old ones away: every shard is swept
        // once per 1,024 strikes.
        let later = now + 60 * NS;
        for i in 0..(SWEEP_EVERY * SHARDS) {
            limiter.strike(&format!("n{}", i % 100), &p, later);
        }
        assert_eq!(limiter.strike_keys(), 100);
    }
}
