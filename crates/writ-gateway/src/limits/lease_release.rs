//! Releasing the concurrency leases of a settlement that could not reach the limit
//! backend (Redis was down or restarting), once it answers again: otherwise each held
//! its slot until the lease TTL (five minutes by default), and a crash of Redis at full
//! concurrency kept the scope refused for that long after Redis was back.
//!
//! Only the leases are released again. Releasing is idempotent (a lease is removed by its
//! id), where settling budgets and rates twice is not: a settlement that failed may have
//! been applied with its answer lost, so what it reserved stays charged.

use std::sync::Arc;
use std::time::Duration;

use writ_limits::{Amounts, Dimension, Limiter, Reservation};

/// The first wait before trying again, doubled after each failure up to [`LONGEST_WAIT`].
const FIRST_WAIT: Duration = Duration::from_millis(100);
const LONGEST_WAIT: Duration = Duration::from_secs(2);

/// Tries again, on the current runtime, to release the concurrency leases of
/// `reservation`, whose settlement failed, until the backend takes it or `within` has
/// passed (the lease has lapsed by then). Nothing to do without leases or a runtime.
pub(crate) fn release_later(backend: Arc<Limiter>, reservation: &Reservation, within: Duration) {
    let charges: Vec<_> = reservation
        .charges
        .iter()
        .filter(|c| c.dimension == Dimension::Concurrency)
        .cloned()
        .collect();
    if charges.is_empty() {
        return;
    }
    let Ok(runtime) = tokio::runtime::Handle::try_current() else {
        return;
    };
    let leases = Reservation {
        id: reservation.id.clone(),
        charges,
        estimate: Amounts::default(),
        remaining: Vec::new(),
    };
    runtime.spawn(async move {
        let give_up = tokio::time::Instant::now() + within;
        let mut wait = FIRST_WAIT;
        loop {
            tokio::time::sleep(wait).await;
            match backend.settle(&leases, &Amounts::default(), 0).await {
                Ok(()) => {
                    tracing::info!(reservation = %leases.id, "released the leases of a failed settlement");
                    return;
                }
                Err(_) if tokio::time::Instant::now() + wait < give_up => {
                    wait = (wait * 2).min(LONGEST_WAIT);
                }
                Err(e) => {
                    tracing::warn!(error = %e, reservation = %leases.id, "gave up releasing leases; they lapse after the lease TTL");
                    return;
                }
            }
        }
    });
}
