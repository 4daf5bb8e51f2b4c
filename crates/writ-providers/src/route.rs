//! The route table: which HTTP routes the gateway serves, and what each one means.

/// The wire format a route speaks; decides how bodies are inspected and credentials injected.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ApiFamily {
    /// OpenAI's REST API and compatible servers.
    OpenAi,
}

/// A provider-neutral operation, stated to the authorizer as `operation(..)`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Operation {
    /// A chat completion.
    Chat,
}

impl Operation {
    /// The name used in grants (`"actions": ["chat"]`) and request facts.
    pub fn as_str(self) -> &'static str {
        match self {
            Operation::Chat => "chat",
        }
    }
}

/// What kind of service an upstream is, as configured (`kind = "openai"`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ProviderKind {
    /// OpenAI, or any server speaking its API with a Bearer key.
    OpenAi,
    /// The built-in mock of OpenAI's chat completions, for the offline quickstart and tests.
    Mock,
}

impl ProviderKind {
    /// The API family this kind of upstream speaks.
    pub fn family(self) -> ApiFamily {
        match self {
            ProviderKind::OpenAi | ProviderKind::Mock => ApiFamily::OpenAi,
        }
    }

    /// The configuration name of this kind.
    pub fn as_str(self) -> &'static str {
        match self {
            ProviderKind::OpenAi => "openai",
            ProviderKind::Mock => "mock",
        }
    }
}

/// One data-plane route.
#[derive(Debug, Clone, Copy)]
pub struct RouteSpec {
    /// HTTP method.
    pub method: &'static str,
    /// Path, as the client sends it.
    pub path: &'static str,
    /// Wire format.
    pub family: ApiFamily,
    /// What the request does.
    pub operation: Operation,
}

/// Every data-plane route the gateway serves.
pub const ROUTES: &[RouteSpec] = &[RouteSpec {
    method: "POST",
    path: "/v1/chat/completions",
    family: ApiFamily::OpenAi,
    operation: Operation::Chat,
}];
