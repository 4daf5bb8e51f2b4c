//! A hostile or tricked upstream streaming a secret a few characters an event, as models
//! stream text, or with JSON escapes, or echoing it in a response header (issue 18, item
//! 4): what the client reassembles holds no secret the policy redacts, on every
//! provider's stream shape, and the detection is recorded.
#![allow(clippy::unwrap_used)]

use reqwest::StatusCode;
use serde_json::{Value, json};
use writ_testkit::{MockUpstream, Script, ScriptEnd, TestGateway};

/// The gateway's own upstream key (configured, so always redacted).
const KEY: &str = "sk-proj-UpstreamKeyThatMustNeverLeak0123456789";
/// Third-party secrets the built-in rules find.
const OTHER_OPENAI: &str = "sk-proj-Zx81QwErTyUiOpAsDfGhJkLzXcVbNm0123456789";
const AWS_KEY: &str = "AKIAIOSFODNN7EXAMPLE";
const GITHUB: &str = "ghp_aB3dE5fG7hJ9kL1mN3pQ5rS7tU9vW1xY3z5A";

/// Something the built-in writ rule matches (a writ's shape).
fn writ_shaped() -> String {
    format!("writ_{}", "Ab3-x_9Z".repeat(10))
}

/// `text` cut every four characters, as a model streams it.
fn pieces(text: &str) -> Vec<String> {
    let chars: Vec<char> = text.chars().collect();
    chars.chunks(4).map(|c| c.iter().collect()).collect()
}

fn sse(events: &[String]) -> Vec<Vec<u8>> {
    events.iter().map(|e| e.clone().into_bytes()).collect()
}

fn openai_events(text: &str) -> Vec<String> {
    let mut events: Vec<String> = pieces(text)
        .iter()
        .map(|p| {
            format!(
                "data: {}\n\n",
                json!({"id": "c1", "object": "chat.completion.chunk", "model": "gpt-4o-mini",
                    "choices": [{"index": 0, "delta": {"content": p}, "finish_reason": null}]})
            )
        })
        .collect();
    events.push(format!(
        "data: {}\n\n",
        json!({"id": "c1", "object": "chat.completion.chunk", "model": "gpt-4o-mini",
            "choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]})
    ));
    events.push("data: [DONE]\n\n".into());
    events
}

/// `(event name, data)` of each SSE event of a body.
fn sse_data(body: &str) -> Vec<(String, Value)> {
    body.split("\n\n")
        .filter_map(|block| {
            let mut name = String::new();
            let mut data = String::new();
            for line in block.lines() {
                if let Some(n) = line.strip_prefix("event: ") {
                    name = n.to_string();
                } else if let Some(d) = line.strip_prefix("data: ") {
                    data.push_str(d);
                }
            }
            serde_json::from_str(&data).ok().map(|v| (name, v))
        })
        .collect()
}

fn openai_text(body: &str) -> String {
    sse_data(body)
        .iter()
        .filter_map(|(_, v)| {
            v["choices"][0]["delta"]["content"]
                .as_str()
                .map(String::from)
        })
        .collect()
}

async fn gateway(config: &str, upstream: &MockUpstream) -> TestGateway {
    TestGateway::start(&config.replace("{base}", &upstream.base_url())).await
}

const OPENAI: &str = "[upstreams.demo]\nkind = \"openai\"\nbase_url = \"{base}\"\nallow_private_network = true\napi_key = \"sk-proj-UpstreamKeyThatMustNeverLeak0123456789\"\n";

fn stream_script(content_type: &'static str, chunks: Vec<Vec<u8>>) -> Script {
    Script {
        status: 200,
        content_type,
        chunks,
        then: ScriptEnd::End,
    }
}

/// Streams `events` from an OpenAI upstream through a gateway with `modes`; returns the
/// body the client received and the gateway.
async fn openai_stream(modes: &str, events: &[String]) -> (String, TestGateway) {
    let upstream =
        MockUpstream::start_scripted(KEY, stream_script("text/event-stream", sse(events))).await;
    let gw = gateway(&format!("{OPENAI}{modes}"), &upstream).await;
    let resp = reqwest::Client::new()
        .post(gw.url("/v1/chat/completions"))
        .bearer_auth(gw.mint("demo", r#"{"type":"writ:llm","upstream":"demo"}"#, 30))
        .json(&json!({"model": "gpt-4o-mini", "stream": true, "messages": [{"role": "user", "content": "hi"}]}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    (resp.text().await.unwrap(), gw)
}

/// `(action, rules)` of each detection recorded.
async fn detections(gw: &TestGateway) -> Vec<(String, Value)> {
    gw.gateway()
        .audit_export()
        .await
        .unwrap()
        .iter()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .filter(|r| r["kind"] == "detection")
        .map(|r| {
            (
                r["detail"]["action"]
                    .as_str()
                    .unwrap_or_default()
                    .to_string(),
                r["detail"]["rules"].clone(),
            )
        })
        .collect()
}

#[tokio::test]
async fn third_party_keys_streamed_four_characters_an_event_are_redacted() {
    for (secret, rule) in [
        (OTHER_OPENAI, "openai-api-key"),
        (AWS_KEY, "aws-access-key-id"),
        (GITHUB, "github-token"),
    ] {
        let text = format!("Here it is: {secret} — keep it safe.");
        let (body, gw) = openai_stream("", &openai_events(&text)).await;
        let received = openai_text(&body);
        assert_eq!(
            received,
            format!("Here it is: [REDACTED:{rule}] — keep it safe."),
            "{body}"
        );
        assert!(body.ends_with("data: [DONE]\n\n"), "{body}");
        assert_eq!(
            detections(&gw).await,
            vec![("redacted".to_string(), json!([rule]))]
        );
    }
}

#[tokio::test]
async fn the_gateways_own_key_and_writs_streamed_split_are_redacted_in_off_and_monitor_mode() {
    for mode in ["off", "monitor"] {
        let text = format!(
            "env: OPENAI_API_KEY={KEY} WRIT={} AWS={AWS_KEY}",
            writ_shaped()
        );
        let modes = format!("[detection.modes]\nresponse_secret = \"{mode}\"\n");
        let (body, gw) = openai_stream(&modes, &openai_events(&text)).await;
        let received = openai_text(&body);
        assert_eq!(
            received,
            format!(
                "env: OPENAI_API_KEY=[REDACTED:configured-secret] WRIT=[REDACTED:writ] AWS={AWS_KEY}"
            ),
            "{mode}: {body}"
        );
        let mut expected = vec![("redacted".to_string(), json!(["configured-secret", "writ"]))];
        if mode == "monitor" {
            // Monitor lets a third-party key through and records it after the stream.
            expected.push(("monitored".to_string(), json!(["aws-access-key-id"])));
        }
        assert_eq!(detections(&gw).await, expected, "{mode}");
    }
}

#[tokio::test]
async fn a_key_with_json_escapes_inside_the_events_is_redacted() {
    // `sk\u002dproj\u002d…` cut in four-character pieces, and once with every character
    // escaped in a single event.
    let mut events: Vec<String> = pieces(&format!("key {KEY} "))
        .iter()
        .map(|p| {
            let escaped = p.replace('-', "\\u002d");
            format!("data: {{\"choices\":[{{\"index\":0,\"delta\":{{\"content\":\"{escaped}\"}}}}]}}\n\n")
        })
        .collect();
    let all_escaped: String = KEY
        .chars()
        .map(|c| format!("\\u{:04x}", c as u32))
        .collect();
    events.push(format!(
        "data: {{\"choices\":[{{\"index\":0,\"delta\":{{\"content\":\"{all_escaped}\"}},\"finish_reason\":\"stop\"}}]}}\n\n"
    ));
    events.push("data: [DONE]\n\n".into());
    let (body, gw) = openai_stream("", &events).await;
    assert_eq!(
        openai_text(&body),
        "key [REDACTED:configured-secret] [REDACTED:configured-secret]",
        "{body}"
    );
    assert!(!body.contains("u002d"), "{body}");
    assert_eq!(
        detections(&gw).await,
        vec![("redacted".to_string(), json!(["configured-secret"]))]
    );
}

#[tokio::test]
async fn an_anthropic_stream_split_across_text_deltas_is_redacted() {
    const ANTHROPIC: &str = "[upstreams.claude]\nkind = \"anthropic\"\nbase_url = \"{base}\"\nallow_private_network = true\napi_key = \"sk-ant-api03-UpstreamAnthropicKeyThatMustNeverLeak0123456789\"\n";
    let key = "sk-ant-api03-UpstreamAnthropicKeyThatMustNeverLeak0123456789";
    let text = format!("mine is {key} and {AWS_KEY}!");
    let event = |name: &str, v: Value| format!("event: {name}\ndata: {v}\n\n");
    let mut events = vec![
        event(
            "message_start",
            json!({"type": "message_start", "message": {"id": "m1", "usage": {"input_tokens": 3, "output_tokens": 1}}}),
        ),
        event(
            "content_block_start",
            json!({"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}}),
        ),
    ];
    for p in pieces(&text) {
        events.push(event(
            "content_block_delta",
            json!({"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": p}}),
        ));
    }
    events.push(event(
        "content_block_stop",
        json!({"type": "content_block_stop", "index": 0}),
    ));
    events.push(event("message_stop", json!({"type": "message_stop"})));
    let upstream =
        MockUpstream::start_scripted(key, stream_script("text/event-stream", sse(&events))).await;
    let gw = gateway(ANTHROPIC, &upstream).await;
    let writ = gw.mint("claude", r#"{"type":"writ:llm","upstream":"claude"}"#, 30);
    let resp = reqwest::Client::new()
        .post(gw.url("/v1/messages"))
        .header("x-api-key", writ)
        .header("anthropic-version", "2023-06-01")
        .json(&json!({"model": "claude-sonnet-4", "max_tokens": 64, "stream": true, "messages": [{"role": "user", "content": "hi"}]}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    let body = resp.text().await.unwrap();
    let events = sse_data(&body);
    let received: String = events
        .iter()
        .filter(|(name, _)| name == "content_block_delta")
        .filter_map(|(_, v)| v["delta"]["text"].as_str().map(String::from))
        .collect();
    assert_eq!(
        received,
        "mine is [REDACTED:configured-secret] and [REDACTED:aws-access-key-id]!"
    );
    // Every event keeps its name, in order, the stop last.
    assert!(events.iter().all(|(name, v)| v["type"] == name.as_str()));
    assert_eq!(events.last().unwrap().0, "message_stop");
    assert_eq!(
        detections(&gw).await,
        vec![(
            "redacted".to_string(),
            json!(["aws-access-key-id", "configured-secret"])
        )]
    );
}

#[tokio::test]
async fn a_gemini_sse_stream_split_across_chunks_is_redacted() {
    const GEMINI: &str = "[upstreams.gemini]\nkind = \"gemini\"\nbase_url = \"{base}\"\nallow_private_network = true\napi_key = \"AIzaUpstreamGeminiKeyThatMustNeverLeak0123\"\n";
    let key = "AIzaUpstreamGeminiKeyThatMustNeverLeak0123";
    let text = format!("the key: {key}; and {GITHUB}");
    let parts = pieces(&text);
    let last = parts.len() - 1;
    let events: Vec<String> = parts
        .iter()
        .enumerate()
        .map(|(i, p)| {
            // Each piece in two parts: a client reads a candidate's parts joined.
            let (head, tail) = p.split_at(p.chars().next().map_or(0, char::len_utf8));
            let mut candidate = json!({"index": 0, "content": {"role": "model", "parts": [{"text": head}, {"text": tail}]}});
            if i == last {
                candidate["finishReason"] = json!("STOP");
            }
            format!("data: {}\n\n", json!({"candidates": [candidate]}))
        })
        .collect();
    let upstream =
        MockUpstream::start_scripted(key, stream_script("text/event-stream", sse(&events))).await;
    let gw = gateway(GEMINI, &upstream).await;
    let writ = gw.mint("gemini", r#"{"type":"writ:llm","upstream":"gemini"}"#, 30);
    let resp = reqwest::Client::new()
        .post(gw.url("/v1beta/models/gemini-2.0-flash:streamGenerateContent?alt=sse"))
        .header("x-goog-api-key", writ)
        .json(&json!({"contents": [{"role": "user", "parts": [{"text": "hi"}]}]}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    let body = resp.text().await.unwrap();
    let received: String = sse_data(&body)
        .iter()
        .flat_map(|(_, v)| {
            v["candidates"][0]["content"]["parts"]
                .as_array()
                .cloned()
                .unwrap_or_default()
        })
        .filter_map(|p| p["text"].as_str().map(String::from))
        .collect();
    assert_eq!(
        received, "the key: [REDACTED:configured-secret]; and [REDACTED:github-token]",
        "{body}"
    );
    assert_eq!(
        detections(&gw).await,
        vec![(
            "redacted".to_string(),
            json!(["configured-secret", "github-token"])
        )]
    );
}

fn frame(kind: &str, payload: &Value) -> Vec<u8> {
    writ_providers::bedrock::event_frame(kind, payload.to_string().into_bytes())
}

const ACCESS_KEY: &str = "AKIDWRITTESTEXAMPLE";
const SECRET: &str = "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY";

/// Plays `chunks` as a Bedrock event stream through a gateway; returns the body the client
/// read (an error when the stream was cut) and the gateway.
async fn bedrock_stream(chunks: Vec<Vec<u8>>) -> (Result<Vec<u8>, reqwest::Error>, TestGateway) {
    let upstream = MockUpstream::start_scripted(
        ACCESS_KEY,
        stream_script("application/vnd.amazon.eventstream", chunks),
    )
    .await;
    let gw = TestGateway::start(&format!(
        "[upstreams.bedrock]\nkind = \"bedrock\"\nregion = \"us-east-1\"\nbase_url = \"{}\"\nallow_private_network = true\naws_access_key_id = \"{ACCESS_KEY}\"\naws_secret_access_key = \"{SECRET}\"\n",
        upstream.base_url()
    ))
    .await;
    let writ = gw.mint("bedrock", r#"{"type":"writ:llm","upstream":"bedrock"}"#, 30);
    let resp = reqwest::Client::new()
        .post(gw.url("/model/mock.echo/converse-stream"))
        .bearer_auth(writ)
        .json(&json!({"messages": [{"role": "user", "content": [{"text": "hi"}]}]}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    (resp.bytes().await.map(|b| b.to_vec()), gw)
}

#[tokio::test]
async fn a_corrupt_bedrock_frame_is_not_passed_on_and_the_stream_is_cut() {
    let mut corrupt = frame(
        "contentBlockDelta",
        &json!({"contentBlockIndex": 0, "delta": {"text": format!("secret={SECRET}")}}),
    );
    // A bad message CRC: the frame cannot be decoded, so it cannot be scanned.
    let last = corrupt.len() - 1;
    corrupt[last] ^= 0xff;
    let chunks = vec![
        frame(
            "contentBlockDelta",
            &json!({"contentBlockIndex": 0, "delta": {"text": "hello "}}),
        ),
        corrupt,
        frame("messageStop", &json!({"stopReason": "end_turn"})),
    ];
    let (body, _gw) = bedrock_stream(chunks).await;
    assert!(
        body.is_err(),
        "a stream with a corrupt frame must not look complete"
    );
}

#[tokio::test]
async fn a_bedrock_converse_stream_is_redacted_in_re_encoded_frames() {
    let text = format!("secret={SECRET} writ={} done", writ_shaped());
    let mut frames = vec![frame("messageStart", &json!({"role": "assistant"}))];
    for p in pieces(&text) {
        frames.push(frame(
            "contentBlockDelta",
            &json!({"contentBlockIndex": 0, "delta": {"text": p}}),
        ));
    }
    frames.push(frame("contentBlockStop", &json!({"contentBlockIndex": 0})));
    frames.push(frame("messageStop", &json!({"stopReason": "end_turn"})));
    frames.push(frame(
        "metadata",
        &json!({"usage": {"inputTokens": 3, "outputTokens": 9, "totalTokens": 12}}),
    ));
    // Cut the byte stream every 7 bytes: frames arrive split too.
    let bytes: Vec<u8> = frames.concat();
    let chunks: Vec<Vec<u8>> = bytes.chunks(7).map(<[u8]>::to_vec).collect();
    let (body, gw) = bedrock_stream(chunks).await;
    let body = body.unwrap();
    // Every frame decodes with valid CRCs.
    let messages = writ_providers::bedrock::FrameReader::new()
        .push(&body)
        .unwrap();
    let received: String = messages
        .iter()
        .filter_map(|m| {
            let v: Value = serde_json::from_slice(m.payload()).ok()?;
            v["delta"]["text"].as_str().map(String::from)
        })
        .collect();
    assert_eq!(
        received,
        "secret=[REDACTED:configured-secret] writ=[REDACTED:writ] done"
    );
    let r = gw.gateway().recent_usage().pop().unwrap();
    assert_eq!((r.usage.input_tokens, r.usage.output_tokens), (3, 9));
    assert_eq!(
        detections(&gw).await,
        vec![("redacted".to_string(), json!(["configured-secret", "writ"]))]
    );
}

#[tokio::test]
async fn upstream_response_headers_carrying_the_key_or_a_writ_are_redacted() {
    let whole = json!({
        "id": "c1", "object": "chat.completion", "model": "gpt-4o-mini",
        "choices": [{"index": 0, "message": {"role": "assistant", "content": "hello"}, "finish_reason": "stop"}],
        "usage": {"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2}
    });
    for (content_type, body, stream) in [
        ("application/json", whole.to_string(), false),
        ("text/event-stream", openai_events("hello").concat(), true),
    ] {
        let upstream = MockUpstream::start_scripted_with_headers(
            KEY,
            stream_script(content_type, vec![body.into_bytes()]),
            vec![
                ("x-echo-key".into(), format!("Bearer {KEY}")),
                ("x-echo-writ".into(), writ_shaped()),
                ("x-request-id".into(), "req_123".into()),
            ],
        )
        .await;
        let gw = gateway(OPENAI, &upstream).await;
        let resp = reqwest::Client::new()
            .post(gw.url("/v1/chat/completions"))
            .bearer_auth(gw.mint("demo", r#"{"type":"writ:llm","upstream":"demo"}"#, 30))
            .json(&json!({"model": "gpt-4o-mini", "stream": stream, "messages": [{"role": "user", "content": "hi"}]}))
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), StatusCode::OK);
        let headers = resp.headers().clone();
        assert_eq!(
            headers["x-echo-key"], "Bearer [REDACTED:configured-secret]",
            "stream: {stream}"
        );
        assert_eq!(headers["x-echo-writ"], "[REDACTED:writ]");
        assert_eq!(headers["x-request-id"], "req_123");
        let all: String = headers
            .iter()
            .map(|(n, v)| format!("{n}: {v:?}\n"))
            .collect();
        assert!(!all.contains("UpstreamKeyThatMustNeverLeak"), "{all}");
        let text = resp.text().await.unwrap();
        if stream {
            assert_eq!(openai_text(&text), "hello", "{text}");
        } else {
            assert!(text.contains("hello"), "{text}");
        }
        assert_eq!(
            detections(&gw).await,
            vec![("redacted".to_string(), json!(["configured-secret", "writ"]))],
            "stream: {stream}"
        );
    }
}

#[tokio::test]
async fn a_whole_response_with_an_escaped_key_in_a_repeated_member_is_not_passed_on() {
    // The first `content` holds the gateway's key, escaped; a client keeping the first
    // copy would read it, while a rewrite from one parsed value keeps only the second.
    let escaped = KEY.replace('-', "\\u002d");
    let body = format!(
        r#"{{"id":"c1","object":"chat.completion","model":"gpt-4o-mini","choices":[{{"index":0,"message":{{"role":"assistant","content":"{escaped}","content":"hello"}},"finish_reason":"stop"}}],"usage":{{"prompt_tokens":1,"completion_tokens":1,"total_tokens":2}}}}"#
    );
    let upstream = MockUpstream::start_scripted(
        KEY,
        stream_script("application/json", vec![body.into_bytes()]),
    )
    .await;
    let gw = gateway(OPENAI, &upstream).await;
    let resp = reqwest::Client::new()
        .post(gw.url("/v1/chat/completions"))
        .bearer_auth(gw.mint("demo", r#"{"type":"writ:llm","upstream":"demo"}"#, 30))
        .json(&json!({"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}]}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::BAD_GATEWAY);
    let text = resp.text().await.unwrap();
    assert!(text.contains("upstream_invalid_response"), "{text}");
    assert!(!text.contains("UpstreamKeyThatMustNeverLeak"), "{text}");
}

/// A whole (not streamed) JSON answer whose text escapes a key is redacted as the client
/// decodes it; one whose escapes hide nothing passes byte for byte.
#[tokio::test]
async fn a_whole_json_response_is_scanned_with_its_escapes_decoded() {
    let body = |content: &str| {
        format!(
            r#"{{"id":"c1","object":"chat.completion","model":"gpt-4o-mini","choices":[{{"index":0,"message":{{"role":"assistant","content":"{content}"}},"finish_reason":"stop"}}],"usage":{{"prompt_tokens":1,"completion_tokens":1,"total_tokens":2}}}}"#
        )
    };
    let escaped = format!("line one\\nkey: {}", KEY.replace('-', "\\u002d"));
    let plain = "line one\\nline \\\"two\\\"".to_string();
    for (content, leaks) in [(escaped, true), (plain, false)] {
        let sent = body(&content);
        let upstream = MockUpstream::start_scripted(
            KEY,
            stream_script("application/json", vec![sent.clone().into_bytes()]),
        )
        .await;
        let gw = gateway(OPENAI, &upstream).await;
        let resp = reqwest::Client::new()
            .post(gw.url("/v1/chat/completions"))
            .bearer_auth(gw.mint("demo", r#"{"type":"writ:llm","upstream":"demo"}"#, 30))
            .json(&json!({"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}]}))
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), StatusCode::OK);
        let text = resp.text().await.unwrap();
        if leaks {
            let v: Value = serde_json::from_str(&text).unwrap();
            assert_eq!(
                v["choices"][0]["message"]["content"],
                "line one\nkey: [REDACTED:configured-secret]",
                "{text}"
            );
            assert_eq!(
                detections(&gw).await,
                vec![("redacted".to_string(), json!(["configured-secret"]))]
            );
        } else {
            assert_eq!(text, sent);
            assert!(detections(&gw).await.is_empty());
        }
    }
}
