//! `kind = "…"`: each provider's own settings of an upstream, as written in `writ.toml`,
//! and their validation into a [`Provider`].
//!
//! Each kind takes only its own fields (`deny_unknown_fields`): a field of another kind is
//! refused by the parser, naming the field. The settings every upstream has (base URL,
//! network policy, timeouts) are the gateway's. Values may hold `${env:…}` references and
//! paths to files: both are resolved through a [`ConfigSource`], so this stays pure.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::Deserialize;
use zeroize::Zeroizing;

use super::{Credential, Provider, Settings, Tool, Vertex};
use crate::route::ProviderKind;
use crate::secret::UpstreamSecret;
use crate::sigv4::{AwsCredentials, Signer};
use crate::vertex::{ServiceAccount, ServiceAccountError};

/// A string that may hold a secret, never printed: either as written in the config, whose
/// `${env:…}` references the [`ConfigSource`] resolves, or a literal (a credential from the
/// vault), used byte for byte and never expanded, so it cannot read the gateway's
/// environment whatever it holds.
#[derive(Clone)]
pub struct RawSecret {
    text: Zeroizing<String>,
    literal: bool,
}

impl<'de> Deserialize<'de> for RawSecret {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        String::deserialize(d).map(|text| Self {
            text: Zeroizing::new(text),
            literal: false,
        })
    }
}

impl RawSecret {
    /// A literal secret: its text is the value, `${env:…}` included, never expanded.
    pub fn literal(value: impl Into<String>) -> Self {
        Self {
            text: Zeroizing::new(value.into()),
            literal: true,
        }
    }

    /// Whether this is a literal (never expanded) rather than text as written.
    pub fn is_literal(&self) -> bool {
        self.literal
    }

    /// The text: as written (references unresolved), or the literal value.
    pub(crate) fn expose(&self) -> &str {
        &self.text
    }

    /// The value of `field`: a literal as it is, text as written through `expand`.
    pub(super) fn resolve<E>(
        &self,
        field: &'static str,
        expand: &Expand<'_, E>,
    ) -> Result<String, BuildError<E>> {
        if self.literal {
            Ok(self.text.to_string())
        } else {
            expand(field, &self.text)
        }
    }
}

impl std::fmt::Debug for RawSecret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("RawSecret(..)")
    }
}

/// An upstream's provider settings, tagged by `kind`.
#[derive(Debug, Clone, Deserialize)]
#[serde(tag = "kind", rename_all = "lowercase")]
pub enum ProviderConfig {
    /// OpenAI, or any server speaking its API with a Bearer key.
    OpenAi(OpenAiConfig),
    /// Anthropic's Messages API.
    Anthropic(KeyConfig),
    /// The Gemini Developer API.
    Gemini(KeyConfig),
    /// Azure OpenAI.
    Azure(AzureConfig),
    /// AWS Bedrock Runtime.
    Bedrock(BedrockConfig),
    /// Vertex AI.
    Vertex(VertexConfig),
    /// An MCP server: reached at `base_url`, or started by the gateway (`command`).
    Mcp(McpConfig),
    /// A plain HTTP API.
    Http(ToolConfig),
    /// A kind this build does not know; refused by [`ProviderConfig::build`], naming the
    /// kinds it knows.
    #[serde(other)]
    Unknown,
}

/// `kind = "openai"`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OpenAiConfig {
    pub(super) api_key: Option<RawSecret>,
    pub(super) organization: Option<String>,
    pub(super) project: Option<String>,
}

/// `kind = "anthropic"` and `kind = "gemini"`: a key, nothing else.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KeyConfig {
    pub(super) api_key: Option<RawSecret>,
}

/// `kind = "azure"`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AzureConfig {
    pub(super) api_key: Option<RawSecret>,
    #[serde(default)]
    pub(super) deployments: BTreeMap<String, String>,
}

/// `kind = "bedrock"`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BedrockConfig {
    pub(super) region: Option<String>,
    pub(super) aws_access_key_id: Option<RawSecret>,
    pub(super) aws_secret_access_key: Option<RawSecret>,
    pub(super) aws_session_token: Option<RawSecret>,
}

/// `kind = "vertex"`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct VertexConfig {
    pub(super) service_account_file: Option<PathBuf>,
    pub(super) service_account_json: Option<RawSecret>,
    pub(super) token_uri: Option<String>,
    pub(super) project: Option<String>,
    pub(super) location: Option<String>,
}

/// `kind = "mcp"` and `kind = "http"`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ToolConfig {
    pub(super) api_key: Option<RawSecret>,
    pub(super) auth_header: Option<String>,
    pub(super) basic_user: Option<String>,
    pub(super) auth_query: Option<String>,
}

/// `kind = "mcp"`: a server reached at `base_url` with a key, like `kind = "http"`; or,
/// with `command`, a server the gateway starts as a child process and speaks to over
/// stdio, whose credentials go in its `env` (the only environment it gets).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct McpConfig {
    pub(super) api_key: Option<RawSecret>,
    pub(super) auth_header: Option<String>,
    pub(super) basic_user: Option<String>,
    pub(super) auth_query: Option<String>,
    pub(super) command: Option<Vec<String>>,
    pub(super) env: Option<BTreeMap<String, RawSecret>>,
    pub(super) cwd: Option<PathBuf>,
}

/// Where a config's references and files are read: the gateway's environment and disk.
pub trait ConfigSource {
    /// The source's own error (an unset variable, a malformed reference, a missing file).
    type Error;
    /// `value` of `field` with its `${env:…}` references resolved.
    fn expand(&self, field: &'static str, value: &str) -> Result<String, Self::Error>;
    /// The text of the file at `path`, named by `field`.
    fn read_file(&self, field: &'static str, path: &Path) -> Result<String, Self::Error>;
}

/// What is wrong with one provider field.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FieldProblem {
    /// The kind is not one this build knows.
    #[error("unknown kind (expected {})", ProviderKind::NAMES)]
    UnknownKind,
    /// A field the kind needs is absent.
    #[error("required for {kind} upstreams{hint}")]
    Required {
        /// The upstream's kind.
        kind: &'static str,
        /// What to put there, or an alternative (may be empty).
        hint: &'static str,
    },
    /// Empty, or not usable in an HTTP header.
    #[error("empty or not a valid header value")]
    NotHeaderValue,
    /// Not an HTTP header name.
    #[error("not a valid header name")]
    NotHeaderName,
    /// Fields that exclude each other were both set.
    #[error("choose one of {0}")]
    ChooseOne(&'static str),
    /// The value does not have the required form.
    #[error("{0}")]
    Form(&'static str),
    /// The service-account key was refused.
    #[error(transparent)]
    ServiceAccount(#[from] ServiceAccountError),
}

/// Why a provider's settings were refused.
#[derive(Debug, thiserror::Error)]
pub enum BuildError<E> {
    /// The source failed to resolve a reference or read a file.
    #[error("the config source failed")]
    Source(E),
    /// A field is invalid.
    #[error("invalid `{field}`: {problem}")]
    Invalid {
        /// The field, as written under the upstream (`api_key`, `region`).
        field: &'static str,
        /// What is wrong.
        problem: FieldProblem,
    },
}

fn invalid<E>(field: &'static str, problem: FieldProblem) -> BuildError<E> {
    BuildError::Invalid { field, problem }
}

impl ProviderConfig {
    /// Validates the settings into a [`Provider`], resolving references and files through
    /// `source`. Fails with the first problem found: a missing or malformed field (named
    /// as written), or the source's own error.
    pub fn build<S: ConfigSource>(&self, source: &S) -> Result<Provider, BuildError<S::Error>> {
        let expand =
            |field: &'static str, v: &str| source.expand(field, v).map_err(BuildError::Source);
        let (kind, settings) = match self {
            ProviderConfig::Unknown => return Err(invalid("kind", FieldProblem::UnknownKind)),
            ProviderConfig::OpenAi(c) => {
                let key = key(ProviderKind::OpenAi, c.api_key.as_ref(), &expand)?;
                let organization = header_value("organization", c.organization.as_deref())?;
                let project = header_value("project", c.project.as_deref())?;
                let headers = crate::openai::credential_headers(&key, organization, project)
                    .map_err(|_| invalid("api_key", FieldProblem::NotHeaderValue))?;
                (
                    ProviderKind::OpenAi,
                    Settings::Headers(Credential { key, headers }),
                )
            }
            ProviderConfig::Anthropic(c) => {
                let key = key(ProviderKind::Anthropic, c.api_key.as_ref(), &expand)?;
                let headers = crate::anthropic::credential_headers(&key)
                    .map_err(|_| invalid("api_key", FieldProblem::NotHeaderValue))?;
                (
                    ProviderKind::Anthropic,
                    Settings::Headers(Credential { key, headers }),
                )
            }
            ProviderConfig::Gemini(c) => {
                let key = key(ProviderKind::Gemini, c.api_key.as_ref(), &expand)?;
                let headers = crate::gemini::credential_headers(&key)
                    .map_err(|_| invalid("api_key", FieldProblem::NotHeaderValue))?;
                (
                    ProviderKind::Gemini,
                    Settings::Headers(Credential { key, headers }),
                )
            }
            ProviderConfig::Azure(c) => {
                let key = key(ProviderKind::Azure, c.api_key.as_ref(), &expand)?;
                let headers = crate::azure::credential_headers(&key)
                    .map_err(|_| invalid("api_key", FieldProblem::NotHeaderValue))?;
                (
                    ProviderKind::Azure,
                    Settings::Azure(Credential { key, headers }, c.deployments.clone()),
                )
            }
            ProviderConfig::Bedrock(c) => {
                (ProviderKind::Bedrock, Settings::Bedrock(c.signer(&expand)?))
            }
            ProviderConfig::Vertex(c) => {
                (ProviderKind::Vertex, Settings::Vertex(c.vertex(source)?))
            }
            ProviderConfig::Mcp(c) => (ProviderKind::Mcp, c.settings(&expand)?),
            ProviderConfig::Http(c) => (
                ProviderKind::Http,
                Settings::Tool(c.tool(ProviderKind::Http, &expand)?),
            ),
        };
        Ok(Provider { kind, settings })
    }
}

pub(super) type Expand<'a, E> = dyn Fn(&'static str, &str) -> Result<String, BuildError<E>> + 'a;

/// The `api_key` every key-carrying kind requires: present, non-empty and usable in a
/// header (`Bearer <key>`).
fn key<E>(
    kind: ProviderKind,
    raw: Option<&RawSecret>,
    expand: &Expand<'_, E>,
) -> Result<UpstreamSecret, BuildError<E>> {
    let raw = raw.ok_or_else(|| {
        invalid(
            "api_key",
            FieldProblem::Required {
                kind: kind.as_str(),
                hint: "",
            },
        )
    })?;
    let key = raw.resolve("api_key", expand)?;
    if key.is_empty() || http::HeaderValue::try_from(format!("Bearer {key}")).is_err() {
        return Err(invalid("api_key", FieldProblem::NotHeaderValue));
    }
    Ok(UpstreamSecret::new(key))
}

fn header_value<'v, E>(
    field: &'static str,
    v: Option<&'v str>,
) -> Result<Option<&'v str>, BuildError<E>> {
    match v {
        Some(v) if http::HeaderValue::try_from(v).is_err() => {
            Err(invalid(field, FieldProblem::NotHeaderValue))
        }
        v => Ok(v),
    }
}

impl BedrockConfig {
    /// The region and credentials requests are signed with.
    fn signer<E>(&self, expand: &Expand<'_, E>) -> Result<Signer, BuildError<E>> {
        let missing = |f: &'static str| {
            invalid(
                f,
                FieldProblem::Required {
                    kind: "bedrock",
                    hint: "",
                },
            )
        };
        let region = expand(
            "region",
            self.region.as_deref().ok_or_else(|| missing("region"))?,
        )?;
        let region_ok = !region.is_empty()
            && region.len() <= 32
            && region
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-');
        if !region_ok {
            return Err(invalid(
                "region",
                FieldProblem::Form("an AWS region such as us-east-1"),
            ));
        }
        let required = |f: &'static str, v: Option<&RawSecret>| -> Result<String, BuildError<E>> {
            v.ok_or_else(|| missing(f))?.resolve(f, expand)
        };
        let access_key_id = required("aws_access_key_id", self.aws_access_key_id.as_ref())?;
        let secret = required("aws_secret_access_key", self.aws_secret_access_key.as_ref())?;
        let session_token = match &self.aws_session_token {
            None => None,
            Some(t) => Some(t.resolve("aws_session_token", expand)?),
        };
        let printable = |v: &str| !v.is_empty() && v.bytes().all(|b| b.is_ascii_graphic());
        for (f, v) in [
            ("aws_access_key_id", Some(access_key_id.as_str())),
            ("aws_secret_access_key", Some(secret.as_str())),
            ("aws_session_token", session_token.as_deref()),
        ] {
            if v.is_some_and(|v| !printable(v)) {
                return Err(invalid(
                    f,
                    FieldProblem::Form("empty or not printable ASCII"),
                ));
            }
        }
        Ok(Signer {
            credentials: AwsCredentials {
                access_key_id,
                secret_access_key: UpstreamSecret::new(secret),
                session_token: session_token.map(UpstreamSecret::new),
            },
            region,
            service: crate::bedrock::SIGNING_SERVICE.to_string(),
        })
    }
}

impl VertexConfig {
    /// The service account, token URI, project and location.
    fn vertex<S: ConfigSource>(&self, source: &S) -> Result<Vertex, BuildError<S::Error>> {
        let name_ok = |s: &str| {
            !s.is_empty()
                && s.len() <= 128
                && s.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b))
        };
        // The settings first, the key last: a check of the settings alone (with a
        // placeholder key, see `check_settings`) then sees every problem of theirs.
        let location = self.location.clone().ok_or_else(|| {
            invalid(
                "location",
                FieldProblem::Required {
                    kind: "vertex",
                    hint: ", such as us-central1",
                },
            )
        })?;
        if !name_ok(&location) {
            return Err(invalid(
                "location",
                FieldProblem::Form("not a GCP location"),
            ));
        }
        if self.project.as_deref().is_some_and(|p| !name_ok(p)) {
            return Err(invalid(
                "project",
                FieldProblem::Form("not a GCP project id"),
            ));
        }
        let token_uri = match &self.token_uri {
            Some(t) => Some(token_uri(
                &source.expand("token_uri", t).map_err(BuildError::Source)?,
            )?),
            None => None,
        };
        let (json, field) = match (&self.service_account_file, &self.service_account_json) {
            (Some(path), None) => (
                Zeroizing::new(
                    source
                        .read_file("service_account_file", path)
                        .map_err(BuildError::Source)?,
                ),
                "service_account_file",
            ),
            (None, Some(text)) => (
                Zeroizing::new(text.resolve("service_account_json", &|f, v| {
                    source.expand(f, v).map_err(BuildError::Source)
                })?),
                "service_account_json",
            ),
            (None, None) => {
                return Err(invalid(
                    "service_account_file",
                    FieldProblem::Required {
                        kind: "vertex",
                        hint: " (or service_account_json)",
                    },
                ));
            }
            (Some(_), Some(_)) => {
                return Err(invalid(
                    "service_account_json",
                    FieldProblem::ChooseOne("service_account_file and service_account_json"),
                ));
            }
        };
        let account = ServiceAccount::from_json(&json).map_err(|e| invalid(field, e.into()))?;
        let token_uri = match token_uri {
            Some(t) => t,
            None => self::token_uri(&account.token_uri)?,
        };
        let project = self
            .project
            .clone()
            .or_else(|| account.project_id.clone())
            .ok_or_else(|| {
                invalid(
                    "project",
                    FieldProblem::Form("required: the key file names no project_id"),
                )
            })?;
        if !name_ok(&project) {
            return Err(invalid(
                "project",
                FieldProblem::Form("not a GCP project id"),
            ));
        }
        Ok(Vertex {
            account,
            token_uri,
            project,
            location,
        })
    }
}

/// A token endpoint: an http(s) URL with a host.
fn token_uri<E>(text: &str) -> Result<http::Uri, BuildError<E>> {
    text.parse()
        .ok()
        .filter(|u: &http::Uri| {
            matches!(u.scheme_str(), Some("http" | "https")) && u.host().is_some()
        })
        .ok_or_else(|| invalid("token_uri", FieldProblem::Form("not an http(s) URL")))
}

impl McpConfig {
    /// A launched server's [`Launch`], or a remote one's key as [`ToolConfig`] reads it.
    fn settings<E>(&self, expand: &Expand<'_, E>) -> Result<Settings, BuildError<E>> {
        let Some(command) = &self.command else {
            for (field, set) in [("env", self.env.is_some()), ("cwd", self.cwd.is_some())] {
                if set {
                    return Err(invalid(
                        field,
                        FieldProblem::Form("applies only to a server started with `command`"),
                    ));
                }
            }
            let remote = ToolConfig {
                api_key: self.api_key.clone(),
                auth_header: self.auth_header.clone(),
                basic_user: self.basic_user.clone(),
                auth_query: self.auth_query.clone(),
            };
            return Ok(Settings::Tool(remote.tool(ProviderKind::Mcp, expand)?));
        };
        for (field, set) in [
            ("api_key", self.api_key.is_some()),
            ("auth_header", self.auth_header.is_some()),
            ("basic_user", self.basic_user.is_some()),
            ("auth_query", self.auth_query.is_some()),
        ] {
            if set {
                return Err(invalid(
                    field,
                    FieldProblem::Form(
                        "a server started with `command` gets no key over the wire: put its credential in env",
                    ),
                ));
            }
        }
        let empty = BTreeMap::new();
        let fields = super::stdio::LaunchFields {
            command,
            env: self.env.as_ref().unwrap_or(&empty),
            cwd: self.cwd.as_deref(),
        };
        Ok(Settings::Stdio(fields.launch(expand)?))
    }
}

impl ToolConfig {
    /// The key and how it travels: a header of its own, HTTP Basic, a query parameter, or
    /// `Authorization: Bearer`.
    fn tool<E>(&self, kind: ProviderKind, expand: &Expand<'_, E>) -> Result<Tool, BuildError<E>> {
        let auth_header = match &self.auth_header {
            None => None,
            Some(h) => Some(
                http::HeaderName::try_from(h.as_str())
                    .map_err(|_| invalid("auth_header", FieldProblem::NotHeaderName))?,
            ),
        };
        let key = key(kind, self.api_key.as_ref(), expand)?;
        let chosen = [
            self.auth_header.is_some(),
            self.basic_user.is_some(),
            self.auth_query.is_some(),
        ];
        if chosen.iter().filter(|x| **x).count() > 1 {
            return Err(invalid(
                "auth_header",
                FieldProblem::ChooseOne("auth_header, basic_user and auth_query"),
            ));
        }
        if self
            .basic_user
            .as_deref()
            .is_some_and(|n| n.is_empty() || n.contains(':'))
        {
            return Err(invalid(
                "basic_user",
                FieldProblem::Form("must be non-empty and hold no ':'"),
            ));
        }
        let param_ok = |n: &str| {
            !n.is_empty()
                && n.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"_-.".contains(&b))
        };
        if self.auth_query.as_deref().is_some_and(|n| !param_ok(n)) {
            return Err(invalid(
                "auth_query",
                FieldProblem::Form("a parameter name of A-Z a-z 0-9 _ - ."),
            ));
        }
        Tool::new(
            key,
            auth_header,
            self.basic_user.as_deref(),
            self.auth_query.as_deref(),
        )
        .map_err(|_| invalid("api_key", FieldProblem::NotHeaderValue))
    }
}
