//! OpenAI: chat-completion request inspection and Bearer credential injection.

use http::HeaderValue;
use http::header::{AUTHORIZATION, HeaderName};
use serde_json::{Map, Value};

use crate::fields::{required_objects, required_string, required_text_or_list};
use crate::inspect::{InspectError, Inspected};
use crate::route::Operation;
use crate::secret::UpstreamSecret;
use crate::sse::SseEvent;
use crate::usage::{UnreadableCount, Usage};

mod usage_body;

/// Reads the request facts of an OpenAI-style request body for `operation`.
pub fn inspect(operation: Operation, body: &[u8]) -> Result<Inspected, InspectError> {
    match operation {
        Operation::Chat => inspect_chat(body),
        Operation::Embeddings => inspect_embeddings(body),
        Operation::Responses => inspect_responses(body),
        Operation::Models
        | Operation::CountTokens
        | Operation::Invoke
        | Operation::Mcp
        | Operation::Http => Ok(Inspected::default()),
    }
}

/// Parses a body as a JSON object, strictly: a key repeated in any object of it is
/// refused, not read last-wins (see `writ_json`).
pub(crate) fn json_object(body: &[u8]) -> Result<Map<String, Value>, InspectError> {
    object(writ_json::value(body))
}

/// [`json_object`], building only the members named in `keep` whole and the JSON types of
/// the rest ([`writ_json::outline`]): what an inspection reads, without copying the prompt.
/// The whole body is checked all the same.
pub(crate) fn json_outline(body: &[u8], keep: &[&str]) -> Result<Map<String, Value>, InspectError> {
    object(writ_json::outline(body, keep))
}

/// The object a strict parse found, or why the body is refused.
fn object(parsed: Result<Value, writ_json::JsonError>) -> Result<Map<String, Value>, InspectError> {
    match parsed {
        Ok(Value::Object(map)) => Ok(map),
        Ok(_) => Err(InspectError::NotObject),
        Err(writ_json::JsonError::DuplicateKey { path }) => {
            Err(InspectError::DuplicateKey { path })
        }
        Err(writ_json::JsonError::TooDeep) => Err(InspectError::TooDeep),
        Err(writ_json::JsonError::Syntax(_) | writ_json::JsonError::Shape(_)) => {
            Err(InspectError::NotJson)
        }
    }
}

/// `POST /v1/chat/completions`: `model` and `messages` are required; the output cap is
/// `max_completion_tokens` or the older `max_tokens` (the larger, if both are sent).
pub fn inspect_chat(body: &[u8]) -> Result<Inspected, InspectError> {
    let obj = json_outline(
        body,
        &[
            "model",
            "max_completion_tokens",
            "max_tokens",
            "stream",
            "stream_options",
        ],
    )?;
    let model = required_string(&obj, "model")?;
    required_objects(&obj, "messages")?;
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
        body_checked: true,
        model: Some(model),
        max_output_tokens: cap_new.max(cap_old),
        stream,
        include_usage,
    })
}

/// `POST /v1/responses`: `model` and `input` (a string or an array of items) are
/// required; the output cap is `max_output_tokens`.
pub fn inspect_responses(body: &[u8]) -> Result<Inspected, InspectError> {
    let obj = json_outline(body, &["model", "max_output_tokens", "stream"])?;
    let model = required_string(&obj, "model")?;
    required_text_or_list(&obj, "input")?;
    Ok(Inspected {
        body_checked: true,
        model: Some(model),
        max_output_tokens: optional_count(&obj, "max_output_tokens")?,
        stream: optional_bool(&obj, "stream", "stream")?.unwrap_or(false),
        include_usage: true,
    })
}

/// `POST /v1/embeddings`: `model` and `input` (a string or an array) are required.
pub fn inspect_embeddings(body: &[u8]) -> Result<Inspected, InspectError> {
    let obj = json_outline(body, &["model"])?;
    let model = required_string(&obj, "model")?;
    required_text_or_list(&obj, "input")?;
    Ok(Inspected {
        body_checked: true,
        model: Some(model),
        ..Inspected::default()
    })
}

fn optional_count(
    obj: &Map<String, Value>,
    field: &'static str,
) -> Result<Option<u64>, InspectError> {
    crate::fields::optional_count(obj, field, field)
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

/// Usage in an OpenAI-style `usage` object: chat and embeddings (`prompt_tokens`,
/// `completion_tokens`) or the Responses API (`input_tokens`, `output_tokens`).
pub fn usage_from_value(usage: &Value) -> Option<Usage> {
    read_usage(usage).ok().flatten()
}

/// A `usage` object: `None` when it states no input count, an error when a count it
/// states cannot be read.
fn read_usage(usage: &Value) -> Result<Option<Usage>, UnreadableCount> {
    let Some(obj) = usage.as_object() else {
        return Err(UnreadableCount);
    };
    let count = |k: &str| crate::usage::count(obj.get(k));
    let Some(input) = count("prompt_tokens")?.or(count("input_tokens")?) else {
        return Ok(None);
    };
    let output = count("completion_tokens")?
        .or(count("output_tokens")?)
        .unwrap_or(0);
    let cached = ["prompt_tokens_details", "input_tokens_details"]
        .iter()
        .find_map(|d| obj.get(*d)?.get("cached_tokens")?.as_u64())
        .unwrap_or(0);
    Ok(Some(Usage {
        input_tokens: input,
        output_tokens: output,
        cached_input_tokens: cached.min(input),
    }))
}

/// Usage of a whole (non-streamed) JSON response: as [`usage_from_value`] reads its
/// `usage` member, read without building it.
pub fn usage_from_json(body: &[u8]) -> Option<Usage> {
    usage_body::read(body)
}

/// What one streamed event says about usage. Providers that report usage in parts
/// (Anthropic: input at the start, output at the end) fill only what they know.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct EventReading {
    /// Input tokens, when the event reports them.
    pub input_tokens: Option<u64>,
    /// Output tokens so far, when the event reports them.
    pub output_tokens: Option<u64>,
    /// Cached input tokens, when the event reports them.
    pub cached_input_tokens: Option<u64>,
    /// Characters of generated text in the event, for an estimate if no usage comes.
    pub output_chars: u64,
    /// The event carries only usage (`choices: []`): the chunk `include_usage` adds.
    pub usage_only: bool,
    /// The event states usage that cannot be read (a count that is not a non-negative integer): the stream's
    /// usage is then estimated.
    pub usage_unreadable: bool,
}

impl EventReading {
    fn with_usage(usage: Option<Usage>) -> Self {
        Self {
            input_tokens: usage.map(|u| u.input_tokens),
            output_tokens: usage.map(|u| u.output_tokens),
            cached_input_tokens: usage.map(|u| u.cached_input_tokens),
            ..Self::default()
        }
    }
}

/// Reads one SSE event of a chat-completions or Responses API stream.
pub fn read_event(event: &SseEvent) -> EventReading {
    let Ok(v) = serde_json::from_str::<Value>(&event.data) else {
        return EventReading::default();
    };
    // Responses API: typed events; usage arrives with `response.completed`.
    if let Some(kind) = v.get("type").and_then(Value::as_str) {
        let stated = (kind == "response.completed")
            .then(|| {
                v.get("response")?
                    .get("usage")
                    .filter(|u| !u.is_null())
                    .map(read_usage)
            })
            .flatten();
        let usage = stated.and_then(|u| u.ok().flatten());
        let output_chars = if kind == "response.output_text.delta" {
            v.get("delta")
                .and_then(Value::as_str)
                .map_or(0, |d| d.chars().count() as u64)
        } else {
            0
        };
        return EventReading {
            output_chars,
            usage_unreadable: stated.is_some_and(|u| u.is_err()),
            ..EventReading::with_usage(usage)
        };
    }
    let choices = v.get("choices").and_then(Value::as_array);
    let output_chars = choices
        .map(|cs| {
            cs.iter()
                .filter_map(|c| c.get("delta")?.get("content")?.as_str())
                .map(|t| t.chars().count() as u64)
                .sum()
        })
        .unwrap_or(0);
    let stated = v.get("usage").filter(|u| !u.is_null()).map(read_usage);
    let usage = stated.and_then(|u| u.ok().flatten());
    EventReading {
        usage_only: stated.is_some() && choices.is_some_and(Vec::is_empty),
        usage_unreadable: stated.is_some_and(|u| u.is_err()),
        output_chars,
        ..EventReading::with_usage(usage)
    }
}

/// For a streamed chat request that did not ask for usage, the body with
/// `stream_options.include_usage` set, so the gateway can meter it. `None` when the body
/// needs no change.
pub fn with_stream_usage(body: &[u8]) -> Option<Vec<u8>> {
    let mut obj = json_object(body).ok()?;
    if obj.get("stream") != Some(&Value::Bool(true)) {
        return None;
    }
    let options = obj
        .entry("stream_options")
        .or_insert_with(|| Value::Object(Map::new()));
    let options = options.as_object_mut()?;
    if options.get("include_usage") == Some(&Value::Bool(true)) {
        return None;
    }
    options.insert("include_usage".to_string(), Value::Bool(true));
    serde_json::to_vec(&Value::Object(obj)).ok()
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
    fn a_key_given_twice_is_refused_not_read_last_wins() {
        let err = inspect_chat(
            br#"{"model":"gpt-4o","messages":[{"role":"user","content":"hi"}],"model":"gpt-4o-mini"}"#,
        )
        .unwrap_err();
        match err {
            InspectError::DuplicateKey { path } => assert_eq!(path.to_string(), "model"),
            other => panic!("{other:?}"),
        }
    }

    /// Inspections build only the members they read (`writ_json::outline`), but the whole
    /// body is still checked: a repeated key or too deep a nesting inside a message, a
    /// prompt or a tool is refused by every API's inspection, with its path.
    #[test]
    fn what_an_inspection_does_not_read_is_still_checked() {
        let dup = |r: Result<Inspected, InspectError>| match r {
            Err(InspectError::DuplicateKey { path }) => path.to_string(),
            other => panic!("{other:?}"),
        };
        assert_eq!(
            dup(inspect_chat(
                br#"{"model":"m","messages":[{"role":"user","content":"a"},{"role":"user","content":"b","Content":"c"}]}"#
            )),
            "messages[1].Content"
        );
        assert_eq!(
            dup(inspect_chat(
                br#"{"model":"m","messages":[],"tools":[{"function":{"name":"a","name":"b"}}]}"#
            )),
            "tools[0].function.name"
        );
        assert_eq!(
            dup(inspect_responses(
                br#"{"model":"m","input":[{"role":"user","content":[{"type":"input_text","text":"a","text":"b"}]}]}"#
            )),
            "input[0].content[0].text"
        );
        assert_eq!(
            dup(inspect_embeddings(
                br#"{"model":"m","input":"x","INPUT":"y"}"#
            )),
            "INPUT"
        );
        assert_eq!(
            dup(crate::anthropic::inspect(
                Operation::Chat,
                br#"{"model":"m","max_tokens":1,"messages":[{"role":"user","content":[{"type":"text","type":"image"}]}]}"#
            )),
            "messages[0].content[0].type"
        );
        assert_eq!(
            dup(crate::gemini::inspect(
                "m".into(),
                false,
                br#"{"contents":[{"parts":[{"text":"a","text":"b"}]}]}"#
            )),
            "contents[0].parts[0].text"
        );
        let deep = format!(
            r#"{{"model":"m","messages":[{{"content":{}{}}}]}}"#,
            "[".repeat(200),
            "]".repeat(200)
        );
        assert_eq!(inspect_chat(deep.as_bytes()), Err(InspectError::TooDeep));
        assert_eq!(
            inspect_chat(br#"{"model":"m","messages":[{"content":"\ud800"}]}"#),
            Err(InspectError::NotJson)
        );
        // What is read is read in full.
        let read = inspect_chat(
            br#"{"model":"gpt-4o","messages":[{"role":"user","content":"hi"}],"max_tokens":7,"stream":true,"stream_options":{"include_usage":true}}"#,
        )
        .unwrap();
        assert_eq!(read.model.as_deref(), Some("gpt-4o"));
        assert_eq!(read.max_output_tokens, Some(7));
        assert!(read.stream && read.include_usage);
    }

    #[test]
    fn deeply_nested_json_is_refused_not_overflowed() {
        let deep = "[".repeat(100_000);
        assert_eq!(inspect_chat(deep.as_bytes()), Err(InspectError::TooDeep));
    }

    #[test]
    fn reads_usage_of_every_api() {
        let chat = br#"{"usage":{"prompt_tokens":10,"completion_tokens":5,"prompt_tokens_details":{"cached_tokens":4}}}"#;
        assert_eq!(
            usage_from_json(chat),
            Some(Usage {
                input_tokens: 10,
                output_tokens: 5,
                cached_input_tokens: 4
            })
        );
        let embeddings = br#"{"usage":{"prompt_tokens":7,"total_tokens":7}}"#;
        assert_eq!(
            usage_from_json(embeddings),
            Some(Usage {
                input_tokens: 7,
                ..Default::default()
            })
        );
        let responses = br#"{"usage":{"input_tokens":3,"output_tokens":9}}"#;
        assert_eq!(
            usage_from_json(responses),
            Some(Usage {
                input_tokens: 3,
                output_tokens: 9,
                cached_input_tokens: 0
            })
        );
        assert_eq!(usage_from_json(b"not json"), None);
        assert_eq!(
            usage_from_json(br#"{"usage":{"prompt_tokens":"ten"}}"#),
            None
        );
    }

    #[test]
    fn reads_stream_events() {
        let ev = |data: &str| SseEvent {
            event: String::new(),
            data: data.into(),
            raw: vec![],
            id: None,
        };
        let delta = read_event(&ev(r#"{"choices":[{"delta":{"content":"héllo"}}]}"#));
        assert_eq!(
            (delta.output_chars, delta.output_tokens, delta.usage_only),
            (5, None, false)
        );
        let last = read_event(&ev(
            r#"{"choices":[],"usage":{"prompt_tokens":1,"completion_tokens":2}}"#,
        ));
        assert!(last.usage_only && last.output_tokens == Some(2));
        let done = read_event(&ev(
            r#"{"type":"response.completed","response":{"usage":{"input_tokens":4,"output_tokens":6}}}"#,
        ));
        assert_eq!(done.output_tokens, Some(6));
        assert_eq!(read_event(&ev("[DONE]")), EventReading::default());
    }

    #[test]
    fn asks_for_stream_usage_only_when_needed() {
        let body = with_stream_usage(br#"{"model":"m","stream":true}"#).unwrap();
        let v: Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(v["stream_options"]["include_usage"], true);
        assert_eq!(
            with_stream_usage(
                br#"{"model":"m","stream":true,"stream_options":{"include_usage":true}}"#
            ),
            None
        );
        assert_eq!(with_stream_usage(br#"{"model":"m"}"#), None);
        assert_eq!(
            with_stream_usage(br#"{"model":"m","stream":true,"stream_options":5}"#),
            None
        );
    }

    #[test]
    fn bearer_header_is_sensitive() {
        let headers = credential_headers(&UpstreamSecret::new("sk-1"), None, None).unwrap();
        assert_eq!(headers[0].1, "Bearer sk-1");
        assert!(headers[0].1.is_sensitive());
    }
}
