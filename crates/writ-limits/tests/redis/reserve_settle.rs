//! Reservations and settlements in Redis answer as in memory: all or nothing, overruns and
//! refunds, batches, leases, rates and their exact arithmetic, leases expiring by the time
//! passed in.

use super::*;

#[tokio::test]
async fn all_or_nothing() {
    let both = Both::new(vec![
        spec(Dimension::Requests, Window::Day, 10),
        spec(Dimension::Tokens, Window::Day, 100),
    ])
    .await;
    let now = now_ns();
    let big = Amounts {
        requests: 1,
        input_tokens: 60,
        ..Amounts::default()
    };
    let r = both.reserve("1", big, now).await.unwrap();
    assert_eq!(r.remaining[0].remaining, 9);
    assert_eq!(r.remaining[1].remaining, 40);
    // The second fails on tokens, so requests must not be taken either.
    let refusal = both.reserve("2", big, now).await.unwrap_err();
    assert_eq!(refusal.dimension, Dimension::Tokens);
    assert_eq!(refusal.scope, format!("agent={}", both.agent));
    let small = Amounts {
        requests: 1,
        input_tokens: 40,
        ..Amounts::default()
    };
    let r2 = both.reserve("3", small, now).await.unwrap();
    assert_eq!(r2.remaining[0].remaining, 8);
    let snapshot = both.snapshot(now).await;
    let values: Vec<u64> = snapshot.iter().map(|(_, n)| *n).collect();
    assert_eq!(values, vec![2, 100]);
}

#[tokio::test]
async fn settle_charges_overruns_and_refunds_the_rest() {
    let both = Both::new(vec![spec(Dimension::Cost, Window::Day, 1_000)]).await;
    let now = now_ns();
    let cost = |n| Amounts {
        cost_usd_micros: n,
        ..Amounts::default()
    };
    let est = cost(300);
    let r = both.reserve("1", est, now).await.unwrap();
    // Used more than estimated: charged.
    both.settle(&r, cost(500)).await;
    assert_eq!(both.snapshot(now).await[0].1, 500);
    let r = both.reserve("2", est, now).await.unwrap();
    // Failed upstream: refunded.
    both.settle(&r, Amounts::default()).await;
    assert_eq!(both.snapshot(now).await[0].1, 500);
    // 500 left: 300 fits once, not twice.
    let r3 = both.reserve("3", est, now).await.unwrap();
    let refusal = both.reserve("4", est, now).await.unwrap_err();
    assert_eq!(refusal.dimension, Dimension::Cost);
    both.settle(&r3, cost(100)).await;
    assert_eq!(both.snapshot(now).await[0].1, 600);

    // The budget key lives until its window's end plus a day, by the Redis clock.
    let key = &r.charges[0].key;
    let mut conn = redis::Client::open(URL)
        .unwrap()
        .get_multiplexed_async_connection()
        .await
        .unwrap();
    let pttl: i64 = redis::cmd("PTTL")
        .arg(key)
        .query_async(&mut conn)
        .await
        .unwrap();
    assert!(
        pttl > 86_400_000 && pttl <= 2 * 86_400_000,
        "budget key PTTL {pttl}"
    );

    // Given back more than is counted (the counter was lowered meanwhile): zero, never below,
    // as `saturating_sub` in memory.
    let r = both.reserve("5", cost(10), now).await.unwrap();
    let () = redis::cmd("SET")
        .arg(key)
        .arg("3")
        .arg("KEEPTTL")
        .query_async(&mut conn)
        .await
        .unwrap();
    both.redis.settle(&r, &Amounts::default()).await.unwrap();
    let left: String = redis::cmd("GET")
        .arg(key)
        .query_async(&mut conn)
        .await
        .unwrap();
    assert_eq!(left, "0");
}

/// Several reservations settled in one call (as the gateway sends a batch) end exactly where
/// settling each in turn does: rates, budgets and leases, with two of them on the same keys.
#[tokio::test]
async fn a_batch_of_settlements_is_settled_as_each_would_be() {
    let both = Both::new(vec![
        spec(
            Dimension::Requests,
            Window::Rate {
                period: Duration::from_secs(60),
            },
            100,
        ),
        spec(Dimension::Tokens, Window::Day, 1_000),
        spec(Dimension::Concurrency, Window::InFlight, 3),
    ])
    .await;
    let now = now_ns();
    let estimate = Amounts {
        requests: 1,
        input_tokens: 100,
        ..Amounts::default()
    };
    let a = both.reserve("a", estimate, now).await.unwrap();
    let b = both.reserve("b", estimate, now).await.unwrap();
    let c = both.reserve("c", estimate, now).await.unwrap();
    assert!(
        both.reserve("d", estimate, now).await.is_err(),
        "three in flight"
    );
    let (over, under) = (input_tokens(250), input_tokens(10));
    let failed = Amounts::default();
    both.memory.settle(&a, &over);
    both.memory.settle(&b, &under);
    both.memory.settle(&c, &failed);
    both.redis
        .settle_many(&[(&a, &over), (&b, &under), (&c, &failed)])
        .await
        .unwrap();
    let tokens: Vec<u64> = both
        .snapshot(now)
        .await
        .into_iter()
        .filter(|(k, _)| k.starts_with("writ:limit:tokens:"))
        .map(|(_, n)| n)
        .collect();
    assert_eq!(tokens, vec![260], "250 + 10 + 0, each estimate given back");
    // Every lease is back: three fit again.
    for id in ["e", "f", "g"] {
        both.reserve(id, estimate, now).await.unwrap();
    }
    // An empty batch is no call.
    both.redis.settle_many(&[]).await.unwrap();
}

#[tokio::test]
async fn concurrency_leases_are_released_and_expire() {
    let both = Both::new(vec![spec(Dimension::Concurrency, Window::InFlight, 2)]).await;
    let now = now_ns();
    let one = requests(1);
    let a = both.reserve("a", one, now).await.unwrap();
    let _b = both.reserve("b", one, now).await.unwrap();
    let refusal = both.reserve("c", one, now).await.unwrap_err();
    assert_eq!(refusal.retry_after, Duration::from_secs(1));
    assert_eq!(both.snapshot(now).await[0].1, 2);
    both.settle(&a, one).await;
    assert_eq!(both.snapshot(now).await[0].1, 1);
    let _d = both.reserve("d", one, now).await.unwrap();
    // Reserving again under a held id does not count that id twice.
    both.reserve("d", one, now).await.unwrap();
    // Leases never released expire after their TTL.
    let later = now + DEFAULT_LEASE_TTL.as_secs() * NS + 1;
    both.reserve("e", one, later).await.unwrap();
    both.reserve("f", one, later).await.unwrap();
    both.reserve("g", one, later).await.unwrap_err();
    assert_eq!(both.snapshot(later).await[0].1, 2);
}

#[tokio::test]
async fn rates_refill_over_time() {
    let both = Both::new(vec![spec(
        Dimension::Tokens,
        Window::Rate {
            period: Duration::from_secs(60),
        },
        600,
    )])
    .await;
    let now = now_ns();
    let est = input_tokens(300);
    let r1 = both.reserve("1", est, now).await.unwrap();
    both.reserve("2", est, now).await.unwrap();
    let refusal = both.reserve("3", est, now).await.unwrap_err();
    assert_eq!(refusal.retry_after, Duration::from_secs(30));
    assert_eq!(both.snapshot(now).await[0].1, 60 * NS);
    // The first used only 60 tokens: 240 come back at once.
    both.settle(&r1, input_tokens(60)).await;
    both.reserve("4", est, now).await.unwrap_err();
    both.reserve("5", input_tokens(240), now).await.unwrap();
    // Ten seconds later, 100 tokens have come back.
    let later = now + 10 * NS;
    both.reserve("6", input_tokens(101), later)
        .await
        .unwrap_err();
    let r = both.reserve("7", input_tokens(100), later).await.unwrap();
    assert_eq!(r.remaining[0].remaining, 0);
    // Larger than the burst: never admissible.
    let refusal = both
        .reserve("8", input_tokens(601), later + 3600 * NS)
        .await;
    assert_eq!(refusal.unwrap_err().retry_after, Duration::from_secs(60));
}

/// Uneven periods (increments that are not whole microseconds) and times in nanoseconds
/// near the top of `u64`'s present-day range: the script's arithmetic must stay exact.
#[tokio::test]
async fn rates_are_exact_to_the_nanosecond() {
    let mut uneven = spec(
        Dimension::Requests,
        Window::Rate {
            period: Duration::from_nanos(7 * NS + 3),
        },
        3,
    );
    uneven.burst = 2;
    let both = Both::new(vec![uneven]).await;
    let mut now = now_ns() | 0x3ff;
    for i in 0..40 {
        let id = i.to_string();
        match both.reserve(&id, requests(1 + i % 2), now).await {
            Ok(r) if i % 3 == 0 => both.settle(&r, requests(i % 4)).await,
            _ => {}
        }
        both.snapshot(now).await;
        now += 1_234_567_891 + i * 7;
    }
}

/// Sums whose low nine digits carry exactly, and sums past `u64::MAX` (saturating as in
/// memory): the script's two-limb arithmetic must match `u64`'s.
#[tokio::test]
async fn arithmetic_is_exact_at_carries_and_saturation() {
    // One unit per nanosecond, so the arrival time moves by exactly the amount.
    let rate = Both::new(vec![spec(
        Dimension::Requests,
        Window::Rate {
            period: Duration::from_secs(1),
        },
        NS,
    )])
    .await;
    let now = now_ns() / NS * NS + 123_456_789;
    rate.reserve("1", requests(NS - 123_456_789), now)
        .await
        .unwrap();
    assert_eq!(rate.snapshot(now).await[0].1, NS - 123_456_789);
    rate.reserve("2", requests(123_456_789), now).await.unwrap();
    rate.reserve("3", requests(1), now).await.unwrap_err();
    assert_eq!(rate.snapshot(now).await[0].1, NS);

    let budget = Both::new(vec![spec(Dimension::Cost, Window::Day, u64::MAX)]).await;
    let cost = |n| Amounts {
        cost_usd_micros: n,
        ..Amounts::default()
    };
    let r = budget.reserve("1", cost(u64::MAX - 5), now).await.unwrap();
    budget.settle(&r, cost(u64::MAX)).await;
    assert_eq!(budget.snapshot(now).await[0].1, 5);
    budget.reserve("2", cost(999_999_995), now).await.unwrap();
    assert_eq!(budget.snapshot(now).await[0].1, NS);
    let r = budget.reserve("3", cost(u64::MAX), now).await.unwrap();
    assert_eq!(budget.snapshot(now).await[0].1, u64::MAX);
    budget.reserve("4", cost(1), now).await.unwrap();
    budget.settle(&r, cost(0)).await;
    // Saturated, then the reserved u64::MAX given back: nothing left (zeros are not listed).
    assert!(budget.snapshot(now).await.is_empty());
}

/// A random mix of every way of counting, reserves and settles, with time moving on in whole
/// microseconds: both backends give the same answers throughout.
#[tokio::test]
async fn random_operations_agree_with_memory() {
    let mut small_burst = spec(
        Dimension::Tokens,
        Window::Rate {
            period: Duration::from_secs(60),
        },
        1_000,
    );
    small_burst.burst = 300;
    let both = Both::with_ttl(
        vec![
            spec(Dimension::Requests, Window::Day, 40),
            spec(Dimension::Cost, Window::Month, 5_000),
            small_burst,
            spec(
                Dimension::Requests,
                Window::Rate {
                    period: Duration::from_secs(1),
                },
                7,
            ),
            spec(Dimension::Concurrency, Window::InFlight, 3),
        ],
        Duration::from_secs(5),
    )
    .await;
    let mut seed: u64 = 0x9e37_79b9_7f4a_7c15;
    let mut rand = move |n: u64| {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed % n
    };
    // Noon (UTC) of today: the run advances up to ten minutes, and must not cross into
    // the next day, where memory has dropped yesterday's day window while Redis keeps the
    // key until it expires (both right; the snapshots would differ only in that).
    const DAY_NS: u64 = 86_400 * 1_000_000_000;
    let mut now = now_ns() / DAY_NS * DAY_NS + DAY_NS / 2;
    let mut open: Vec<Reservation> = Vec::new();
    for i in 0..300 {
        let amounts = Amounts {
            requests: 1,
            input_tokens: rand(200),
            output_tokens: rand(100),
            cost_usd_micros: rand(200),
            compute_ms: 0,
        };
        if let Ok(r) = both.reserve(&format!("r{i}"), amounts, now).await {
            open.push(r);
        }
        if !open.is_empty() && rand(3) > 0 {
            let r = open.swap_remove(usize::try_from(rand(open.len() as u64)).unwrap());
            let actual = Amounts {
                requests: rand(2),
                input_tokens: rand(300),
                output_tokens: rand(100),
                cost_usd_micros: rand(400),
                compute_ms: 0,
            };
            both.settle(&r, actual).await;
        }
        if i % 10 == 0 {
            both.snapshot(now).await;
        }
        now += rand(2_000_000) * 1_000;
    }
}

/// A lease with a one-second TTL still holds its slot half a second on and has freed it two
/// seconds on, by the times passed in (no sleeping: the script must not read Redis' clock).
#[tokio::test]
async fn leases_expire_by_the_time_passed_in() {
    let ttl = Duration::from_secs(1);
    let both = Both::with_ttl(vec![spec(Dimension::Concurrency, Window::InFlight, 1)], ttl).await;
    let now = now_ns();
    let held = both.reserve("held", requests(1), now).await.unwrap();
    both.reserve("x", requests(1), now).await.unwrap_err();
    both.reserve("y", requests(1), now + NS / 2)
        .await
        .unwrap_err();
    both.reserve("z", requests(1), now + 2 * NS).await.unwrap();

    // The key itself vanishes (Redis clock) a lease TTL after its last reservation, so a
    // crashed gateway's leases do not linger.
    let mut conn = redis::Client::open(URL)
        .unwrap()
        .get_multiplexed_async_connection()
        .await
        .unwrap();
    let pttl: i64 = redis::cmd("PTTL")
        .arg(&held.charges[0].key)
        .query_async(&mut conn)
        .await
        .unwrap();
    assert!(pttl > 0 && pttl <= 1_000, "lease key PTTL {pttl}");
}
