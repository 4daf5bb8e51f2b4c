//! Settling reservations off the request's path: with Redis, a settlement is queued on its
//! serving thread and the response goes out without waiting for its round trip; the next
//! reservation made on that thread carries the queue in its own script call
//! (`settle_then_reserve`), so a request costs one round trip to Redis, not two. A queue
//! no reservation takes within [`SEND_AFTER`] is sent by a task of the thread's runtime,
//! in one script call per batch, on that thread's connection.
//!
//! What this changes, and what it does not:
//! - Budgets are never overspent for it: until a settlement lands, the estimate it
//!   settles stays reserved (a refund arrives late) and an overrun is charged late, as if
//!   its request were still in flight, which the bound on overruns already counts.
//! - Leases are released late by at most [`SEND_AFTER`] and a round trip or two; one whose
//!   settlement fails is released again when Redis answers (`lease_release.rs`). A
//!   gateway killed in that window leaves an answered call's reservation charged at its
//!   estimate and its lease to the lease TTL, as it always did for calls in flight when it
//!   died.
//! - A request that reaches Redis before an earlier one's settlement sees that one still
//!   holding its reservation: conservative, never more permissive. A client's next request
//!   on the same connection is served by the same thread, whose queue it carries (the
//!   settlements land before its reservation, in the same script) or which was sent first.
//! - A settlement is sent once, never twice (settling twice is not idempotent). A
//!   reservation whose request goes away while its call carrying settlements is on its way
//!   lets the call finish on a task (the Redis client drops a command whose caller left
//!   before it was written, which would leave it unknown whether they landed) and gives
//!   back what it reserved; settlements taken but never sent go back to the queue. When
//!   the call fails they may or may not have landed: only their leases are released
//!   again (idempotent), as for a failed batch.
//! - Each batch is awaited by a task the serving thread finishes before it stops, so a
//!   gateway stopping gracefully sends every settlement it queued.
//!
//! A local backend (memory, or the local fallback) settles at once: it costs no round trip.

use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use writ_limits::{Amounts, Charge, Limiter, Reservation, ReserveError};

use super::lease_release;

/// Most reservations settled in one script call.
const MOST_PER_BATCH: usize = 64;

/// How long a queue's sending task waits before it sends what no reservation has taken.
/// Sent at once, each request at one in flight cost a script call of its own (two round
/// trips a request); after this wait the next request has usually carried it. Timers tick
/// in milliseconds: a shorter wait is no shorter.
const SEND_AFTER: Duration = Duration::from_millis(1);

/// Settles reservations held in one backend: at once when it is local, queued per serving
/// thread and carried by the next reservation or sent in batches when it is Redis.
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

/// A reservation's call to Redis and the settlements it carries, on its way.
type Call = Pin<Box<dyn Future<Output = Result<Reservation, ReserveError>> + Send>>;

/// Settlements taken from this thread's queue to ride on one reservation's script call.
/// Dropped before that call started, it puts them back; dropped while the call is on its
/// way (its request went away), it lets the call finish on a task of its own (a call given
/// up might be sent or not) and gives back the reservation it makes.
pub(super) struct Carried {
    settling: Arc<Settling>,
    batch: Vec<(Reservation, Amounts)>,
    /// The call, from its first poll until it ends.
    call: Option<Call>,
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
    /// this thread's queue, for the next reservation on this thread to carry, or else a
    /// task on this thread's runtime to send (started if none is sending; it waits
    /// [`SEND_AFTER`] first, the time a next request usually takes to come). Without a
    /// runtime a remote settlement cannot be sent: its leases lapse after the lease TTL.
    pub(crate) fn settle(self: &Arc<Self>, reservation: Reservation, actual: Amounts) {
        if let Limiter::Memory(memory) = &*self.backend {
            memory.settle(&reservation, &actual);
            return;
        }
        let slot = self.slot();
        let start = {
            let mut queue = self.lock(slot);
            queue.pending.push((reservation, actual));
            !std::mem::replace(&mut queue.sending, true)
        };
        if start {
            self.start_sending(slot);
        }
    }

    /// This thread's queue.
    fn slot(&self) -> usize {
        let last = self.queues.len().saturating_sub(1);
        crate::serve::workers::current().min(last)
    }

    /// Starts the task that sends the queue of `slot` (its `sending` is set).
    fn start_sending(self: &Arc<Self>, slot: usize) {
        let me = self.clone();
        let started = crate::serve::workers::spawn_to_finish(async move {
            tokio::time::sleep(SEND_AFTER).await;
            me.send(slot).await;
        });
        if !started {
            // No runtime: nothing will send it.
            self.lock(slot).sending = false;
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

    /// Takes up to a batch of this thread's queued settlements for a reservation to carry
    /// (none from a local backend, which has no queue). A task sending the queue finds
    /// them gone.
    pub(super) fn carry(self: &Arc<Self>) -> Carried {
        let batch = if self.queues.is_empty() {
            Vec::new()
        } else {
            let mut queue = self.lock(self.slot());
            let n = queue.pending.len().min(MOST_PER_BATCH);
            queue.pending.drain(..n).collect()
        };
        Carried {
            settling: self.clone(),
            batch,
            call: None,
        }
    }

    /// Puts settlements that were never sent back on this thread's queue, and starts a
    /// task to send them if none is sending.
    fn put_back(self: &Arc<Self>, batch: Vec<(Reservation, Amounts)>) {
        let slot = self.slot();
        let start = {
            let mut queue = self.lock(slot);
            queue.pending.extend(batch);
            !std::mem::replace(&mut queue.sending, true)
        };
        if start {
            self.start_sending(slot);
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

impl Carried {
    /// How many settlements this carries.
    #[cfg(test)]
    pub(super) fn len(&self) -> usize {
        self.batch.len()
    }

    /// Settles the carried settlements then reserves, in one call to the backend that holds
    /// them. The settlements apply whether the reservation is admitted or refused; when
    /// the call fails they may or may not have, and only their leases are released again.
    pub(super) async fn settle_then_reserve(
        mut self,
        id: String,
        charges: Vec<Charge>,
        estimate: Amounts,
        now_ns: u64,
    ) -> Result<Reservation, ReserveError> {
        let backend = self.settling.backend.clone();
        if let Limiter::Memory(memory) = &*backend {
            return memory
                .reserve(id, charges, estimate, now_ns)
                .map_err(ReserveError::Refused);
        }
        let batch = std::mem::take(&mut self.batch);
        let lease_ttl = self.settling.lease_ttl;
        let call = self.call.insert(Box::pin(async move {
            let refs: Vec<(&Reservation, &Amounts)> = batch.iter().map(|(r, a)| (r, a)).collect();
            let outcome = backend
                .settle_then_reserve(&refs, id, charges, estimate, now_ns)
                .await;
            if let Err(ReserveError::Backend(e)) = &outcome {
                for (reservation, _) in &batch {
                    tracing::warn!(error = %e, reservation = %reservation.id, "settling a reservation failed");
                    lease_release::release_later(backend.clone(), reservation, lease_ttl);
                }
            }
            outcome
        }));
        let outcome = call.await;
        self.call = None;
        outcome
    }
}

impl Drop for Carried {
    fn drop(&mut self) {
        if let Some(call) = self.call.take() {
            // Its request went away: the call is finished (and what it reserved given back,
            // as nothing was sent upstream) rather than given up, which might send it or not.
            let settling = self.settling.clone();
            crate::serve::workers::spawn_to_finish(async move {
                if let Ok(reservation) = call.await {
                    settling.settle(reservation, Amounts::default());
                }
            });
        }
        let batch = std::mem::take(&mut self.batch);
        if !batch.is_empty() {
            self.settling.put_back(batch);
        }
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
