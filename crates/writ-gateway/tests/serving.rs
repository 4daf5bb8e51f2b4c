//! Serving threads: connections spread over worker threads (one runtime each, with their
//! own upstream pools), and a shutdown that refuses new connections but finishes the
//! requests in flight.
#![allow(clippy::unwrap_used)]

use futures_util::StreamExt;
use reqwest::StatusCode;
use serde_json::json;
use writ_testkit::{Behavior, MockUpstream, TestGateway};

const UPSTREAM_KEY: &str = "sk-upstream-serving-0123456789";
const GRANT: &str =
    r#"{"type":"writ:llm","upstream":"demo","actions":["chat"],"models":["gpt-4o-mini"]}"#;

async fn setup(behavior: Behavior, workers: usize) -> (MockUpstream, TestGateway) {
    let upstream = MockUpstream::start_with(UPSTREAM_KEY, behavior).await;
    let gateway = TestGateway::start(&format!(
        "[server]\nworkers = {workers}\n[upstreams.demo]\nkind = \"openai\"\nbase_url = \"{}\"\nallow_private_network = true\napi_key = \"{UPSTREAM_KEY}\"\n",
        upstream.base_url()
    ))
    .await;
    (upstream, gateway)
}

#[tokio::test]
async fn many_connections_over_worker_threads_are_all_answered() {
    let (upstream, gw) = setup(Behavior::Normal, 3).await;
    let writ = gw.mint("demo", GRANT, 30);
    // A new connection per request: the acceptor hands them to every worker in turn.
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(0)
        .build()
        .unwrap();
    let calls = (0..24).map(|i| {
        let (client, writ, url) = (client.clone(), writ.clone(), gw.url("/v1/chat/completions"));
        async move {
            let resp = client
                .post(url)
                .bearer_auth(writ)
                .json(&json!({"model": "gpt-4o-mini", "messages": [{"role": "user", "content": format!("call {i}")}]}))
                .send()
                .await
                .unwrap();
            let status = resp.status();
            let body: serde_json::Value = resp.json().await.unwrap();
            (status, body)
        }
    });
    for (status, body) in futures_util::future::join_all(calls).await {
        assert_eq!(status, StatusCode::OK, "{body}");
        assert_eq!(body["object"], "chat.completion", "{body}");
    }
    let seen = upstream.requests();
    assert_eq!(seen.len(), 24);
    for request in &seen {
        assert_eq!(
            request.headers["authorization"],
            format!("Bearer {UPSTREAM_KEY}").as_str()
        );
    }
}

#[tokio::test]
async fn shutdown_refuses_new_connections_and_finishes_requests_in_flight() {
    let (upstream, mut gw) = setup(Behavior::HoldStreamAfterFirstEvent, 2).await;
    let writ = gw.mint("demo", GRANT, 30);
    let resp = reqwest::Client::new()
        .post(gw.url("/v1/chat/completions"))
        .bearer_auth(&writ)
        .json(&json!({"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}], "stream": true}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    let mut stream = resp.bytes_stream();
    let first = stream.next().await.unwrap().unwrap();
    assert!(first.starts_with(b"data: "), "{first:?}");

    gw.shut_down();
    // The listener closes: a new connection is refused (bounded wait for the acceptor).
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        if tokio::net::TcpStream::connect(gw.addr()).await.is_err() {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "still accepting after shutdown"
        );
        tokio::task::yield_now().await;
    }

    // The stream in flight still ends normally.
    upstream.release();
    let mut rest = first.to_vec();
    while let Some(chunk) = stream.next().await {
        rest.extend_from_slice(&chunk.unwrap());
    }
    let text = String::from_utf8(rest).unwrap();
    assert!(text.trim_end().ends_with("data: [DONE]"), "{text}");
}
