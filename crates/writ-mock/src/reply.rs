//! The mocks' answers, pure: request body in, the provider's answer out. Deterministic,
//! with real usage.
//!
//! Each checks what its provider checks of a request body (see [`crate::body`]) and
//! answers in the provider's shape: OpenAI's `chat.completion` with `usage`, or
//! `chat.completion.chunk` events ending in `data: [DONE]` with a final usage chunk when
//! `stream_options.include_usage` is set; OpenAI's embeddings and Responses API;
//! Anthropic's Messages API; Gemini's generateContent.

use base64::Engine;
use serde_json::{Value, json};

use crate::body::{self, Rejection};

/// Roles OpenAI accepts in `messages`.
const ROLES: &[&str] = &[
    "system",
    "developer",
    "user",
    "assistant",
    "tool",
    "function",
];

/// What a mock answers to a well-formed request.
#[derive(Debug, Clone, PartialEq)]
pub enum Reply {
    /// A non-streamed answer.
    Json(Value),
    /// Server-sent events, each a complete frame, in order.
    Stream(Vec<String>),
}

/// Token count by the documented heuristic of about four characters a token.
pub fn estimate_tokens(text: &str) -> u64 {
    (text.chars().count() as u64).div_ceil(4)
}

/// Answers one chat-completion request body. `created` is the Unix time to report.
pub fn chat_completion(body: &[u8], created: u64) -> Result<Reply, Rejection> {
    let obj = body::object(body)?;
    let model = body::string(&obj, "model")?.to_string();
    let messages = body::objects(&obj, "messages")?;
    let cap = body::count(&obj, "max_completion_tokens")?.max(body::count(&obj, "max_tokens")?);
    let stream = body::flag(&obj, "stream")?.unwrap_or(false);
    if obj
        .get("stream_options")
        .is_some_and(|o| !o.is_null() && !o.is_object())
    {
        return Err(Rejection::field(
            "stream_options",
            "invalid type for 'stream_options': expected an object",
        ));
    }
    let include_usage = body::flag(&obj, "stream_options.include_usage")?.unwrap_or(false);
    let mut prompt_tokens = 0u64;
    let mut last_user = String::new();
    for (i, m) in messages.iter().enumerate() {
        let role = m.get("role").and_then(Value::as_str).unwrap_or_default();
        if !ROLES.contains(&role) {
            return Err(Rejection::field(
                &format!("messages[{i}].role"),
                format!("messages[{i}].role must be one of {}", ROLES.join(", ")),
            ));
        }
        let content = content_text(m.get("content"));
        // Three tokens of framing per message, as OpenAI's own accounting does.
        prompt_tokens += 3 + estimate_tokens(&content);
        if role == "user" {
            last_user = content;
        }
    }
    let echo: String = last_user.chars().take(200).collect();
    let answer = format!("Hello from the writ mock upstream. You said: {echo}");
    let words: Vec<&str> = answer.split_inclusive(' ').collect();
    let cap = cap.map_or(usize::MAX, |n| n as usize);
    let (words, finish_reason) = if words.len() > cap {
        (&words[..cap], "length")
    } else {
        (&words[..], "stop")
    };
    let completion_tokens = words.len() as u64;
    let usage = json!({
        "prompt_tokens": prompt_tokens,
        "completion_tokens": completion_tokens,
        "total_tokens": prompt_tokens + completion_tokens,
    });
    let id = format!("chatcmpl-mock-{created}");
    if !stream {
        return Ok(Reply::Json(json!({
            "id": id,
            "object": "chat.completion",
            "created": created,
            "model": model,
            "choices": [{
                "index": 0,
                "message": {"role": "assistant", "content": words.concat()},
                "finish_reason": finish_reason,
                "logprobs": null,
            }],
            "usage": usage,
        })));
    }
    let chunk = |delta: Value, finish: Value| {
        let mut c = json!({
            "id": id, "object": "chat.completion.chunk", "created": created, "model": model,
            "choices": [{"index": 0, "delta": delta, "finish_reason": finish, "logprobs": null}],
        });
        if include_usage {
            c["usage"] = Value::Null;
        }
        sse(&c)
    };
    let mut events = vec![chunk(
        json!({"role": "assistant", "content": ""}),
        Value::Null,
    )];
    for w in words {
        events.push(chunk(json!({"content": w}), Value::Null));
    }
    events.push(chunk(json!({}), json!(finish_reason)));
    if include_usage {
        events.push(sse(&json!({
            "id": id, "object": "chat.completion.chunk", "created": created, "model": model,
            "choices": [], "usage": usage,
        })));
    }
    events.push("data: [DONE]\n\n".to_string());
    Ok(Reply::Stream(events))
}

/// Answers an embeddings request: a deterministic unit vector per input (from the input's
/// bytes), as floats or, when `encoding_format` is `base64`, as little-endian f32 bytes —
/// what the official SDKs ask for by default.
pub fn embeddings(body: &[u8]) -> Result<Value, Rejection> {
    let obj = body::object(body)?;
    let model = body::string(&obj, "model")?.to_string();
    let inputs: Vec<String> = match body::text_or_list(&obj, "input")? {
        Value::Array(items) => items
            .iter()
            .map(|i| i.as_str().map_or_else(|| i.to_string(), str::to_string))
            .collect(),
        other => vec![other.as_str().unwrap_or_default().to_string()],
    };
    let dims = obj
        .get("dimensions")
        .and_then(Value::as_u64)
        .unwrap_or(8)
        .clamp(1, 4096) as usize;
    let base64 = obj.get("encoding_format").and_then(Value::as_str) == Some("base64");
    let mut prompt_tokens = 0;
    let data: Vec<Value> = inputs
        .iter()
        .enumerate()
        .map(|(i, text)| {
            prompt_tokens += estimate_tokens(text).max(1);
            let mut v: Vec<f32> = (0..dims)
                .map(|d| {
                    let b = text
                        .as_bytes()
                        .get(d % text.len().max(1))
                        .copied()
                        .unwrap_or(1);
                    f32::from(b) + d as f32
                })
                .collect();
            let norm = v
                .iter()
                .map(|x| x * x)
                .sum::<f32>()
                .sqrt()
                .max(f32::EPSILON);
            v.iter_mut().for_each(|x| *x /= norm);
            let embedding = if base64 {
                let bytes: Vec<u8> = v.iter().flat_map(|x| x.to_le_bytes()).collect();
                json!(base64::engine::general_purpose::STANDARD.encode(&bytes))
            } else {
                json!(v)
            };
            json!({"object": "embedding", "index": i, "embedding": embedding})
        })
        .collect();
    Ok(json!({
        "object": "list",
        "data": data,
        "model": model,
        "usage": {"prompt_tokens": prompt_tokens, "total_tokens": prompt_tokens},
    }))
}

/// Answers an Anthropic Messages request: a `message` with `usage`, or the event sequence
/// `message_start`, `content_block_start`, `content_block_delta`…, `content_block_stop`,
/// `message_delta` (with the output usage), `message_stop`.
pub fn messages(body: &[u8], created: u64) -> Result<Reply, Rejection> {
    let obj = body::object(body)?;
    let model = body::string(&obj, "model")?.to_string();
    let messages = body::objects(&obj, "messages")?;
    // Anthropic requires the output cap on every Messages request.
    let cap = body::count(&obj, "max_tokens")?
        .ok_or_else(|| Rejection::field("max_tokens", "max_tokens: Field required"))?;
    let stream = body::flag(&obj, "stream")?.unwrap_or(false);
    let mut input_tokens = estimate_tokens(&content_text(obj.get("system")));
    let mut last_user = String::new();
    for (i, m) in messages.iter().enumerate() {
        let role = m.get("role").and_then(Value::as_str).unwrap_or_default();
        if role != "user" && role != "assistant" {
            return Err(Rejection::field(
                &format!("messages.{i}.role"),
                format!("messages.{i}.role: must be user or assistant"),
            ));
        }
        let text = content_text(m.get("content"));
        input_tokens += 3 + estimate_tokens(&text);
        if role == "user" {
            last_user = text;
        }
    }
    let echo: String = last_user.chars().take(200).collect();
    let answer = format!("Hello from the writ mock of Anthropic. You said: {echo}");
    let words: Vec<&str> = answer.split_inclusive(' ').collect();
    let cap = cap as usize;
    let (words, stop_reason) = if words.len() > cap {
        (&words[..cap], "max_tokens")
    } else {
        (&words[..], "end_turn")
    };
    let output_tokens = words.len() as u64;
    let id = format!("msg_mock_{created}");
    if !stream {
        return Ok(Reply::Json(json!({
            "id": id, "type": "message", "role": "assistant", "model": model,
            "content": [{"type": "text", "text": words.concat()}],
            "stop_reason": stop_reason, "stop_sequence": null,
            "usage": {"input_tokens": input_tokens, "output_tokens": output_tokens},
        })));
    }
    let event = |name: &str, v: Value| format!("event: {name}\ndata: {v}\n\n");
    let mut events = vec![
        event(
            "message_start",
            json!({"type": "message_start", "message": {
            "id": id, "type": "message", "role": "assistant", "model": model, "content": [],
            "stop_reason": null, "stop_sequence": null,
            "usage": {"input_tokens": input_tokens, "output_tokens": 1}}}),
        ),
        event(
            "content_block_start",
            json!({"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}}),
        ),
        event("ping", json!({"type": "ping"})),
    ];
    for w in words {
        events.push(event("content_block_delta", json!({"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": w}})));
    }
    events.push(event(
        "content_block_stop",
        json!({"type": "content_block_stop", "index": 0}),
    ));
    events.push(event("message_delta", json!({"type": "message_delta", "delta": {"stop_reason": stop_reason, "stop_sequence": null}, "usage": {"output_tokens": output_tokens}})));
    events.push(event("message_stop", json!({"type": "message_stop"})));
    Ok(Reply::Stream(events))
}

/// Answers a Gemini generateContent request: text echoing the last user part, with
/// `usageMetadata`; streamed as several chunks, each with the running usage.
pub fn generate_content(model: &str, stream: bool, body: &[u8]) -> Result<Reply, Rejection> {
    let obj = body::object(body)?;
    let contents = body::objects(&obj, "contents")?;
    let cap = body::count(&obj, "generationConfig.maxOutputTokens")?;
    let mut prompt = 0;
    let mut last_user = String::new();
    for c in contents {
        let text: String = c
            .get("parts")
            .and_then(Value::as_array)
            .map(|ps| {
                ps.iter()
                    .filter_map(|p| p.get("text")?.as_str())
                    .collect::<Vec<_>>()
                    .join(" ")
            })
            .unwrap_or_default();
        prompt += estimate_tokens(&text).max(1);
        if c.get("role").and_then(Value::as_str).unwrap_or("user") == "user" {
            last_user = text;
        }
    }
    let echo: String = last_user.chars().take(200).collect();
    let answer = format!("Hello from the writ mock of Gemini. You said: {echo}");
    let words: Vec<&str> = answer.split_inclusive(' ').collect();
    let cap = cap.map_or(usize::MAX, |n| n as usize);
    let words = &words[..words.len().min(cap)];
    let usage = |out: usize| json!({"promptTokenCount": prompt, "candidatesTokenCount": out, "totalTokenCount": prompt + out as u64});
    let chunk = |text: String, out: usize, last: bool| {
        let mut candidate =
            json!({"content": {"parts": [{"text": text}], "role": "model"}, "index": 0});
        if last {
            candidate["finishReason"] = json!("STOP");
        }
        json!({"candidates": [candidate], "usageMetadata": usage(out), "modelVersion": model})
    };
    if !stream {
        return Ok(Reply::Json(chunk(words.concat(), words.len(), true)));
    }
    let parts: Vec<&[&str]> = words.chunks(3).collect();
    let mut seen = 0;
    let events = parts
        .iter()
        .enumerate()
        .map(|(i, part)| {
            seen += part.len();
            format!(
                "data: {}\r\n\r\n",
                chunk(part.concat(), seen, i + 1 == parts.len())
            )
        })
        .collect();
    Ok(Reply::Stream(events))
}

/// Answers a Responses API request (not streamed): one output message echoing the input,
/// with `usage` in the Responses shape.
pub fn responses(body: &[u8], created: u64) -> Result<Value, Rejection> {
    let obj = body::object(body)?;
    let model = body::string(&obj, "model")?.to_string();
    body::text_or_list(&obj, "input")?;
    let cap = body::count(&obj, "max_output_tokens")?;
    if body::flag(&obj, "stream")?.unwrap_or(false) {
        return Err(Rejection::field(
            "stream",
            "the mock does not stream the Responses API",
        ));
    }
    let input = match obj.get("input") {
        Some(Value::String(s)) => s.clone(),
        Some(Value::Array(items)) => items
            .iter()
            .map(|i| content_text(i.get("content")))
            .collect::<Vec<_>>()
            .join(" "),
        _ => String::new(),
    };
    let echo: String = input.chars().take(200).collect();
    let answer = format!("Hello from the writ mock upstream. You said: {echo}");
    let words: Vec<&str> = answer.split_inclusive(' ').collect();
    let cap = cap.map_or(usize::MAX, |n| n as usize);
    let words = &words[..words.len().min(cap)];
    let input_tokens = 3 + estimate_tokens(&input);
    let output_tokens = words.len() as u64;
    Ok(json!({
        "id": format!("resp_mock_{created}"), "object": "response", "created_at": created,
        "status": "completed", "model": model, "error": null, "incomplete_details": null,
        "output": [{"type": "message", "id": "msg_mock", "status": "completed", "role": "assistant",
                    "content": [{"type": "output_text", "text": words.concat(), "annotations": []}]}],
        "parallel_tool_calls": true, "tool_choice": "auto", "tools": [],
        "usage": {"input_tokens": input_tokens, "output_tokens": output_tokens,
                  "total_tokens": input_tokens + output_tokens,
                  "input_tokens_details": {"cached_tokens": 0}, "output_tokens_details": {"reasoning_tokens": 0}},
    }))
}

/// The model list the mock serves.
pub fn models() -> Value {
    json!({"object": "list", "data": [
        {"id": "gpt-4o-mini", "object": "model", "created": 0, "owned_by": "writ-mock"},
        {"id": "gpt-4o", "object": "model", "created": 0, "owned_by": "writ-mock"},
        {"id": "text-embedding-3-small", "object": "model", "created": 0, "owned_by": "writ-mock"},
    ]})
}

fn sse(v: &Value) -> String {
    format!("data: {v}\n\n")
}

/// The text of a message's `content`: a string, or the text parts of an array.
fn content_text(content: Option<&Value>) -> String {
    match content {
        Some(Value::String(s)) => s.clone(),
        Some(Value::Array(parts)) => parts
            .iter()
            .filter_map(|p| p.get("text").and_then(Value::as_str))
            .collect::<Vec<_>>()
            .join(" "),
        _ => String::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const HI: &[u8] =
        br#"{"model":"gpt-4o-mini","messages":[{"role":"user","content":"hi there"}]}"#;

    #[test]
    fn answers_with_usage() {
        let Reply::Json(v) = chat_completion(HI, 1).unwrap() else {
            panic!()
        };
        assert_eq!(v["object"], "chat.completion");
        assert!(
            v["choices"][0]["message"]["content"]
                .as_str()
                .unwrap()
                .ends_with("hi there")
        );
        let u = &v["usage"];
        assert_eq!(
            u["total_tokens"].as_u64().unwrap(),
            u["prompt_tokens"].as_u64().unwrap() + u["completion_tokens"].as_u64().unwrap()
        );
    }

    #[test]
    fn streams_with_final_usage_chunk_only_when_asked() {
        let with = br#"{"model":"m","messages":[{"role":"user","content":"x"}],"stream":true,"stream_options":{"include_usage":true}}"#;
        let Reply::Stream(events) = chat_completion(with, 1).unwrap() else {
            panic!()
        };
        assert_eq!(events.last().unwrap(), "data: [DONE]\n\n");
        let usage_chunk = &events[events.len() - 2];
        assert!(usage_chunk.contains(r#""choices":[]"#) && usage_chunk.contains("total_tokens"));
        let without = br#"{"model":"m","messages":[{"role":"user","content":"x"}],"stream":true}"#;
        let Reply::Stream(events) = chat_completion(without, 1).unwrap() else {
            panic!()
        };
        assert!(events.iter().all(|e| !e.contains("total_tokens")));
    }

    #[test]
    fn honours_output_cap() {
        let body = br#"{"model":"m","messages":[{"role":"user","content":"x"}],"max_tokens":2}"#;
        let Reply::Json(v) = chat_completion(body, 1).unwrap() else {
            panic!()
        };
        assert_eq!(v["usage"]["completion_tokens"], 2);
        assert_eq!(v["choices"][0]["finish_reason"], "length");
    }

    #[test]
    fn embeddings_as_floats_or_base64() {
        let v = embeddings(br#"{"model":"text-embedding-3-small","input":["a","bb"]}"#).unwrap();
        assert_eq!(v["data"].as_array().unwrap().len(), 2);
        assert_eq!(v["data"][0]["embedding"].as_array().unwrap().len(), 8);
        assert!(v["usage"]["prompt_tokens"].as_u64().unwrap() >= 2);
        let b =
            embeddings(br#"{"model":"m","input":"a","encoding_format":"base64","dimensions":3}"#)
                .unwrap();
        assert_eq!(
            b["data"][0]["embedding"].as_str().unwrap().len(),
            16,
            "3 f32 = 12 bytes = 16 base64 chars"
        );
        assert!(embeddings(br#"{"model":"m","input":[]}"#).is_err());
        assert!(embeddings(br#"{"model":"m"}"#).is_err());
    }

    #[test]
    fn anthropic_messages_whole_and_streamed() {
        let body = br#"{"model":"claude-sonnet-4","max_tokens":50,"messages":[{"role":"user","content":"hi"}]}"#;
        let Reply::Json(v) = messages(body, 1).unwrap() else {
            panic!()
        };
        assert_eq!(v["type"], "message");
        assert!(v["usage"]["output_tokens"].as_u64().unwrap() > 0);
        let streamed = br#"{"model":"m","max_tokens":3,"stream":true,"messages":[{"role":"user","content":"hi"}]}"#;
        let Reply::Stream(events) = messages(streamed, 1).unwrap() else {
            panic!()
        };
        assert!(events[0].starts_with("event: message_start"));
        assert!(events.iter().any(|e| e.contains(r#""output_tokens":3"#)));
        assert!(
            messages(
                br#"{"model":"m","messages":[{"role":"user","content":"x"}]}"#,
                1
            )
            .is_err()
        );
    }

    #[test]
    fn rejects_what_openai_rejects() {
        assert!(chat_completion(br#"{"model":"m","messages":[]}"#, 1).is_err());
        let bad_role = br#"{"model":"m","messages":[{"role":"wizard","content":"x"}]}"#;
        assert_eq!(
            chat_completion(bad_role, 1).unwrap_err().param.as_deref(),
            Some("messages[0].role")
        );
        assert!(chat_completion(b"{", 1).is_err());
    }
}
