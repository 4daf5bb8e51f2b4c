//! W3C Trace Context (<https://www.w3.org/TR/trace-context/>): reading the `traceparent`
//! and `tracestate` a client sent, strictly, and writing the ones sent upstream.
//!
//! What a client sends is untrusted: anything that is not a valid `traceparent` is
//! ignored (the request then starts a trace of its own), never refused.

use std::str::FromStr;

use http::HeaderValue;
use opentelemetry::trace::{SpanContext, SpanId, TraceFlags, TraceId, TraceState};

/// Longest `traceparent` read. A version-00 one is 55 characters; later versions may
/// append fields, but a value this long is no trace context.
pub(crate) const MAX_TRACEPARENT: usize = 256;
/// Longest `tracestate` kept, all its values together; the specification asks vendors to
/// propagate at least 512 characters.
pub(crate) const MAX_TRACESTATE: usize = 512;

/// The span a client's `traceparent` names, with its `tracestate` when that is valid too
/// (an invalid `tracestate` is dropped; the parent stands). `None` for anything that is
/// not a valid `traceparent`: a wrong length, upper-case or non-hex digits, version `ff`,
/// an all-zero trace or span id, or more than [`MAX_TRACEPARENT`] bytes.
pub(crate) fn parent(traceparent: &[u8], tracestate: Option<&str>) -> Option<SpanContext> {
    if traceparent.len() > MAX_TRACEPARENT || traceparent.len() < 55 {
        return None;
    }
    let version = hex_byte(&traceparent[0..2])?;
    // Version ff is invalid; version 00 has exactly four fields, later versions may
    // append fields after a dash.
    let fits = match version {
        0xff => false,
        0x00 => traceparent.len() == 55,
        _ => traceparent.len() == 55 || traceparent[55] == b'-',
    };
    if !fits || traceparent[2] != b'-' || traceparent[35] != b'-' || traceparent[52] != b'-' {
        return None;
    }
    let trace_id = TraceId::from_bytes(hex_array::<16>(&traceparent[3..35])?);
    let span_id = SpanId::from_bytes(hex_array::<8>(&traceparent[36..52])?);
    let flags = hex_byte(&traceparent[53..55])?;
    if trace_id == TraceId::INVALID || span_id == SpanId::INVALID {
        return None;
    }
    let state = tracestate
        .filter(|s| s.len() <= MAX_TRACESTATE && keys_named(s))
        .and_then(|s| TraceState::from_str(s).ok())
        .unwrap_or_default();
    Some(SpanContext::new(
        trace_id,
        span_id,
        // Only the sampled bit is defined; the others are not passed on.
        TraceFlags::new(flags & TraceFlags::SAMPLED.to_u8()),
        true,
        state,
    ))
}

/// The `traceparent` and `tracestate` naming `span` (the gateway's upstream-call span),
/// as sent upstream in place of the client's.
#[derive(Debug, Clone)]
pub(crate) struct Outgoing {
    /// `00-<trace id>-<span id>-<flags>`.
    pub(crate) traceparent: HeaderValue,
    /// The trace's state, when it has one.
    pub(crate) tracestate: Option<HeaderValue>,
}

impl Outgoing {
    /// The headers naming `span`.
    pub(crate) fn of(span: &SpanContext) -> Option<Self> {
        let traceparent = format!(
            "00-{}-{}-{:02x}",
            span.trace_id(),
            span.span_id(),
            span.trace_flags().to_u8()
        );
        let state = span.trace_state().header();
        Some(Self {
            traceparent: HeaderValue::from_str(&traceparent).ok()?,
            tracestate: if state.is_empty() {
                None
            } else {
                HeaderValue::from_str(&state).ok()
            },
        })
    }

    /// Puts these headers on `headers`, replacing whatever the client sent under them.
    pub(crate) fn write(&self, headers: &mut http::HeaderMap) {
        headers.insert("traceparent", self.traceparent.clone());
        match &self.tracestate {
            Some(state) => {
                headers.insert("tracestate", state.clone());
            }
            None => {
                headers.remove("tracestate");
            }
        }
    }
}

/// Whether every member of a `tracestate` list has a key (the SDK's parser takes `=x`).
fn keys_named(list: &str) -> bool {
    list.split(',').all(|member| {
        let member = member.trim_matches([' ', '\t']);
        member.is_empty() || member.find('=').is_some_and(|at| at > 0)
    })
}

/// Two lower-case hex digits.
fn hex_byte(digits: &[u8]) -> Option<u8> {
    Some((hex_digit(*digits.first()?)? << 4) | hex_digit(*digits.get(1)?)?)
}

/// `2 * N` lower-case hex digits.
fn hex_array<const N: usize>(digits: &[u8]) -> Option<[u8; N]> {
    if digits.len() != 2 * N {
        return None;
    }
    let mut out = [0u8; N];
    for (byte, pair) in out.iter_mut().zip(digits.chunks_exact(2)) {
        *byte = hex_byte(pair)?;
    }
    Some(out)
}

/// The W3C format allows lower-case hex only.
fn hex_digit(c: u8) -> Option<u8> {
    match c {
        b'0'..=b'9' => Some(c - b'0'),
        b'a'..=b'f' => Some(c - b'a' + 10),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const VALID: &str = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";

    #[test]
    fn a_valid_traceparent_names_the_clients_span_and_its_sampled_flag() {
        let parent = parent(
            VALID.as_bytes(),
            Some("congo=t61rcWkgMzE,rojo=00f067aa0ba902b7"),
        )
        .expect("valid");
        assert_eq!(
            parent.trace_id().to_string(),
            "4bf92f3577b34da6a3ce929d0e0e4736"
        );
        assert_eq!(parent.span_id().to_string(), "00f067aa0ba902b7");
        assert!(parent.is_sampled() && parent.is_remote());
        assert_eq!(parent.trace_state().get("congo"), Some("t61rcWkgMzE"));
        let unsampled = VALID.replace("-01", "-00");
        assert!(
            !self::parent(unsampled.as_bytes(), None)
                .unwrap()
                .is_sampled()
        );
        // Undefined flags are not passed on.
        let other_flags = VALID.replace("-01", "-ff");
        let p = self::parent(other_flags.as_bytes(), None).unwrap();
        assert_eq!(p.trace_flags().to_u8(), 1);
    }

    #[test]
    fn a_later_version_may_append_fields_after_a_dash() {
        let later = format!("cc{}-what-the-future-holds", &VALID[2..]);
        assert!(parent(later.as_bytes(), None).is_some());
        let glued = format!("cc{}x", &VALID[2..]);
        assert!(parent(glued.as_bytes(), None).is_none());
        let longer_00 = format!("{VALID}-extra");
        assert!(parent(longer_00.as_bytes(), None).is_none());
    }

    #[test]
    fn anything_else_is_no_parent() {
        let cases = [
            String::new(),
            VALID[..54].to_string(),
            format!("{VALID}0"),
            VALID.replace("4bf9", "4BF9"),
            VALID.replace("4bf9", "4bg9"),
            VALID.replace("00-4bf9", "ff-4bf9"),
            VALID.replace("4bf92f3577b34da6a3ce929d0e0e4736", &"0".repeat(32)),
            VALID.replace("00f067aa0ba902b7", &"0".repeat(16)),
            VALID.replace('-', "_"),
            VALID.replace("-01", "-0x"),
            format!("cc{}-{}", &VALID[2..], "a".repeat(MAX_TRACEPARENT)),
            "00-4bf92f3577b34da6a3ce929d0e0e47é-00f067aa0ba902b7-01".to_string(),
        ];
        for case in &cases {
            assert!(parent(case.as_bytes(), None).is_none(), "{case:?}");
        }
    }

    #[test]
    fn an_invalid_or_oversized_tracestate_is_dropped_and_the_parent_stands() {
        for state in ["not a state", "=x", &"a=b,".repeat(200)] {
            let p = parent(VALID.as_bytes(), Some(state)).expect("the parent stands");
            assert!(p.trace_state().header().is_empty(), "{state:?}");
        }
    }

    #[test]
    fn outgoing_headers_name_the_span_and_replace_the_clients() {
        let span = parent(VALID.as_bytes(), Some("rojo=1")).unwrap();
        let out = Outgoing::of(&span).unwrap();
        assert_eq!(out.traceparent, VALID);
        let mut headers = http::HeaderMap::new();
        headers.insert("traceparent", HeaderValue::from_static("client's"));
        headers.insert("tracestate", HeaderValue::from_static("client=1"));
        out.write(&mut headers);
        assert_eq!(headers["traceparent"], VALID);
        assert_eq!(headers["tracestate"], "rojo=1");
        let bare = Outgoing::of(&parent(VALID.as_bytes(), None).unwrap()).unwrap();
        bare.write(&mut headers);
        assert!(headers.get("tracestate").is_none());
    }
}
