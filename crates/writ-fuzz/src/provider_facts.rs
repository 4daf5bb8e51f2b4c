//! Target `provider_facts`: the request facts a provider reads from a body (model, output
//! cap, stream flag, an MCP call), on every data-plane route.

use std::path::Path;
use std::sync::LazyLock;

use writ_providers::{ConfigSource, Inspection, Provider, ProviderConfig, ROUTES, RouteSpec};

/// Resolves nothing and reads no file: the providers below need neither.
struct Verbatim;

impl ConfigSource for Verbatim {
    type Error = String;

    fn expand(&self, _: &'static str, value: &str) -> Result<String, String> {
        Ok(value.to_string())
    }

    fn read_file(&self, field: &'static str, _: &Path) -> Result<String, String> {
        Err(format!("{field}: no files while fuzzing"))
    }
}

fn provider(toml_text: &str) -> Provider {
    let config: ProviderConfig = match toml::from_str(toml_text) {
        Ok(config) => config,
        Err(e) => panic!("fuzzing provider config parses: {e}"),
    };
    match config.build(&Verbatim) {
        Ok(provider) => provider,
        Err(e) => panic!("fuzzing provider config builds: {e}"),
    }
}

/// Azure maps deployments to models, so it gets its own provider; the inspection of every
/// other route reads only the route and the body. (Vertex's project check would need a
/// service-account key; its path and body are read by the same code either way.)
static AZURE: LazyLock<Provider> = LazyLock::new(|| {
    provider("kind = \"azure\"\napi_key = \"k\"\ndeployments = { prod = \"gpt-4o\" }")
});
static OTHER: LazyLock<Provider> = LazyLock::new(|| provider("kind = \"openai\"\napi_key = \"k\""));

/// A path of `route`'s shape, for inputs that give none.
fn sample_path(route: &RouteSpec) -> &'static str {
    match route.path {
        "/v1beta/models/{*model_action}" => "/v1beta/models/gemini-2.0-flash:generateContent",
        "/v1/models/{*model_action}" => "/v1/models/gemini-2.0-flash:streamGenerateContent",
        "/openai/deployments/{deployment}/chat/completions" => {
            "/openai/deployments/prod/chat/completions"
        }
        "/openai/deployments/{deployment}/embeddings" => "/openai/deployments/prod/embeddings",
        "/model/{model}/converse" => "/model/anthropic.claude-3-haiku/converse",
        "/model/{model}/converse-stream" => "/model/anthropic.claude-3-haiku/converse-stream",
        "/model/{model}/invoke" => "/model/meta.llama3-8b-instruct-v1:0/invoke",
        "/model/{model}/invoke-with-response-stream" => {
            "/model/amazon.titan-text-express-v1/invoke-with-response-stream"
        }
        p if p.starts_with("/v1/projects/") => {
            "/v1/projects/p/locations/us-central1/publishers/google/models/gemini-2.0-flash:generateContent"
        }
        p if p.starts_with("/v1beta1/projects/") => {
            "/v1beta1/projects/p/locations/l/publishers/google/models/gemini-2.0-flash:streamGenerateContent"
        }
        "/mcp/{upstream}" => "/mcp/travel",
        "/u/{upstream}/{*rest}" => "/u/crm/v1/contacts/42",
        other => other,
    }
}

/// Input: one byte choosing the route (an index into [`ROUTES`]), then the request path up
/// to the first newline (empty: a sample path of the route's shape), then the body.
///
/// Invariants: inspection never panics and answers the same twice; a model call's body
/// read as strict JSON is a JSON object that `writ_json::check` accepts whole; an MCP body that is accepted is accepted by the
/// MCP inspector alone with the same reading.
pub fn provider_facts(data: &[u8]) {
    let Some((&selector, rest)) = data.split_first() else {
        return;
    };
    let route = &ROUTES[usize::from(selector) % ROUTES.len()];
    let (path, body) = match rest.iter().position(|b| *b == b'\n') {
        Some(i) => (
            String::from_utf8_lossy(&rest[..i]).into_owned(),
            &rest[i + 1..],
        ),
        None => (String::new(), rest),
    };
    let path = if path.is_empty() {
        sample_path(route).to_string()
    } else {
        path
    };
    let provider: &Provider = if route.path.starts_with("/openai/") {
        &AZURE
    } else {
        &OTHER
    };
    let first = provider.inspect(route, &path, body);
    let second = provider.inspect(route, &path, body);
    assert_eq!(first, second, "inspection is not deterministic");
    let _ = route.output_cap_field(body);
    if let Some(rewritten) = route.with_stream_usage(body) {
        assert!(
            serde_json::from_slice::<serde_json::Value>(&rewritten).is_ok_and(|v| v.is_object()),
            "asking for stream usage made the body something other than a JSON object"
        );
    }
    match first {
        Ok(Inspection::Model { inspected, .. }) if inspected.body_checked => {
            assert!(
                serde_json::from_slice::<serde_json::Value>(body).is_ok_and(|v| v.is_object()),
                "a body read as strict JSON is not a JSON object"
            );
            // The gateway checks no further a body its inspection read: all of it, the
            // parts the inspection did not build included, must be strict.
            assert!(
                writ_json::check(body).is_ok(),
                "a body read as strict JSON has a repeated key or nests too deep"
            );
        }
        Ok(Inspection::Tool(message)) => {
            assert_eq!(
                writ_providers::mcp::inspect(body).as_ref(),
                Ok(&message),
                "the MCP route read the body differently from the MCP inspector"
            );
        }
        _ => {}
    }
}
