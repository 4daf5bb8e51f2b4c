//! `MemoryLimiter`: limit state in this process, sharded so requests on different keys do
//! not contend. A reservation locks the shards of its keys in index order (so two
//! reservations cannot deadlock), checks every charge, and applies all or none.
//!
//! Strikes (failed authentications) are kept in shards of their own, each key's state
//! decided by [`StrikeState`](crate::StrikeState); a key whose failures have all left the
//! window and whose lock-out has ended is dropped by an occasional sweep of its shard
//! (see `memory/strike.rs`). Limit cells are swept
//! once they no longer change a decision (a budget whose window has ended, a rate whose
//! arrival time has passed, leases that have all ended), so writ-scoped limits on
//! short-lived writs do not accumulate: one shard a second, in turn, whatever the request
//! rate, so the cost of sweeping does not grow with the number of cells per request.

use std::collections::HashMap;
use std::hash::BuildHasher;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Mutex, MutexGuard};

use crate::model::{
    self, Amounts, Charge, Counting, Prior, Refusal, Remaining, Reservation, rate_increment,
};

mod replay;
mod session;
mod strike;

pub use replay::{DEFAULT_REPLAY_CAPACITY, MemoryReplay};
pub use session::{DEFAULT_SESSION_CAPACITY, MemorySessions};
use strike::StrikeShard;

const SHARDS: usize = 64;

/// One key's state: 24 bytes (the rare lease set is boxed), so a cell per live writ for
/// writ-scoped limits stays small.
#[derive(Debug, Clone)]
enum Cell {
    Tat(u64),
    Used {
        used: u64,
        until_ns: u64,
    },
    // Boxed on purpose: a map inline would make every cell 56 bytes, for the few that
    // hold leases.
    #[allow(clippy::box_collection)]
    Leases(Box<HashMap<String, u64>>),
}

/// Limit cells by key; keys are boxed (no spare capacity kept per cell).
type Cells = HashMap<Box<str>, Cell>;

/// A locked shard of limit cells, with its index.
type ShardGuard<'a> = (usize, MutexGuard<'a, Cells>);

/// How often the next shard of limit cells is swept: every cell is looked at once per
/// `SHARDS` of these (about a minute). Sweeping by reservation count instead cost each
/// reservation about one cell visit per thousand cells: ~100 visits with 100 000 live writs.
const CELL_SWEEP_SPACING_NS: u64 = 1_000_000_000;

/// How long a rate cell is kept after its arrival time has passed, so a request that
/// settles late (a long stream) still finds it and is charged its over-run.
const RATE_GRACE_NS: u64 = 3_600 * 1_000_000_000;

impl Cell {
    /// Whether the cell still changes a decision at `now`; one that does not is the same
    /// as no cell and may be dropped.
    fn matters_at(&self, now: u64) -> bool {
        match self {
            Cell::Tat(tat) => tat.saturating_add(RATE_GRACE_NS) > now,
            Cell::Used { until_ns, .. } => *until_ns > now,
            Cell::Leases(leases) => leases.values().any(|end| *end > now),
        }
    }
}

/// Limit state held in memory.
#[derive(Debug)]
pub struct MemoryLimiter {
    shards: Vec<Mutex<Cells>>,
    strikes: Vec<Mutex<StrikeShard>>,
    /// Strikes so far, for the round of sweeps.
    strike_count: AtomicUsize,
    /// When (ns) the next shard of limit cells is due to be swept.
    next_cell_sweep_ns: AtomicU64,
    /// Sweeps of limit cells so far: says which shard is next.
    cell_sweeps: AtomicUsize,
    /// Picks a key's shard. Seeded per process, and fast rather than flood-proof: a key
    /// is hashed for its shard on every reservation and settlement, and the worst a
    /// crafted key can do is share a shard (each shard's map keeps std's SipHash).
    shard_hasher: foldhash::fast::RandomState,
    /// One-time ids seen (single-use writs, DPoP proofs, client assertions).
    replay: MemoryReplay,
    /// MCP sessions and the agents they are bound to.
    sessions: MemorySessions,
}

impl Default for MemoryLimiter {
    fn default() -> Self {
        Self::new()
    }
}

impl MemoryLimiter {
    /// A limiter that has counted nothing: every limit whole, no strike, no lease.
    pub fn new() -> Self {
        Self {
            shards: (0..SHARDS).map(|_| Mutex::new(HashMap::new())).collect(),
            strikes: (0..SHARDS)
                .map(|_| Mutex::new(StrikeShard::default()))
                .collect(),
            strike_count: AtomicUsize::new(0),
            next_cell_sweep_ns: AtomicU64::new(0),
            cell_sweeps: AtomicUsize::new(0),
            shard_hasher: foldhash::fast::RandomState::default(),
            replay: MemoryReplay::default(),
            sessions: MemorySessions::default(),
        }
    }

    fn shard_of(&self, key: &str) -> usize {
        (self.shard_hasher.hash_one(key) as usize) % SHARDS
    }

    /// Locks the shards of `charges` in index order. Returns each charge's shard (in the
    /// order of `charges`, so no key is hashed for its shard twice) and the guards.
    fn lock(&self, charges: &[Charge]) -> (Vec<usize>, Vec<ShardGuard<'_>>) {
        let of_charge: Vec<usize> = charges.iter().map(|c| self.shard_of(&c.key)).collect();
        let mut indices = of_charge.clone();
        indices.sort_unstable();
        indices.dedup();
        let guards = indices
            .into_iter()
            .map(|i| {
                // A panic while holding a shard cannot leave a cell half-written: every
                // write is a single assignment. Keep serving.
                let guard = self.shards[i]
                    .lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner);
                (i, guard)
            })
            .collect();
        (of_charge, guards)
    }

    /// Reserves every charge at `now_ns`, or none: the first refusing charge is reported.
    pub fn reserve(
        &self,
        id: String,
        charges: Vec<Charge>,
        estimate: Amounts,
        now_ns: u64,
    ) -> Result<Reservation, Refusal> {
        self.sweep_cells_if_due(now_ns);
        let (shards, mut guards) = self.lock(&charges);
        let mut updates = Vec::with_capacity(charges.len());
        let mut remaining = Vec::with_capacity(charges.len());
        for (charge, &shard) in charges.iter().zip(&shards) {
            let map = &mut guards
                .iter_mut()
                .find(|(i, _)| *i == shard)
                .unwrap_or_else(|| unreachable!("every charge's shard is locked"))
                .1;
            let cell = map.get(charge.key.as_str());
            let (update, left) = admit(charge, cell, &id, now_ns)?;
            updates.push(update);
            remaining.push(left);
        }
        for ((charge, update), &shard) in charges.iter().zip(updates).zip(&shards) {
            if let Some((_, map)) = guards.iter_mut().find(|(i, _)| *i == shard) {
                match update {
                    Update::Set(cell) => match map.get_mut(charge.key.as_str()) {
                        // The key is cloned only for a new cell.
                        Some(old) => *old = cell,
                        None => {
                            map.insert(charge.key.as_str().into(), cell);
                        }
                    },
                    Update::AddLease(expiry) => {
                        if let Cell::Leases(leases) = map
                            .entry(charge.key.as_str().into())
                            .or_insert_with(|| Cell::Leases(Box::default()))
                        {
                            leases.insert(id.clone(), expiry);
                        }
                    }
                }
            }
        }
        Ok(Reservation {
            id,
            charges,
            estimate,
            remaining,
        })
    }

    /// Sweeps the next shard of limit cells if one is due at `now_ns` (one reservation
    /// of those arriving together does it). A clock that went back more than a spacing
    /// makes a sweep due at once, so sweeping never waits for the clock to catch up.
    fn sweep_cells_if_due(&self, now_ns: u64) {
        let due = self.next_cell_sweep_ns.load(Ordering::Relaxed);
        let went_back = due > now_ns.saturating_add(CELL_SWEEP_SPACING_NS);
        if (now_ns < due && !went_back)
            || self
                .next_cell_sweep_ns
                .compare_exchange(
                    due,
                    now_ns.saturating_add(CELL_SWEEP_SPACING_NS),
                    Ordering::Relaxed,
                    Ordering::Relaxed,
                )
                .is_err()
        {
            return;
        }
        let shard = self.cell_sweeps.fetch_add(1, Ordering::Relaxed) % SHARDS;
        // Holding no other shard, so this cannot deadlock.
        self.shards[shard]
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .retain(|_, cell| cell.matters_at(now_ns));
    }

    /// Settles a reservation with what the request actually used: over-runs are charged,
    /// the unused part is given back, and concurrency leases are released.
    pub fn settle(&self, reservation: &Reservation, actual: &Amounts) {
        let (shards, mut guards) = self.lock(&reservation.charges);
        for (charge, &shard) in reservation.charges.iter().zip(&shards) {
            let Some((_, map)) = guards.iter_mut().find(|(i, _)| *i == shard) else {
                continue;
            };
            let used = actual.of(charge.dimension);
            match (charge.counting, map.get_mut(charge.key.as_str())) {
                (Counting::Rate { period_ns, .. }, Some(Cell::Tat(tat))) => {
                    let add = rate_increment(period_ns, charge.limit, used);
                    let back = rate_increment(period_ns, charge.limit, charge.amount);
                    *tat = tat.saturating_add(add).saturating_sub(back);
                }
                (Counting::Budget { .. }, Some(Cell::Used { used: n, .. })) => {
                    *n = n.saturating_add(used).saturating_sub(charge.amount);
                }
                (Counting::Leases { .. }, Some(Cell::Leases(leases))) => {
                    leases.remove(&reservation.id);
                }
                _ => {}
            }
        }
    }

    /// Current counters, by key: used units for budgets and rates, leases held for
    /// concurrency. For the admin usage read-out.
    pub fn snapshot(&self, now_ns: u64) -> Vec<(String, u64)> {
        let mut out = Vec::new();
        for shard in &self.shards {
            let map = shard
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            for (key, cell) in map.iter() {
                let value = match cell {
                    Cell::Used { used, .. } => *used,
                    Cell::Tat(tat) => tat.saturating_sub(now_ns),
                    Cell::Leases(l) => l.values().filter(|e| **e > now_ns).count() as u64,
                };
                out.push((key.to_string(), value));
            }
        }
        out.sort();
        out
    }

    /// How many limit cells are held, for tests of the sweep.
    #[cfg(test)]
    fn cells(&self) -> usize {
        self.shards
            .iter()
            .map(|s| {
                s.lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner)
                    .len()
            })
            .sum()
    }
}

enum Update {
    Set(Cell),
    AddLease(u64),
}

fn admit(
    charge: &Charge,
    cell: Option<&Cell>,
    id: &str,
    now: u64,
) -> Result<(Update, Remaining), Refusal> {
    let prior = match (charge.counting, cell) {
        (Counting::Rate { .. }, Some(Cell::Tat(t))) => Prior::Tat(*t),
        (Counting::Rate { .. }, _) => Prior::Tat(0),
        (Counting::Budget { .. }, Some(Cell::Used { used, .. })) => Prior::Used(*used),
        (Counting::Budget { .. }, _) => Prior::Used(0),
        (Counting::Leases { .. }, Some(Cell::Leases(l))) => {
            Prior::Held(l.iter().filter(|(k, e)| **e > now && *k != id).count() as u64)
        }
        (Counting::Leases { .. }, _) => Prior::Held(0),
    };
    let (value, left) = model::admit(charge, prior, now)?;
    let update = match charge.counting {
        Counting::Rate { .. } => Update::Set(Cell::Tat(value)),
        Counting::Budget { window_end_ns } => Update::Set(Cell::Used {
            used: value,
            until_ns: window_end_ns,
        }),
        Counting::Leases { .. } => Update::AddLease(value),
    };
    Ok((update, left))
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::model::{DEFAULT_LEASE_TTL, Dimension, Field, LimitSpec, Subject, Window};

    const NS: u64 = 1_000_000_000;
    const SUBJECT: Subject<'static> = Subject {
        tenant: "t",
        agent: "a",
        writ: "w",
        upstream: "u",
        model: Some("m"),
    };

    fn charges(specs: &[LimitSpec], amounts: &Amounts, now: u64) -> Vec<Charge> {
        specs
            .iter()
            .filter_map(|s| s.charge(&SUBJECT, amounts, now, DEFAULT_LEASE_TTL))
            .collect()
    }

    const ONE_REQUEST: Amounts = Amounts {
        requests: 1,
        input_tokens: 0,
        output_tokens: 0,
        compute_ms: 0,
        cost_usd_micros: 0,
    };

    /// A limit per writ, high enough never to refuse.
    fn by_writ(dimension: Dimension, window: Window) -> LimitSpec {
        LimitSpec {
            scope: vec![Field::Writ],
            dimension,
            window,
            limit: 1_000_000,
            burst: 1_000_000,
            only: Vec::new(),
        }
    }

    /// Reserves one request of `writ` at `now` against `specs`.
    fn reserve_one(
        limiter: &MemoryLimiter,
        specs: &[LimitSpec],
        writ: &str,
        now: u64,
    ) -> Reservation {
        let subject = Subject { writ, ..SUBJECT };
        let charges: Vec<Charge> = specs
            .iter()
            .filter_map(|s| s.charge(&subject, &ONE_REQUEST, now, DEFAULT_LEASE_TTL))
            .collect();
        limiter
            .reserve(format!("r-{writ}-{now}"), charges, ONE_REQUEST, now)
            .unwrap()
    }

    fn spec(dimension: Dimension, window: Window, limit: u64) -> LimitSpec {
        LimitSpec {
            scope: vec![Field::Agent],
            dimension,
            window,
            limit,
            burst: limit,
            only: Vec::new(),
        }
    }

    /// Cells of windows that have ended, rates whose arrival time has long passed and
    /// leases that have all ended are dropped by the sweeps; live ones are kept, and a
    /// swept key starts again exactly as a kept one would.
    #[test]
    fn cells_that_no_longer_matter_are_swept() {
        let limiter = MemoryLimiter::new();
        let specs = [
            by_writ(Dimension::Requests, Window::Day),
            by_writ(
                Dimension::Requests,
                Window::Rate {
                    period: Duration::from_secs(60),
                },
            ),
            by_writ(Dimension::Concurrency, Window::InFlight),
        ];
        let one = ONE_REQUEST;
        let reserve = |writ: &str, now: u64| reserve_one(&limiter, &specs, writ, now);
        let t0 = 10 * 86_400 * NS;
        // In flight: each holds a lease for the next five minutes.
        for i in 0..200 {
            reserve(&format!("w{i}"), t0);
        }
        assert_eq!(limiter.cells(), 600);
        // A full round of sweeps (one shard a second) just after keeps every cell: each
        // still decides.
        let round = |from: u64| {
            for k in 0..SHARDS as u64 {
                let r = reserve("steady", from + k * CELL_SWEEP_SPACING_NS);
                limiter.settle(&r, &one);
            }
        };
        round(t0 + NS);
        assert_eq!(limiter.cells(), 603);
        // Two days later, many reservations at one instant sweep one shard, not all: the
        // work of sweeping follows time, not the request rate.
        let later = t0 + 2 * 86_400 * NS;
        for _ in 0..10 * SHARDS {
            let r = reserve("steady", later);
            limiter.settle(&r, &one);
        }
        assert!(limiter.cells() > 300, "{} cells", limiter.cells());
        // A round of sweeps leaves only the cells in use now.
        round(later + CELL_SWEEP_SPACING_NS);
        assert_eq!(limiter.cells(), 3);
        // A swept writ starts afresh: its day budget counts from zero.
        let r = reserve("w0", later);
        assert_eq!(
            r.remaining
                .iter()
                .find(|left| left.window_secs == 86_400)
                .map(|left| left.remaining),
            Some(999_999)
        );
    }

    /// A clock that steps back does not stop the sweeps until it catches up again.
    #[test]
    fn sweeps_go_on_after_the_clock_steps_back() {
        let limiter = MemoryLimiter::new();
        let specs = [by_writ(Dimension::Requests, Window::Day)];
        let reserve = |writ: &str, now: u64| reserve_one(&limiter, &specs, writ, now);
        let t0 = 10 * 86_400 * NS;
        // A reservation far ahead (a clock stepped forward), then back to t0.
        reserve("ahead", t0 + 30 * 86_400 * NS);
        for i in 0..100 {
            reserve(&format!("w{i}"), t0);
        }
        let before = limiter.cells();
        assert_eq!(before, 101);
        // Two days on, still long before the stepped-forward time: a round of sweeps
        // drops the ended day budgets.
        let later = t0 + 2 * 86_400 * NS;
        for k in 0..SHARDS as u64 {
            reserve("steady", later + k * CELL_SWEEP_SPACING_NS);
        }
        // Left: "ahead" (its day is still to come) and "steady".
        assert_eq!(limiter.cells(), 2, "before the round: {before}");
    }

    #[test]
    fn all_or_nothing() {
        let limiter = MemoryLimiter::new();
        let specs = [
            spec(Dimension::Requests, Window::Day, 10),
            spec(Dimension::Tokens, Window::Day, 100),
        ];
        let big = Amounts {
            requests: 1,
            input_tokens: 60,
            ..Amounts::default()
        };
        let r = limiter
            .reserve("1".into(), charges(&specs, &big, 0), big, 0)
            .unwrap();
        assert_eq!(r.remaining[0].remaining, 9);
        assert_eq!(r.remaining[1].remaining, 40);
        // The second fails on tokens, so requests must not be taken either.
        let refusal = limiter
            .reserve("2".into(), charges(&specs, &big, 0), big, 0)
            .unwrap_err();
        assert_eq!(refusal.dimension, Dimension::Tokens);
        assert_eq!(refusal.scope, "agent=a");
        assert_eq!(refusal.retry_after, Duration::from_secs(86_400));
        let small = Amounts {
            requests: 1,
            input_tokens: 40,
            ..Amounts::default()
        };
        let r2 = limiter
            .reserve("3".into(), charges(&specs, &small, 0), small, 0)
            .unwrap();
        assert_eq!(r2.remaining[0].remaining, 8);
    }

    #[test]
    fn settle_charges_overruns_and_refunds_the_rest() {
        let limiter = MemoryLimiter::new();
        let specs = [spec(Dimension::Cost, Window::Day, 1_000)];
        let est = Amounts {
            cost_usd_micros: 300,
            ..Amounts::default()
        };
        let r = limiter
            .reserve("1".into(), charges(&specs, &est, 0), est, 0)
            .unwrap();
        // Used more than estimated: charged.
        limiter.settle(
            &r,
            &Amounts {
                cost_usd_micros: 500,
                ..Amounts::default()
            },
        );
        assert_eq!(limiter.snapshot(0)[0].1, 500);
        let r = limiter
            .reserve("2".into(), charges(&specs, &est, 0), est, 0)
            .unwrap();
        // Failed upstream: refunded.
        limiter.settle(&r, &Amounts::default());
        assert_eq!(limiter.snapshot(0)[0].1, 500);
    }

    #[test]
    fn concurrency_leases_are_released_and_expire() {
        let limiter = MemoryLimiter::new();
        let specs = [spec(Dimension::Concurrency, Window::InFlight, 2)];
        let one = Amounts {
            requests: 1,
            ..Amounts::default()
        };
        let a = limiter
            .reserve("a".into(), charges(&specs, &one, 0), one, 0)
            .unwrap();
        let _b = limiter
            .reserve("b".into(), charges(&specs, &one, 0), one, 0)
            .unwrap();
        let refused = limiter
            .reserve("c".into(), charges(&specs, &one, 0), one, 0)
            .unwrap_err();
        assert_eq!(
            (refused.dimension, refused.limit),
            (Dimension::Concurrency, 2)
        );
        limiter.settle(&a, &one);
        assert!(
            limiter
                .reserve("d".into(), charges(&specs, &one, 0), one, 0)
                .is_ok()
        );
        // Leases never released expire after their TTL.
        let later = DEFAULT_LEASE_TTL.as_secs() * NS + 1;
        assert!(
            limiter
                .reserve("e".into(), charges(&specs, &one, later), one, later)
                .is_ok()
        );
    }

    #[test]
    fn rates_refill_over_time() {
        let limiter = MemoryLimiter::new();
        let specs = [spec(
            Dimension::Tokens,
            Window::Rate {
                period: Duration::from_secs(60),
            },
            600,
        )];
        let est = Amounts {
            input_tokens: 300,
            ..Amounts::default()
        };
        let now = 10_000 * NS;
        let r1 = limiter
            .reserve("1".into(), charges(&specs, &est, now), est, now)
            .unwrap();
        limiter
            .reserve("2".into(), charges(&specs, &est, now), est, now)
            .unwrap();
        let refusal = limiter
            .reserve("3".into(), charges(&specs, &est, now), est, now)
            .unwrap_err();
        assert_eq!(refusal.retry_after, Duration::from_secs(30));
        // The first used only 60 tokens: 240 come back at once.
        limiter.settle(
            &r1,
            &Amounts {
                input_tokens: 60,
                ..Amounts::default()
            },
        );
        let refusal = limiter
            .reserve("4".into(), charges(&specs, &est, now), est, now)
            .unwrap_err();
        assert_eq!(refusal.retry_after, Duration::from_secs(6));
        let small = Amounts {
            input_tokens: 240,
            ..Amounts::default()
        };
        assert!(
            limiter
                .reserve("5".into(), charges(&specs, &small, now), small, now)
                .is_ok()
        );
    }
}
