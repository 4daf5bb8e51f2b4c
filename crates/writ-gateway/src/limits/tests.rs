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

/// Limits on the real Redis, with a fresh agent and 40 in flight and 1000 tokens a day.
async fn on_redis() -> (Limits, String, Vec<LimitSpec>) {
    let ttl = writ_limits::model::DEFAULT_LEASE_TTL;
    let redis = RedisLimiter::connect(REDIS, ttl)
        .await
        .unwrap_or_else(|e| panic!("this test needs Redis at {REDIS}: {e}"));
    let specs = one_in_flight_and_tokens()
        .into_iter()
        .map(|mut s| {
            if s.dimension == Dimension::Concurrency {
                s.limit = 40;
                s.burst = 40;
            }
            s
        })
        .collect();
    (
        Limits::with(Limiter::Redis(redis), None, ttl, 0),
        unique_agent(),
        specs,
    )
}

/// The agent's non-zero counters in `limits`' backend: (day's tokens, leases held).
async fn tokens_and_leases(limits: &Limits, agent: &str) -> (u64, u64) {
    let mut out = (0, 0);
    for (key, n) in limits.backend.snapshot(nanos(now())).await.unwrap() {
        if !key.contains(agent) {
            continue;
        }
        if key.starts_with("writ:limit:tokens:") {
            out.0 = n;
        } else if key.starts_with("writ:limit:concurrency:") {
            out.1 = n;
        }
    }
    out
}

/// Waits (yielding to the runtime, with a deadline) until nothing is queued to settle.
async fn until_sent(settling: &Settling) {
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while settling.queued() > 0 {
        assert!(std::time::Instant::now() < deadline, "never sent");
        tokio::task::yield_now().await;
    }
}

fn tokens(n: u64) -> Amounts {
    Amounts {
        requests: 1,
        input_tokens: n,
        ..Amounts::default()
    }
}

/// A request's settlement queued on its thread rides on the next reservation made there
/// (one script call for both): it lands exactly, before the reservation it rides with
/// (whose lease it frees), and nothing is left for the sending task to send.
#[tokio::test]
async fn a_settlement_carried_by_the_next_reservation_lands_exactly() {
    let (limits, agent, mut specs) = on_redis().await;
    specs[0].limit = 1;
    specs[0].burst = 1;
    let (who, budgets) = (subject(&agent), no_budgets());
    let first = limits
        .reserve(&specs, &who, tokens(100), &budgets, now())
        .await
        .unwrap()
        .expect("limits apply");
    assert_eq!(tokens_and_leases(&limits, &agent).await, (100, 1));
    first.settle(tokens(30));
    assert_eq!(limits.settling.queued(), 2, "queued, its sender started");
    let carried = limits.settling.carry();
    assert_eq!(carried.len(), 1, "the next reservation takes it");
    drop(carried);
    assert_eq!(limits.settling.queued(), 2, "put back, unsent");
    // The one lease is free only once the settlement lands: with the reservation.
    let second = limits
        .reserve(&specs, &who, tokens(200), &budgets, now())
        .await
        .unwrap()
        .expect("the carried settlement freed the lease");
    assert_eq!(tokens_and_leases(&limits, &agent).await, (30 + 200, 1));
    until_sent(&limits.settling).await;
    assert_eq!(
        tokens_and_leases(&limits, &agent).await,
        (230, 1),
        "sent once, not again by the sending task"
    );
    second.settle(tokens(0));
    until_sent(&limits.settling).await;
    assert_eq!(tokens_and_leases(&limits, &agent).await, (30, 0));
}

/// A settlement no reservation comes to carry is sent by the thread's task on its own.
#[tokio::test]
async fn a_lone_settlement_is_sent_without_a_next_request() {
    let (limits, agent, specs) = on_redis().await;
    let (who, budgets) = (subject(&agent), no_budgets());
    let held = limits
        .reserve(&specs, &who, tokens(100), &budgets, now())
        .await
        .unwrap()
        .expect("limits apply");
    held.settle(tokens(7));
    until_sent(&limits.settling).await;
    assert_eq!(tokens_and_leases(&limits, &agent).await, (7, 0));
}

/// A reservation carrying a settlement whose request goes away while its call is on its
/// way: the call is finished rather than given up (Redis' client drops a command whose
/// caller left before it was written), so the settlement lands, once, and the
/// reservation it made is given back whole (nothing was sent upstream). One taken but
/// never sent goes back to the queue (see above).
#[tokio::test]
async fn a_settlement_carried_by_a_dropped_reservation_lands_once() {
    let (limits, agent, specs) = on_redis().await;
    let (who, budgets) = (subject(&agent), no_budgets());
    let reserve = |n| limits.reserve(&specs, &who, tokens(n), &budgets, now());
    let held = reserve(100).await.unwrap().expect("limits apply");
    held.settle(tokens(2));
    {
        let mut call = std::pin::pin!(reserve(50));
        let polled = futures_util::poll!(call.as_mut());
        assert!(polled.is_pending(), "Redis answers later");
        assert_eq!(
            limits.settling.queued(),
            1,
            "carried: only its sender is left"
        );
    }
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while tokens_and_leases(&limits, &agent).await != (2, 0) {
        assert!(
            std::time::Instant::now() < deadline,
            "the carried settlement or the give-back never landed: {:?}",
            tokens_and_leases(&limits, &agent).await
        );
        tokio::task::yield_now().await;
    }
    until_sent(&limits.settling).await;
    assert_eq!(
        tokens_and_leases(&limits, &agent).await,
        (2, 0),
        "landed once"
    );
}

/// Two gateways on one Redis, each request's settlement carried by the next reservation
/// on its gateway: the budget holds exactly what was used and no lease is left.
#[tokio::test]
async fn carried_settlements_on_two_gateways_are_exact() {
    let (a, agent, specs) = on_redis().await;
    let (b, _, _) = on_redis().await;
    let (who, budgets) = (subject(&agent), no_budgets());
    let mut used = 0;
    let mut carried = 0;
    for i in 0..40u64 {
        let limits = if i % 3 == 0 { &a } else { &b };
        carried += limits.settling.queued().min(1);
        let held = limits
            .reserve(&specs, &who, tokens(20), &budgets, now())
            .await
            .unwrap()
            .expect("limits apply");
        held.settle(tokens(i % 7));
        used += i % 7;
    }
    assert!(carried > 0, "some settlements were carried");
    until_sent(&a.settling).await;
    until_sent(&b.settling).await;
    assert_eq!(tokens_and_leases(&a, &agent).await, (used, 0));
}
