//! Strikes (failed authentications) in Redis answer as in memory: back-off, lock-out,
//! clearing, the window, and exact counts across connections.

use super::*;

// Strikes: failed authentications, with back-off and lock-out.

const MS: u64 = 1_000_000;

fn strike_policy() -> StrikePolicy {
    StrikePolicy {
        window: Duration::from_secs(60),
        backoff_after: 2,
        backoff_base: Duration::from_secs(1),
        backoff_max: Duration::from_secs(8),
        lockout_after: 5,
        lockout: Duration::from_secs(120),
    }
}

/// A strike key no other test, run or process uses, with characters that need escaping.
fn unique_strike_key() -> String {
    format!("client:{}=x,%", unique_agent())
}

/// Both backends behind `Limiter`, fed the same calls, asserting the same answers.
struct BothStrikes {
    memory: Limiter,
    redis: Limiter,
}

impl BothStrikes {
    async fn new() -> Self {
        Self {
            memory: Limiter::Memory(MemoryLimiter::new()),
            redis: Limiter::Redis(connect(DEFAULT_LEASE_TTL).await),
        }
    }

    async fn strike(&self, key: &str, policy: &StrikePolicy, now: u64) -> StrikeOutcome {
        let m = self.memory.strike(key, policy, now).await.unwrap();
        let r = self.redis.strike(key, policy, now).await.unwrap();
        assert_eq!(r, m, "redis and memory disagree striking {key} at {now}");
        r
    }

    async fn check(&self, key: &str, policy: &StrikePolicy, now: u64) -> StrikeVerdict {
        let m = self.memory.strike_check(key, policy, now).await.unwrap();
        let r = self.redis.strike_check(key, policy, now).await.unwrap();
        assert_eq!(r, m, "redis and memory disagree checking {key} at {now}");
        r
    }

    async fn clear(&self, key: &str) {
        self.memory.strike_clear(key).await.unwrap();
        self.redis.strike_clear(key).await.unwrap();
    }
}

#[tokio::test]
async fn strikes_back_off_then_lock_out_then_release_clean() {
    let both = BothStrikes::new().await;
    let p = strike_policy();
    let key = unique_strike_key();
    let now = now_ns();
    let secs = |s: u64| Duration::from_secs(s);
    assert_eq!(both.check(&key, &p, now).await, StrikeVerdict::Clear);
    let o = both.strike(&key, &p, now).await;
    assert_eq!((o.verdict, o.failures), (StrikeVerdict::Clear, 1));
    let mut verdicts = Vec::new();
    for _ in 0..3 {
        verdicts.push(both.strike(&key, &p, now).await.verdict);
    }
    assert_eq!(
        verdicts,
        [1, 2, 4].map(|s| StrikeVerdict::Backoff {
            retry_after: secs(s)
        })
    );
    assert_eq!(
        both.check(&key, &p, now + 3 * NS).await,
        StrikeVerdict::Backoff {
            retry_after: secs(1)
        }
    );
    assert_eq!(
        both.check(&key, &p, now + 4 * NS).await,
        StrikeVerdict::Clear
    );
    // The fifth locks the key out, reported once.
    let at = now + 4 * NS;
    let o = both.strike(&key, &p, at).await;
    assert_eq!(
        o,
        StrikeOutcome {
            verdict: StrikeVerdict::Locked {
                retry_after: secs(120)
            },
            failures: 5,
            locked_now: true
        }
    );
    let o = both.strike(&key, &p, at + NS).await;
    assert_eq!(
        o,
        StrikeOutcome {
            verdict: StrikeVerdict::Locked {
                retry_after: secs(119)
            },
            failures: 0,
            locked_now: false
        }
    );
    // Clearing failures does not lift a lock-out.
    both.clear(&key).await;
    assert_eq!(
        both.check(&key, &p, at + 120 * NS - MS).await,
        StrikeVerdict::Locked {
            retry_after: Duration::from_millis(1)
        }
    );
    // Released after the lock-out, by the time passed in, with a clean slate.
    let end = at + 120 * NS;
    assert_eq!(both.check(&key, &p, end).await, StrikeVerdict::Clear);
    let o = both.strike(&key, &p, end).await;
    assert_eq!((o.verdict, o.failures), (StrikeVerdict::Clear, 1));

    // Both Redis keys live as long as the longer of the window and the lock-out.
    let [failures, lock] = RedisLimiter::strike_keys(&key);
    assert!(
        failures.starts_with("writ:strike:client%3Atest-"),
        "{failures}"
    );
    assert!(failures.ends_with("%3Dx%2C%25"), "{failures}");
    assert!(lock.starts_with("writ:strike-lock:client%3A"), "{lock}");
    let mut conn = redis_conn().await;
    let pttl: i64 = redis::cmd("PTTL")
        .arg(&failures)
        .query_async(&mut conn)
        .await
        .unwrap();
    assert!(pttl > 60_000 && pttl <= 120_000, "failures PTTL {pttl}");
}

#[tokio::test]
async fn strike_clear_forgets_failures() {
    let both = BothStrikes::new().await;
    let p = strike_policy();
    let (key, other) = (unique_strike_key(), unique_strike_key());
    let now = now_ns();
    for _ in 0..4 {
        both.strike(&key, &p, now).await;
    }
    both.strike(&other, &p, now).await;
    both.strike(&other, &p, now).await;
    assert!(!both.check(&key, &p, now).await.is_clear());
    both.clear(&key).await;
    assert_eq!(both.check(&key, &p, now).await, StrikeVerdict::Clear);
    assert_eq!(both.strike(&key, &p, now).await.failures, 1);
    // Other keys keep theirs.
    assert_eq!(both.strike(&other, &p, now).await.failures, 3);
    // Clearing a key never struck is harmless.
    both.clear(&unique_strike_key()).await;
    let [failures, _] = RedisLimiter::strike_keys(&key);
    let mut conn = redis_conn().await;
    let n: u64 = redis::cmd("ZCARD")
        .arg(&failures)
        .query_async(&mut conn)
        .await
        .unwrap();
    assert_eq!(n, 1);
}

/// Failures leave the window by the time passed in, and at most `lockout_after` are kept.
#[tokio::test]
async fn strikes_leave_the_window() {
    let both = BothStrikes::new().await;
    let p = strike_policy();
    let key = unique_strike_key();
    let now = now_ns();
    both.strike(&key, &p, now).await;
    both.strike(&key, &p, now + 30 * NS).await;
    // 60 s after the first: it has left the window.
    let o = both.strike(&key, &p, now + 60 * NS).await;
    assert_eq!(o.failures, 2);
    assert_eq!(
        both.check(&key, &p, now + 61 * NS).await,
        StrikeVerdict::Clear
    );
    // No lock-out: the back-off caps, and only `backoff_after + 64` failures are kept.
    let never = StrikePolicy {
        lockout_after: 0,
        ..p
    };
    let key = unique_strike_key();
    for i in 0..70 {
        let o = both.strike(&key, &never, now + i * MS).await;
        assert_eq!(o.failures, u32::try_from(i + 1).unwrap().min(66));
        assert!(!o.locked_now);
    }
    let [failures, _] = RedisLimiter::strike_keys(&key);
    let n: u64 = redis::cmd("ZCARD")
        .arg(&failures)
        .query_async(&mut redis_conn().await)
        .await
        .unwrap();
    assert_eq!(n, 66);
}

/// A few hundred random strikes, checks and clears on a few keys under two policies, with
/// time moving on unevenly (and now and then back, as another gateway's clock may be):
/// both backends give the same answers throughout. Windows are far longer than the test
/// runs, so Redis' own expiry (real clock) never drops a key that still counts.
#[tokio::test]
async fn random_strikes_agree_with_memory() {
    let both = BothStrikes::new().await;
    let policies = [
        StrikePolicy {
            window: Duration::from_millis(25_000),
            backoff_after: 1,
            backoff_base: Duration::from_millis(1_000),
            backoff_max: Duration::from_millis(7_000),
            lockout_after: 4,
            lockout: Duration::from_millis(15_000),
        },
        StrikePolicy {
            window: Duration::from_nanos(19_999_999_999),
            backoff_after: 0,
            backoff_base: Duration::from_nanos(1),
            backoff_max: Duration::from_secs(3_600),
            lockout_after: 0,
            lockout: Duration::ZERO,
        },
    ];
    let keys: Vec<(String, usize)> = (0..4).map(|i| (unique_strike_key(), i % 2)).collect();
    let mut seed: u64 = 0x9e37_79b9_7f4a_7c15;
    let mut rand = move |n: u64| {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed % n
    };
    let mut now = now_ns();
    let mut locks = 0;
    for _ in 0..400 {
        let (key, policy) = &keys[usize::try_from(rand(4)).unwrap()];
        let policy = &policies[*policy];
        match rand(10) {
            0 => both.clear(key).await,
            1..=3 => {
                both.check(key, policy, now).await;
            }
            _ => {
                if both.strike(key, policy, now).await.locked_now {
                    locks += 1;
                }
            }
        }
        // Mostly forward by up to 3 s, in nanoseconds; sometimes a little back.
        now = if rand(20) == 0 {
            now - rand(500 * MS)
        } else {
            now + rand(3_000 * MS)
        };
    }
    assert!(locks > 0, "the random walk should lock some key out");
}

/// Fifty failures at once on one key from two connections (two gateways): counted exactly,
/// and the lock-out they reach reported started exactly once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_strikes_count_exactly() {
    let limiters = [
        Arc::new(connect(DEFAULT_LEASE_TTL).await),
        Arc::new(connect(DEFAULT_LEASE_TTL).await),
    ];
    for lockout_after in [50, 20] {
        let policy = StrikePolicy {
            lockout_after,
            ..strike_policy()
        };
        let key = unique_strike_key();
        let now = now_ns();
        let tasks: Vec<_> = (0..50)
            .map(|i| {
                let limiter = Arc::clone(&limiters[i % 2]);
                let key = key.clone();
                tokio::spawn(async move { limiter.strike(&key, &policy, now).await })
            })
            .collect();
        let mut counted = Vec::new();
        let mut started = 0;
        let mut refused = 0;
        for task in tasks {
            let o = task.await.unwrap().unwrap();
            if o.locked_now {
                started += 1;
                assert_eq!(o.failures, lockout_after);
            }
            if o.failures == 0 {
                refused += 1;
                assert!(matches!(o.verdict, StrikeVerdict::Locked { .. }));
            } else {
                counted.push(o.failures);
            }
        }
        counted.sort_unstable();
        assert_eq!(counted, (1..=lockout_after).collect::<Vec<_>>());
        assert_eq!((started, refused), (1, 50 - lockout_after));
        assert_eq!(
            limiters[0].strike_check(&key, &policy, now).await.unwrap(),
            StrikeVerdict::Locked {
                retry_after: Duration::from_secs(120)
            }
        );
    }
}

/// Neither errors nor `Debug` name the Redis URL's password, on strikes as elsewhere.
#[tokio::test]
async fn strike_errors_name_no_secret() {
    // The default user has no password, so Redis accepts any with a user name.
    let url = "redis://default:hunter2@127.0.0.1:6379/";
    let limiter = RedisLimiter::connect(url, DEFAULT_LEASE_TTL).await.unwrap();
    let debug = format!("{limiter:?}");
    assert!(
        !debug.contains("hunter2") && !debug.contains("redis://"),
        "{debug}"
    );
    // A key holding the wrong type makes every operation fail.
    let key = unique_strike_key();
    let [failures, lock] = RedisLimiter::strike_keys(&key);
    let mut conn = redis_conn().await;
    let () = redis::pipe()
        .hset(&failures, "f", "v")
        .ignore()
        .hset(&lock, "f", "v")
        .ignore()
        .expire(&failures, 60)
        .ignore()
        .expire(&lock, 60)
        .ignore()
        .query_async(&mut conn)
        .await
        .unwrap();
    let limiter = Limiter::Redis(limiter);
    let p = strike_policy();
    let now = now_ns();
    let errors = [
        (
            Operation::Strike,
            limiter.strike(&key, &p, now).await.unwrap_err(),
        ),
        (
            Operation::StrikeCheck,
            limiter.strike_check(&key, &p, now).await.unwrap_err(),
        ),
    ];
    for (op, err) in errors {
        let text = format!("{err} {err:?}");
        assert!(!text.contains("hunter2"), "{text}");
        assert!(
            matches!(err, BackendError::Server { op: o, .. } if o == op),
            "{err:?}"
        );
    }
    let err = RedisLimiter::connect("redis://user:hunter2@127.0.0.1:1/", DEFAULT_LEASE_TTL)
        .await
        .unwrap_err();
    assert!(!format!("{err} {err:?}").contains("hunter2"), "{err:?}");
}
