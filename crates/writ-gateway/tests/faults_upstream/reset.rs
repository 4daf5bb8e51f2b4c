//! The upstream resets the connection (an RST) in the middle of a stream, and in the
//! middle of a body read whole.

use std::sync::Arc;

use reqwest::StatusCode;
use tokio::sync::Notify;
use writ_gateway::audit::usage_log::Outcome;

use crate::events;
use crate::fault_gateway::{Api, ClientStream, FaultGateway};
use crate::hostile::{Act, Hostile, chunk, head, sse_head};

const WORDS: [&str; 3] = ["Hello", " there", " friend"];

/// A stream cut after three events: the client has read the start of the text and then
/// sees its body fail (not end: it must not take the answer as complete); the call is
/// recorded once as cut, with its usage metered up to the cut.
async fn a_stream_reset_after_some_events(api: Api) {
    let go = Arc::new(Notify::new());
    let first: String = events::start(api, 7)
        + &WORDS
            .iter()
            .map(|w| events::delta(api, w))
            .collect::<String>();
    let script_go = go.clone();
    let hostile = Hostile::start(move |_| {
        vec![
            sse_head(),
            Act::Send(chunk(first.as_bytes())),
            Act::WaitFor(script_go.clone()),
            Act::Reset,
        ]
    })
    .await;
    let fg = FaultGateway::start(api, hostile, "").await;
    let resp = fg.send(true).await;
    assert_eq!(resp.status(), StatusCode::OK);
    let mut stream = ClientStream::new(resp);
    // The events reach the client before the upstream does anything more.
    stream
        .read_until(|b| !crate::fault_gateway::sse_read(b).0.is_empty())
        .await;
    assert!(!stream.ended, "the stream ended before the reset");
    go.notify_one();
    stream.read_to_end().await;
    assert!(
        stream.cut,
        "{api:?}: a reset stream must end in an error, not at its end"
    );
    let text = stream.text();
    assert!(
        "Hello there friend".starts_with(&text) && !text.is_empty(),
        "{api:?}: {text}"
    );

    let usage = fg.hostile_usage();
    assert_eq!(usage.len(), 1, "{api:?}: one usage record");
    assert_eq!(usage[0].outcome, Outcome::UpstreamCut);
    assert_eq!(usage[0].status, 200);
    // What came is metered: by Anthropic's report of the input and, for the output, at
    // least what the text read amounts to (about four characters a token).
    let least_output = "Hello there friend".len().div_ceil(4) as u64;
    assert!(
        usage[0].usage.output_tokens >= least_output,
        "{api:?}: the text that came is metered: {:?}",
        usage[0]
    );
    match api {
        Api::OpenAi | Api::Http => assert!(usage[0].estimated && usage[0].usage.input_tokens > 0),
        Api::Anthropic => assert_eq!(usage[0].usage.input_tokens, 7),
    }
    let calls = fg.hostile_calls().await;
    assert_eq!(calls.len(), 1, "{api:?}: {calls:?}");
    assert_eq!(calls[0]["status"], 200);
    assert_eq!(calls[0]["detail"]["outcome"], "UpstreamCut", "{}", calls[0]);
    assert_eq!(
        calls[0]["usage"]["output_tokens"], usage[0].usage.output_tokens,
        "the audit record and the usage record agree"
    );
    fg.assert_slot_freed().await;
}

#[tokio::test]
async fn an_openai_stream_reset_after_some_events_ends_in_an_error_metered_to_the_cut() {
    a_stream_reset_after_some_events(Api::OpenAi).await;
}

#[tokio::test]
async fn an_anthropic_stream_reset_after_some_events_ends_in_an_error_metered_to_the_cut() {
    a_stream_reset_after_some_events(Api::Anthropic).await;
}

/// A body read whole, reset after its first bytes: a 502 `upstream_failed` in the
/// route's error shape, recorded once, nothing metered, the slot freed.
async fn a_body_reset_midway(api: Api) {
    let body = events::whole(api, "Hello there friend", 7, 3);
    let hostile = Hostile::start(move |_| {
        let mut sent = head(
            200,
            "application/json",
            &format!("content-length: {}\r\n", body.len()),
        );
        sent.extend_from_slice(&body.as_bytes()[..body.len() / 2]);
        vec![Act::Send(sent), Act::Reset]
    })
    .await;
    let fg = FaultGateway::start(api, hostile, "").await;
    let answer = fg.call(false).await;
    assert_eq!(answer.status, StatusCode::BAD_GATEWAY, "{}", answer.text());
    assert_eq!(answer.error_code(api), "upstream_failed");
    let message = answer.json()["error"]["message"].to_string();
    assert!(
        message.contains("try again"),
        "the message says what happened and what to do: {message}"
    );

    let calls = fg.hostile_calls().await;
    assert_eq!(calls.len(), 1, "{calls:?}");
    assert_eq!(calls[0]["status"], 502);
    assert_eq!(calls[0]["decision"]["code"], "upstream_failed");
    let usage = fg.hostile_usage();
    assert_eq!(usage.len(), 1, "{api:?}: one usage record");
    assert_ne!(usage[0].outcome, Outcome::Completed);
    fg.assert_slot_freed().await;
}

#[tokio::test]
async fn an_openai_body_reset_midway_is_a_502_upstream_failed() {
    a_body_reset_midway(Api::OpenAi).await;
}

#[tokio::test]
async fn an_anthropic_body_reset_midway_is_a_502_upstream_failed_in_anthropic_s_shape() {
    a_body_reset_midway(Api::Anthropic).await;
}

/// A stream reset right after its headers, before any event: the client either reads a
/// 200 whose body fails, or — when the failure is already there as the gateway starts the
/// body — no answer at all (the server ends the connection without sending the head).
/// Either way it cannot take the answer as complete, and the call is recorded once as cut
/// with its slot freed.
#[tokio::test]
async fn a_stream_reset_right_after_its_headers_ends_in_an_error_and_is_recorded_once() {
    let hostile = Hostile::start(|_| vec![sse_head(), Act::Reset]).await;
    let fg = FaultGateway::start(Api::OpenAi, hostile, "").await;
    match fg.try_send(true).await {
        Ok(resp) => {
            assert_eq!(resp.status(), StatusCode::OK);
            let mut stream = ClientStream::new(resp);
            stream.read_to_end().await;
            assert!(stream.cut, "a reset stream must end in an error");
        }
        Err(e) => assert!(!e.is_timeout(), "{e}"),
    }
    // The stream's end, which may run after the client saw the connection end, writes
    // the record and then frees the slot: once the slot is free, the record is there.
    tokio::time::timeout(crate::PATIENCE, async {
        while fg.call_good("demo").await != StatusCode::OK {
            tokio::task::yield_now().await;
        }
    })
    .await
    .expect("the slot is freed");
    let calls = fg.hostile_calls().await;
    assert_eq!(calls.len(), 1, "{calls:?}");
    assert_eq!(calls[0]["detail"]["outcome"], "UpstreamCut", "{}", calls[0]);
    assert_eq!(fg.hostile_usage()[0].outcome, Outcome::UpstreamCut);
}
