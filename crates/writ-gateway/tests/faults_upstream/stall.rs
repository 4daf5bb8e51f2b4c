//! The upstream stalls: before its headers (`timeout`), after them, and in the middle of a
//! stream (`read_timeout`). Each call ends within a bound of the configured timeout, its
//! slot is held meanwhile and freed after, and other agents are served all along.

use std::time::{Duration, Instant};

use reqwest::StatusCode;
use writ_gateway::audit::usage_log::Outcome;

use crate::events;
use crate::fault_gateway::{Api, ClientStream, FaultGateway, read_all};
use crate::hostile::{Act, Hostile, chunk, head, sse_head};

/// The timeouts the stalls are cut by.
const TIMEOUT: Duration = Duration::from_secs(1);
const TIMEOUTS: &str = "timeout = \"1s\"\nread_timeout = \"1s\"\n";
/// How late after its timeout a cut may come on this loaded machine.
const SLACK: Duration = Duration::from_secs(5);

fn assert_cut_in_time(elapsed: Duration, what: &str) {
    assert!(
        elapsed >= TIMEOUT && elapsed < TIMEOUT + SLACK,
        "{what}: cut after {elapsed:?}, the timeout is {TIMEOUT:?}"
    );
}

/// While agent `demo`'s call hangs, its one slot is held (its next call is refused with
/// 429) and another agent is served.
async fn assert_others_served_while_stalled(fg: &FaultGateway) {
    assert_eq!(
        fg.call_good("demo").await,
        StatusCode::TOO_MANY_REQUESTS,
        "the stalled call holds its slot"
    );
    assert_eq!(fg.call_good("bystander").await, StatusCode::OK);
}

#[tokio::test]
async fn no_headers_in_time_is_a_504_within_the_timeout() {
    let hostile = Hostile::start(|_| vec![Act::Hang]).await;
    let fg = FaultGateway::start(Api::OpenAi, hostile, TIMEOUTS).await;
    a_stalled_call_is_a_504_while_others_are_served(&fg, "no headers").await;
    fg.assert_slot_freed().await;
}

#[tokio::test]
async fn a_body_stalled_after_the_headers_is_a_504_within_the_read_timeout() {
    let hostile = Hostile::start(|_| {
        let mut sent = head(200, "application/json", "content-length: 400\r\n");
        sent.extend_from_slice(b"{\"id\":\"chatcmpl-1\",");
        vec![Act::Send(sent), Act::Hang]
    })
    .await;
    let fg = FaultGateway::start(Api::OpenAi, hostile, TIMEOUTS).await;
    a_stalled_call_is_a_504_while_others_are_served(&fg, "a stalled body").await;
    assert_eq!(fg.hostile_usage()[0].outcome, Outcome::UpstreamCut);
    fg.assert_slot_freed().await;
}

/// Sends one non-streamed call to the stalling upstream and asserts: other agents are
/// served while it hangs, it ends in 504 `upstream_timeout` within the timeout's bound, and
/// it is recorded once as such.
async fn a_stalled_call_is_a_504_while_others_are_served(fg: &FaultGateway, what: &str) {
    let started = Instant::now();
    let (answer, ()) = tokio::join!(
        async { read_all(fg.send(false).await, started).await },
        async {
            // Once the request is upstream, others are served while it hangs.
            while fg.hostile.requests() == 0 {
                tokio::task::yield_now().await;
            }
            assert_others_served_while_stalled(fg).await;
        }
    );
    assert_eq!(
        answer.status,
        StatusCode::GATEWAY_TIMEOUT,
        "{}",
        answer.text()
    );
    assert_eq!(answer.error_code(Api::OpenAi), "upstream_timeout");
    assert_cut_in_time(answer.elapsed, what);
    let calls = fg.hostile_calls().await;
    assert_eq!(calls.len(), 1, "{calls:?}");
    assert_eq!(calls[0]["status"], 504);
    assert_eq!(calls[0]["decision"]["code"], "upstream_timeout");
}

/// A stream that stalls (right after its headers, or after some events) is cut
/// `read_timeout` after the last bytes came: the client has its 200 and what came, then
/// its body fails; the call is recorded once as cut.
async fn a_stream_stalled_after(events_first: usize) {
    let api = Api::OpenAi;
    let first: String = ["Hello", " there", " friend"][..events_first]
        .iter()
        .map(|w| events::delta(api, w))
        .collect();
    let hostile = Hostile::start(move |_| {
        let mut acts = vec![sse_head()];
        if !first.is_empty() {
            acts.push(Act::Send(chunk(first.as_bytes())));
        }
        acts.push(Act::Hang);
        acts
    })
    .await;
    let fg = FaultGateway::start(api, hostile, TIMEOUTS).await;
    let started = Instant::now();
    let resp = fg.send(true).await;
    assert_eq!(resp.status(), StatusCode::OK);
    let mut stream = ClientStream::new(resp);
    if events_first > 0 {
        stream
            .read_until(|b| !crate::fault_gateway::sse_read(b).0.is_empty())
            .await;
    }
    assert_others_served_while_stalled(&fg).await;
    stream.read_to_end().await;
    assert!(
        stream.cut,
        "a stalled stream must end in an error, not at its end"
    );
    assert_cut_in_time(
        started.elapsed(),
        &format!("a stream stalled after {events_first} events"),
    );
    if events_first > 0 {
        assert!("Hello there friend".starts_with(&stream.text()));
    }
    let usage = fg.hostile_usage();
    assert_eq!(usage.len(), 1);
    assert_eq!(usage[0].outcome, Outcome::UpstreamCut);
    let calls = fg.hostile_calls().await;
    assert_eq!(calls.len(), 1, "{calls:?}");
    assert_eq!(calls[0]["status"], 200);
    assert_eq!(calls[0]["detail"]["outcome"], "UpstreamCut");
    fg.assert_slot_freed().await;
}

#[tokio::test]
async fn a_stream_stalled_after_its_headers_is_cut_at_the_read_timeout() {
    a_stream_stalled_after(0).await;
}

#[tokio::test]
async fn a_stream_stalled_after_some_events_is_cut_at_the_read_timeout() {
    a_stream_stalled_after(3).await;
}
