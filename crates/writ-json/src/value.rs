//! Strict parsing into a `serde_json::Value`: the duplicate-key check done while the
//! value is built, for callers that build one anyway (at no extra pass); and the same
//! check building only an outline of the document, for callers that read a few members.

use std::fmt;

use serde::de::{self, DeserializeSeed, MapAccess, SeqAccess, Visitor};
use serde_json::{Map, Number, Value};

use crate::fold::Folds;
use crate::path::{KeyPath, Segment};
use crate::strict::{Failure, check_elements, check_members, unwind};
use crate::{JsonError, MAX_DEPTH};

/// Parses `bytes` as one JSON value, refusing what [`check`](crate::check) refuses (a
/// key repeated in any object, compared decoded; nesting deeper than [`MAX_DEPTH`]), in
/// the same single pass that builds the value.
pub fn value(bytes: &[u8]) -> Result<Value, JsonError> {
    parse(bytes, Part::Whole)
}

/// Checks `bytes` as [`check`](crate::check) does and, in the same pass, builds an
/// outline of the document: for a request's inspection, which reads a few members of
/// the top-level object and only the JSON types of the rest (`messages`, a prompt).
///
/// - A member of the top-level object whose key is in `keep` (compared decoded, exactly)
///   is built whole, as [`value`] builds it.
/// - Every other value keeps its JSON type and no more: strings are empty, objects
///   empty, and an array holds its elements' outlines, each an empty string, object or
///   array, or the number, boolean or null it was (`[{}, {}]` for two messages). Nothing
///   below an array's elements is built.
///
/// Refuses exactly what [`value`] and [`check`](crate::check) refuse, with the same
/// duplicate's path.
pub fn outline(bytes: &[u8], keep: &[&str]) -> Result<Value, JsonError> {
    parse(bytes, Part::Root(keep))
}

/// Parses `bytes` into `part` of its value, mapping why it stopped.
fn parse(bytes: &[u8], part: Part<'_>) -> Result<Value, JsonError> {
    let mut failure = None;
    let build = Build {
        depth: 0,
        part,
        failure: &mut failure,
    };
    // As in `check`: one UTF-8 check of the whole document is cheaper than one per string.
    let built = match std::str::from_utf8(bytes) {
        Ok(text) => build_from(build, serde_json::Deserializer::from_str(text)),
        Err(_) => build_from(build, serde_json::Deserializer::from_slice(bytes)),
    };
    match (built, failure) {
        (Ok(v), _) => Ok(v),
        (Err(_), Some(Failure::Duplicate(path))) => Err(JsonError::DuplicateKey {
            path: KeyPath::from_leaf_first(path),
        }),
        (Err(_), Some(Failure::TooDeep)) => Err(JsonError::TooDeep),
        (Err(e), None) => Err(JsonError::Syntax(e)),
    }
}

/// Builds the one value `de` holds, then checks nothing follows it.
fn build_from<'de, R: serde_json::de::Read<'de>>(
    build: Build<'_, '_>,
    mut de: serde_json::Deserializer<R>,
) -> Result<Value, serde_json::Error> {
    let value = build.deserialize(&mut de)?;
    de.end()?;
    Ok(value)
}

/// How much of a value is built.
#[derive(Clone, Copy)]
enum Part<'k> {
    /// All of it.
    Whole,
    /// The document's root in an [`outline`]: a top-level object's members named here
    /// whole, every other member as a [`Part::Shape`].
    Root(&'k [&'k str]),
    /// Its JSON type, and an array's elements as [`Part::Type`].
    Shape,
    /// Its JSON type only: a container is checked and left empty.
    Type,
}

/// Builds `part` of one value `depth` containers down.
struct Build<'f, 'k> {
    depth: usize,
    part: Part<'k>,
    failure: &'f mut Option<Failure>,
}

impl<'de> DeserializeSeed<'de> for Build<'_, '_> {
    type Value = Value;

    fn deserialize<D: de::Deserializer<'de>>(self, d: D) -> Result<Value, D::Error> {
        d.deserialize_any(self)
    }
}

impl<'k> Build<'_, 'k> {
    fn open<E: de::Error>(&mut self) -> Result<usize, E> {
        let depth = self.depth + 1;
        if depth > MAX_DEPTH {
            *self.failure = Some(Failure::TooDeep);
            return Err(E::custom("nesting too deep"));
        }
        Ok(depth)
    }

    /// The builder of a child `depth` down, building `part` of it.
    fn child(&mut self, depth: usize, part: Part<'k>) -> Build<'_, 'k> {
        Build {
            depth,
            part,
            failure: &mut *self.failure,
        }
    }
}

impl<'de> Visitor<'de> for Build<'_, '_> {
    type Value = Value;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("any JSON value")
    }

    fn visit_bool<E>(self, b: bool) -> Result<Value, E> {
        Ok(Value::Bool(b))
    }

    fn visit_i64<E>(self, n: i64) -> Result<Value, E> {
        Ok(Value::Number(n.into()))
    }

    fn visit_u64<E>(self, n: u64) -> Result<Value, E> {
        Ok(Value::Number(n.into()))
    }

    fn visit_f64<E>(self, n: f64) -> Result<Value, E> {
        // serde_json parses no NaN or infinity, so this is always a number.
        Ok(Number::from_f64(n).map_or(Value::Null, Value::Number))
    }

    fn visit_str<E>(self, s: &str) -> Result<Value, E> {
        Ok(Value::String(match self.part {
            Part::Whole => s.to_owned(),
            Part::Root(_) | Part::Shape | Part::Type => String::new(),
        }))
    }

    fn visit_string<E>(self, s: String) -> Result<Value, E> {
        Ok(Value::String(match self.part {
            Part::Whole => s,
            Part::Root(_) | Part::Shape | Part::Type => String::new(),
        }))
    }

    fn visit_unit<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }

    fn visit_seq<A: SeqAccess<'de>>(mut self, mut seq: A) -> Result<Value, A::Error> {
        let depth = self.open()?;
        let element_part = match self.part {
            Part::Whole => Part::Whole,
            Part::Root(_) | Part::Shape => Part::Type,
            Part::Type => {
                check_elements(depth, self.failure, seq)?;
                return Ok(Value::Array(Vec::new()));
            }
        };
        let mut items = Vec::new();
        loop {
            let element = self.child(depth, element_part);
            match seq.next_element_seed(element) {
                Ok(Some(v)) => items.push(v),
                Ok(None) => return Ok(Value::Array(items)),
                Err(e) => {
                    unwind(self.failure, Segment::Index(items.len()));
                    return Err(e);
                }
            }
        }
    }

    fn visit_map<A: MapAccess<'de>>(mut self, mut map: A) -> Result<Value, A::Error> {
        let depth = self.open()?;
        let keep = match self.part {
            Part::Whole => None,
            Part::Root(keep) => Some(keep),
            Part::Shape | Part::Type => {
                check_members(depth, self.failure, map)?;
                return Ok(Value::Object(Map::new()));
            }
        };
        let mut out = Map::new();
        let mut folds = Folds::default();
        while let Some(key) = map.next_key::<String>()? {
            if !folds.admit(&key, |f| out.contains_key(f)) {
                *self.failure = Some(Failure::Duplicate(vec![Segment::Key(key)]));
                return Err(de::Error::custom("duplicate key"));
            }
            // The map is the set of keys seen: one lookup per key, which inserting needed.
            let slot = match out.entry(key) {
                serde_json::map::Entry::Vacant(slot) => slot,
                serde_json::map::Entry::Occupied(seen) => {
                    let key = seen.key().clone();
                    *self.failure = Some(Failure::Duplicate(vec![Segment::Key(key)]));
                    return Err(de::Error::custom("duplicate key"));
                }
            };
            let part = match keep {
                None => Part::Whole,
                Some(keep) if keep.contains(&slot.key().as_str()) => Part::Whole,
                Some(_) => Part::Shape,
            };
            let element = self.child(depth, part);
            match map.next_value_seed(element) {
                Ok(v) => {
                    slot.insert(v);
                }
                Err(e) => {
                    let key = slot.key().clone();
                    unwind(self.failure, Segment::Key(key));
                    return Err(e);
                }
            }
        }
        Ok(Value::Object(out))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::check;
    use proptest::prelude::*;

    /// JSON values with short keys from a small alphabet, so that keys equal ignoring
    /// case (and, once text is spliced, exactly) come up often.
    fn json() -> impl Strategy<Value = Value> {
        let leaf = prop_oneof![
            Just(Value::Null),
            any::<bool>().prop_map(Value::Bool),
            any::<i64>().prop_map(|n| Value::Number(n.into())),
            "[a-cA-C\\n\"é]{0,4}".prop_map(Value::String),
        ];
        leaf.prop_recursive(5, 48, 6, |inner| {
            prop_oneof![
                prop::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
                prop::collection::vec(("[a-bA-B]{1,2}", inner), 0..6)
                    .prop_map(|members| Value::Object(members.into_iter().collect())),
            ]
        })
    }

    proptest! {
        /// `value` and `check` agree on every document, with the same path for a
        /// duplicate; what they accept parses to what serde_json builds.
        #[test]
        fn value_and_check_agree_and_match_serde_json(v in json(), splice in any::<bool>()) {
            let mut text = v.to_string();
            if splice {
                // Repeat the first member of the outermost object, exactly.
                if let Some(Value::Object(m)) = Some(&v)
                    && let Some((k, x)) = m.iter().next()
                {
                    text.insert_str(1, &format!("{}:{x},", Value::String(k.clone())));
                }
            }
            let built = value(text.as_bytes());
            let checked = check(text.as_bytes());
            match (&built, &checked) {
                (Ok(built), Ok(())) => {
                    prop_assert_eq!(built, &serde_json::from_str::<Value>(&text).unwrap());
                }
                (Err(JsonError::DuplicateKey { path: a }), Err(JsonError::DuplicateKey { path: b })) => {
                    prop_assert_eq!(a, b);
                }
                _ => prop_assert!(false, "{text}: {built:?} / {checked:?}"),
            }
        }
    }

    /// The outline of `v` as [`outline`] documents it, computed from a built value.
    fn outline_of(v: &Value, keep: &[&str]) -> Value {
        fn kind(v: &Value) -> Value {
            match v {
                Value::String(_) => Value::String(String::new()),
                Value::Array(_) => Value::Array(Vec::new()),
                Value::Object(_) => Value::Object(Map::new()),
                other => other.clone(),
            }
        }
        fn shape(v: &Value) -> Value {
            match v {
                Value::Array(items) => Value::Array(items.iter().map(kind).collect()),
                other => kind(other),
            }
        }
        match v {
            Value::Object(members) => Value::Object(
                members
                    .iter()
                    .map(|(k, x)| {
                        let x = if keep.contains(&k.as_str()) {
                            x.clone()
                        } else {
                            shape(x)
                        };
                        (k.clone(), x)
                    })
                    .collect(),
            ),
            other => shape(other),
        }
    }

    proptest! {
        /// `outline` accepts and refuses what `check` does, with the same duplicate's
        /// path, and builds the documented outline of what serde_json builds.
        #[test]
        fn outline_checks_as_check_does_and_builds_the_outline(
            v in json(),
            splice in any::<bool>(),
            keep in prop::collection::vec("[a-bA-B]{1,2}", 0..3),
        ) {
            let mut text = v.to_string();
            // Repeat the last member of the outermost object, exactly, at its start.
            if splice
                && let Value::Object(m) = &v
                && let Some((k, x)) = m.iter().next_back()
            {
                text.insert_str(1, &format!("{}:{x},", Value::String(k.clone())));
            }
            let keep: Vec<&str> = keep.iter().map(String::as_str).collect();
            let outlined = outline(text.as_bytes(), &keep);
            match (&outlined, &check(text.as_bytes())) {
                (Ok(outlined), Ok(())) => {
                    let built = serde_json::from_str::<Value>(&text).unwrap();
                    prop_assert_eq!(outlined, &outline_of(&built, &keep));
                }
                (Err(JsonError::DuplicateKey { path: a }), Err(JsonError::DuplicateKey { path: b })) => {
                    prop_assert_eq!(a, b);
                }
                (o, c) => prop_assert!(false, "{text}: {o:?} / {c:?}"),
            }
        }
    }

    #[test]
    fn an_outline_keeps_the_named_members_and_the_types_of_the_rest() {
        let chat = br#"{"model":"gpt-4o","messages":[{"role":"user","content":"a long prompt"},{"role":"assistant","content":[{"type":"text"}]}],"max_tokens":9,"stream_options":{"include_usage":true},"stop":["x",["y"]],"user":"u"}"#;
        assert_eq!(
            outline(chat, &["model", "stream_options"]).unwrap(),
            serde_json::json!({
                "model": "gpt-4o",
                "messages": [{}, {}],
                "max_tokens": 9,
                "stream_options": {"include_usage": true},
                "stop": ["", []],
                "user": "",
            })
        );
        // Keys are compared decoded; a document that is not an object is outlined whole.
        assert_eq!(
            outline(br#"{"mo\u0064el":"m"}"#, &["model"]).unwrap(),
            serde_json::json!({"model": "m"})
        );
        assert_eq!(
            outline(br#"[{"a":1},"s",2]"#, &["a"]).unwrap(),
            serde_json::json!([{}, "", 2])
        );
    }

    #[test]
    fn an_outline_refuses_what_check_refuses_in_the_parts_it_does_not_build() {
        let dup = |t: &str| match outline(t.as_bytes(), &["model"]) {
            Err(JsonError::DuplicateKey { path }) => path.to_string(),
            other => panic!("{t}: {other:?}"),
        };
        assert_eq!(
            dup(r#"{"model":"a","messages":[{"role":"user","content":"x","CONTENT":"y"}]}"#),
            "messages[0].CONTENT"
        );
        assert_eq!(dup(r#"{"m":[[{"a":{"b":1,"b":2}}]]}"#), "m[0][0].a.b");
        assert_eq!(dup(r#"{"o":{"x":{"y":1,"y":1}}}"#), "o.x.y");
        assert_eq!(dup(r#"{"model":"a","MODEL":"b"}"#), "MODEL");
        let deep = format!(
            r#"{{"messages":{}{}}}"#,
            "[".repeat(MAX_DEPTH),
            "]".repeat(MAX_DEPTH)
        );
        assert!(matches!(
            outline(deep.as_bytes(), &[]),
            Err(JsonError::TooDeep)
        ));
        assert!(matches!(
            outline(br#"{"messages":[{"content":"\ud800"}]}"#, &[]),
            Err(JsonError::Syntax(_))
        ));
        assert!(matches!(
            outline(b"{\"a\":[1,]}", &[]),
            Err(JsonError::Syntax(_))
        ));
    }

    #[test]
    fn builds_what_serde_json_builds() {
        let text =
            r#"{"a":[1,-2,3.5,"x\n",true,null,{"b":{}}],"c":"\u00e9","big":18446744073709551615}"#;
        assert_eq!(
            value(text.as_bytes()).unwrap(),
            serde_json::from_str::<Value>(text).unwrap()
        );
    }

    #[test]
    fn refuses_what_check_refuses() {
        let dup = |t: &str| match value(t.as_bytes()) {
            Err(JsonError::DuplicateKey { path }) => path.to_string(),
            other => panic!("{t}: {other:?}"),
        };
        assert_eq!(dup(r#"{"model":"a","mo\u0064el":"b"}"#), "model");
        assert_eq!(dup(r#"{"m":[{},{"x":1,"y":{"z":1,"z":2}}]}"#), "m[1].y.z");
        assert_eq!(dup(r#"{"model":"a","MODEL":"b"}"#), "MODEL");
        assert_eq!(dup(r#"{"Model":"a","model":"b"}"#), "model");
        assert_eq!(dup(r#"{"maxTokens":1,"maxtokens":2}"#), "maxtokens");
        assert!(value(r#"{"mödel":1,"model":2,"é":3}"#.as_bytes()).is_ok());
        let deep = format!("{}{}", "[".repeat(MAX_DEPTH + 1), "]".repeat(MAX_DEPTH + 1));
        assert!(matches!(value(deep.as_bytes()), Err(JsonError::TooDeep)));
        assert!(matches!(value(b"{\"a\":1} x"), Err(JsonError::Syntax(_))));
    }
}
