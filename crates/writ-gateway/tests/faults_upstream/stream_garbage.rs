//! The upstream's event stream is malformed: events that are not JSON, comments, events
//! without data, invalid UTF-8, every kind of line end, `data:` lines of a megabyte, and
//! usage events claiming tokens no call could use.

use reqwest::StatusCode;
use writ_gateway::audit::usage_log::Outcome;

use crate::events;
use crate::fault_gateway::{Api, ClientStream, FaultGateway};
use crate::hostile::{Act, Hostile, chunk, last_chunk, sse_head};

/// Streams `body` (cut into chunks of `size` bytes) to one streamed call; the client's
/// view of it, read to its end, and the gateway.
async fn stream_of(api: Api, body: Vec<u8>, size: usize) -> (FaultGateway, ClientStream) {
    let hostile = Hostile::start(move |_| {
        let mut acts = vec![sse_head()];
        acts.extend(body.chunks(size).map(|c| Act::Send(chunk(c))));
        acts.push(last_chunk());
        acts
    })
    .await;
    let fg = FaultGateway::start(api, hostile, "").await;
    let resp = fg.send(true).await;
    assert_eq!(resp.status(), StatusCode::OK);
    let mut stream = ClientStream::new(resp);
    stream.read_to_end().await;
    let calls = fg.hostile_calls().await;
    assert_eq!(calls.len(), 1, "{calls:?}");
    fg.assert_slot_freed().await;
    (fg, stream)
}

/// What cannot be read is skipped, and the stream is metered by what can: events that are
/// not JSON or carry no data, comments, invalid UTF-8, and CR, LF or CRLF line ends.
#[tokio::test]
async fn a_malformed_stream_passes_and_is_metered_by_what_can_be_read() {
    let api = Api::OpenAi;
    let mut body = Vec::new();
    body.extend_from_slice(b"data: {not json at all\n\n");
    body.extend_from_slice(b": a comment\n\n");
    body.extend_from_slice(b"event: lonely\n\n");
    body.extend_from_slice(b"data: \xff\xfe\x00 not utf-8\n\n");
    body.extend_from_slice(events::delta(api, "Hello").replace("\n", "\r\n").as_bytes());
    body.extend_from_slice(events::delta(api, " there").replace("\n", "\r").as_bytes());
    body.extend_from_slice(b"id: 7\nretry: 10\ndata: [DONE?]\n\n");
    body.extend_from_slice(events::delta(api, " friend").as_bytes());
    body.extend_from_slice(events::end(api, "5", "3").as_bytes());
    let (fg, stream) = stream_of(api, body, 5).await;
    assert!(!stream.cut, "the stream ends at its end");
    assert_eq!(stream.text(), "Hello there friend");
    let usage = fg.hostile_usage();
    assert_eq!(usage[0].outcome, Outcome::Completed);
    assert_eq!(
        (
            usage[0].usage.input_tokens,
            usage[0].usage.output_tokens,
            usage[0].estimated
        ),
        (5, 3, false)
    );
}

/// A `data:` line just under the gateway's bound on one event (1 MiB) passes whole.
#[tokio::test]
async fn a_data_line_of_most_of_a_megabyte_passes_whole() {
    let api = Api::OpenAi;
    let big = "abcdefgh ".repeat(100_000);
    let body = events::delta(api, &big) + &events::end(api, "5", "1000");
    let (fg, stream) = stream_of(api, body.into_bytes(), 65_536).await;
    assert!(!stream.cut);
    assert!(stream.text() == big, "the event passed whole");
    let usage = fg.hostile_usage();
    assert_eq!(
        (usage[0].usage.output_tokens, usage[0].estimated),
        (1000, false)
    );
}

/// An event over the gateway's bound (1 MiB) cannot be scanned nor passed on: the stream
/// is cut there, so the client does not take an answer with a hole in it as complete.
#[tokio::test]
async fn an_event_over_a_megabyte_cuts_the_stream() {
    let api = Api::OpenAi;
    let big = "abcdefgh ".repeat(130_000);
    let body = events::delta(api, "Hello")
        + &events::delta(api, &big)
        + &events::delta(api, " there")
        + &events::end(api, "5", "9");
    let (fg, stream) = stream_of(api, body.into_bytes(), 65_536).await;
    assert!(
        stream.cut,
        "a stream with an event dropped must not end as complete"
    );
    assert!(!stream.text().contains("there"), "{}", stream.text().len());
    let usage = fg.hostile_usage();
    assert_eq!(usage[0].outcome, Outcome::UpstreamCut);
    let calls = fg.hostile_calls().await;
    assert_eq!(calls[0]["detail"]["outcome"], "UpstreamCut");
}

/// Usage claims: negative or beyond any integer is unreadable, so the call is estimated
/// (never metered as zero); the largest integer is metered as claimed (the upstream is
/// the one billing) without overflowing the cost or the limits, and the gateway serves on.
#[tokio::test]
async fn usage_claims_of_negative_or_huge_tokens_are_estimated_or_metered_without_overflow() {
    let api = Api::OpenAi;
    for (output, estimated) in [
        ("-20", true),
        ("1e400", true),
        ("184467440737095516150", true),
        ("18446744073709551615", false),
    ] {
        let body = events::delta(api, "Hello there friend") + &events::end(api, "5", output);
        let (fg, stream) = stream_of(api, body.into_bytes(), 4096).await;
        assert!(!stream.cut, "{output}");
        let usage = &fg.hostile_usage()[0];
        assert_eq!(usage.estimated, estimated, "{output}: {usage:?}");
        if estimated {
            assert!(usage.usage.output_tokens > 0, "{output}: {usage:?}");
        } else {
            assert_eq!(usage.usage.output_tokens, u64::MAX);
            // 0.60 $ per million output tokens: about 1.1e19 micro-dollars, no overflow.
            let cost = usage.cost_usd_micros.unwrap();
            assert!(cost > 11 * 10u64.pow(18), "{cost}");
        }
    }
}
