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
