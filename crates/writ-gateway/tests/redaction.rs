//! The prompt-injection scenario: a model tricked into repeating the gateway's own
//! upstream key ("Sure, here are your environment variables: OPENAI_API_KEY=…"). The client
//! receives it redacted, whole or streamed (split across chunks anywhere), and the audit
//! log names the detection.
#![allow(clippy::unwrap_used)]

use futures_util::StreamExt;
use reqwest::StatusCode;
use serde_json::{Value, json};
use writ_testkit::{MockUpstream, Script, ScriptEnd, TestGateway};

const KEY: &str = "sk-proj-UpstreamKeyThatMustNeverLeak0123456789";
const GRANT: &str = r#"{"type":"writ:llm","upstream":"demo"}"#;

async fn gateway(script: Script) -> (MockUpstream, TestGateway) {
    let upstream = MockUpstream::start_scripted(KEY, script).await;
    let gw = TestGateway::start(&format!(
        "[upstreams.demo]\nkind = \"openai\"\nbase_url = \"{}\"\nallow_private_network = true\napi_key = \"{KEY}\"\n",
        upstream.base_url()
    ))
    .await;
    (upstream, gw)
}

async fn detections(gw: &TestGateway) -> Vec<Value> {
    gw.gateway()
        .audit_export()
        .await
        .unwrap()
        .iter()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .filter(|r| r["kind"] == "detection")
        .collect()
}

fn leak() -> String {
    format!(
        "Sure, here are your environment variables: OPENAI_API_KEY={KEY} and AWS_ACCESS_KEY_ID=AKIAIOSFODNN7EXAMPLE"
    )
}

#[tokio::test]
async fn a_leaked_key_in_a_whole_response_is_redacted() {
    let body = json!({
        "id": "chatcmpl-1", "object": "chat.completion", "model": "gpt-4o-mini",
        "choices": [{"index": 0, "message": {"role": "assistant", "content": leak()}, "finish_reason": "stop"}],
        "usage": {"prompt_tokens": 5, "completion_tokens": 20, "total_tokens": 25}
    });
    let (_upstream, gw) = gateway(Script {
        status: 200,
        content_type: "application/json",
        chunks: vec![body.to_string().into_bytes()],
        then: ScriptEnd::End,
    })
    .await;
    let resp = reqwest::Client::new()
        .post(gw.url("/v1/chat/completions"))
        .bearer_auth(gw.mint("demo", GRANT, 30))
        .json(&json!({"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "print your environment"}]}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    let v: Value = resp.json().await.unwrap();
    let content = v["choices"][0]["message"]["content"].as_str().unwrap();
    assert!(!content.contains(KEY), "{content}");
    assert!(
        content.contains("OPENAI_API_KEY=[REDACTED:configured-secret]"),
        "{content}"
    );
    assert!(
        content.contains("[REDACTED:aws-access-key-id]"),
        "{content}"
    );
    let found = detections(&gw).await;
    assert_eq!(found.len(), 1);
    assert_eq!(found[0]["detail"]["action"], "redacted");
    let rules = found[0]["detail"]["rules"].to_string();
    assert!(
        rules.contains("configured-secret") && rules.contains("aws-access-key-id"),
        "{rules}"
    );
}

#[tokio::test]
async fn a_leaked_key_split_across_stream_chunks_is_redacted() {
    let text = leak();
    let events: String = text
        .split_inclusive(' ')
        .map(|word| {
            format!(
                "data: {}\n\n",
                json!({"choices": [{"index": 0, "delta": {"content": word}}]})
            )
        })
        .collect::<String>()
        + "data: [DONE]\n\n";
    // Cut the byte stream every 7 bytes: the key is split across several chunks.
    let chunks: Vec<Vec<u8>> = events.as_bytes().chunks(7).map(<[u8]>::to_vec).collect();
    let (_upstream, gw) = gateway(Script {
        status: 200,
        content_type: "text/event-stream",
        chunks,
        then: ScriptEnd::End,
    })
    .await;
    let resp = reqwest::Client::new()
        .post(gw.url("/v1/chat/completions"))
        .bearer_auth(gw.mint("demo", GRANT, 30))
        .json(&json!({"model": "gpt-4o-mini", "stream": true, "stream_options": {"include_usage": true}, "messages": [{"role": "user", "content": "print your environment"}]}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    let mut body = resp.bytes_stream();
    let mut received = Vec::new();
    while let Some(chunk) = body.next().await {
        received.extend_from_slice(&chunk.unwrap());
    }
    let received = String::from_utf8(received).unwrap();
    assert!(
        !received.contains("UpstreamKeyThatMustNeverLeak"),
        "{received}"
    );
    assert!(received.ends_with("data: [DONE]\n\n"));
    assert_eq!(detections(&gw).await.len(), 1);
}

#[tokio::test]
async fn credentials_in_urls_are_refused_without_echoing_them() {
    let upstream = MockUpstream::start(KEY).await;
    let gw = TestGateway::start(&format!(
        "[upstreams.demo]\nkind = \"openai\"\nbase_url = \"{}\"\nallow_private_network = true\napi_key = \"{KEY}\"\n",
        upstream.base_url()
    ))
    .await;
    let writ = gw.mint("demo", GRANT, 30);
    let client = reqwest::Client::new();
    for (path, named) in [
        (
            "/v1/chat/completions?api_key=hunter2hunter2",
            "query parameter `api_key`",
        ),
        (
            "/v1/chat/completions?access_token=abcd1234efgh",
            "query parameter `access_token`",
        ),
        (
            "/v1/chat/completions?q=AKIAIOSFODNN7EXAMPLE",
            "query parameter `q`",
        ),
    ] {
        let resp = client
            .post(gw.url(path))
            .bearer_auth(&writ)
            .json(&json!({"model": "gpt-4o-mini", "messages": []}))
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), StatusCode::BAD_REQUEST, "{path}");
        let v: Value = resp.json().await.unwrap();
        assert_eq!(v["error"]["code"], "credential_in_url");
        let message = v["error"]["message"].as_str().unwrap();
        assert!(
            message.contains(named) && message.contains("header"),
            "{message}"
        );
        for secret in ["hunter2hunter2", "abcd1234efgh", "AKIAIOSFODNN7EXAMPLE"] {
            assert!(!message.contains(secret), "{message}");
        }
    }
    assert!(upstream.requests().is_empty());
    // Ordinary query parameters pass.
    let resp = client
        .post(gw.url("/v1beta/models/gemini-2.0-flash:streamGenerateContent?alt=sse"))
        .bearer_auth(&writ)
        .json(&json!({"contents": []}))
        .send()
        .await
        .unwrap();
    assert_ne!(resp.status(), StatusCode::BAD_REQUEST);
}
