//! Scrubbing what an upstream sends back before a client sees it: the decoded text of a
//! response, channel by channel across a stream's events (a [`TextFilter`] over the
//! streaming secret redactor), and the response's headers.
//!
//! Which findings are replaced is the caller's policy (`redaction_policy` in `meter.rs`);
//! all of them are kept, to be recorded when the response ends.

use std::borrow::Cow;
use std::collections::HashMap;
use std::sync::Arc;

use http::{HeaderMap, HeaderValue};
use writ_detect::{Finding, ScanRule, Scanner, StreamRedactor};
use writ_providers::{Channel, TextFilter};

/// The redactor of one channel, and the bytes of a character it cut in two (released with
/// the rest of that character).
struct ChannelText {
    redactor: StreamRedactor,
    partial: Vec<u8>,
}

/// A [`TextFilter`] that redacts secrets from each channel's text as it streams, holding
/// back only the shortest tail that could still start one (see `writ_detect::stream`).
pub(crate) struct TextScrubber {
    scanner: Arc<Scanner>,
    redact: fn(ScanRule) -> bool,
    channels: HashMap<Channel, ChannelText>,
    findings: Vec<Finding>,
}

impl std::fmt::Debug for TextScrubber {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never the held text: it may be a secret in the making.
        f.debug_struct("TextScrubber")
            .field("channels", &self.channels.len())
            .field("findings", &self.findings.len())
            .finish_non_exhaustive()
    }
}

impl TextScrubber {
    /// A scrubber replacing the findings `redact` picks; `findings` are those already
    /// made in the same response (its headers).
    pub(crate) fn new(
        scanner: Arc<Scanner>,
        redact: fn(ScanRule) -> bool,
        findings: Vec<Finding>,
    ) -> Self {
        Self {
            scanner,
            redact,
            channels: HashMap::new(),
            findings,
        }
    }

    /// Everything found so far in channels that have ended and in whole strings.
    pub(crate) fn findings(&self) -> &[Finding] {
        &self.findings
    }
}

impl TextFilter for TextScrubber {
    fn push(&mut self, channel: Channel, text: &str) -> String {
        let (scanner, redact) = (&self.scanner, self.redact);
        let state = self.channels.entry(channel).or_insert_with(|| ChannelText {
            redactor: StreamRedactor::redacting(scanner.clone(), redact),
            partial: Vec::new(),
        });
        let mut bytes = std::mem::take(&mut state.partial);
        bytes.extend(state.redactor.push(text.as_bytes()));
        // The redactor releases bytes, which may end inside a character: its first bytes
        // wait for the rest, so each event carries whole characters.
        let valid = match std::str::from_utf8(&bytes) {
            Ok(_) => bytes.len(),
            Err(e) => e.valid_up_to(),
        };
        state.partial = bytes.split_off(valid);
        String::from_utf8(bytes).unwrap_or_default()
    }

    fn end(&mut self, channel: Channel) -> String {
        let Some(mut state) = self.channels.remove(&channel) else {
            return String::new();
        };
        let mut bytes = state.partial;
        bytes.extend(state.redactor.finish());
        self.findings.extend_from_slice(state.redactor.findings());
        // Text in, text out, and redactions are ASCII: lossless in practice.
        String::from_utf8_lossy(&bytes).into_owned()
    }

    fn whole(&mut self, text: &str) -> Option<String> {
        if text.len() < self.scanner.min_match_len() {
            return None;
        }
        let (redacted, findings) = self.scanner.redact_where(text.as_bytes(), self.redact);
        self.findings.extend(findings);
        match redacted {
            Cow::Borrowed(_) => None,
            Cow::Owned(bytes) => Some(String::from_utf8_lossy(&bytes).into_owned()),
        }
    }
}

/// Scrubs response headers as bodies are: a value holding a secret the policy redacts is
/// replaced by its redacted form; a header whose name holds one is dropped. Returns every
/// finding, redacted or not.
pub(crate) fn scrub_headers(
    scanner: &Scanner,
    redact: fn(ScanRule) -> bool,
    headers: &mut HeaderMap,
) -> Vec<Finding> {
    let min = scanner.min_match_len();
    let suspect = headers
        .iter()
        .any(|(n, v)| n.as_str().len() >= min || v.len() >= min);
    if !suspect {
        return Vec::new();
    }
    let mut findings = Vec::new();
    // Built only once a header has to change (most responses hold no secret): the headers
    // before it as they were, then each one kept, redacted or dropped.
    let mut scrubbed: Option<HeaderMap> = None;
    for (i, (name, value)) in headers.iter().enumerate() {
        let in_name = scanner.scan(name.as_str().as_bytes());
        let drop = in_name.iter().any(|f| redact(f.rule));
        findings.extend(in_name);
        // `None`: kept as it is; `Some(None)`: dropped; `Some(Some(v))`: replaced by `v`.
        let change = if drop {
            Some(None)
        } else {
            let (redacted, found) = scanner.redact_where(value.as_bytes(), redact);
            findings.extend(found);
            match redacted {
                Cow::Borrowed(_) => None,
                // A redaction is printable ASCII; were the value still not valid, the
                // header goes rather than the secret.
                Cow::Owned(bytes) => Some(HeaderValue::from_bytes(&bytes).ok()),
            }
        };
        match (change, &mut scrubbed) {
            (None, None) => {}
            (None, Some(out)) => {
                out.append(name.clone(), value.clone());
            }
            (Some(replacement), out) => {
                let out = out.get_or_insert_with(|| {
                    let mut out = HeaderMap::with_capacity(headers.len());
                    for (n, v) in headers.iter().take(i) {
                        out.append(n.clone(), v.clone());
                    }
                    out
                });
                if let Some(value) = replacement {
                    out.append(name.clone(), value);
                }
            }
        }
    }
    if let Some(scrubbed) = scrubbed {
        *headers = scrubbed;
    }
    findings
}

/// What scanning a whole JSON body decoded made of it.
pub(crate) enum JsonScrub {
    /// No escape, so the raw bytes are what a client reads: scan them.
    Raw,
    /// Escapes, and nothing to redact in the decoded text: the body passes as it is, with
    /// these findings to record (monitor mode's, say).
    Unchanged(Vec<Finding>),
    /// Re-serialized with what was redacted in its decoded strings.
    Rewritten(Vec<u8>, Vec<Finding>),
    /// An object holds a key twice and the decoded text holds something to redact: a
    /// client may read either copy, and a rewrite would keep only one, so the body is not
    /// passed on.
    Ambiguous,
}

/// A whole JSON body scanned as its client reads it, escapes decoded (`sk\u002d…` is a
/// key). Model output is full of `\n` and `\"`, so the decoded text is scanned once
/// (`writ_json::scan_text`, no parse), and the body is parsed and re-written only when
/// something in it must be redacted.
pub(crate) fn scrub_json(
    scanner: &Arc<Scanner>,
    redact: fn(ScanRule) -> bool,
    body: &[u8],
) -> JsonScrub {
    if !body.contains(&b'\\') {
        return JsonScrub::Raw;
    }
    let (_, findings) = scanner.redact_where(&writ_json::scan_text(body), redact);
    if !findings.iter().any(|f| redact(f.rule)) {
        return JsonScrub::Unchanged(findings);
    }
    let mut value = match writ_json::value(body) {
        Ok(value) => value,
        Err(writ_json::JsonError::DuplicateKey { .. }) => return JsonScrub::Ambiguous,
        // Not JSON after all: its bytes are what a client reads.
        Err(_) => return JsonScrub::Raw,
    };
    let mut scrubber = TextScrubber::new(scanner.clone(), redact, Vec::new());
    writ_providers::stream_text::filter_strings(&mut value, &mut scrubber);
    match serde_json::to_vec(&value) {
        Ok(rewritten) if !scrubber.findings.is_empty() => {
            JsonScrub::Rewritten(rewritten, scrubber.findings)
        }
        _ => JsonScrub::Raw,
    }
}

#[cfg(test)]
mod tests {
    //! Property: whatever the chunking of the bytes and the cutting of the text into
    //! events, a client reassembling each channel reads exactly what redacting that
    //! channel's whole text gives.
    use proptest::prelude::*;
    use serde_json::{Value, json};
    use writ_detect::rules::BUILTIN;
    use writ_providers::{RouteSpec, StreamMeter};

    use super::*;

    const KEY: &str = "sk-proj-UpstreamKeyThatMustNeverLeak0123456789";

    fn scanner() -> Arc<Scanner> {
        Arc::new(Scanner::new(BUILTIN, &[("demo", KEY)]).unwrap_or_else(|e| panic!("{e}")))
    }

    fn segment() -> impl Strategy<Value = String> {
        prop::sample::select(vec![
            KEY.to_string(),
            "AKIAIOSFODNN7EXAMPLE".into(),
            "ghp_aB3dE5fG7hJ9kL1mN3pQ5rS7tU9vW1xY3z5A".into(),
            format!("writ_{}", "Ab3-x_9Z".repeat(10)),
            "sk-proj-".into(),
            "Hello there, ".into(),
            "héllo ✓ wörld ".into(),
            " ".into(),
            "password=".into(),
            "ocp".into(),
        ])
    }

    /// Text cut into pieces of 1 to 6 characters.
    fn cut(text: &str, sizes: &[usize]) -> Vec<String> {
        let chars: Vec<char> = text.chars().collect();
        let mut out = Vec::new();
        let (mut at, mut i) = (0, 0);
        while at < chars.len() {
            let n = sizes.get(i % sizes.len().max(1)).copied().unwrap_or(4);
            let end = (at + n).min(chars.len());
            out.push(chars[at..end].iter().collect());
            at = end;
            i += 1;
        }
        out
    }

    /// An SSE stream (Anthropic's, or else OpenAI's) with the pieces of each channel
    /// interleaved.
    fn stream(anthropic: bool, channels: &[Vec<String>]) -> String {
        let mut out = String::new();
        let longest = channels.iter().map(Vec::len).max().unwrap_or(0);
        for step in 0..longest {
            for (index, pieces) in channels.iter().enumerate() {
                let Some(piece) = pieces.get(step) else {
                    continue;
                };
                let event = match anthropic {
                    true => format!(
                        "event: content_block_delta\ndata: {}\n\n",
                        json!({"type": "content_block_delta", "index": index, "delta": {"type": "text_delta", "text": piece}})
                    ),
                    _ => format!(
                        "data: {}\n\n",
                        json!({"choices": [{"index": index, "delta": {"content": piece}, "finish_reason": null}]})
                    ),
                };
                out.push_str(&event);
            }
        }
        for index in 0..channels.len() {
            out.push_str(&match anthropic {
                true => format!(
                    "event: content_block_stop\ndata: {}\n\n",
                    json!({"type": "content_block_stop", "index": index})
                ),
                _ => format!(
                    "data: {}\n\n",
                    json!({"choices": [{"index": index, "delta": {}, "finish_reason": "stop"}]})
                ),
            });
        }
        if anthropic {
            out.push_str("event: message_stop\ndata: {\"type\":\"message_stop\"}\n\n");
        } else {
            out.push_str("data: [DONE]\n\n");
        }
        out
    }

    /// Each channel's text as a client reassembles it, and whether the stream's end event
    /// came last.
    fn read(anthropic: bool, body: &str, channels: usize) -> (Vec<String>, bool) {
        let mut texts = vec![String::new(); channels];
        let mut last = String::new();
        for block in body.split("\n\n").filter(|b| !b.is_empty()) {
            let data = block
                .lines()
                .filter_map(|l| l.strip_prefix("data: "))
                .collect::<String>();
            last.clone_from(&data);
            let Ok(v) = serde_json::from_str::<Value>(&data) else {
                continue;
            };
            let (index, piece) = match anthropic {
                true => (&v["index"], &v["delta"]["text"]),
                _ => (
                    &v["choices"][0]["index"],
                    &v["choices"][0]["delta"]["content"],
                ),
            };
            if let (Some(i), Some(piece)) = (index.as_u64(), piece.as_str()) {
                texts[usize::try_from(i).unwrap_or(usize::MAX)].push_str(piece);
            }
        }
        let ended = match anthropic {
            true => last.contains("message_stop"),
            _ => last == "[DONE]",
        };
        (texts, ended)
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]
        #[test]
        fn clients_read_each_channel_redacted_as_a_whole(
            anthropic in any::<bool>(),
            texts in prop::collection::vec(prop::collection::vec(segment(), 1..8), 1..3),
            sizes in prop::collection::vec(1usize..7, 1..5),
            chunk in 1usize..90,
            monitor in any::<bool>(),
        ) {
            let route = if anthropic { "/v1/messages" } else { "/v1/chat/completions" };
            let dialect = RouteSpec::find(route).unwrap().dialect();
            let redact: fn(ScanRule) -> bool = if monitor { ScanRule::always_redacted } else { |_| true };
            let texts: Vec<String> = texts.iter().map(|t| t.concat()).collect();
            let pieces: Vec<Vec<String>> = texts.iter().map(|t| cut(t, &sizes)).collect();
            let body = stream(anthropic, &pieces);
            let scanner = scanner();
            let mut scrubber = TextScrubber::new(scanner.clone(), redact, Vec::new());
            let mut meter = StreamMeter::new(dialect, false);
            let mut out = Vec::new();
            for c in body.as_bytes().chunks(chunk) {
                out.extend(meter.feed_filtered(c, &mut scrubber));
            }
            out.extend(meter.finish_filtered(&mut scrubber));
            let out = String::from_utf8(out).unwrap_or_default();
            let (read, ended) = read(anthropic, &out, texts.len());
            let mut expected_findings = 0;
            for (text, got) in texts.iter().zip(&read) {
                let (whole, findings) = scanner.redact_where(text.as_bytes(), redact);
                expected_findings += findings.len();
                prop_assert_eq!(got.as_bytes(), &whole[..]);
            }
            prop_assert!(ended, "{}", out);
            prop_assert_eq!(scrubber.findings().len(), expected_findings);
        }
    }
}
