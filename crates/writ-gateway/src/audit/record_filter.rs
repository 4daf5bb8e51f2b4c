//! Which audit records a reader asked for: the filters of the admin API's audit and
//! detections queries and of the console's audit and detections pages, how each filter's
//! text is read, and the cursor that continues a page. Pure: no gateway, no sink.

use std::time::SystemTime;

use writ_audit::{AuditRecord, Kind};

/// A filter's text that is not one of the values it takes; the message names them.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(crate) enum FilterError {
    /// `kind` names no record kind.
    #[error(
        "kind must be one of writ_minted, request_allowed, request_outcome, request_denied, \
         approval, revocation, admin_change or detection"
    )]
    Kind,
    /// `decision` is neither `allowed`, `denied` nor a record kind.
    #[error(
        "decision must be allowed, denied, or a record kind: writ_minted, request_allowed, \
         request_outcome, request_denied, approval, revocation, admin_change or detection"
    )]
    Decision,
    /// `status` is not an HTTP status code.
    #[error("status must be an HTTP status code, 100 to 599")]
    Status,
    /// A time filter is not a time.
    #[error(
        "{field} must be an RFC 3339 time such as 2026-11-23T00:00:00Z (or 2026-11-23T00:00, \
         read as UTC)"
    )]
    Time {
        /// The filter: `since` or `until`.
        field: &'static str,
    },
    /// `writ` is not a writ pseudonym.
    #[error("writ must be a writ pseudonym as records show it: 32 hexadecimal characters")]
    Writ,
    /// A name filter holds what no name does.
    #[error("{field} must be one line of at most 128 characters")]
    Name {
        /// The filter: `tenant`, `agent`, `detector`.
        field: &'static str,
    },
    /// The cursor is not one a page gave.
    #[error("cursor is not one this page gave: start again from the first page")]
    Cursor,
}

/// The records a reader asked for: every filter set must match.
#[derive(Debug, Clone, Default)]
pub(crate) struct RecordFilter {
    /// Records of one of these kinds; `None`: any kind.
    pub(crate) kinds: Option<Vec<Kind>>,
    /// Records about this tenant.
    pub(crate) tenant: Option<String>,
    /// Records about this agent.
    pub(crate) agent: Option<String>,
    /// Records of the writ with this pseudonym.
    pub(crate) writ: Option<String>,
    /// Records with this HTTP status.
    pub(crate) status: Option<u16>,
    /// Records at or after this time.
    pub(crate) since: Option<SystemTime>,
    /// Records at or before this time.
    pub(crate) until: Option<SystemTime>,
    /// Detections only: records a detector made or refused.
    pub(crate) detections_only: bool,
    /// Records a detector of this name made or refused.
    pub(crate) detector: Option<String>,
}

impl RecordFilter {
    /// Whether a record line may pass, judged from its text before it is parsed: a
    /// cheap first cut for feeds polled every few seconds over the whole log. `false`
    /// only for a line that cannot pass; [`RecordFilter::matches`] decides.
    pub(crate) fn may_match_line(&self, line: &str) -> bool {
        // Records are compact JSON: a detection's detail holds `"detector":`.
        !self.detections_only || line.contains("\"detector\":")
    }

    /// Whether `record` passes every filter set.
    pub(crate) fn matches(&self, record: &AuditRecord) -> bool {
        let at = || humantime::parse_rfc3339(&record.time).ok();
        let detector = detector(record);
        self.kinds.as_ref().is_none_or(|k| k.contains(&record.kind))
            && self
                .tenant
                .as_deref()
                .is_none_or(|t| record.tenant.as_deref() == Some(t))
            && self
                .agent
                .as_deref()
                .is_none_or(|a| record.agent.as_deref() == Some(a))
            && self
                .writ
                .as_deref()
                .is_none_or(|w| record.writ.as_deref() == Some(w))
            && self.status.is_none_or(|s| record.status == Some(s))
            && self.since.is_none_or(|t| at().is_some_and(|at| at >= t))
            && self.until.is_none_or(|t| at().is_some_and(|at| at <= t))
            && (!self.detections_only || detector.is_some())
            && self
                .detector
                .as_deref()
                .is_none_or(|want| detector == Some(want))
    }
}

/// The detector a record names (`detail.detector`): a detection's own record, or the
/// denial of a request a detector refused.
pub(crate) fn detector(record: &AuditRecord) -> Option<&str> {
    record.detail.as_ref()?.get("detector")?.as_str()
}

/// Reads a `kind` filter.
pub(crate) fn parse_kind(text: &str) -> Result<Kind, FilterError> {
    Kind::ALL
        .into_iter()
        .find(|k| k.as_str() == text)
        .ok_or(FilterError::Kind)
}

/// Reads a `decision` filter: `allowed` (a request's decision and its outcome), `denied`,
/// or one record kind.
pub(crate) fn parse_decision(text: &str) -> Result<Vec<Kind>, FilterError> {
    match text {
        "allowed" => Ok(vec![Kind::RequestAllowed, Kind::RequestOutcome]),
        "denied" => Ok(vec![Kind::RequestDenied]),
        other => parse_kind(other)
            .map(|k| vec![k])
            .map_err(|_| FilterError::Decision),
    }
}

/// Reads a `status` filter: 100 to 599.
pub(crate) fn parse_status(text: &str) -> Result<u16, FilterError> {
    text.parse::<u16>()
        .ok()
        .filter(|s| (100..=599).contains(s))
        .ok_or(FilterError::Status)
}

/// Reads a time filter: RFC 3339, or a form's `YYYY-MM-DDTHH:MM[:SS]` read as UTC.
pub(crate) fn parse_time(field: &'static str, text: &str) -> Result<SystemTime, FilterError> {
    let bad = FilterError::Time { field };
    if text.len() > 40 {
        return Err(bad);
    }
    if let Ok(t) = humantime::parse_rfc3339(text) {
        return Ok(t);
    }
    // What `<input type="datetime-local">` sends: no zone, maybe no seconds.
    let local = text.as_bytes();
    let plain = local
        .iter()
        .all(|b| b.is_ascii_digit() || b"-T:".contains(b));
    match text.len() {
        16 if plain => humantime::parse_rfc3339(&format!("{text}:00Z")).map_err(|_| bad),
        19 if plain => humantime::parse_rfc3339(&format!("{text}Z")).map_err(|_| bad),
        _ => Err(bad),
    }
}

/// Reads a `writ` filter: a pseudonym, 32 lowercase hexadecimal characters (upper case
/// is read as lower).
pub(crate) fn parse_writ(text: &str) -> Result<String, FilterError> {
    if text.len() == 32 && text.bytes().all(|b| b.is_ascii_hexdigit()) {
        Ok(text.to_ascii_lowercase())
    } else {
        Err(FilterError::Writ)
    }
}

/// Reads a name filter (`tenant`, `agent`, `detector`): one line of at most 128
/// characters. Names in records are not all registered names (a writ's agent is what its
/// minter wrote), so any such text is taken and compared as it is.
pub(crate) fn parse_name(field: &'static str, text: &str) -> Result<String, FilterError> {
    if text.chars().count() > 128 || text.chars().any(char::is_control) {
        Err(FilterError::Name { field })
    } else {
        Ok(text.to_string())
    }
}

/// Where a page of records ends: the last record's instance and `seq`, as
/// `instance/seq`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Cursor {
    /// The record's instance.
    pub(crate) instance: String,
    /// Its position in that instance's log.
    pub(crate) seq: u64,
}

impl Cursor {
    /// The cursor of `record`.
    pub(crate) fn of(record: &AuditRecord) -> Self {
        Self {
            instance: record.instance.clone(),
            seq: record.seq,
        }
    }

    /// Reads `instance/seq`.
    pub(crate) fn parse(text: &str) -> Result<Self, FilterError> {
        let (instance, seq) = text.rsplit_once('/').ok_or(FilterError::Cursor)?;
        let seq = seq.parse::<u64>().map_err(|_| FilterError::Cursor)?;
        if instance.is_empty() || instance.len() > 128 {
            return Err(FilterError::Cursor);
        }
        Ok(Self {
            instance: instance.to_string(),
            seq,
        })
    }

    /// Whether it names `record`.
    pub(crate) fn names(&self, record: &AuditRecord) -> bool {
        record.instance == self.instance && record.seq == self.seq
    }
}

impl std::fmt::Display for Cursor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.instance, self.seq)
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(512))]
        /// Whatever text a query carries, every filter reads it or names what it takes;
        /// what it reads, it reads back the same.
        #[test]
        fn any_filter_text_is_read_or_refused(text in "\\PC{0,80}|[0-9:TZ.+-]{0,30}") {
            let _ = parse_kind(&text);
            let _ = parse_decision(&text);
            if let Ok(status) = parse_status(&text) {
                prop_assert!((100..=599).contains(&status));
            }
            let _ = parse_time("since", &text);
            if let Ok(writ) = parse_writ(&text) {
                prop_assert_eq!(writ, text.to_ascii_lowercase());
            }
            if let Ok(name) = parse_name("agent", &text) {
                prop_assert_eq!(name, text.clone());
            }
            if let Ok(cursor) = Cursor::parse(&text) {
                prop_assert_eq!(Cursor::parse(&cursor.to_string()), Ok(cursor));
            }
        }
    }

    #[test]
    fn the_first_cut_keeps_every_detection_line() {
        let mut record = AuditRecord::new(Kind::Detection, std::time::UNIX_EPOCH);
        let mut detail = serde_json::Map::new();
        detail.insert("detector".into(), "prompt_secret".into());
        record.detail = Some(detail);
        let line = record.to_line();
        let detections = RecordFilter {
            detections_only: true,
            ..RecordFilter::default()
        };
        assert!(detections.may_match_line(&line) && detections.matches(&record));
        let plain = AuditRecord::new(Kind::AdminChange, std::time::UNIX_EPOCH);
        assert!(!detections.may_match_line(&plain.to_line()));
        assert!(RecordFilter::default().may_match_line(&plain.to_line()));
    }

    #[test]
    fn filters_read_what_they_take_and_name_it_otherwise() {
        assert_eq!(parse_kind("request_denied"), Ok(Kind::RequestDenied));
        for kind in Kind::ALL {
            assert_eq!(parse_kind(kind.as_str()), Ok(kind));
            let json = serde_json::to_value(kind).unwrap_or_default();
            assert_eq!(json.as_str(), Some(kind.as_str()), "the records' spelling");
        }
        assert_eq!(parse_kind("Request_Denied"), Err(FilterError::Kind));
        assert_eq!(parse_decision("denied"), Ok(vec![Kind::RequestDenied]));
        assert_eq!(parse_decision("allowed").map(|k| k.len()), Ok(2));
        assert_eq!(parse_decision("approval"), Ok(vec![Kind::Approval]));
        assert_eq!(parse_decision("maybe"), Err(FilterError::Decision));
        assert_eq!(parse_status("404"), Ok(404));
        for bad in ["0", "99", "600", "abc", "-1", "4040000"] {
            assert_eq!(parse_status(bad), Err(FilterError::Status), "{bad}");
        }
        assert!(parse_time("since", "2026-11-23T00:00:00Z").is_ok());
        assert_eq!(
            parse_time("since", "2026-11-23T10:30"),
            parse_time("since", "2026-11-23T10:30:00Z")
        );
        assert!(parse_time("until", "2026-11-23T10:30:15").is_ok());
        for bad in [
            "yesterday",
            "2026-11-23",
            "2026-13-23T10:30",
            &"9".repeat(500),
        ] {
            assert_eq!(
                parse_time("until", bad),
                Err(FilterError::Time { field: "until" }),
                "{bad}"
            );
        }
        assert_eq!(parse_writ(&"AB".repeat(16)), Ok("ab".repeat(16)));
        for bad in ["", "abc", &"g".repeat(32), &"a".repeat(33)] {
            assert_eq!(parse_writ(bad), Err(FilterError::Writ), "{bad}");
        }
        assert!(parse_name("agent", "<b>\u{202E}").is_ok());
        assert!(parse_name("agent", "a\nb").is_err());
        assert!(parse_name("agent", &"a".repeat(129)).is_err());
        let cursor = Cursor::parse("01ABC/42").unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(cursor.to_string(), "01ABC/42");
        for bad in ["nonsense", "/1", "a/b", "a/-1"] {
            assert_eq!(Cursor::parse(bad), Err(FilterError::Cursor), "{bad}");
        }
    }
}
