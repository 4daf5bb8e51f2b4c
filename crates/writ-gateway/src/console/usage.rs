//! The usage pages: a tenant's requests, tokens and cost over the last hour, day or
//! month, as charts drawn on the server and the same numbers in tables, per agent, kept
//! up to date by the page's script fetching the live part again. Admins only; a tenant's
//! admin reaches their own tenant only.
//!
//! The numbers come from the audit log's metered calls (every instance's, through the
//! shared sink), kept and brought up to date at most once every couple of seconds with
//! what was appended since ([`metered`]).

pub(crate) mod chart;
pub(crate) mod metered;
pub(crate) mod series;

use std::sync::Arc;

use askama::Template;
use axum::extract::{Path, RawQuery, State};
use axum::response::{Html, IntoResponse, Redirect, Response};
use http::HeaderMap;

use self::chart::{BarChart, Label, Series, Unit, usd};
use self::series::{Totals, Usage, WINDOWS, Window, aggregate, unix_ms};
use super::refusal::Refusal;
use super::session::Session;
use super::state::Console;
use super::state::reachable;
use super::view::{Frame, html, inert, rfc3339};

/// The longest query a usage page takes.
const MAX_QUERY_BYTES: usize = 1024;
/// The longest agent name a usage query takes.
const MAX_AGENT_CHARS: usize = 256;
/// What a usage query may hold, for the page refusing another.
const ACCEPTED: &str = "a usage page takes window=hour, window=day or window=month, and \
    optionally agent=NAME (one agent's name, at most 256 characters, no control characters), \
    each at most once; follow the page's own links";

/// The operator's list of tenants, each linking to its usage.
#[derive(Template)]
#[template(path = "console/usage_tenants.html")]
struct TenantsPage {
    frame: Frame,
    tenants: Vec<String>,
}

/// A tenant's usage page: the window links, the live part, and its status line.
#[derive(Template)]
#[template(path = "console/usage.html")]
struct UsagePage {
    frame: Frame,
    tenant: String,
    /// The agent asked for, inert.
    agent: Option<String>,
    windows: Vec<WindowLink>,
    /// Where the script fetches the live part again.
    live_path: String,
    /// The live part, rendered (its own template escapes it).
    live: String,
}

/// A link to the page over another window.
struct WindowLink {
    label: &'static str,
    href: String,
    current: bool,
}

/// The part of the page that updates: totals, charts, the numbers, the agents.
#[derive(Template)]
#[template(path = "console/usage_live.html")]
struct LivePart {
    /// "minute", "hour" or "day".
    step: &'static str,
    /// When these numbers were read (RFC 3339).
    read_at: String,
    total: TotalsView,
    /// The calls of unpriced models, when there were any.
    unpriced: Option<u64>,
    /// Inline SVG, each escaped by [`chart::render`].
    charts: Vec<ChartView>,
    /// The buckets with calls, oldest first.
    rows: Vec<RowView>,
    agents: Vec<AgentRow>,
}

/// Numbers as shown.
struct TotalsView {
    requests: u64,
    input_tokens: u64,
    output_tokens: u64,
    cost: String,
}

impl From<&Totals> for TotalsView {
    fn from(t: &Totals) -> Self {
        TotalsView {
            requests: t.requests,
            input_tokens: t.input_tokens,
            output_tokens: t.output_tokens,
            cost: usd(t.cost_usd_micros),
        }
    }
}

/// One chart under its heading.
struct ChartView {
    id: &'static str,
    heading: &'static str,
    svg: String,
}

/// One bucket as a table row.
struct RowView {
    time: String,
    totals: TotalsView,
    unpriced: u64,
}

/// One agent's totals, linking to the page of that agent alone.
struct AgentRow {
    /// Inert, for reading.
    name: String,
    /// The page of this agent alone, over the same window.
    href: String,
    totals: TotalsView,
    unpriced: u64,
    current: bool,
}

/// What a usage page shows: its window and, optionally, one agent.
#[derive(Debug, Clone, PartialEq, Eq)]
struct UsageQuery {
    window: Window,
    agent: Option<String>,
}

impl UsageQuery {
    /// The query part of a usage URL for this window and agent.
    fn to_query(&self) -> String {
        let mut out = format!("window={}", self.window.name());
        if let Some(agent) = &self.agent {
            out.push_str("&agent=");
            out.push_str(&urlencoding(agent));
        }
        out
    }
}

/// `text` percent-encoded for a query value (every byte but unreserved ones).
fn urlencoding(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for b in text.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// Reads a usage page's query (400 with what is accepted otherwise): `window` (an hour
/// by default) and `agent`, each at most once, nothing else.
fn parse_query(raw: Option<&str>) -> Result<UsageQuery, Refusal> {
    let bad = || Refusal::BadForm(ACCEPTED.to_string());
    let raw = raw.unwrap_or("");
    if raw.len() > MAX_QUERY_BYTES {
        return Err(bad());
    }
    let fields: Vec<(String, String)> = serde_urlencoded::from_str(raw).map_err(|_| bad())?;
    let mut query = UsageQuery {
        window: Window::Hour,
        agent: None,
    };
    let (mut window_seen, mut agent_seen) = (false, false);
    for (name, value) in fields {
        match name.as_str() {
            "window" if !window_seen => {
                window_seen = true;
                query.window = Window::parse(&value).ok_or_else(bad)?;
            }
            "agent" if !agent_seen => {
                agent_seen = true;
                if value.chars().count() > MAX_AGENT_CHARS || value.chars().any(char::is_control) {
                    return Err(bad());
                }
                query.agent = (!value.is_empty()).then_some(value);
            }
            _ => return Err(bad()),
        }
    }
    Ok(query)
}

/// The path of a tenant's usage page.
fn usage_path(tenant: &str) -> String {
    format!("/console/tenants/{tenant}/usage")
}

/// `GET /console/usage`: a tenant's admin goes to their tenant's usage; the operator
/// sees every tenant.
pub(crate) async fn index(State(console): State<Arc<Console>>, headers: HeaderMap) -> Response {
    let outcome = async {
        let session = console.admin_page_session(&headers).await?;
        if let Some(tenant) = &session.tenant {
            return Ok(Redirect::to(&usage_path(tenant)).into_response());
        }
        let tenants = console.tenant_names().await?;
        Ok::<_, Refusal>(html(TenantsPage {
            frame: Frame::signed_in("Usage", &session),
            tenants,
        }))
    };
    outcome.await.unwrap_or_else(IntoResponse::into_response)
}

/// `GET /console/tenants/{tenant}/usage?window=…&agent=…`: the tenant's usage.
pub(crate) async fn page(
    State(console): State<Arc<Console>>,
    Path(tenant): Path<String>,
    RawQuery(raw): RawQuery,
    headers: HeaderMap,
) -> Response {
    let outcome = async {
        let session = console.admin_page_session(&headers).await?;
        let query = checked(&session, &tenant, raw.as_deref())?;
        let live = live_part(&console, &tenant, &query).await?;
        let base = usage_path(&tenant);
        let windows = WINDOWS
            .into_iter()
            .map(|w| WindowLink {
                label: match w {
                    Window::Hour => "Last hour",
                    Window::Day => "Last day",
                    Window::Month => "Last 30 days",
                },
                href: format!(
                    "{base}?{}",
                    UsageQuery {
                        window: w,
                        agent: query.agent.clone()
                    }
                    .to_query()
                ),
                current: w == query.window,
            })
            .collect();
        Ok::<_, Refusal>(html(UsagePage {
            frame: Frame::signed_in("Usage", &session),
            tenant: tenant.clone(),
            agent: query.agent.as_deref().map(inert),
            windows,
            live_path: format!("{base}/live?{}", query.to_query()),
            live,
        }))
    };
    outcome.await.unwrap_or_else(IntoResponse::into_response)
}

/// `GET /console/tenants/{tenant}/usage/live?…`: the live part of the page alone, for
/// its script. Without a session, 401 (not a redirect), so the script can say so.
pub(crate) async fn live(
    State(console): State<Arc<Console>>,
    Path(tenant): Path<String>,
    RawQuery(raw): RawQuery,
    headers: HeaderMap,
) -> Response {
    let outcome = async {
        let session = console.admin_fragment_session(&headers).await?;
        let query = checked(&session, &tenant, raw.as_deref())?;
        Ok::<_, Refusal>(Html(live_part(&console, &tenant, &query).await?).into_response())
    };
    outcome.await.unwrap_or_else(IntoResponse::into_response)
}

/// The tenant checked against the session (404) and the query read (400).
fn checked(session: &Session, tenant: &str, raw: Option<&str>) -> Result<UsageQuery, Refusal> {
    reachable(session, tenant)?;
    parse_query(raw)
}

/// The live part of `tenant`'s page for `query`, rendered.
async fn live_part(console: &Console, tenant: &str, query: &UsageQuery) -> Result<String, Refusal> {
    let gw = &console.gw;
    let now = gw.clock.now();
    let now_ms = unix_ms(now);
    let minutes = console
        .usage
        .get(now_ms, |mut marks, limit| async move {
            let lines = gw.audit_records_after(&mut marks, limit).await?;
            Ok::<_, writ_audit::sink::SinkError>((lines, marks))
        })
        .await
        .map_err(|e| {
            tracing::error!(error = %e, "console: reading the audit log for usage failed");
            Refusal::Unavailable
        })?;
    let usage = aggregate(
        &minutes,
        tenant,
        query.agent.as_deref(),
        query.window,
        now_ms,
    );
    let part = LivePart {
        step: bucket_name(query.window),
        read_at: rfc3339(now_ms / 1000),
        total: TotalsView::from(&usage.total),
        unpriced: (usage.total.unpriced > 0).then_some(usage.total.unpriced),
        charts: charts(&usage, tenant, query.agent.as_deref()),
        rows: usage
            .buckets
            .iter()
            .filter(|b| b.totals.requests > 0)
            .map(|b| RowView {
                time: bucket_time(b.start_ms, usage.window),
                totals: TotalsView::from(&b.totals),
                unpriced: b.totals.unpriced,
            })
            .collect(),
        agents: usage
            .agents
            .iter()
            .map(|(name, totals)| AgentRow {
                name: if name.is_empty() {
                    "(no agent named)".to_string()
                } else {
                    inert(name)
                },
                href: format!(
                    "{}?{}",
                    usage_path(tenant),
                    UsageQuery {
                        window: query.window,
                        agent: Some(name.clone()),
                    }
                    .to_query()
                ),
                totals: TotalsView::from(totals),
                unpriced: totals.unpriced,
                current: query.agent.as_deref() == Some(name.as_str()),
            })
            .collect(),
    };
    part.render().map_err(|_| Refusal::Unavailable)
}

/// What one bucket of `window` is called: "minute", "hour" or "day".
fn bucket_name(window: Window) -> &'static str {
    match window {
        Window::Hour => "minute",
        Window::Day => "hour",
        Window::Month => "day",
    }
}

/// A bucket's start as the tables show it: `2026-12-06 10:30` (UTC), or the day alone
/// for the month.
fn bucket_time(start_ms: u64, window: Window) -> String {
    let text = rfc3339(start_ms / 1000);
    match window {
        Window::Month => text.get(..10).unwrap_or(&text).to_string(),
        Window::Hour | Window::Day => text.get(..16).unwrap_or(&text).replacen('T', " ", 1),
    }
}

/// A bucket's start as a chart's axis shows it: `10:30`, or `12-06` for the month.
fn axis_time(start_ms: u64, window: Window) -> String {
    let text = rfc3339(start_ms / 1000);
    match window {
        Window::Month => text.get(5..10),
        Window::Hour | Window::Day => text.get(11..16),
    }
    .unwrap_or(&text)
    .to_string()
}

/// The requests, tokens and cost charts of `usage`.
fn charts(usage: &Usage, tenant: &str, agent: Option<&str>) -> Vec<ChartView> {
    let window = usage.window;
    let every = match window {
        Window::Hour => 10,
        Window::Day => 4,
        Window::Month => 5,
    };
    let labels: Vec<Label> = usage
        .buckets
        .iter()
        .enumerate()
        .map(|(i, b)| Label {
            text: axis_time(b.start_ms, window),
            shown: i % every == 0,
        })
        .collect();
    let whose = match agent {
        Some(a) => format!("agent {} of tenant {tenant}", inert(a)),
        None => format!("every agent of tenant {tenant}"),
    };
    let span = match window {
        Window::Hour => "the last hour, per minute",
        Window::Day => "the last day, per hour",
        Window::Month => "the last 30 days, per day",
    };
    let values = |f: fn(&Totals) -> u64| -> Vec<u64> {
        usage.buckets.iter().map(|b| f(&b.totals)).collect()
    };
    let t = &usage.total;
    let desc = |what: &str, all: String| {
        format!(
            "{what} of {whose} over {span} (UTC): {all} in all. \
             The table of numbers below gives each {} with calls.",
            bucket_name(window)
        )
    };
    let chart = |id: &'static str, heading: &'static str, series, unit, desc| ChartView {
        id,
        heading,
        svg: chart::render(&BarChart {
            id: id.to_string(),
            title: format!("{heading} of {whose}"),
            desc,
            labels: labels.clone(),
            series,
            unit,
        }),
    };
    vec![
        chart(
            "chart-requests",
            "Requests",
            vec![Series {
                name: "requests".to_string(),
                class: "bar-requests",
                values: values(|t| t.requests),
            }],
            Unit::Count,
            desc("Requests", t.requests.to_string()),
        ),
        chart(
            "chart-tokens",
            "Tokens",
            vec![
                Series {
                    name: "input".to_string(),
                    class: "bar-input",
                    values: values(|t| t.input_tokens),
                },
                Series {
                    name: "output".to_string(),
                    class: "bar-output",
                    values: values(|t| t.output_tokens),
                },
            ],
            Unit::Count,
            desc(
                "Tokens",
                format!("{} input and {} output", t.input_tokens, t.output_tokens),
            ),
        ),
        chart(
            "chart-cost",
            "Cost",
            vec![Series {
                name: "US dollars".to_string(),
                class: "bar-cost",
                values: values(|t| t.cost_usd_micros),
            }],
            Unit::UsdMicros,
            desc("Cost", usd(t.cost_usd_micros)),
        ),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn queries_are_read_strictly() {
        let ok = |raw: &str| parse_query(Some(raw)).ok();
        assert_eq!(
            parse_query(None).ok(),
            Some(UsageQuery {
                window: Window::Hour,
                agent: None
            })
        );
        assert_eq!(
            ok("window=month&agent=a%20b").map(|q| (q.window, q.agent)),
            Some((Window::Month, Some("a b".to_string())))
        );
        assert_eq!(ok("agent=").and_then(|q| q.agent), None);
        for bad in [
            "window=week",
            "window=HOUR",
            "window=hour&window=day",
            "agent=a&agent=b",
            "tenant=acme",
            "window",
            "agent=%0A",
            "agent=a%00b",
            "window=%FF",
        ] {
            assert!(ok(bad).is_none(), "{bad} is refused");
        }
        let long = format!("agent={}", "a".repeat(MAX_AGENT_CHARS + 1));
        assert!(ok(&long).is_none());
        let huge = format!("window=hour&{}", "x".repeat(MAX_QUERY_BYTES));
        assert!(ok(&huge).is_none());
    }

    #[test]
    fn links_carry_the_agent_encoded() {
        let q = UsageQuery {
            window: Window::Day,
            agent: Some("<a&b>\u{202E}".to_string()),
        };
        assert_eq!(q.to_query(), "window=day&agent=%3Ca%26b%3E%E2%80%AE");
        assert_eq!(parse_query(Some(&q.to_query())).ok(), Some(q));
    }

    #[test]
    fn times_read_as_utc() {
        let at = 1_796_553_015_000;
        assert_eq!(bucket_time(at, Window::Hour), "2026-12-06 10:30");
        assert_eq!(bucket_time(at, Window::Month), "2026-12-06");
        assert_eq!(axis_time(at, Window::Day), "10:30");
        assert_eq!(axis_time(at, Window::Month), "12-06");
    }
}
