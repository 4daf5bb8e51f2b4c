//! Inspect: read the request facts from the body: model, output cap and stream flag for
//! model APIs; tool name and arguments for tool servers; method and path for HTTP.

use axum::body::Bytes;
use http::Method;
use writ_providers::mcp::{self, McpRequest};
use writ_providers::{ApiFamily, RouteSpec, anthropic, azure, bedrock, gemini, openai, vertex};
use writ_token::{Api, RequestFacts, flatten_arguments};

use crate::error::GatewayError;
use crate::pipeline::route::Target;

pub(crate) fn facts(
    route: &RouteSpec,
    target: &Target<'_>,
    method: &Method,
    body: &Bytes,
) -> Result<RequestFacts, GatewayError> {
    let upstream = Some(target.upstream.name.clone());
    let method = method.as_str();
    // Whether the route's own inspection read the body as strict JSON (one pass that
    // builds what it reads and refuses a repeated key); otherwise it is checked below.
    let mut checked = false;
    let facts = match route.family {
        ApiFamily::OpenAi => {
            let inspected = openai::inspect(route.operation, body)?;
            checked = inspected.body_checked;
            llm_facts(
                upstream,
                inspected,
                route.operation.as_str(),
                method,
                &target.path,
            )
        }
        ApiFamily::Anthropic => {
            let inspected = anthropic::inspect(route.operation, body)?;
            checked = inspected.body_checked;
            llm_facts(
                upstream,
                inspected,
                route.operation.as_str(),
                method,
                &target.path,
            )
        }
        ApiFamily::Azure => {
            let (deployment, operation) =
                azure::parse_path(&target.path).ok_or(GatewayError::NotFound)?;
            let model = target
                .upstream
                .deployments
                .get(&deployment)
                .cloned()
                .unwrap_or(deployment);
            let inspected = azure::inspect(operation, model, body)?;
            checked = inspected.body_checked;
            llm_facts(
                upstream,
                inspected,
                operation.as_str(),
                method,
                &target.path,
            )
        }
        ApiFamily::Gemini => {
            let (model, stream) = gemini::parse_path(&target.path).ok_or(GatewayError::NotFound)?;
            let inspected = gemini::inspect(model, stream, body)?;
            checked = inspected.body_checked;
            llm_facts(
                upstream,
                inspected,
                route.operation.as_str(),
                method,
                &target.path,
            )
        }
        ApiFamily::Vertex => {
            let path = vertex::parse_path(&target.path).ok_or(GatewayError::NotFound)?;
            if let Some((project, location)) = &target.upstream.vertex_scope
                && (path.project != *project || path.location != *location)
            {
                return Err(GatewayError::InvalidRequest {
                    reason: format!(
                        "upstream `{}` serves project `{project}` in `{location}`; the path names another",
                        target.upstream.name
                    ),
                });
            }
            let inspected = gemini::inspect(path.model, path.stream, body)?;
            checked = inspected.body_checked;
            llm_facts(
                upstream,
                inspected,
                route.operation.as_str(),
                method,
                &target.path,
            )
        }
        ApiFamily::Bedrock => {
            let (model, action) =
                bedrock::parse_path(&target.path).ok_or(GatewayError::NotFound)?;
            let inspected = bedrock::inspect(action, model, body)?;
            checked = inspected.body_checked;
            llm_facts(
                upstream,
                inspected,
                route.operation.as_str(),
                method,
                &target.path,
            )
        }
        // An MCP request is always read whole, strictly.
        ApiFamily::Mcp => match mcp::inspect(body)? {
            McpRequest::ToolCall { tool, arguments } => RequestFacts {
                upstream,
                tool: Some(tool),
                args: flatten_arguments(&arguments)?,
                ..RequestFacts::new(Api::Tool, "tool_call", method, "/")
            },
            McpRequest::Session => RequestFacts {
                upstream,
                ..RequestFacts::new(Api::Tool, "tool_session", method, "/")
            },
            McpRequest::Other(m) => RequestFacts {
                upstream,
                ..RequestFacts::new(Api::Tool, &format!("mcp:{m}"), method, "/")
            },
        },
        ApiFamily::Http => RequestFacts {
            upstream,
            ..RequestFacts::new(Api::Http, "http", method, &target.path)
        },
    };
    if !checked && route.family != ApiFamily::Mcp {
        strict_json(body)?;
    }
    Ok(facts)
}

/// Refuses a JSON body with a key repeated in one object, or nested too deep, whatever
/// the route: the grant is checked against one reading of the body, and an upstream that
/// keeps the first of two values (or both) would act on another.
///
/// A body that is not JSON at all passes: routes that need JSON refuse it in their own
/// inspection, and HTTP upstreams may take any content type. Any body that parses as
/// JSON is held to this, whatever its `Content-Type` says, as an upstream may not look.
fn strict_json(body: &[u8]) -> Result<(), GatewayError> {
    if body.is_empty() {
        return Ok(());
    }
    match writ_json::check(body) {
        Ok(()) | Err(writ_json::JsonError::Syntax(_) | writ_json::JsonError::Shape(_)) => Ok(()),
        Err(writ_json::JsonError::DuplicateKey { path }) => Err(GatewayError::InvalidBody(
            writ_providers::InspectError::DuplicateKey { path },
        )),
        Err(writ_json::JsonError::TooDeep) => Err(GatewayError::InvalidBody(
            writ_providers::InspectError::TooDeep,
        )),
    }
}

/// The facts of a model API request, whatever its wire format.
fn llm_facts(
    upstream: Option<String>,
    inspected: writ_providers::Inspected,
    operation: &str,
    method: &str,
    path: &str,
) -> RequestFacts {
    RequestFacts {
        upstream,
        model: inspected.model,
        max_output_tokens: inspected.max_output_tokens,
        stream: inspected.stream,
        ..RequestFacts::new(Api::Llm, operation, method, path)
    }
}
