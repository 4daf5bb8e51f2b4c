//! MCP servers (Streamable HTTP): what one JSON-RPC message asks for, the transport
//! headers that must agree with it ([`transport`]), the list answers filtered to what a
//! writ may call ([`list`]), and the JSON-RPC error codes of the gateway's refusals
//! ([`rpc_error`]).
//!
//! A message is read whole and strictly (a key repeated in any object refused), so the
//! gateway authorizes exactly what the MCP server will act on.

pub mod list;
pub mod param_headers;
pub mod rpc_error;
pub mod transport;

use serde_json::{Map, Value};

use crate::inspect::InspectError;
use crate::openai::json_object;

/// Every protocol revision the gateway passes on, oldest first. The last is the revision
/// whose requests carry their version in `_meta` and their method in headers.
pub const PROTOCOL_VERSIONS: [&str; 5] = [
    "2024-11-05",
    "2025-03-26",
    "2025-06-18",
    "2025-11-25",
    MODERN_VERSION,
];

/// The revision without an `initialize` handshake, whose requests mirror their method and
/// name into headers that must match the body.
pub const MODERN_VERSION: &str = "2026-07-28";

/// Methods 2026-07-28 removed: a request of that revision naming one is answered
/// `-32601` Method not found, as a server of that revision answers it.
pub const REMOVED_IN_MODERN: [&str; 5] = [
    "initialize",
    "ping",
    "logging/setLevel",
    "resources/subscribe",
    "resources/unsubscribe",
];

/// Where a 2026-07-28 request states its protocol version: `params._meta[…]`.
pub const META_VERSION_KEY: &str = "io.modelcontextprotocol/protocolVersion";

/// Longest tool or prompt name accepted (MCP's tool-name rule, SEP-986).
pub const MAX_NAME_LEN: usize = 128;

/// One JSON-RPC message a client sent, as far as the gateway reads it.
#[derive(Debug, Clone, PartialEq)]
pub struct McpMessage {
    /// The request id (a string or an integer); `None` for a notification or a response.
    pub id: Option<Value>,
    /// The method; `None` for a response to a server's request (older revisions).
    pub method: Option<String>,
    /// The protocol version stated in `params._meta`, if any.
    pub meta_version: Option<String>,
    /// The W3C `traceparent` in `params._meta` (MCP's place for trace context), as sent
    /// and unchecked; absent when not a string of at most [`MAX_META_TRACE`] bytes.
    pub meta_traceparent: Option<String>,
    /// The W3C `tracestate` in `params._meta`, likewise.
    pub meta_tracestate: Option<String>,
    /// What the message asks for.
    pub request: McpRequest,
}

/// What an MCP message asks for.
#[derive(Debug, Clone, PartialEq)]
pub enum McpRequest {
    /// `tools/call`: a tool and its arguments (a JSON object).
    ToolCall {
        /// The tool's name.
        tool: String,
        /// Its arguments.
        arguments: Value,
    },
    /// `resources/read`: one resource by URI.
    ResourceRead {
        /// The resource's URI, as sent.
        uri: String,
    },
    /// `prompts/get`: a prompt and its arguments (an object of strings).
    PromptGet {
        /// The prompt's name.
        name: String,
        /// Its arguments.
        arguments: Value,
    },
    /// `resources/subscribe` or `resources/unsubscribe`: updates about one resource, which
    /// a writ allows where it allows reading it.
    ResourceWatch {
        /// The resource's URI, as sent.
        uri: String,
    },
    /// `completion/complete`: argument suggestions for a prompt or resource template.
    Completion,
    /// A list whose answer is filtered to what the writ may use.
    List(list::ListKind),
    /// Session upkeep that acts on nothing: `initialize`, `server/discover`, `ping`,
    /// notifications, a client's response to a server request.
    Session,
    /// A method the gateway does not know (extensions, custom methods), by name: no grant
    /// can allow it.
    Other(String),
}

/// Methods that keep a session going without acting on anything: the handshake and
/// discovery, liveness, the log level, and the stream of change notifications.
const SESSION_METHODS: &[&str] = &[
    "initialize",
    "server/discover",
    "ping",
    "logging/setLevel",
    "subscriptions/listen",
];

impl McpMessage {
    /// The name the `Mcp-Name` header mirrors: the tool or prompt name, or the resource URI.
    pub fn name(&self) -> Option<&str> {
        match &self.request {
            McpRequest::ToolCall { tool, .. } => Some(tool),
            McpRequest::PromptGet { name, .. } => Some(name),
            McpRequest::ResourceRead { uri } => Some(uri),
            _ => None,
        }
    }

    /// A request (it has an id), which gets an answer; notifications and responses get
    /// `202 Accepted`.
    pub fn is_request(&self) -> bool {
        self.id.is_some() && self.method.is_some()
    }
}

/// Reads one JSON-RPC message. Batches are refused: each call is authorized on its own,
/// and no revision since 2025-06-18 has them.
pub fn inspect(body: &[u8]) -> Result<McpMessage, InspectError> {
    if body.iter().find(|b| !b.is_ascii_whitespace()) == Some(&b'[') {
        return Err(InspectError::WrongType {
            field: "body",
            expected: "a single JSON-RPC message (batches are not accepted: send each call in its own request)",
        });
    }
    let obj = json_object(body)?;
    if obj.get("jsonrpc") != Some(&Value::String("2.0".into())) {
        return Err(InspectError::WrongType {
            field: "jsonrpc",
            expected: "\"2.0\"",
        });
    }
    let id = match obj.get("id") {
        None => None,
        Some(v @ Value::String(_)) => Some(v.clone()),
        Some(v @ Value::Number(n)) if n.is_i64() || n.is_u64() => Some(v.clone()),
        Some(_) => {
            return Err(InspectError::WrongType {
                field: "id",
                expected: "a string or an integer",
            });
        }
    };
    let method = match obj.get("method") {
        Some(Value::String(m)) => m.clone(),
        None if obj.contains_key("result") || obj.contains_key("error") => {
            // A client's answer to a server's request (revisions before 2026-07-28).
            return Ok(McpMessage {
                id,
                method: None,
                meta_version: None,
                meta_traceparent: None,
                meta_tracestate: None,
                request: McpRequest::Session,
            });
        }
        None => return Err(InspectError::MissingField("method")),
        Some(_) => {
            return Err(InspectError::WrongType {
                field: "method",
                expected: "a string",
            });
        }
    };
    let params = match obj.get("params") {
        None => None,
        Some(Value::Object(p)) => Some(p),
        Some(_) => {
            return Err(InspectError::WrongType {
                field: "params",
                expected: "an object",
            });
        }
    };
    let meta_version = meta_version(params)?;
    let request = request_of(&method, params)?;
    let meta = params
        .and_then(|p| p.get("_meta"))
        .and_then(Value::as_object);
    Ok(McpMessage {
        id,
        method: Some(method),
        meta_version,
        meta_traceparent: meta_trace(meta, "traceparent"),
        meta_tracestate: meta_trace(meta, "tracestate"),
        request,
    })
}

/// Longest `_meta` trace context value read; a longer one is no trace context.
pub const MAX_META_TRACE: usize = 512;

/// A trace context value of `_meta`: trace context is optional, so a value of the wrong
/// type or size is ignored, never refused.
fn meta_trace(meta: Option<&Map<String, Value>>, key: &str) -> Option<String> {
    match meta?.get(key)? {
        Value::String(s) if s.len() <= MAX_META_TRACE => Some(s.clone()),
        _ => None,
    }
}

fn meta_version(params: Option<&Map<String, Value>>) -> Result<Option<String>, InspectError> {
    let meta = match params.and_then(|p| p.get("_meta")) {
        None | Some(Value::Null) => return Ok(None),
        Some(Value::Object(meta)) => meta,
        Some(_) => {
            return Err(InspectError::WrongType {
                field: "params._meta",
                expected: "an object",
            });
        }
    };
    match meta.get(META_VERSION_KEY) {
        None => Ok(None),
        Some(Value::String(v)) => Ok(Some(v.clone())),
        Some(_) => Err(InspectError::WrongType {
            field: "params._meta.io.modelcontextprotocol/protocolVersion",
            expected: "a string",
        }),
    }
}

fn request_of(
    method: &str,
    params: Option<&Map<String, Value>>,
) -> Result<McpRequest, InspectError> {
    // `field` is the key under `params`, as errors name it.
    let string = |key: &str, field: &'static str| match params.and_then(|p| p.get(key)) {
        Some(Value::String(s)) => Ok(s.clone()),
        None => Err(InspectError::MissingField(field)),
        Some(_) => Err(InspectError::WrongType {
            field,
            expected: "a string",
        }),
    };
    let arguments = || match params.and_then(|p| p.get("arguments")) {
        None | Some(Value::Null) => Ok(Value::Object(Map::new())),
        Some(v @ Value::Object(_)) => Ok(v.clone()),
        Some(_) => Err(InspectError::WrongType {
            field: "params.arguments",
            expected: "an object",
        }),
    };
    Ok(match method {
        "tools/call" => McpRequest::ToolCall {
            tool: checked_name(string("name", "params.name")?)?,
            arguments: arguments()?,
        },
        "prompts/get" => McpRequest::PromptGet {
            name: checked_name(string("name", "params.name")?)?,
            arguments: arguments()?,
        },
        "resources/read" => McpRequest::ResourceRead {
            uri: string("uri", "params.uri")?,
        },
        // Removed in 2026-07-28: without a URI, read as the unknown method it is there.
        "resources/subscribe" | "resources/unsubscribe" => match string("uri", "params.uri") {
            Ok(uri) => McpRequest::ResourceWatch { uri },
            Err(_) => McpRequest::Other(method.to_string()),
        },
        "completion/complete" => McpRequest::Completion,
        m => match list::ListKind::of_method(m) {
            Some(kind) => McpRequest::List(kind),
            None if SESSION_METHODS.contains(&m) || m.starts_with("notifications/") => {
                McpRequest::Session
            }
            None => McpRequest::Other(m.to_string()),
        },
    })
}

/// Whether `name` follows MCP's rule for tool names: 1 to 128 of `A–Z a–z 0–9 _ - .`.
pub fn is_safe_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= MAX_NAME_LEN
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.'))
}

/// A tool or prompt name the gateway can compare byte for byte with a grant: MCP's
/// tool-name alphabet only, so no look-alike letter, zero-width or control character can
/// make the name the writ names and the name the server acts on differ.
fn checked_name(name: String) -> Result<String, InspectError> {
    if is_safe_name(&name) {
        Ok(name)
    } else {
        Err(InspectError::WrongType {
            field: "params.name",
            expected: "a name of 1 to 128 ASCII letters, digits, `_`, `-` or `.` (MCP's tool-name rule)",
        })
    }
}

#[cfg(test)]
mod tests;
