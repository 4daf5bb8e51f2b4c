//! The backend itself: unreachable Redis, foreign state under a limit key, the `Limiter`
//! enum, and the counters' read-out.

use super::*;

#[tokio::test]
async fn unreachable_redis_fails_fast_and_names_no_secret() {
    let started = std::time::Instant::now();
    let err = RedisLimiter::connect("redis://user:hunter2@127.0.0.1:1/", DEFAULT_LEASE_TTL)
        .await
        .unwrap_err();
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "{:?}",
        started.elapsed()
    );
    assert!(!format!("{err} {err:?}").contains("hunter2"), "{err:?}");
    assert!(
        matches!(
            err,
            BackendError::Connection {
                op: Operation::Connect,
                io: std::io::ErrorKind::ConnectionRefused,
            }
        ),
        "{err:?}"
    );

    let limiter = connect(DEFAULT_LEASE_TTL).await;
    let debug = format!("{limiter:?}");
    assert!(!debug.contains("redis://"), "{debug}");
}

/// State this backend did not write under a limit's key is a backend failure, never a
/// refusal or an admission.
#[tokio::test]
async fn foreign_state_under_a_limit_key_is_a_backend_error() {
    let limiter = Limiter::Redis(connect(DEFAULT_LEASE_TTL).await);
    let agent = unique_agent();
    let subject = Subject {
        tenant: "t",
        agent: &agent,
        writ: "w",
        upstream: "u",
        model: None,
    };
    let now = now_ns();
    let charge = spec(Dimension::Requests, Window::Day, 5)
        .charge(&subject, &requests(1), now, DEFAULT_LEASE_TTL)
        .unwrap();
    let mut conn = redis_conn().await;
    let () = redis::cmd("SET")
        .arg(&charge.key)
        .arg("not-a-number")
        .arg("EX")
        .arg(60)
        .query_async(&mut conn)
        .await
        .unwrap();
    let err = limiter
        .reserve("1".into(), vec![charge.clone()], requests(1), now)
        .await
        .unwrap_err();
    // The script itself stops on it: Redis answers an error.
    assert!(
        matches!(
            err,
            ReserveError::Backend(BackendError::Server {
                op: Operation::Reserve,
                kind: redis::ErrorKind::Server(_) | redis::ErrorKind::Extension,
            })
        ),
        "{err:?}"
    );
}

#[tokio::test]
async fn through_the_limiter_enum() {
    let limiter = writ_limits::Limiter::Redis(connect(DEFAULT_LEASE_TTL).await);
    let agent = unique_agent();
    let subject = Subject {
        tenant: "t",
        agent: &agent,
        writ: "w",
        upstream: "u",
        model: None,
    };
    let now = now_ns();
    let charge = spec(Dimension::Requests, Window::Day, 1)
        .charge(&subject, &requests(1), now, DEFAULT_LEASE_TTL)
        .unwrap();
    let r = limiter
        .reserve("1".into(), vec![charge.clone()], requests(1), now)
        .await
        .unwrap();
    let refused = limiter
        .reserve("2".into(), vec![charge.clone()], requests(1), now)
        .await;
    assert!(
        matches!(&refused, Err(ReserveError::Refused(r)) if r.dimension == Dimension::Requests),
        "{refused:?}"
    );
    limiter.settle(&r, &requests(0), now).await.unwrap();
    let snapshot = limiter.snapshot(now).await.unwrap();
    assert!(snapshot.contains(&(charge.key.clone(), 0)));
}

/// A key under the prefix that this backend did not write does not sink the read-out.
#[tokio::test]
async fn snapshot_skips_foreign_keys() {
    let limiter = connect(DEFAULT_LEASE_TTL).await;
    let agent = unique_agent();
    let mut conn = redis::Client::open(URL)
        .unwrap()
        .get_multiplexed_async_connection()
        .await
        .unwrap();
    let hash = format!("writ:limit:requests:d1:1:agent={agent}-hash");
    let text = format!("writ:limit:requests:d1:1:agent={agent}-text");
    let good = format!("writ:limit:requests:d1:1:agent={agent}-good");
    let () = redis::pipe()
        .hset(&hash, "f", "v")
        .ignore()
        .set(&text, "not a number")
        .ignore()
        .set(&good, "7")
        .ignore()
        .expire(&hash, 60)
        .ignore()
        .expire(&text, 60)
        .ignore()
        .expire(&good, 60)
        .ignore()
        .query_async(&mut conn)
        .await
        .unwrap();
    let mine: Vec<(String, u64)> = limiter
        .snapshot(now_ns())
        .await
        .unwrap()
        .into_iter()
        .filter(|(k, _)| k.contains(&agent))
        .collect();
    assert_eq!(mine, vec![(good, 7)]);
}
