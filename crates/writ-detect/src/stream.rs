//! Redaction of a chunked stream (a response body, an SSE stream): a secret split
//! across any chunk boundary is still found and redacted, and the output is exactly what
//! [`Scanner::redact`] would make of the whole stream, however it was chunked.
//!
//! # The window
//!
//! The redactor keeps the bytes it has not yet released and runs the same search as
//! [`Scanner::scan`] over them, with one difference: a match counts only once every byte
//! that could change it has arrived (its start plus the matcher's longest match, see
//! `search.rs`). Bytes before the earliest place a match could still begin are
//! released; the rest wait for the next chunk.
//!
//! Memory is bounded per stream: between calls at most [`Scanner::max_held_back`] bytes
//! are held — the longest match of any rule or configured secret plus 8 bytes of context.
//! With the built-in rules that is about 8.3 KiB, set by the PEM private-key rule (an
//! RSA-8192 key is about 6.3 KiB, so the block and its `END` line fit), the JWT rule
//! (8 KiB, the linter's default maximum token size) and the writ rule (8 KiB, the largest
//! writ accepted). A dedicated BEGIN/END state machine for PEM would hold less, but would
//! give up the property that one definition of a match serves both the whole-text and
//! the streaming scan.
//!
//! Holding back is rare in practice: text is held only from the first place a start
//! literal of some rule (`sk-`, `AKIA`, `-----BEGIN`, `password`…) or of a configured
//! secret occurs, or could be occurring at the very end of the chunk. Ordinary prose is
//! released at once, bar a few trailing bytes that might begin such a literal. After a
//! rule's start literal the stream waits only while a match could still begin there: the
//! rule's loose pattern runs as a lazy DFA from the literal over the bytes that came, and
//! once it is dead (`token` followed by prose, say) the wait ends. While a match is still
//! possible, and after a configured secret's prefix, it waits until the longest match has
//! passed, or the stream ends: at most about 300 bytes for most rules, 8 KiB after `eyJ`,
//! `writ_` or a private-key header. Measured on prose streamed four characters a push
//! (`cargo run --release -p writ-gateway --example stream_ttft`): under one byte held on
//! average, nine at most, against about 200 and 284 while every start literal was waited
//! on for its rule's longest match.

use std::sync::Arc;

use crate::resolve::{self, Resolver};
use crate::scanner::{Finding, ScanRule, Scanner};
use crate::search::{CONTEXT, Candidate, Search};

/// Redacts one stream. Create one per response; feed it with [`push`](Self::push) and
/// end with [`finish`](Self::finish).
pub struct StreamRedactor {
    scanner: Arc<Scanner>,
    search: Search,
    /// Bytes of the stream from offset `base` on that may still be needed.
    buf: Vec<u8>,
    base: usize,
    /// Everything before this stream offset has been released.
    cursor: usize,
    /// Final candidates not yet resolved, because an earlier-starting one may still come.
    pending: Vec<Candidate>,
    resolver: Resolver,
    findings: Vec<Finding>,
    finished: bool,
    /// Which findings are replaced; the others are reported but released unchanged.
    redact: fn(ScanRule) -> bool,
}

impl std::fmt::Debug for StreamRedactor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The held-back bytes may be a secret in the making.
        f.debug_struct("StreamRedactor")
            .field("released", &self.cursor)
            .field("held", &(self.base + self.buf.len() - self.cursor))
            .field("findings", &self.findings.len())
            .finish_non_exhaustive()
    }
}

impl StreamRedactor {
    /// A redactor for a new stream.
    pub fn new(scanner: Arc<Scanner>) -> StreamRedactor {
        Self::redacting(scanner, |_| true)
    }

    /// A redactor that replaces only the findings `redact` picks (e.g.
    /// [`ScanRule::always_redacted`]) and reports all of them: for `monitor` mode.
    pub fn redacting(scanner: Arc<Scanner>, redact: fn(ScanRule) -> bool) -> StreamRedactor {
        let search = Search::new(&scanner);
        StreamRedactor {
            scanner,
            search,
            buf: Vec::new(),
            base: 0,
            cursor: 0,
            pending: Vec::new(),
            resolver: Resolver::default(),
            findings: Vec::new(),
            finished: false,
            redact,
        }
    }

    /// Takes the next chunk; returns the redacted bytes that are safe to emit now (maybe
    /// none). After [`finish`](Self::finish) the stream is over: chunks are ignored and
    /// nothing is returned.
    pub fn push(&mut self, chunk: &[u8]) -> Vec<u8> {
        if self.finished {
            return Vec::new();
        }
        self.buf.extend_from_slice(chunk);
        self.step(false)
    }

    /// Ends the stream; returns the rest of the redacted output.
    pub fn finish(&mut self) -> Vec<u8> {
        if self.finished {
            return Vec::new();
        }
        let out = self.step(true);
        self.finished = true;
        out
    }

    /// Findings so far, with offsets in the input stream (not in the redacted output).
    pub fn findings(&self) -> &[Finding] {
        &self.findings
    }

    /// Input bytes received but not yet released.
    pub fn held_back(&self) -> usize {
        self.base + self.buf.len() - self.cursor
    }

    fn step(&mut self, eof: bool) -> Vec<u8> {
        let frontier =
            self.search
                .advance(&self.scanner, &self.buf, self.base, eof, &mut self.pending);
        resolve::sort(&mut self.pending);
        let ready = self.pending.partition_point(|c| c.start < frontier);
        let mut out = Vec::new();
        for candidate in self.pending.drain(..ready) {
            let Some(f) = self.resolver.take(candidate) else {
                continue;
            };
            if (self.redact)(f.rule) {
                out.extend_from_slice(&self.buf[self.cursor - self.base..f.start - self.base]);
                out.extend_from_slice(self.scanner.redaction(f.rule).as_bytes());
            } else {
                out.extend_from_slice(&self.buf[self.cursor - self.base..f.end - self.base]);
            }
            self.cursor = f.end;
            self.findings.push(f);
        }
        if self.cursor < frontier {
            out.extend_from_slice(&self.buf[self.cursor - self.base..frontier - self.base]);
            self.cursor = frontier;
        }
        // Keep look-behind context for the next search.
        let keep_from = frontier.saturating_sub(CONTEXT).max(self.base);
        self.buf.drain(..keep_from - self.base);
        self.base = keep_from;
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rules::BUILTIN;

    #[test]
    fn a_start_literal_no_match_can_begin_at_is_not_waited_on() {
        let scanner = Arc::new(Scanner::new(BUILTIN, &[]).unwrap_or_else(|e| panic!("{e}")));
        // `token`, `secret` and `key` start rules, but nothing here can match there.
        let text = b"Rotate the token and the secret key when they expire, then ask again. ";
        let mut r = StreamRedactor::new(scanner.clone());
        let mut out = Vec::new();
        for piece in text.chunks(4) {
            out.extend(r.push(piece));
            assert!(r.held_back() <= 8, "held {} bytes", r.held_back());
        }
        out.extend(r.finish());
        assert_eq!(out, text);
        // Where a match can still follow, the stream waits for it.
        let mut r = StreamRedactor::new(scanner);
        let mut out = r.push(b"the token = ");
        assert!(r.held_back() >= "token = ".len());
        out.extend(r.push(b"Zx81QwErTyUiOpAs9876 ok"));
        out.extend(r.finish());
        assert_eq!(out, b"the token = [REDACTED:generic-secret] ok");
    }

    #[test]
    fn selective_redaction_matches_whole_text_at_every_split() {
        let scanner = Arc::new(
            Scanner::new(BUILTIN, &[("openai-prod", "upstream-secret-value-1234")])
                .unwrap_or_else(|e| panic!("{e}")),
        );
        let text = b"key AKIAIOSFODNN7EXAMPLE then upstream-secret-value-1234 end";
        let (whole, findings) = scanner.redact_where(text, ScanRule::always_redacted);
        assert_eq!(findings.len(), 2);
        let whole = String::from_utf8(whole.into_owned()).unwrap_or_default();
        assert!(whole.contains("AKIAIOSFODNN7EXAMPLE"), "{whole}");
        assert!(!whole.contains("upstream-secret-value-1234"), "{whole}");
        for split in 0..=text.len() {
            let mut r = StreamRedactor::redacting(scanner.clone(), ScanRule::always_redacted);
            let mut out = r.push(&text[..split]);
            out.extend(r.push(&text[split..]));
            out.extend(r.finish());
            assert_eq!(
                String::from_utf8(out).unwrap_or_default(),
                whole,
                "split {split}"
            );
            assert_eq!(r.findings().len(), 2);
        }
    }
}
