//! Settling reservations off the request's path: with Redis, a settlement is queued and
//! the response goes out without waiting for its round trip; the queue of each serving
//! thread is sent in one script call per batch, on that thread's connection.
//!
//! What this changes, and what it does not:
//! - Budgets are never overspent for it: until a settlement lands, the estimate it
//!   settles stays reserved (a refund arrives late) and an overrun is charged late, as if
//!   its request were still in flight, which the bound on overruns already counts.
//! - Leases are released late by at most the batch in flight before it (a round trip or
//!   two); one whose settlement fails is released again when Redis answers
//!   (`lease_release.rs`). A gateway killed in that window leaves an answered call's
//!   reservation charged at its estimate and its lease to the lease TTL, as it always did
//!   for calls in flight when it died.
//! - A request that reaches Redis before an earlier one's settlement sees that one still
//!   holding its reservation: conservative, never more permissive. A client's next request
//!   on the same connection is served by the same thread, whose queue is sent first.
//! - Each batch is awaited by a task the serving thread finishes before it stops, so a
//!   gateway stopping gracefully sends every settlement it queued.
//!
//! A local backend (memory, or the local fallback) settles at once: it costs no round trip.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use writ_limits::{Amounts, Limiter, Reservation};

use super::lease_release;

/// Most reservations settled in one script call.
const MOST_PER_BATCH: usize = 64;

/// Settles reservations held in one backend: at once when it is local, queued per serving
/// thread and sent in batches when it is Redis.
pub(crate) struct Settling {
    pub(super) backend: Arc<Limiter>,
    lease_ttl: Duration,
    /// One queue per serving thread (`workers::current`), none for a local backend.
    queues: Box<[Mutex<Queue>]>,
}

#[derive(Default)]
struct Queue {
    pending: Vec<(Reservation, Amounts)>,
    /// A task is sending this queue: it takes what is added meanwhile too.
    sending: bool,
}

impl Settling {
    /// Settles what is held in `backend`; a failed settlement's leases are released again
    /// within `lease_ttl`.
    pub(crate) fn new(backend: Arc<Limiter>, lease_ttl: Duration) -> Arc<Self> {
        let queues = match &*backend {
            Limiter::Memory(_) => Box::default(),
            Limiter::Redis(_) => (0..=crate::serve::workers::MAX_WORKERS)
                .map(|_| Mutex::new(Queue::default()))
                .collect(),
        };
        Arc::new(Self {
            backend,
            lease_ttl,
            queues,
        })
    }

    /// Settles `reservation` with `actual`: at once in a local backend; otherwise queued on
    /// this thread's queue, sent by a task on this thread's runtime (started if none is
    /// sending). Without a runtime a remote settlement cannot be sent: its leases lapse
    /// after the lease TTL.
    pub(crate) fn settle(self: &Arc<Self>, reservation: Reservation, actual: Amounts) {
        if let Limiter::Memory(memory) = &*self.backend {
            memory.settle(&reservation, &actual);
            return;
        }
        let last = self.queues.len().saturating_sub(1);
        let slot = crate::serve::workers::current().min(last);
        let start = {
            let mut queue = self.lock(slot);
            queue.pending.push((reservation, actual));
            !std::mem::replace(&mut queue.sending, true)
        };
        if start {
            let me = self.clone();
            let started = crate::serve::workers::spawn_to_finish(async move {
                me.send(slot).await;
            });
            if !started {
                // No runtime: nothing will send it.
                self.lock(slot).sending = false;
            }
        }
    }

    fn lock(&self, slot: usize) -> std::sync::MutexGuard<'_, Queue> {
        self.queues[slot]
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Sends the queue of `slot` in batches until it is empty.
    async fn send(&self, slot: usize) {
        loop {
            let batch = {
                let mut queue = self.lock(slot);
                if queue.pending.is_empty() {
                    queue.sending = false;
                    return;
                }
                let n = queue.pending.len().min(MOST_PER_BATCH);
                queue.pending.drain(..n).collect::<Vec<_>>()
            };
            settle_batch(&self.backend, batch, self.lease_ttl).await;
        }
    }

    /// How many settlements are queued and not yet sent, on every thread.
    #[cfg(test)]
    pub(crate) fn queued(&self) -> usize {
        (0..self.queues.len())
            .map(|slot| {
                let queue = self.lock(slot);
                queue.pending.len() + usize::from(queue.sending)
            })
            .sum()
    }
}

/// Settles `batch` in one call, logging (never a request) when the backend fails, and
/// then releasing the leases of each later (within `lease_ttl`).
async fn settle_batch(
    backend: &Arc<Limiter>,
    batch: Vec<(Reservation, Amounts)>,
    lease_ttl: Duration,
) {
    let refs: Vec<(&Reservation, &Amounts)> = batch.iter().map(|(r, a)| (r, a)).collect();
    if let Err(e) = backend.settle_many(&refs).await {
        // One line per reservation, as when each was settled on its own (bench/torture
        // counts them).
        for (reservation, _) in &batch {
            tracing::warn!(error = %e, reservation = %reservation.id, "settling a reservation failed");
            lease_release::release_later(backend.clone(), reservation, lease_ttl);
        }
    }
}
