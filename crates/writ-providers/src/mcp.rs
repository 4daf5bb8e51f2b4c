//! MCP tool servers (streamable HTTP): JSON-RPC requests, where `tools/call` names a tool
//! and its arguments.

use serde_json::Value;

use crate::inspect::InspectError;
use crate::openai::json_object;

/// What an MCP request asks for.
#[derive(Debug, Clone, PartialEq)]
pub enum McpRequest {
    /// `tools/call`: a tool and its arguments (a JSON object).
    ToolCall {
        /// The tool's name.
        tool: String,
        /// Its arguments.
        arguments: Value,
    },
    /// Session upkeep that names no tool: `initialize`, `ping`, `tools/list`, notifications.
    Session,
    /// Any other method (resources, prompts, …): no grant kind covers these yet.
    Other(String),
}

/// Methods that keep a session going without acting on anything.
const SESSION_METHODS: &[&str] = &["initialize", "ping", "tools/list"];

/// Reads one JSON-RPC request. Batches are refused: each call is authorized on its own.
pub fn inspect(body: &[u8]) -> Result<McpRequest, InspectError> {
    if body.iter().find(|b| !b.is_ascii_whitespace()) == Some(&b'[') {
        return Err(InspectError::WrongType {
            field: "body",
            expected: "a single JSON-RPC request (batches are not accepted)",
        });
    }
    let obj = json_object(body)?;
    let method = match obj.get("method") {
        Some(Value::String(m)) => m.as_str(),
        None => return Err(InspectError::MissingField("method")),
        Some(_) => {
            return Err(InspectError::WrongType {
                field: "method",
                expected: "a string",
            });
        }
    };
    if method == "tools/call" {
        let params = obj
            .get("params")
            .and_then(Value::as_object)
            .ok_or(InspectError::MissingField("params"))?;
        let tool = match params.get("name") {
            Some(Value::String(n)) => n.clone(),
            None => return Err(InspectError::MissingField("params.name")),
            Some(_) => {
                return Err(InspectError::WrongType {
                    field: "params.name",
                    expected: "a string",
                });
            }
        };
        let arguments = match params.get("arguments") {
            None | Some(Value::Null) => Value::Object(Default::default()),
            Some(v @ Value::Object(_)) => v.clone(),
            Some(_) => {
                return Err(InspectError::WrongType {
                    field: "params.arguments",
                    expected: "an object",
                });
            }
        };
        return Ok(McpRequest::ToolCall { tool, arguments });
    }
    if SESSION_METHODS.contains(&method) || method.starts_with("notifications/") {
        return Ok(McpRequest::Session);
    }
    Ok(McpRequest::Other(method.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn reads_tool_calls_and_session_methods() {
        let call = br#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"book_flight","arguments":{"flight":"LH123"}}}"#;
        assert_eq!(
            inspect(call).unwrap(),
            McpRequest::ToolCall {
                tool: "book_flight".into(),
                arguments: json!({"flight": "LH123"})
            }
        );
        assert_eq!(
            inspect(br#"{"jsonrpc":"2.0","id":1,"method":"tools/list"}"#).unwrap(),
            McpRequest::Session
        );
        assert_eq!(
            inspect(br#"{"jsonrpc":"2.0","method":"notifications/initialized"}"#).unwrap(),
            McpRequest::Session
        );
        assert_eq!(
            inspect(br#"{"jsonrpc":"2.0","id":1,"method":"resources/read"}"#).unwrap(),
            McpRequest::Other("resources/read".into())
        );
    }

    #[test]
    fn refuses_malformed_requests() {
        let wrong = |body: &[u8]| match inspect(body) {
            Err(InspectError::WrongType { field, .. }) => Some(field),
            _ => None,
        };
        // A batch is refused as such, not read as its first request.
        assert_eq!(wrong(b"[]"), Some("body"));
        assert_eq!(wrong(br#" [{"method":"tools/call"}]"#), Some("body"));
        assert_eq!(
            inspect(br#"{"id":1}"#),
            Err(InspectError::MissingField("method"))
        );
        assert_eq!(
            inspect(br#"{"method":"tools/call"}"#),
            Err(InspectError::MissingField("params"))
        );
        assert_eq!(
            wrong(br#"{"method":"tools/call","params":{"name":5}}"#),
            Some("params.name")
        );
        assert_eq!(
            wrong(br#"{"method":"tools/call","params":{"name":"x","arguments":[1]}}"#),
            Some("params.arguments")
        );
        assert_eq!(inspect(b"nope"), Err(InspectError::NotJson));
    }
}
