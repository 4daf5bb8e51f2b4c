//! The Gemini Developer API: `…/models/{model}:generateContent` and
//! `:streamGenerateContent` (SSE with `alt=sse`), `x-goog-api-key`, usage from
//! `usageMetadata`.

use http::HeaderValue;
use http::header::HeaderName;
use serde_json::Value;

use crate::inspect::{InspectError, Inspected};
use crate::openai::{EventReading, json_outline};
use crate::secret::UpstreamSecret;
use crate::sse::SseEvent;
use crate::usage::{UnreadableCount, Usage};

/// Header carrying the API key.
pub const API_KEY: HeaderName = HeaderName::from_static("x-goog-api-key");

/// The model and whether the call streams, from a path such as
/// `/v1beta/models/gemini-2.0-flash:streamGenerateContent`; `None` for other paths.
pub fn parse_path(path: &str) -> Option<(String, bool)> {
    let rest = path
        .strip_prefix("/v1beta/models/")
        .or_else(|| path.strip_prefix("/v1/models/"))?;
    let (model, action) = rest.rsplit_once(':')?;
    if model.is_empty() || model.contains('/') {
        return None;
    }
    match action {
        "generateContent" => Some((model.to_string(), false)),
        "streamGenerateContent" => Some((model.to_string(), true)),
        _ => None,
    }
}

/// Reads the request facts: the model from the path, the output cap from
/// `generationConfig.maxOutputTokens`; `contents` must be an array.
pub fn inspect(model: String, stream: bool, body: &[u8]) -> Result<Inspected, InspectError> {
    let obj = json_outline(body, &["generationConfig"])?;
    match obj.get("contents") {
        Some(Value::Array(_)) => {}
        None | Some(Value::Null) => return Err(InspectError::MissingField("contents")),
        Some(_) => {
            return Err(InspectError::WrongType {
                field: "contents",
                expected: "an array",
            });
        }
    }
    let cap = match obj
        .get("generationConfig")
        .and_then(|c| c.get("maxOutputTokens"))
    {
        None | Some(Value::Null) => None,
        Some(v) => Some(v.as_u64().ok_or(InspectError::WrongType {
            field: "generationConfig.maxOutputTokens",
            expected: "a non-negative integer",
        })?),
    };
    Ok(Inspected {
        body_checked: true,
        model: Some(model),
        max_output_tokens: cap,
        stream,
        include_usage: true,
    })
}

/// `x-goog-api-key: <key>`, marked sensitive.
pub fn credential_headers(
    key: &UpstreamSecret,
) -> Result<Vec<(HeaderName, HeaderValue)>, http::header::InvalidHeaderValue> {
    let mut value = HeaderValue::try_from(key.expose())?;
    value.set_sensitive(true);
    Ok(vec![(API_KEY, value)])
}

/// Usage in a `usageMetadata` object; thinking tokens count as output.
pub fn usage_from_metadata(meta: &Value) -> Option<Usage> {
    read_metadata(meta).ok().flatten()
}

/// A `usageMetadata` object: `None` when it states no prompt count, an error when a count
/// it states cannot be read.
fn read_metadata(meta: &Value) -> Result<Option<Usage>, UnreadableCount> {
    let count = |k: &str| crate::usage::count(meta.get(k));
    let Some(input) = count("promptTokenCount")? else {
        return Ok(None);
    };
    Ok(Some(Usage {
        input_tokens: input,
        // Saturating: a sum that wrapped would meter a huge call as a tiny one.
        output_tokens: count("candidatesTokenCount")?
            .unwrap_or(0)
            .saturating_add(count("thoughtsTokenCount")?.unwrap_or(0)),
        cached_input_tokens: count("cachedContentTokenCount")?.unwrap_or(0).min(input),
    }))
}

/// Usage of a whole response.
pub fn usage_from_json(body: &[u8]) -> Option<Usage> {
    let v = crate::fields::pick(body, &["usageMetadata"])?;
    usage_from_metadata(v.get("usageMetadata")?)
}

/// Reads one streamed chunk: its text, and the usage so far (each chunk carries the
/// running totals; the last one counts).
pub fn read_event(event: &SseEvent) -> EventReading {
    let Ok(v) = serde_json::from_str::<Value>(&event.data) else {
        return EventReading::default();
    };
    let output_chars = v
        .get("candidates")
        .and_then(Value::as_array)
        .map(|cs| {
            cs.iter()
                .filter_map(|c| c.get("content")?.get("parts")?.as_array())
                .flatten()
                .filter_map(|p| p.get("text")?.as_str())
                .map(|t| t.chars().count() as u64)
                .sum()
        })
        .unwrap_or(0);
    let stated = v
        .get("usageMetadata")
        .filter(|u| !u.is_null())
        .map(read_metadata);
    let usage = stated.and_then(|u| u.ok().flatten());
    EventReading {
        input_tokens: usage.map(|u| u.input_tokens),
        output_tokens: usage.map(|u| u.output_tokens),
        cached_input_tokens: usage.map(|u| u.cached_input_tokens),
        output_chars,
        usage_only: false,
        usage_unreadable: stated.is_some_and(|u| u.is_err()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_paths() {
        assert_eq!(
            parse_path("/v1beta/models/gemini-2.0-flash:generateContent"),
            Some(("gemini-2.0-flash".into(), false))
        );
        assert_eq!(
            parse_path("/v1/models/gemini-2.5-pro:streamGenerateContent"),
            Some(("gemini-2.5-pro".into(), true))
        );
        assert_eq!(
            parse_path("/v1/models/gemini-2.5-pro:deleteEverything"),
            None
        );
        assert_eq!(parse_path("/v1/models/a/b:generateContent"), None);
        assert_eq!(parse_path("/v1/models/:generateContent"), None);
    }

    #[test]
    fn reads_requests_and_usage() {
        let got = inspect(
            "m".into(),
            true,
            br#"{"contents":[],"generationConfig":{"maxOutputTokens":50}}"#,
        )
        .unwrap();
        assert_eq!((got.max_output_tokens, got.stream), (Some(50), true));
        assert_eq!(
            inspect("m".into(), false, b"{}"),
            Err(InspectError::MissingField("contents"))
        );
        assert!(
            inspect(
                "m".into(),
                false,
                br#"{"contents":[],"generationConfig":{"maxOutputTokens":"x"}}"#
            )
            .is_err()
        );
        let body = br#"{"usageMetadata":{"promptTokenCount":8,"candidatesTokenCount":5,"thoughtsTokenCount":2,"cachedContentTokenCount":3}}"#;
        assert_eq!(
            usage_from_json(body),
            Some(Usage {
                input_tokens: 8,
                output_tokens: 7,
                cached_input_tokens: 3
            })
        );
    }
}
