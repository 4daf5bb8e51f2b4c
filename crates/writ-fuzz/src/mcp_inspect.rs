//! Target `mcp_inspect`: a JSON-RPC message to an MCP server read as the gateway reads it
//! before authorizing it, and a tool call's arguments flattened into request facts.

use writ_providers::mcp::{McpRequest, inspect};
use writ_token::flatten_arguments;

/// Input: the request body.
///
/// Invariants: reading never panics and answers the same twice; an accepted message is a
/// JSON object; a tool call or prompt names something and carries an object of arguments,
/// which flatten into facts without panicking.
pub fn mcp_inspect(data: &[u8]) {
    let read = inspect(data);
    assert_eq!(read, inspect(data), "MCP inspection is not deterministic");
    let Ok(message) = read else {
        return;
    };
    assert!(
        serde_json::from_slice::<serde_json::Value>(data).is_ok_and(|v| v.is_object()),
        "an accepted MCP message is not a JSON object"
    );
    match &message.request {
        McpRequest::ToolCall { tool, arguments }
        | McpRequest::PromptGet {
            name: tool,
            arguments,
        } => {
            assert!(!tool.is_empty(), "a call was accepted naming nothing");
            assert!(
                arguments.is_object(),
                "arguments accepted that are not an object"
            );
            let _ = flatten_arguments(arguments);
        }
        _ => {}
    }
    let _ = message.name();
    let _ = message.is_request();
}
