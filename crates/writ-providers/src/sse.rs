//! An incremental Server-Sent Events parser (WHATWG HTML §9.2) for metering streamed
//! responses: it takes the body one chunk at a time, however the chunks are cut, and
//! yields each complete event with its exact raw bytes so they can be passed on unchanged.

/// One event: its `event:` type, its joined `data:` lines, and the bytes it came in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SseEvent {
    /// The `event:` field; empty when absent (the default type, `message`).
    pub event: String,
    /// The `data:` lines joined with `\n`.
    pub data: String,
    /// The event's own `id:` field, if it has one (MCP resumes streams by it).
    pub id: Option<String>,
    /// The event's bytes as received, through its terminating blank line.
    pub raw: Vec<u8>,
}

/// Events larger than this are dropped (counted in [`SseParser::oversized`]) so a
/// hostile upstream cannot make the gateway buffer without bound.
pub const MAX_EVENT_BYTES: usize = 1 << 20;

/// Parser state carried from one chunk to the next.
///
/// `pending` holds the current event from its first byte; `line_start` is where its next
/// unparsed line begins.
#[derive(Debug, Default)]
pub struct SseParser {
    pending: Vec<u8>,
    line_start: usize,
    event: String,
    data: String,
    id: Option<String>,
    has_data: bool,
    skipping: bool,
    oversized: u64,
}

impl SseParser {
    /// A parser at the start of a stream.
    pub fn new() -> Self {
        Self::default()
    }

    /// How many events were too large and dropped.
    pub fn oversized(&self) -> u64 {
        self.oversized
    }

    /// Whether bytes of an unfinished event are held.
    pub fn has_partial_event(&self) -> bool {
        !self.pending.is_empty()
    }

    /// Feeds one chunk; returns the events it completed.
    pub fn push(&mut self, chunk: &[u8]) -> Vec<SseEvent> {
        let mut out = Vec::new();
        self.pending.extend_from_slice(chunk);
        while let Some((end, next)) = find_line_end(&self.pending, self.line_start) {
            if end == self.line_start {
                // A blank line ends the event.
                if !self.skipping && self.has_data {
                    out.push(SseEvent {
                        event: std::mem::take(&mut self.event),
                        data: std::mem::take(&mut self.data),
                        id: self.id.take(),
                        raw: self.pending[..next].to_vec(),
                    });
                }
                self.pending.drain(..next);
                self.line_start = 0;
                self.event.clear();
                self.data.clear();
                self.id = None;
                self.has_data = false;
                self.skipping = false;
                continue;
            }
            if !self.skipping {
                let line =
                    String::from_utf8_lossy(&self.pending[self.line_start..end]).into_owned();
                self.field(&line);
            }
            self.line_start = next;
        }
        if self.pending.len() > MAX_EVENT_BYTES {
            // Forget this event but keep reading: parsing resumes after its blank line.
            if !self.skipping {
                self.oversized += 1;
                self.skipping = true;
            }
            self.pending.drain(..self.line_start);
            self.line_start = 0;
            if self.pending.len() > MAX_EVENT_BYTES {
                self.pending.clear();
            }
        }
        out
    }

    /// Ends the stream: a final `\r` is a line end after all. An event cut off before its
    /// blank line is discarded, as the standard says.
    pub fn finish(&mut self) -> Vec<SseEvent> {
        if self.pending.last() == Some(&b'\r') {
            self.push(b"\n")
        } else {
            Vec::new()
        }
    }

    fn field(&mut self, line: &str) {
        if line.starts_with(':') {
            return;
        }
        let (name, value) = match line.split_once(':') {
            Some((n, v)) => (n, v.strip_prefix(' ').unwrap_or(v)),
            None => (line, ""),
        };
        match name {
            "data" => {
                if self.has_data {
                    self.data.push('\n');
                }
                self.data.push_str(value);
                self.has_data = true;
            }
            "event" => self.event = value.to_string(),
            // An id with NUL is ignored, as the standard says.
            "id" if !value.contains('\0') => self.id = Some(value.to_string()),
            _ => {}
        }
    }
}

/// The first line end at or after `from`: `(end of content, start of next line)`.
/// A `\r` as the last byte may be the first half of `\r\n`, so it waits for more.
fn find_line_end(buf: &[u8], from: usize) -> Option<(usize, usize)> {
    let i = buf
        .get(from..)?
        .iter()
        .position(|b| *b == b'\n' || *b == b'\r')?
        + from;
    if buf[i] == b'\n' {
        return Some((i, i + 1));
    }
    match buf.get(i + 1) {
        Some(b'\n') => Some((i, i + 2)),
        Some(_) => Some((i, i + 1)),
        None => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const STREAM: &[u8] = b"event: message_start\ndata: {\"a\":1}\n\n: keep-alive comment\n\ndata: line one\ndata: line two\n\ndata: [DONE]\n\n";

    fn parse_in_chunks(input: &[u8], size: usize) -> Vec<SseEvent> {
        let mut p = SseParser::new();
        let mut events: Vec<SseEvent> = input.chunks(size).flat_map(|c| p.push(c)).collect();
        events.extend(p.finish());
        events
    }

    #[test]
    fn events_are_the_same_however_the_stream_is_cut() {
        let whole = parse_in_chunks(STREAM, STREAM.len());
        assert_eq!(whole.len(), 3);
        assert_eq!(whole[0].event, "message_start");
        assert_eq!(whole[1].data, "line one\nline two");
        assert_eq!(whole[2].data, "[DONE]");
        for size in 1..STREAM.len() {
            assert_eq!(parse_in_chunks(STREAM, size), whole, "chunk size {size}");
        }
        // Raw bytes of the events plus the comment-only block rebuild the stream.
        let raw: Vec<u8> = whole.iter().flat_map(|e| e.raw.clone()).collect();
        assert_eq!(raw.len() + b": keep-alive comment\n\n".len(), STREAM.len());
    }

    #[test]
    fn every_line_ending_is_accepted() {
        for nl in ["\n", "\r\n", "\r"] {
            let s = format!("data: x{nl}{nl}data: y{nl}{nl}");
            for size in 1..s.len() {
                let got: Vec<String> = parse_in_chunks(s.as_bytes(), size)
                    .into_iter()
                    .map(|e| e.data)
                    .collect();
                assert_eq!(got, ["x", "y"], "{nl:?} / {size}");
            }
        }
    }

    #[test]
    fn oversized_events_are_dropped_and_parsing_resumes() {
        let mut p = SseParser::new();
        let big = vec![b'x'; MAX_EVENT_BYTES + 10];
        assert!(p.push(b"data: ").is_empty());
        assert!(p.push(&big).is_empty());
        assert!(p.push(b"\n\n").is_empty());
        assert_eq!(p.oversized(), 1);
        let after = p.push(b"data: ok\n\n");
        assert_eq!(after.len(), 1);
        assert_eq!(after[0].data, "ok");
    }

    #[test]
    fn a_cut_off_stream_leaves_a_partial_event() {
        let mut p = SseParser::new();
        assert_eq!(p.push(b"data: {\"usage\":").len(), 0);
        assert!(p.has_partial_event());
    }
}
