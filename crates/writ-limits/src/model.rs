//! The pure model: limits, which of them a request is charged on, and the arithmetic of
//! GCRA rates, calendar budgets and concurrency leases; and strikes (failed authentications
//! per key) with their back-off and lock-out. No I/O, no clocks: time is passed in as
//! nanoseconds since the Unix epoch (milliseconds for strikes, see [`strike_ms`]).

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
        let meter = match self.window {
            Window::Rate { period } => {
                key.push('r');
                push_number(&mut key, period.as_secs(), 1);
                Meter::Rate {
                    period_ns: u64::try_from(period.as_nanos()).unwrap_or(u64::MAX),
                    burst: self.burst,
                }
            }
            Window::Day => {
                let day = now_ns / NS / 86_400;
                key.push('d');
                push_number(&mut key, day, 1);
                Meter::Budget {
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
                Meter::Budget {
                    window_end_ns: end_day * 86_400 * NS,
                }
            }
            Window::InFlight => {
                key.push('c');
                Meter::Leases {
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

// Strikes: failed authentications counted per key, with back-off and lock-out.

/// How failed authentications on one key (a client id, a source IP) turn into back-off and
/// lock-out.
///
/// Strikes keep time in whole milliseconds: times are milliseconds since the Unix epoch
/// (see [`strike_ms`]), and these durations are rounded up to whole milliseconds (`window`
/// and `lockout` to at least 1 ms). Every time and duration is capped at [`STRIKE_MAX_MS`],
/// and all arithmetic saturates, so no configuration overflows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct StrikePolicy {
    /// The sliding window failures are counted in: a failure at `t` counts while
    /// `t + window > now`.
    pub window: Duration,
    /// Failures in the window from which back-off applies (0: from the first failure).
    pub backoff_after: u32,
    /// The first back-off; doubled per further failure.
    pub backoff_base: Duration,
    /// The back-off cap.
    pub backoff_max: Duration,
    /// Failures in the window that lock the key out (0: never locked out).
    pub lockout_after: u32,
    /// How long a lock-out lasts; then the key is released with a clean slate.
    pub lockout: Duration,
}

/// Whether a key may try (authenticate) now.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum StrikeVerdict {
    /// It may.
    Clear,
    /// Not yet: too many recent failures. Try again after `retry_after` (at least 1 ms).
    Backoff {
        /// Until the back-off ends.
        retry_after: Duration,
    },
    /// Locked out: no tries until `retry_after` (at least 1 ms) has passed.
    Locked {
        /// Until the lock-out ends.
        retry_after: Duration,
    },
}

impl StrikeVerdict {
    /// Whether the key may try now.
    pub fn is_clear(&self) -> bool {
        matches!(self, StrikeVerdict::Clear)
    }

    /// How long until the key may try again; `None` when it may now.
    pub fn retry_after(&self) -> Option<Duration> {
        match self {
            StrikeVerdict::Clear => None,
            StrikeVerdict::Backoff { retry_after } | StrikeVerdict::Locked { retry_after } => {
                Some(*retry_after)
            }
        }
    }
}

/// What recording one failure did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct StrikeOutcome {
    /// The verdict right after this failure.
    pub verdict: StrikeVerdict,
    /// Failures in the window, this one included (for the failure that started a lock-out,
    /// the count that reached it). 0 when the key was already locked out: the failure was
    /// not counted.
    pub failures: u32,
    /// Whether this failure started a lock-out: true for exactly one failure per lock-out.
    pub locked_now: bool,
}

/// The largest time or duration strikes use, in milliseconds: 2^52 ms (about 142,000
/// years), so that the sum of two stays exact as a double (Redis' Lua).
pub const STRIKE_MAX_MS: u64 = 1 << 52;

/// A time in nanoseconds since the Unix epoch as strikes keep it: whole milliseconds,
/// rounded down, at most [`STRIKE_MAX_MS`].
pub fn strike_ms(now_ns: u64) -> u64 {
    (now_ns / 1_000_000).min(STRIKE_MAX_MS)
}

/// A duration in whole milliseconds, rounded up, at most [`STRIKE_MAX_MS`].
fn ms_ceil(d: Duration) -> u64 {
    u64::try_from(d.as_nanos().div_ceil(1_000_000))
        .unwrap_or(u64::MAX)
        .min(STRIKE_MAX_MS)
}

impl StrikePolicy {
    /// The window in milliseconds (at least 1).
    pub fn window_ms(&self) -> u64 {
        ms_ceil(self.window).max(1)
    }

    /// The lock-out in milliseconds (at least 1).
    pub fn lockout_ms(&self) -> u64 {
        ms_ceil(self.lockout).max(1)
    }

    /// The back-off after `failures` failures in the window, in milliseconds:
    /// `min(base * 2^(failures - backoff_after), max)`, 0 below `backoff_after` or without
    /// failures.
    pub fn backoff_ms(&self, failures: u32) -> u64 {
        if failures == 0 || failures < self.backoff_after {
            return 0;
        }
        let doublings = failures - self.backoff_after;
        ms_ceil(self.backoff_base)
            .saturating_mul(2u64.saturating_pow(doublings))
            .min(ms_ceil(self.backoff_max))
    }

    /// At most this many failure times are kept per key: `lockout_after`, or without
    /// lock-out `backoff_after + 64` (beyond which the back-off is at its cap anyway).
    pub fn kept(&self) -> u32 {
        if self.lockout_after == 0 {
            self.backoff_after.saturating_add(64)
        } else {
            self.lockout_after
        }
    }

    /// How long a key's state matters after its last change, in milliseconds: the longer of
    /// the window and the lock-out.
    pub fn ttl_ms(&self) -> u64 {
        self.window_ms().max(self.lockout_ms())
    }
}

fn ms(ms: u64) -> Duration {
    Duration::from_millis(ms.max(1))
}

/// The verdict on a key at `now_ms`, from its failure times (ms, any order) and the end of
/// its lock-out (`locked_until_ms`, 0 for none). Pure; every backend decides with it.
///
/// - `locked_until_ms > now_ms`: [`Locked`](StrikeVerdict::Locked) for the rest of it.
/// - Failures count while `t + window > now`; call their number `n`.
/// - `n >= lockout_after` (and `lockout_after > 0`; states written by
///   [`StrikeState::strike`] never hold that many): the failure that reached it started a
///   lock-out until its time plus `lockout`. If that is still running,
///   [`Locked`](StrikeVerdict::Locked); else the key was released with a clean slate, so
///   only failures from the end of that lock-out on count, and this repeats.
/// - `n >= backoff_after`: the back-off is `min(backoff_base * 2^(n - backoff_after),
///   backoff_max)` from the latest failure; [`Backoff`](StrikeVerdict::Backoff) for the rest
///   of it, if any.
/// - Otherwise [`Clear`](StrikeVerdict::Clear).
pub fn strike_verdict(
    failures_ms: &[u64],
    locked_until_ms: u64,
    now_ms: u64,
    policy: &StrikePolicy,
) -> StrikeVerdict {
    if locked_until_ms > now_ms {
        return StrikeVerdict::Locked {
            retry_after: ms(locked_until_ms - now_ms),
        };
    }
    let window = policy.window_ms();
    let mut live: Vec<u64> = failures_ms
        .iter()
        .copied()
        .filter(|t| t.saturating_add(window) > now_ms)
        .collect();
    live.sort_unstable();
    let lockout_after = usize::try_from(policy.lockout_after).unwrap_or(usize::MAX);
    while lockout_after > 0 && live.len() >= lockout_after {
        let until = live[lockout_after - 1].saturating_add(policy.lockout_ms());
        if until > now_ms {
            return StrikeVerdict::Locked {
                retry_after: ms(until - now_ms),
            };
        }
        // Released: the failures up to the lock-out were cleared, and none were counted
        // while it lasted. Removes at least `lockout_after` failures, so this ends.
        live.retain(|t| *t >= until);
    }
    let Some(last) = live.last() else {
        return StrikeVerdict::Clear;
    };
    let n = u32::try_from(live.len()).unwrap_or(u32::MAX);
    let until = last.saturating_add(policy.backoff_ms(n));
    if until > now_ms {
        StrikeVerdict::Backoff {
            retry_after: ms(until - now_ms),
        }
    } else {
        StrikeVerdict::Clear
    }
}

/// One key's strike state, as a backend keeps it. Times in milliseconds (see
/// [`strike_ms`]).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct StrikeState {
    /// Failure times, ascending; at most [`StrikePolicy::kept`] after a strike.
    pub failures: Vec<u64>,
    /// When the lock-out ends; 0 (or any time not after now) for none.
    pub locked_until: u64,
}

impl StrikeState {
    /// The verdict at `now_ms`: [`strike_verdict`] on this state.
    pub fn verdict(&self, now_ms: u64, policy: &StrikePolicy) -> StrikeVerdict {
        strike_verdict(&self.failures, self.locked_until, now_ms, policy)
    }

    /// Records one failure at `now_ms` and reports the verdict after it.
    ///
    /// While locked out nothing is recorded (the lock-out is not extended). Otherwise an
    /// ended lock-out is forgotten, failures out of the window are dropped, this one is
    /// added; if that makes `lockout_after`, the failures are cleared and the key is locked
    /// out for `lockout` from now (`locked_now`). Else only the newest
    /// [`StrikePolicy::kept`] failures are kept.
    pub fn strike(&mut self, now_ms: u64, policy: &StrikePolicy) -> StrikeOutcome {
        if self.locked_until > now_ms {
            return StrikeOutcome {
                verdict: self.verdict(now_ms, policy),
                failures: 0,
                locked_now: false,
            };
        }
        self.locked_until = 0;
        let window = policy.window_ms();
        self.failures.retain(|t| t.saturating_add(window) > now_ms);
        let at = self.failures.partition_point(|t| *t <= now_ms);
        self.failures.insert(at, now_ms);
        let n = u32::try_from(self.failures.len()).unwrap_or(u32::MAX);
        if policy.lockout_after > 0 && n >= policy.lockout_after {
            self.failures.clear();
            self.locked_until = now_ms.saturating_add(policy.lockout_ms());
            return StrikeOutcome {
                verdict: self.verdict(now_ms, policy),
                failures: n,
                locked_now: true,
            };
        }
        let kept = usize::try_from(policy.kept()).unwrap_or(usize::MAX);
        if self.failures.len() > kept {
            let excess = self.failures.len() - kept;
            self.failures.drain(..excess);
        }
        StrikeOutcome {
            verdict: self.verdict(now_ms, policy),
            failures: u32::try_from(self.failures.len()).unwrap_or(u32::MAX),
            locked_now: false,
        }
    }

    /// Forgets the failures (not a lock-out): after a successful authentication.
    pub fn clear(&mut self) {
        self.failures.clear();
    }

    /// From when (ms) this state no longer matters: its lock-out has ended and every failure
    /// has left the window. A backend may drop it then.
    pub fn expires_ms(&self, policy: &StrikePolicy) -> u64 {
        let window = policy.window_ms();
        self.failures
            .iter()
            .map(|t| t.saturating_add(window))
            .fold(self.locked_until, u64::max)
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
            c.meter,
            Meter::Budget {
                window_end_ns: days_from_civil(2026, 12, 1) * 86_400 * NS
            }
        );
    }

    fn policy() -> StrikePolicy {
        StrikePolicy {
            window: Duration::from_secs(60),
            backoff_after: 3,
            backoff_base: Duration::from_secs(1),
            backoff_max: Duration::from_secs(8),
            lockout_after: 8,
            lockout: Duration::from_secs(300),
        }
    }

    const MS: u64 = 1_000;
    const T0: u64 = 1_800_000_000_000;

    fn backoff(ms: u64) -> StrikeVerdict {
        StrikeVerdict::Backoff {
            retry_after: Duration::from_millis(ms),
        }
    }

    fn locked(ms: u64) -> StrikeVerdict {
        StrikeVerdict::Locked {
            retry_after: Duration::from_millis(ms),
        }
    }

    #[test]
    fn strikes_below_backoff_are_clear() {
        let p = policy();
        let mut s = StrikeState::default();
        assert_eq!(s.verdict(T0, &p), StrikeVerdict::Clear);
        for n in 1..=2 {
            let o = s.strike(T0, &p);
            assert_eq!(
                o,
                StrikeOutcome {
                    verdict: StrikeVerdict::Clear,
                    failures: n,
                    locked_now: false
                }
            );
        }
        assert_eq!(s.verdict(T0, &p), StrikeVerdict::Clear);
        assert!(s.verdict(T0, &p).is_clear());
        assert_eq!(s.verdict(T0, &p).retry_after(), None);
    }

    #[test]
    fn backoff_doubles_per_failure_up_to_its_cap() {
        let p = policy();
        let mut s = StrikeState::default();
        let mut now = T0;
        let mut seen = Vec::new();
        for _ in 0..7 {
            let o = s.strike(now, &p);
            seen.push(o.verdict);
            assert_eq!(o.verdict, s.verdict(now, &p));
            now += 100;
        }
        let c = StrikeVerdict::Clear;
        assert_eq!(
            seen,
            vec![
                c,
                c,
                backoff(MS),
                backoff(2 * MS),
                backoff(4 * MS),
                backoff(8 * MS),
                backoff(8 * MS)
            ]
        );
        // The back-off runs from the latest failure.
        let last = now - 100;
        assert_eq!(s.verdict(last + 5 * MS, &p), backoff(3 * MS));
        assert_eq!(s.verdict(last + 8 * MS - 1, &p), backoff(1));
        assert_eq!(s.verdict(last + 8 * MS, &p), StrikeVerdict::Clear);
        assert_eq!(p.backoff_ms(0), 0);
        assert_eq!(p.backoff_ms(2), 0);
        assert_eq!(p.backoff_ms(u32::MAX), 8 * MS);
    }

    #[test]
    fn lockout_starts_at_the_failure_that_reaches_it_and_releases_clean() {
        let p = policy();
        let mut s = StrikeState::default();
        for n in 1..8 {
            assert!(!s.strike(T0 + n, &p).locked_now);
        }
        let o = s.strike(T0 + 8, &p);
        assert_eq!(
            o,
            StrikeOutcome {
                verdict: locked(300 * MS),
                failures: 8,
                locked_now: true
            }
        );
        assert_eq!(
            s,
            StrikeState {
                failures: vec![],
                locked_until: T0 + 8 + 300 * MS
            }
        );
        // Failures while locked out are not counted and do not extend it.
        let o = s.strike(T0 + 1_000, &p);
        assert_eq!(
            o,
            StrikeOutcome {
                verdict: locked(300 * MS - 992),
                failures: 0,
                locked_now: false
            }
        );
        assert_eq!(s.verdict(T0 + 8 + 300 * MS - 1, &p), locked(1));
        // Released with a clean slate.
        let end = T0 + 8 + 300 * MS;
        assert_eq!(s.verdict(end, &p), StrikeVerdict::Clear);
        let o = s.strike(end, &p);
        assert_eq!((o.verdict, o.failures), (StrikeVerdict::Clear, 1));
        assert_eq!(s.locked_until, 0);
        // Clearing forgets failures, not a lock-out.
        s.clear();
        assert_eq!(s.verdict(end, &p), StrikeVerdict::Clear);
        let mut l = StrikeState {
            failures: vec![end],
            locked_until: end + 10,
        };
        l.clear();
        assert_eq!(l.verdict(end, &p), locked(10));
    }

    #[test]
    fn failures_leave_the_window() {
        let p = policy();
        let mut s = StrikeState::default();
        s.strike(T0, &p);
        s.strike(T0 + 10 * MS, &p);
        // Third failure 61 s after the first: only two in the window, no back-off.
        let o = s.strike(T0 + 61 * MS, &p);
        assert_eq!((o.verdict, o.failures), (StrikeVerdict::Clear, 2));
        assert_eq!(s.failures, vec![T0 + 10 * MS, T0 + 61 * MS]);
        // A failure counts while t + window > now.
        let f = [T0, T0 + 1, T0 + 2];
        assert_eq!(strike_verdict(&f, 0, T0 + 2, &p), backoff(MS));
        assert_eq!(
            strike_verdict(&f, 0, T0 + 60 * MS, &p),
            StrikeVerdict::Clear
        );
        assert_eq!(s.expires_ms(&p), T0 + 121 * MS);
    }

    #[test]
    fn verdicts_on_states_not_written_by_strike() {
        let p = policy();
        // Eight failures in the window (a policy lowered meanwhile): the eighth started a
        // lock-out, in any order of the input.
        let f: Vec<u64> = (0..8).rev().map(|i| T0 + i).collect();
        assert_eq!(strike_verdict(&f, 0, T0 + 7, &p), locked(300 * MS));
        // Once it ended, only failures from its end on count.
        let mut g = f.clone();
        let end = T0 + 7 + 300 * MS;
        // Outside the 60 s window anyway unless the window is long.
        let long = StrikePolicy {
            window: Duration::from_secs(3_600),
            ..p
        };
        g.extend([T0 + 100, end, end + 1, end + 2]);
        assert_eq!(strike_verdict(&g, 0, end + 2, &long), backoff(MS));
        // A lock-out already ended is no lock-out.
        assert_eq!(strike_verdict(&[], T0, T0, &p), StrikeVerdict::Clear);
    }

    #[test]
    fn zero_thresholds() {
        let never = StrikePolicy {
            backoff_after: 0,
            lockout_after: 0,
            ..policy()
        };
        let mut s = StrikeState::default();
        assert_eq!(s.verdict(T0, &never), StrikeVerdict::Clear);
        // Back-off from the first failure: base * 2^1.
        assert_eq!(s.strike(T0, &never).verdict, backoff(2 * MS));
        for i in 0..200 {
            let o = s.strike(T0 + i, &never);
            assert!(!o.locked_now);
        }
        assert_eq!(s.failures.len(), 64);
        assert_eq!(s.verdict(T0 + 199, &never), backoff(8 * MS));
        // Zero durations: at least a millisecond of window and lock-out, no back-off.
        let zero = StrikePolicy {
            window: Duration::ZERO,
            backoff_after: 1,
            backoff_base: Duration::ZERO,
            backoff_max: Duration::ZERO,
            lockout_after: 2,
            lockout: Duration::ZERO,
        };
        let mut s = StrikeState::default();
        assert_eq!(s.strike(T0, &zero).verdict, StrikeVerdict::Clear);
        let o = s.strike(T0, &zero);
        assert_eq!((o.verdict, o.locked_now), (locked(1), true));
        assert_eq!(s.verdict(T0 + 1, &zero), StrikeVerdict::Clear);
    }

    #[test]
    fn huge_values_saturate() {
        let huge = StrikePolicy {
            window: Duration::MAX,
            backoff_after: 1,
            backoff_base: Duration::MAX,
            backoff_max: Duration::MAX,
            lockout_after: u32::MAX,
            lockout: Duration::MAX,
        };
        assert_eq!(huge.window_ms(), STRIKE_MAX_MS);
        assert_eq!(huge.ttl_ms(), STRIKE_MAX_MS);
        assert_eq!(huge.backoff_ms(u32::MAX), STRIKE_MAX_MS);
        assert_eq!(huge.kept(), u32::MAX);
        let now = strike_ms(u64::MAX);
        assert_eq!(now, u64::MAX / 1_000_000);
        let mut s = StrikeState::default();
        let o = s.strike(now, &huge);
        assert_eq!(o.verdict, backoff(STRIKE_MAX_MS));
        assert_eq!(s.verdict(u64::MAX, &huge), StrikeVerdict::Clear);
        let lock = StrikePolicy {
            lockout_after: 1,
            ..huge
        };
        let o = s.strike(now, &lock);
        assert!(o.locked_now);
        assert_eq!(s.locked_until, now + STRIKE_MAX_MS);
        assert_eq!(s.expires_ms(&lock), now + STRIKE_MAX_MS);
        assert_eq!(
            strike_verdict(&[u64::MAX, 0], u64::MAX, 0, &lock),
            StrikeVerdict::Locked {
                retry_after: Duration::from_millis(u64::MAX)
            }
        );
        assert_eq!(
            strike_verdict(&[u64::MAX], 0, u64::MAX, &huge),
            StrikeVerdict::Clear
        );
    }

    /// Random policies, times and operations: the invariants hold and the verdict after a
    /// strike is the verdict of the state it left.
    #[test]
    fn random_strikes_keep_their_invariants() {
        let mut seed: u64 = 0x2545_f491_4f6c_dd1d;
        let mut rand = move |n: u64| {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed % n
        };
        for _ in 0..200 {
            let p = StrikePolicy {
                window: Duration::from_millis(rand(5_000)),
                backoff_after: u32::try_from(rand(5)).unwrap(),
                backoff_base: Duration::from_millis(rand(500)),
                backoff_max: Duration::from_millis(rand(5_000)),
                lockout_after: u32::try_from(rand(7)).unwrap(),
                lockout: Duration::from_millis(rand(10_000)),
            };
            let mut s = StrikeState::default();
            let mut now = T0;
            let mut locks = 0;
            for _ in 0..300 {
                match rand(10) {
                    0 => s.clear(),
                    1..=3 => {
                        let v = s.verdict(now, &p);
                        if let Some(r) = v.retry_after() {
                            assert!(r >= Duration::from_millis(1));
                        }
                    }
                    _ => {
                        let was_locked = s.locked_until > now;
                        let o = s.strike(now, &p);
                        assert_eq!(o.verdict, s.verdict(now, &p));
                        assert!(s.failures.len() <= p.kept() as usize);
                        assert!(s.failures.is_sorted());
                        if was_locked {
                            assert_eq!((o.failures, o.locked_now), (0, false));
                        }
                        if o.locked_now {
                            locks += 1;
                            assert_eq!(o.failures, p.lockout_after);
                            assert!(s.failures.is_empty());
                            assert!(matches!(o.verdict, StrikeVerdict::Locked { .. }));
                        } else if !was_locked {
                            assert!(p.lockout_after == 0 || o.failures < p.lockout_after);
                        }
                    }
                }
                now += rand(700);
            }
            if p.lockout_after == 0 {
                assert_eq!(locks, 0);
            }
        }
    }
}
