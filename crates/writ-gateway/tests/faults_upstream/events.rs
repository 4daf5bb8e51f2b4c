//! The SSE events a hostile upstream sends, in the shape of each API it speaks (a plain
//! HTTP upstream sends OpenAI's).

use crate::fault_gateway::Api;

/// The events that open a stream (Anthropic's `message_start`, reporting `input` tokens
/// and a placeholder of one output token, as Anthropic does; nothing for OpenAI).
pub fn start(api: Api, input: u64) -> String {
    match api {
        Api::OpenAi | Api::Http => String::new(),
        Api::Anthropic => format!(
            "event: message_start\ndata: {{\"type\":\"message_start\",\"message\":{{\"id\":\"msg_1\",\"type\":\"message\",\"role\":\"assistant\",\"content\":[],\"model\":\"claude-sonnet-4\",\"usage\":{{\"input_tokens\":{input},\"output_tokens\":1}}}}}}\n\n\
             event: content_block_start\ndata: {{\"type\":\"content_block_start\",\"index\":0,\"content_block\":{{\"type\":\"text\",\"text\":\"\"}}}}\n\n"
        ),
    }
}

/// One event carrying `text` (a JSON string's content, no escapes needed).
pub fn delta(api: Api, text: &str) -> String {
    match api {
        Api::OpenAi | Api::Http => format!(
            "data: {{\"id\":\"c1\",\"object\":\"chat.completion.chunk\",\"choices\":[{{\"index\":0,\"delta\":{{\"content\":\"{text}\"}}}}]}}\n\n"
        ),
        Api::Anthropic => format!(
            "event: content_block_delta\ndata: {{\"type\":\"content_block_delta\",\"index\":0,\"delta\":{{\"type\":\"text_delta\",\"text\":\"{text}\"}}}}\n\n"
        ),
    }
}

/// The events that report usage and end the stream. The numbers are written as given,
/// so a hostile upstream can claim what it likes.
pub fn end(api: Api, input: &str, output: &str) -> String {
    match api {
        Api::OpenAi | Api::Http => format!(
            "data: {{\"id\":\"c1\",\"object\":\"chat.completion.chunk\",\"choices\":[],\"usage\":{{\"prompt_tokens\":{input},\"completion_tokens\":{output}}}}}\n\n\
             data: [DONE]\n\n"
        ),
        Api::Anthropic => format!(
            "event: content_block_stop\ndata: {{\"type\":\"content_block_stop\",\"index\":0}}\n\n\
             event: message_delta\ndata: {{\"type\":\"message_delta\",\"delta\":{{\"stop_reason\":\"end_turn\"}},\"usage\":{{\"output_tokens\":{output}}}}}\n\n\
             event: message_stop\ndata: {{\"type\":\"message_stop\"}}\n\n"
        ),
    }
}

/// A whole non-streamed answer of `api` with `text` and the usage given.
pub fn whole(api: Api, text: &str, input: u64, output: u64) -> String {
    match api {
        Api::OpenAi | Api::Http => format!(
            "{{\"id\":\"chatcmpl-1\",\"object\":\"chat.completion\",\"model\":\"gpt-4o-mini\",\"choices\":[{{\"index\":0,\"message\":{{\"role\":\"assistant\",\"content\":\"{text}\"}},\"finish_reason\":\"stop\"}}],\"usage\":{{\"prompt_tokens\":{input},\"completion_tokens\":{output},\"total_tokens\":{}}}}}",
            input + output
        ),
        Api::Anthropic => format!(
            "{{\"id\":\"msg_1\",\"type\":\"message\",\"role\":\"assistant\",\"model\":\"claude-sonnet-4\",\"content\":[{{\"type\":\"text\",\"text\":\"{text}\"}}],\"stop_reason\":\"end_turn\",\"usage\":{{\"input_tokens\":{input},\"output_tokens\":{output}}}}}"
        ),
    }
}
