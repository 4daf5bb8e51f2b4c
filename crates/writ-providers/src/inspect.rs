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

/// The request field that states the output cap, as the caller's API spells it: the one
/// the body used, or the API's own when the body has none. Used to tell a caller which
/// field to change; a body that is not JSON gets the API's field.
pub(crate) fn output_cap_field(
    family: crate::route::Wire,
    operation: crate::Operation,
    body: &[u8],
) -> &'static str {
    use crate::route::{Operation as O, Wire as F};
    let fields: &[&'static str] = match (family, operation) {
        (F::OpenAi | F::Azure, O::Responses) => &["max_output_tokens"],
        (F::OpenAi | F::Azure, _) => &["max_completion_tokens", "max_tokens"],
        (F::Anthropic, _) => &["max_tokens"],
        (F::Gemini | F::Vertex, _) => &["generationConfig.maxOutputTokens"],
        (F::Bedrock, _) => &[
            "inferenceConfig.maxTokens",
            "max_tokens",
            "max_gen_len",
            "textGenerationConfig.maxTokenCount",
        ],
        (F::Mcp | F::Http, _) => &["max_output_tokens"],
    };
    let value: Option<serde_json::Value> = serde_json::from_slice(body).ok();
    let present = |field: &str| {
        value.as_ref().is_some_and(|v| {
            field
                .split('.')
                .try_fold(v, |v, key| v.get(key))
                .is_some_and(|v| !v.is_null())
        })
    };
    if fields == ["max_completion_tokens", "max_tokens"]
        && present("max_completion_tokens")
        && present("max_tokens")
    {
        return "max_completion_tokens and max_tokens";
    }
    fields
        .iter()
        .copied()
        .find(|f| present(f))
        .unwrap_or(fields[0])
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Operation;
    use crate::route::Wire;

    #[test]
    fn the_cap_field_is_the_one_the_caller_used() {
        let chat = |body: &str| output_cap_field(Wire::OpenAi, Operation::Chat, body.as_bytes());
        assert_eq!(chat(r#"{"max_tokens":9}"#), "max_tokens");
        assert_eq!(
            chat(r#"{"max_completion_tokens":9}"#),
            "max_completion_tokens"
        );
        assert_eq!(chat(r#"{}"#), "max_completion_tokens");
        assert_eq!(
            chat(r#"{"max_tokens":9,"max_completion_tokens":9}"#),
            "max_completion_tokens and max_tokens"
        );
        assert_eq!(
            output_cap_field(Wire::OpenAi, Operation::Responses, b"{}"),
            "max_output_tokens"
        );
        assert_eq!(
            output_cap_field(Wire::Anthropic, Operation::Chat, b"not json"),
            "max_tokens"
        );
        assert_eq!(
            output_cap_field(Wire::Gemini, Operation::Chat, b"{}"),
            "generationConfig.maxOutputTokens"
        );
        assert_eq!(
            output_cap_field(Wire::Bedrock, Operation::Chat, br#"{"max_gen_len":3}"#),
            "max_gen_len"
        );
    }
}
