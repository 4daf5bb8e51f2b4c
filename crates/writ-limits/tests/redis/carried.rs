//! Settlements carried by a reservation (`settle_then_reserve`, one script call) land exactly
//! where sending each alone and then reserving does, also when the reservation is refused,
//! and stay exact with two connections (two gateways) carrying theirs at once.

use super::*;

impl Both {
    /// Settles `settlements` then reserves, in one call in Redis; memory settles each and
    /// then reserves. Asserts the same verdict.
    async fn settle_then_reserve(
        &self,
        settlements: &[(&Reservation, Amounts)],
        id: &str,
        amounts: Amounts,
        now: u64,
    ) -> Result<Reservation, Refusal> {
        for (reservation, actual) in settlements {
            self.memory.settle(reservation, actual);
        }
        let charges = self.charges(&amounts, now);
        let m = self
            .memory
            .reserve(id.to_string(), charges.clone(), amounts, now);
        let refs: Vec<(&Reservation, &Amounts)> =
            settlements.iter().map(|(r, a)| (*r, a)).collect();
        let r = verdict(
            self.redis
                .settle_then_reserve(&refs, id.to_string(), charges, amounts, now)
                .await,
        );
        assert_eq!(
            r, m,
            "redis and memory disagree carrying into {id} at {now}"
        );
        r
    }
}

fn rate_budget_and_leases(leases: u64) -> Vec<LimitSpec> {
    vec![
        spec(
            Dimension::Requests,
            Window::Rate {
                period: Duration::from_secs(60),
            },
            100,
        ),
        spec(Dimension::Tokens, Window::Day, 1_000),
        spec(Dimension::Concurrency, Window::InFlight, leases),
    ]
}

fn tokens_of(snapshot: &[(String, u64)]) -> Vec<u64> {
    snapshot
        .iter()
        .filter(|(k, _)| k.starts_with("writ:limit:tokens:"))
        .map(|(_, n)| *n)
        .collect()
}

/// Three settlements (an overrun, a refund, a failed call) carried by the next reservation:
/// rates, budgets and leases end where settling each and then reserving ends, and the
/// leases they free are free for the reservation they ride with.
#[tokio::test]
async fn carried_settlements_are_settled_as_each_would_be() {
    let both = Both::new(rate_budget_and_leases(3)).await;
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
    let (over, under, failed) = (input_tokens(250), input_tokens(10), Amounts::default());
    // All three leases are held until the call: "e" fits only if they are released first.
    let e = both
        .settle_then_reserve(&[(&a, over), (&b, under), (&c, failed)], "e", estimate, now)
        .await
        .expect("the carried settlements free the leases first");
    assert_eq!(
        tokens_of(&both.snapshot(now).await),
        vec![260 + 100],
        "250 + 10 + 0, each estimate given back, and e's estimate"
    );
    // Nothing carried: a plain reservation.
    let f = both
        .settle_then_reserve(&[], "f", estimate, now)
        .await
        .unwrap();
    // Carrying one that holds only leases, and two reservations' settlements at once.
    let g = both
        .settle_then_reserve(&[(&e, under), (&f, under)], "g", estimate, now)
        .await
        .unwrap();
    assert_eq!(tokens_of(&both.snapshot(now).await), vec![260 + 20 + 100]);
    both.settle(&g, Amounts::default()).await;
    assert_eq!(tokens_of(&both.snapshot(now).await), vec![280]);
}

/// A reservation that is refused still applies the settlements it carries (they come
/// first in the script), and reserves nothing.
#[tokio::test]
async fn a_refused_reservation_still_applies_what_it_carries() {
    let both = Both::new(rate_budget_and_leases(1)).await;
    let now = now_ns();
    let small = Amounts {
        requests: 1,
        input_tokens: 100,
        ..Amounts::default()
    };
    let a = both.reserve("a", small, now).await.unwrap();
    // 950 tokens do not fit the day's 1 000 even once a's estimate is given back (a used
    // 60): refused on tokens, with a's settlement applied all the same.
    let huge = Amounts {
        requests: 1,
        input_tokens: 950,
        ..Amounts::default()
    };
    let refusal = both
        .settle_then_reserve(&[(&a, input_tokens(60))], "b", huge, now)
        .await
        .unwrap_err();
    assert_eq!(refusal.dimension, Dimension::Tokens);
    assert_eq!(tokens_of(&both.snapshot(now).await), vec![60]);
    // a's lease is released too: one in flight fits again.
    both.reserve("c", small, now).await.unwrap();
}

/// A random run as the gateway makes it: settlements queue up and each reservation
/// carries some of them (or none), with time moving on in whole microseconds; memory,
/// settling them one by one before reserving, gives the same answers throughout.
#[tokio::test]
async fn random_carried_settlements_agree_with_memory() {
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
            spec(Dimension::Concurrency, Window::InFlight, 3),
        ],
        Duration::from_secs(5),
    )
    .await;
    let mut seed: u64 = 0x2545_f491_4f6c_dd1d;
    let mut rand = move |n: u64| {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed % n
    };
    // Noon (UTC) of today, as in `random_operations_agree_with_memory`.
    const DAY_NS: u64 = 86_400 * 1_000_000_000;
    let mut now = now_ns() / DAY_NS * DAY_NS + DAY_NS / 2;
    let mut open: Vec<Reservation> = Vec::new();
    let mut queued: Vec<(Reservation, Amounts)> = Vec::new();
    for i in 0..300 {
        let amounts = Amounts {
            requests: 1,
            input_tokens: rand(200),
            output_tokens: rand(100),
            cost_usd_micros: rand(200),
            compute_ms: 0,
        };
        let carried: Vec<_> = queued
            .drain(..usize::try_from(rand(queued.len() as u64 + 1)).unwrap())
            .collect();
        let refs: Vec<(&Reservation, Amounts)> = carried.iter().map(|(r, a)| (r, *a)).collect();
        if let Ok(r) = both
            .settle_then_reserve(&refs, &format!("r{i}"), amounts, now)
            .await
        {
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
            queued.push((r, actual));
        }
        if i % 10 == 0 {
            both.snapshot(now).await;
        }
        now += rand(2_000_000) * 1_000;
    }
}

/// Two connections (two gateways) each make 60 requests one after the other, every
/// reservation carrying the settlement of that connection's previous request, all at
/// once on two threads: a concurrency limit of two is never in the way (each connection's
/// release rides ahead of its next lease), and at the end the day's tokens are exactly
/// what was used, with no lease held.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_connections_carrying_their_settlements_stay_exact() {
    let agent = unique_agent();
    let subject = Subject {
        tenant: "t",
        agent: &agent,
        writ: "w",
        upstream: "u",
        model: None,
    };
    let now = now_ns();
    let estimate = Amounts {
        requests: 1,
        input_tokens: 100,
        ..Amounts::default()
    };
    let charges: Vec<Charge> = [
        spec(Dimension::Tokens, Window::Day, 1_000_000),
        spec(Dimension::Concurrency, Window::InFlight, 2),
    ]
    .iter()
    .filter_map(|s| s.charge(&subject, &estimate, now, DEFAULT_LEASE_TTL))
    .collect();
    let gateways: Vec<_> = (0..2u64)
        .map(|g| {
            let charges = charges.clone();
            tokio::spawn(async move {
                let limiter = connect(DEFAULT_LEASE_TTL).await;
                let mut used = 0;
                let mut previous: Option<(Reservation, Amounts)> = None;
                for i in 0..60u64 {
                    let carried: Vec<_> = previous.iter().map(|(r, a)| (r, a)).collect();
                    let r = limiter
                        .settle_then_reserve(
                            &carried,
                            format!("g{g}-{i}"),
                            charges.clone(),
                            estimate,
                            now,
                        )
                        .await;
                    let r = verdict(r).expect("two in flight at most");
                    let actual = input_tokens(g * 1_000 + i * 7 % 150);
                    used += actual.input_tokens;
                    previous = Some((r, actual));
                }
                let (last, actual) = previous.unwrap();
                limiter.settle(&last, &actual).await.unwrap();
                used
            })
        })
        .collect();
    let mut used = 0;
    for g in gateways {
        used += g.await.unwrap();
    }
    let mine: Vec<(String, u64)> = connect(DEFAULT_LEASE_TTL)
        .await
        .snapshot(now)
        .await
        .unwrap()
        .into_iter()
        .filter(|(k, n)| k.contains(&agent) && *n != 0)
        .collect();
    assert_eq!(mine.len(), 1, "only the day's tokens, no lease: {mine:?}");
    assert_eq!(mine[0].1, used);
}
