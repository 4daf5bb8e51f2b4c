//! Limits at run time against memory and the real Redis at 127.0.0.1:6379: refusals,
//! fallback, dropped reservations and settlements batched across two gateways.

use super::*;
use writ_limits::{Field, RedisLimiter, Window};

const REDIS: &str = "redis://127.0.0.1:6379/";

/// A fixed instant (January 2027), so the day's window is known.
fn now() -> SystemTime {
    SystemTime::UNIX_EPOCH + Duration::from_secs(1_800_000_000)
}

/// One request a day per agent, kept in `backend`, with `fallback` if given.
fn one_a_day_spec() -> Vec<LimitSpec> {
    vec![LimitSpec {
        scope: vec![Field::Agent],
        dimension: Dimension::Requests,
        window: Window::Day,
        limit: 1,
        burst: 1,
        only: Vec::new(),
    }]
}

fn one_a_day(backend: Limiter, fallback: Option<Limiter>) -> Limits {
    Limits::with(backend, fallback, writ_limits::model::DEFAULT_LEASE_TTL, 0)
}

fn subject(agent: &str) -> Subject<'_> {
    Subject {
        tenant: "t",
        agent,
        writ: "w",
        upstream: "u",
        model: None,
    }
}

fn no_budgets() -> WritBudgets {
    WritBudgets {
        usd_micros: None,
        tokens: None,
        expires_at: now() + Duration::from_secs(60),
    }
}

fn one_request() -> Amounts {
    Amounts {
        requests: 1,
        ..Amounts::default()
    }
}

/// A Redis backend whose key for `agent` holds a hash, so every reservation on it fails
/// in Redis (a real backend failure, not a refusal).
async fn failing_redis(agent: &str) -> Limiter {
    let redis = RedisLimiter::connect(REDIS, writ_limits::model::DEFAULT_LEASE_TTL)
        .await
        .unwrap_or_else(|e| panic!("this test needs Redis at {REDIS}: {e}"));
    let limits = one_a_day(Limiter::Memory(MemoryLimiter::new()), None);
    let now_ns = nanos(now());
    let key = one_a_day_spec()[0]
        .charge(&subject(agent), &one_request(), now_ns, limits.lease_ttl)
        .unwrap()
        .key;
    let mut conn = redis::Client::open(REDIS)
        .unwrap()
        .get_multiplexed_async_connection()
        .await
        .unwrap();
    let () = redis::pipe()
        .hset(&key, "f", "v")
        .ignore()
        .expire(&key, 60)
        .ignore()
        .query_async(&mut conn)
        .await
        .unwrap();
    Limiter::Redis(redis)
}

fn unique_agent() -> String {
    format!("gw-limits-{:032x}", rand::random::<u128>())
}

/// One request in flight per agent, and a day's budget of 1000 tokens.
fn one_in_flight_and_tokens() -> Vec<LimitSpec> {
    let spec = |dimension, window, limit| LimitSpec {
        scope: vec![Field::Agent],
        dimension,
        window,
        limit,
        burst: limit,
        only: Vec::new(),
    };
    vec![
        spec(Dimension::Concurrency, Window::InFlight, 1),
        spec(Dimension::Tokens, Window::Day, 1000),
    ]
}

/// A request whose client went away while the upstream worked is dropped with its
/// reservation unsettled: its lease must come back at once (not after the lease TTL)
/// and its estimate stay charged, as the upstream may have spent it.
#[tokio::test]
async fn a_reservation_dropped_unsettled_keeps_its_charge_and_frees_its_lease() {
    let limits = one_a_day(Limiter::Memory(MemoryLimiter::new()), None);
    let specs = one_in_flight_and_tokens();
    let estimate = Amounts {
        requests: 1,
        input_tokens: 100,
        output_tokens: 64,
        ..Amounts::default()
    };
    let (who, budgets) = (subject("a"), no_budgets());
    let reserve = || limits.reserve(&specs, &who, estimate, &budgets, now());
    let held = reserve().await.unwrap().expect("limits apply");
    assert!(
        matches!(reserve().await, Err(GatewayError::RateLimited(_))),
        "the one slot is taken"
    );
    drop(held);
    // The settlement runs on the runtime: poll, yielding to it, with a deadline.
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    let again = loop {
        match reserve().await {
            Ok(again) => break again.expect("limits apply"),
            Err(GatewayError::RateLimited(_)) if std::time::Instant::now() < deadline => {
                tokio::task::yield_now().await;
            }
            Err(e) => panic!("the dropped reservation's lease was not released: {e:?}"),
        }
    };
    let tokens: Vec<u64> = limits
        .backend
        .snapshot(nanos(now()))
        .await
        .unwrap()
        .into_iter()
        .filter(|(key, _)| key.starts_with("writ:limit:tokens:"))
        .map(|(_, used)| used)
        .collect();
    assert_eq!(
        tokens,
        vec![2 * 164],
        "the dropped one's estimate stays charged"
    );
    again.settle(Amounts::default());
}

/// Two gateways on one Redis settle their reservations off the requests' path, in
/// batches: once the queues are sent the budget holds exactly what was used (every
/// estimate given back or charged over) and no lease is left held.
#[tokio::test]
async fn batched_settlements_on_two_gateways_are_exact() {
    let ttl = writ_limits::model::DEFAULT_LEASE_TTL;
    let gateway = || async {
        let redis = RedisLimiter::connect(REDIS, ttl)
            .await
            .unwrap_or_else(|e| panic!("this test needs Redis at {REDIS}: {e}"));
        Limits::with(Limiter::Redis(redis), None, ttl, 0)
    };
    let (a, b) = (gateway().await, gateway().await);
    let agent = unique_agent();
    let (who, budgets) = (subject(&agent), no_budgets());
    let specs = one_in_flight_and_tokens()
        .into_iter()
        .map(|mut s| {
            s.limit *= 40;
            s.burst = s.limit;
            s
        })
        .collect::<Vec<_>>();
    let estimate = Amounts {
        requests: 1,
        input_tokens: 10,
        output_tokens: 10,
        ..Amounts::default()
    };
    // 40 in flight at once, half on each gateway: the limit of 40 is reached.
    let mut held = Vec::new();
    for i in 0..40 {
        let limits = if i % 2 == 0 { &a } else { &b };
        let h = limits
            .reserve(&specs, &who, estimate, &budgets, now())
            .await;
        held.push(h.unwrap().expect("limits apply"));
    }
    let refused = a.reserve(&specs, &who, estimate, &budgets, now()).await;
    assert!(
        matches!(refused, Err(GatewayError::RateLimited(_))),
        "{refused:?}"
    );
    // Settled with 0..39 tokens each: 780 used in all.
    for (i, h) in held.into_iter().enumerate() {
        h.settle(Amounts {
            input_tokens: i as u64,
            ..Amounts::default()
        });
    }
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while a.settling.queued() + b.settling.queued() > 0 {
        assert!(std::time::Instant::now() < deadline, "never sent");
        tokio::task::yield_now().await;
    }
    let mine: Vec<(String, u64)> = a
        .backend
        .snapshot(nanos(now()))
        .await
        .unwrap()
        .into_iter()
        .filter(|(key, n)| key.contains(&agent) && *n != 0)
        .collect();
    assert_eq!(
        mine.len(),
        1,
        "only the day's tokens, no lease held: {mine:?}"
    );
    assert!(mine[0].0.starts_with("writ:limit:tokens:"), "{mine:?}");
    assert_eq!(mine[0].1, 780);
}

#[tokio::test]
async fn a_refusal_is_rate_limited() {
    let limits = one_a_day(Limiter::Memory(MemoryLimiter::new()), None);
    let first = limits
        .reserve(
            &one_a_day_spec(),
            &subject("a"),
            one_request(),
            &no_budgets(),
            now(),
        )
        .await;
    assert!(matches!(first, Ok(Some(_))), "{first:?}");
    let second = limits
        .reserve(
            &one_a_day_spec(),
            &subject("a"),
            one_request(),
            &no_budgets(),
            now(),
        )
        .await;
    assert!(
        matches!(&second, Err(GatewayError::RateLimited(r)) if r.limit == 1 && r.dimension == Dimension::Requests),
        "{second:?}"
    );
    let totals = limits.decisions.totals();
    assert!(totals.contains(&("requests", "allowed", 1)), "{totals:?}");
    assert!(totals.contains(&("requests", "refused", 1)), "{totals:?}");
    assert_eq!(totals.iter().map(|t| t.2).sum::<u64>(), 2, "{totals:?}");
}

#[tokio::test]
async fn a_failing_backend_fails_closed_without_a_fallback() {
    let agent = unique_agent();
    let limits = one_a_day(failing_redis(&agent).await, None);
    let outcome = limits
        .reserve(
            &one_a_day_spec(),
            &subject(&agent),
            one_request(),
            &no_budgets(),
            now(),
        )
        .await;
    assert!(
        matches!(outcome, Err(GatewayError::LimiterUnavailable)),
        "{outcome:?}"
    );
    let totals = limits.decisions.totals();
    assert!(
        totals.contains(&("requests", "unavailable", 1)),
        "{totals:?}"
    );
}

#[tokio::test]
async fn a_failing_backend_falls_back_to_local_limits_which_refuse_as_limits() {
    let agent = unique_agent();
    let limits = one_a_day(
        failing_redis(&agent).await,
        Some(Limiter::Memory(MemoryLimiter::new())),
    );
    let held = limits
        .reserve(
            &one_a_day_spec(),
            &subject(&agent),
            one_request(),
            &no_budgets(),
            now(),
        )
        .await
        .unwrap()
        .expect("a limit applies");
    assert!(
        Arc::ptr_eq(&held.settling.backend, limits.fallback.as_ref().unwrap()),
        "held in the local fallback"
    );
    let refused = limits
        .reserve(
            &one_a_day_spec(),
            &subject(&agent),
            one_request(),
            &no_budgets(),
            now(),
        )
        .await;
    assert!(
        matches!(refused, Err(GatewayError::RateLimited(_))),
        "{refused:?}"
    );
}
