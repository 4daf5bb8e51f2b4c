//! Request-body checks, as the providers make them: written here rather than borrowed from
//! the gateway's own inspection, so a body the gateway wrongly lets through is refused by
//! the mock as the real provider would refuse it.

use serde_json::{Map, Value};

/// A request the mock refuses as the provider would: status 400 with this message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rejection {
    /// Human-readable reason.
    pub message: String,
    /// The offending field, if any (dotted for nested fields).
    pub param: Option<String>,
}

impl Rejection {
    /// A refusal about `field`.
    pub(crate) fn field(field: &str, message: impl Into<String>) -> Self {
        Self {
            message: message.into(),
            param: Some(field.to_string()),
        }
    }

    fn missing(field: &str) -> Self {
        Self::field(field, format!("missing required parameter: '{field}'"))
    }

    fn wrong_type(field: &str, expected: &str) -> Self {
        Self::field(
            field,
            format!("invalid type for '{field}': expected {expected}"),
        )
    }
}

/// The body as a JSON object; anything else is refused.
pub(crate) fn object(body: &[u8]) -> Result<Map<String, Value>, Rejection> {
    match serde_json::from_slice::<Value>(body) {
        Ok(Value::Object(map)) => Ok(map),
        Ok(_) => Err(Rejection {
            message: "the request body must be a JSON object".into(),
            param: None,
        }),
        Err(_) => Err(Rejection {
            message: "the request body is not valid JSON".into(),
            param: None,
        }),
    }
}

/// A required string member.
pub(crate) fn string<'a>(obj: &'a Map<String, Value>, field: &str) -> Result<&'a str, Rejection> {
    match obj.get(field) {
        Some(Value::String(s)) => Ok(s),
        None | Some(Value::Null) => Err(Rejection::missing(field)),
        Some(_) => Err(Rejection::wrong_type(field, "a string")),
    }
}

/// A required, non-empty array of objects (such as `messages`).
pub(crate) fn objects<'a>(
    obj: &'a Map<String, Value>,
    field: &str,
) -> Result<&'a [Value], Rejection> {
    match obj.get(field) {
        Some(Value::Array(items)) if items.is_empty() => Err(Rejection::field(
            field,
            format!("'{field}' must contain at least one item"),
        )),
        Some(Value::Array(items)) if items.iter().all(Value::is_object) => Ok(items),
        None | Some(Value::Null) => Err(Rejection::missing(field)),
        Some(_) => Err(Rejection::wrong_type(field, "an array of objects")),
    }
}

/// A required member holding a string or a non-empty array (such as `input`).
pub(crate) fn text_or_list<'a>(
    obj: &'a Map<String, Value>,
    field: &str,
) -> Result<&'a Value, Rejection> {
    match obj.get(field) {
        Some(Value::Array(items)) if items.is_empty() => Err(Rejection::field(
            field,
            format!("'{field}' must not be empty"),
        )),
        Some(v @ (Value::String(_) | Value::Array(_))) => Ok(v),
        None | Some(Value::Null) => Err(Rejection::missing(field)),
        Some(_) => Err(Rejection::wrong_type(field, "a string or an array")),
    }
}

/// An optional non-negative integer at `path` (dot-separated members).
pub(crate) fn count(obj: &Map<String, Value>, path: &str) -> Result<Option<u64>, Rejection> {
    match lookup(obj, path) {
        None | Some(Value::Null) => Ok(None),
        Some(v) => v
            .as_u64()
            .map(Some)
            .ok_or_else(|| Rejection::wrong_type(path, "a non-negative integer")),
    }
}

/// An optional boolean at `path` (dot-separated members).
pub(crate) fn flag(obj: &Map<String, Value>, path: &str) -> Result<Option<bool>, Rejection> {
    match lookup(obj, path) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Bool(b)) => Ok(Some(*b)),
        Some(_) => Err(Rejection::wrong_type(path, "a boolean")),
    }
}

fn lookup<'a>(obj: &'a Map<String, Value>, path: &str) -> Option<&'a Value> {
    let mut parts = path.split('.');
    let first = obj.get(parts.next()?)?;
    parts.try_fold(first, |v, key| v.get(key))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn obj(text: &str) -> Map<String, Value> {
        object(text.as_bytes()).unwrap()
    }

    #[test]
    fn refuses_what_is_not_an_object() {
        assert_eq!(object(b"[1]").unwrap_err().param, None);
        assert!(object(b"{").unwrap_err().message.contains("not valid JSON"));
    }

    #[test]
    fn names_the_field_it_refuses() {
        let o = obj(
            r#"{"model":1,"messages":[],"input":{},"max_tokens":-1,"stream":"yes","a":{"b":"x"}}"#,
        );
        assert_eq!(
            string(&o, "model").unwrap_err().param.as_deref(),
            Some("model")
        );
        assert_eq!(
            string(&o, "nope").unwrap_err().param.as_deref(),
            Some("nope")
        );
        assert_eq!(
            objects(&o, "messages").unwrap_err().param.as_deref(),
            Some("messages")
        );
        assert!(text_or_list(&o, "input").is_err());
        assert!(count(&o, "max_tokens").is_err());
        assert!(flag(&o, "stream").is_err());
        assert_eq!(flag(&o, "a.b").unwrap_err().param.as_deref(), Some("a.b"));
        assert_eq!(count(&o, "absent.path").unwrap(), None);
    }

    #[test]
    fn reads_what_is_well_formed() {
        let o = obj(
            r#"{"model":"m","messages":[{"role":"user"}],"input":"x","max_tokens":3,"o":{"f":true}}"#,
        );
        assert_eq!(string(&o, "model").unwrap(), "m");
        assert_eq!(objects(&o, "messages").unwrap().len(), 1);
        assert_eq!(text_or_list(&o, "input").unwrap(), "x");
        assert_eq!(count(&o, "max_tokens").unwrap(), Some(3));
        assert_eq!(flag(&o, "o.f").unwrap(), Some(true));
    }
}
