//! The upstream sends garbage: bytes that are not HTTP, a 200 whose body is not the API's
//! JSON, a body over `max_response_bytes`, a `Content-Length` that lies either way, a
//! malformed event stream, and usage numbers no one could have used.

use std::sync::Arc;

use reqwest::StatusCode;
use serde_json::Value;
use tokio::sync::Notify;
use writ_gateway::audit::usage_log::Outcome;

use crate::events;
use crate::fault_gateway::{Answer, Api, ClientStream, FaultGateway, sse_read};
use crate::hostile::{Act, Hostile, chunk, head, json, last_chunk, sse_head};

/// Calls the hostile upstream once per script of `cases` (in order) and returns each
/// answer, checking after each that the agent's slot was freed and that the call left one
/// audit entry with the status the client was given.
async fn each_call(api: Api, cases: Vec<Vec<u8>>, extra: &str) -> (FaultGateway, Vec<Answer>) {
    let n = cases.len();
    let hostile = Hostile::start(move |i| vec![Act::Send(cases[i].clone()), Act::Close]).await;
    let fg = FaultGateway::start(api, hostile, extra).await;
    let mut answers = Vec::new();
    for _ in 0..n {
        let answer = tokio::time::timeout(crate::PATIENCE, fg.call(false))
            .await
            .expect("the gateway answers within the test's patience");
        assert!(!answer.cut, "an error answer is whole");
        fg.assert_slot_freed().await;
        answers.push(answer);
    }
    let calls = fg.hostile_calls().await;
    assert_eq!(calls.len(), n, "one entry per call: {calls:?}");
    for (call, answer) in calls.iter().zip(&answers) {
        assert_eq!(call["status"], answer.status.as_u16(), "{call}");
        if !answer.status.is_success() {
            assert_eq!(call["decision"]["code"], answer.error_code(api).as_str());
        }
    }
    (fg, answers)
}

fn not_http() -> Vec<Vec<u8>> {
    vec![
        b"SSH-2.0-OpenSSH_9.6\r\n".to_vec(),
        // A TLS server hello where an HTTP status line belongs.
        b"\x16\x03\x03\x00\x31\x02\x00\x00\x2d\x03\x03\xff\xfe\x00\x01".to_vec(),
        b"HTTP/1.1 200 OK\r\nthis header has no colon\r\n\r\n".to_vec(),
        b"HTTP/1.1 2000 OK\r\ncontent-length: 2\r\n\r\n{}".to_vec(),
        // A head that never ends, far over any header limit.
        [
            b"HTTP/1.1 200 OK\r\nx-endless: ".as_slice(),
            &vec![b'a'; 1 << 20],
        ]
        .concat(),
    ]
}

async fn garbage_instead_of_http(api: Api) {
    let (_, answers) = each_call(api, not_http(), "").await;
    for (i, answer) in answers.iter().enumerate() {
        assert_eq!(
            answer.status,
            StatusCode::BAD_GATEWAY,
            "case {i}: {}",
            answer.text()
        );
        assert_eq!(answer.error_code(api), "upstream_failed", "case {i}");
        let message = answer.json()["error"]["message"].to_string();
        assert!(message.contains("hostile"), "names the upstream: {message}");
    }
}

#[tokio::test]
async fn openai_garbage_instead_of_an_http_response_is_a_502() {
    garbage_instead_of_http(Api::OpenAi).await;
}

#[tokio::test]
async fn anthropic_garbage_instead_of_an_http_response_is_a_502_in_anthropic_s_shape() {
    garbage_instead_of_http(Api::Anthropic).await;
}

fn whole_json(body: &str) -> Vec<u8> {
    match json(200, body) {
        Act::Send(bytes) => bytes,
        _ => unreachable!(),
    }
}

/// Successes whose body is not one JSON value, or is JSON two readers could read
/// differently: a 502 `upstream_invalid_response`, nothing of the body passed on.
async fn a_200_that_is_not_json(api: Api) {
    let good = events::whole(api, "Hello", 7, 3);
    let cases = vec![
        whole_json("<html><body>502 Bad Gateway</body></html>"),
        whole_json(&good[..good.len() - 9]),
        whole_json(""),
    ];
    let (fg, answers) = each_call(api, cases, "").await;
    for (i, answer) in answers.iter().enumerate() {
        assert_eq!(
            answer.status,
            StatusCode::BAD_GATEWAY,
            "case {i}: {}",
            answer.text()
        );
        assert_eq!(
            answer.error_code(api),
            "upstream_invalid_response",
            "case {i}"
        );
        assert!(
            !answer.text().contains("Hello"),
            "case {i}: {}",
            answer.text()
        );
    }
    for record in fg.hostile_usage() {
        assert_eq!(record.outcome, Outcome::UpstreamCut, "{record:?}");
    }
}

#[tokio::test]
async fn openai_a_200_that_is_not_json_is_a_502_upstream_invalid_response() {
    a_200_that_is_not_json(Api::OpenAi).await;
}

#[tokio::test]
async fn anthropic_a_200_that_is_not_json_is_a_502_upstream_invalid_response() {
    a_200_that_is_not_json(Api::Anthropic).await;
}

/// JSON of the wrong shape is passed on (the client's SDK reports what it lacks: the
/// gateway checks what it must read, not the API's whole schema), and usage it cannot
/// read is estimated and flagged so — never taken as zero. Usage stated twice is metered
/// by its last copy, the one JSON.parse, Python's json and serde keep.
#[tokio::test]
async fn json_of_the_wrong_shape_is_passed_on_with_its_usage_estimated() {
    let good = events::whole(Api::OpenAi, "Hello", 7, 3);
    let cases = vec![
        whole_json("[1,2,3]"),
        whole_json(r#"{"choices":"none","usage":{"prompt_tokens":-5,"completion_tokens":-9}}"#),
        whole_json(r#"{"choices":[],"usage":{"prompt_tokens":5,"completion_tokens":-9}}"#),
        whole_json(r#"{"choices":[],"usage":{"prompt_tokens":1e30,"completion_tokens":"many"}}"#),
        whole_json(&good.replacen(
            "{",
            "{\"usage\":{\"prompt_tokens\":1,\"completion_tokens\":0},",
            1,
        )),
    ];
    let (fg, answers) = each_call(Api::OpenAi, cases, "").await;
    for answer in &answers {
        assert_eq!(answer.status, StatusCode::OK, "{}", answer.text());
    }
    assert_eq!(answers[0].json(), serde_json::json!([1, 2, 3]));
    let usage = fg.hostile_usage();
    assert_eq!(usage.len(), 5);
    for record in &usage[..4] {
        assert!(
            record.estimated,
            "unreadable usage is estimated: {record:?}"
        );
        assert!(record.usage.input_tokens > 0, "{record:?}");
    }
    assert_eq!(
        (
            usage[4].usage.input_tokens,
            usage[4].usage.output_tokens,
            usage[4].estimated
        ),
        (7, 3, false)
    );
}

#[tokio::test]
async fn a_body_over_max_response_bytes_is_a_502_and_a_stream_over_it_is_cut() {
    let pad = "x".repeat(8192);
    let big = events::whole(Api::OpenAi, &pad, 7, 3);
    let (_, answers) = each_call(
        Api::OpenAi,
        vec![whole_json(&big)],
        "max_response_bytes = 4096\n",
    )
    .await;
    assert_eq!(answers[0].status, StatusCode::BAD_GATEWAY);
    assert_eq!(
        answers[0].error_code(Api::OpenAi),
        "upstream_response_too_large"
    );

    // A stream passes what came within the limit, then is cut.
    let first: String = (0..8)
        .map(|_| events::delta(Api::OpenAi, "word "))
        .collect();
    let rest: String = (0..64)
        .map(|_| events::delta(Api::OpenAi, "word "))
        .collect();
    let go = Arc::new(Notify::new());
    let script_go = go.clone();
    let hostile = Hostile::start(move |_| {
        vec![
            sse_head(),
            Act::Send(chunk(first.as_bytes())),
            Act::WaitFor(script_go.clone()),
            Act::Send(chunk(rest.as_bytes())),
            last_chunk(),
        ]
    })
    .await;
    let fg = FaultGateway::start(Api::OpenAi, hostile, "max_response_bytes = 4096\n").await;
    let resp = fg.send(true).await;
    assert_eq!(resp.status(), StatusCode::OK);
    let mut stream = ClientStream::new(resp);
    stream.read_until(|b| sse_read(b).0.contains("word")).await;
    go.notify_one();
    stream.read_to_end().await;
    assert!(stream.cut, "a stream over the limit ends in an error");
    assert_eq!(fg.hostile_usage()[0].outcome, Outcome::UpstreamCut);
    let calls = fg.hostile_calls().await;
    assert_eq!(calls[0]["detail"]["outcome"], "UpstreamCut");
    fg.assert_slot_freed().await;
}

/// A `Content-Length` longer than the body (then the connection closes) is a cut body; a
/// shorter one leaves bytes on the connection, here a whole forged response: the next
/// call must get its own answer, not the forged one. A chunk size that is not a number
/// is a broken body too.
#[tokio::test]
async fn a_content_length_that_lies_is_caught_either_way() {
    let good = events::whole(Api::OpenAi, "Hello", 7, 3);
    let mut long = head(200, "application/json", "content-length: 4000\r\n");
    long.extend_from_slice(good.as_bytes());
    let forged = "{\"smuggled\":true}";
    let mut short = head(200, "application/json", "content-length: 2\r\n");
    short.extend_from_slice(b"{}");
    short.extend_from_slice(&head(
        200,
        "application/json",
        &format!("content-length: {}\r\n", forged.len()),
    ));
    short.extend_from_slice(forged.as_bytes());
    // A chunked body whose chunk size is not hexadecimal.
    let mut bad_chunk = head(200, "application/json", "transfer-encoding: chunked\r\n");
    bad_chunk.extend_from_slice(b"zz\r\n{}\r\n0\r\n\r\n");
    let cases = [long, short, whole_json(&good), bad_chunk];
    let hostile = Hostile::start(move |i| match i {
        // The short one keeps the connection open, as if the forged answer were next.
        1 => vec![Act::Send(cases[1].clone())],
        _ => vec![Act::Send(cases[i.min(3)].clone()), Act::Close],
    })
    .await;
    let fg = FaultGateway::start(Api::OpenAi, hostile, "").await;
    let answer = fg.call(false).await;
    assert_eq!(answer.status, StatusCode::BAD_GATEWAY, "{}", answer.text());
    assert_eq!(answer.error_code(Api::OpenAi), "upstream_failed");
    fg.assert_slot_freed().await;
    let answer = fg.call(false).await;
    assert_eq!(
        (answer.status, answer.text().as_str()),
        (StatusCode::OK, "{}")
    );
    let answer = fg.call(false).await;
    assert_eq!(answer.status, StatusCode::OK);
    let v: Value = answer.json();
    assert_eq!(
        v["choices"][0]["message"]["content"], "Hello",
        "the next call got its own answer: {v}"
    );
    let usage = fg.hostile_usage();
    assert_eq!(
        (usage[2].usage.input_tokens, usage[2].usage.output_tokens),
        (7, 3)
    );
    let answer = fg.call(false).await;
    assert_eq!(answer.status, StatusCode::BAD_GATEWAY, "{}", answer.text());
    assert_eq!(answer.error_code(Api::OpenAi), "upstream_failed");
    let calls = fg.hostile_calls().await;
    let statuses: Vec<u64> = calls.iter().filter_map(|c| c["status"].as_u64()).collect();
    assert_eq!(statuses, [502, 200, 200, 502]);
    fg.assert_slot_freed().await;
}
