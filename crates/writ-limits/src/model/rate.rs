//! GCRA rate arithmetic, and admission of one charge on top of what its limit's state held
//! before (rates, budgets and leases alike).

use std::time::Duration;

use super::{Charge, Counting, Refusal, Remaining};

/// GCRA: one unit's increment of the arrival time.
pub fn rate_increment(period_ns: u64, limit: u64, units: u64) -> u64 {
    let ns = u128::from(period_ns) * u128::from(units) / u128::from(limit.max(1));
    u64::try_from(ns).unwrap_or(u64::MAX)
}

/// GCRA admission: given the stored arrival time `tat`, whether `units` fit now, and the
/// new arrival time or how long to wait.
pub fn rate_admit(
    tat: u64,
    now: u64,
    period_ns: u64,
    limit: u64,
    burst: u64,
    units: u64,
) -> Result<u64, Duration> {
    let tolerance = rate_increment(period_ns, limit, burst);
    let new_tat = tat
        .max(now)
        .saturating_add(rate_increment(period_ns, limit, units));
    let ahead = new_tat - now;
    if units > burst {
        // Never admissible: the request is larger than the burst.
        return Err(Duration::from_nanos(period_ns));
    }
    if ahead <= tolerance {
        Ok(new_tat)
    } else {
        Err(Duration::from_nanos(ahead - tolerance))
    }
}

/// GCRA: units still available at `now` with arrival time `tat`, and time until full.
pub fn rate_remaining(
    tat: u64,
    now: u64,
    period_ns: u64,
    limit: u64,
    burst: u64,
) -> (u64, Duration) {
    let tolerance = rate_increment(period_ns, limit, burst);
    let ahead = tat.saturating_sub(now);
    let unit = rate_increment(period_ns, limit, 1).max(1);
    (
        tolerance.saturating_sub(ahead) / unit,
        Duration::from_nanos(ahead),
    )
}

/// What a limit's state held before a reservation, as a backend read it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Prior {
    /// A rate's theoretical arrival time in ns (0 when there is none).
    Tat(u64),
    /// A budget's units used in the window (0 when there are none).
    Used(u64),
    /// Unexpired leases held by other reservations.
    Held(u64),
}

/// Whether `charge` fits on top of `prior` at `now`: the value to store (the new arrival
/// time, the new total, or the new lease's expiry) and what is left, or the refusal. Every
/// backend decides with this, so they refuse and report alike.
pub(crate) fn admit(charge: &Charge, prior: Prior, now: u64) -> Result<(u64, Remaining), Refusal> {
    let window_secs = charge.window_secs();
    let remaining = |remaining: u64, reset: Duration| Remaining {
        dimension: charge.dimension,
        limit: charge.limit,
        remaining,
        reset,
        window_secs,
    };
    match charge.counting {
        Counting::Rate { period_ns, burst } => {
            let tat = match prior {
                Prior::Tat(t) => t,
                _ => 0,
            };
            let new_tat = rate_admit(tat, now, period_ns, charge.limit, burst, charge.amount)
                .map_err(|wait| charge.refusal(wait, charge.amount > burst))?;
            let (left, reset) = rate_remaining(new_tat, now, period_ns, charge.limit, burst);
            Ok((new_tat, remaining(left, reset)))
        }
        Counting::Budget { window_end_ns } => {
            let used = match prior {
                Prior::Used(n) => n,
                _ => 0,
            };
            let reset = Duration::from_nanos(window_end_ns.saturating_sub(now));
            let total = used.saturating_add(charge.amount);
            if total > charge.limit {
                return Err(charge.refusal(reset, charge.amount > charge.limit));
            }
            Ok((total, remaining(charge.limit - total, reset)))
        }
        Counting::Leases { ttl_ns } => {
            let held = match prior {
                Prior::Held(n) => n,
                _ => 0,
            };
            if held >= charge.limit {
                return Err(charge.refusal(Duration::from_secs(1), false));
            }
            Ok((
                now.saturating_add(ttl_ns),
                remaining(charge.limit - held - 1, Duration::ZERO),
            ))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const NS: u64 = 1_000_000_000;

    #[test]
    fn gcra_admits_a_burst_then_the_rate() {
        let minute = 60 * NS;
        // 60 per minute, burst 60: sixty at once, then one a second.
        let mut tat = 0;
        let now = 1_000 * NS;
        for _ in 0..60 {
            tat = rate_admit(tat, now, minute, 60, 60, 1).unwrap();
        }
        let wait = rate_admit(tat, now, minute, 60, 60, 1).unwrap_err();
        assert_eq!(wait, Duration::from_secs(1));
        assert!(rate_admit(tat, now + NS, minute, 60, 60, 1).is_ok());
        assert_eq!(rate_remaining(tat, now, minute, 60, 60).0, 0);
        assert_eq!(rate_remaining(tat, now + 30 * NS, minute, 60, 60).0, 30);
        // Larger than the burst: never (the wait named is one period).
        assert_eq!(
            rate_admit(0, now, minute, 60, 60, 61),
            Err(Duration::from_secs(60))
        );
    }

    /// A budget refuses a request that does not fit what is left as one to wait for, and
    /// one larger than the whole budget as too large (no wait admits it).
    #[test]
    fn a_request_larger_than_its_budget_is_refused_as_too_large() {
        let now = 1_000 * NS;
        let charge = |amount| {
            crate::model::Charge::writ_budget(
                "w",
                crate::Dimension::Tokens,
                5,
                amount,
                now,
                now + 30 * NS,
            )
        };
        let refused = admit(&charge(3), Prior::Used(4), now).unwrap_err();
        assert_eq!(
            (refused.amount, refused.limit, refused.too_large),
            (3, 5, false)
        );
        let refused = admit(&charge(6), Prior::Used(0), now).unwrap_err();
        assert_eq!(
            (refused.amount, refused.limit, refused.too_large),
            (6, 5, true)
        );
        assert!(admit(&charge(5), Prior::Used(0), now).is_ok());
    }
}
