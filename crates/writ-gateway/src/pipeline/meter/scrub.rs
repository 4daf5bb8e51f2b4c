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
use writ_detect::{Detector, Finding, Scanner, StreamRedactor};
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
    redact: fn(Detector) -> bool,
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
        redact: fn(Detector) -> bool,
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
    redact: fn(Detector) -> bool,
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
    let mut changed = false;
    let mut scrubbed = HeaderMap::with_capacity(headers.len());
    for (name, value) in headers.iter() {
        let in_name = scanner.scan(name.as_str().as_bytes());
        let drop = in_name.iter().any(|f| redact(f.rule));
        findings.extend(in_name);
        if drop {
            changed = true;
            continue;
        }
        let (redacted, found) = scanner.redact_where(value.as_bytes(), redact);
        findings.extend(found);
        match redacted {
            Cow::Borrowed(_) => {
                scrubbed.append(name.clone(), value.clone());
            }
            Cow::Owned(bytes) => {
                changed = true;
                // A redaction is printable ASCII; were the value still not valid, the
                // header goes rather than the secret.
                if let Ok(value) = HeaderValue::from_bytes(&bytes) {
                    scrubbed.append(name.clone(), value);
                }
            }
        }
    }
    if changed {
        *headers = scrubbed;
    }
    findings
}

/// A whole JSON body with its string values scanned decoded (`sk\u002d…` is the key the
/// client reads): the re-serialized body when one was redacted. Only bodies with an escape
/// can differ from their raw bytes, so others are left to the raw scan.
pub(crate) fn scrub_json(
    scanner: &Arc<Scanner>,
    redact: fn(Detector) -> bool,
    body: &[u8],
) -> Option<(Vec<u8>, Vec<Finding>)> {
    if !body.contains(&b'\\') {
        return None;
    }
    let mut value = serde_json::from_slice::<serde_json::Value>(body).ok()?;
    let mut scrubber = TextScrubber::new(scanner.clone(), redact, Vec::new());
    writ_providers::stream_text::filter_strings(&mut value, &mut scrubber);
    Some((serde_json::to_vec(&value).ok()?, scrubber.findings))
}
