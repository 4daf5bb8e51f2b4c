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
