//! The pure model: limits, which of them a request is charged on, and the arithmetic of
//! GCRA rates, calendar budgets and concurrency leases; and strikes (failed authentications
//! per key) with their back-off and lock-out. No I/O, no clocks: time is passed in as
//! nanoseconds since the Unix epoch (milliseconds for strikes, see [`strike_ms`]).

use std::time::Duration;

use serde::Deserialize;

mod calendar;
mod rate;
mod strike;

pub use calendar::{days_from_civil, year_month};
pub(crate) use rate::{Prior, admit};
pub use rate::{rate_admit, rate_increment, rate_remaining};
pub use strike::{
    STRIKE_MAX_MS, StrikeOutcome, StrikePolicy, StrikeState, StrikeVerdict, strike_ms,
    strike_verdict,
};

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
    /// The most the window may count (for rates, per period; for concurrency, at once).
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
pub enum Counting {
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
    /// How the key is counted, with what that needs.
    pub counting: Counting,
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
    /// What the refusing limit counts.
    pub dimension: Dimension,
    /// The limit.
    pub limit: u64,
    /// When to try again.
    pub retry_after: Duration,
    /// The window, for the `RateLimit-Policy` header (seconds).
    pub window_secs: u64,
    /// What the request asked of this limit.
    pub amount: u64,
    /// The request asks more than the limit ever admits (more than a budget, or than a
    /// rate's burst): waiting does not help, only asking less.
    pub too_large: bool,
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
        let mut scope = String::with_capacity(64);
        for field in &self.scope {
            let value = subject.get(*field)?;
            if !scope.is_empty() {
                scope.push(',');
            }
            scope.push_str(field.as_str());
            scope.push('=');
            escape_into(&mut scope, value);
        }
        // The key, `writ:limit:{dimension}:{window}:{limit}:{scope}`, is built by hand: on
        // every request, for every limit, `format!` cost several times as much.
        let mut key = String::with_capacity(32 + scope.len());
        key.push_str("writ:limit:");
        key.push_str(self.dimension.as_str());
        key.push(':');
        let counting = match self.window {
            Window::Rate { period } => {
                key.push('r');
                push_number(&mut key, period.as_secs(), 1);
                Counting::Rate {
                    period_ns: u64::try_from(period.as_nanos()).unwrap_or(u64::MAX),
                    burst: self.burst,
                }
            }
            Window::Day => {
                let day = now_ns / NS / 86_400;
                key.push('d');
                push_number(&mut key, day, 1);
                Counting::Budget {
                    window_end_ns: (day + 1) * 86_400 * NS,
                }
            }
            Window::Month => {
                let (y, m) = year_month(now_ns / NS / 86_400);
                let (ny, nm) = if m == 12 { (y + 1, 1) } else { (y, m + 1) };
                let end_day = days_from_civil(ny, nm, 1);
                key.push('m');
                push_number(&mut key, y, 4);
                push_number(&mut key, m, 2);
                Counting::Budget {
                    window_end_ns: end_day * 86_400 * NS,
                }
            }
            Window::InFlight => {
                key.push('c');
                Counting::Leases {
                    ttl_ns: u64::try_from(lease_ttl.as_nanos()).unwrap_or(u64::MAX),
                }
            }
        };
        key.push(':');
        push_number(&mut key, self.limit, 1);
        key.push(':');
        key.push_str(&scope);
        Some(Charge {
            key,
            scope,
            dimension: self.dimension,
            counting,
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
            counting: Counting::Budget { window_end_ns },
            limit,
            amount,
            window_secs: (expires_ns.saturating_sub(now_ns) / NS).max(1),
        }
    }

    /// A refusal of this charge; `too_large` when no wait would admit it.
    pub fn refusal(&self, retry_after: Duration, too_large: bool) -> Refusal {
        Refusal {
            scope: self.scope.clone(),
            dimension: self.dimension,
            limit: self.limit,
            retry_after,
            window_secs: self.window_secs(),
            amount: self.amount,
            too_large,
        }
    }
}

/// Appends `n` in decimal, zero-padded to at least `width` digits (limit keys, and the
/// gateway's rate-limit headers).
pub fn push_number(out: &mut String, n: u64, width: usize) {
    let mut buf = itoa::Buffer::new();
    let digits = buf.format(n);
    for _ in digits.len()..width {
        out.push('0');
    }
    out.push_str(digits);
}

/// Values are escaped so `,` and `=` in them cannot forge another scope's key.
pub(crate) fn escape_into(out: &mut String, value: &str) {
    const SPECIAL: [char; 4] = ['%', ',', '=', ':'];
    if !value.contains(SPECIAL) {
        out.push_str(value);
        return;
    }
    for c in value.chars() {
        if SPECIAL.contains(&c) {
            // Each is ASCII: two hex digits.
            out.push('%');
            out.push_str(&format!("{:02X}", c as u32));
        } else {
            out.push(c);
        }
    }
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
            c.counting,
            Counting::Budget {
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
    fn keys_name_the_dimension_window_limit_and_scope() {
        let minute = Duration::from_secs(60);
        let now = 20_780 * 86_400 * NS + 5;
        let cases = [
            (Window::Rate { period: minute }, "r60".to_string()),
            (
                Window::Rate {
                    period: Duration::from_millis(500),
                },
                "r0".to_string(),
            ),
            (Window::Day, "d20780".to_string()),
            (Window::Month, "m202611".to_string()),
            (Window::InFlight, "c".to_string()),
        ];
        for (window, label) in cases {
            let s = spec(
                vec![Field::Tenant, Field::Agent],
                Dimension::Requests,
                window,
                120,
            );
            let c = s
                .charge(&SUBJECT, &Amounts::default(), now, DEFAULT_LEASE_TTL)
                .unwrap();
            assert_eq!(
                c.key,
                format!("writ:limit:requests:{label}:120:tenant=acme,agent=travel")
            );
        }
        // Months and years are zero-padded.
        let s = spec(vec![Field::Tenant], Dimension::Cost, Window::Month, 0);
        let january = days_from_civil(2027, 1, 31) * 86_400 * NS;
        let c = s
            .charge(&SUBJECT, &Amounts::default(), january, DEFAULT_LEASE_TTL)
            .unwrap();
        assert_eq!(c.key, "writ:limit:cost:m202701:0:tenant=acme");
        let mut out = String::new();
        push_number(&mut out, 7, 4);
        push_number(&mut out, 12_345, 2);
        push_number(&mut out, 0, 1);
        assert_eq!(out, "0007123450");
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
            c.counting,
            Counting::Budget {
                window_end_ns: days_from_civil(2026, 12, 1) * 86_400 * NS
            }
        );
    }
}
