//! The MCP side of inspect: each JSON-RPC method's request facts, the transport headers
//! checked against the body, and what later phases need of the call (its id, for the
//! JSON-RPC error of a refusal; the list it asks for, for the filter phase; what the audit
//! record says of it).

use http::HeaderMap;
use writ_providers::mcp::{McpMessage, McpRequest, param_headers, transport};
use writ_token::{Api, ArgValue, RequestFacts, flatten_arguments};

use crate::error::GatewayError;
use crate::gateway::Gateway;
use crate::pipeline::ctx::{McpCall, RequestCtx};
use crate::pipeline::identity::McpAudit;
use crate::upstream::client::Upstream;

/// The request facts of one MCP message on `upstream`.
pub(crate) fn facts(
    message: &McpMessage,
    upstream: Option<String>,
    method: &str,
) -> Result<RequestFacts, GatewayError> {
    let base = |operation: &str| RequestFacts {
        upstream: upstream.clone(),
        mcp_method: message.method.clone(),
        ..RequestFacts::new(Api::Tool, operation, method, "/")
    };
    Ok(match &message.request {
        McpRequest::ToolCall { tool, arguments } => RequestFacts {
            tool: Some(tool.clone()),
            args: flatten_arguments(arguments)?,
            ..base("tool_call")
        },
        McpRequest::PromptGet { name, arguments } => RequestFacts {
            prompt: Some(name.clone()),
            args: flatten_arguments(arguments)?,
            ..base("prompt_get")
        },
        McpRequest::ResourceRead { uri } => RequestFacts {
            uri: Some(uri.clone()),
            ..base("resource_read")
        },
        McpRequest::ResourceWatch { uri } => RequestFacts {
            uri: Some(uri.clone()),
            ..base("resource_read")
        },
        McpRequest::Completion => base("completion"),
        // Lists are session upkeep; their answers are filtered to what the writ may use.
        McpRequest::List(_) | McpRequest::Session => base("tool_session"),
        // No grant allows a method the gateway does not know: [`check`] refuses it.
        McpRequest::Other(m) => base(&format!("mcp:{m}")),
    })
}

/// Records the call in `ctx` (its id first, so even a refusal of its headers answers it)
/// and checks its transport headers against the body: the standard ones always, a tool
/// call's `Mcp-Param-*` ones when `upstream`'s tool list said which arguments they mirror.
pub(crate) fn check(
    gw: &Gateway,
    ctx: &mut RequestCtx,
    upstream: &Upstream,
    headers: &HeaderMap,
    message: &McpMessage,
    facts: &RequestFacts,
) -> Result<(), GatewayError> {
    ctx.mcp = Some(McpCall {
        id: message.id.clone(),
        list: match message.request {
            McpRequest::List(kind) => Some(kind),
            _ => None,
        },
    });
    ctx.id.mcp = message.method.as_ref().map(|method| McpAudit {
        method: method.clone(),
        name: facts.tool.clone().or_else(|| facts.prompt.clone()),
        digest: digest(gw, facts),
    });
    transport::check(headers, message)?;
    if let McpRequest::Other(_) = message.request {
        // Refused as not found here, as MCP answers a method it does not serve.
        return Err(GatewayError::UnknownMcpMethod);
    }
    if let McpRequest::ToolCall { tool, arguments } = &message.request
        && let Some(params) = upstream.mcp_params.of(tool)
    {
        param_headers::check(headers, arguments, &params)?;
    }
    Ok(())
}

/// The keyed digest of what a call acts on: its arguments as authorized (sorted by name),
/// or its resource URI. Equal calls have equal digests within one audit key; the values
/// cannot be read back or guessed from the log without that key.
fn digest(gw: &Gateway, facts: &RequestFacts) -> Option<String> {
    if let Some(uri) = &facts.uri {
        return Some(gw.audit.pseudonym(&format!("uri:{uri}")));
    }
    if facts.tool.is_none() && facts.prompt.is_none() {
        return None;
    }
    let mut args: Vec<&(String, ArgValue)> = facts.args.iter().collect();
    args.sort();
    let canonical = serde_json::to_string(&args).unwrap_or_default();
    Some(gw.audit.pseudonym(&format!("args:{canonical}")))
}
