//! OpenAI: chat-completion request inspection and Bearer credential injection.

use http::HeaderValue;
use http::header::{AUTHORIZATION, HeaderName};
use serde_json::{Map, Value};

use crate::inspect::{InspectError, Inspected};
use crate::route::Operation;
use crate::secret::UpstreamSecret;

/// Reads the request facts of an OpenAI-style request body for `operation`.
pub fn inspect(operation: Operation, body: &[u8]) -> Result<Inspected, InspectError> {
    match operation {
        Operation::Chat => inspect_chat(body),
        Operation::Mcp | Operation::Http => Ok(Inspected::default()),
    }
}

/// Parses a body as a JSON object.
pub(crate) fn json_object(body: &[u8]) -> Result<Map<String, Value>, InspectError> {
    match serde_json::from_slice::<Value>(body) {
        Ok(Value::Object(map)) => Ok(map),
        Ok(_) => Err(InspectError::NotObject),
        Err(_) => Err(InspectError::NotJson),
    }
}

/// `POST /v1/chat/completions`: `model` and `messages` are required; the output cap is
/// `max_completion_tokens` or the older `max_tokens` (the larger, if both are sent).
pub fn inspect_chat(body: &[u8]) -> Result<Inspected, InspectError> {
    let obj = json_object(body)?;
    let model = match obj.get("model") {
        Some(Value::String(m)) => m.clone(),
        None | Some(Value::Null) => return Err(InspectError::MissingField("model")),
        Some(_) => {
            return Err(InspectError::WrongType {
                field: "model",
                expected: "a string",
            });
        }
    };
    match obj.get("messages") {
        Some(Value::Array(messages)) => {
            if messages.iter().any(|m| !m.is_object()) {
                return Err(InspectError::WrongType {
                    field: "messages",
                    expected: "an array of message objects",
                });
            }
        }
        None | Some(Value::Null) => return Err(InspectError::MissingField("messages")),
        Some(_) => {
            return Err(InspectError::WrongType {
                field: "messages",
                expected: "an array of message objects",
            });
        }
    }
    let cap_new = optional_count(&obj, "max_completion_tokens")?;
    let cap_old = optional_count(&obj, "max_tokens")?;
    let stream = optional_bool(&obj, "stream", "stream")?.unwrap_or(false);
    let include_usage = match obj.get("stream_options") {
        None | Some(Value::Null) => false,
        Some(Value::Object(o)) => {
            optional_bool(o, "include_usage", "stream_options.include_usage")?.unwrap_or(false)
        }
        Some(_) => {
            return Err(InspectError::WrongType {
                field: "stream_options",
                expected: "an object",
            });
        }
    };
    Ok(Inspected {
        model: Some(model),
        max_output_tokens: cap_new.max(cap_old),
        stream,
        include_usage,
    })
}

fn optional_count(
    obj: &Map<String, Value>,
    field: &'static str,
) -> Result<Option<u64>, InspectError> {
    match obj.get(field) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Number(n)) => n.as_u64().map(Some).ok_or(InspectError::WrongType {
            field,
            expected: "a non-negative integer",
        }),
        Some(_) => Err(InspectError::WrongType {
            field,
            expected: "a non-negative integer",
        }),
    }
}

fn optional_bool(
    obj: &Map<String, Value>,
    key: &str,
    field: &'static str,
) -> Result<Option<bool>, InspectError> {
    match obj.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Bool(b)) => Ok(Some(*b)),
        Some(_) => Err(InspectError::WrongType {
            field,
            expected: "a boolean",
        }),
    }
}

/// Header names an OpenAI upstream authenticates with; removed from client requests.
pub const ORGANIZATION: HeaderName = HeaderName::from_static("openai-organization");
/// See [`ORGANIZATION`].
pub const PROJECT: HeaderName = HeaderName::from_static("openai-project");

/// The headers that authenticate to an OpenAI-style upstream: `Authorization: Bearer <key>`,
/// plus organization and project when configured. Values are marked sensitive so they are
/// never indexed by HPACK or printed by `http`'s `Debug`.
pub fn credential_headers(
    key: &UpstreamSecret,
    organization: Option<&str>,
    project: Option<&str>,
) -> Result<Vec<(HeaderName, HeaderValue)>, http::header::InvalidHeaderValue> {
    let mut bearer = HeaderValue::try_from(format!("Bearer {}", key.expose()))?;
    bearer.set_sensitive(true);
    let mut out = vec![(AUTHORIZATION, bearer)];
    if let Some(org) = organization {
        out.push((ORGANIZATION, HeaderValue::try_from(org)?));
    }
    if let Some(project) = project {
        out.push((PROJECT, HeaderValue::try_from(project)?));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_chat_facts() {
        let got = inspect_chat(
            br#"{"model":"gpt-4o-mini","messages":[{"role":"user","content":"hi"}],
                 "max_tokens":10,"max_completion_tokens":20,"stream":true,
                 "stream_options":{"include_usage":true}}"#,
        )
        .unwrap();
        assert_eq!(got.model.as_deref(), Some("gpt-4o-mini"));
        assert_eq!(got.max_output_tokens, Some(20));
        assert!(got.stream && got.include_usage);
    }

    #[test]
    fn refuses_malformed_bodies() {
        assert_eq!(inspect_chat(b"not json"), Err(InspectError::NotJson));
        assert_eq!(inspect_chat(b""), Err(InspectError::NotJson));
        assert_eq!(inspect_chat(b"[1,2]"), Err(InspectError::NotObject));
        assert_eq!(
            inspect_chat(br#"{"messages":[]}"#),
            Err(InspectError::MissingField("model"))
        );
        assert_eq!(
            inspect_chat(br#"{"model":5,"messages":[]}"#)
                .unwrap_err()
                .param(),
            Some("model")
        );
        assert_eq!(
            inspect_chat(br#"{"model":"m"}"#),
            Err(InspectError::MissingField("messages"))
        );
        assert_eq!(
            inspect_chat(br#"{"model":"m","messages":"hi"}"#)
                .unwrap_err()
                .param(),
            Some("messages")
        );
        for bad in [r#""10""#, "-1", "1.5", "true"] {
            let body = format!(r#"{{"model":"m","messages":[],"max_tokens":{bad}}}"#);
            assert_eq!(
                inspect_chat(body.as_bytes()).unwrap_err().param(),
                Some("max_tokens"),
                "{bad}"
            );
        }
        assert_eq!(
            inspect_chat(br#"{"model":"m","messages":[],"stream":"yes"}"#)
                .unwrap_err()
                .param(),
            Some("stream")
        );
    }

    #[test]
    fn deeply_nested_json_is_refused_not_overflowed() {
        let deep = "[".repeat(100_000);
        assert_eq!(inspect_chat(deep.as_bytes()), Err(InspectError::NotJson));
    }

    #[test]
    fn bearer_header_is_sensitive() {
        let headers = credential_headers(&UpstreamSecret::new("sk-1"), None, None).unwrap();
        assert_eq!(headers[0].1, "Bearer sk-1");
        assert!(headers[0].1.is_sensitive());
    }
}
