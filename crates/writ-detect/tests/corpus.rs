//! The synthetic corpus: every positive is found with its rule at its exact position, no
//! negative is flagged, and the stream redactor agrees with whole-text redaction for every
//! sample split at every byte.

#[path = "support/corpus.rs"]
mod samples;

use std::sync::Arc;

use samples::{negatives, positives, scanner};
use writ_detect::StreamRedactor;

#[test]
fn every_positive_is_found_with_its_rule_and_span() {
    let s = scanner();
    let mut seen = std::collections::BTreeSet::new();
    for p in positives() {
        let found = s.scan(&p.text);
        assert_eq!(
            found,
            p.expected,
            "positives.txt line {}: {}",
            p.line,
            String::from_utf8_lossy(&p.text)
        );
        seen.extend(p.expected.iter().map(|f| f.rule.id()));
    }
    for rule in writ_detect::BUILTIN {
        assert!(
            seen.contains(rule.id.as_str()),
            "no positive for {}",
            rule.id
        );
    }
}

#[test]
fn no_negative_is_flagged() {
    let s = scanner();
    for (line, text) in negatives() {
        let found = s.scan(&text);
        assert!(
            found.is_empty(),
            "negatives.txt line {line}: {found:?} in {}",
            String::from_utf8_lossy(&text)
        );
    }
}

#[test]
fn redaction_removes_every_positive_secret() {
    let s = scanner();
    for p in positives() {
        let (out, _) = s.redact(&p.text);
        for f in &p.expected {
            let secret = &p.text[f.start..f.end];
            assert!(
                !out.windows(secret.len()).any(|w| w == secret),
                "line {}: secret survives redaction",
                p.line
            );
        }
    }
}

fn stream(s: &Arc<writ_detect::Scanner>, chunks: &[&[u8]]) -> (Vec<u8>, Vec<writ_detect::Finding>) {
    let mut r = StreamRedactor::new(s.clone());
    let mut out = Vec::new();
    for c in chunks {
        out.extend(r.push(c));
    }
    out.extend(r.finish());
    (out, r.findings().to_vec())
}

#[test]
fn every_sample_split_at_every_byte_streams_like_whole_redaction() {
    let s = Arc::new(scanner());
    let samples = positives()
        .into_iter()
        .map(|p| (p.line, p.text))
        .chain(negatives());
    for (line, text) in samples {
        let whole = s.redact(&text);
        for k in 0..=text.len() {
            let got = stream(&s, &[&text[..k], &text[k..]]);
            assert_eq!(got, whole, "line {line} split at {k}");
        }
        let bytes: Vec<&[u8]> = text.chunks(1).collect();
        assert_eq!(stream(&s, &bytes), whole, "line {line} byte by byte");
    }
}

#[test]
fn positives_concatenated_stream_in_small_chunks() {
    let s = Arc::new(scanner());
    let mut text = Vec::new();
    for p in positives() {
        text.extend_from_slice(&p.text);
        text.extend_from_slice(b"\n some prose between samples \n");
    }
    let whole = s.redact(&text);
    for size in [1, 2, 3, 7, 64, 1000, 4096] {
        let chunks: Vec<&[u8]> = text.chunks(size).collect();
        assert_eq!(stream(&s, &chunks), whole, "chunk size {size}");
    }
}
