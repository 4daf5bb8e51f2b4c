//! MCP session bindings in the real Redis at 127.0.0.1:6379: a session is bound once
//! across connections (as across gateway processes), exactly one of many racing binders
//! wins, only the owner ends a binding, keys hold digests only and expire, and Redis
//! answers as memory does.
//!
//! These fail, never skip, when Redis is not running. Every test uses sessions of its own,
//! so they run in parallel and again and again on the same Redis.
#![allow(missing_docs)]

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

use redis::AsyncCommands;
use writ_limits::model::DEFAULT_LEASE_TTL;
use writ_limits::{Bound, Limiter, MemoryLimiter, RedisLimiter, SessionKey, SessionOwner};

const URL: &str = "redis://127.0.0.1:6379/";
const S: u64 = 1_000_000_000;

async fn limiter() -> Limiter {
    match RedisLimiter::connect(URL, DEFAULT_LEASE_TTL).await {
        Ok(r) => Limiter::Redis(r),
        Err(e) => panic!("these tests need Redis at {URL}: {e}"),
    }
}

/// A session id no other test, run or process uses.
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
            .expect("after the epoch")
            .as_nanos(),
    )
    .expect("nanoseconds fit in u64")
}

async fn redis_conn() -> redis::aio::MultiplexedConnection {
    redis::Client::open(URL)
        .expect("a valid URL")
        .get_multiplexed_async_connection()
        .await
        .expect("Redis at 127.0.0.1:6379")
}

#[tokio::test]
async fn a_session_is_bound_once_across_connections_and_ended_only_by_its_owner() {
    let (a, b) = (limiter().await, limiter().await);
    let key = SessionKey::new("travel", &unique("session"));
    let (alice, bob) = (
        SessionOwner::new("default", "alice"),
        SessionOwner::new("default", "bob"),
    );
    let now = now_ns();
    assert_eq!(
        a.session_bind(&key, alice, now + 60 * S, now).await,
        Ok(Bound::New)
    );
    assert_eq!(
        b.session_bind(&key, alice, now + 60 * S, now).await,
        Ok(Bound::Same)
    );
    assert_eq!(
        b.session_bind(&key, bob, now + 60 * S, now).await,
        Ok(Bound::Other)
    );
    assert_eq!(b.session_owner(&key, now).await, Ok(Some(alice)));
    assert_eq!(
        b.session_end(&key, bob).await,
        Ok(false),
        "not bob's to end"
    );
    assert_eq!(a.session_owner(&key, now).await, Ok(Some(alice)));
    assert_eq!(b.session_end(&key, alice).await, Ok(true));
    assert_eq!(a.session_owner(&key, now).await, Ok(None));
    assert_eq!(a.session_end(&key, alice).await, Ok(false));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exactly_one_of_racing_binders_wins() {
    let limiters = Arc::new([limiter().await, limiter().await]);
    for round in 0..10 {
        let key = SessionKey::new("travel", &unique("race"));
        let now = now_ns();
        let tasks: Vec<_> = (0..16)
            .map(|i| {
                let limiters = limiters.clone();
                tokio::spawn(async move {
                    let owner = SessionOwner::new("default", &format!("agent-{i}"));
                    limiters[i % 2]
                        .session_bind(&key, owner, now + 60 * S, now)
                        .await
                })
            })
            .collect();
        let mut new = 0;
        for t in tasks {
            match t.await.expect("the task ends").expect("Redis answers") {
                Bound::New => new += 1,
                Bound::Other => {}
                Bound::Same => panic!("every racer is another agent"),
            }
        }
        assert_eq!(new, 1, "round {round}");
    }
}

#[tokio::test]
async fn the_key_holds_digests_only_and_expires() {
    let l = limiter().await;
    let id = unique("SECRET-SESSION-ID");
    let key = SessionKey::new("travel", &id);
    let owner = SessionOwner::new("default", "alice");
    let now = now_ns();
    assert_eq!(
        l.session_bind(&key, owner, now + 30 * S, now).await,
        Ok(Bound::New)
    );
    let mut conn = redis_conn().await;
    let held: String = conn.get(key.redis_key()).await.expect("the key");
    assert_eq!(held.len(), 64, "the owner's digest in hex");
    assert!(!held.contains("alice"));
    assert!(!key.redis_key().contains(&id));
    let ttl: i64 = conn.pttl(key.redis_key()).await.expect("its TTL");
    assert!(ttl > 0 && ttl <= 30_000, "{ttl}");
}

#[tokio::test]
async fn a_foreign_value_at_the_key_is_a_backend_failure_not_an_owner() {
    let l = limiter().await;
    let key = SessionKey::new("travel", &unique("garbage"));
    let mut conn = redis_conn().await;
    let _: () = conn
        .set_ex(key.redis_key(), "alice", 30)
        .await
        .expect("set");
    let now = now_ns();
    assert!(l.session_owner(&key, now).await.is_err());
    assert!(
        l.session_bind(&key, SessionOwner::new("default", "alice"), now + S, now)
            .await
            .is_err()
    );
}

#[tokio::test]
async fn redis_answers_as_memory_does() {
    let redis = limiter().await;
    let memory = Limiter::Memory(MemoryLimiter::new());
    let key = SessionKey::new("travel", &unique("same"));
    let (alice, bob) = (
        SessionOwner::new("default", "alice"),
        SessionOwner::new("default", "bob"),
    );
    let now = now_ns();
    for l in [&redis, &memory] {
        assert_eq!(l.session_owner(&key, now).await, Ok(None));
        assert_eq!(
            l.session_bind(&key, bob, now + 60 * S, now).await,
            Ok(Bound::New)
        );
        assert_eq!(
            l.session_bind(&key, alice, now + 60 * S, now).await,
            Ok(Bound::Other)
        );
        assert_eq!(l.session_owner(&key, now).await, Ok(Some(bob)));
        assert_eq!(l.session_end(&key, bob).await, Ok(true));
        assert_eq!(
            l.session_bind(&key, alice, now + 60 * S, now).await,
            Ok(Bound::New)
        );
        assert_eq!(l.session_end(&key, alice).await, Ok(true));
    }
}
