//! Flushing held text, event ids and the channel bound, with a filter that holds every
//! channel's text until it ends.
use super::*;
use crate::sse::SseParser;

/// Holds each channel's text until it ends, and upper-cases whole strings with `x`.
#[derive(Default)]
struct HoldAll {
    held: BTreeMap<Channel, String>,
}

impl TextFilter for HoldAll {
    fn push(&mut self, channel: Channel, text: &str) -> String {
        self.held.entry(channel).or_default().push_str(text);
        String::new()
    }
    fn end(&mut self, channel: Channel) -> String {
        self.held.remove(&channel).unwrap_or_default()
    }
    fn whole(&mut self, text: &str) -> Option<String> {
        text.contains('x').then(|| text.to_uppercase())
    }
}

fn run(family: Wire, input: &str) -> Vec<(String, Value)> {
    let mut stream = TextStream::new(family);
    let mut filter = HoldAll::default();
    let mut out = Vec::new();
    for event in SseParser::new().push(input.as_bytes()) {
        out.extend(stream.sse_event(&event, &mut filter));
    }
    out.extend(stream.finish(&mut filter));
    SseParser::new()
        .push(&out)
        .into_iter()
        .map(|e| {
            let v = serde_json::from_str(&e.data).unwrap_or(Value::String(e.data));
            (e.event, v)
        })
        .collect()
}

#[test]
fn held_openai_text_is_flushed_in_a_chunk_before_the_one_that_ends_its_choice() {
    let input = "data: {\"id\":\"c1\",\"choices\":[{\"index\":0,\"delta\":{\"content\":\"ab\"}},{\"index\":1,\"delta\":{\"refusal\":\"no\"}}]}\n\n\
        data: {\"id\":\"c1\",\"choices\":[{\"index\":0,\"delta\":{},\"finish_reason\":\"stop\"}]}\n\n\
        data: {\"id\":\"c1\",\"choices\":[{\"index\":1,\"delta\":{\"refusal\":\"pe\"},\"finish_reason\":\"stop\"}]}\n\n\
        data: [DONE]\n\n";
    let events = run(Wire::OpenAi, input);
    let data: Vec<Value> = events.into_iter().map(|(_, v)| v).collect();
    assert_eq!(data[0]["choices"][0]["delta"]["content"], "");
    assert_eq!(
        data[1],
        json!({"id": "c1", "choices": [{"index": 0, "delta": {"content": "ab"}, "finish_reason": null}]})
    );
    assert_eq!(data[2]["choices"][0]["finish_reason"], "stop");
    // Choice 1 ends in an event carrying its text: the rest goes there.
    assert_eq!(data[3]["choices"][0]["delta"]["refusal"], "nope");
    assert_eq!(data[4], json!("[DONE]"));
    assert_eq!(data.len(), 5);
}

#[test]
fn held_anthropic_text_is_flushed_in_a_named_delta_before_the_block_stops() {
    let input = "event: content_block_delta\ndata: {\"type\":\"content_block_delta\",\"index\":0,\"delta\":{\"type\":\"text_delta\",\"text\":\"hi\"}}\n\n\
        event: content_block_stop\ndata: {\"type\":\"content_block_stop\",\"index\":0}\n\n\
        event: message_delta\ndata: {\"type\":\"message_delta\",\"delta\":{\"stop_reason\":\"xyz\"}}\n\n";
    let events = run(Wire::Anthropic, input);
    let names: Vec<&str> = events.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(
        names,
        [
            "content_block_delta",
            "content_block_delta",
            "content_block_stop",
            "message_delta"
        ]
    );
    assert_eq!(events[0].1["delta"]["text"], "");
    assert_eq!(events[1].1["delta"]["text"], "hi");
    // Strings outside any channel are filtered whole.
    assert_eq!(events[3].1["delta"]["stop_reason"], "XYZ");
}

#[test]
fn a_stream_opening_too_many_channels_overflows_and_their_text_is_dropped() {
    let choices: Vec<Value> = (0..=MAX_OPEN_CHANNELS)
        .map(|i| json!({"index": i, "delta": {"content": "x"}}))
        .collect();
    let input = format!("data: {}\n\n", json!({ "choices": choices }));
    let mut stream = TextStream::new(Wire::OpenAi);
    let mut filter = HoldAll::default();
    let mut out = Vec::new();
    for event in SseParser::new().push(input.as_bytes()) {
        out.extend(stream.sse_event(&event, &mut filter));
    }
    assert!(stream.overflowed());
    assert_eq!(filter.held.len(), MAX_OPEN_CHANNELS);
}

#[test]
fn event_ids_are_kept_on_their_events() {
    let mut stream = TextStream::new(Wire::Mcp);
    let mut filter = HoldAll::default();
    let mut out = Vec::new();
    for event in SseParser::new().push(b"id: 7\ndata: {\"jsonrpc\":\"2.0\"}\n\n") {
        out.extend(stream.sse_event(&event, &mut filter));
    }
    let events = SseParser::new().push(&out);
    assert_eq!(events[0].id.as_deref(), Some("7"));
    assert_eq!(events[0].data, "{\"jsonrpc\":\"2.0\"}");
}

#[test]
fn a_stream_cut_without_its_end_event_flushes_at_the_end() {
    let input = "data: {\"candidates\":[{\"index\":0,\"content\":{\"parts\":[{\"text\":\"abc\"}]}}],\"usageMetadata\":{\"promptTokenCount\":1}}\r\n\r\n";
    let events = run(Wire::Gemini, input);
    assert_eq!(events.len(), 2);
    assert_eq!(
        events[1].1,
        json!({"candidates": [{"index": 0, "content": {"role": "model", "parts": [{"text": "abc"}]}}]})
    );
}

#[test]
fn bedrock_frames_are_re_encoded_with_the_held_text_before_the_block_stops() {
    use crate::bedrock::FrameReader;
    use aws_smithy_types::event_stream::HeaderValue;
    let frame = |kind: &str, payload: Value| {
        let text = |v: &str| HeaderValue::String(v.to_string().into());
        Message::new(payload.to_string().into_bytes())
            .add_header(Header::new(":event-type", text(kind)))
            .add_header(Header::new(":message-type", text("event")))
    };
    let mut stream = TextStream::new(Wire::Bedrock);
    let mut filter = HoldAll::default();
    let mut out = Vec::new();
    for message in [
        frame(
            "contentBlockDelta",
            json!({"contentBlockIndex": 0, "delta": {"text": "he"}}),
        ),
        frame(
            "contentBlockDelta",
            json!({"contentBlockIndex": 0, "delta": {"text": "llo"}}),
        ),
        frame("contentBlockStop", json!({"contentBlockIndex": 0})),
    ] {
        out.extend(stream.frame(&message, &mut filter));
    }
    let messages = FrameReader::new().push(&out).unwrap_or_default();
    let texts: Vec<Value> = messages
        .iter()
        .map(|m| serde_json::from_slice::<Value>(m.payload()).unwrap_or_default())
        .map(|v| v["delta"]["text"].clone())
        .collect();
    assert_eq!(texts, [json!(""), json!(""), json!("hello"), Value::Null]);
    assert_eq!(
        bedrock::string_header(&messages[2], ":event-type"),
        Some("contentBlockDelta")
    );
}
