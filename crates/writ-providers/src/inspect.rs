//! Request facts read from a body: the shared result type and its errors.

/// What inspecting a request body found.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Inspected {
    /// Model named in the body.
    pub model: Option<String>,
    /// The output-token cap the request states.
    pub max_output_tokens: Option<u64>,
    /// Whether the client asked for a streamed response.
    pub stream: bool,
    /// Whether a streamed response should end with a usage chunk.
    pub include_usage: bool,
    /// The body was read whole as strict JSON (a repeated key or too deep a nesting
    /// refused), so it need not be checked again.
    pub body_checked: bool,
}

/// Why a request body was refused before it reached an upstream.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum InspectError {
    /// The body is not JSON.
    #[error("request body is not valid JSON")]
    NotJson,
    /// The body is JSON but not an object.
    #[error("request body must be a JSON object")]
    NotObject,
    /// An object in the body holds a key twice: the gateway and the upstream could read
    /// different copies.
    #[error(
        "the request body has the key `{path}` more than once in one object (keys compared ignoring case, as some parsers do); send each key once, as parsers disagree on which copy counts"
    )]
    DuplicateKey {
        /// The repeated key's path from the body's root.
        path: writ_json::KeyPath,
    },
    /// Arrays and objects nest deeper than [`writ_json::MAX_DEPTH`].
    #[error(
        "the request body nests JSON deeper than {} levels",
        writ_json::MAX_DEPTH
    )]
    TooDeep,
    /// A required field is absent.
    #[error("missing required field `{0}`")]
    MissingField(&'static str),
    /// A field has the wrong JSON type.
    #[error("field `{field}` must be {expected}")]
    WrongType {
        /// Field name (dotted for nested fields).
        field: &'static str,
        /// What was expected, in words.
        expected: &'static str,
    },
}

impl InspectError {
    /// The request field the error is about, for the `param` of an OpenAI error.
    pub fn param(&self) -> Option<&'static str> {
        match self {
            InspectError::MissingField(f) => Some(f),
            InspectError::WrongType { field, .. } => Some(field),
            _ => None,
        }
    }
}
