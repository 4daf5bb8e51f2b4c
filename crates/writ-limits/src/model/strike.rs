//! Strikes: failed authentications counted per key (a client id, a source IP), with
//! back-off and lock-out. Time in whole milliseconds since the Unix epoch.

use std::time::Duration;

/// How failed authentications on one key (a client id, a source IP) turn into back-off and
/// lock-out.
///
/// Strikes keep time in whole milliseconds: times are milliseconds since the Unix epoch
/// (see [`strike_ms`]), and these durations are rounded up to whole milliseconds (`window`
/// and `lockout` to at least 1 ms). Every time and duration is capped at [`STRIKE_MAX_MS`],
/// and all arithmetic saturates, so no configuration overflows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct StrikePolicy {
    /// The sliding window failures are counted in: a failure at `t` counts while
    /// `t + window > now`.
    pub window: Duration,
    /// Failures in the window from which back-off applies (0: from the first failure).
    pub backoff_after: u32,
    /// The first back-off; doubled per further failure.
    pub backoff_base: Duration,
    /// The back-off cap.
    pub backoff_max: Duration,
    /// Failures in the window that lock the key out (0: never locked out).
    pub lockout_after: u32,
    /// How long a lock-out lasts; then the key is released with a clean slate.
    pub lockout: Duration,
}

/// Whether a key may try (authenticate) now.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum StrikeVerdict {
    /// It may.
    Clear,
    /// Not yet: too many recent failures. Try again after `retry_after` (at least 1 ms).
    Backoff {
        /// Until the back-off ends.
        retry_after: Duration,
    },
    /// Locked out: no tries until `retry_after` (at least 1 ms) has passed.
    Locked {
        /// Until the lock-out ends.
        retry_after: Duration,
    },
}

impl StrikeVerdict {
    /// Whether the key may try now.
    pub fn is_clear(&self) -> bool {
        matches!(self, StrikeVerdict::Clear)
    }

    /// How long until the key may try again; `None` when it may now.
    pub fn retry_after(&self) -> Option<Duration> {
        match self {
            StrikeVerdict::Clear => None,
            StrikeVerdict::Backoff { retry_after } | StrikeVerdict::Locked { retry_after } => {
                Some(*retry_after)
            }
        }
    }
}

/// What recording one failure did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct StrikeOutcome {
    /// The verdict right after this failure.
    pub verdict: StrikeVerdict,
    /// Failures in the window, this one included (for the failure that started a lock-out,
    /// the count that reached it). 0 when the key was already locked out: the failure was
    /// not counted.
    pub failures: u32,
    /// Whether this failure started a lock-out: true for exactly one failure per lock-out.
    pub locked_now: bool,
}

/// The largest time or duration strikes use, in milliseconds: 2^52 ms (about 142,000
/// years), so that the sum of two stays exact as a double (Redis' Lua).
pub const STRIKE_MAX_MS: u64 = 1 << 52;

/// A time in nanoseconds since the Unix epoch as strikes keep it: whole milliseconds,
/// rounded down, at most [`STRIKE_MAX_MS`].
pub fn strike_ms(now_ns: u64) -> u64 {
    (now_ns / 1_000_000).min(STRIKE_MAX_MS)
}

/// A duration in whole milliseconds, rounded up, at most [`STRIKE_MAX_MS`].
fn ms_ceil(d: Duration) -> u64 {
    u64::try_from(d.as_nanos().div_ceil(1_000_000))
        .unwrap_or(u64::MAX)
        .min(STRIKE_MAX_MS)
}

impl StrikePolicy {
    /// The window in milliseconds (at least 1).
    pub fn window_ms(&self) -> u64 {
        ms_ceil(self.window).max(1)
    }

    /// The lock-out in milliseconds (at least 1).
    pub fn lockout_ms(&self) -> u64 {
        ms_ceil(self.lockout).max(1)
    }

    /// The back-off after `failures` failures in the window, in milliseconds:
    /// `min(base * 2^(failures - backoff_after), max)`, 0 below `backoff_after` or without
    /// failures.
    pub fn backoff_ms(&self, failures: u32) -> u64 {
        if failures == 0 || failures < self.backoff_after {
            return 0;
        }
        let doublings = failures - self.backoff_after;
        ms_ceil(self.backoff_base)
            .saturating_mul(2u64.saturating_pow(doublings))
            .min(ms_ceil(self.backoff_max))
    }

    /// At most this many failure times are kept per key: `lockout_after`, or without
    /// lock-out `backoff_after + 64` (beyond which the back-off is at its cap anyway).
    pub fn kept(&self) -> u32 {
        if self.lockout_after == 0 {
            self.backoff_after.saturating_add(64)
        } else {
            self.lockout_after
        }
    }

    /// How long a key's state matters after its last change, in milliseconds: the longer of
    /// the window and the lock-out.
    pub fn ttl_ms(&self) -> u64 {
        self.window_ms().max(self.lockout_ms())
    }
}

fn ms(ms: u64) -> Duration {
    Duration::from_millis(ms.max(1))
}

/// The verdict on a key at `now_ms`, from its failure times (ms, any order) and the end of
/// its lock-out (`locked_until_ms`, 0 for none). Pure; every backend decides with it.
///
/// - `locked_until_ms > now_ms`: [`Locked`](StrikeVerdict::Locked) for the rest of it.
/// - Failures count while `t + window > now`; call their number `n`.
/// - `n >= lockout_after` (and `lockout_after > 0`; states written by
///   [`StrikeState::strike`] never hold that many): the failure that reached it started a
///   lock-out until its time plus `lockout`. If that is still running,
///   [`Locked`](StrikeVerdict::Locked); else the key was released with a clean slate, so
///   only failures from the end of that lock-out on count, and this repeats.
/// - `n >= backoff_after`: the back-off is `min(backoff_base * 2^(n - backoff_after),
///   backoff_max)` from the latest failure; [`Backoff`](StrikeVerdict::Backoff) for the rest
///   of it, if any.
/// - Otherwise [`Clear`](StrikeVerdict::Clear).
pub fn strike_verdict(
    failures_ms: &[u64],
    locked_until_ms: u64,
    now_ms: u64,
    policy: &StrikePolicy,
) -> StrikeVerdict {
    if locked_until_ms > now_ms {
        return StrikeVerdict::Locked {
            retry_after: ms(locked_until_ms - now_ms),
        };
    }
    let window = policy.window_ms();
    let mut live: Vec<u64> = failures_ms
        .iter()
        .copied()
        .filter(|t| t.saturating_add(window) > now_ms)
        .collect();
    live.sort_unstable();
    let lockout_after = usize::try_from(policy.lockout_after).unwrap_or(usize::MAX);
    while lockout_after > 0 && live.len() >= lockout_after {
        let until = live[lockout_after - 1].saturating_add(policy.lockout_ms());
        if until > now_ms {
            return StrikeVerdict::Locked {
                retry_after: ms(until - now_ms),
            };
        }
        // Released: the failures up to the lock-out were cleared, and none were counted
        // while it lasted. Removes at least `lockout_after` failures, so this ends.
        live.retain(|t| *t >= until);
    }
    let Some(last) = live.last() else {
        return StrikeVerdict::Clear;
    };
    let n = u32::try_from(live.len()).unwrap_or(u32::MAX);
    let until = last.saturating_add(policy.backoff_ms(n));
    if until > now_ms {
        StrikeVerdict::Backoff {
            retry_after: ms(until - now_ms),
        }
    } else {
        StrikeVerdict::Clear
    }
}

/// One key's strike state, as a backend keeps it. Times in milliseconds (see
/// [`strike_ms`]).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct StrikeState {
    /// Failure times, ascending; at most [`StrikePolicy::kept`] after a strike.
    pub failures: Vec<u64>,
    /// When the lock-out ends; 0 (or any time not after now) for none.
    pub locked_until: u64,
}

impl StrikeState {
    /// The verdict at `now_ms`: [`strike_verdict`] on this state.
    pub fn verdict(&self, now_ms: u64, policy: &StrikePolicy) -> StrikeVerdict {
        strike_verdict(&self.failures, self.locked_until, now_ms, policy)
    }

    /// Records one failure at `now_ms` and reports the verdict after it.
    ///
    /// While locked out nothing is recorded (the lock-out is not extended). Otherwise an
    /// ended lock-out is forgotten, failures out of the window are dropped, this one is
    /// added; if that makes `lockout_after`, the failures are cleared and the key is locked
    /// out for `lockout` from now (`locked_now`). Else only the newest
    /// [`StrikePolicy::kept`] failures are kept.
    pub fn strike(&mut self, now_ms: u64, policy: &StrikePolicy) -> StrikeOutcome {
        if self.locked_until > now_ms {
            return StrikeOutcome {
                verdict: self.verdict(now_ms, policy),
                failures: 0,
                locked_now: false,
            };
        }
        self.locked_until = 0;
        let window = policy.window_ms();
        self.failures.retain(|t| t.saturating_add(window) > now_ms);
        let at = self.failures.partition_point(|t| *t <= now_ms);
        self.failures.insert(at, now_ms);
        let n = u32::try_from(self.failures.len()).unwrap_or(u32::MAX);
        if policy.lockout_after > 0 && n >= policy.lockout_after {
            self.failures.clear();
            self.locked_until = now_ms.saturating_add(policy.lockout_ms());
            return StrikeOutcome {
                verdict: self.verdict(now_ms, policy),
                failures: n,
                locked_now: true,
            };
        }
        let kept = usize::try_from(policy.kept()).unwrap_or(usize::MAX);
        if self.failures.len() > kept {
            let excess = self.failures.len() - kept;
            self.failures.drain(..excess);
        }
        StrikeOutcome {
            verdict: self.verdict(now_ms, policy),
            failures: u32::try_from(self.failures.len()).unwrap_or(u32::MAX),
            locked_now: false,
        }
    }

    /// Forgets the failures (not a lock-out): after a successful authentication.
    pub fn clear(&mut self) {
        self.failures.clear();
    }

    /// From when (ms) this state no longer matters: its lock-out has ended and every failure
    /// has left the window. A backend may drop it then.
    pub fn expires_ms(&self, policy: &StrikePolicy) -> u64 {
        let window = policy.window_ms();
        self.failures
            .iter()
            .map(|t| t.saturating_add(window))
            .fold(self.locked_until, u64::max)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy() -> StrikePolicy {
        StrikePolicy {
            window: Duration::from_secs(60),
            backoff_after: 3,
            backoff_base: Duration::from_secs(1),
            backoff_max: Duration::from_secs(8),
            lockout_after: 8,
            lockout: Duration::from_secs(300),
        }
    }

    const MS: u64 = 1_000;
    const T0: u64 = 1_800_000_000_000;

    fn backoff(ms: u64) -> StrikeVerdict {
        StrikeVerdict::Backoff {
            retry_after: Duration::from_millis(ms),
        }
    }

    fn locked(ms: u64) -> StrikeVerdict {
        StrikeVerdict::Locked {
            retry_after: Duration::from_millis(ms),
        }
    }

    #[test]
    fn strikes_below_backoff_are_clear() {
        let p = policy();
        let mut s = StrikeState::default();
        assert_eq!(s.verdict(T0, &p), StrikeVerdict::Clear);
        for n in 1..=2 {
            let o = s.strike(T0, &p);
            assert_eq!(
                o,
                StrikeOutcome {
                    verdict: StrikeVerdict::Clear,
                    failures: n,
                    locked_now: false
                }
            );
        }
        assert_eq!(s.verdict(T0, &p), StrikeVerdict::Clear);
        assert!(s.verdict(T0, &p).is_clear());
        assert_eq!(s.verdict(T0, &p).retry_after(), None);
    }

    #[test]
    fn backoff_doubles_per_failure_up_to_its_cap() {
        let p = policy();
        let mut s = StrikeState::default();
        let mut now = T0;
        let mut seen = Vec::new();
        for _ in 0..7 {
            let o = s.strike(now, &p);
            seen.push(o.verdict);
            assert_eq!(o.verdict, s.verdict(now, &p));
            now += 100;
        }
        let c = StrikeVerdict::Clear;
        assert_eq!(
            seen,
            vec![
                c,
                c,
                backoff(MS),
                backoff(2 * MS),
                backoff(4 * MS),
                backoff(8 * MS),
                backoff(8 * MS)
            ]
        );
        // The back-off runs from the latest failure.
        let last = now - 100;
        assert_eq!(s.verdict(last + 5 * MS, &p), backoff(3 * MS));
        assert_eq!(s.verdict(last + 8 * MS - 1, &p), backoff(1));
        assert_eq!(s.verdict(last + 8 * MS, &p), StrikeVerdict::Clear);
        assert_eq!(p.backoff_ms(0), 0);
        assert_eq!(p.backoff_ms(2), 0);
        assert_eq!(p.backoff_ms(u32::MAX), 8 * MS);
    }

    #[test]
    fn lockout_starts_at_the_failure_that_reaches_it_and_releases_clean() {
        let p = policy();
        let mut s = StrikeState::default();
        for n in 1..8 {
            assert!(!s.strike(T0 + n, &p).locked_now);
        }
        let o = s.strike(T0 + 8, &p);
        assert_eq!(
            o,
            StrikeOutcome {
                verdict: locked(300 * MS),
                failures: 8,
                locked_now: true
            }
        );
        assert_eq!(
            s,
            StrikeState {
                failures: vec![],
                locked_until: T0 + 8 + 300 * MS
            }
        );
        // Failures while locked out are not counted and do not extend it.
        let o = s.strike(T0 + 1_000, &p);
        assert_eq!(
            o,
            StrikeOutcome {
                verdict: locked(300 * MS - 992),
                failures: 0,
                locked_now: false
            }
        );
        assert_eq!(s.verdict(T0 + 8 + 300 * MS - 1, &p), locked(1));
        // Released with a clean slate.
        let end = T0 + 8 + 300 * MS;
        assert_eq!(s.verdict(end, &p), StrikeVerdict::Clear);
        let o = s.strike(end, &p);
        assert_eq!((o.verdict, o.failures), (StrikeVerdict::Clear, 1));
        assert_eq!(s.locked_until, 0);
        // Clearing forgets failures, not a lock-out.
        s.clear();
        assert_eq!(s.verdict(end, &p), StrikeVerdict::Clear);
        let mut l = StrikeState {
            failures: vec![end],
            locked_until: end + 10,
        };
        l.clear();
        assert_eq!(l.verdict(end, &p), locked(10));
    }

    #[test]
    fn failures_leave_the_window() {
        let p = policy();
        let mut s = StrikeState::default();
        s.strike(T0, &p);
        s.strike(T0 + 10 * MS, &p);
        // Third failure 61 s after the first: only two in the window, no back-off.
        let o = s.strike(T0 + 61 * MS, &p);
        assert_eq!((o.verdict, o.failures), (StrikeVerdict::Clear, 2));
        assert_eq!(s.failures, vec![T0 + 10 * MS, T0 + 61 * MS]);
        // A failure counts while t + window > now.
        let f = [T0, T0 + 1, T0 + 2];
        assert_eq!(strike_verdict(&f, 0, T0 + 2, &p), backoff(MS));
        assert_eq!(
            strike_verdict(&f, 0, T0 + 60 * MS, &p),
            StrikeVerdict::Clear
        );
        assert_eq!(s.expires_ms(&p), T0 + 121 * MS);
    }

    #[test]
    fn verdicts_on_states_not_written_by_strike() {
        let p = policy();
        // Eight failures in the window (a policy lowered meanwhile): the eighth started a
        // lock-out, in any order of the input.
        let f: Vec<u64> = (0..8).rev().map(|i| T0 + i).collect();
        assert_eq!(strike_verdict(&f, 0, T0 + 7, &p), locked(300 * MS));
        // Once it ended, only failures from its end on count.
        let mut g = f.clone();
        let end = T0 + 7 + 300 * MS;
        // Outside the 60 s window anyway unless the window is long.
        let long = StrikePolicy {
            window: Duration::from_secs(3_600),
            ..p
        };
        g.extend([T0 + 100, end, end + 1, end + 2]);
        assert_eq!(strike_verdict(&g, 0, end + 2, &long), backoff(MS));
        // A lock-out already ended is no lock-out.
        assert_eq!(strike_verdict(&[], T0, T0, &p), StrikeVerdict::Clear);
    }

    #[test]
    fn zero_thresholds() {
        let never = StrikePolicy {
            backoff_after: 0,
            lockout_after: 0,
            ..policy()
        };
        let mut s = StrikeState::default();
        assert_eq!(s.verdict(T0, &never), StrikeVerdict::Clear);
        // Back-off from the first failure: base * 2^1.
        assert_eq!(s.strike(T0, &never).verdict, backoff(2 * MS));
        for i in 0..200 {
            let o = s.strike(T0 + i, &never);
            assert!(!o.locked_now);
        }
        assert_eq!(s.failures.len(), 64);
        assert_eq!(s.verdict(T0 + 199, &never), backoff(8 * MS));
        // Zero durations: at least a millisecond of window and lock-out, no back-off.
        let zero = StrikePolicy {
            window: Duration::ZERO,
            backoff_after: 1,
            backoff_base: Duration::ZERO,
            backoff_max: Duration::ZERO,
            lockout_after: 2,
            lockout: Duration::ZERO,
        };
        let mut s = StrikeState::default();
        assert_eq!(s.strike(T0, &zero).verdict, StrikeVerdict::Clear);
        let o = s.strike(T0, &zero);
        assert_eq!((o.verdict, o.locked_now), (locked(1), true));
        assert_eq!(s.verdict(T0 + 1, &zero), StrikeVerdict::Clear);
    }

    #[test]
    fn huge_values_saturate() {
        let huge = StrikePolicy {
            window: Duration::MAX,
            backoff_after: 1,
            backoff_base: Duration::MAX,
            backoff_max: Duration::MAX,
            lockout_after: u32::MAX,
            lockout: Duration::MAX,
        };
        assert_eq!(huge.window_ms(), STRIKE_MAX_MS);
        assert_eq!(huge.ttl_ms(), STRIKE_MAX_MS);
        assert_eq!(huge.backoff_ms(u32::MAX), STRIKE_MAX_MS);
        assert_eq!(huge.kept(), u32::MAX);
        let now = strike_ms(u64::MAX);
        assert_eq!(now, u64::MAX / 1_000_000);
        let mut s = StrikeState::default();
        let o = s.strike(now, &huge);
        assert_eq!(o.verdict, backoff(STRIKE_MAX_MS));
        assert_eq!(s.verdict(u64::MAX, &huge), StrikeVerdict::Clear);
        let lock = StrikePolicy {
            lockout_after: 1,
            ..huge
        };
        let o = s.strike(now, &lock);
        assert!(o.locked_now);
        assert_eq!(s.locked_until, now + STRIKE_MAX_MS);
        assert_eq!(s.expires_ms(&lock), now + STRIKE_MAX_MS);
        assert_eq!(
            strike_verdict(&[u64::MAX, 0], u64::MAX, 0, &lock),
            StrikeVerdict::Locked {
                retry_after: Duration::from_millis(u64::MAX)
            }
        );
        assert_eq!(
            strike_verdict(&[u64::MAX], 0, u64::MAX, &huge),
            StrikeVerdict::Clear
        );
    }

    /// Random policies, times and operations: the invariants hold and the verdict after a
    /// strike is the verdict of the state it left.
    #[test]
    fn random_strikes_keep_their_invariants() {
        let mut seed: u64 = 0x2545_f491_4f6c_dd1d;
        let mut rand = move |n: u64| {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed % n
        };
        for _ in 0..200 {
            let p = StrikePolicy {
                window: Duration::from_millis(rand(5_000)),
                backoff_after: u32::try_from(rand(5)).unwrap(),
                backoff_base: Duration::from_millis(rand(500)),
                backoff_max: Duration::from_millis(rand(5_000)),
                lockout_after: u32::try_from(rand(7)).unwrap(),
                lockout: Duration::from_millis(rand(10_000)),
            };
            let mut s = StrikeState::default();
            let mut now = T0;
            let mut locks = 0;
            for _ in 0..300 {
                match rand(10) {
                    0 => s.clear(),
                    1..=3 => {
                        let v = s.verdict(now, &p);
                        if let Some(r) = v.retry_after() {
                            assert!(r >= Duration::from_millis(1));
                        }
                    }
                    _ => {
                        let was_locked = s.locked_until > now;
                        let o = s.strike(now, &p);
                        assert_eq!(o.verdict, s.verdict(now, &p));
                        assert!(s.failures.len() <= p.kept() as usize);
                        assert!(s.failures.is_sorted());
                        if was_locked {
                            assert_eq!((o.failures, o.locked_now), (0, false));
                        }
                        if o.locked_now {
                            locks += 1;
                            assert_eq!(o.failures, p.lockout_after);
                            assert!(s.failures.is_empty());
                            assert!(matches!(o.verdict, StrikeVerdict::Locked { .. }));
                        } else if !was_locked {
                            assert!(p.lockout_after == 0 || o.failures < p.lockout_after);
                        }
                    }
                }
                now += rand(700);
            }
            if p.lockout_after == 0 {
                assert_eq!(locks, 0);
            }
        }
    }
}
