//! Audit records as the console lists them: the filters of a page's query string read
//! (every value checked, 400 naming what is taken), the records read from the log,
//! filtered, newest first, a page at a time, with where the next, older page starts.

use serde::de::DeserializeOwned;
use writ_audit::AuditRecord;

use super::refusal::Refusal;
use super::state::Console;
use crate::audit::record_filter::{Cursor, FilterError, RecordFilter};

/// Records on one page.
pub(crate) const PAGE: usize = 50;
/// Longest query string a page takes: far more than its filter form sends.
const MAX_QUERY_BYTES: usize = 2048;

/// Reads a page's query string as `T` (a struct denying unknown fields). `accepted` names
/// the page's filters for the refusal's message.
pub(crate) fn read_query<T: DeserializeOwned>(
    uri: &http::Uri,
    accepted: &str,
) -> Result<T, Refusal> {
    let query = uri.query().unwrap_or("");
    if query.len() > MAX_QUERY_BYTES {
        return Err(Refusal::BadForm(format!(
            "these filters are longer than this page takes; its filters are {accepted}"
        )));
    }
    serde_urlencoded::from_str(query).map_err(|e| {
        Refusal::BadForm(format!(
            "{e}: this page's filters are {accepted}, each at most once"
        ))
    })
}

/// A filter's value as given: `None` when absent or blank (a form's empty field).
pub(crate) fn given(value: &Option<String>) -> Option<&str> {
    value.as_deref().map(str::trim).filter(|v| !v.is_empty())
}

/// Reads an optional filter value with `parse`.
pub(crate) fn read<T>(
    value: &Option<String>,
    parse: impl FnOnce(&str) -> Result<T, FilterError>,
) -> Result<Option<T>, Refusal> {
    given(value)
        .map(parse)
        .transpose()
        .map_err(|e| Refusal::BadForm(e.to_string()))
}

/// One page of records.
pub(crate) struct RecordPage {
    /// Newest first.
    pub(crate) records: Vec<AuditRecord>,
    /// The cursor of the next, older page, when there are more.
    pub(crate) older: Option<Cursor>,
}

/// The records of `lines` (an export; checkpoint and unreadable lines skipped) that
/// `filter` keeps, newest first (by time, then instance, then `seq`), `size` of them
/// after the record `before` names. A cursor naming no kept record is refused.
pub(crate) fn page(
    lines: &[String],
    filter: &RecordFilter,
    before: Option<&Cursor>,
    size: usize,
) -> Result<RecordPage, Refusal> {
    let mut kept: Vec<AuditRecord> = lines
        .iter()
        .filter(|line| filter.may_match_line(line))
        .filter_map(|line| AuditRecord::from_line(line).ok())
        .filter(|r| filter.matches(r))
        .collect();
    // Record times are fixed-width RFC 3339 UTC, so they sort as strings.
    kept.sort_by(|a, b| (&b.time, &b.instance, b.seq).cmp(&(&a.time, &a.instance, a.seq)));
    let start = match before {
        None => 0,
        Some(cursor) => {
            kept.iter()
                .position(|r| cursor.names(r))
                .ok_or_else(|| Refusal::BadForm(FilterError::Cursor.to_string()))?
                + 1
        }
    };
    let rest = kept.len().saturating_sub(start);
    let records: Vec<AuditRecord> = kept.into_iter().skip(start).take(size).collect();
    let older = (rest > size)
        .then(|| records.last().map(Cursor::of))
        .flatten();
    Ok(RecordPage { records, older })
}

/// A record's decision code as a person reads it: the stable code, the failed check, or
/// the limit that refused.
pub(crate) fn decision_code(record: &AuditRecord) -> String {
    let Some(d) = &record.decision else {
        return String::new();
    };
    let mut parts = Vec::new();
    if let Some(code) = &d.code {
        parts.push(code.clone());
    }
    if let Some(check) = &d.check {
        parts.push(format!("check {check}"));
    }
    if let Some(limit) = &d.limit {
        parts.push(format!("limit {} {}", limit.scope, limit.dimension));
    }
    parts.join("; ")
}

/// `path` with the filters given in `filters` (name, value) as its query.
pub(crate) fn page_url(path: &str, filters: &[(&str, Option<&str>)]) -> String {
    let pairs: Vec<(&str, &str)> = filters
        .iter()
        .filter_map(|(k, v)| v.map(|v| (*k, v)))
        .collect();
    match serde_urlencoded::to_string(&pairs).unwrap_or_default() {
        q if q.is_empty() => path.to_string(),
        q => format!("{path}?{q}"),
    }
}

/// [`page_url`] of the page after the record `cursor` names.
pub(crate) fn with_cursor(path: &str, filters: &[(&str, Option<&str>)], cursor: &Cursor) -> String {
    let cursor = cursor.to_string();
    let mut filters = filters.to_vec();
    filters.push(("before", Some(&cursor)));
    page_url(path, &filters)
}

/// Refuses a `tenant` filter on one tenant's page, where the address names the tenant.
pub(crate) fn no_tenant_filter(
    page_tenant: Option<&str>,
    filter: &Option<String>,
) -> Result<(), Refusal> {
    if page_tenant.is_some() && filter.is_some() {
        return Err(Refusal::BadForm(
            "this page is one tenant's: its address names the tenant, so leave out the \
             tenant filter"
                .to_string(),
        ));
    }
    Ok(())
}

/// The options of the tenant filter on every tenant's page (none on one tenant's): each
/// tenant, and whether it is `chosen`.
pub(crate) async fn tenant_options(
    console: &Console,
    page_tenant: Option<&str>,
    chosen: Option<&str>,
) -> Result<Vec<(String, bool)>, Refusal> {
    if page_tenant.is_some() {
        return Ok(Vec::new());
    }
    Ok(console
        .tenant_names()
        .await?
        .into_iter()
        .map(|t| {
            let selected = Some(t.as_str()) == chosen;
            (t, selected)
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use writ_audit::{AuditLog, Kind};

    use super::*;

    fn log(n: usize) -> Vec<String> {
        let mut log = AuditLog::new("inst", "writ-audit/inst").unwrap_or_else(|e| panic!("{e}"));
        (0..n)
            .map(|i| {
                let mut r = AuditRecord::new(
                    Kind::RequestDenied,
                    std::time::UNIX_EPOCH + std::time::Duration::from_secs(1_000 + i as u64 / 2),
                );
                r.agent = Some(format!("agent-{}", i % 2));
                log.append(r).0
            })
            .collect()
    }

    #[test]
    fn pages_run_newest_first_and_continue_after_their_cursor() {
        let lines = log(7);
        let all = RecordFilter::default();
        let first = page(&lines, &all, None, 3).unwrap_or_else(|e| panic!("{e}"));
        let seqs = |p: &RecordPage| p.records.iter().map(|r| r.seq).collect::<Vec<_>>();
        assert_eq!(seqs(&first), [6, 5, 4]);
        let cursor = first.older.unwrap_or_else(|| panic!("more"));
        let second = page(&lines, &all, Some(&cursor), 3).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(seqs(&second), [3, 2, 1]);
        let cursor = second.older.unwrap_or_else(|| panic!("more"));
        let last = page(&lines, &all, Some(&cursor), 3).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(seqs(&last), [0]);
        assert!(last.older.is_none());
        let agent = RecordFilter {
            agent: Some("agent-1".into()),
            ..RecordFilter::default()
        };
        assert_eq!(
            seqs(&page(&lines, &agent, None, 10).unwrap_or_else(|e| panic!("{e}"))),
            [5, 3, 1]
        );
        // A cursor the filter does not keep.
        let stranger = Cursor {
            instance: "inst".into(),
            seq: 4,
        };
        assert!(page(&lines, &agent, Some(&stranger), 10).is_err());
    }
}
