//! Strict parsing into a `serde_json::Value`: the duplicate-key check done while the
//! value is built, for callers that build one anyway (at no extra pass).

use std::fmt;

use serde::de::{self, DeserializeSeed, MapAccess, SeqAccess, Visitor};
use serde_json::{Map, Number, Value};

use crate::fold::Folds;
use crate::path::{KeyPath, Segment};
use crate::strict::Failure;
use crate::{JsonError, MAX_DEPTH};

/// Parses `bytes` as one JSON value, refusing what [`check`](crate::check) refuses (a
/// key repeated in any object, compared decoded; nesting deeper than [`MAX_DEPTH`]), in
/// the same single pass that builds the value.
pub fn value(bytes: &[u8]) -> Result<Value, JsonError> {
    let mut failure = None;
    let build = Build {
        depth: 0,
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
    build: Build<'_>,
    mut de: serde_json::Deserializer<R>,
) -> Result<Value, serde_json::Error> {
    let value = build.deserialize(&mut de)?;
    de.end()?;
    Ok(value)
}

/// Builds one value `depth` containers down.
struct Build<'f> {
    depth: usize,
    failure: &'f mut Option<Failure>,
}

impl<'de> DeserializeSeed<'de> for Build<'_> {
    type Value = Value;

    fn deserialize<D: de::Deserializer<'de>>(self, d: D) -> Result<Value, D::Error> {
        d.deserialize_any(self)
    }
}

impl Build<'_> {
    fn open<E: de::Error>(&mut self) -> Result<usize, E> {
        let depth = self.depth + 1;
        if depth > MAX_DEPTH {
            *self.failure = Some(Failure::TooDeep);
            return Err(E::custom("nesting too deep"));
        }
        Ok(depth)
    }

    fn unwind(&mut self, step: Segment) {
        if let Some(Failure::Duplicate(path)) = self.failure {
            path.push(step);
        }
    }
}

impl<'de> Visitor<'de> for Build<'_> {
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
        Ok(Value::String(s.to_owned()))
    }

    fn visit_string<E>(self, s: String) -> Result<Value, E> {
        Ok(Value::String(s))
    }

    fn visit_unit<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }

    fn visit_seq<A: SeqAccess<'de>>(mut self, mut seq: A) -> Result<Value, A::Error> {
        let depth = self.open()?;
        let mut items = Vec::new();
        loop {
            let element = Build {
                depth,
                failure: &mut *self.failure,
            };
            match seq.next_element_seed(element) {
                Ok(Some(v)) => items.push(v),
                Ok(None) => return Ok(Value::Array(items)),
                Err(e) => {
                    self.unwind(Segment::Index(items.len()));
                    return Err(e);
                }
            }
        }
    }

    fn visit_map<A: MapAccess<'de>>(mut self, mut map: A) -> Result<Value, A::Error> {
        let depth = self.open()?;
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
            let element = Build {
                depth,
                failure: &mut *self.failure,
            };
            match map.next_value_seed(element) {
                Ok(v) => {
                    slot.insert(v);
                }
                Err(e) => {
                    let key = slot.key().clone();
                    self.unwind(Segment::Key(key));
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
