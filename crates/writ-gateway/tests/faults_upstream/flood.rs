//! The upstream answers with 20 000 events as fast as it can write them, cut into reads
//! that split events anywhere: every event reaches the client, the stream is forwarded
//! as it comes (the client reads the first events before the upstream has sent the
//! rest), the call is metered exactly from the final usage event, and other agents are
//! served meanwhile.

use std::sync::Arc;
use std::time::Instant;

use reqwest::StatusCode;
use tokio::sync::Notify;
use writ_gateway::audit::usage_log::Outcome;

use crate::events;
use crate::fault_gateway::{Api, ClientStream, FaultGateway, sse_read};
use crate::hostile::{Act, Hostile, chunk, last_chunk, sse_head};

const EVENTS: usize = 20_000;
/// Events sent before the upstream waits for the client to have read some.
const FIRST: usize = 100;

/// The stream, cut into chunks of `size` bytes (events split across chunks).
fn chunked(stream: &[u8], size: usize) -> Vec<Act> {
    stream
        .chunks(size)
        .map(|piece| Act::Send(chunk(piece)))
        .collect()
}

async fn a_flood_of_events(api: Api) {
    // Each event's text names its number, so a lost, doubled or reordered event shows.
    let word = |i: usize| format!("w{i} ");
    let head_events: String = events::start(api, 9)
        + &(0..FIRST)
            .map(|i| events::delta(api, &word(i)))
            .collect::<String>();
    let rest: String = (FIRST..EVENTS)
        .map(|i| events::delta(api, &word(i)))
        .collect::<String>()
        + &events::end(api, "9", &EVENTS.to_string());
    let go = Arc::new(Notify::new());
    let script_go = go.clone();
    let hostile = Hostile::start(move |_| {
        let mut acts = vec![sse_head()];
        acts.extend(chunked(head_events.as_bytes(), 997));
        acts.push(Act::WaitFor(script_go.clone()));
        acts.extend(chunked(rest.as_bytes(), 4093));
        acts.push(last_chunk());
        acts
    })
    .await;
    let fg = FaultGateway::start(api, hostile, "").await;
    let started = Instant::now();
    let resp = fg.send(true).await;
    assert_eq!(resp.status(), StatusCode::OK);
    let mut stream = ClientStream::new(resp);
    // Forwarded as it comes: the first events arrive while the upstream holds the rest.
    stream.read_until(|b| sse_read(b).0.contains("w1 ")).await;
    assert!(!stream.ended, "{api:?}: the stream ended early");
    go.notify_one();
    // Other agents are served while the flood passes.
    let ((), bystanders) = tokio::join!(stream.read_to_end(), async {
        let mut served = 0;
        for _ in 0..5 {
            served += usize::from(fg.call_good("bystander").await == StatusCode::OK);
        }
        served
    });
    let elapsed = started.elapsed();
    assert_eq!(bystanders, 5, "{api:?}: other agents were served meanwhile");
    assert!(!stream.cut, "{api:?}: the stream was cut");
    let expected: String = (0..EVENTS).map(word).collect();
    let text = stream.text();
    assert!(
        text == expected,
        "{api:?}: the client lost events (read {} of {} characters)",
        text.len(),
        expected.len()
    );
    eprintln!(
        "{api:?}: {EVENTS} events, {} bytes to the client in {elapsed:?} ({:.0} events/s)",
        stream.body.len(),
        EVENTS as f64 / elapsed.as_secs_f64()
    );
    let usage = fg.hostile_usage();
    assert_eq!(usage.len(), 1);
    assert_eq!(usage[0].outcome, Outcome::Completed);
    assert!(!usage[0].estimated);
    assert_eq!(
        (usage[0].usage.input_tokens, usage[0].usage.output_tokens),
        (9, EVENTS as u64),
        "{api:?}: metered exactly"
    );
    let calls = fg.hostile_calls().await;
    assert_eq!(calls.len(), 1);
    assert_eq!(calls[0]["usage"]["output_tokens"], EVENTS as u64);
    fg.assert_slot_freed().await;
}

#[tokio::test]
async fn an_openai_flood_of_events_is_forwarded_whole_as_it_comes_and_metered_exactly() {
    a_flood_of_events(Api::OpenAi).await;
}

#[tokio::test]
async fn an_anthropic_flood_of_events_is_forwarded_whole_as_it_comes_and_metered_exactly() {
    a_flood_of_events(Api::Anthropic).await;
}
