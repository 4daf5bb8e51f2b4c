//! The detections feed: what the detectors found (a secret in a prompt or a response, a
//! credential in a URL, a weak JWT, brute force, a raw provider key), newest first, by
//! detector, agent and what was done, refreshed in place by the console's script while
//! the page is visible. A detection record names the rules that fired, never the secret.
//! Admins only; a tenant's admin sees their tenant's detections, the operator every
//! tenant's.

use std::sync::Arc;

use askama::Template;
use axum::extract::{Path, State};
use axum::response::{IntoResponse, Redirect, Response};
use http::{HeaderMap, Uri};
use serde::Deserialize;
use serde_json::Value;
use writ_audit::AuditRecord;

use super::record_list::{
    self, PAGE, given, no_tenant_filter, page_url, read, read_query, tenant_options, with_cursor,
};
use super::refusal::Refusal;
use super::session::Session;
use super::state::{Console, reachable};
use super::view::{Frame, html, inert};
use crate::audit::record_filter::{Cursor, FilterError, RecordFilter, detector, parse_name};
use crate::config::Detector;

/// What the refusal of a bad filter names.
const ACCEPTED: &str = "tenant (every tenant's page only), agent, detector (prompt_secret, \
    response_secret, url_credential, weak_jwt, brute_force or raw_provider_key) and before \
    (a page's cursor)";

/// The path of a tenant's detections page.
fn detections_path(tenant: &str) -> String {
    format!("/console/tenants/{tenant}/detections")
}

/// The detections page's query.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct DetectionsQuery {
    tenant: Option<String>,
    agent: Option<String>,
    detector: Option<String>,
    before: Option<String>,
}

/// The detections page: filters, and the feed.
#[derive(Template)]
#[template(path = "console/detections.html")]
struct DetectionsPage {
    frame: Frame,
    heading: String,
    action: String,
    tenant: Option<String>,
    tenants: Vec<(String, bool)>,
    agent: String,
    /// The detector options: value, selected.
    detectors: Vec<(&'static str, bool)>,
    /// Where the script fetches the feed from; `None` on an older page (it stays put).
    feed: Option<String>,
    rows: Vec<DetectionRow>,
    later_page: bool,
    newest: String,
    older: Option<String>,
}

/// The feed alone, as the page's script fetches it.
#[derive(Template)]
#[template(path = "console/detections_feed.html")]
struct DetectionsFeed {
    tenant: Option<String>,
    rows: Vec<DetectionRow>,
    later_page: bool,
}

/// One detection as a row: every text inert.
struct DetectionRow {
    time: String,
    detector: String,
    tenant: String,
    agent: String,
    /// The rules that fired, how many matches, where.
    found: String,
    /// What was done, and the status the client got.
    decision: String,
}

impl DetectionRow {
    fn of(r: &AuditRecord) -> Self {
        let detail = r.detail.as_ref();
        let field = |name: &str| detail.and_then(|d| d.get(name));
        let rules: Vec<&str> = field("rules")
            .and_then(Value::as_array)
            .map(|a| a.iter().filter_map(Value::as_str).collect())
            .unwrap_or_default();
        let mut found = if rules.is_empty() {
            "no rule named".to_string()
        } else {
            rules.join(", ")
        };
        if let Some(n) = field("count").and_then(Value::as_u64).filter(|n| *n > 0) {
            found.push_str(&format!(
                " ({n} {})",
                if n == 1 { "match" } else { "matches" }
            ));
        }
        if let Some(place) = field("location").and_then(Value::as_str) {
            found.push_str(&format!(" in the {place}"));
        }
        let action = field("action")
            .and_then(Value::as_str)
            .unwrap_or("recorded");
        let decision = match r.status {
            Some(s) => format!("{action} (status {s})"),
            None => action.to_string(),
        };
        let text = |v: &Option<String>| v.as_deref().map(inert).unwrap_or_default();
        DetectionRow {
            time: inert(&r.time),
            detector: inert(detector(r).unwrap_or_default()),
            tenant: text(&r.tenant),
            agent: text(&r.agent),
            found: inert(&found),
            decision: inert(&decision),
        }
    }
}

/// A page of detections: its rows, and where the next, older page starts.
struct Feed {
    rows: Vec<DetectionRow>,
    older: Option<Cursor>,
}

/// `GET /console/detections`: a tenant's admin goes to their tenant's page; the operator
/// sees every tenant's detections.
pub(crate) async fn index(
    State(console): State<Arc<Console>>,
    uri: Uri,
    headers: HeaderMap,
) -> Response {
    let outcome = async {
        let session = console.admin_page_session(&headers).await?;
        if let Some(tenant) = &session.tenant {
            return Ok(Redirect::to(&detections_path(tenant)).into_response());
        }
        page(&console, &session, None, "/console/detections", &uri).await
    };
    outcome.await.unwrap_or_else(IntoResponse::into_response)
}

/// `GET /console/tenants/{tenant}/detections`: the tenant's detections.
pub(crate) async fn tenant_page(
    State(console): State<Arc<Console>>,
    Path(tenant): Path<String>,
    uri: Uri,
    headers: HeaderMap,
) -> Response {
    let outcome = async {
        let session = console.admin_page_session(&headers).await?;
        reachable(&session, &tenant)?;
        page(
            &console,
            &session,
            Some(&tenant),
            &detections_path(&tenant),
            &uri,
        )
        .await
    };
    outcome.await.unwrap_or_else(IntoResponse::into_response)
}

/// `GET /console/detections/feed`: every tenant's newest detections, the feed alone.
pub(crate) async fn index_feed(
    State(console): State<Arc<Console>>,
    uri: Uri,
    headers: HeaderMap,
) -> Response {
    let outcome = async {
        let session = console.admin_fragment_session(&headers).await?;
        if session.tenant.is_some() {
            return Err(Refusal::NotFound);
        }
        feed_only(&console, None, &uri).await
    };
    outcome.await.unwrap_or_else(IntoResponse::into_response)
}

/// `GET /console/tenants/{tenant}/detections/feed`: the tenant's newest detections, the
/// feed alone.
pub(crate) async fn tenant_feed(
    State(console): State<Arc<Console>>,
    Path(tenant): Path<String>,
    uri: Uri,
    headers: HeaderMap,
) -> Response {
    let outcome = async {
        let session = console.admin_fragment_session(&headers).await?;
        reachable(&session, &tenant)?;
        feed_only(&console, Some(&tenant), &uri).await
    };
    outcome.await.unwrap_or_else(IntoResponse::into_response)
}

/// The query of a page or feed, checked: on a tenant's page the address names the tenant.
fn query(uri: &Uri, tenant: Option<&str>) -> Result<DetectionsQuery, Refusal> {
    let query: DetectionsQuery = read_query(uri, ACCEPTED)?;
    no_tenant_filter(tenant, &query.tenant)?;
    Ok(query)
}

/// Reads the detections `query` asks for, of `tenant` or every tenant.
async fn feed(
    console: &Console,
    tenant: Option<&str>,
    query: &DetectionsQuery,
) -> Result<Feed, Refusal> {
    let filter = RecordFilter {
        tenant: match tenant {
            Some(t) => Some(t.to_string()),
            None => read(&query.tenant, |t| parse_name("tenant", t))?,
        },
        agent: read(&query.agent, |a| parse_name("agent", a))?,
        detections_only: true,
        detector: read(&query.detector, |d| {
            Detector::from_name(d)
                .map(|d| d.as_str().to_string())
                .ok_or(FilterError::Name { field: "detector" })
        })
        .map_err(|_| {
            Refusal::BadForm(format!(
                "detector must be one of {}",
                Detector::ALL.map(Detector::as_str).join(", ")
            ))
        })?,
        ..RecordFilter::default()
    };
    let before = read(&query.before, Cursor::parse)?;
    let lines = console
        .gw
        .audit_export()
        .await
        .map_err(|_| Refusal::Unavailable)?;
    let page = record_list::page(&lines, &filter, before.as_ref(), PAGE)?;
    Ok(Feed {
        rows: page.records.iter().map(DetectionRow::of).collect(),
        older: page.older,
    })
}

/// The feed fragment.
async fn feed_only(
    console: &Console,
    tenant: Option<&str>,
    uri: &Uri,
) -> Result<Response, Refusal> {
    let query = query(uri, tenant)?;
    let feed = feed(console, tenant, &query).await?;
    Ok(html(DetectionsFeed {
        tenant: tenant.map(str::to_string),
        rows: feed.rows,
        later_page: given(&query.before).is_some(),
    }))
}

/// The detections page at `path`.
async fn page(
    console: &Console,
    session: &Session,
    tenant: Option<&str>,
    path: &str,
    uri: &Uri,
) -> Result<Response, Refusal> {
    let query = query(uri, tenant)?;
    let feed = feed(console, tenant, &query).await?;
    let filters = [
        ("tenant", given(&query.tenant)),
        ("agent", given(&query.agent)),
        ("detector", given(&query.detector)),
    ];
    let later_page = given(&query.before).is_some();
    let chosen = given(&query.detector).unwrap_or("");
    let mut detectors = vec![("", chosen.is_empty())];
    detectors.extend(Detector::ALL.map(|d| (d.as_str(), d.as_str() == chosen)));
    let tenants = tenant_options(console, tenant, given(&query.tenant)).await?;
    Ok(html(DetectionsPage {
        frame: Frame::signed_in("Detections", session),
        heading: match tenant {
            Some(t) => format!("Detections in {t}"),
            None => "Detections".to_string(),
        },
        action: path.to_string(),
        tenant: tenant.map(str::to_string),
        tenants,
        agent: given(&query.agent).map(inert).unwrap_or_default(),
        detectors,
        feed: (!later_page).then(|| page_url(&format!("{path}/feed"), &filters)),
        rows: feed.rows,
        later_page,
        newest: page_url(path, &filters),
        older: feed.older.map(|c| with_cursor(path, &filters, &c)),
    }))
}
