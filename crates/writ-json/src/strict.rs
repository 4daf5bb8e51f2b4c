//! The strict walk: one pass of serde_json's parser over a document with a visitor that
//! keeps only each open object's keys, refusing the first key seen twice.

use std::borrow::Cow;
use std::fmt;

use serde::de::{self, DeserializeSeed, MapAccess, SeqAccess, Visitor};

use crate::fold::{Folds, Keys};
use crate::path::{KeyPath, Segment};
use crate::{JsonError, MAX_DEPTH};

/// Checks that `bytes` are one JSON value with no key repeated in any object (keys
/// compared decoded, as upstreams compare them) and no deeper than [`MAX_DEPTH`].
///
/// Work is linear in `bytes.len()` and memory at most proportional to the number of keys
/// of the open objects; nothing is built from the values.
pub fn check(bytes: &[u8]) -> Result<(), JsonError> {
    let mut failure = None;
    let node = Node {
        depth: 0,
        failure: &mut failure,
    };
    // JSON is UTF-8 (RFC 8259 §8.1). Checking the whole document once is several times
    // cheaper than serde_json checking each string it reads from bytes; bytes that are
    // not UTF-8 go to the byte parser, which says where they fail.
    let walked = match std::str::from_utf8(bytes) {
        Ok(text) => walk(node, serde_json::Deserializer::from_str(text)),
        Err(_) => walk(node, serde_json::Deserializer::from_slice(bytes)),
    };
    match (walked, failure) {
        (Ok(()), _) => Ok(()),
        (Err(_), Some(Failure::Duplicate(path))) => Err(JsonError::DuplicateKey {
            path: KeyPath::from_leaf_first(path),
        }),
        (Err(_), Some(Failure::TooDeep)) => Err(JsonError::TooDeep),
        (Err(e), None) => Err(JsonError::Syntax(e)),
    }
}

/// Walks the one value `de` holds, then checks nothing follows it.
fn walk<'de, R: serde_json::de::Read<'de>>(
    node: Node<'_>,
    mut de: serde_json::Deserializer<R>,
) -> Result<(), serde_json::Error> {
    node.deserialize(&mut de)?;
    de.end()
}

/// Why the walk stopped, kept beside serde's opaque error so the caller gets a cause.
pub(crate) enum Failure {
    /// A repeated key; its path, leaf first, grown as the error unwinds.
    Duplicate(Vec<Segment>),
    TooDeep,
}

/// Walks one value `depth` containers down.
struct Node<'f> {
    depth: usize,
    failure: &'f mut Option<Failure>,
}

impl<'de> DeserializeSeed<'de> for Node<'_> {
    type Value = ();

    fn deserialize<D: de::Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_any(self)
    }
}

impl Node<'_> {
    /// The depth of a container opened here, or the error that stops the walk.
    fn open<E: de::Error>(&mut self) -> Result<usize, E> {
        let depth = self.depth + 1;
        if depth > MAX_DEPTH {
            *self.failure = Some(Failure::TooDeep);
            return Err(E::custom("nesting too deep"));
        }
        Ok(depth)
    }
}

impl<'de> Visitor<'de> for Node<'_> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("any JSON value")
    }

    fn visit_bool<E>(self, _: bool) -> Result<(), E> {
        Ok(())
    }

    fn visit_i64<E>(self, _: i64) -> Result<(), E> {
        Ok(())
    }

    fn visit_u64<E>(self, _: u64) -> Result<(), E> {
        Ok(())
    }

    fn visit_f64<E>(self, _: f64) -> Result<(), E> {
        Ok(())
    }

    fn visit_str<E>(self, _: &str) -> Result<(), E> {
        Ok(())
    }

    fn visit_unit<E>(self) -> Result<(), E> {
        Ok(())
    }

    fn visit_seq<A: SeqAccess<'de>>(mut self, seq: A) -> Result<(), A::Error> {
        let depth = self.open()?;
        check_elements(depth, self.failure, seq)
    }

    fn visit_map<A: MapAccess<'de>>(mut self, map: A) -> Result<(), A::Error> {
        let depth = self.open()?;
        check_members(depth, self.failure, map)
    }
}

/// Walks the elements of an array opened at `depth`, building nothing; a failure below
/// has the element's index added to its path.
pub(crate) fn check_elements<'de, A: SeqAccess<'de>>(
    depth: usize,
    failure: &mut Option<Failure>,
    mut seq: A,
) -> Result<(), A::Error> {
    let mut index = 0;
    loop {
        let element = Node {
            depth,
            failure: &mut *failure,
        };
        match seq.next_element_seed(element) {
            Ok(Some(())) => index += 1,
            Ok(None) => return Ok(()),
            Err(e) => {
                unwind(failure, Segment::Index(index));
                return Err(e);
            }
        }
    }
}

/// Walks the members of an object opened at `depth`, building nothing and refusing the
/// first key seen twice (decoded, or equal ignoring case); a failure below has the
/// member's key added to its path.
pub(crate) fn check_members<'de, A: MapAccess<'de>>(
    depth: usize,
    failure: &mut Option<Failure>,
    mut map: A,
) -> Result<(), A::Error> {
    let mut seen = Keys::new();
    let mut folds = Folds::default();
    while let Some(key) = map.next_key_seed(Key)? {
        if !seen.insert(key.clone()) || !folds.admit(&key, |f| seen.contains(f)) {
            *failure = Some(Failure::Duplicate(vec![Segment::Key(key.into_owned())]));
            return Err(de::Error::custom("duplicate key"));
        }
        let value = Node {
            depth,
            failure: &mut *failure,
        };
        if let Err(e) = map.next_value_seed(value) {
            unwind(failure, Segment::Key(key.into_owned()));
            return Err(e);
        }
    }
    Ok(())
}

/// Adds `step` to the path of a duplicate found below, as its error passes through.
pub(crate) fn unwind(failure: &mut Option<Failure>, step: Segment) {
    if let Some(Failure::Duplicate(path)) = failure {
        path.push(step);
    }
}

/// Reads an object key, borrowed from the document unless it had escapes to decode.
struct Key;

impl<'de> DeserializeSeed<'de> for Key {
    type Value = Cow<'de, str>;

    fn deserialize<D: de::Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        d.deserialize_str(self)
    }
}

impl<'de> Visitor<'de> for Key {
    type Value = Cow<'de, str>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("an object key")
    }

    fn visit_borrowed_str<E>(self, key: &'de str) -> Result<Self::Value, E> {
        Ok(Cow::Borrowed(key))
    }

    fn visit_str<E>(self, key: &str) -> Result<Self::Value, E> {
        Ok(Cow::Owned(key.to_owned()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn duplicate(json: &str) -> Option<String> {
        match check(json.as_bytes()) {
            Err(JsonError::DuplicateKey { path }) => Some(path.to_string()),
            Ok(()) => None,
            Err(e) => panic!("{json}: {e}"),
        }
    }

    #[test]
    fn accepts_documents_without_repeated_keys() {
        for json in [
            r#"{"model":"gpt-4o","messages":[{"role":"user","content":"hi"}]}"#,
            r#"[{"a":1},{"a":2}]"#,
            r#"{"a":{"b":1},"b":{"a":1}}"#,
            r#""text""#,
            "3.5",
            " null ",
        ] {
            assert_eq!(duplicate(json), None, "{json}");
        }
    }

    #[test]
    fn refuses_a_repeated_key_at_any_depth_naming_its_path() {
        assert_eq!(
            duplicate(r#"{"model":"gpt-4o","messages":[],"model":"gpt-4o-mini"}"#).as_deref(),
            Some("model")
        );
        assert_eq!(
            duplicate(
                r#"{"params":{"name":"t","arguments":{"flight":"LH999","x":1,"flight":"LH123"}}}"#
            )
            .as_deref(),
            Some("params.arguments.flight")
        );
        assert_eq!(
            duplicate(r#"{"messages":[{},{},{"role":"user","content":"a","content":"b"}]}"#)
                .as_deref(),
            Some("messages[2].content")
        );
        assert_eq!(
            duplicate(r#"[0,{"":1,"":2}]"#).as_deref(),
            Some(r#"[1][""]"#)
        );
    }

    #[test]
    fn keys_are_compared_decoded_as_upstreams_compare_them() {
        // `\u0064` is `d`: both keys are `model` to every parser that decodes them.
        assert_eq!(
            duplicate(r#"{"model":"a","mo\u0064el":"b"}"#).as_deref(),
            Some("model")
        );
        assert_eq!(
            duplicate(r#"{"a\/b":1,"a/b":2}"#).as_deref(),
            Some(r#"["a/b"]"#)
        );
        // Go's encoding/json (and case-insensitive .NET readers) match keys ignoring
        // case: `MODEL` sets the same field as `model` there, last one winning.
        assert_eq!(
            duplicate(r#"{"model":"gpt-4o-mini","MODEL":"gpt-4o"}"#).as_deref(),
            Some("MODEL")
        );
        assert_eq!(
            duplicate(r#"{"Flight":"LH123","x":1,"fLIGHT":"LH999"}"#).as_deref(),
            Some("fLIGHT")
        );
        assert_eq!(
            duplicate(r#"{"key":1,"\u212aey":2}"#).as_deref(),
            Some("[\"\u{212A}ey\"]")
        );
        // Distinct keys stay distinct.
        assert_eq!(
            duplicate(r#"{"model":1,"models":2,"model\u0000":3,"mödel":4}"#),
            None
        );
    }

    #[test]
    fn an_object_with_many_keys_is_checked_through_a_set() {
        let mut json = String::from("{");
        for i in 0..10_000 {
            json.push_str(&format!("\"k{i}\":{i},"));
        }
        json.push_str("\"k9999\":0}");
        assert_eq!(duplicate(&json).as_deref(), Some("k9999"));
        json.truncate(json.len() - "\"k9999\":0}".len() - 1);
        json.push('}');
        assert_eq!(duplicate(&json), None);
    }

    #[test]
    fn refuses_nesting_deeper_than_the_limit() {
        let deep = |n: usize| format!("{}{}", "[".repeat(n), "]".repeat(n));
        assert!(check(deep(MAX_DEPTH).as_bytes()).is_ok());
        assert!(matches!(
            check(deep(MAX_DEPTH + 1).as_bytes()),
            Err(JsonError::TooDeep)
        ));
        let objects = format!("{}1{}", r#"{"a":"#.repeat(5000), "}".repeat(5000));
        assert!(matches!(check(objects.as_bytes()), Err(JsonError::TooDeep)));
    }

    #[test]
    fn refuses_what_is_not_one_json_value() {
        for bad in [
            "",
            "{",
            r#"{"a":1} {"a":2}"#,
            r#"{"a":1,}"#,
            "{'a':1}",
            r#"{"a":"\ud800"}"#,
        ] {
            assert!(
                matches!(check(bad.as_bytes()), Err(JsonError::Syntax(_))),
                "{bad}"
            );
        }
    }
}
