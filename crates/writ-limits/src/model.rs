//! The pure model: limits, which of them a request is charged on, and the arithmetic of
//! GCRA rates, calendar budgets and concurrency leases. No I/O, no clocks: time is passed in
//! as nanoseconds since the Unix epoch.

use std::time::Duration;

use serde::Deserialize;

/// What a limit counts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Dimension {
    /// Requests.
    Requests,
    /// Input (prompt) tokens.
    InputTokens,
    /// Output (completion) tokens.
    OutputTokens,
    /// Input plus output tokens.
    Tokens,
    /// Cost in USD micros.
    Cost,
    /// Requests in flight at once.
    Concurrency,
    /// Upstream time in milliseconds.
    Compute,
}

impl Dimension {
    /// The name in config and errors.
    pub fn as_str(self) -> &'static str {
        match self {
            Dimension::Requests => "requests",
            Dimension::InputTokens => "input_tokens",
            Dimension::OutputTokens => "output_tokens",
            Dimension::Tokens => "tokens",
            Dimension::Cost => "cost",
            Dimension::Concurrency => "concurrency",
            Dimension::Compute => "compute",
        }
    }
}

/// What a limit is keyed by; a limit's scope is one or more of these.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Field {
    /// The tenant.
    Tenant,
    /// The agent (within its tenant).
    Agent,
    /// One writ, by token id.
    Writ,
    /// The upstream.
    Upstream,
    /// The model.
    Model,
}

impl Field {
    fn as_str(self) -> &'static str {
        match self {
            Field::Tenant => "tenant",
            Field::Agent => "agent",
            Field::Writ => "writ",
            Field::Upstream => "upstream",
            Field::Model => "model",
        }
    }
}

/// The window a limit counts over.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Window {
    /// A rate of `limit` per `period`, enforced by GCRA with a burst.
    Rate {
        /// The period.
        period: Duration,
    },
    /// A budget per UTC calendar day.
    Day,
    /// A budget per UTC calendar month.
    Month,
    /// No window: concurrency counts what is in flight now.
    InFlight,
}

/// One declared limit.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LimitSpec {
    /// What it is keyed by, sorted.
    pub scope: Vec<Field>,
    /// What it counts.
    pub dimension: Dimension,
    /// Over which window.
    pub window: Window,
    /// How much.
    pub limit: u64,
    /// For rates: how much may be used at once (defaults to `limit`).
    pub burst: u64,
    /// Applies only to requests whose fields have these values (`agent = "travel"`).
    pub only: Vec<(Field, String)>,
}

/// Who a request is from and where it goes: the values scopes are keyed by.
#[derive(Debug, Clone, Copy)]
pub struct Subject<'a> {
    /// Tenant.
    pub tenant: &'a str,
    /// Agent.
    pub agent: &'a str,
    /// Token id of the writ.
    pub writ: &'a str,
    /// Upstream name.
    pub upstream: &'a str,
    /// Model, when the request names one.
    pub model: Option<&'a str>,
}

impl Subject<'_> {
    fn get(&self, field: Field) -> Option<&str> {
        match field {
            Field::Tenant => Some(self.tenant),
            Field::Agent => Some(self.agent),
            Field::Writ => Some(self.writ),
            Field::Upstream => Some(self.upstream),
            Field::Model => self.model,
        }
    }
}

/// How much of each dimension a request uses (or is estimated to use).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Amounts {
    /// Requests: 1 for a request, 0 for a refund of one that failed.
    pub requests: u64,
    /// Input tokens.
    pub input_tokens: u64,
    /// Output tokens.
    pub output_tokens: u64,
    /// Cost in USD micros.
    pub cost_usd_micros: u64,
    /// Upstream milliseconds.
    pub compute_ms: u64,
}

impl Amounts {
    /// The amount of `dimension`.
    pub fn of(&self, dimension: Dimension) -> u64 {
        match dimension {
            Dimension::Requests => self.requests,
            Dimension::InputTokens => self.input_tokens,
            Dimension::OutputTokens => self.output_tokens,
            Dimension::Tokens => self.input_tokens.saturating_add(self.output_tokens),
            Dimension::Cost => self.cost_usd_micros,
            Dimension::Concurrency => 1,
            Dimension::Compute => self.compute_ms,
        }
    }
}

/// How a charge is counted, with what its arithmetic needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Meter {
    /// GCRA: the key holds a theoretical arrival time (ns). One unit advances it by
    /// `period_ns / limit`; at most `burst` units may be ahead of now.
    Rate {
        /// The period in nanoseconds.
        period_ns: u64,
        /// The burst in units.
        burst: u64,
    },
    /// A counter for the window ending at `window_end_ns`.
    Budget {
        /// When the window ends.
        window_end_ns: u64,
    },
    /// A set of leases, each expiring unless settled first.
    Leases {
        /// How long a lease lives if never released.
        ttl_ns: u64,
    },
}

/// One limit a request is charged on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Charge {
    /// The state key (includes the window for budgets).
    pub key: String,
    /// For errors and headers: `agent=demo`.
    pub scope: String,
    /// What it counts.
    pub dimension: Dimension,
    /// The arithmetic.
    pub meter: Meter,
    /// The window in seconds, for headers and messages.
    pub window_secs: u64,
    /// The limit.
    pub limit: u64,
    /// The amount reserved.
    pub amount: u64,
}

/// What a refused reservation reports.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    /// Which scope refused, such as `agent=demo`.
    pub scope: String,
    /// Which dimension.
    pub dimension: Dimension,
    /// The limit.
    pub limit: u64,
    /// When to try again.
    pub retry_after: Duration,
    /// The window, for the `RateLimit-Policy` header (seconds).
    pub window_secs: u64,
}

/// What is left on one charged limit after a reservation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Remaining {
    /// The dimension.
    pub dimension: Dimension,
    /// The limit.
    pub limit: u64,
    /// What is left.
    pub remaining: u64,
    /// Until it is whole again (rates) or the window ends (budgets).
    pub reset: Duration,
    /// The window, for the `RateLimit-Policy` header (seconds).
    pub window_secs: u64,
}

/// An admitted request's hold on its limits, to settle when it ends.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reservation {
    /// Unique id (the lease member for concurrency).
    pub id: String,
    /// What was reserved.
    pub charges: Vec<Charge>,
    /// What the estimate was, to settle against.
    pub estimate: Amounts,
    /// What was left, for response headers.
    pub remaining: Vec<Remaining>,
}

/// How long a concurrency lease lives if its gateway dies before releasing it.
pub const DEFAULT_LEASE_TTL: Duration = Duration::from_secs(300);

const NS: u64 = 1_000_000_000;

impl LimitSpec {
    /// The charge of `amounts` on this limit for `subject` at `now_ns`; `None` when the
    /// limit does not apply (a model-scoped limit and a request without a model).
    pub fn charge(
        &self,
        subject: &Subject<'_>,
        amounts: &Amounts,
        now_ns: u64,
        lease_ttl: Duration,
    ) -> Option<Charge> {
        if !self
            .only
            .iter()
            .all(|(field, value)| subject.get(*field) == Some(value.as_str()))
        {
            return None;
        }
        let mut scope = String::new();
        for field in &self.scope {
            let value = subject.get(*field)?;
            if !scope.is_empty() {
                scope.push(',');
            }
            scope.push_str(field.as_str());
            scope.push('=');
            escape_into(&mut scope, value);
        }
        let (meter, window) = match self.window {
            Window::Rate { period } => (
                Meter::Rate {
                    period_ns: u64::try_from(period.as_nanos()).unwrap_or(u64::MAX),
                    burst: self.burst,
                },
                format!("r{}", period.as_secs()),
            ),
            Window::Day => {
                let day = now_ns / NS / 86_400;
                (
                    Meter::Budget {
                        window_end_ns: (day + 1) * 86_400 * NS,
                    },
                    format!("d{day}"),
                )
            }
            Window::Month => {
                let (y, m) = year_month(now_ns / NS / 86_400);
                let (ny, nm) = if m == 12 { (y + 1, 1) } else { (y, m + 1) };
                let end_day = days_from_civil(ny, nm, 1);
                (
                    Meter::Budget {
                        window_end_ns: end_day * 86_400 * NS,
                    },
                    format!("m{y:04}{m:02}"),
                )
            }
            Window::InFlight => (
                Meter::Leases {
                    ttl_ns: u64::try_from(lease_ttl.as_nanos()).unwrap_or(u64::MAX),
                },
                "c".to_string(),
            ),
        };
        Some(Charge {
            key: format!(
                "writ:limit:{}:{window}:{}:{scope}",
                self.dimension.as_str(),
                self.limit
            ),
            scope,
            dimension: self.dimension,
            meter,
            limit: self.limit,
            amount: amounts.of(self.dimension),
            window_secs: self.window_secs(),
        })
    }

    /// The window in seconds, for headers.
    pub fn window_secs(&self) -> u64 {
        window_secs(self.window)
    }
}

fn window_secs(window: Window) -> u64 {
    match window {
        Window::Rate { period } => period.as_secs().max(1),
        Window::Day => 86_400,
        Window::Month => 2_592_000,
        Window::InFlight => 1,
    }
}

impl Charge {
    /// The window in seconds, for headers.
    pub fn window_secs(&self) -> u64 {
        self.window_secs
    }

    /// A budget a writ states for itself (`writ:budget`): kept under the writ's token id
    /// until shortly after the writ expires at `expires_ns`.
    pub fn writ_budget(
        token_id: &str,
        dimension: Dimension,
        limit: u64,
        amount: u64,
        now_ns: u64,
        expires_ns: u64,
    ) -> Self {
        let mut scope = String::from("writ=");
        escape_into(&mut scope, token_id);
        let window_end_ns = expires_ns.saturating_add(60 * NS);
        Charge {
            key: format!("writ:limit:{}:w:{limit}:{scope}", dimension.as_str()),
            scope,
            dimension,
            meter: Meter::Budget { window_end_ns },
            limit,
            amount,
            window_secs: (expires_ns.saturating_sub(now_ns) / NS).max(1),
        }
    }

    /// A refusal of this charge.
    pub fn refusal(&self, retry_after: Duration) -> Refusal {
        Refusal {
            scope: self.scope.clone(),
            dimension: self.dimension,
            limit: self.limit,
            retry_after,
            window_secs: self.window_secs(),
        }
    }
}

/// Values are escaped so `,` and `=` in them cannot forge another scope's key.
fn escape_into(out: &mut String, value: &str) {
    for c in value.chars() {
        match c {
            '%' | ',' | '=' | ':' => out.push_str(&format!("%{:02X}", c as u32)),
            c => out.push(c),
        }
    }
}

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
    match charge.meter {
        Meter::Rate { period_ns, burst } => {
            let tat = match prior {
                Prior::Tat(t) => t,
                _ => 0,
            };
            let new_tat = rate_admit(tat, now, period_ns, charge.limit, burst, charge.amount)
                .map_err(|wait| charge.refusal(wait))?;
            let (left, reset) = rate_remaining(new_tat, now, period_ns, charge.limit, burst);
            Ok((new_tat, remaining(left, reset)))
        }
        Meter::Budget { window_end_ns } => {
            let used = match prior {
                Prior::Used(n) => n,
                _ => 0,
            };
            let reset = Duration::from_nanos(window_end_ns.saturating_sub(now));
            let total = used.saturating_add(charge.amount);
            if total > charge.limit {
                return Err(charge.refusal(reset));
            }
            Ok((total, remaining(charge.limit - total, reset)))
        }
        Meter::Leases { ttl_ns } => {
            let held = match prior {
                Prior::Held(n) => n,
                _ => 0,
            };
            if held >= charge.limit {
                return Err(charge.refusal(Duration::from_secs(1)));
            }
            Ok((
                now.saturating_add(ttl_ns),
                remaining(charge.limit - held - 1, Duration::ZERO),
            ))
        }
    }
}

/// (year, month) of a day number since 1970-01-01 (proleptic Gregorian, UTC).
pub fn year_month(days: u64) -> (u64, u64) {
    // Howard Hinnant's civil_from_days, for days >= 0.
    let z = days + 719_468;
    let era = z / 146_097;
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + u64::from(m <= 2);
    (y, m)
}

/// Day number since 1970-01-01 of a civil date (year >= 1970).
pub fn days_from_civil(y: u64, m: u64, d: u64) -> u64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y / 400;
    let yoe = y - era * 400;
    let mp = if m > 2 { m - 3 } else { m + 9 };
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

#[cfg(test)]
mod tests {
    use super::*;

    const SUBJECT: Subject<'static> = Subject {
        tenant: "acme",
        agent: "travel",
        writ: "w1",
        upstream: "openai",
        model: None,
    };

    fn spec(scope: Vec<Field>, dimension: Dimension, window: Window, limit: u64) -> LimitSpec {
        LimitSpec {
            scope,
            dimension,
            window,
            limit,
            burst: limit,
            only: Vec::new(),
        }
    }

    #[test]
    fn charges_apply_by_scope_and_escape_values() {
        let a = Amounts {
            requests: 1,
            input_tokens: 10,
            output_tokens: 5,
            ..Amounts::default()
        };
        let s = spec(
            vec![Field::Tenant, Field::Agent],
            Dimension::Tokens,
            Window::Day,
            100,
        );
        let c = s.charge(&SUBJECT, &a, 0, DEFAULT_LEASE_TTL).unwrap();
        assert_eq!(
            (c.scope.as_str(), c.amount),
            ("tenant=acme,agent=travel", 15)
        );
        assert_eq!(
            c.meter,
            Meter::Budget {
                window_end_ns: 86_400 * NS
            }
        );
        let m = spec(vec![Field::Model], Dimension::Requests, Window::Day, 1);
        assert_eq!(m.charge(&SUBJECT, &a, 0, DEFAULT_LEASE_TTL), None);
        let forged = Subject {
            agent: "x,tenant=other",
            ..SUBJECT
        };
        let c = s.charge(&forged, &a, 0, DEFAULT_LEASE_TTL).unwrap();
        assert_eq!(c.scope, "tenant=acme,agent=x%2Ctenant%3Dother");
    }

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
        // Larger than the burst: never.
        assert!(rate_admit(0, now, minute, 60, 60, 61).is_err());
    }

    #[test]
    fn calendar_windows() {
        // 2026-11-23 is day 20_780.
        assert_eq!(days_from_civil(2026, 11, 23), 20_780);
        assert_eq!(year_month(20_780), (2026, 11));
        assert_eq!(year_month(0), (1970, 1));
        assert_eq!(year_month(days_from_civil(2024, 2, 29)), (2024, 2));
        for d in 0..30_000 {
            let (y, m) = year_month(d);
            assert!(
                days_from_civil(y, m, 1) <= d
                    && d < days_from_civil(y + u64::from(m == 12), m % 12 + 1, 1)
            );
        }
        let s = spec(vec![Field::Tenant], Dimension::Cost, Window::Month, 5);
        let c = s
            .charge(
                &SUBJECT,
                &Amounts::default(),
                20_780 * 86_400 * NS,
                DEFAULT_LEASE_TTL,
            )
            .unwrap();
        assert!(c.key.contains(":m202611:"), "{}", c.key);
        assert_eq!(
            c.meter,
            Meter::Budget {
                window_end_ns: days_from_civil(2026, 12, 1) * 86_400 * NS
            }
        );
    }
}
