//! The route table: which HTTP routes the gateway serves, and what each one means.

/// The wire format a route speaks; decides how bodies are inspected and credentials injected.
/// Private to this crate: outside it a route's or upstream's wire format is an opaque
/// [`Dialect`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) enum Wire {
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

/// The wire dialect of a route or of an upstream, opaque outside this crate: the gateway
/// compares and hashes it (an upstream serves a route of its own dialect; each dialect
/// has its default upstream) and asks it how to answer (error shape, usage reading), but
/// never matches on it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Dialect(pub(crate) Wire);

impl Dialect {
    /// The dialect of the gateway's own answers outside any provider's route (unknown
    /// paths, the token endpoint, the admin API): OpenAI's error shape.
    pub const GATEWAY: Dialect = Dialect(Wire::OpenAi);
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
    /// The wire format this kind of upstream speaks.
    pub(crate) fn wire(self) -> Wire {
        match self {
            ProviderKind::OpenAi => Wire::OpenAi,
            ProviderKind::Anthropic => Wire::Anthropic,
            ProviderKind::Gemini => Wire::Gemini,
            ProviderKind::Azure => Wire::Azure,
            ProviderKind::Bedrock => Wire::Bedrock,
            ProviderKind::Vertex => Wire::Vertex,
            ProviderKind::Mcp => Wire::Mcp,
            ProviderKind::Http => Wire::Http,
        }
    }

    /// Every kind's configuration name, in words, for errors that list them.
    pub const NAMES: &'static str =
        "openai, anthropic, gemini, vertex, azure, bedrock, mcp or http";

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
    pub(crate) wire: Wire,
    /// What the request does.
    pub operation: Operation,
}

/// Where a request names its upstream, as its route reads the path.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UpstreamInPath<'p> {
    /// The path names none (model API routes): the client's `x-writ-upstream` header or
    /// the dialect's default decides, and the whole path is sent on.
    Unnamed,
    /// The path names the upstream (`/mcp/{upstream}`, `/u/{upstream}/…`).
    Named {
        /// The upstream's name.
        name: &'p str,
        /// The path sent on to it: empty for MCP (the base URL is the endpoint).
        rest: &'p str,
        /// `rest` is the client's own path, passed through as written (plain HTTP): it is
        /// authorized as written, so it must mean the same to the upstream.
        passthrough: bool,
    },
}

impl RouteSpec {
    /// The route whose pattern is `pattern` (such as `"/v1/messages"`), if any.
    pub fn find(pattern: &str) -> Option<&'static RouteSpec> {
        ROUTES.iter().find(|r| r.path == pattern)
    }

    /// The wire dialect the route speaks: its error shape, how its usage is read, and
    /// which upstreams serve it.
    pub fn dialect(&self) -> Dialect {
        Dialect(self.wire)
    }

    /// Where a request on this route to `path` names its upstream; `None` when the path
    /// does not have the route's shape (no upstream name, or no path after it).
    pub fn upstream_in_path<'p>(&self, path: &'p str) -> Option<UpstreamInPath<'p>> {
        match self.wire {
            Wire::Mcp => {
                let name = path.strip_prefix("/mcp/")?;
                Some(UpstreamInPath::Named {
                    name,
                    rest: "",
                    passthrough: false,
                })
            }
            Wire::Http => {
                let after = path.strip_prefix("/u/")?;
                let slash = after.find('/')?;
                Some(UpstreamInPath::Named {
                    name: &after[..slash],
                    rest: &after[slash..],
                    passthrough: true,
                })
            }
            _ => Some(UpstreamInPath::Unnamed),
        }
    }

    /// The upstream a request to `path` addresses as an OAuth protected resource, when
    /// this route's clients discover their authorization server from the resource (MCP's
    /// authorization spec: RFC 9728 metadata at `/.well-known/oauth-protected-resource`
    /// followed by the resource's path, and `WWW-Authenticate` challenges pointing there).
    /// The resource is the whole path, `/mcp/{upstream}`. `None` for routes whose clients
    /// do not discover (model APIs, plain HTTP) and for paths without exactly one
    /// non-empty segment after `/mcp/`. The name is as written, not percent-decoded, as
    /// the route phase reads it.
    pub fn protected_resource_upstream<'p>(&self, path: &'p str) -> Option<&'p str> {
        match self.wire {
            Wire::Mcp => path
                .strip_prefix("/mcp/")
                .filter(|name| !name.is_empty() && !name.contains('/')),
            _ => None,
        }
    }

    /// Whether the route is an MCP Streamable HTTP endpoint, where that transport's own
    /// rules apply: `Origin` validation and `Mcp-Session-Id` sessions.
    pub fn is_mcp_transport(&self) -> bool {
        self.wire == Wire::Mcp
    }

    /// The path of `upstream`'s protected resource on this route: the inverse of
    /// [`protected_resource_upstream`](Self::protected_resource_upstream), `/mcp/{upstream}`
    /// for MCP routes. `None` for routes whose clients do not discover, and for names that
    /// could not be read back from the path.
    pub fn protected_resource_path(&self, upstream: &str) -> Option<String> {
        let path = match self.wire {
            Wire::Mcp => format!("/mcp/{upstream}"),
            _ => return None,
        };
        (self.protected_resource_upstream(&path) == Some(upstream)).then_some(path)
    }

    /// For a streamed call whose API reports usage in a stream only when asked (OpenAI
    /// and Azure chats): `body` rewritten to ask for it, or `None` when the route has no
    /// such option or the body already asks (or is not a JSON object).
    pub fn with_stream_usage(&self, body: &[u8]) -> Option<Vec<u8>> {
        if !matches!(self.wire, Wire::OpenAi | Wire::Azure) || self.operation != Operation::Chat {
            return None;
        }
        crate::openai::with_stream_usage(body)
    }

    /// The request field that states the output cap, as this route's API spells it: the
    /// one `body` used, or the API's own when the body has none (see
    /// [`crate::inspect`]). Used to tell a caller which field to change.
    pub fn output_cap_field(&self, body: &[u8]) -> &'static str {
        crate::inspect::output_cap_field(self.wire, self.operation, body)
    }
}

/// Every data-plane route the gateway serves.
pub const ROUTES: &[RouteSpec] = &[
    RouteSpec {
        method: Some("POST"),
        path: "/v1/chat/completions",
        wire: Wire::OpenAi,
        operation: Operation::Chat,
    },
    RouteSpec {
        method: Some("POST"),
        path: "/v1/responses",
        wire: Wire::OpenAi,
        operation: Operation::Responses,
    },
    RouteSpec {
        method: Some("POST"),
        path: "/v1/embeddings",
        wire: Wire::OpenAi,
        operation: Operation::Embeddings,
    },
    RouteSpec {
        method: Some("GET"),
        path: "/v1/models",
        wire: Wire::OpenAi,
        operation: Operation::Models,
    },
    RouteSpec {
        method: Some("POST"),
        path: "/v1/messages",
        wire: Wire::Anthropic,
        operation: Operation::Chat,
    },
    RouteSpec {
        method: Some("POST"),
        path: "/v1/messages/count_tokens",
        wire: Wire::Anthropic,
        operation: Operation::CountTokens,
    },
    RouteSpec {
        method: Some("POST"),
        path: "/v1beta/models/{*model_action}",
        wire: Wire::Gemini,
        operation: Operation::Chat,
    },
    RouteSpec {
        method: Some("POST"),
        path: "/v1/models/{*model_action}",
        wire: Wire::Gemini,
        operation: Operation::Chat,
    },
    RouteSpec {
        method: Some("POST"),
        path: "/openai/deployments/{deployment}/chat/completions",
        wire: Wire::Azure,
        operation: Operation::Chat,
    },
    RouteSpec {
        method: Some("POST"),
        path: "/openai/deployments/{deployment}/embeddings",
        wire: Wire::Azure,
        operation: Operation::Embeddings,
    },
    RouteSpec {
        method: Some("POST"),
        path: "/model/{model}/converse",
        wire: Wire::Bedrock,
        operation: Operation::Chat,
    },
    RouteSpec {
        method: Some("POST"),
        path: "/model/{model}/converse-stream",
        wire: Wire::Bedrock,
        operation: Operation::Chat,
    },
    RouteSpec {
        method: Some("POST"),
        path: "/model/{model}/invoke",
        wire: Wire::Bedrock,
        operation: Operation::Invoke,
    },
    RouteSpec {
        method: Some("POST"),
        path: "/model/{model}/invoke-with-response-stream",
        wire: Wire::Bedrock,
        operation: Operation::Invoke,
    },
    RouteSpec {
        method: Some("POST"),
        path: "/v1/projects/{project}/locations/{location}/publishers/{publisher}/models/{model_action}",
        wire: Wire::Vertex,
        operation: Operation::Chat,
    },
    RouteSpec {
        method: Some("POST"),
        path: "/v1beta1/projects/{project}/locations/{location}/publishers/{publisher}/models/{model_action}",
        wire: Wire::Vertex,
        operation: Operation::Chat,
    },
    RouteSpec {
        method: Some("POST"),
        path: "/mcp/{upstream}",
        wire: Wire::Mcp,
        operation: Operation::Mcp,
    },
    // A legacy (2025-11-25) MCP client ends its session with a DELETE to the same endpoint,
    // and opens the session's standalone stream of server messages with a GET.
    RouteSpec {
        method: Some("DELETE"),
        path: "/mcp/{upstream}",
        wire: Wire::Mcp,
        operation: Operation::Mcp,
    },
    RouteSpec {
        method: Some("GET"),
        path: "/mcp/{upstream}",
        wire: Wire::Mcp,
        operation: Operation::Mcp,
    },
    RouteSpec {
        method: None,
        path: "/u/{upstream}/{*rest}",
        wire: Wire::Http,
        operation: Operation::Http,
    },
];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_protected_resource_path_reads_back_as_its_upstream() {
        let mcp = RouteSpec::find("/mcp/{upstream}").expect("the MCP route");
        assert_eq!(
            mcp.protected_resource_path("travel").as_deref(),
            Some("/mcp/travel")
        );
        for name in ["", "a/b"] {
            assert_eq!(mcp.protected_resource_path(name), None, "{name}");
        }
        let chat = RouteSpec::find("/v1/chat/completions").expect("the chat route");
        assert_eq!(chat.protected_resource_path("travel"), None);
        for route in ROUTES {
            if let Some(path) = route.protected_resource_path("travel") {
                assert_eq!(route.protected_resource_upstream(&path), Some("travel"));
            }
        }
    }
}
