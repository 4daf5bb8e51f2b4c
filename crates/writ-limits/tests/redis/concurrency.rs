//! Exactness across connections: many reservations at once on one budget, from several
//! connections and from threads with a connection each.

use super::*;

/// One request's charge against a fresh agent's budget of `limit` requests a day, and the
/// time it is charged at.
fn daily_request_budget(limit: u64) -> (Charge, u64) {
    let agent = unique_agent();
    let subject = Subject {
        tenant: "t",
        agent: &agent,
        writ: "w",
        upstream: "u",
        model: None,
    };
    let now = now_ns();
    let charge = spec(Dimension::Requests, Window::Day, limit)
        .charge(&subject, &requests(1), now, DEFAULT_LEASE_TTL)
        .unwrap();
    (charge, now)
}

/// Three limiters on three connections, 300 reservations at once on a budget of 100: exactly
/// 100 are admitted.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exact_under_concurrency() {
    let limiters = [
        Arc::new(connect(DEFAULT_LEASE_TTL).await),
        Arc::new(connect(DEFAULT_LEASE_TTL).await),
        Arc::new(connect(DEFAULT_LEASE_TTL).await),
    ];
    let (charge, now) = daily_request_budget(100);
    let tasks: Vec<_> = (0..300)
        .map(|i| {
            let limiter = Arc::clone(&limiters[i % 3]);
            let charge = charge.clone();
            tokio::spawn(async move {
                limiter
                    .reserve(format!("r{i}"), vec![charge], requests(1), now)
                    .await
            })
        })
        .collect();
    let mut admitted = 0;
    let mut refused = 0;
    for task in tasks {
        match verdict(task.await.unwrap()) {
            Ok(r) => {
                assert!(r.remaining[0].remaining < 100);
                admitted += 1;
            }
            Err(refusal) => {
                assert_eq!(refusal.dimension, Dimension::Requests);
                refused += 1;
            }
        }
    }
    assert_eq!((admitted, refused), (100, 200));
    let snapshot = limiters[0].snapshot(now).await.unwrap();
    let used: Vec<u64> = snapshot
        .iter()
        .filter(|(k, _)| *k == charge.key)
        .map(|(_, n)| *n)
        .collect();
    assert_eq!(used, vec![100]);
}

std::thread_local! {
    static SLOT: std::cell::Cell<usize> = const { std::cell::Cell::new(0) };
}

fn slot() -> usize {
    SLOT.with(std::cell::Cell::get)
}

/// Threads with a runtime each (as the gateway's serving threads) each get a connection of
/// their own, made on their runtime, and the budget stays exact across them; the shared
/// connection keeps serving callers with no slot, also after those threads and their
/// runtimes are gone.
#[tokio::test]
async fn per_thread_connections_stay_exact() {
    let limiter = Arc::new(connect(DEFAULT_LEASE_TTL).await.per_thread(4, slot));
    let (charge, now) = daily_request_budget(50);
    let threads: Vec<_> = (1..=3)
        .map(|t| {
            let (limiter, charge) = (Arc::clone(&limiter), charge.clone());
            std::thread::spawn(move || {
                SLOT.with(|s| s.set(t));
                let runtime = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .unwrap();
                runtime.block_on(async move {
                    let mut admitted = 0;
                    for i in 0..20 {
                        let r = verdict(
                            limiter
                                .reserve(
                                    format!("t{t}-{i}"),
                                    vec![charge.clone()],
                                    requests(1),
                                    now,
                                )
                                .await,
                        );
                        admitted += usize::from(r.is_ok());
                    }
                    admitted
                })
            })
        })
        .collect();
    let admitted: usize = threads.into_iter().map(|t| t.join().unwrap()).sum();
    assert_eq!(admitted, 50, "60 asked of a budget of 50");
    // The threads' runtimes (and their connections) are gone; slot 0 still answers.
    let last = limiter
        .reserve("main".to_string(), vec![charge], requests(1), now)
        .await;
    assert!(
        matches!(last, Err(ReserveError::Refused(_))),
        "the budget is spent: {last:?}"
    );
}
