//! Anthropic's Messages API: request inspection, `x-api-key` injection, and usage, which a
//! stream reports in two parts (`message_start` has the input, `message_delta` the output).

use http::HeaderValue;
use http::header::HeaderName;
use serde_json::Value;

use crate::fields::{required_objects, required_string};
use crate::inspect::{InspectError, Inspected};
use crate::openai::{EventReading, json_outline};
use crate::route::Operation;
use crate::secret::UpstreamSecret;
use crate::sse::SseEvent;
use crate::usage::{UnreadableCount, Usage};

/// The API version sent when the client names none.
pub const DEFAULT_VERSION: &str = "2023-06-01";
/// Header carrying the API key.
pub const API_KEY: HeaderName = HeaderName::from_static("x-api-key");
/// Header carrying the API version.
pub const VERSION: HeaderName = HeaderName::from_static("anthropic-version");

/// Reads the request facts of a Messages API body.
pub fn inspect(operation: Operation, body: &[u8]) -> Result<Inspected, InspectError> {
    let obj = json_outline(body, &["model", "max_tokens", "stream"])?;
    let model = required_string(&obj, "model")?;
    required_objects(&obj, "messages")?;
    if operation == Operation::CountTokens {
        return Ok(Inspected {
            body_checked: true,
            model: Some(model),
            ..Inspected::default()
        });
    }
    let max_tokens = match obj.get("max_tokens") {
        Some(Value::Number(n)) => n.as_u64().ok_or(InspectError::WrongType {
            field: "max_tokens",
            expected: "a non-negative integer",
        })?,
        None | Some(Value::Null) => return Err(InspectError::MissingField("max_tokens")),
        Some(_) => {
            return Err(InspectError::WrongType {
                field: "max_tokens",
                expected: "a non-negative integer",
            });
        }
    };
    let stream = match obj.get("stream") {
        None | Some(Value::Null) => false,
        Some(Value::Bool(b)) => *b,
        Some(_) => {
            return Err(InspectError::WrongType {
                field: "stream",
                expected: "a boolean",
            });
        }
    };
    Ok(Inspected {
        body_checked: true,
        model: Some(model),
        max_output_tokens: Some(max_tokens),
        stream,
        include_usage: true,
    })
}

/// `x-api-key: <key>` (sensitive), and `anthropic-version` when the client sent none.
pub fn credential_headers(
    key: &UpstreamSecret,
) -> Result<Vec<(HeaderName, HeaderValue)>, http::header::InvalidHeaderValue> {
    let mut value = HeaderValue::try_from(key.expose())?;
    value.set_sensitive(true);
    Ok(vec![(API_KEY, value)])
}

/// Input, output and cached input tokens a `usage` object states; an error when a count it
/// states cannot be read.
fn usage_parts(usage: &Value) -> Result<UsageParts, UnreadableCount> {
    let get = |k: &str| crate::usage::count(usage.get(k));
    let (read, creation) = (
        get("cache_read_input_tokens")?,
        get("cache_creation_input_tokens")?,
    );
    let cached = match (read, creation) {
        (None, None) => None,
        (read, _) => Some(read.unwrap_or(0)),
    };
    // Anthropic's input_tokens leave out cache reads and writes; writ counts all input.
    // Saturating: the counts are the upstream's word, and a sum that wrapped would meter
    // a huge call as a tiny one.
    let input = get("input_tokens")?.map(|n| {
        n.saturating_add(read.unwrap_or(0))
            .saturating_add(creation.unwrap_or(0))
    });
    Ok((input, get("output_tokens")?, cached))
}

type UsageParts = (Option<u64>, Option<u64>, Option<u64>);

/// Usage of a whole Messages response (or of a token count).
pub fn usage_from_json(body: &[u8]) -> Option<Usage> {
    let v = crate::fields::pick(body, &["type", "usage"])?;
    if v.get("type").and_then(Value::as_str) != Some("message") {
        // count_tokens: `{"input_tokens": n}` costs nothing and generates nothing.
        return None;
    }
    let (input, output, cached) = usage_parts(v.get("usage")?).ok()?;
    Some(Usage {
        input_tokens: input?,
        output_tokens: output.unwrap_or(0),
        cached_input_tokens: cached.unwrap_or(0),
    })
}

/// What a stream event's `usage` object says.
fn usage_reading(usage: Option<&Value>) -> EventReading {
    match usage.map(usage_parts) {
        None => EventReading::default(),
        Some(Ok((input, output, cached))) => EventReading {
            input_tokens: input,
            output_tokens: output,
            cached_input_tokens: cached,
            ..EventReading::default()
        },
        Some(Err(UnreadableCount)) => EventReading {
            usage_unreadable: true,
            ..EventReading::default()
        },
    }
}

/// Reads one event of a Messages stream.
pub fn read_event(event: &SseEvent) -> EventReading {
    let Ok(v) = serde_json::from_str::<Value>(&event.data) else {
        return EventReading::default();
    };
    match v.get("type").and_then(Value::as_str) {
        Some("message_start") => usage_reading(v.get("message").and_then(|m| m.get("usage"))),
        Some("message_delta") => usage_reading(v.get("usage")),
        Some("content_block_delta") => EventReading {
            output_chars: v
                .get("delta")
                .and_then(|d| d.get("text"))
                .and_then(Value::as_str)
                .map_or(0, |t| t.chars().count() as u64),
            ..EventReading::default()
        },
        _ => EventReading::default(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_messages_requests() {
        let got = inspect(Operation::Chat, br#"{"model":"claude-sonnet-4","max_tokens":100,"messages":[{"role":"user","content":"hi"}],"stream":true}"#).unwrap();
        assert_eq!(
            (got.model.as_deref(), got.max_output_tokens, got.stream),
            (Some("claude-sonnet-4"), Some(100), true)
        );
        assert_eq!(
            inspect(Operation::Chat, br#"{"model":"m","messages":[]}"#),
            Err(InspectError::MissingField("max_tokens"))
        );
        assert_eq!(
            inspect(
                Operation::Chat,
                br#"{"model":"m","max_tokens":"a","messages":[]}"#
            )
            .unwrap_err()
            .param(),
            Some("max_tokens")
        );
        assert!(inspect(Operation::CountTokens, br#"{"model":"m","messages":[]}"#).is_ok());
        assert_eq!(
            inspect(Operation::Chat, b"[]"),
            Err(InspectError::NotObject)
        );
    }

    #[test]
    fn reads_usage_whole_and_in_parts() {
        let body = br#"{"type":"message","usage":{"input_tokens":10,"output_tokens":4,"cache_read_input_tokens":6}}"#;
        assert_eq!(
            usage_from_json(body),
            Some(Usage {
                input_tokens: 16,
                output_tokens: 4,
                cached_input_tokens: 6
            })
        );
        assert_eq!(usage_from_json(br#"{"input_tokens":12}"#), None);
        let ev = |data: &str| SseEvent {
            event: String::new(),
            data: data.into(),
            raw: vec![],
            id: None,
        };
        let start = read_event(&ev(
            r#"{"type":"message_start","message":{"usage":{"input_tokens":25,"output_tokens":1}}}"#,
        ));
        assert_eq!(
            (start.input_tokens, start.output_tokens),
            (Some(25), Some(1))
        );
        let delta = read_event(&ev(
            r#"{"type":"message_delta","usage":{"output_tokens":15}}"#,
        ));
        assert_eq!((delta.input_tokens, delta.output_tokens), (None, Some(15)));
        let text = read_event(&ev(
            r#"{"type":"content_block_delta","delta":{"type":"text_delta","text":"Hello"}}"#,
        ));
        assert_eq!(text.output_chars, 5);
    }
}
