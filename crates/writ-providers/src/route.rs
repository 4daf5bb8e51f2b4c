//! The route table: which HTTP routes the gateway serves, and what each one means.

/// The wire format a route speaks; decides how bodies are inspected and credentials injected.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ApiFamily {
    /// OpenAI's REST API and compatible servers.
    OpenAi,
    /// Anthropic's Messages API.
    Anthropic,
    /// The Gemini Developer API.
    Gemini,
    /// Azure OpenAI: OpenAI's wire format on per-deployment paths.
    Azure,
    /// Vertex AI: Gemini's wire format under a project and location.
    Vertex,
    /// AWS Bedrock Runtime, signed with SigV4.
    Bedrock,
    /// MCP tool servers (JSON-RPC over HTTP).
    Mcp,
    /// Plain HTTP upstreams, passed through by method and path.
    Http,
}

/// A provider-neutral operation, stated to the authorizer as `operation(..)`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Operation {
    /// A chat completion.
    Chat,
    /// A response from the Responses API.
    Responses,
    /// Embeddings of some input.
    Embeddings,
    /// The list of models.
    Models,
    /// Counting the input tokens of a request, without generating.
    CountTokens,
    /// A call in the model's own body format (Bedrock `invoke`).
    Invoke,
    /// A JSON-RPC request to a tool server; the body says which.
    Mcp,
    /// Any request to a plain HTTP upstream.
    Http,
}

impl Operation {
    /// The name used in grants (`"actions": ["chat"]`) and request facts.
    pub fn as_str(self) -> &'static str {
        match self {
            Operation::Chat => "chat",
            Operation::Responses => "responses",
            Operation::Embeddings => "embeddings",
            Operation::Models => "models",
            Operation::CountTokens => "count_tokens",
            Operation::Invoke => "invoke",
            Operation::Mcp => "mcp",
            Operation::Http => "http",
        }
    }
}

/// What kind of service an upstream is, as configured (`kind = "openai"`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ProviderKind {
    /// OpenAI, or any server speaking its API with a Bearer key.
    OpenAi,
    /// Anthropic, with an `x-api-key`.
    Anthropic,
    /// Gemini Developer API, with an `x-goog-api-key`.
    Gemini,
    /// Azure OpenAI, with an `api-key`.
    Azure,
    /// AWS Bedrock Runtime, with SigV4-signed requests.
    Bedrock,
    /// Vertex AI, with access tokens from a service-account key.
    Vertex,
    /// An MCP tool server.
    Mcp,
    /// A plain HTTP API.
    Http,
}

impl ProviderKind {
    /// The API family this kind of upstream speaks.
    pub fn family(self) -> ApiFamily {
        match self {
            ProviderKind::OpenAi => ApiFamily::OpenAi,
            ProviderKind::Anthropic => ApiFamily::Anthropic,
            ProviderKind::Gemini => ApiFamily::Gemini,
            ProviderKind::Azure => ApiFamily::Azure,
            ProviderKind::Bedrock => ApiFamily::Bedrock,
            ProviderKind::Vertex => ApiFamily::Vertex,
            ProviderKind::Mcp => ApiFamily::Mcp,
            ProviderKind::Http => ApiFamily::Http,
        }
    }

    /// The configuration name of this kind.
    pub fn as_str(self) -> &'static str {
        match self {
            ProviderKind::OpenAi => "openai",
            ProviderKind::Anthropic => "anthropic",
            ProviderKind::Gemini => "gemini",
            ProviderKind::Azure => "azure",
            ProviderKind::Bedrock => "bedrock",
            ProviderKind::Vertex => "vertex",
            ProviderKind::Mcp => "mcp",
            ProviderKind::Http => "http",
        }
    }
}

/// One data-plane route.
#[derive(Debug, Clone, Copy)]
pub struct RouteSpec {
    /// HTTP method; `None` for any.
    pub method: Option<&'static str>,
    /// Path pattern in the router's syntax. `{upstream}` names the upstream in the path;
    /// `{*rest}` is the path passed on to it.
    pub path: &'static str,
    /// Wire format.
    pub family: ApiFamily,
    /// What the request does.
    pub operation: Operation,
}

/// Every data-plane route the gateway serves.
pub const ROUTES: &[RouteSpec] = &[
    RouteSpec {
        method: Some("POST"),
        path: "/v1/chat/completions",
        family: ApiFamily::OpenAi,
        operation: Operation::Chat,
    },
    RouteSpec {
        method: Some("POST"),
        path: "/v1/responses",
        family: ApiFamily::OpenAi,
        operation: Operation::Responses,
    },
    RouteSpec {
        method: Some("POST"),
        path: "/v1/embeddings",
        family: ApiFamily::OpenAi,
        operation: Operation::Embeddings,
    },
    RouteSpec {
        method: Some("GET"),
        path: "/v1/models",
        family: ApiFamily::OpenAi,
        operation: Operation::Models,
    },
    RouteSpec {
        method: Some("POST"),
        path: "/v1/messages",
        family: ApiFamily::Anthropic,
        operation: Operation::Chat,
    },
    RouteSpec {
        method: Some("POST"),
        path: "/v1/messages/count_tokens",
        family: ApiFamily::Anthropic,
        operation: Operation::CountTokens,
    },
    RouteSpec {
        method: Some("POST"),
        path: "/v1beta/models/{*model_action}",
        family: ApiFamily::Gemini,
        operation: Operation::Chat,
    },
    RouteSpec {
        method: Some("POST"),
        path: "/v1/models/{*model_action}",
        family: ApiFamily::Gemini,
        operation: Operation::Chat,
    },
    RouteSpec {
        method: Some("POST"),
        path: "/openai/deployments/{deployment}/chat/completions",
        family: ApiFamily::Azure,
        operation: Operation::Chat,
    },
    RouteSpec {
        method: Some("POST"),
        path: "/openai/deployments/{deployment}/embeddings",
        family: ApiFamily::Azure,
        operation: Operation::Embeddings,
    },
    RouteSpec {
        method: Some("POST"),
        path: "/model/{model}/converse",
        family: ApiFamily::Bedrock,
        operation: Operation::Chat,
    },
    RouteSpec {
        method: Some("POST"),
        path: "/model/{model}/converse-stream",
        family: ApiFamily::Bedrock,
        operation: Operation::Chat,
    },
    RouteSpec {
        method: Some("POST"),
        path: "/model/{model}/invoke",
        family: ApiFamily::Bedrock,
        operation: Operation::Invoke,
    },
    RouteSpec {
        method: Some("POST"),
        path: "/model/{model}/invoke-with-response-stream",
        family: ApiFamily::Bedrock,
        operation: Operation::Invoke,
    },
    RouteSpec {
        method: Some("POST"),
        path: "/v1/projects/{project}/locations/{location}/publishers/{publisher}/models/{model_action}",
        family: ApiFamily::Vertex,
        operation: Operation::Chat,
    },
    RouteSpec {
        method: Some("POST"),
        path: "/v1beta1/projects/{project}/locations/{location}/publishers/{publisher}/models/{model_action}",
        family: ApiFamily::Vertex,
        operation: Operation::Chat,
    },
    RouteSpec {
        method: Some("POST"),
        path: "/mcp/{upstream}",
        family: ApiFamily::Mcp,
        operation: Operation::Mcp,
    },
    RouteSpec {
        method: None,
        path: "/u/{upstream}/{*rest}",
        family: ApiFamily::Http,
        operation: Operation::Http,
    },
];
