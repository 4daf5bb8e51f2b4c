//! AWS Bedrock Runtime: `/model/{modelId}/converse`, `/converse-stream`, `/invoke` and
//! `/invoke-with-response-stream`; the credential is a SigV4 signature over the final
//! request (see [`crate::sigv4`]); usage comes from Converse bodies, from the `metadata`
//! frame of a Converse event stream, from the `x-amzn-bedrock-*-token-count` headers of
//! `invoke`, and from the `amazon-bedrock-invocationMetrics` of its stream.
//!
//! Streams are in AWS's binary event-stream framing (`application/vnd.amazon.eventstream`),
//! decoded with `aws-smithy-eventstream`, which checks each frame's CRCs.

use aws_smithy_eventstream::frame::{DecodedFrame, MessageFrameDecoder, write_message_to};
use aws_smithy_types::event_stream::{Header, HeaderValue, Message};
use base64::Engine;
use bytes::BytesMut;
use http::HeaderMap;
use serde_json::Value;

use crate::fields::{optional_count, required_objects};
use crate::inspect::{InspectError, Inspected};
use crate::openai::{EventReading, json_object};
use crate::route::Operation;
use crate::usage::Usage;

/// Content type of Bedrock's streamed responses.
pub const EVENT_STREAM: &str = "application/vnd.amazon.eventstream";

/// Service name in the SigV4 credential scope.
pub const SIGNING_SERVICE: &str = "bedrock";

/// Which Bedrock Runtime action a path names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    /// `Converse`.
    Converse,
    /// `ConverseStream`.
    ConverseStream,
    /// `InvokeModel`: the model's own body format.
    Invoke,
    /// `InvokeModelWithResponseStream`.
    InvokeStream,
}

impl Action {
    /// The provider-neutral operation.
    pub fn operation(self) -> Operation {
        match self {
            Action::Converse | Action::ConverseStream => Operation::Chat,
            Action::Invoke | Action::InvokeStream => Operation::Invoke,
        }
    }

    /// Whether the response is an event stream.
    pub fn streams(self) -> bool {
        matches!(self, Action::ConverseStream | Action::InvokeStream)
    }
}

/// The model id (percent-decoded: `anthropic.claude-3-haiku-20240307-v1:0`) and action of
/// a path such as `/model/anthropic.claude-3-haiku-20240307-v1%3A0/converse`.
pub fn parse_path(path: &str) -> Option<(String, Action)> {
    let rest = path.strip_prefix("/model/")?;
    let (encoded, action) = rest.split_once('/')?;
    let action = match action {
        "converse" => Action::Converse,
        "converse-stream" => Action::ConverseStream,
        "invoke" => Action::Invoke,
        "invoke-with-response-stream" => Action::InvokeStream,
        _ => return None,
    };
    let model = percent_decode(encoded)?;
    // Model ids and ARNs are printable ASCII; anything else is not a model.
    let printable = model.bytes().all(|b| b.is_ascii_graphic());
    (!model.is_empty() && model.len() <= 2048 && printable).then_some((model, action))
}

fn percent_decode(text: &str) -> Option<String> {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = std::str::from_utf8(bytes.get(i + 1..i + 3)?).ok()?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

/// Reads the request facts. Converse bodies need `messages` and may cap output with
/// `inferenceConfig.maxTokens`; `invoke` bodies are the model's own format, from which the
/// usual cap fields are read (`max_tokens`, `max_gen_len`, `textGenerationConfig.maxTokenCount`).
pub fn inspect(action: Action, model: String, body: &[u8]) -> Result<Inspected, InspectError> {
    let obj = json_object(body)?;
    let cap = match action {
        Action::Converse | Action::ConverseStream => {
            required_objects(&obj, "messages")?;
            match obj.get("inferenceConfig") {
                None | Some(Value::Null) => None,
                Some(Value::Object(config)) => {
                    optional_count(config, "maxTokens", "inferenceConfig.maxTokens")?
                }
                Some(_) => {
                    return Err(InspectError::WrongType {
                        field: "inferenceConfig",
                        expected: "an object",
                    });
                }
            }
        }
        Action::Invoke | Action::InvokeStream => {
            let nested = match obj.get("textGenerationConfig") {
                Some(Value::Object(config)) => optional_count(
                    config,
                    "maxTokenCount",
                    "textGenerationConfig.maxTokenCount",
                )?,
                _ => None,
            };
            optional_count(&obj, "max_tokens", "max_tokens")?
                .or(optional_count(&obj, "max_gen_len", "max_gen_len")?)
                .or(nested)
        }
    };
    Ok(Inspected {
        body_checked: true,
        model: Some(model),
        max_output_tokens: cap,
        stream: action.streams(),
        include_usage: true,
    })
}

/// Usage in a Converse `usage` object (also the `metadata` event of a stream).
///
/// `None` (the call is then estimated) when `inputTokens` is absent or any count is not a
/// non-negative integer: a negative `outputTokens` must not make output free. Sums
/// saturate.
pub fn usage_from_value(usage: &Value) -> Option<Usage> {
    let count = |k: &str| crate::usage::count(usage.get(k)).ok();
    let fresh = count("inputTokens")??;
    let cached = count("cacheReadInputTokens")?.unwrap_or(0);
    // Bedrock counts cache reads and writes apart from `inputTokens`; all were input.
    let written = count("cacheWriteInputTokens")?.unwrap_or(0);
    Some(Usage {
        input_tokens: fresh.saturating_add(cached).saturating_add(written),
        output_tokens: count("outputTokens")?.unwrap_or(0),
        cached_input_tokens: cached,
    })
}

/// Usage of a whole response: the Converse body's `usage`, or for `invoke` the token-count
/// headers Bedrock adds to every model's response. A count header that is present but not
/// a non-negative integer leaves the usage unknown (`None`), as in [`usage_from_value`].
pub fn usage_from_response(headers: &HeaderMap, body: &[u8]) -> Option<Usage> {
    // `Some(None)`: absent; `None`: present and unreadable.
    let header = |name: &str| match headers.get(name) {
        None => Some(None),
        Some(v) => v
            .to_str()
            .ok()
            .and_then(|v| v.trim().parse::<u64>().ok())
            .map(Some),
    };
    if let Some(input) = header("x-amzn-bedrock-input-token-count")? {
        return Some(Usage {
            input_tokens: input,
            output_tokens: header("x-amzn-bedrock-output-token-count")?.unwrap_or(0),
            cached_input_tokens: header("x-amzn-bedrock-cache-read-input-token-count")?
                .unwrap_or(0)
                .min(input),
        });
    }
    let v: Value = serde_json::from_slice(body).ok()?;
    usage_from_value(v.get("usage")?)
}

/// Why an event stream could not be read further.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("malformed event-stream frame")]
pub struct FrameError;

/// Decodes an event stream one chunk at a time, however the chunks are cut.
#[derive(Debug, Default)]
pub struct FrameReader {
    buffer: BytesMut,
    decoder: MessageFrameDecoder,
    failed: bool,
}

impl FrameReader {
    /// A reader at the start of a stream.
    pub fn new() -> Self {
        Self::default()
    }

    /// Feeds one chunk; returns the messages it completed, those before a malformed frame
    /// (bad CRC, impossible length) included, so that what a stream reports does not depend
    /// on how its bytes were cut. Past a malformed frame the stream cannot be
    /// resynchronised: [`FrameReader::failed`] says so from then on, nothing more is read,
    /// and a push that completes no message returns an error.
    pub fn push(&mut self, chunk: &[u8]) -> Result<Vec<Message>, FrameError> {
        if self.failed {
            return Err(FrameError);
        }
        self.buffer.extend_from_slice(chunk);
        let mut out = Vec::new();
        loop {
            match self.decoder.decode_frame(&mut self.buffer) {
                Ok(DecodedFrame::Complete(message)) => out.push(message),
                Ok(DecodedFrame::Incomplete) => return Ok(out),
                Err(_) => {
                    self.failed = true;
                    self.buffer = BytesMut::new();
                    return if out.is_empty() {
                        Err(FrameError)
                    } else {
                        Ok(out)
                    };
                }
            }
        }
    }

    /// Whether a malformed frame was met: nothing after it is read.
    pub fn failed(&self) -> bool {
        self.failed
    }

    /// Whether bytes of an unfinished frame are held.
    pub fn has_partial_frame(&self) -> bool {
        !self.buffer.is_empty()
    }
}

/// One event-stream frame of a Converse or Invoke stream: an `event` message of type
/// `event_type` with a JSON `payload`, CRCs included. Empty if it cannot be encoded (a
/// payload over the format's 16 MiB).
pub fn event_frame(event_type: &str, payload: Vec<u8>) -> Vec<u8> {
    let text = |v: &str| HeaderValue::String(v.to_string().into());
    let message = Message::new(payload)
        .add_header(Header::new(":event-type", text(event_type)))
        .add_header(Header::new(":content-type", text("application/json")))
        .add_header(Header::new(":message-type", text("event")));
    let mut out = Vec::new();
    if write_message_to(&message, &mut out).is_err() {
        out.clear();
    }
    out
}

/// The string value of an event-stream message's header `name`, if it has one.
pub(crate) fn string_header<'m>(message: &'m Message, name: &str) -> Option<&'m str> {
    message
        .headers()
        .iter()
        .find(|h| h.name().as_str() == name)
        .and_then(|h| match h.value() {
            HeaderValue::String(s) => Some(s.as_str()),
            _ => None,
        })
}

/// Reads one event-stream message of a Converse or Invoke stream: generated text and usage.
pub fn read_message(message: &Message) -> EventReading {
    if string_header(message, ":message-type") != Some("event") {
        return EventReading::default();
    }
    let Ok(v) = serde_json::from_slice::<Value>(message.payload()) else {
        return EventReading::default();
    };
    match string_header(message, ":event-type") {
        Some("contentBlockDelta") => EventReading {
            output_chars: v
                .get("delta")
                .and_then(|d| d.get("text"))
                .and_then(Value::as_str)
                .map_or(0, |t| t.chars().count() as u64),
            ..EventReading::default()
        },
        Some("metadata") => match v.get("usage") {
            None => EventReading::default(),
            Some(usage) => reading_of(Some(usage_from_value(usage))),
        },
        // InvokeModelWithResponseStream: each chunk wraps the model's own JSON in base64;
        // the last one carries Bedrock's invocation metrics.
        Some("chunk") => {
            let Some(inner) = v
                .get("bytes")
                .and_then(Value::as_str)
                .and_then(|b| base64::engine::general_purpose::STANDARD.decode(b).ok())
                .and_then(|b| serde_json::from_slice::<Value>(&b).ok())
            else {
                return EventReading::default();
            };
            let usage = inner.get("amazon-bedrock-invocationMetrics").map(|m| {
                // Unreadable counts leave the usage unknown, as in `usage_from_value`.
                let count = |k: &str| crate::usage::count(m.get(k)).ok();
                Some(Usage {
                    input_tokens: count("inputTokenCount")??,
                    output_tokens: count("outputTokenCount")?.unwrap_or(0),
                    cached_input_tokens: 0,
                })
            });
            let text = inner
                .get("delta")
                .and_then(|d| d.get("text"))
                .or_else(|| inner.get("completion"))
                .or_else(|| inner.get("generation"))
                .or_else(|| inner.get("outputText"))
                .and_then(Value::as_str);
            EventReading {
                output_chars: text.map_or(0, |t| t.chars().count() as u64),
                ..reading_of(usage)
            }
        }
        _ => EventReading::default(),
    }
}

/// The reading of an event that states usage (`Some`) or not (`None`); stated usage that
/// cannot be read (`Some(None)`) marks the stream's usage unreadable, so it is estimated.
fn reading_of(usage: Option<Option<Usage>>) -> EventReading {
    match usage {
        None => EventReading::default(),
        Some(None) => EventReading {
            usage_unreadable: true,
            ..EventReading::default()
        },
        Some(Some(u)) => EventReading {
            input_tokens: Some(u.input_tokens),
            output_tokens: Some(u.output_tokens),
            cached_input_tokens: Some(u.cached_input_tokens),
            ..EventReading::default()
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    pub(crate) fn event(kind: &str, payload: &str) -> Vec<u8> {
        event_frame(kind, payload.as_bytes().to_vec())
    }

    #[test]
    fn parses_paths() {
        assert_eq!(
            parse_path("/model/anthropic.claude-3-haiku-20240307-v1%3A0/converse"),
            Some((
                "anthropic.claude-3-haiku-20240307-v1:0".into(),
                Action::Converse
            ))
        );
        assert_eq!(
            parse_path(
                "/model/arn%3Aaws%3Abedrock%3Aus-east-1%3A1%3Ainference-profile%2Fus.x/converse-stream"
            ),
            Some((
                "arn:aws:bedrock:us-east-1:1:inference-profile/us.x".into(),
                Action::ConverseStream
            ))
        );
        assert_eq!(parse_path("/model/m/invoke").unwrap().1, Action::Invoke);
        for bad in [
            "/model//converse",
            "/model/m/delete",
            "/model/m%zz/converse",
            "/model/m%0A/converse",
            "/model/%FF/converse",
            "/models/m/converse",
        ] {
            assert_eq!(parse_path(bad), None, "{bad}");
        }
    }

    #[test]
    fn reads_requests() {
        let got = inspect(
            Action::ConverseStream,
            "m".into(),
            br#"{"messages":[{"role":"user","content":[{"text":"hi"}]}],"inferenceConfig":{"maxTokens":64}}"#,
        )
        .unwrap();
        assert_eq!((got.max_output_tokens, got.stream), (Some(64), true));
        assert_eq!(
            inspect(Action::Converse, "m".into(), b"{}"),
            Err(InspectError::MissingField("messages"))
        );
        assert!(matches!(
            inspect(
                Action::Converse,
                "m".into(),
                br#"{"messages":[],"inferenceConfig":{"maxTokens":-1}}"#
            ),
            Err(InspectError::WrongType {
                field: "inferenceConfig.maxTokens",
                ..
            })
        ));
        assert_eq!(
            inspect(Action::Converse, "m".into(), b"[1]").err(),
            Some(InspectError::NotObject)
        );
        let invoke = inspect(
            Action::Invoke,
            "m".into(),
            br#"{"anthropic_version":"bedrock-2023-05-31","max_tokens":99,"messages":[]}"#,
        )
        .unwrap();
        assert_eq!(invoke.max_output_tokens, Some(99));
        assert_eq!(
            inspect(Action::Invoke, "m".into(), b"not json").err(),
            Some(InspectError::NotJson)
        );
    }

    #[test]
    fn reads_usage() {
        let body = br#"{"output":{},"usage":{"inputTokens":10,"outputTokens":4,"cacheReadInputTokens":6}}"#;
        assert_eq!(
            usage_from_response(&HeaderMap::new(), body),
            Some(Usage {
                input_tokens: 16,
                output_tokens: 4,
                cached_input_tokens: 6
            })
        );
        let mut headers = HeaderMap::new();
        headers.insert("x-amzn-bedrock-input-token-count", "12".parse().unwrap());
        headers.insert("x-amzn-bedrock-output-token-count", "3".parse().unwrap());
        assert_eq!(
            usage_from_response(&headers, b"{}").map(|u| (u.input_tokens, u.output_tokens)),
            Some((12, 3))
        );
        assert_eq!(
            usage_from_response(&HeaderMap::new(), b"{\"usage\":1}"),
            None
        );
    }

    #[test]
    fn unreadable_counts_leave_the_usage_unknown_and_sums_saturate() {
        for usage in [
            r#"{"inputTokens":10,"outputTokens":-4}"#,
            r#"{"inputTokens":10,"outputTokens":4.5}"#,
            r#"{"inputTokens":10,"outputTokens":"4"}"#,
            r#"{"inputTokens":-10,"outputTokens":4}"#,
            r#"{"inputTokens":10,"outputTokens":4,"cacheReadInputTokens":-1}"#,
        ] {
            let v: Value = serde_json::from_str(usage).unwrap();
            assert_eq!(usage_from_value(&v), None, "{usage}");
        }
        let huge = format!(
            r#"{{"inputTokens":{m},"outputTokens":1,"cacheReadInputTokens":{m},"cacheWriteInputTokens":{m}}}"#,
            m = u64::MAX
        );
        let v: Value = serde_json::from_str(&huge).unwrap();
        assert_eq!(usage_from_value(&v).map(|u| u.input_tokens), Some(u64::MAX));
        // A count header that is present but not a count: unknown, not zero.
        let mut headers = HeaderMap::new();
        headers.insert("x-amzn-bedrock-input-token-count", "12".parse().unwrap());
        headers.insert("x-amzn-bedrock-output-token-count", "-3".parse().unwrap());
        assert_eq!(usage_from_response(&headers, b"{}"), None);
        // In an invoke stream's chunk, too.
        let chunk = |metrics: &str| {
            let inner = format!(r#"{{"amazon-bedrock-invocationMetrics":{metrics}}}"#);
            let b64 = base64::engine::general_purpose::STANDARD.encode(inner);
            event("chunk", &format!(r#"{{"bytes":"{b64}"}}"#))
        };
        let mut reader = FrameReader::new();
        let frames = reader
            .push(&chunk(r#"{"inputTokenCount":5,"outputTokenCount":-2}"#))
            .unwrap();
        assert_eq!(frames.len(), 1);
        let reading = read_message(&frames[0]);
        assert!(reading.usage_unreadable);
        assert_eq!(reading.output_tokens, None);
        let frames = reader
            .push(&chunk(r#"{"inputTokenCount":5,"outputTokenCount":2}"#))
            .unwrap();
        let reading = read_message(&frames[0]);
        assert!(!reading.usage_unreadable);
        assert_eq!(reading.output_tokens, Some(2));
        // And in a Converse stream's metadata.
        let frames = reader
            .push(&event(
                "metadata",
                r#"{"usage":{"inputTokens":7,"outputTokens":-2}}"#,
            ))
            .unwrap();
        assert!(read_message(&frames[0]).usage_unreadable);
    }

    #[test]
    fn decodes_frames_cut_anywhere() {
        let mut stream = event("messageStart", r#"{"role":"assistant"}"#);
        stream.extend(event(
            "contentBlockDelta",
            r#"{"contentBlockIndex":0,"delta":{"text":"Héllo"}}"#,
        ));
        stream.extend(event(
            "metadata",
            r#"{"usage":{"inputTokens":7,"outputTokens":2,"totalTokens":9},"metrics":{"latencyMs":1}}"#,
        ));
        for size in [1, 2, 7, 13, stream.len()] {
            let mut reader = FrameReader::new();
            let mut readings = Vec::new();
            for chunk in stream.chunks(size) {
                readings.extend(reader.push(chunk).unwrap().iter().map(read_message));
            }
            assert!(!reader.has_partial_frame());
            assert_eq!(readings.len(), 3, "{size}");
            assert_eq!(readings[1].output_chars, 5);
            assert_eq!(
                (readings[2].input_tokens, readings[2].output_tokens),
                (Some(7), Some(2))
            );
        }
    }

    #[test]
    fn a_corrupt_frame_stops_the_reader() {
        let mut frame = event("metadata", r#"{"usage":{"inputTokens":7}}"#);
        let last = frame.len() - 1;
        frame[last] ^= 0xff;
        let mut reader = FrameReader::new();
        assert_eq!(reader.push(&frame), Err(FrameError));
        assert_eq!(reader.push(b"more"), Err(FrameError));
        // An impossible length in the prelude.
        let mut reader = FrameReader::new();
        assert!(
            reader
                .push(&[0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0])
                .is_err()
        );
    }

    /// Found by the `bedrock_eventstream_meter` fuzz target (issue 26): a metadata frame
    /// and a malformed one arriving in one chunk lost the usage, which the same bytes in
    /// two chunks kept.
    #[test]
    fn frames_before_a_corrupt_one_are_read_however_the_stream_is_cut() {
        let good = event(
            "metadata",
            r#"{"usage":{"inputTokens":7,"outputTokens":2}}"#,
        );
        let mut stream = good.clone();
        stream.extend_from_slice(&[0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0]);
        let mut whole = FrameReader::new();
        assert_eq!(whole.push(&stream).map(|m| m.len()), Ok(1));
        assert!(whole.failed());
        assert_eq!(whole.push(&good), Err(FrameError));
        let mut cut = FrameReader::new();
        assert_eq!(cut.push(&stream[..good.len()]).map(|m| m.len()), Ok(1));
        assert!(!cut.failed());
        assert_eq!(cut.push(&stream[good.len()..]), Err(FrameError));
        assert!(cut.failed());
    }

    #[test]
    fn reads_invoke_stream_metrics() {
        let inner = r#"{"type":"message_stop","amazon-bedrock-invocationMetrics":{"inputTokenCount":5,"outputTokenCount":8}}"#;
        let payload = serde_json::json!({
            "bytes": base64::engine::general_purpose::STANDARD.encode(inner)
        })
        .to_string();
        let frame = event("chunk", &payload);
        let messages = FrameReader::new().push(&frame).unwrap();
        let reading = read_message(&messages[0]);
        assert_eq!(
            (reading.input_tokens, reading.output_tokens),
            (Some(5), Some(8))
        );
    }
}
