//! `MemoryLimiter`: limit state in this process, sharded so requests on different keys do
//! not contend. A reservation locks the shards of its keys in index order (so two
//! reservations cannot deadlock), checks every charge, and applies all or none.

use std::collections::HashMap;
use std::hash::{BuildHasher, RandomState};
use std::sync::{Mutex, MutexGuard};

use crate::model::{
    self, Amounts, Charge, Meter, Prior, Refusal, Remaining, Reservation, rate_increment,
};

const SHARDS: usize = 64;

#[derive(Debug, Clone)]
enum Cell {
    Tat(u64),
    Used(u64),
    Leases(HashMap<String, u64>),
}

/// Limit state held in memory.
#[derive(Debug)]
pub struct MemoryLimiter {
    shards: Vec<Mutex<HashMap<String, Cell>>>,
    hasher: RandomState,
}

impl Default for MemoryLimiter {
    fn default() -> Self {
        Self::new()
    }
}

impl MemoryLimiter {
    /// Empty state.
    pub fn new() -> Self {
        Self {
            shards: (0..SHARDS).map(|_| Mutex::new(HashMap::new())).collect(),
            hasher: RandomState::new(),
        }
    }

    fn shard_of(&self, key: &str) -> usize {
        (self.hasher.hash_one(key) as usize) % SHARDS
    }

    fn lock(&self, charges: &[Charge]) -> Vec<(usize, MutexGuard<'_, HashMap<String, Cell>>)> {
        let mut indices: Vec<usize> = charges.iter().map(|c| self.shard_of(&c.key)).collect();
        indices.sort_unstable();
        indices.dedup();
        indices
            .into_iter()
            .map(|i| {
                // A panic while holding a shard cannot leave a cell half-written: every
                // write is a single assignment. Keep serving.
                let guard = self.shards[i]
                    .lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner);
                (i, guard)
            })
            .collect()
    }

    /// Reserves every charge at `now_ns`, or none: the first refusing charge is reported.
    pub fn reserve(
        &self,
        id: String,
        charges: Vec<Charge>,
        estimate: Amounts,
        now_ns: u64,
    ) -> Result<Reservation, Refusal> {
        let mut guards = self.lock(&charges);
        let mut updates = Vec::with_capacity(charges.len());
        let mut remaining = Vec::with_capacity(charges.len());
        for charge in &charges {
            let shard = self.shard_of(&charge.key);
            let map = &mut guards
                .iter_mut()
                .find(|(i, _)| *i == shard)
                .unwrap_or_else(|| unreachable!("every charge's shard is locked"))
                .1;
            let cell = map.get(&charge.key);
            let (update, left) = admit(charge, cell, &id, now_ns)?;
            updates.push(update);
            remaining.push(left);
        }
        for (charge, update) in charges.iter().zip(updates) {
            let shard = self.shard_of(&charge.key);
            if let Some((_, map)) = guards.iter_mut().find(|(i, _)| *i == shard) {
                match update {
                    Update::Set(cell) => {
                        map.insert(charge.key.clone(), cell);
                    }
                    Update::AddLease(expiry) => {
                        if let Cell::Leases(leases) = map
                            .entry(charge.key.clone())
                            .or_insert_with(|| Cell::Leases(HashMap::new()))
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

    /// Settles a reservation with what the request actually used: over-runs are charged,
    /// the unused part is given back, and concurrency leases are released.
    pub fn settle(&self, reservation: &Reservation, actual: &Amounts) {
        let mut guards = self.lock(&reservation.charges);
        for charge in &reservation.charges {
            let shard = self.shard_of(&charge.key);
            let Some((_, map)) = guards.iter_mut().find(|(i, _)| *i == shard) else {
                continue;
            };
            let used = actual.of(charge.dimension);
            match (charge.meter, map.get_mut(&charge.key)) {
                (Meter::Rate { period_ns, .. }, Some(Cell::Tat(tat))) => {
                    let add = rate_increment(period_ns, charge.limit, used);
                    let back = rate_increment(period_ns, charge.limit, charge.amount);
                    *tat = tat.saturating_add(add).saturating_sub(back);
                }
                (Meter::Budget { .. }, Some(Cell::Used(n))) => {
                    *n = n.saturating_add(used).saturating_sub(charge.amount);
                }
                (Meter::Leases { .. }, Some(Cell::Leases(leases))) => {
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
                    Cell::Used(n) => *n,
                    Cell::Tat(tat) => tat.saturating_sub(now_ns),
                    Cell::Leases(l) => l.values().filter(|e| **e > now_ns).count() as u64,
                };
                out.push((key.clone(), value));
            }
        }
        out.sort();
        out
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
    let prior = match (charge.meter, cell) {
        (Meter::Rate { .. }, Some(Cell::Tat(t))) => Prior::Tat(*t),
        (Meter::Rate { .. }, _) => Prior::Tat(0),
        (Meter::Budget { .. }, Some(Cell::Used(n))) => Prior::Used(*n),
        (Meter::Budget { .. }, _) => Prior::Used(0),
        (Meter::Leases { .. }, Some(Cell::Leases(l))) => {
            Prior::Held(l.iter().filter(|(k, e)| **e > now && *k != id).count() as u64)
        }
        (Meter::Leases { .. }, _) => Prior::Held(0),
    };
    let (value, left) = model::admit(charge, prior, now)?;
    let update = match charge.meter {
        Meter::Rate { .. } => Update::Set(Cell::Tat(value)),
        Meter::Budget { .. } => Update::Set(Cell::Used(value)),
        Meter::Leases { .. } => Update::AddLease(value),
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
        assert!(
            limiter
                .reserve("c".into(), charges(&specs, &one, 0), one, 0)
                .is_err()
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
        assert!(
            limiter
                .reserve("4".into(), charges(&specs, &est, now), est, now)
                .is_err()
        );
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
