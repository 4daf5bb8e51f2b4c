//! `StreamMeter`: reads usage from a streamed response as it passes, one chunk at a time,
//! and, when the gateway asked for usage the client did not, removes the extra chunk.
//! Streams are Server-Sent Events, or for Bedrock AWS's binary event-stream frames.

use crate::bedrock::FrameReader;
use crate::openai::EventReading;
use crate::route::{Dialect, Wire};
use crate::sse::SseParser;
use crate::stream_text::{TextFilter, TextStream};
use crate::usage::Usage;
use crate::{anthropic, bedrock, gemini, openai};

/// How a stream is cut into events.
#[derive(Debug)]
enum Framing {
    Sse(SseParser),
    EventStream(FrameReader),
}

/// Whether a response with this `Content-Type` is a stream a [`StreamMeter`] reads
/// event by event: Server-Sent Events, or AWS's binary event-stream (Bedrock).
pub fn is_event_stream(content_type: &str) -> bool {
    content_type.starts_with("text/event-stream") || content_type.starts_with(bedrock::EVENT_STREAM)
}

/// Usage read from a whole (not streamed) response.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BodyUsage {
    /// The usage the response reports, if it reports any.
    pub usage: Option<Usage>,
    /// The body was parsed whole as one JSON object to find it, so it need not be
    /// checked again (Bedrock's usage may come from headers alone: then `false`).
    pub parsed_whole: bool,
}

impl Dialect {
    /// The usage a whole response of this dialect reports, in its headers or body.
    /// Tool and plain HTTP upstreams report none.
    pub fn usage_of_response(self, headers: &http::HeaderMap, body: &[u8]) -> BodyUsage {
        let from_body = |usage: Option<Usage>| BodyUsage {
            usage,
            parsed_whole: usage.is_some(),
        };
        match self.0 {
            Wire::OpenAi | Wire::Azure => from_body(openai::usage_from_json(body)),
            Wire::Anthropic => from_body(anthropic::usage_from_json(body)),
            Wire::Gemini | Wire::Vertex => from_body(gemini::usage_from_json(body)),
            Wire::Bedrock => BodyUsage {
                usage: bedrock::usage_from_response(headers, body),
                parsed_whole: false,
            },
            Wire::Mcp | Wire::Http => BodyUsage {
                usage: None,
                parsed_whole: false,
            },
        }
    }

    /// Whether every successful (non-streamed) response of this dialect is JSON, so one
    /// that is not is the upstream's failure.
    pub fn success_is_json(self) -> bool {
        matches!(self.0, Wire::OpenAi | Wire::Anthropic | Wire::Bedrock)
    }
}

/// Metering state of one streamed response.
#[derive(Debug)]
pub struct StreamMeter {
    family: Wire,
    framing: Framing,
    usage: Option<Usage>,
    output_chars: u64,
    drop_usage_chunk: bool,
    text: TextStream,
    /// An event-stream frame could not be decoded: nothing after it can be read.
    corrupt: bool,
    /// An event stated usage that cannot be read: the stream's usage is estimated.
    usage_unreadable: bool,
}

impl StreamMeter {
    /// A meter for a stream of `dialect`; with `drop_usage_chunk`, the usage-only chunk
    /// the gateway asked for is removed from what the client sees.
    pub fn new(dialect: Dialect, drop_usage_chunk: bool) -> Self {
        let family = dialect.0;
        Self {
            family,
            framing: match family {
                Wire::Bedrock => Framing::EventStream(FrameReader::new()),
                _ => Framing::Sse(SseParser::new()),
            },
            usage: None,
            output_chars: 0,
            drop_usage_chunk,
            text: TextStream::new(family),
            corrupt: false,
            usage_unreadable: false,
        }
    }

    /// Reads a chunk. Returns what to send on in its place: `None` to send the chunk as
    /// it is, or the bytes of the events it completed, minus any removed chunk.
    pub fn feed(&mut self, chunk: &[u8]) -> Option<Vec<u8>> {
        match &mut self.framing {
            Framing::Sse(parser) => {
                let events = parser.push(chunk);
                self.read(events)
            }
            Framing::EventStream(reader) => {
                // Frames pass through untouched; a corrupt one ends the metering, not the
                // stream: the client's SDK sees the same bytes and reports the error.
                let messages = reader.push(chunk).unwrap_or_default();
                for message in &messages {
                    self.add(bedrock::read_message(message));
                }
                None
            }
        }
    }

    /// Ends the stream; returns bytes still to send, as [`StreamMeter::feed`] does.
    pub fn finish(&mut self) -> Option<Vec<u8>> {
        match &mut self.framing {
            Framing::Sse(parser) => {
                let events = parser.finish();
                self.read(events)
            }
            Framing::EventStream(_) => None,
        }
    }

    /// Reads a chunk and filters the text it carries (see [`crate::stream_text`]);
    /// returns the events it completed, rewritten, minus any removed chunk. After a
    /// corrupt event-stream frame nothing more is returned: bytes that cannot be read
    /// cannot be filtered.
    pub fn feed_filtered(&mut self, chunk: &[u8], filter: &mut dyn TextFilter) -> Vec<u8> {
        let mut out = Vec::new();
        match &mut self.framing {
            Framing::Sse(parser) => {
                for event in parser.push(chunk) {
                    if let Some(event) = self.read_one(event) {
                        out.extend(self.text.sse_event(&event, filter));
                    }
                }
            }
            Framing::EventStream(reader) => {
                let messages = reader.push(chunk).unwrap_or_default();
                self.corrupt |= reader.failed();
                for message in messages {
                    self.add(bedrock::read_message(&message));
                    out.extend(self.text.frame(&message, filter));
                }
            }
        }
        out
    }

    /// Whether a filtered stream met a frame it could not decode, an SSE event over
    /// [`crate::sse::MAX_EVENT_BYTES`] (dropped unread), or opened more text channels than
    /// [`crate::stream_text::MAX_OPEN_CHANNELS`]: what could not be filtered was not passed
    /// on, and the stream should be cut so the client does not take it as complete.
    pub fn is_corrupt(&self) -> bool {
        let oversized = matches!(&self.framing, Framing::Sse(parser) if parser.oversized() > 0);
        self.corrupt || oversized || self.text.overflowed()
    }

    /// Ends a filtered stream; returns the bytes still to send: its last events and those
    /// that flush what the filter held.
    pub fn finish_filtered(&mut self, filter: &mut dyn TextFilter) -> Vec<u8> {
        let mut out = Vec::new();
        if let Framing::Sse(parser) = &mut self.framing {
            for event in parser.finish() {
                if let Some(event) = self.read_one(event) {
                    out.extend(self.text.sse_event(&event, filter));
                }
            }
        }
        out.extend(self.text.finish(filter));
        out
    }

    /// Meters one event; returns it unless it is the usage chunk to remove.
    fn read_one(&mut self, event: crate::sse::SseEvent) -> Option<crate::sse::SseEvent> {
        let reading = self.reading(&event);
        let usage_only = reading.usage_only;
        self.add(reading);
        (!(usage_only && self.drop_usage_chunk)).then_some(event)
    }

    fn reading(&self, event: &crate::sse::SseEvent) -> EventReading {
        match self.family {
            Wire::OpenAi | Wire::Azure => openai::read_event(event),
            Wire::Anthropic => anthropic::read_event(event),
            Wire::Gemini | Wire::Vertex => gemini::read_event(event),
            Wire::Bedrock | Wire::Mcp | Wire::Http => Default::default(),
        }
    }

    fn read(&mut self, events: Vec<crate::sse::SseEvent>) -> Option<Vec<u8>> {
        let mut out = self.drop_usage_chunk.then(Vec::new);
        for event in events {
            let reading = self.reading(&event);
            let usage_only = reading.usage_only;
            self.add(reading);
            if let Some(out) = out.as_mut()
                && !usage_only
            {
                out.extend_from_slice(&event.raw);
            }
        }
        out
    }

    fn add(&mut self, reading: EventReading) {
        self.output_chars = self.output_chars.saturating_add(reading.output_chars);
        self.usage_unreadable |= reading.usage_unreadable;
        // Usage may come in parts; each part replaces what it reports.
        if reading.input_tokens.is_some() || reading.output_tokens.is_some() {
            let u = self.usage.get_or_insert_with(Usage::default);
            if let Some(n) = reading.input_tokens {
                u.input_tokens = n;
            }
            if let Some(n) = reading.output_tokens {
                u.output_tokens = n;
            }
            if let Some(n) = reading.cached_input_tokens {
                u.cached_input_tokens = n.min(u.input_tokens.max(n));
            }
        }
    }

    /// Usage the stream reported, if any and if all it stated could be read.
    pub fn usage(&self) -> Option<Usage> {
        self.usage.filter(|_| !self.usage_unreadable)
    }

    /// Characters of generated text seen, for an estimate when no usage came.
    pub fn output_chars(&self) -> u64 {
        self.output_chars
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Channel;

    const STREAM: &str = "data: {\"choices\":[{\"delta\":{\"content\":\"Hi there\"}}]}\n\n\
        data: {\"choices\":[],\"usage\":{\"prompt_tokens\":3,\"completion_tokens\":2}}\n\n\
        data: [DONE]\n\n";

    /// Usage in a frame that shares its chunk with a malformed frame is metered, as it is
    /// when the two come in separate chunks; a filtered stream is then marked corrupt.
    #[test]
    fn an_event_stream_is_metered_up_to_a_corrupt_frame_however_it_is_cut() {
        let good = bedrock::event_frame(
            "metadata",
            br#"{"usage":{"inputTokens":7,"outputTokens":2}}"#.to_vec(),
        );
        let mut stream = good.clone();
        stream.extend_from_slice(&[0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0]);
        for cut in [good.len(), stream.len()] {
            let mut m = StreamMeter::new(Dialect(Wire::Bedrock), false);
            m.feed(&stream[..cut]);
            m.feed(&stream[cut..]);
            let usage = m.usage().map(|u| (u.input_tokens, u.output_tokens));
            assert_eq!(usage, Some((7, 2)), "cut at {cut}");
        }
        let mut m = StreamMeter::new(Dialect(Wire::Bedrock), false);
        assert!(!m.feed_filtered(&stream, &mut Keep).is_empty());
        assert!(m.is_corrupt());
        assert_eq!(m.usage().map(|u| u.input_tokens), Some(7));
    }

    struct Keep;
    impl TextFilter for Keep {
        fn push(&mut self, _: Channel, text: &str) -> String {
            text.to_string()
        }
        fn end(&mut self, _: Channel) -> String {
            String::new()
        }
        fn whole(&mut self, _: &str) -> Option<String> {
            None
        }
    }

    /// An event over the bound is dropped unread: the filtered stream is corrupt, so the
    /// gateway cuts it rather than pass an answer with a hole as complete.
    #[test]
    fn an_event_over_the_bound_makes_a_filtered_stream_corrupt() {
        let mut m = StreamMeter::new(Dialect(Wire::OpenAi), false);
        m.feed_filtered(STREAM.as_bytes(), &mut Keep);
        assert!(!m.is_corrupt());
        let big = format!(
            "data: \"{}\"\n\n",
            "x".repeat(2 * crate::sse::MAX_EVENT_BYTES)
        );
        for piece in big.as_bytes().chunks(64 * 1024) {
            m.feed_filtered(piece, &mut Keep);
        }
        assert!(m.is_corrupt());
    }

    /// Usage stated with a count that is not a non-negative integer is not taken as zero:
    /// the stream's usage is unknown (then estimated); sums saturate instead of wrapping.
    #[test]
    fn unreadable_usage_counts_leave_the_usage_unknown_and_huge_ones_saturate() {
        for (wire, event) in [
            (
                Wire::OpenAi,
                r#"data: {"choices":[],"usage":{"prompt_tokens":3,"completion_tokens":-2}}"#,
            ),
            (
                Wire::OpenAi,
                r#"data: {"type":"response.completed","response":{"usage":{"input_tokens":3,"output_tokens":2.5}}}"#,
            ),
            (
                Wire::Anthropic,
                r#"data: {"type":"message_delta","usage":{"output_tokens":"many"}}"#,
            ),
            (
                Wire::Gemini,
                r#"data: {"usageMetadata":{"promptTokenCount":3,"candidatesTokenCount":-1}}"#,
            ),
        ] {
            let mut m = StreamMeter::new(Dialect(wire), false);
            m.feed(STREAM.as_bytes());
            m.feed(format!("{event}\n\n").as_bytes());
            assert_eq!(m.usage(), None, "{event}");
        }
        let max = u64::MAX;
        for (wire, event) in [
            (
                Wire::Anthropic,
                format!(
                    r#"data: {{"type":"message_start","message":{{"usage":{{"input_tokens":{max},"cache_read_input_tokens":5,"output_tokens":1}}}}}}"#
                ),
            ),
            (
                Wire::Gemini,
                format!(
                    r#"data: {{"usageMetadata":{{"promptTokenCount":{max},"candidatesTokenCount":{max},"thoughtsTokenCount":9}}}}"#
                ),
            ),
        ] {
            let mut m = StreamMeter::new(Dialect(wire), false);
            m.feed(format!("{event}\n\n").as_bytes());
            assert_eq!(m.usage().map(|u| u.input_tokens), Some(max), "{event}");
        }
        assert_eq!(
            crate::openai::usage_from_json(
                br#"{"usage":{"prompt_tokens":3,"completion_tokens":-2}}"#
            ),
            None
        );
    }

    #[test]
    fn meters_and_passes_through_unchanged() {
        for size in 1..STREAM.len() {
            let mut m = StreamMeter::new(Dialect(Wire::OpenAi), false);
            for chunk in STREAM.as_bytes().chunks(size) {
                assert_eq!(m.feed(chunk), None);
            }
            assert_eq!(
                m.usage().map(|u| (u.input_tokens, u.output_tokens)),
                Some((3, 2)),
                "{size}"
            );
            assert_eq!(m.output_chars(), 8);
        }
    }

    #[test]
    fn removes_the_usage_chunk_it_asked_for() {
        for size in 1..STREAM.len() {
            let mut m = StreamMeter::new(Dialect(Wire::OpenAi), true);
            let mut seen = Vec::new();
            for chunk in STREAM.as_bytes().chunks(size) {
                seen.extend(m.feed(chunk).unwrap());
            }
            seen.extend(m.finish().unwrap());
            let seen = String::from_utf8(seen).unwrap();
            assert!(!seen.contains("usage"), "{size}: {seen}");
            assert!(seen.contains("Hi there") && seen.ends_with("data: [DONE]\n\n"));
            assert_eq!(m.usage().map(|u| u.output_tokens), Some(2));
        }
    }

    #[test]
    fn a_stream_without_usage_or_cut_off_is_still_read() {
        let mut m = StreamMeter::new(Dialect(Wire::OpenAi), false);
        m.feed(b"data: {\"choices\":[{\"delta\":{\"content\":\"abcd\"}}]}\n\ndata: {\"choi");
        m.finish();
        assert_eq!(m.usage(), None);
        assert_eq!(m.output_chars(), 4);
    }
}
