//! The text a streamed response carries, per channel, and its events rewritten with that
//! text filtered: so the gateway scans what a client reassembles (a choice's content, a
//! content block's text, a tool call's arguments), decoded and across events, not only
//! each event's bytes.
//!
//! Providers stream generated text as fragments, a few characters an event, on channels:
//! OpenAI chat in `choices[i].delta.content` and `delta.tool_calls[k].function.arguments`;
//! the Responses API in `response.output_text.delta` and
//! `response.function_call_arguments.delta`; Anthropic in `content_block_delta` by block
//! index (`text_delta.text`, `input_json_delta.partial_json`, `thinking_delta.thinking`);
//! Gemini in `candidates[i].content.parts[j].text`; Bedrock Converse in
//! `contentBlockDelta` frames. A [`TextFilter`] sees each channel's text in order and
//! returns what may be sent now, which replaces the event's fragment. What it holds back
//! is sent in the channel's next fragment or, when the channel ends (`finish_reason`,
//! `content_block_stop`, `[DONE]`, the stream's end), in an event of the provider's own
//! shape written just before the event that ends it. Event order is kept.
//!
//! Every other string of an event (the whole text of a `….done` event, an error message)
//! is filtered whole, and so is the data of an event that is not JSON. Events are
//! re-serialized from what was filtered, so a client reads exactly the values the filter
//! saw: a duplicate key cannot show it a value the gateway did not scan. Comments and
//! fields other than `event`, `data` and `id` are not passed on.

use std::collections::{BTreeMap, BTreeSet};

use aws_smithy_eventstream::frame::write_message_to;
use aws_smithy_types::event_stream::{Header, Message};
use serde_json::{Value, json};

use crate::bedrock;
use crate::route::Wire;
use crate::sse::SseEvent;

/// Most channels a stream may have open at once. OpenAI allows 128 choices; content
/// blocks end one after the other. Each open channel costs the filter a redactor, so a
/// stream that opens more is refused (see [`TextStream::overflowed`]).
pub const MAX_OPEN_CHANNELS: usize = 256;

/// What a channel's text is: the kinds are written back in different shapes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum TextKind {
    /// Generated text.
    Text,
    /// A tool call's arguments, as JSON text in pieces.
    ToolInput,
    /// Reasoning text.
    Thinking,
}

/// One stream of text within a response: a choice, candidate or content block (`index`),
/// the part or tool call within it (`part`), and what kind of text it is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Channel {
    /// The choice, candidate or content block.
    pub index: u64,
    /// The tool call (OpenAI) or which text field (OpenAI's `refusal` is 1); 0 otherwise.
    pub part: u64,
    /// What kind of text it is.
    pub kind: TextKind,
}

/// Filters the text of a response, channel by channel. Implemented by the gateway with
/// its secret redactor.
pub trait TextFilter {
    /// Takes the next text of `channel`; returns what may be sent now (maybe less, when
    /// the end of `text` could be the start of something to replace).
    fn push(&mut self, channel: Channel, text: &str) -> String;
    /// Ends `channel`; returns the text it still held, filtered.
    fn end(&mut self, channel: Channel) -> String;
    /// Filters a string that is whole (belongs to no channel); `None` when unchanged.
    fn whole(&mut self, text: &str) -> Option<String>;
}

/// A fragment of a channel found in an event: where it is (a JSON pointer) and its text.
struct Fragment {
    channel: Channel,
    pointer: String,
}

/// Which channels an event ends.
enum Ends {
    None,
    /// Every channel of these indexes.
    Indexes(Vec<u64>),
    All,
}

/// The text state of one streamed response: the channels seen and, for each, the last
/// event that carried it (the template of an event written to flush it).
pub struct TextStream {
    family: Wire,
    open: BTreeSet<Channel>,
    templates: BTreeMap<Channel, (Value, String)>,
    /// The stream names its events (`event:` lines): flushing events are named too.
    named: bool,
    /// The line ending of the stream's last event.
    newline: &'static str,
    /// A fragment came for a channel beyond [`MAX_OPEN_CHANNELS`].
    overflowed: bool,
}

impl std::fmt::Debug for TextStream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The templates hold generated text, which may be a secret in the making.
        f.debug_struct("TextStream")
            .field("family", &self.family)
            .field("open", &self.open.len())
            .finish_non_exhaustive()
    }
}

impl TextStream {
    /// The text state of a new stream of `family`.
    pub(crate) fn new(family: Wire) -> Self {
        Self {
            family,
            open: BTreeSet::new(),
            templates: BTreeMap::new(),
            named: false,
            newline: "\n",
            overflowed: false,
        }
    }

    /// Whether the stream opened more than [`MAX_OPEN_CHANNELS`] channels at once: the
    /// text of the extra ones was dropped, and the stream should be cut.
    pub fn overflowed(&self) -> bool {
        self.overflowed
    }

    /// Filters one SSE event; returns the bytes to send in its place: events written to
    /// flush channels it ends, then the event itself.
    pub fn sse_event(&mut self, event: &SseEvent, filter: &mut dyn TextFilter) -> Vec<u8> {
        let mut out = Vec::new();
        self.named |= !event.event.is_empty();
        // Events are written with the line ending the upstream uses (Gemini's is CRLF).
        self.newline = if event.raw.ends_with(b"\r\n") {
            "\r\n"
        } else if event.raw.ends_with(b"\r") {
            "\r"
        } else {
            "\n"
        };
        let Ok(mut value) = serde_json::from_str::<Value>(&event.data) else {
            if matches!(self.family, Wire::OpenAi | Wire::Azure) && event.data == "[DONE]" {
                for (channel, rest) in self.end(&Ends::All, filter) {
                    if let Some(synthetic) = self.synthetic(channel, rest) {
                        write_sse(
                            &mut out,
                            self.newline,
                            flush_event_name(self.named, &synthetic),
                            &synthetic,
                        );
                    }
                }
            }
            let data = filter
                .whole(&event.data)
                .unwrap_or_else(|| event.data.clone());
            write_id(&mut out, self.newline, event.id.as_deref(), filter);
            write_sse_data(&mut out, self.newline, &event.event, &data);
            return out;
        };
        let (fragments, ends) = match self.family {
            Wire::OpenAi | Wire::Azure => openai_text(&value),
            Wire::Anthropic => anthropic_text(&value),
            Wire::Gemini | Wire::Vertex => gemini_text(&value),
            Wire::Bedrock | Wire::Mcp | Wire::Http => (Vec::new(), Ends::None),
        };
        for synthetic in self.apply(&mut value, &fragments, &ends, filter) {
            write_sse(
                &mut out,
                self.newline,
                flush_event_name(self.named, &synthetic),
                &synthetic,
            );
        }
        write_id(&mut out, self.newline, event.id.as_deref(), filter);
        write_sse(&mut out, self.newline, &event.event, &value);
        out
    }

    /// Filters one Bedrock event-stream message; returns the frames to send in its place,
    /// re-encoded with valid CRCs.
    pub fn frame(&mut self, message: &Message, filter: &mut dyn TextFilter) -> Vec<u8> {
        let mut out = Vec::new();
        let Ok(mut value) = serde_json::from_slice::<Value>(message.payload()) else {
            let payload = match std::str::from_utf8(message.payload()) {
                Ok(text) => filter
                    .whole(text)
                    .map_or_else(|| message.payload().to_vec(), String::into_bytes),
                // Binary: nothing a client reads as text.
                Err(_) => message.payload().to_vec(),
            };
            write_frame(&mut out, message.headers().to_vec(), payload);
            return out;
        };
        let is_event = bedrock::string_header(message, ":message-type") == Some("event");
        let (fragments, ends) = match bedrock::string_header(message, ":event-type") {
            Some("chunk") if is_event => {
                filter_chunk(&mut value, filter);
                (Vec::new(), Ends::None)
            }
            Some(kind) if is_event => bedrock_text(kind, &value),
            _ => (Vec::new(), Ends::None),
        };
        for synthetic in self.apply(&mut value, &fragments, &ends, filter) {
            out.extend(bedrock::event_frame(
                "contentBlockDelta",
                synthetic.to_string().into_bytes(),
            ));
        }
        write_frame(
            &mut out,
            message.headers().to_vec(),
            value.to_string().into_bytes(),
        );
        out
    }

    /// Ends the stream: every channel still open is flushed, in events written last.
    pub fn finish(&mut self, filter: &mut dyn TextFilter) -> Vec<u8> {
        let mut out = Vec::new();
        for (channel, rest) in self.end(&Ends::All, filter) {
            let Some(synthetic) = self.synthetic(channel, rest) else {
                continue;
            };
            if self.family == Wire::Bedrock {
                out.extend(bedrock::event_frame(
                    "contentBlockDelta",
                    synthetic.to_string().into_bytes(),
                ));
            } else {
                write_sse(
                    &mut out,
                    self.newline,
                    flush_event_name(self.named, &synthetic),
                    &synthetic,
                );
            }
        }
        out
    }

    /// Replaces the event's fragments with their channels' filtered text and its other
    /// strings with their filtered whole; returns the events to write before it.
    fn apply(
        &mut self,
        value: &mut Value,
        fragments: &[Fragment],
        ends: &Ends,
        filter: &mut dyn TextFilter,
    ) -> Vec<Value> {
        // The first event of a channel is kept as the template of its flushing events.
        let template = fragments
            .iter()
            .any(|f| !self.templates.contains_key(&f.channel))
            .then(|| value.clone());
        // The fragments are taken out while the rest is filtered whole, then put back.
        let texts: Vec<Value> = fragments
            .iter()
            .map(|f| {
                value
                    .pointer_mut(&f.pointer)
                    .map(Value::take)
                    .unwrap_or_default()
            })
            .collect();
        filter_strings(value, filter);
        for (fragment, text) in fragments.iter().zip(texts) {
            if !self.open.contains(&fragment.channel) && self.open.len() >= MAX_OPEN_CHANNELS {
                // Its text is not sent: the stream is to be cut.
                self.overflowed = true;
                if let Some(slot) = value.pointer_mut(&fragment.pointer) {
                    *slot = Value::String(String::new());
                }
                continue;
            }
            let released = filter.push(fragment.channel, text.as_str().unwrap_or_default());
            if let Some(slot) = value.pointer_mut(&fragment.pointer) {
                *slot = Value::String(released);
            }
            self.open.insert(fragment.channel);
            if let Some(template) = &template {
                self.templates
                    .entry(fragment.channel)
                    .or_insert_with(|| (template.clone(), fragment.pointer.clone()));
            }
        }
        let mut before = Vec::new();
        for (channel, rest) in self.end(ends, filter) {
            // A channel that ends in an event carrying its text gets its rest there.
            let slot = fragments
                .iter()
                .rfind(|f| f.channel == channel)
                .and_then(|f| value.pointer_mut(&f.pointer));
            match slot {
                Some(Value::String(text)) => text.push_str(&rest),
                _ => before.extend(self.synthetic(channel, rest)),
            }
        }
        before
    }

    /// Ends the channels `ends` names; returns each one's rest that is not empty.
    fn end(&mut self, ends: &Ends, filter: &mut dyn TextFilter) -> Vec<(Channel, String)> {
        let ended: Vec<Channel> = match ends {
            Ends::None => return Vec::new(),
            Ends::All => self.open.iter().copied().collect(),
            // A range per index: ending costs what it ends, not every open channel.
            Ends::Indexes(indexes) => indexes
                .iter()
                .flat_map(|&index| {
                    let first = Channel {
                        index,
                        part: 0,
                        kind: TextKind::Text,
                    };
                    let last = Channel {
                        index,
                        part: u64::MAX,
                        kind: TextKind::Thinking,
                    };
                    self.open.range(first..=last).copied()
                })
                .collect(),
        };
        let mut out = Vec::new();
        for channel in ended {
            self.open.remove(&channel);
            let rest = filter.end(channel);
            if !rest.is_empty() {
                out.push((channel, rest));
            }
        }
        out
    }

    /// An event of the provider's shape carrying only `text` on `channel`, made from the
    /// last event that carried the channel.
    fn synthetic(&self, channel: Channel, text: String) -> Option<Value> {
        let (template, pointer) = self.templates.get(&channel)?;
        let mut event = template.clone();
        let object = event.as_object_mut()?;
        match self.family {
            Wire::OpenAi | Wire::Azure if object.contains_key("choices") => {
                object.remove("usage");
                let delta = match channel.kind {
                    TextKind::ToolInput => json!({"tool_calls": [
                        {"index": channel.part, "function": {"arguments": text}}
                    ]}),
                    // The field the channel's text came in: `content`, `refusal`, ….
                    TextKind::Text | TextKind::Thinking => {
                        let field = pointer.rsplit('/').next().unwrap_or("content");
                        json!({ field: text })
                    }
                };
                object.insert(
                    "choices".into(),
                    json!([{"index": channel.index, "delta": delta, "finish_reason": null}]),
                );
            }
            Wire::Gemini | Wire::Vertex => {
                object.remove("usageMetadata");
                object.insert(
                    "candidates".into(),
                    json!([{"index": channel.index, "content": {"role": "model", "parts": [{"text": text}]}}]),
                );
            }
            _ => *event.pointer_mut(pointer)? = Value::String(text),
        }
        Some(event)
    }
}

/// Filters every string value of `value` whole (keys are left as they are): for bodies
/// read whole, whose strings a client reads decoded.
pub fn filter_strings(value: &mut Value, filter: &mut dyn TextFilter) {
    match value {
        Value::String(text) => {
            if let Some(filtered) = filter.whole(text) {
                *text = filtered;
            }
        }
        Value::Array(items) => items.iter_mut().for_each(|v| filter_strings(v, filter)),
        Value::Object(map) => map.values_mut().for_each(|v| filter_strings(v, filter)),
        _ => {}
    }
}

fn fragment(index: u64, part: u64, kind: TextKind, pointer: String) -> Fragment {
    Fragment {
        channel: Channel { index, part, kind },
        pointer,
    }
}

fn index_of(v: &Value, key: &str, default: usize) -> u64 {
    v.get(key).and_then(Value::as_u64).unwrap_or(default as u64)
}

/// OpenAI chat chunks and Responses API events.
fn openai_text(v: &Value) -> (Vec<Fragment>, Ends) {
    if let Some(kind) = v.get("type").and_then(Value::as_str) {
        let output = index_of(v, "output_index", 0);
        let has_delta = v.get("delta").is_some_and(Value::is_string);
        let text = |kind, part| {
            (
                vec![fragment(output, part, kind, "/delta".into())],
                Ends::None,
            )
        };
        return match kind {
            "response.output_text.delta" if has_delta => {
                text(TextKind::Text, index_of(v, "content_index", 0))
            }
            "response.function_call_arguments.delta" if has_delta => text(TextKind::ToolInput, 0),
            "response.reasoning_summary_text.delta" if has_delta => {
                text(TextKind::Thinking, index_of(v, "summary_index", 0))
            }
            "response.output_text.done"
            | "response.function_call_arguments.done"
            | "response.reasoning_summary_text.done"
            | "response.output_item.done" => (Vec::new(), Ends::Indexes(vec![output])),
            "response.completed" | "response.incomplete" | "response.failed" | "error" => {
                (Vec::new(), Ends::All)
            }
            _ => (Vec::new(), Ends::None),
        };
    }
    let mut fragments = Vec::new();
    let mut ended = Vec::new();
    let choices = v.get("choices").and_then(Value::as_array);
    for (pos, choice) in choices.into_iter().flatten().enumerate() {
        let index = index_of(choice, "index", pos);
        if let Some(delta) = choice.get("delta") {
            // A refusal streams like content; `reasoning_content` is what OpenAI-compatible
            // reasoning models add.
            for (field, part, kind) in [
                ("content", 0, TextKind::Text),
                ("refusal", 1, TextKind::Text),
                ("reasoning_content", 0, TextKind::Thinking),
            ] {
                if delta.get(field).is_some_and(Value::is_string) {
                    fragments.push(fragment(
                        index,
                        part,
                        kind,
                        format!("/choices/{pos}/delta/{field}"),
                    ));
                }
            }
            let calls = delta.get("tool_calls").and_then(Value::as_array);
            for (call_pos, call) in calls.into_iter().flatten().enumerate() {
                let arguments = call.get("function").and_then(|f| f.get("arguments"));
                if arguments.is_some_and(Value::is_string) {
                    fragments.push(fragment(
                        index,
                        index_of(call, "index", call_pos),
                        TextKind::ToolInput,
                        format!("/choices/{pos}/delta/tool_calls/{call_pos}/function/arguments"),
                    ));
                }
            }
        }
        if choice.get("finish_reason").is_some_and(Value::is_string) {
            ended.push(index);
        }
    }
    (fragments, indexes(ended))
}

fn indexes(ended: Vec<u64>) -> Ends {
    if ended.is_empty() {
        Ends::None
    } else {
        Ends::Indexes(ended)
    }
}

/// Anthropic Messages events.
fn anthropic_text(v: &Value) -> (Vec<Fragment>, Ends) {
    let index = index_of(v, "index", 0);
    match v.get("type").and_then(Value::as_str) {
        Some("content_block_delta") => {
            let delta = v.get("delta");
            let field = match delta.and_then(|d| d.get("type")).and_then(Value::as_str) {
                Some("text_delta") => Some(("text", TextKind::Text)),
                Some("input_json_delta") => Some(("partial_json", TextKind::ToolInput)),
                Some("thinking_delta") => Some(("thinking", TextKind::Thinking)),
                _ => None,
            };
            let fragments = field
                .filter(|(name, _)| {
                    delta
                        .and_then(|d| d.get(*name))
                        .is_some_and(Value::is_string)
                })
                .map(|(name, kind)| fragment(index, 0, kind, format!("/delta/{name}")));
            (fragments.into_iter().collect(), Ends::None)
        }
        Some("content_block_stop") => (Vec::new(), Ends::Indexes(vec![index])),
        Some("message_stop" | "error") => (Vec::new(), Ends::All),
        _ => (Vec::new(), Ends::None),
    }
}

/// Gemini `streamGenerateContent` chunks.
fn gemini_text(v: &Value) -> (Vec<Fragment>, Ends) {
    let mut fragments = Vec::new();
    let mut ended = Vec::new();
    let candidates = v.get("candidates").and_then(Value::as_array);
    for (pos, candidate) in candidates.into_iter().flatten().enumerate() {
        let index = index_of(candidate, "index", pos);
        let parts = candidate
            .get("content")
            .and_then(|c| c.get("parts"))
            .and_then(Value::as_array);
        // A client reads a candidate's parts joined (`chunk.text`), so they are one
        // channel: a secret split across parts is found too.
        for (part, p) in parts.into_iter().flatten().enumerate() {
            if p.get("text").is_some_and(Value::is_string) {
                fragments.push(fragment(
                    index,
                    0,
                    TextKind::Text,
                    format!("/candidates/{pos}/content/parts/{part}/text"),
                ));
            }
        }
        if candidate.get("finishReason").is_some_and(Value::is_string) {
            ended.push(index);
        }
    }
    (fragments, indexes(ended))
}

/// Bedrock Converse stream events, by `:event-type`.
fn bedrock_text(kind: &str, v: &Value) -> (Vec<Fragment>, Ends) {
    let index = index_of(v, "contentBlockIndex", 0);
    match kind {
        "contentBlockDelta" => {
            let delta = v.get("delta");
            let found = [
                ("/delta/text", TextKind::Text),
                ("/delta/toolUse/input", TextKind::ToolInput),
                ("/delta/reasoningContent/text", TextKind::Thinking),
            ]
            .into_iter()
            .filter(|(pointer, _)| {
                delta.is_some() && v.pointer(pointer).is_some_and(Value::is_string)
            })
            .map(|(pointer, kind)| fragment(index, 0, kind, pointer.into()))
            .collect();
            (found, Ends::None)
        }
        "contentBlockStop" => (Vec::new(), Ends::Indexes(vec![index])),
        "messageStop" => (Vec::new(), Ends::All),
        _ => (Vec::new(), Ends::None),
    }
}

/// An InvokeModelWithResponseStream `chunk`: the model's own JSON in base64, whose
/// strings are filtered whole.
fn filter_chunk(value: &mut Value, filter: &mut dyn TextFilter) {
    use base64::Engine;
    let engine = base64::engine::general_purpose::STANDARD;
    let Some(Value::String(bytes)) = value.get_mut("bytes") else {
        return;
    };
    let Some(mut inner) = engine
        .decode(bytes.as_bytes())
        .ok()
        .and_then(|b| serde_json::from_slice::<Value>(&b).ok())
    else {
        return;
    };
    filter_strings(&mut inner, filter);
    *bytes = engine.encode(inner.to_string());
}

fn write_frame(out: &mut Vec<u8>, headers: Vec<Header>, payload: Vec<u8>) {
    let message = Message::new_from_parts(headers, payload);
    // Headers come from a decoded frame, so encoding cannot fail; a frame that could not
    // be written is not sent.
    let mut frame = Vec::new();
    if write_message_to(&message, &mut frame).is_ok() {
        out.extend_from_slice(&frame);
    }
}

/// The `event:` name of an event written to flush a channel: its `type` where the stream
/// names its events (Anthropic, the Responses API), else none.
fn flush_event_name(named: bool, synthetic: &Value) -> &str {
    match synthetic.get("type").and_then(Value::as_str) {
        Some(kind) if named => kind,
        _ => "",
    }
}

/// The event's `id:` line, filtered whole like any other string.
fn write_id(out: &mut Vec<u8>, newline: &str, id: Option<&str>, filter: &mut dyn TextFilter) {
    if let Some(id) = id {
        let id = filter.whole(id).unwrap_or_else(|| id.to_owned());
        out.extend_from_slice(b"id: ");
        out.extend_from_slice(id.as_bytes());
        out.extend_from_slice(newline.as_bytes());
    }
}

fn write_sse(out: &mut Vec<u8>, newline: &str, event: &str, value: &Value) {
    write_sse_data(out, newline, event, &value.to_string());
}

fn write_sse_data(out: &mut Vec<u8>, newline: &str, event: &str, data: &str) {
    if !event.is_empty() {
        out.extend_from_slice(b"event: ");
        out.extend_from_slice(event.as_bytes());
        out.extend_from_slice(newline.as_bytes());
    }
    for line in data.split('\n') {
        out.extend_from_slice(b"data: ");
        out.extend_from_slice(line.as_bytes());
        out.extend_from_slice(newline.as_bytes());
    }
    out.extend_from_slice(newline.as_bytes());
}

#[cfg(test)]
mod tests;
