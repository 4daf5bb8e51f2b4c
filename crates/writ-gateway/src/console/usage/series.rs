//! Usage over a window, from the audit log's metered calls: the calls added up per tenant,
//! agent and minute ([`Minutes`]), and from those the per-bucket requests, tokens and cost
//! of one tenant (optionally one agent) and the totals per agent. Pure: the calls and
//! `now` come in, numbers come out.

use std::collections::{BTreeMap, HashMap};
use std::time::{SystemTime, UNIX_EPOCH};

use writ_audit::{AuditRecord, Kind};

/// How far back a usage page looks, and in what steps.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Window {
    /// The last hour, in 60 one-minute buckets.
    Hour,
    /// The last day, in 24 one-hour buckets.
    Day,
    /// The last 30 days, in one-day buckets.
    Month,
}

/// Every window, shortest first.
pub(crate) const WINDOWS: [Window; 3] = [Window::Hour, Window::Day, Window::Month];

impl Window {
    /// The window a query names (`hour`, `day`, `month`), or `None`.
    pub(crate) fn parse(name: &str) -> Option<Self> {
        WINDOWS.into_iter().find(|w| w.name() == name)
    }

    /// The window's name in queries.
    pub(crate) fn name(self) -> &'static str {
        match self {
            Window::Hour => "hour",
            Window::Day => "day",
            Window::Month => "month",
        }
    }

    /// How many buckets the window has.
    pub(crate) fn buckets(self) -> usize {
        match self {
            Window::Hour => 60,
            Window::Day => 24,
            Window::Month => 30,
        }
    }

    /// One bucket's width in milliseconds.
    pub(crate) fn bucket_ms(self) -> u64 {
        match self {
            Window::Hour => 60_000,
            Window::Day => 3_600_000,
            Window::Month => 86_400_000,
        }
    }

    /// The window's span in milliseconds.
    pub(crate) fn span_ms(self) -> u64 {
        self.bucket_ms() * self.buckets() as u64
    }

    /// The start of the window's first bucket at `now_ms`: buckets are aligned to whole
    /// minutes, hours or UTC days, and the last one holds `now_ms`.
    pub(crate) fn start_ms(self, now_ms: u64) -> u64 {
        let end = (now_ms / self.bucket_ms() + 1).saturating_mul(self.bucket_ms());
        end.saturating_sub(self.span_ms())
    }
}

/// One metered call, as the usage pages need it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Call {
    /// When it was recorded, Unix milliseconds.
    pub(crate) at_ms: u64,
    /// Its tenant.
    pub(crate) tenant: String,
    /// Its agent (empty when the record names none).
    pub(crate) agent: String,
    /// Prompt tokens.
    pub(crate) input_tokens: u64,
    /// Completion tokens.
    pub(crate) output_tokens: u64,
    /// Cost by the pricing table; `None` for an unpriced model.
    pub(crate) cost_usd_micros: Option<u64>,
}

impl Call {
    /// The metered call a record ends, if it is one: a record of a request (allowed,
    /// its outcome, or refused after the upstream answered) that carries usage and a
    /// tenant. A strict-mode decision carries no usage, so a call counts once.
    pub(crate) fn from_record(record: &AuditRecord) -> Option<Self> {
        if !matches!(
            record.kind,
            Kind::RequestAllowed | Kind::RequestOutcome | Kind::RequestDenied
        ) {
            return None;
        }
        let usage = record.usage.as_ref()?;
        let tenant = record.tenant.clone()?;
        let at = humantime::parse_rfc3339(&record.time).ok()?;
        Some(Call {
            at_ms: unix_ms(at),
            tenant,
            agent: record.agent.clone().unwrap_or_default(),
            input_tokens: usage.input_tokens,
            output_tokens: usage.output_tokens,
            cost_usd_micros: record.cost_usd_micros,
        })
    }
}

/// `at` as Unix milliseconds (0 before the epoch, saturating far after it).
pub(crate) fn unix_ms(at: SystemTime) -> u64 {
    at.duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

/// Requests, tokens and cost added up; every sum saturates rather than overflows.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct Totals {
    /// Metered calls.
    pub(crate) requests: u64,
    /// Prompt tokens.
    pub(crate) input_tokens: u64,
    /// Completion tokens.
    pub(crate) output_tokens: u64,
    /// Cost of the priced calls, in millionths of a US dollar.
    pub(crate) cost_usd_micros: u64,
    /// Calls of models the pricing table does not price: counted in requests and
    /// tokens, not in cost.
    pub(crate) unpriced: u64,
}

impl Totals {
    /// Counts one call.
    fn add(&mut self, call: &Call) {
        self.merge(&Totals {
            requests: 1,
            input_tokens: call.input_tokens,
            output_tokens: call.output_tokens,
            cost_usd_micros: call.cost_usd_micros.unwrap_or(0),
            unpriced: u64::from(call.cost_usd_micros.is_none()),
        });
    }

    /// Adds `other` in.
    fn merge(&mut self, other: &Totals) {
        self.requests = self.requests.saturating_add(other.requests);
        self.input_tokens = self.input_tokens.saturating_add(other.input_tokens);
        self.output_tokens = self.output_tokens.saturating_add(other.output_tokens);
        self.cost_usd_micros = self.cost_usd_micros.saturating_add(other.cost_usd_micros);
        self.unpriced = self.unpriced.saturating_add(other.unpriced);
    }
}

/// One minute in milliseconds: the finest bucket of any window.
const MINUTE_MS: u64 = 60_000;

/// Metered calls added up by tenant, then by minute and agent: what the usage pages read.
/// It never holds more entries than calls, and usually far fewer; a window reads only its
/// own minutes.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Minutes {
    tenants: HashMap<String, BTreeMap<(u64, String), Totals>>,
}

impl Minutes {
    /// Counts `call` in its tenant, agent and minute.
    pub(crate) fn add(&mut self, call: &Call) {
        let minute = call.at_ms - call.at_ms % MINUTE_MS;
        let cells = match self.tenants.get_mut(&call.tenant) {
            Some(cells) => cells,
            None => self.tenants.entry(call.tenant.clone()).or_default(),
        };
        cells
            .entry((minute, call.agent.clone()))
            .or_default()
            .add(call);
    }

    /// Forgets every minute that starts before `since_ms`.
    pub(crate) fn forget_before(&mut self, since_ms: u64) {
        for cells in self.tenants.values_mut() {
            *cells = cells.split_off(&(since_ms, String::new()));
        }
        self.tenants.retain(|_, cells| !cells.is_empty());
    }

    /// How many (tenant, minute, agent) entries it holds.
    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.tenants.values().map(BTreeMap::len).sum()
    }
}

/// One bucket of a window.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Bucket {
    /// Where it starts, Unix milliseconds.
    pub(crate) start_ms: u64,
    /// What was used in it.
    pub(crate) totals: Totals,
}

/// A tenant's usage over a window.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Usage {
    /// The window.
    pub(crate) window: Window,
    /// Its buckets, oldest first ([`Window::buckets`] of them).
    pub(crate) buckets: Vec<Bucket>,
    /// The whole window, of the agent asked for (or every agent).
    pub(crate) total: Totals,
    /// Every agent's totals over the window, whichever agent was asked for, by name.
    pub(crate) agents: Vec<(String, Totals)>,
}

/// The usage of `tenant` over `window` ending with the bucket that holds `now_ms`: the
/// buckets and total of `agent` (every agent when `None`), and each agent's totals.
/// Other tenants' minutes, and minutes outside the window, are not read.
pub(crate) fn aggregate(
    minutes: &Minutes,
    tenant: &str,
    agent: Option<&str>,
    window: Window,
    now_ms: u64,
) -> Usage {
    let start = window.start_ms(now_ms);
    let end = start.saturating_add(window.span_ms());
    let width = window.bucket_ms();
    let mut buckets: Vec<Bucket> = (0..window.buckets() as u64)
        .map(|i| Bucket {
            start_ms: start.saturating_add(i * width),
            totals: Totals::default(),
        })
        .collect();
    let mut total = Totals::default();
    let mut agents: BTreeMap<&str, Totals> = BTreeMap::new();
    let cells = minutes
        .tenants
        .get(tenant)
        .into_iter()
        .flat_map(|cells| cells.range((start, String::new())..))
        .take_while(|((minute, _), _)| *minute < end);
    for ((minute, name), totals) in cells {
        agents.entry(name).or_default().merge(totals);
        if agent.is_some_and(|a| a != name) {
            continue;
        }
        total.merge(totals);
        // Buckets are whole minutes, so a minute falls in one bucket.
        let index = usize::try_from((minute - start) / width).unwrap_or(usize::MAX);
        if let Some(bucket) = buckets.get_mut(index) {
            bucket.totals.merge(totals);
        }
    }
    Usage {
        window,
        buckets,
        total,
        agents: agents
            .into_iter()
            .map(|(name, totals)| (name.to_string(), totals))
            .collect(),
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use std::time::Duration;

    use super::*;

    /// 2026-12-06T10:30:15Z.
    const NOW: u64 = 1_796_553_015_000;

    fn tokens(t: &Totals) -> u64 {
        t.input_tokens.saturating_add(t.output_tokens)
    }

    fn minutes(calls: &[Call]) -> Minutes {
        let mut m = Minutes::default();
        for c in calls {
            m.add(c);
        }
        m
    }

    fn call(at_ms: u64, tenant: &str, agent: &str, tokens: (u64, u64), cost: Option<u64>) -> Call {
        Call {
            at_ms,
            tenant: tenant.to_string(),
            agent: agent.to_string(),
            input_tokens: tokens.0,
            output_tokens: tokens.1,
            cost_usd_micros: cost,
        }
    }

    #[test]
    fn windows_are_aligned_and_end_with_the_bucket_of_now() {
        assert_eq!(
            Window::Hour.start_ms(NOW),
            NOW - 15_000 - 29 * 60_000 - 30 * 60_000
        );
        for w in WINDOWS {
            let start = w.start_ms(NOW);
            assert_eq!(start % w.bucket_ms(), 0, "{w:?}");
            assert!(start + w.span_ms() > NOW && start + w.span_ms() - w.bucket_ms() <= NOW);
            assert_eq!(Window::parse(w.name()), Some(w));
        }
        assert_eq!(Window::parse("week"), None);
        assert_eq!(Window::parse("Hour"), None);
        assert_eq!(Window::Hour.start_ms(0), 0, "saturates near the epoch");
    }

    #[test]
    fn calls_land_in_their_buckets_and_totals() {
        let start = Window::Hour.start_ms(NOW);
        let calls = [
            call(start, "acme", "bot", (10, 5), Some(7)),
            call(start + 59_999, "acme", "bot", (1, 1), Some(1)),
            call(start + 60_000, "acme", "helper", (100, 50), Some(30)),
            call(NOW, "acme", "bot", (2, 3), None),
        ];
        let usage = aggregate(&minutes(&calls), "acme", None, Window::Hour, NOW);
        assert_eq!(usage.buckets.len(), 60);
        assert_eq!(usage.buckets[0].totals.requests, 2);
        assert_eq!(tokens(&usage.buckets[0].totals), 17);
        assert_eq!(usage.buckets[1].totals.cost_usd_micros, 30);
        let last = usage.buckets[59].totals;
        assert_eq!(
            (last.requests, last.cost_usd_micros, last.unpriced),
            (1, 0, 1)
        );
        assert_eq!(
            usage.total,
            Totals {
                requests: 4,
                input_tokens: 113,
                output_tokens: 59,
                cost_usd_micros: 38,
                unpriced: 1,
            }
        );
        let names: Vec<&str> = usage.agents.iter().map(|(n, _)| n.as_str()).collect();
        assert_eq!(names, ["bot", "helper"]);
        assert_eq!(usage.agents[0].1.requests, 3);
    }

    #[test]
    fn one_agent_is_charted_and_every_agent_totalled() {
        let calls = [
            call(NOW, "acme", "bot", (10, 5), Some(7)),
            call(NOW, "acme", "helper", (100, 50), Some(30)),
        ];
        let usage = aggregate(&minutes(&calls), "acme", Some("helper"), Window::Day, NOW);
        assert_eq!(tokens(&usage.total), 150);
        assert_eq!(usage.buckets[23].totals.cost_usd_micros, 30);
        assert_eq!(usage.agents.len(), 2, "the table still lists every agent");
        let none = aggregate(&minutes(&calls), "acme", Some("nobody"), Window::Day, NOW);
        assert_eq!(none.total, Totals::default());
    }

    #[test]
    fn other_tenants_and_calls_outside_the_window_are_ignored() {
        let start = Window::Hour.start_ms(NOW);
        let calls = [
            call(start - 1, "acme", "bot", (1, 1), Some(1)),
            call(
                start + Window::Hour.span_ms(),
                "acme",
                "bot",
                (1, 1),
                Some(1),
            ),
            call(NOW, "globex", "bot", (1, 1), Some(1)),
            call(NOW, "acme2", "bot", (1, 1), Some(1)),
        ];
        let usage = aggregate(&minutes(&calls), "acme", None, Window::Hour, NOW);
        assert_eq!(usage.total, Totals::default());
        assert!(usage.agents.is_empty());
        assert!(usage.buckets.iter().all(|b| b.totals == Totals::default()));
        // The same calls fall inside a month.
        let month = aggregate(&minutes(&calls), "acme", None, Window::Month, NOW);
        assert_eq!(month.total.requests, 2);
    }

    #[test]
    fn sums_saturate() {
        let calls = [
            call(NOW, "acme", "bot", (u64::MAX, u64::MAX), Some(u64::MAX)),
            call(NOW, "acme", "bot", (u64::MAX, 1), Some(u64::MAX)),
        ];
        let usage = aggregate(&minutes(&calls), "acme", None, Window::Hour, NOW);
        assert_eq!(usage.total.input_tokens, u64::MAX);
        assert_eq!(tokens(&usage.total), u64::MAX);
        assert_eq!(usage.total.cost_usd_micros, u64::MAX);
        assert_eq!(usage.buckets[59].totals.cost_usd_micros, u64::MAX);
        let far = aggregate(&minutes(&calls), "acme", None, Window::Month, u64::MAX);
        assert_eq!(
            far.buckets.len(),
            30,
            "a clock at the end of time still gives a window"
        );
    }

    #[test]
    fn calls_of_one_minute_share_an_entry_and_old_minutes_are_forgotten() {
        let minute = NOW - NOW % 60_000;
        let calls = [
            call(minute, "acme", "bot", (1, 2), Some(3)),
            call(minute + 59_999, "acme", "bot", (10, 20), None),
            call(minute + 60_000, "acme", "bot", (1, 1), Some(1)),
            call(minute, "acme", "helper", (1, 1), Some(1)),
            call(minute, "globex", "bot", (1, 1), Some(1)),
        ];
        let mut m = minutes(&calls);
        assert_eq!(m.len(), 4, "the first two calls share their minute");
        let usage = aggregate(&m, "acme", Some("bot"), Window::Hour, NOW + 60_000);
        assert_eq!(usage.total.requests, 3);
        assert_eq!(usage.total.unpriced, 1);
        assert_eq!(usage.total.cost_usd_micros, 4);
        m.forget_before(minute + 60_000);
        assert_eq!(m.len(), 1, "only the later minute is left");
        m.forget_before(u64::MAX);
        assert_eq!(m, Minutes::default(), "tenants without minutes go too");
    }

    #[test]
    fn metered_records_become_calls_and_others_do_not() {
        let at = UNIX_EPOCH + Duration::from_millis(NOW);
        let mut record = AuditRecord::new(Kind::RequestAllowed, at);
        record.tenant = Some("acme".into());
        record.agent = Some("bot".into());
        assert_eq!(
            Call::from_record(&record),
            None,
            "no usage: a strict decision"
        );
        record.usage = Some(writ_audit::record::Usage {
            input_tokens: 3,
            output_tokens: 4,
            cached_tokens: None,
        });
        record.cost_usd_micros = Some(9);
        assert_eq!(
            Call::from_record(&record),
            Some(call(NOW, "acme", "bot", (3, 4), Some(9)))
        );
        record.kind = Kind::RequestOutcome;
        assert!(Call::from_record(&record).is_some());
        record.kind = Kind::WritMinted;
        assert_eq!(Call::from_record(&record), None);
        record.kind = Kind::RequestAllowed;
        record.tenant = None;
        assert_eq!(
            Call::from_record(&record),
            None,
            "no tenant: no page shows it"
        );
    }

    /// 100 000 calls over a month, of ten agents in two tenants: every one lands where it
    /// should. (The report of the work gives the time this takes.)
    #[test]
    fn a_hundred_thousand_calls_add_up() {
        let start = Window::Month.start_ms(NOW);
        let calls: Vec<Call> = (0..100_000u64)
            .map(|i| {
                let tenant = if i % 2 == 0 { "acme" } else { "globex" };
                let agent = format!("agent-{}", i % 10);
                let at = start + (i * 25_920) % Window::Month.span_ms();
                call(at, tenant, &agent, (i % 100, 1), (i % 3 != 0).then_some(2))
            })
            .collect();
        let began = std::time::Instant::now();
        let by_minute = minutes(&calls);
        let added = began.elapsed();
        let began = std::time::Instant::now();
        let usage = aggregate(&by_minute, "acme", None, Window::Month, NOW);
        let month = began.elapsed();
        let began = std::time::Instant::now();
        let hour = aggregate(&by_minute, "acme", None, Window::Hour, NOW);
        eprintln!(
            "100 000 calls: counted by minute in {added:?} ({} entries), a month added up \
             in {month:?}, an hour in {:?}",
            by_minute.len(),
            began.elapsed()
        );
        assert!(hour.total.requests <= usage.total.requests);
        assert_eq!(usage.total.requests, 50_000);
        assert_eq!(usage.total.output_tokens, 50_000);
        let expected_input: u64 = (0..100_000u64)
            .filter(|i| i % 2 == 0)
            .map(|i| i % 100)
            .sum();
        assert_eq!(usage.total.input_tokens, expected_input);
        let unpriced = (0..100_000u64).filter(|i| i % 2 == 0 && i % 3 == 0).count() as u64;
        assert_eq!(usage.total.unpriced, unpriced);
        assert_eq!(usage.total.cost_usd_micros, (50_000 - unpriced) * 2);
        assert_eq!(usage.agents.len(), 5, "acme has the even agents");
        let per_bucket: u64 = usage.buckets.iter().map(|b| b.totals.requests).sum();
        assert_eq!(per_bucket, 50_000);
    }
}
