//! Inspect: read the request facts from the body: model, output cap and stream flag for
//! model APIs; the JSON-RPC method, tool, prompt or resource and arguments for MCP
//! servers ([`mcp`]); method and path for HTTP.

pub(crate) mod mcp;

use axum::body::Bytes;
use http::Method;
use writ_providers::mcp::McpMessage;
use writ_providers::{InspectRefusal, Inspection, RouteSpec};
use writ_token::{Api, RequestFacts};

use crate::error::GatewayError;
use crate::pipeline::route::Target;

/// The request facts of a request on `route` to `target`, as the upstream's provider
/// reads its body, and the JSON-RPC message of an MCP request. Fails when the path is not
/// an operation of the API (`NotFound`), the body is not what the API requires or repeats
/// a key (`InvalidBody`), or the path names another Vertex project or location than the
/// upstream's (`InvalidRequest`).
pub(crate) fn facts(
    route: &RouteSpec,
    target: &Target,
    method: &Method,
    body: &Bytes,
) -> Result<(RequestFacts, Option<McpMessage>), GatewayError> {
    let upstream = Some(target.upstream.name.clone());
    let method = method.as_str();
    let inspection = target
        .upstream
        .provider
        .inspect(route, &target.path, body)
        .map_err(|e| match e {
            InspectRefusal::NotFound => GatewayError::NotFound,
            InspectRefusal::Body(e) => GatewayError::InvalidBody(e),
            InspectRefusal::OutOfScope { project, location } => GatewayError::InvalidRequest {
                reason: format!(
                    "upstream `{}` serves project `{project}` in `{location}`; the path names another",
                    target.upstream.name
                ),
            },
        })?;
    // Whether the provider read the body as strict JSON (one pass that builds what it
    // reads and refuses a repeated key); otherwise it is checked below.
    let checked = inspection.body_checked();
    let facts = match inspection {
        Inspection::Model {
            operation,
            inspected,
        } => RequestFacts {
            upstream,
            model: inspected.model,
            max_output_tokens: inspected.max_output_tokens,
            stream: inspected.stream,
            ..RequestFacts::new(Api::Llm, operation.as_str(), method, &target.path)
        },
        Inspection::Tool(message) => {
            let facts = mcp::facts(&message, upstream, method)?;
            if !checked {
                strict_json(body)?;
            }
            return Ok((facts, Some(message)));
        }
        Inspection::Http => RequestFacts {
            upstream,
            ..RequestFacts::new(Api::Http, "http", method, &target.path)
        },
    };
    if !checked {
        strict_json(body)?;
    }
    Ok((facts, None))
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pipeline::fixture;
    use writ_providers::InspectError;

    const UPSTREAMS: &str = "[upstreams.openai]\nkind = \"openai\"\napi_key = \"sk-test-0123456789\"\n\
         [upstreams.azure]\nkind = \"azure\"\nbase_url = \"https://acme.openai.azure.com\"\napi_key = \"az-0123456789\"\ndeployments = { \"prod-4o\" = \"gpt-4o\" }\n\
         [upstreams.tools]\nkind = \"mcp\"\nbase_url = \"https://tools.example.com/mcp\"\napi_key = \"t-0123456789\"\n\
         [upstreams.crm]\nkind = \"http\"\nbase_url = \"https://crm.example.com\"\napi_key = \"c-0123456789\"\n";

    fn route(pattern: &str) -> RouteSpec {
        *RouteSpec::find(pattern).expect("a route")
    }

    fn read(
        name: &str,
        route: &RouteSpec,
        path: &str,
        body: &str,
    ) -> Result<RequestFacts, GatewayError> {
        let upstream = fixture::upstream(UPSTREAMS, name);
        let target = Target {
            upstream: std::sync::Arc::new(upstream),
            path: path.to_string(),
        };
        facts(
            route,
            &target,
            &Method::POST,
            &Bytes::from(body.to_string()),
        )
        .map(|(facts, _)| facts)
    }

    #[test]
    fn a_chat_is_read_as_model_cap_and_stream_on_its_upstream() {
        let facts = read(
            "openai",
            &route("/v1/chat/completions"),
            "/v1/chat/completions",
            r#"{"model":"gpt-4o","max_tokens":64,"stream":true,"messages":[]}"#,
        )
        .unwrap();
        assert_eq!(facts.api, Api::Llm);
        assert_eq!(facts.operation, "chat");
        assert_eq!(facts.upstream.as_deref(), Some("openai"));
        assert_eq!(facts.model.as_deref(), Some("gpt-4o"));
        assert_eq!(facts.max_output_tokens, Some(64));
        assert!(facts.stream);
        assert_eq!(facts.path, "/v1/chat/completions");
    }

    #[test]
    fn an_azure_deployment_is_read_as_the_model_it_serves() {
        // How deployments map to models is the provider's (see writ-providers' tests);
        // here: its answer becomes the facts, and a path it does not know is a 404.
        let chat = route("/openai/deployments/{deployment}/chat/completions");
        let facts = read(
            "azure",
            &chat,
            "/openai/deployments/prod-4o/chat/completions",
            r#"{"model":"cheap-model","messages":[]}"#,
        )
        .unwrap();
        assert_eq!(facts.model.as_deref(), Some("gpt-4o"));
        assert_eq!(facts.operation, "chat");
        assert!(matches!(
            read("azure", &chat, "/openai/deployments/prod-4o/images", "{}"),
            Err(GatewayError::NotFound)
        ));
    }

    #[test]
    fn a_tool_call_is_read_as_tool_and_flattened_arguments() {
        let mcp = route("/mcp/{upstream}");
        let facts = read(
            "tools",
            &mcp,
            "",
            r#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"book_flight","arguments":{"to":"LIS"}}}"#,
        )
        .unwrap();
        assert_eq!(facts.api, Api::Tool);
        assert_eq!(facts.operation, "tool_call");
        assert_eq!(facts.tool.as_deref(), Some("book_flight"));
        assert!(!facts.args.is_empty());
        let session = read(
            "tools",
            &mcp,
            "",
            r#"{"jsonrpc":"2.0","id":2,"method":"tools/list"}"#,
        )
        .unwrap();
        assert_eq!(
            (session.operation.as_str(), session.tool),
            ("tool_session", None)
        );
        assert_eq!(session.mcp_method.as_deref(), Some("tools/list"));
        let read_uri = read(
            "tools",
            &mcp,
            "",
            r#"{"jsonrpc":"2.0","id":3,"method":"resources/read","params":{"uri":"file:///a"}}"#,
        )
        .unwrap();
        assert_eq!(
            (read_uri.operation.as_str(), read_uri.uri.as_deref()),
            ("resource_read", Some("file:///a"))
        );
        let prompt = read(
            "tools",
            &mcp,
            "",
            r#"{"jsonrpc":"2.0","id":4,"method":"prompts/get","params":{"name":"p","arguments":{"x":"1"}}}"#,
        )
        .unwrap();
        assert_eq!(
            (
                prompt.operation.as_str(),
                prompt.prompt.as_deref(),
                prompt.args.len()
            ),
            ("prompt_get", Some("p"), 1)
        );
        let completion = read(
            "tools",
            &mcp,
            "",
            r#"{"jsonrpc":"2.0","id":5,"method":"completion/complete","params":{}}"#,
        )
        .unwrap();
        assert_eq!(completion.operation, "completion");
        let unknown = read(
            "tools",
            &mcp,
            "",
            r#"{"jsonrpc":"2.0","id":6,"method":"tasks/cancel","params":{}}"#,
        )
        .unwrap();
        assert_eq!(unknown.operation, "mcp:tasks/cancel");
    }

    #[test]
    fn an_http_request_is_read_as_method_and_path_whatever_its_body() {
        let http = route("/u/{upstream}/{*rest}");
        let facts = read("crm", &http, "/v1/bookings/42", "not json at all").unwrap();
        assert_eq!(facts.api, Api::Http);
        assert_eq!(
            (facts.method.as_str(), facts.path.as_str()),
            ("POST", "/v1/bookings/42")
        );
    }

    #[test]
    fn a_json_body_with_a_repeated_key_or_too_deep_is_refused_on_every_route() {
        let http = route("/u/{upstream}/{*rest}");
        assert!(matches!(
            read("crm", &http, "/v1/x", r#"{"amount":1,"amount":1000}"#),
            Err(GatewayError::InvalidBody(InspectError::DuplicateKey { .. }))
        ));
        let deep = format!(
            "{}{}",
            "[".repeat(writ_json::MAX_DEPTH + 1),
            "]".repeat(writ_json::MAX_DEPTH + 1)
        );
        assert!(matches!(
            read("crm", &http, "/v1/x", &deep),
            Err(GatewayError::InvalidBody(InspectError::TooDeep))
        ));
        assert!(matches!(
            read(
                "openai",
                &route("/v1/chat/completions"),
                "/v1/chat/completions",
                r#"{"model":"gpt-4o","model":"gpt-4o-mini","messages":[]}"#,
            ),
            Err(GatewayError::InvalidBody(InspectError::DuplicateKey { .. }))
        ));
        assert!(strict_json(b"").is_ok());
    }
}
