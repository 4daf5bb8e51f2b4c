//! Targets `sse_meter` and `bedrock_eventstream_meter`: a streamed response metered (usage,
//! generated characters, the usage chunk the gateway asked for removed) as it passes,
//! however the upstream's bytes were cut into chunks.

use writ_providers::bedrock::FrameReader;
use writ_providers::sse::SseParser;
use writ_providers::{ROUTES, RouteSpec, StreamMeter};

use crate::chunking::derived_chunks;

/// What a meter made of a whole stream.
#[derive(Debug, PartialEq, Eq)]
struct Metered {
    /// The bytes sent on to the client.
    sent: Vec<u8>,
    usage: Option<(u64, u64, u64)>,
    output_chars: u64,
}

fn meter(route: &RouteSpec, drop_usage_chunk: bool, chunks: &[&[u8]]) -> Metered {
    let mut meter = StreamMeter::new(route.dialect(), drop_usage_chunk);
    let mut sent = Vec::new();
    for chunk in chunks {
        match meter.feed(chunk) {
            Some(replacement) => sent.extend(replacement),
            None => sent.extend_from_slice(chunk),
        }
    }
    if let Some(rest) = meter.finish() {
        sent.extend(rest);
    }
    Metered {
        sent,
        usage: meter
            .usage()
            .map(|u| (u.input_tokens, u.output_tokens, u.cached_input_tokens)),
        output_chars: meter.output_chars(),
    }
}

fn routes(event_stream: bool) -> Vec<&'static RouteSpec> {
    ROUTES
        .iter()
        .filter(|r| r.path.starts_with("/model/") == event_stream)
        .collect()
}

/// Input: one byte choosing the route (so the dialect) and whether the usage chunk is
/// removed, then the response body, an SSE stream.
///
/// Invariants: the SSE parser yields the same events, and the meter sends the same bytes
/// and counts the same usage and characters, for the whole body in one chunk and for the
/// body cut into chunks derived from it.
pub fn sse_meter(data: &[u8]) {
    let Some((&selector, body)) = data.split_first() else {
        return;
    };
    let routes = routes(false);
    let route = routes[usize::from(selector >> 1) % routes.len()];
    let drop_usage_chunk = selector & 1 == 1;
    let chunks = derived_chunks(body);

    let events = |chunks: &[&[u8]]| {
        let mut parser = SseParser::new();
        let mut events: Vec<_> = chunks.iter().flat_map(|c| parser.push(c)).collect();
        events.extend(parser.finish());
        events
    };
    assert_eq!(
        events(&chunks),
        events(&[body]),
        "SSE events depend on the chunking"
    );
    assert_eq!(
        meter(route, drop_usage_chunk, &chunks),
        meter(route, drop_usage_chunk, &[body]),
        "SSE metering depends on the chunking"
    );
}

/// Input: one byte choosing the Bedrock route, then the response body, an AWS event
/// stream (binary frames with CRCs).
///
/// Invariants: the frame reader completes the same messages up to the same failure, and
/// the meter counts the same usage and characters (passing every byte on), for the whole
/// body in one chunk and for the body cut into chunks derived from it.
pub fn bedrock_eventstream_meter(data: &[u8]) {
    let Some((&selector, body)) = data.split_first() else {
        return;
    };
    let routes = routes(true);
    let route = routes[usize::from(selector) % routes.len()];
    let chunks = derived_chunks(body);

    let frames = |chunks: &[&[u8]]| {
        let mut reader = FrameReader::new();
        let mut messages = Vec::new();
        for chunk in chunks {
            messages.extend(reader.push(chunk).unwrap_or_default());
        }
        (messages, reader.failed())
    };
    assert_eq!(
        frames(&chunks),
        frames(&[body]),
        "event-stream frames depend on the chunking"
    );
    let whole = meter(route, false, &[body]);
    assert_eq!(
        whole.sent, body,
        "an event stream was not passed on as it came"
    );
    assert_eq!(
        meter(route, false, &chunks),
        whole,
        "event-stream metering depends on the chunking"
    );
}
