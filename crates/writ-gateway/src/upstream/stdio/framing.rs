//! Framing of a started server's stdout: one JSON-RPC message per line, each line
//! capped, so a server that never ends a line cannot make the gateway buffer without end.

/// What a chunk of output completed.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum Frame {
    /// One line, without its `\n` (or `\r\n`); empty lines are skipped.
    Line(Vec<u8>),
    /// A line grew past the cap: the stream cannot be read further (where the next
    /// message starts is unknown until the line ends, which it may never do).
    TooLong,
}

/// Splits a byte stream into lines of at most `max` bytes.
#[derive(Debug)]
pub(super) struct LineFramer {
    partial: Vec<u8>,
    max: usize,
}

impl LineFramer {
    pub(super) fn new(max: usize) -> Self {
        Self {
            partial: Vec::new(),
            max,
        }
    }

    /// Adds `bytes` read from the stream and returns the frames they complete, in order:
    /// the lines, and [`Frame::TooLong`] last if a line outgrew the cap (then the framer
    /// must not be used again).
    pub(super) fn push(&mut self, mut bytes: &[u8]) -> Vec<Frame> {
        let mut frames = Vec::new();
        while let Some(end) = bytes.iter().position(|&b| b == b'\n') {
            let (head, rest) = bytes.split_at(end);
            if self.partial.len() + head.len() > self.max {
                frames.push(Frame::TooLong);
                return frames;
            }
            let mut line = std::mem::take(&mut self.partial);
            line.extend_from_slice(head);
            if line.last() == Some(&b'\r') {
                line.pop();
            }
            if !line.is_empty() {
                frames.push(Frame::Line(line));
            }
            bytes = &rest[1..];
        }
        if self.partial.len() + bytes.len() > self.max {
            frames.push(Frame::TooLong);
            return frames;
        }
        self.partial.extend_from_slice(bytes);
        frames
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn line(s: &str) -> Frame {
        Frame::Line(s.as_bytes().to_vec())
    }

    #[test]
    fn lines_split_across_chunks_are_joined() {
        let mut f = LineFramer::new(64);
        assert_eq!(f.push(b"{\"a\""), vec![]);
        assert_eq!(
            f.push(b":1}\n{\"b\":2}\n{\"c\""),
            vec![line("{\"a\":1}"), line("{\"b\":2}")]
        );
        assert_eq!(f.push(b":3}\r\n"), vec![line("{\"c\":3}")]);
    }

    #[test]
    fn empty_lines_are_skipped() {
        let mut f = LineFramer::new(64);
        assert_eq!(f.push(b"\n\r\n{}\n\n"), vec![line("{}")]);
    }

    #[test]
    fn a_line_longer_than_the_cap_ends_the_stream_after_the_lines_before_it() {
        let mut f = LineFramer::new(8);
        // Exactly the cap is accepted; the newline is not counted.
        assert_eq!(f.push(b"12345678\n"), vec![line("12345678")]);
        assert_eq!(f.push(b"ok\n123456789\n"), vec![line("ok"), Frame::TooLong]);
        // A line that never ends is refused as soon as it outgrows the cap.
        let mut f = LineFramer::new(8);
        assert_eq!(f.push(b"1234"), vec![]);
        assert_eq!(f.push(b"56789"), vec![Frame::TooLong]);
    }
}
