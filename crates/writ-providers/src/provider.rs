//! `Provider`: what the gateway asks about one configured upstream, built once from its
//! validated [`ProviderConfig`]: which routes it serves, what a request's body says
//! (inspect), how the outbound request carries the credential (headers, query, SigV4,
//! an access token), and the secret to scrub from responses.
//!
//! The gateway never matches on a provider's kind: it calls these methods, which dispatch
//! here. Pure: bytes and headers in, values out.

mod config;
mod credential;
mod stdio;
#[cfg(test)]
mod tests;

use std::collections::BTreeMap;
use std::time::SystemTime;

use http::{HeaderMap, HeaderName, HeaderValue, Method, Uri};

pub use config::{
    AzureConfig, BedrockConfig, BuildError, ConfigSource, FieldProblem, KeyConfig, McpConfig,
    OpenAiConfig, ProviderConfig, RawSecret, ToolConfig, VertexConfig,
};
pub use credential::{AwsShapeProblem, CredentialError};
pub use stdio::Launch;

use crate::inspect::{InspectError, Inspected};
use crate::mcp::McpMessage;
use crate::route::{Dialect, Operation, ProviderKind, RouteSpec, Wire};
use crate::secret::UpstreamSecret;
use crate::sigv4::{SignError, Signer};
use crate::vertex::ServiceAccount;
use crate::{anthropic, azure, bedrock, gemini, mcp, openai, vertex};

/// One upstream's provider, validated.
#[derive(Debug, Clone)]
pub struct Provider {
    kind: ProviderKind,
    settings: Settings,
}

/// Each kind's own run-time settings.
#[derive(Debug, Clone)]
enum Settings {
    /// OpenAI, Anthropic, Gemini: a key in headers prepared once.
    Headers(Credential),
    /// Azure: a key in a header, and the model each deployment serves.
    Azure(Credential, BTreeMap<String, String>),
    /// Bedrock: each request signed with SigV4.
    Bedrock(Signer),
    /// Vertex: an access token per request, for one project and location.
    Vertex(Vertex),
    /// MCP and plain HTTP: a key in a header or the query string.
    Tool(Tool),
    /// An MCP server the gateway starts: credentials in its environment, none on the wire.
    Stdio(Launch),
}

#[derive(Debug, Clone)]
struct Credential {
    key: UpstreamSecret,
    /// Values marked sensitive.
    headers: Vec<(HeaderName, HeaderValue)>,
}

#[derive(Debug, Clone)]
struct Vertex {
    account: ServiceAccount,
    token_uri: Uri,
    project: String,
    location: String,
}

#[derive(Clone)]
struct Tool {
    credential: Credential,
    /// `name=` and `name=<percent-encoded key>`, when the key travels in the query.
    query: Option<(String, String)>,
}

impl std::fmt::Debug for Tool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Tool")
            .field("credential", &self.credential)
            .field("query", &self.query.as_ref().map(|(name, _)| name))
            .finish()
    }
}

impl Tool {
    fn new(
        key: UpstreamSecret,
        auth_header: Option<HeaderName>,
        basic_user: Option<&str>,
        auth_query: Option<&str>,
    ) -> Result<Self, http::header::InvalidHeaderValue> {
        if let Some(name) = auth_query {
            let mut value = String::new();
            for b in key.expose().bytes() {
                if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) {
                    value.push(char::from(b));
                } else {
                    value.push_str(&format!("%{b:02X}"));
                }
            }
            let query = Some((format!("{name}="), format!("{name}={value}")));
            let credential = Credential {
                key,
                headers: Vec::new(),
            };
            return Ok(Self { credential, query });
        }
        let (name, value) = match (auth_header, basic_user) {
            (Some(name), _) => (name, key.expose().to_string()),
            (None, Some(user)) => {
                use base64::Engine;
                let pair = base64::engine::general_purpose::STANDARD
                    .encode(format!("{user}:{}", key.expose()));
                (http::header::AUTHORIZATION, format!("Basic {pair}"))
            }
            (None, None) => (
                http::header::AUTHORIZATION,
                format!("Bearer {}", key.expose()),
            ),
        };
        let mut value = HeaderValue::try_from(value)?;
        value.set_sensitive(true);
        Ok(Self {
            credential: Credential {
                key,
                headers: vec![(name, value)],
            },
            query: None,
        })
    }
}

/// What inspecting a request's body found, by the shape of API it is.
#[derive(Debug, Clone, PartialEq)]
pub enum Inspection {
    /// A model API call.
    Model {
        /// What it does (Azure's is read from the path, others' from the route).
        operation: Operation,
        /// What the body says.
        inspected: Inspected,
    },
    /// A JSON-RPC request to a tool server, read whole and strictly.
    Tool(McpMessage),
    /// A request to a plain HTTP API: nothing is read from its body.
    Http,
}

impl Inspection {
    /// Whether the body was read whole as strict JSON (a repeated key or too deep a
    /// nesting refused), so it need not be checked again.
    pub fn body_checked(&self) -> bool {
        match self {
            Inspection::Model { inspected, .. } => inspected.body_checked,
            Inspection::Tool(_) => true,
            Inspection::Http => false,
        }
    }
}

/// Why a request was refused by its upstream's provider before it was sent.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum InspectRefusal {
    /// The path is not one of the provider's operations.
    #[error("no such operation")]
    NotFound,
    /// The body does not say what the API requires.
    #[error(transparent)]
    Body(#[from] InspectError),
    /// The path names a project or location other than the only one the upstream serves.
    #[error("the upstream serves project `{project}` in `{location}`; the path names another")]
    OutOfScope {
        /// The project the upstream serves.
        project: String,
        /// Its location.
        location: String,
    },
}

impl Provider {
    /// The configured kind (`kind = "…"`), for display.
    pub fn kind(&self) -> ProviderKind {
        self.kind
    }

    /// The wire dialect this upstream speaks.
    pub fn dialect(&self) -> Dialect {
        Dialect(self.kind.wire())
    }

    /// Whether requests on `route` may be sent to this upstream: it speaks the route's
    /// dialect.
    pub fn serves(&self, route: &RouteSpec) -> bool {
        self.kind.wire() == route.wire
    }

    /// The base URL of the provider's public service when none is configured; `None`
    /// for kinds that have none (Azure, MCP, plain HTTP), where it is required.
    pub fn default_base_url(&self) -> Option<String> {
        match &self.settings {
            Settings::Headers(_) => Some(
                match self.kind {
                    ProviderKind::Anthropic => "https://api.anthropic.com",
                    ProviderKind::Gemini => "https://generativelanguage.googleapis.com",
                    _ => "https://api.openai.com",
                }
                .to_string(),
            ),
            Settings::Bedrock(signer) => Some(format!(
                "https://bedrock-runtime.{}.amazonaws.com",
                signer.region
            )),
            Settings::Vertex(v) => Some(vertex::default_base_url(&v.location)),
            Settings::Azure(..) | Settings::Tool(_) | Settings::Stdio(_) => None,
        }
    }

    /// How to start the upstream's server, for an MCP server the gateway runs itself
    /// (`command`); `None` for upstreams reached over the network.
    pub fn launch(&self) -> Option<&Launch> {
        match &self.settings {
            Settings::Stdio(launch) => Some(launch),
            _ => None,
        }
    }

    /// The secrets the gateway holds for this upstream (key, AWS secret key,
    /// service-account private key, or a launched server's `${env:…}` values), to scrub
    /// from anything the upstream sends back.
    pub fn secrets(&self) -> &[UpstreamSecret] {
        match &self.settings {
            Settings::Headers(c) | Settings::Azure(c, _) => std::slice::from_ref(&c.key),
            Settings::Tool(t) => std::slice::from_ref(&t.credential.key),
            Settings::Bedrock(signer) => {
                std::slice::from_ref(&signer.credentials.secret_access_key)
            }
            Settings::Vertex(v) => std::slice::from_ref(v.account.private_key_pem()),
            Settings::Stdio(launch) => launch.secrets(),
        }
    }

    /// Headers that authenticate every request, prepared once (values sensitive); empty
    /// for upstreams that sign, use access tokens, or take the key in the query.
    pub fn credential_headers(&self) -> &[(HeaderName, HeaderValue)] {
        match &self.settings {
            Settings::Headers(c) | Settings::Azure(c, _) => &c.headers,
            Settings::Tool(t) => &t.credential.headers,
            Settings::Bedrock(_) | Settings::Vertex(_) | Settings::Stdio(_) => &[],
        }
    }

    /// For an upstream taking its key in the query string: the parameter's `name=` (to
    /// drop the agent's own) and the whole `name=<key>` to add, percent-encoded.
    pub fn credential_param(&self) -> Option<(&str, &str)> {
        match &self.settings {
            Settings::Tool(Tool {
                query: Some((prefix, pair)),
                ..
            }) => Some((prefix, pair)),
            _ => None,
        }
    }

    /// For an upstream reached with OAuth access tokens (Vertex): the service account
    /// to sign assertions with and the URI to exchange them at. The gateway fetches the
    /// token and sends it as `Authorization: Bearer <token>`.
    pub fn access_token_account(&self) -> Option<(&ServiceAccount, &Uri)> {
        match &self.settings {
            Settings::Vertex(v) => Some((&v.account, &v.token_uri)),
            _ => None,
        }
    }

    /// Adds headers the provider's API requires that the client did not send (Anthropic's
    /// `anthropic-version`).
    pub fn complete_headers(&self, headers: &mut HeaderMap) {
        if self.kind == ProviderKind::Anthropic && !headers.contains_key(anthropic::VERSION) {
            headers.insert(
                anthropic::VERSION,
                HeaderValue::from_static(anthropic::DEFAULT_VERSION),
            );
        }
    }

    /// Signs the final request in place, for upstreams that sign each request (Bedrock,
    /// SigV4 over `host`, `content-type` and `x-amz-*`); does nothing for others. Fails
    /// when the URL has no host or the signer refuses the request.
    pub fn sign(
        &self,
        method: &Method,
        uri: &str,
        headers: &mut HeaderMap,
        body: &[u8],
        now: SystemTime,
    ) -> Result<(), SignError> {
        match &self.settings {
            Settings::Bedrock(signer) => {
                crate::sigv4::sign_headers(signer, method, uri, headers, body, now)
            }
            _ => Ok(()),
        }
    }

    /// Reads the request on `route` (already known to be served by this upstream) sent
    /// to `path`: the model, output cap and stream flag of a model call, the tool call of
    /// an MCP request, nothing of a plain HTTP request. Fails when the path is not an
    /// operation of the API, the body is not what the API requires, or (Vertex) the path
    /// names another project or location than the upstream's.
    pub fn inspect(
        &self,
        route: &RouteSpec,
        path: &str,
        body: &[u8],
    ) -> Result<Inspection, InspectRefusal> {
        let model = |operation, inspected| {
            Ok(Inspection::Model {
                operation,
                inspected,
            })
        };
        match route.wire {
            Wire::OpenAi => model(route.operation, openai::inspect(route.operation, body)?),
            Wire::Anthropic => model(route.operation, anthropic::inspect(route.operation, body)?),
            Wire::Azure => {
                let (deployment, operation) =
                    azure::parse_path(path).ok_or(InspectRefusal::NotFound)?;
                let served = match &self.settings {
                    Settings::Azure(_, deployments) => deployments.get(&deployment).cloned(),
                    _ => None,
                };
                let name = served.unwrap_or(deployment);
                model(operation, azure::inspect(operation, name, body)?)
            }
            Wire::Gemini => {
                let (name, stream) = gemini::parse_path(path).ok_or(InspectRefusal::NotFound)?;
                model(route.operation, gemini::inspect(name, stream, body)?)
            }
            Wire::Vertex => {
                let p = vertex::parse_path(path).ok_or(InspectRefusal::NotFound)?;
                if let Settings::Vertex(v) = &self.settings
                    && (p.project != v.project || p.location != v.location)
                {
                    return Err(InspectRefusal::OutOfScope {
                        project: v.project.clone(),
                        location: v.location.clone(),
                    });
                }
                model(route.operation, gemini::inspect(p.model, p.stream, body)?)
            }
            Wire::Bedrock => {
                let (name, action) = bedrock::parse_path(path).ok_or(InspectRefusal::NotFound)?;
                model(route.operation, bedrock::inspect(action, name, body)?)
            }
            Wire::Mcp => Ok(Inspection::Tool(mcp::inspect(body)?)),
            Wire::Http => Ok(Inspection::Http),
        }
    }
}
