//! The record line written field by field: byte for byte what `serde_json` writes for an
//! [`AuditRecord`] (the canonical encoding, see the record module's docs), in about 0.6
//! of its time (`cargo bench -p writ-audit --bench record_line`).
//!
//! `serde_json` looks up every byte of every string in its escape table before copying it;
//! a record's strings (names, pseudonyms, hex, a timestamp) almost never hold a byte that
//! needs escaping, so here a string is checked in one branch-free pass and copied whole,
//! and only one that needs escaping is escaped, byte by byte, exactly as `serde_json`
//! does. `detail` (free-form) is written by `serde_json` itself. The tests compare every
//! field, and arbitrary records, against `serde_json`'s bytes.

use super::{AuditRecord, Decision, Usage};

/// Bytes a line takes before it grows: a request record is 400–600.
const LINE_CAPACITY: usize = 640;

/// `record` as its canonical line.
pub(super) fn encode(record: &AuditRecord) -> String {
    let mut out = Vec::with_capacity(LINE_CAPACITY);
    out.extend_from_slice(b"{\"v\":");
    number(&mut out, u64::from(record.v));
    out.extend_from_slice(b",\"seq\":");
    number(&mut out, record.seq);
    field_str(&mut out, "instance", &record.instance);
    field_str(&mut out, "time", &record.time);
    field_str(&mut out, "kind", record.kind.as_str());
    if let Some(seq) = record.decision_seq {
        field_number(&mut out, "decision_seq", seq);
    }
    for (name, value) in [
        ("tenant", &record.tenant),
        ("agent", &record.agent),
        ("writ", &record.writ),
        ("client", &record.client),
        ("upstream", &record.upstream),
        ("model", &record.model),
        ("operation", &record.operation),
    ] {
        if let Some(value) = value {
            field_str(&mut out, name, value);
        }
    }
    if let Some(status) = record.status {
        field_number(&mut out, "status", u64::from(status));
    }
    if let Some(decision) = &record.decision {
        decision_object(&mut out, decision);
    }
    if let Some(usage) = &record.usage {
        usage_object(&mut out, usage);
    }
    if let Some(micros) = record.cost_usd_micros {
        field_number(&mut out, "cost_usd_micros", micros);
    }
    if let Some(ms) = record.latency_ms {
        field_number(&mut out, "latency_ms", ms);
    }
    if record.detail.is_some() {
        out.extend_from_slice(b",\"detail\":");
        let mut ser = serde_json::Serializer::new(&mut out);
        // Writing a map with string keys into a Vec cannot fail.
        super::serialize_sorted(&record.detail, &mut ser).expect("detail always serializes");
    }
    field_str(&mut out, "prev", &record.prev);
    out.push(b'}');
    // Every byte written is ASCII punctuation, digits, or copied from a `&str` whole or
    // around ASCII escapes: the line is UTF-8.
    String::from_utf8(out).expect("a record line is UTF-8")
}

fn decision_object(out: &mut Vec<u8>, decision: &Decision) {
    out.extend_from_slice(b",\"decision\":{");
    let mut first = true;
    let mut key = |out: &mut Vec<u8>, name: &str| {
        if !first {
            out.push(b',');
        }
        first = false;
        string(out, name);
        out.push(b':');
    };
    if let Some(check) = &decision.check {
        key(out, "check");
        string(out, check);
    }
    if let Some(limit) = &decision.limit {
        key(out, "limit");
        out.extend_from_slice(b"{\"scope\":");
        string(out, &limit.scope);
        out.extend_from_slice(b",\"dimension\":");
        string(out, &limit.dimension);
        out.push(b'}');
    }
    if let Some(code) = &decision.code {
        key(out, "code");
        string(out, code);
    }
    out.push(b'}');
}

fn usage_object(out: &mut Vec<u8>, usage: &Usage) {
    out.extend_from_slice(b",\"usage\":{\"input_tokens\":");
    number(out, usage.input_tokens);
    out.extend_from_slice(b",\"output_tokens\":");
    number(out, usage.output_tokens);
    if let Some(cached) = usage.cached_tokens {
        out.extend_from_slice(b",\"cached_tokens\":");
        number(out, cached);
    }
    out.push(b'}');
}

/// `,"name":"value"`.
fn field_str(out: &mut Vec<u8>, name: &str, value: &str) {
    out.push(b',');
    string(out, name);
    out.push(b':');
    string(out, value);
}

/// `,"name":n`.
fn field_number(out: &mut Vec<u8>, name: &str, n: u64) {
    out.push(b',');
    string(out, name);
    out.push(b':');
    number(out, n);
}

fn number(out: &mut Vec<u8>, n: u64) {
    out.extend_from_slice(itoa::Buffer::new().format(n).as_bytes());
}

/// `s` as a JSON string, escaped as `serde_json` escapes it: `"` and `\` with a
/// backslash, the five control characters that have one by their short escape, every
/// other byte below 0x20 as `\u00xx` (lowercase hex), and nothing else.
fn string(out: &mut Vec<u8>, s: &str) {
    out.push(b'"');
    let bytes = s.as_bytes();
    // No early exit, so the compiler checks many bytes at once.
    let plain = bytes.iter().fold(true, |plain, &b| {
        plain & (b >= 0x20) & (b != b'"') & (b != b'\\')
    });
    if plain {
        out.extend_from_slice(bytes);
    } else {
        escaped(out, bytes);
    }
    out.push(b'"');
}

fn escaped(out: &mut Vec<u8>, bytes: &[u8]) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let mut start = 0;
    for (i, &b) in bytes.iter().enumerate() {
        let short = match b {
            b'"' => b'"',
            b'\\' => b'\\',
            0x08 => b'b',
            0x0c => b'f',
            b'\n' => b'n',
            b'\r' => b'r',
            b'\t' => b't',
            0x00..=0x1f => b'u',
            _ => continue,
        };
        out.extend_from_slice(&bytes[start..i]);
        start = i + 1;
        if short == b'u' {
            out.extend_from_slice(b"\\u00");
            out.push(HEX[usize::from(b >> 4)]);
            out.push(HEX[usize::from(b & 0xf)]);
        } else {
            out.push(b'\\');
            out.push(short);
        }
    }
    out.extend_from_slice(&bytes[start..]);
}

#[cfg(test)]
mod tests {
    use std::time::UNIX_EPOCH;

    use proptest::prelude::*;
    use serde_json::{Map, Value};

    use super::*;
    use crate::record::{Kind, LimitHit};

    /// What `serde_json` writes for the record: the canonical bytes before this module.
    fn by_serde(record: &AuditRecord) -> String {
        serde_json::to_string(record).unwrap()
    }

    #[test]
    fn every_byte_value_is_escaped_as_serde_json_escapes_it() {
        // Every one-byte character, then every byte below 0x20 amid text, then text
        // that needs no escape but for one byte at either end.
        let mut cases: Vec<String> = (0u8..=0x7f).map(|b| char::from(b).to_string()).collect();
        cases.push((0u8..0x20).map(char::from).collect::<String>() + "a\"b\\c\u{7f}é😀");
        cases.push("\"plain text\\".into());
        cases.push(String::new());
        for case in cases {
            let mut out = Vec::new();
            string(&mut out, &case);
            assert_eq!(
                String::from_utf8(out).unwrap(),
                serde_json::to_string(&case).unwrap(),
                "{case:?}"
            );
        }
    }

    #[test]
    fn every_kind_and_every_field_encode_as_serde_json_does() {
        let mut detail = Map::new();
        detail.insert(
            "b\n".into(),
            serde_json::json!({"z": [1, {"y": "\u{1}"}], "a": null}),
        );
        detail.insert("a".into(), Value::from("x"));
        for kind in Kind::ALL {
            let full = AuditRecord {
                seq: u64::MAX,
                instance: "01M91GPNENBP1XF2XM777BFQVA".into(),
                decision_seq: Some(3),
                tenant: Some("acme \"corp\"".into()),
                agent: Some("bot\\1".into()),
                writ: Some("94e2613a7f2a02accf3173ea5341cfe1".into()),
                client: Some("398ef9ba3a19524bb6f926668118e7e0".into()),
                upstream: Some("openai\t".into()),
                model: Some("gpt-4o\u{0}".into()),
                operation: Some("chat".into()),
                status: Some(u16::MAX),
                decision: Some(Decision {
                    check: Some("model_not_allowed".into()),
                    limit: Some(LimitHit {
                        scope: "tenant=acme,agent=\u{1f}".into(),
                        dimension: "tokens".into(),
                    }),
                    code: Some("rate_limit_exceeded".into()),
                }),
                usage: Some(Usage {
                    input_tokens: 0,
                    output_tokens: u64::MAX,
                    cached_tokens: Some(7),
                }),
                cost_usd_micros: Some(1_234),
                latency_ms: Some(0),
                detail: Some(detail.clone()),
                prev: "ab".repeat(32),
                ..AuditRecord::new(kind, UNIX_EPOCH)
            };
            assert_eq!(encode(&full), by_serde(&full));
            let bare = AuditRecord::new(kind, UNIX_EPOCH);
            assert_eq!(encode(&bare), by_serde(&bare));
            // Each part of a decision and of usage on its own.
            let mut part = bare.clone();
            part.decision = Some(Decision::default());
            assert_eq!(encode(&part), by_serde(&part));
            part.decision = Some(Decision {
                code: Some("x".into()),
                ..Decision::default()
            });
            part.usage = Some(Usage::default());
            assert_eq!(encode(&part), by_serde(&part));
        }
    }

    fn text() -> impl Strategy<Value = String> {
        // Mostly the names records hold, sometimes anything at all.
        prop_oneof![
            3 => "[a-z0-9_.=,-]{0,40}",
            1 => any::<String>(),
        ]
    }

    fn optional<T: std::fmt::Debug>(
        s: impl Strategy<Value = T>,
    ) -> impl Strategy<Value = Option<T>> {
        prop::option::of(s)
    }

    prop_compose! {
        fn record()(
            kind in prop::sample::select(Kind::ALL.to_vec()),
            seq in any::<u64>(),
            instance in text(),
            decision_seq in optional(any::<u64>()),
            names in prop::collection::vec(optional(text()), 7),
            status in optional(any::<u16>()),
            decision in optional((optional(text()), optional((text(), text())), optional(text()))),
            usage in optional((any::<u64>(), any::<u64>(), optional(any::<u64>()))),
            cost in optional(any::<u64>()),
            latency in optional(any::<u64>()),
            detail in optional(prop::collection::btree_map(text(), text(), 0..4)),
            prev in text(),
        ) -> AuditRecord {
            let mut r = AuditRecord::new(kind, UNIX_EPOCH);
            r.seq = seq;
            r.instance = instance;
            r.decision_seq = decision_seq;
            let mut names = names.into_iter();
            for field in [&mut r.tenant, &mut r.agent, &mut r.writ, &mut r.client,
                          &mut r.upstream, &mut r.model, &mut r.operation] {
                *field = names.next().flatten();
            }
            r.status = status;
            r.decision = decision.map(|(check, limit, code)| Decision {
                check,
                limit: limit.map(|(scope, dimension)| LimitHit { scope, dimension }),
                code,
            });
            r.usage = usage.map(|(input_tokens, output_tokens, cached_tokens)| Usage {
                input_tokens, output_tokens, cached_tokens,
            });
            r.cost_usd_micros = cost;
            r.latency_ms = latency;
            r.detail = detail.map(|d| d.into_iter().map(|(k, v)| (k, Value::from(v))).collect());
            r.prev = prev;
            r
        }
    }

    proptest! {
        #[test]
        fn any_record_encodes_as_serde_json_does(r in record()) {
            prop_assert_eq!(encode(&r), by_serde(&r));
        }
    }
}
