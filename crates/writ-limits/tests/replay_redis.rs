//! The replay store in the real Redis at 127.0.0.1:6379: an id is first once across
//! connections (as across gateway processes), exactly one of many racing callers is told
//! it is first, keys are fixed-size whatever the id and expire when the id may be
//! forgotten, and Redis answers as memory does.
//!
//! These fail, never skip, when Redis is not running. Every test uses ids of its own, so
//! they run in parallel and again and again on the same Redis.
#![allow(clippy::unwrap_used, missing_docs)]

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

use writ_limits::model::DEFAULT_LEASE_TTL;
use writ_limits::{Limiter, MemoryLimiter, RedisLimiter, ReplayId, ReplayKind};

const URL: &str = "redis://127.0.0.1:6379/";
const S: u64 = 1_000_000_000;

async fn limiter() -> Limiter {
    match RedisLimiter::connect(URL, DEFAULT_LEASE_TTL).await {
        Ok(r) => Limiter::Redis(r),
        Err(e) => panic!("these tests need Redis at {URL}: {e}"),
    }
}

/// An id no other test, run or process uses.
fn unique(prefix: &str) -> String {
    static N: AtomicU64 = AtomicU64::new(0);
    format!(
        "{prefix}-{}-{}-{}",
        std::process::id(),
        now_ns(),
        N.fetch_add(1, Ordering::Relaxed)
    )
}

/// The real time: keys expire by Redis' clock.
#[allow(clippy::disallowed_methods)]
fn now_ns() -> u64 {
    u64::try_from(
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .as_nanos(),
    )
    .unwrap()
}

async fn redis_conn() -> redis::aio::MultiplexedConnection {
    redis::Client::open(URL)
        .unwrap()
        .get_multiplexed_async_connection()
        .await
        .unwrap()
}

#[tokio::test]
async fn an_id_is_first_once_across_connections() {
    let (a, b) = (limiter().await, limiter().await);
    let jti = unique("jti");
    let id = ReplayId::new(ReplayKind::DpopProof, &["thumbprint", &jti]);
    let now = now_ns();
    assert_eq!(a.first_use(&id, now + 30 * S, now).await, Ok(true));
    assert_eq!(b.first_use(&id, now + 30 * S, now).await, Ok(false));
    assert_eq!(a.first_use(&id, now + 30 * S, now).await, Ok(false));
    // The same text is another id in another kind.
    let other = ReplayId::new(ReplayKind::Assertion, &["thumbprint", &jti]);
    assert_eq!(b.first_use(&other, now + 30 * S, now).await, Ok(true));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exactly_one_of_racing_callers_is_first() {
    let limiters = Arc::new([limiter().await, limiter().await]);
    for round in 0..10 {
        let id = ReplayId::new(ReplayKind::SingleUse, &[&unique("writ")]);
        let now = now_ns();
        let tasks: Vec<_> = (0..16)
            .map(|i| {
                let limiters = limiters.clone();
                tokio::spawn(async move { limiters[i % 2].first_use(&id, now + 30 * S, now).await })
            })
            .collect();
        let mut firsts = 0;
        for t in tasks {
            if t.await.unwrap().unwrap() {
                firsts += 1;
            }
        }
        assert_eq!(firsts, 1, "round {round}");
    }
}

#[tokio::test]
async fn a_key_is_fixed_size_and_lives_until_the_id_may_be_forgotten() {
    let r = limiter().await;
    // A hostile client's megabyte-long jti.
    let jti = format!("{}{}", unique("long"), "x".repeat(1 << 20));
    let id = ReplayId::new(ReplayKind::Assertion, &["client", &jti]);
    let now = now_ns();
    assert_eq!(r.first_use(&id, now + 90 * S, now).await, Ok(true));
    let key = id.redis_key();
    assert!(key.len() <= 87, "{key}");
    assert!(!key.contains("xxxx"), "{key}");
    let mut conn = redis_conn().await;
    let (value, pttl): (String, i64) = redis::pipe()
        .get(&key)
        .pttl(&key)
        .query_async(&mut conn)
        .await
        .unwrap();
    assert_eq!(value, "1");
    assert!(pttl > 80_000 && pttl <= 90_000, "PTTL {pttl}");
    // An id whose time has passed is still kept a millisecond: never a key without expiry.
    let late = ReplayId::new(ReplayKind::Assertion, &[&unique("late")]);
    assert_eq!(r.first_use(&late, now - S, now).await, Ok(true));
    let pttl: i64 = redis::cmd("PTTL")
        .arg(late.redis_key())
        .query_async(&mut conn)
        .await
        .unwrap();
    assert!(pttl <= 1, "PTTL {pttl}");
}

#[tokio::test]
async fn redis_answers_as_memory_does() {
    let (redis, memory) = (limiter().await, Limiter::Memory(MemoryLimiter::new()));
    let now = now_ns();
    let names: Vec<String> = (0..4).map(|_| unique("same")).collect();
    // Each id tried three times, interleaved with the others, in each kind.
    for kind in ReplayKind::ALL {
        for round in 0..3 {
            for name in &names {
                let id = ReplayId::new(kind, &[name]);
                let m = memory.first_use(&id, now + 60 * S, now).await.unwrap();
                let r = redis.first_use(&id, now + 60 * S, now).await.unwrap();
                assert_eq!(r, m, "{kind:?} {name} round {round}");
                assert_eq!(r, round == 0);
            }
        }
    }
}

#[tokio::test]
async fn ids_are_kept_by_the_ttl_given() {
    // The TTL comes from the times passed in, not Redis' clock: a gateway whose clock is
    // ahead keeps an id exactly as long as it asked.
    let r = limiter().await;
    let id = ReplayId::new(ReplayKind::SingleUse, &[&unique("ttl")]);
    let far_future = now_ns() + 3_600 * S;
    assert_eq!(
        r.first_use(&id, far_future + 5 * S + 1, far_future).await,
        Ok(true)
    );
    let pttl: i64 = redis::cmd("PTTL")
        .arg(id.redis_key())
        .query_async(&mut redis_conn().await)
        .await
        .unwrap();
    assert!(pttl > 4_000 && pttl <= 5_001, "PTTL {pttl}");
}
