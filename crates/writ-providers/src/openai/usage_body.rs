//! The `usage` of a whole OpenAI-style JSON response, read in the one pass that checks the
//! document and builds nothing but the counts: what [`super::usage_from_value`] reads from
//! a parsed `usage` object, without building the object.

use std::fmt;

use serde::de::{self, DeserializeSeed, IgnoredAny, MapAccess, SeqAccess, Visitor};

use crate::fields::Wanted;
use crate::usage::{UnreadableCount, Usage};

/// The usage `body` reports: `None` unless it is one JSON object whose `usage` member
/// (the last, if repeated) is an object stating an input count that, like every count it
/// states, is a non-negative integer.
pub(super) fn read(body: &[u8]) -> Option<Usage> {
    // One UTF-8 check of the whole body is cheaper than serde_json's check of each string
    // read from bytes; a body that is not UTF-8 is read as bytes (and refused there).
    let found = match std::str::from_utf8(body) {
        Ok(text) => top(serde_json::Deserializer::from_str(text)),
        Err(_) => top(serde_json::Deserializer::from_slice(body)),
    };
    match found.ok()?? {
        Member::Object(fields) => fields.usage().ok().flatten(),
        Member::Other => None,
    }
}

/// Reads the one object `de` holds (then checks nothing follows it): its `usage`.
fn top<'de, R: serde_json::de::Read<'de>>(
    mut de: serde_json::Deserializer<R>,
) -> Result<Option<Member>, serde_json::Error> {
    let found = de::Deserializer::deserialize_map(&mut de, Response)?;
    de.end()?;
    Ok(found)
}

/// A response object, read for its `usage` member.
struct Response;

impl<'de> Visitor<'de> for Response {
    type Value = Option<Member>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON object")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let mut usage = None;
        while let Some(name) = map.next_key_seed(Wanted(&["usage"]))? {
            match name {
                // A repeated member replaces the earlier one, as in a parsed `Value`.
                Some(_) => usage = Some(map.next_value_seed(UsageObject)?),
                None => {
                    map.next_value::<IgnoredAny>()?;
                }
            }
        }
        Ok(usage)
    }
}

/// A `usage` member: an object's counts, or something else.
enum Member {
    Object(Fields),
    Other,
}

/// The members of a `usage` object that say how many tokens, as they were written.
#[derive(Default)]
struct Fields {
    prompt_tokens: Count,
    input_tokens: Count,
    completion_tokens: Count,
    output_tokens: Count,
    /// `prompt_tokens_details.cached_tokens`, when that is a non-negative integer.
    prompt_cached: Option<u64>,
    /// `input_tokens_details.cached_tokens`, likewise.
    input_cached: Option<u64>,
}

impl Fields {
    /// As `read_usage` reads a parsed object: `None` without an input count, an error
    /// when any count stated cannot be read.
    fn usage(&self) -> Result<Option<Usage>, UnreadableCount> {
        let (prompt, input) = (self.prompt_tokens.get()?, self.input_tokens.get()?);
        let Some(input) = prompt.or(input) else {
            return Ok(None);
        };
        let (completion, output) = (self.completion_tokens.get()?, self.output_tokens.get()?);
        let cached = self.prompt_cached.or(self.input_cached).unwrap_or(0);
        Ok(Some(Usage {
            input_tokens: input,
            output_tokens: completion.or(output).unwrap_or(0),
            cached_input_tokens: cached.min(input),
        }))
    }
}

/// A token count as written.
#[derive(Default, Clone, Copy)]
enum Count {
    /// Absent, or `null`.
    #[default]
    Absent,
    Stated(u64),
    /// Negative, fractional, beyond `u64`, or not a number.
    Unreadable,
}

impl Count {
    fn get(self) -> Result<Option<u64>, UnreadableCount> {
        match self {
            Count::Absent => Ok(None),
            Count::Stated(n) => Ok(Some(n)),
            Count::Unreadable => Err(UnreadableCount),
        }
    }
}

/// The member names of a `usage` object that are read.
const USAGE_NAMES: &[&str] = &[
    "prompt_tokens",
    "input_tokens",
    "completion_tokens",
    "output_tokens",
    "prompt_tokens_details",
    "input_tokens_details",
];

/// Reads a `usage` member's value.
struct UsageObject;

impl<'de> DeserializeSeed<'de> for UsageObject {
    type Value = Member;

    fn deserialize<D: de::Deserializer<'de>>(self, d: D) -> Result<Member, D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for UsageObject {
    type Value = Member;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a usage object")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Member, A::Error> {
        let mut fields = Fields::default();
        while let Some(name) = map.next_key_seed(Wanted(USAGE_NAMES))? {
            // Later members replace earlier ones of the same name, as in a parsed `Value`.
            match name {
                Some("prompt_tokens") => fields.prompt_tokens = map.next_value_seed(CountOf)?,
                Some("input_tokens") => fields.input_tokens = map.next_value_seed(CountOf)?,
                Some("completion_tokens") => {
                    fields.completion_tokens = map.next_value_seed(CountOf)?;
                }
                Some("output_tokens") => fields.output_tokens = map.next_value_seed(CountOf)?,
                Some("prompt_tokens_details") => {
                    fields.prompt_cached = map.next_value_seed(Details)?;
                }
                Some("input_tokens_details") => {
                    fields.input_cached = map.next_value_seed(Details)?;
                }
                _ => {
                    map.next_value::<IgnoredAny>()?;
                }
            }
        }
        Ok(Member::Object(fields))
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Member, A::Error> {
        while seq.next_element::<IgnoredAny>()?.is_some() {}
        Ok(Member::Other)
    }

    fn visit_bool<E>(self, _: bool) -> Result<Member, E> {
        Ok(Member::Other)
    }

    fn visit_i64<E>(self, _: i64) -> Result<Member, E> {
        Ok(Member::Other)
    }

    fn visit_u64<E>(self, _: u64) -> Result<Member, E> {
        Ok(Member::Other)
    }

    fn visit_f64<E>(self, _: f64) -> Result<Member, E> {
        Ok(Member::Other)
    }

    fn visit_str<E>(self, _: &str) -> Result<Member, E> {
        Ok(Member::Other)
    }

    fn visit_unit<E>(self) -> Result<Member, E> {
        Ok(Member::Other)
    }
}

/// Reads a count's value: what `Value::as_u64` would make of it.
struct CountOf;

impl<'de> DeserializeSeed<'de> for CountOf {
    type Value = Count;

    fn deserialize<D: de::Deserializer<'de>>(self, d: D) -> Result<Count, D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for CountOf {
    type Value = Count;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a token count")
    }

    fn visit_u64<E>(self, n: u64) -> Result<Count, E> {
        Ok(Count::Stated(n))
    }

    fn visit_i64<E>(self, n: i64) -> Result<Count, E> {
        Ok(u64::try_from(n).map_or(Count::Unreadable, Count::Stated))
    }

    fn visit_f64<E>(self, _: f64) -> Result<Count, E> {
        Ok(Count::Unreadable)
    }

    fn visit_unit<E>(self) -> Result<Count, E> {
        Ok(Count::Absent)
    }

    fn visit_bool<E>(self, _: bool) -> Result<Count, E> {
        Ok(Count::Unreadable)
    }

    fn visit_str<E>(self, _: &str) -> Result<Count, E> {
        Ok(Count::Unreadable)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Count, A::Error> {
        while seq.next_element::<IgnoredAny>()?.is_some() {}
        Ok(Count::Unreadable)
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Count, A::Error> {
        while map.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
        Ok(Count::Unreadable)
    }
}

/// Reads a `*_tokens_details` value: its `cached_tokens` (the last, if repeated) when it
/// is an object holding a non-negative integer there, else `None`.
struct Details;

impl<'de> DeserializeSeed<'de> for Details {
    type Value = Option<u64>;

    fn deserialize<D: de::Deserializer<'de>>(self, d: D) -> Result<Option<u64>, D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for Details {
    type Value = Option<u64>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a usage details object")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Option<u64>, A::Error> {
        let mut cached = Count::Absent;
        while let Some(name) = map.next_key_seed(Wanted(&["cached_tokens"]))? {
            match name {
                Some(_) => cached = map.next_value_seed(CountOf)?,
                None => {
                    map.next_value::<IgnoredAny>()?;
                }
            }
        }
        Ok(match cached {
            Count::Stated(n) => Some(n),
            Count::Absent | Count::Unreadable => None,
        })
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Option<u64>, A::Error> {
        while seq.next_element::<IgnoredAny>()?.is_some() {}
        Ok(None)
    }

    fn visit_bool<E>(self, _: bool) -> Result<Option<u64>, E> {
        Ok(None)
    }

    fn visit_i64<E>(self, _: i64) -> Result<Option<u64>, E> {
        Ok(None)
    }

    fn visit_u64<E>(self, _: u64) -> Result<Option<u64>, E> {
        Ok(None)
    }

    fn visit_f64<E>(self, _: f64) -> Result<Option<u64>, E> {
        Ok(None)
    }

    fn visit_str<E>(self, _: &str) -> Result<Option<u64>, E> {
        Ok(None)
    }

    fn visit_unit<E>(self) -> Result<Option<u64>, E> {
        Ok(None)
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;
    use serde_json::{Value, json};

    use super::*;

    /// What `usage_from_json` read before: the `usage` member parsed into a `Value`,
    /// then read by `usage_from_value`.
    fn through_value(body: &[u8]) -> Option<Usage> {
        let v = crate::fields::pick(body, &["usage"])?;
        super::super::usage_from_value(v.get("usage")?)
    }

    /// Values a count may hold: mostly small counts, and every hostile kind.
    fn count_value() -> impl Strategy<Value = Value> {
        prop_oneof![
            8 => (0u64..1_000).prop_map(Value::from),
            1 => any::<u64>().prop_map(Value::from),
            1 => Just(Value::Null),
            1 => any::<bool>().prop_map(Value::Bool),
            1 => (i64::MIN..0).prop_map(Value::from),
            1 => any::<f64>().prop_map(|f| serde_json::Number::from_f64(f).map_or(Value::Null, Value::Number)),
            1 => "[a-z0-9]{0,4}".prop_map(Value::String),
            1 => Just(json!([1, {"cached_tokens": 2}])),
            1 => Just(json!({"cached_tokens": 2})),
        ]
    }

    /// Values a `*_tokens_details` member may hold: mostly objects with `cached_tokens`.
    fn details_value() -> impl Strategy<Value = Value> {
        prop_oneof![
            4 => prop::collection::vec(
                (prop::sample::select(vec!["cached_tokens", "cached_tokens", "x"]), count_value()),
                0..3,
            )
            .prop_map(|m| {
                let members: Vec<(String, String)> =
                    m.into_iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
                serde_json::from_str::<Value>(&object(&members)).unwrap_or(Value::Null)
            }),
            1 => count_value(),
        ]
    }

    /// A member of a `usage` object, written as text (so a repeat stays a repeat).
    fn usage_member() -> impl Strategy<Value = (String, String)> {
        let count = prop::sample::select(vec![
            "prompt_tokens",
            "input_tokens",
            "completion_tokens",
            "output_tokens",
            "total_tokens",
        ]);
        let details = prop::sample::select(vec!["prompt_tokens_details", "input_tokens_details"]);
        prop_oneof![
            3 => (count, count_value()).prop_map(|(k, v)| (k.to_string(), v.to_string())),
            1 => (details, details_value()).prop_map(|(k, v)| (k.to_string(), v.to_string())),
        ]
    }

    /// Writes `members` as a JSON object, repeats and all.
    fn object(members: &[(String, String)]) -> String {
        let inner: Vec<String> = members
            .iter()
            .map(|(k, v)| format!("{}:{v}", Value::String(k.clone())))
            .collect();
        format!("{{{}}}", inner.join(","))
    }

    proptest! {
        /// Every response reads as it read through a parsed `usage` value: the same usage
        /// or none, whatever its counts hold, repeated members included.
        #[test]
        fn reads_what_the_parsed_value_reads(
            usage in prop::collection::vec(usage_member(), 0..8),
            usage_is_object in prop::bool::weighted(0.9),
            other in count_value(),
            repeat in any::<bool>(),
        ) {
            let usage_text = if usage_is_object { object(&usage) } else { other.to_string() };
            let mut members = vec![
                ("id".to_string(), "\"chatcmpl-1\"".to_string()),
                ("choices".to_string(), json!([{"message": {"content": "hi \u{e9}"}}]).to_string()),
                ("usage".to_string(), usage_text),
            ];
            if repeat {
                members.insert(0, ("usage".to_string(), json!({"prompt_tokens": 1}).to_string()));
            }
            let body = object(&members);
            prop_assert_eq!(read(body.as_bytes()), through_value(body.as_bytes()), "{}", body);
        }
    }

    #[test]
    fn reads_counts_and_cached_tokens_and_refuses_what_cannot_be_read() {
        let read = |t: &str| read(t.as_bytes());
        assert_eq!(
            read(
                r#"{"usage":{"prompt_tokens":10,"completion_tokens":5,"prompt_tokens_details":{"cached_tokens":4}}}"#
            ),
            Some(Usage {
                input_tokens: 10,
                output_tokens: 5,
                cached_input_tokens: 4
            })
        );
        assert_eq!(
            read(
                r#"{"usage":{"input_tokens":10,"output_tokens":5,"input_tokens_details":{"cached_tokens":40}}}"#
            ),
            Some(Usage {
                input_tokens: 10,
                output_tokens: 5,
                cached_input_tokens: 10
            })
        );
        // A count that is not a non-negative integer: no usage (the call is estimated).
        for bad in [
            "-1",
            "1.5",
            "\"10\"",
            "true",
            "[1]",
            "{\"n\":1}",
            "18446744073709551616",
        ] {
            let body = format!(r#"{{"usage":{{"prompt_tokens":{bad},"completion_tokens":5}}}}"#);
            assert_eq!(read(&body), None, "{bad}");
            let body = format!(r#"{{"usage":{{"prompt_tokens":3,"output_tokens":{bad}}}}}"#);
            assert_eq!(read(&body), None, "{bad}");
        }
        // No input count, a usage that is not an object, no usage, not one JSON object.
        assert_eq!(read(r#"{"usage":{"completion_tokens":5}}"#), None);
        assert_eq!(read(r#"{"usage":[1,2]}"#), None);
        assert_eq!(read(r#"{"id":"x"}"#), None);
        assert_eq!(read(r#"{"usage":{"prompt_tokens":1}} {}"#), None);
        assert_eq!(read(r#"[{"usage":{"prompt_tokens":1}}]"#), None);
        assert_eq!(
            read("{\"usage\":{\"prompt_tokens\":1},\"x\":\"\u{fffd}\"}"),
            Some(Usage {
                input_tokens: 1,
                output_tokens: 0,
                cached_input_tokens: 0
            })
        );
        // A member not read is skipped as the parse before skipped it (an escape in it is
        // not decoded).
        let skipped = r#"{"usage":{"prompt_tokens":1},"x":"\ud800"}"#;
        assert_eq!(read(skipped), through_value(skipped.as_bytes()));
        // A body that is not UTF-8 is read from bytes, as before: a bad byte in a member
        // not read is skipped.
        let bytes = b"{\"x\":\"\xff\",\"usage\":{\"prompt_tokens\":1}}";
        assert_eq!(super::read(bytes), through_value(bytes));
        assert!(super::read(bytes).is_some());
        // The last of a repeated member counts; an escaped name is its decoded name.
        assert_eq!(
            read(
                r#"{"usage":{"prompt_tokens":1},"us\u0061ge":{"prompt_tokens":2,"prompt_tokens":3}}"#
            ),
            Some(Usage {
                input_tokens: 3,
                output_tokens: 0,
                cached_input_tokens: 0
            })
        );
    }
}
