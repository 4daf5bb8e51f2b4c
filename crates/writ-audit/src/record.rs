//! The audit record: one decision of the gateway, in a stable, versioned JSON schema, and
//! its canonical encoding, which is what the Merkle tree commits to.
//!
//! # The record line
//!
//! Every record is one line of compact JSON (no whitespace, no trailing newline in the
//! hashed bytes; files separate lines with `\n`). Fields appear in the order below;
//! optional fields are omitted, never `null`. Example:
//!
//! ```json
//! {"v":1,"seq":0,"instance":"01M91GPNENBP1XF2XM777BFQVA","time":"2026-12-04T21:52:26.059Z","kind":"request_denied","tenant":"acme","agent":"demo","writ":"94e2613a7f2a02accf3173ea5341cfe1","client":"398ef9ba3a19524bb6f926668118e7e0","upstream":"openai","model":"gpt-4o","operation":"chat","status":429,"decision":{"limit":{"scope":"tenant=acme","dimension":"tokens"},"code":"rate_limit_exceeded"},"latency_ms":3,"prev":"0000000000000000000000000000000000000000000000000000000000000000"}
//! ```
//!
//! | field | type | presence | meaning |
//! |---|---|---|---|
//! | `v` | integer | always | Schema version, `1`. Readers must reject versions they do not know; fields are only ever added to a version when old readers may safely ignore them. |
//! | `seq` | integer | always | Position in this instance's log, from 0, with no gaps. |
//! | `instance` | string | always | Id of the gateway instance (process) whose log this is. Each instance writes its own log and signs its own checkpoints. |
//! | `time` | string | always | When the decision was made: RFC 3339, UTC, millisecond precision, `Z` suffix (`2026-03-01T12:00:00.250Z`). Taken from the gateway's clock; not checked by verification (order is `seq`). |
//! | `kind` | string | always | One of `writ_minted`, `request_allowed`, `request_outcome`, `request_denied`, `approval`, `revocation`, `admin_change`, `detection`. |
//! | `decision_seq` | integer | `request_outcome` only | The `seq` of the `request_allowed` record, earlier in the same instance's log, whose request this outcome ends (see below). |
//! | `tenant` | string | optional | Tenant the decision concerns. |
//! | `agent` | string | optional | Agent (writ subject) the decision concerns. |
//! | `writ` | string | optional | Pseudonym of the writ's token id: HMAC-SHA256 under the deployment's audit key, 32 hex characters. The same writ always gets the same pseudonym, so its records can be joined, but the id itself (which would help to use or revoke it) is never stored. |
//! | `client` | string | optional | Pseudonym of the client IP address (the TCP peer), as for `writ`; recorded unless `[audit] client_addresses = false`. |
//! | `upstream` | string | optional | Upstream provider the request went, or would have gone, to. |
//! | `model` | string | optional | Model requested. |
//! | `operation` | string | optional | Operation, e.g. `chat`, `embeddings`, `mint`. |
//! | `status` | integer | optional | HTTP status returned to the client. |
//! | `decision` | object | optional | Why: `check` (the authorization check that failed, e.g. `model_not_allowed`), `limit` (`{"scope": …, "dimension": …}` of the limit that refused), `code` (the stable error code sent to the client). Each member optional. |
//! | `usage` | object | optional | `input_tokens`, `output_tokens` (integers), `cached_tokens` (optional integer), as the upstream reported them. |
//! | `cost_usd_micros` | integer | optional | Cost charged, in millionths of a US dollar. |
//! | `latency_ms` | integer | optional | Time from receiving the request to finishing the response, in milliseconds. |
//! | `detail` | object | optional | Free-form facts for `admin_change` (what changed, by whom) and `detection` (which rule fired, where). Never secret values: name a secret, never quote it. |
//! | `prev` | string | always | Hash chain link: the lowercase hex of the previous record's Merkle leaf hash, `SHA-256(0x00 ‖ previous line)`; 64 zeros for `seq` 0. |
//!
//! # Decision and outcome
//!
//! In best-effort mode a forwarded request has one record, `request_allowed`, written when
//! it ends, with its status, usage and cost. In strict mode it has two: the
//! `request_allowed` *decision*, committed before the request is forwarded (identity,
//! upstream, model, operation; no `status`), and the `request_outcome` written after it
//! (status, usage, cost, latency), whose `decision_seq` names the decision. A decision
//! with no outcome is a request that was in flight when the log ended.
//!
//! # Canonical bytes
//!
//! [`AuditRecord::canonical_bytes`] is `serde_json` output of the struct: fields in the
//! fixed order above, absent options skipped, no whitespace, and every object inside
//! `detail` written with its keys sorted, whatever map type `serde_json` was built with.
//! The same record always encodes to the same bytes, and a line read with
//! [`AuditRecord::from_line`] and encoded again gives back the line. These bytes are the
//! Merkle leaf; verification hashes the stored line as it is, so any changed byte shows.

mod line;

use std::collections::BTreeMap;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize, Serializer};
use serde_json::{Map, Value};

/// The schema version this crate writes and reads.
pub const SCHEMA_VERSION: u32 = 1;

/// One audit record; serialized, one line of the log. See the [module docs](self) for the
/// schema.
///
/// `seq`, `instance` and `prev` belong to the log, not the event: [`crate::AuditLog::append`]
/// overwrites them, so build records with [`AuditRecord::new`] and set the event's fields.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct AuditRecord {
    /// Schema version; [`SCHEMA_VERSION`].
    pub v: u32,
    /// Position in this instance's log, from 0.
    pub seq: u64,
    /// The gateway instance whose log this is.
    pub instance: String,
    /// RFC 3339 UTC with milliseconds; see [`format_time`].
    pub time: String,
    /// What kind of decision this is.
    pub kind: Kind,
    /// For a [`Kind::RequestOutcome`]: the `seq` of its request's decision record.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub decision_seq: Option<u64>,
    /// Tenant concerned.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tenant: Option<String>,
    /// Agent concerned.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub agent: Option<String>,
    /// Pseudonym of the writ's token id ([`crate::Pseudonymizer`]); never the id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub writ: Option<String>,
    /// Pseudonym of the client IP address, when configured.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client: Option<String>,
    /// Upstream provider.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub upstream: Option<String>,
    /// Model requested.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub model: Option<String>,
    /// Operation requested.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub operation: Option<String>,
    /// HTTP status returned to the client.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<u16>,
    /// Why the gateway decided as it did.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub decision: Option<Decision>,
    /// Tokens used, as reported by the upstream.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub usage: Option<Usage>,
    /// Cost in millionths of a US dollar.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cost_usd_micros: Option<u64>,
    /// Request latency in milliseconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub latency_ms: Option<u64>,
    /// Free-form facts for admin changes and detections; never secret values.
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        serialize_with = "serialize_sorted"
    )]
    pub detail: Option<Map<String, Value>>,
    /// Hex of the previous record's leaf hash; 64 zeros for the first record.
    pub prev: String,
}

/// What kind of decision a record is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Kind {
    /// A writ was minted at the token endpoint.
    WritMinted,
    /// A request was allowed: in strict mode the decision committed before forwarding it
    /// (its outcome follows as [`Kind::RequestOutcome`]), in best-effort mode its one
    /// record, with its outcome.
    RequestAllowed,
    /// How a request allowed by an earlier `request_allowed` record ended (strict mode):
    /// status, usage, cost, latency; linked to it by `decision_seq`.
    RequestOutcome,
    /// A request was refused (authentication, authorization, limit, inspection…).
    RequestDenied,
    /// A human approved or rejected a held request.
    Approval,
    /// A writ or key was revoked.
    Revocation,
    /// Configuration, grants, keys or tenants were changed by an administrator.
    AdminChange,
    /// A detector fired (e.g. a secret in a prompt, an anomaly).
    Detection,
}

impl Kind {
    /// Every kind, in the schema's order.
    pub const ALL: [Kind; 8] = [
        Kind::WritMinted,
        Kind::RequestAllowed,
        Kind::RequestOutcome,
        Kind::RequestDenied,
        Kind::Approval,
        Kind::Revocation,
        Kind::AdminChange,
        Kind::Detection,
    ];

    /// The kind as records spell it (`request_denied`): its `serde` name.
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::WritMinted => "writ_minted",
            Kind::RequestAllowed => "request_allowed",
            Kind::RequestOutcome => "request_outcome",
            Kind::RequestDenied => "request_denied",
            Kind::Approval => "approval",
            Kind::Revocation => "revocation",
            Kind::AdminChange => "admin_change",
            Kind::Detection => "detection",
        }
    }
}

/// Why a request was decided as it was. All members optional.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Decision {
    /// The authorization check that failed, e.g. `model_not_allowed`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub check: Option<String>,
    /// The limit that refused the request.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub limit: Option<LimitHit>,
    /// The stable error code returned to the client, e.g. `rate_limit_exceeded`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub code: Option<String>,
}

/// The limit that refused a request.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct LimitHit {
    /// Whose limit: e.g. `tenant=acme`, `tenant=acme,agent=support-bot`.
    pub scope: String,
    /// Which dimension ran out: e.g. `requests`, `tokens`, `cost`, `concurrency`.
    pub dimension: String,
}

/// Tokens a request used.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Usage {
    /// Prompt tokens.
    pub input_tokens: u64,
    /// Completion tokens.
    pub output_tokens: u64,
    /// Prompt tokens served from the provider's cache, when it says.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cached_tokens: Option<u64>,
}

/// A line could not be read as a record.
#[derive(Debug, thiserror::Error)]
pub enum RecordError {
    /// Not JSON of the record's shape.
    #[error("not an audit record: {0}")]
    Json(#[from] serde_json::Error),
    /// A schema version this crate does not know.
    #[error("unsupported audit record version {0}")]
    UnsupportedVersion(u32),
}

impl AuditRecord {
    /// A record of `kind` decided at `at`, with every optional field absent. The log fields
    /// (`seq`, `instance`, `prev`) are filled in by [`crate::AuditLog::append`].
    pub fn new(kind: Kind, at: SystemTime) -> Self {
        Self {
            v: SCHEMA_VERSION,
            seq: 0,
            instance: String::new(),
            time: format_time(at),
            kind,
            decision_seq: None,
            tenant: None,
            agent: None,
            writ: None,
            client: None,
            upstream: None,
            model: None,
            operation: None,
            status: None,
            decision: None,
            usage: None,
            cost_usd_micros: None,
            latency_ms: None,
            detail: None,
            prev: String::new(),
        }
    }

    /// The deterministic encoding of the record: one line of compact JSON, the Merkle leaf.
    pub fn canonical_bytes(&self) -> Vec<u8> {
        self.to_line().into_bytes()
    }

    /// [`AuditRecord::canonical_bytes`] as a string.
    ///
    /// The bytes are `serde_json`'s for this struct, written without its serializer (a
    /// request's record is written on its own thread: see `record/line.rs`).
    pub fn to_line(&self) -> String {
        line::encode(self)
    }

    /// Reads a record line, refusing unknown schema versions. Unknown fields are ignored,
    /// so readers keep working when fields are added.
    pub fn from_line(line: &str) -> Result<Self, RecordError> {
        let record: Self = serde_json::from_str(line)?;
        if record.v != SCHEMA_VERSION {
            return Err(RecordError::UnsupportedVersion(record.v));
        }
        Ok(record)
    }
}

/// Formats `at` as the record's `time`: RFC 3339, UTC, milliseconds, e.g.
/// `2026-03-01T12:00:00.250Z`. Times before 1970 or after 9999 are clamped to those
/// bounds rather than failing: a record with a wrong time beats a lost record.
pub fn format_time(at: SystemTime) -> String {
    // 9999-12-31T23:59:59.999Z, the last instant RFC 3339's four-digit year can show.
    let latest = UNIX_EPOCH + Duration::from_millis(253_402_300_799_999);
    let at = at.clamp(UNIX_EPOCH, latest);
    humantime::format_rfc3339_millis(at).to_string()
}

/// Writes `detail` with every object's keys sorted, so the bytes do not depend on whether
/// `serde_json`'s `preserve_order` feature is on somewhere in the build.
fn serialize_sorted<S: Serializer>(
    detail: &Option<Map<String, Value>>,
    serializer: S,
) -> Result<S::Ok, S::Error> {
    struct Sorted<'a>(&'a Value);

    impl Serialize for Sorted<'_> {
        fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
            match self.0 {
                Value::Object(map) => {
                    let sorted: BTreeMap<&String, Sorted<'_>> =
                        map.iter().map(|(k, v)| (k, Sorted(v))).collect();
                    sorted.serialize(serializer)
                }
                Value::Array(items) => serializer.collect_seq(items.iter().map(Sorted)),
                other => other.serialize(serializer),
            }
        }
    }

    match detail {
        Some(map) => {
            let sorted: BTreeMap<&String, Sorted<'_>> =
                map.iter().map(|(k, v)| (k, Sorted(v))).collect();
            serializer.serialize_some(&sorted)
        }
        None => serializer.serialize_none(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(ms: u64) -> SystemTime {
        UNIX_EPOCH + Duration::from_millis(ms)
    }

    #[test]
    fn minimal_record_omits_absent_fields() {
        let r = AuditRecord::new(Kind::WritMinted, at(1_772_366_400_250));
        assert_eq!(
            r.to_line(),
            r#"{"v":1,"seq":0,"instance":"","time":"2026-03-01T12:00:00.250Z","kind":"writ_minted","prev":""}"#
        );
    }

    #[test]
    fn full_record_encodes_in_schema_order_and_round_trips() {
        let mut detail = Map::new();
        detail.insert(
            "z".into(),
            serde_json::json!({"b": 1, "a": [{"y": 2, "x": 1}]}),
        );
        detail.insert("a".into(), Value::from("first"));
        let r = AuditRecord {
            seq: 7,
            instance: "i1".into(),
            tenant: Some("acme".into()),
            agent: Some("bot".into()),
            writ: Some("00ff".into()),
            client: Some("11ee".into()),
            upstream: Some("openai".into()),
            model: Some("gpt-4o".into()),
            operation: Some("chat.completions".into()),
            status: Some(429),
            decision: Some(Decision {
                check: None,
                limit: Some(LimitHit {
                    scope: "tenant:acme".into(),
                    dimension: "tokens".into(),
                }),
                code: Some("rate_limited".into()),
            }),
            usage: Some(Usage {
                input_tokens: 10,
                output_tokens: 20,
                cached_tokens: Some(5),
            }),
            cost_usd_micros: Some(1234),
            latency_ms: Some(56),
            detail: Some(detail),
            prev: "00".repeat(32),
            ..AuditRecord::new(Kind::RequestDenied, at(0))
        };
        let line = r.to_line();
        assert_eq!(
            line,
            format!(
                concat!(
                    r#"{{"v":1,"seq":7,"instance":"i1","time":"1970-01-01T00:00:00.000Z","#,
                    r#""kind":"request_denied","tenant":"acme","agent":"bot","writ":"00ff","#,
                    r#""client":"11ee","upstream":"openai","model":"gpt-4o","#,
                    r#""operation":"chat.completions","status":429,"#,
                    r#""decision":{{"limit":{{"scope":"tenant:acme","dimension":"tokens"}},"code":"rate_limited"}},"#,
                    r#""usage":{{"input_tokens":10,"output_tokens":20,"cached_tokens":5}},"#,
                    r#""cost_usd_micros":1234,"latency_ms":56,"#,
                    r#""detail":{{"a":"first","z":{{"a":[{{"x":1,"y":2}}],"b":1}}}},"prev":"{}"}}"#
                ),
                "00".repeat(32)
            )
        );
        let back = AuditRecord::from_line(&line).unwrap();
        assert_eq!(back, r);
        assert_eq!(back.to_line(), line);
    }

    #[test]
    fn kinds_are_snake_case() {
        let kinds = [
            (Kind::WritMinted, "writ_minted"),
            (Kind::RequestAllowed, "request_allowed"),
            (Kind::RequestOutcome, "request_outcome"),
            (Kind::RequestDenied, "request_denied"),
            (Kind::Approval, "approval"),
            (Kind::Revocation, "revocation"),
            (Kind::AdminChange, "admin_change"),
            (Kind::Detection, "detection"),
        ];
        for (kind, name) in kinds {
            assert_eq!(serde_json::to_value(kind).unwrap(), Value::from(name));
            assert_eq!(kind.as_str(), name);
        }
    }

    #[test]
    fn unknown_versions_are_refused_and_unknown_fields_ignored() {
        let mut r = AuditRecord::new(Kind::Approval, at(0));
        r.v = 2;
        assert!(matches!(
            AuditRecord::from_line(&r.to_line()),
            Err(RecordError::UnsupportedVersion(2))
        ));
        let line = AuditRecord::new(Kind::Approval, at(0)).to_line();
        let extended = line.replacen('{', r#"{"future":true,"#, 1);
        assert_eq!(
            AuditRecord::from_line(&extended).unwrap().kind,
            Kind::Approval
        );
        assert!(matches!(
            AuditRecord::from_line("{"),
            Err(RecordError::Json(_))
        ));
    }

    #[test]
    fn times_are_clamped_not_fatal() {
        assert_eq!(
            format_time(UNIX_EPOCH - Duration::from_secs(5)),
            "1970-01-01T00:00:00.000Z"
        );
        let far = UNIX_EPOCH + Duration::from_secs(400_000_000_000);
        assert_eq!(format_time(far), "9999-12-31T23:59:59.999Z");
    }
}
