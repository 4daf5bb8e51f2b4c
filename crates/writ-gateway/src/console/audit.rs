//! The audit pages: the tamper-evident log's records, filtered by tenant, agent, writ
//! pseudonym, decision, status and time, newest first, a page at a time, under the
//! verification state of every instance's log (verified up to which checkpoint, signed by
//! which key, or broken at which record). Admins only; a tenant's admin sees their
//! tenant's records (another tenant's page answers 404), the operator every tenant's.

use std::collections::HashSet;
use std::sync::Arc;

use askama::Template;
use axum::extract::{Path, State};
use axum::response::{IntoResponse, Redirect, Response};
use http::{HeaderMap, Uri};
use serde::Deserialize;
use writ_audit::{AuditRecord, Kind};

use super::record_list::{
    self, PAGE, decision_code, given, no_tenant_filter, page_url, read, read_query, tenant_options,
    with_cursor,
};
use super::refusal::Refusal;
use super::session::Session;
use super::state::{Console, reachable};
use super::verification::{self, Panel, anchor};
use super::view::{Frame, html, inert};
use crate::audit::record_filter::{
    Cursor, RecordFilter, parse_decision, parse_name, parse_status, parse_time, parse_writ,
};

/// What the refusal of a bad filter names.
const ACCEPTED: &str = "tenant (every tenant's page only), agent, writ (a pseudonym), \
    decision (allowed, denied or a record kind), status, since, until (RFC 3339) and before \
    (a page's cursor)";

/// The path of a tenant's audit page.
fn audit_path(tenant: &str) -> String {
    format!("/console/tenants/{tenant}/audit")
}

/// The audit page's query: its filter form's fields and the page cursor.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct AuditQuery {
    tenant: Option<String>,
    agent: Option<String>,
    writ: Option<String>,
    decision: Option<String>,
    status: Option<String>,
    since: Option<String>,
    until: Option<String>,
    before: Option<String>,
}

/// The audit page.
#[derive(Template)]
#[template(path = "console/audit.html")]
struct AuditPage {
    frame: Frame,
    heading: String,
    /// Where the filter form goes.
    action: String,
    /// The tenant of a tenant's page; `None` on every tenant's.
    tenant: Option<String>,
    /// The tenants to filter by, on every tenant's page.
    tenants: Vec<(String, bool)>,
    /// The filters as given (inert), to show them in the form.
    agent: String,
    writ: String,
    status: String,
    since: String,
    until: String,
    /// The decision options: value, label, selected.
    decisions: Vec<(&'static str, &'static str, bool)>,
    panel: Panel,
    rows: Vec<RecordRow>,
    /// Whether the page is past the newest records.
    later_page: bool,
    /// The first page's URL, with the same filters.
    newest: String,
    /// The next, older page's URL.
    older: Option<String>,
}

/// One record as a row: every text inert.
struct RecordRow {
    /// The row's id, for links from the verification panel.
    id: String,
    time: String,
    kind: &'static str,
    tenant: String,
    agent: String,
    writ: String,
    upstream: String,
    operation: String,
    status: String,
    decision: String,
    usage: String,
    detail: String,
    /// Instance and seq, as the verification panel names records.
    place: String,
}

impl RecordRow {
    fn of(r: &AuditRecord) -> Self {
        let text = |v: &Option<String>| v.as_deref().map(inert).unwrap_or_default();
        let upstream = match (&r.upstream, &r.model) {
            (Some(u), Some(m)) => inert(&format!("{u} ({m})")),
            (Some(u), None) => inert(u),
            (None, Some(m)) => inert(m),
            (None, None) => String::new(),
        };
        RecordRow {
            id: anchor(&r.instance, r.seq),
            time: inert(&r.time),
            kind: r.kind.as_str(),
            tenant: text(&r.tenant),
            agent: text(&r.agent),
            writ: text(&r.writ),
            upstream,
            operation: text(&r.operation),
            status: r.status.map(|s| s.to_string()).unwrap_or_default(),
            decision: inert(&decision_code(r)),
            usage: usage(r),
            detail: r
                .detail
                .as_ref()
                .map(|d| inert(&serde_json::to_string(d).unwrap_or_default()))
                .unwrap_or_default(),
            place: format!("{} #{}", inert(&r.instance), r.seq),
        }
    }
}

/// Tokens and cost, as a person reads them: `12 in, 3 out tokens; $0.000150`.
fn usage(r: &AuditRecord) -> String {
    let mut parts = Vec::new();
    if let Some(u) = &r.usage {
        let cached = u
            .cached_tokens
            .map(|c| format!(" ({c} cached)"))
            .unwrap_or_default();
        parts.push(format!(
            "{} in{cached}, {} out tokens",
            u.input_tokens, u.output_tokens
        ));
    }
    if let Some(m) = r.cost_usd_micros {
        parts.push(format!("${}.{:06}", m / 1_000_000, m % 1_000_000));
    }
    parts.join("; ")
}

/// `GET /console/audit`: a tenant's admin goes to their tenant's page; the operator sees
/// every tenant's records, with a tenant filter.
pub(crate) async fn index(
    State(console): State<Arc<Console>>,
    uri: Uri,
    headers: HeaderMap,
) -> Response {
    let outcome = async {
        let session = console.admin_page_session(&headers).await?;
        if let Some(tenant) = &session.tenant {
            return Ok(Redirect::to(&audit_path(tenant)).into_response());
        }
        let query: AuditQuery = read_query(&uri, ACCEPTED)?;
        show(&console, &session, None, "/console/audit", query).await
    };
    outcome.await.unwrap_or_else(IntoResponse::into_response)
}

/// `GET /console/tenants/{tenant}/audit`: the tenant's records.
pub(crate) async fn tenant_page(
    State(console): State<Arc<Console>>,
    Path(tenant): Path<String>,
    uri: Uri,
    headers: HeaderMap,
) -> Response {
    let outcome = async {
        let session = console.admin_page_session(&headers).await?;
        reachable(&session, &tenant)?;
        let query: AuditQuery = read_query(&uri, ACCEPTED)?;
        no_tenant_filter(Some(&tenant), &query.tenant)?;
        let path = audit_path(&tenant);
        show(&console, &session, Some(&tenant), &path, query).await
    };
    outcome.await.unwrap_or_else(IntoResponse::into_response)
}

/// Renders the audit page at `path` for `session`: `tenant`'s records, or every tenant's.
async fn show(
    console: &Console,
    session: &Session,
    tenant: Option<&str>,
    path: &str,
    query: AuditQuery,
) -> Result<Response, Refusal> {
    let filter = RecordFilter {
        kinds: read(&query.decision, parse_decision)?,
        tenant: match tenant {
            Some(t) => Some(t.to_string()),
            None => read(&query.tenant, |t| parse_name("tenant", t))?,
        },
        agent: read(&query.agent, |a| parse_name("agent", a))?,
        writ: read(&query.writ, parse_writ)?,
        status: read(&query.status, parse_status)?,
        since: read(&query.since, |t| parse_time("since", t))?,
        until: read(&query.until, |t| parse_time("until", t))?,
        detections_only: false,
        detector: None,
    };
    let before = read(&query.before, Cursor::parse)?;
    let lines = console
        .gw
        .audit_export()
        .await
        .map_err(|_| Refusal::Unavailable)?;
    let page = record_list::page(&lines, &filter, before.as_ref(), PAGE)?;
    let key = console.gw.audit_verifier_key();
    let verifying_key = key.clone();
    let verdict = console
        .verification
        .verdict(lines, move |lines, signed| {
            verification::verify(lines, &verifying_key, signed)
        })
        .await
        .ok_or(Refusal::Unavailable)?;
    let shown: HashSet<(&str, u64)> = page
        .records
        .iter()
        .map(|r| (r.instance.as_str(), r.seq))
        .collect();
    let panel = Panel::new(&verdict, &key, |i, s| shown.contains(&(i, s)));

    let filters = [
        ("tenant", given(&query.tenant)),
        ("agent", given(&query.agent)),
        ("writ", given(&query.writ)),
        ("decision", given(&query.decision)),
        ("status", given(&query.status)),
        ("since", given(&query.since)),
        ("until", given(&query.until)),
    ];
    let decision = given(&query.decision).unwrap_or("");
    let mut decisions = vec![
        ("", "Any", decision.is_empty()),
        ("allowed", "Allowed", decision == "allowed"),
        ("denied", "Denied", decision == "denied"),
    ];
    decisions.extend(Kind::ALL.iter().map(|k| {
        let name = k.as_str();
        (name, name, decision == name)
    }));
    let tenants = tenant_options(console, tenant, given(&query.tenant)).await?;
    let shown_text = |v: &Option<String>| given(v).map(inert).unwrap_or_default();
    Ok(html(AuditPage {
        frame: Frame::signed_in("Audit", session),
        heading: match tenant {
            Some(t) => format!("Audit log of {t}"),
            None => "Audit log".to_string(),
        },
        action: path.to_string(),
        tenant: tenant.map(str::to_string),
        tenants,
        agent: shown_text(&query.agent),
        writ: shown_text(&query.writ),
        status: shown_text(&query.status),
        since: shown_text(&query.since),
        until: shown_text(&query.until),
        decisions,
        panel,
        rows: page.records.iter().map(RecordRow::of).collect(),
        later_page: before.is_some(),
        older: page.older.map(|c| with_cursor(path, &filters, &c)),
        newest: page_url(path, &filters),
    }))
}
