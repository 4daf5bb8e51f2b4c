//! Typed fields of JSON request bodies, read the same way by every provider so every
//! provider refuses the same malformed input with the same error.

use serde_json::{Map, Value};

use crate::inspect::InspectError;

/// A required string field.
pub(crate) fn required_string(
    obj: &Map<String, Value>,
    field: &'static str,
) -> Result<String, InspectError> {
    match obj.get(field) {
        Some(Value::String(s)) => Ok(s.clone()),
        None | Some(Value::Null) => Err(InspectError::MissingField(field)),
        Some(_) => Err(InspectError::WrongType {
            field,
            expected: "a string",
        }),
    }
}

/// A required array of objects (such as `messages`).
pub(crate) fn required_objects(
    obj: &Map<String, Value>,
    field: &'static str,
) -> Result<(), InspectError> {
    match obj.get(field) {
        Some(Value::Array(items)) if items.iter().all(Value::is_object) => Ok(()),
        None | Some(Value::Null) => Err(InspectError::MissingField(field)),
        Some(_) => Err(InspectError::WrongType {
            field,
            expected: "an array of message objects",
        }),
    }
}

/// A required field holding a string or an array (such as `input`).
pub(crate) fn required_text_or_list(
    obj: &Map<String, Value>,
    field: &'static str,
) -> Result<(), InspectError> {
    match obj.get(field) {
        Some(Value::String(_) | Value::Array(_)) => Ok(()),
        None | Some(Value::Null) => Err(InspectError::MissingField(field)),
        Some(_) => Err(InspectError::WrongType {
            field,
            expected: "a string or an array",
        }),
    }
}

/// An optional non-negative integer at `key`, reported as `field` (which may be dotted).
pub(crate) fn optional_count(
    obj: &Map<String, Value>,
    key: &str,
    field: &'static str,
) -> Result<Option<u64>, InspectError> {
    match obj.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(v) => v.as_u64().map(Some).ok_or(InspectError::WrongType {
            field,
            expected: "a non-negative integer",
        }),
    }
}

/// The members of the JSON object `body` named in `names`, read in one pass that checks
/// the whole document and builds values only for those members (a response's `usage`,
/// not its generated text). `None` if `body` is not one well-formed JSON object.
pub(crate) fn pick(body: &[u8], names: &[&str]) -> Option<Map<String, Value>> {
    // One UTF-8 check of the whole body is cheaper than serde_json's check of each string
    // read from bytes; a body that is not UTF-8 is read as bytes (and refused there).
    match std::str::from_utf8(body) {
        Ok(text) => pick_from(serde_json::Deserializer::from_str(text), names),
        Err(_) => pick_from(serde_json::Deserializer::from_slice(body), names),
    }
}

/// [`pick`] from the one object `de` holds, then checks nothing follows it.
fn pick_from<'de, R: serde_json::de::Read<'de>>(
    mut de: serde_json::Deserializer<R>,
    names: &[&str],
) -> Option<Map<String, Value>> {
    use serde::de::DeserializeSeed;
    let picked = Pick(names).deserialize(&mut de).ok()?;
    de.end().ok()?;
    Some(picked)
}

/// Deserializes an object, keeping the members whose names it holds.
struct Pick<'n>(&'n [&'n str]);

impl<'de> serde::de::DeserializeSeed<'de> for Pick<'_> {
    type Value = Map<String, Value>;

    fn deserialize<D: serde::Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        d.deserialize_map(self)
    }
}

impl<'de> serde::de::Visitor<'de> for Pick<'_> {
    type Value = Map<String, Value>;

    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("a JSON object")
    }

    fn visit_map<A: serde::de::MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let mut out = Map::new();
        while let Some(wanted) = map.next_key_seed(Wanted(self.0))? {
            match wanted {
                Some(name) => {
                    // A repeated member replaces the earlier one, as in a parsed `Value`.
                    out.insert(name.to_string(), map.next_value::<Value>()?);
                }
                None => {
                    map.next_value::<serde::de::IgnoredAny>()?;
                }
            }
        }
        Ok(out)
    }
}

/// Reads a member name without keeping it: which of the wanted names it is, if any.
pub(crate) struct Wanted<'n>(pub(crate) &'n [&'n str]);

impl<'de, 'n> serde::de::DeserializeSeed<'de> for Wanted<'n> {
    type Value = Option<&'n str>;

    fn deserialize<D: serde::Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        d.deserialize_str(self)
    }
}

impl<'de, 'n> serde::de::Visitor<'de> for Wanted<'n> {
    type Value = Option<&'n str>;

    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("a member name")
    }

    fn visit_str<E: serde::de::Error>(self, name: &str) -> Result<Self::Value, E> {
        Ok(self.0.iter().copied().find(|n| *n == name))
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use proptest::prelude::*;
    use serde_json::json;

    use super::*;

    #[test]
    fn picks_only_the_named_top_level_members() {
        let body = br#"{"id":"x","choices":[{"usage":{"prompt_tokens":9}}],"usage":{"prompt_tokens":3},"type":"message"}"#;
        let picked = pick(body, &["usage", "type"]).unwrap();
        assert_eq!(
            Value::Object(picked),
            json!({"usage": {"prompt_tokens": 3}, "type": "message"})
        );
        assert!(pick(body, &["absent"]).unwrap().is_empty());
        // Escaped member names are read unescaped; a repeated member keeps the last value.
        let picked = pick(br#"{"us\u0061ge":1,"usage":2}"#, &["usage"]).unwrap();
        assert_eq!(picked.get("usage"), Some(&json!(2)));
    }

    #[test]
    fn anything_but_one_well_formed_object_is_refused() {
        for bad in [
            &b""[..],
            b"[]",
            b"[{\"usage\":1}]",
            b"\"usage\"",
            b"null",
            b"{\"usage\":1",
            b"{\"usage\":1} {}",
            b"{\"usage\":1} x",
            // Malformed inside a member that is skipped.
            b"{\"text\":[1,,2],\"usage\":1}",
            b"{\"text\":tru,\"usage\":1}",
        ] {
            assert_eq!(
                pick(bad, &["usage"]),
                None,
                "{}",
                String::from_utf8_lossy(bad)
            );
        }
        // Skipped strings are checked for JSON syntax, not UTF-8 (as serde_json skips
        // them); a picked string must be UTF-8.
        assert!(pick(b"{\"text\":\"\xff\",\"usage\":1}", &["usage"]).is_some());
        assert_eq!(pick(b"{\"usage\":\"\xff\"}", &["usage"]), None);
    }

    fn json_value() -> impl Strategy<Value = Value> {
        let leaf = prop_oneof![
            Just(Value::Null),
            any::<bool>().prop_map(Value::Bool),
            any::<i64>().prop_map(|n| json!(n)),
            "[a-z\"\\\\ \u{e9}]{0,8}".prop_map(Value::String),
        ];
        leaf.prop_recursive(3, 24, 4, |inner| {
            prop_oneof![
                prop::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
                prop::collection::btree_map("[a-z]{1,3}", inner, 0..4)
                    .prop_map(|m| Value::Object(m.into_iter().collect())),
            ]
        })
    }

    proptest! {
        /// Picking equals parsing the whole object and keeping the named members.
        #[test]
        fn picking_equals_parsing_then_filtering(
            members in prop::collection::btree_map("[a-z]{1,3}", json_value(), 0..6),
            names in prop::collection::vec("[a-z]{1,3}", 0..4),
        ) {
            let object: Map<String, Value> = members.into_iter().collect();
            let body = serde_json::to_vec(&object).unwrap();
            let names: Vec<&str> = names.iter().map(String::as_str).collect();
            let expected: Map<String, Value> = object
                .iter()
                .filter(|(k, _)| names.contains(&k.as_str()))
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect();
            prop_assert_eq!(pick(&body, &names), Some(expected));
        }

        /// Arbitrary bytes never panic.
        #[test]
        fn arbitrary_bytes_never_panic(body in prop::collection::vec(any::<u8>(), 0..200)) {
            let _ = pick(&body, &["usage"]);
        }
    }
}
