//! `writ.toml`: parsed strictly (unknown keys are errors with a line number), then
//! validated into a [`Config`] with defaults filled in one place.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use http::Uri;
use serde::Deserialize;
use writ_limits::{Dimension, Field, LimitSpec, Window};
use writ_providers::{ProviderKind, UpstreamSecret};

mod detection;
pub use detection::{DetectionConfig, Detector, Mode};

/// Default listen address.
pub const DEFAULT_LISTEN: &str = "127.0.0.1:8787";
/// Default data directory.
pub const DEFAULT_DATA_DIR: &str = "writ-data";
/// Default largest request body, in bytes.
pub const DEFAULT_MAX_BODY_BYTES: usize = 10 * 1024 * 1024;
/// Default and, unless raised in config, largest writ lifetime.
pub const DEFAULT_MAX_TTL: Duration = Duration::from_secs(30);

/// The configuration file as written: every field optional, no unknown field allowed.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawConfig {
    #[serde(default)]
    server: RawServer,
    #[serde(default)]
    tokens: RawTokens,
    #[serde(default)]
    upstreams: BTreeMap<String, RawUpstream>,
    #[serde(default)]
    pricing: BTreeMap<String, writ_providers::PriceEntry>,
    #[serde(default)]
    limiter: RawLimiter,
    #[serde(default)]
    audit: RawAudit,
    #[serde(default)]
    limit: Vec<RawLimit>,
    #[serde(default)]
    detection: detection::RawDetection,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawAudit {
    mode: Option<String>,
    sink: Option<String>,
    postgres_url: Option<String>,
    file: Option<PathBuf>,
    checkpoint_every: Option<u64>,
    #[serde(default, with = "humantime_serde")]
    checkpoint_interval: Option<Duration>,
    client_addresses: Option<bool>,
    durability: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawLimiter {
    backend: Option<String>,
    redis_url: Option<String>,
    on_backend_failure: Option<String>,
    #[serde(default, with = "humantime_serde")]
    lease_ttl: Option<Duration>,
    #[serde(default, with = "humantime_serde")]
    timeout: Option<Duration>,
    default_output_tokens: Option<u64>,
}

#[derive(Debug, Deserialize)]
#[serde(untagged)]
enum OneOrMany {
    One(Field),
    Many(Vec<Field>),
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawLimit {
    scope: OneOrMany,
    dimension: Dimension,
    per: Option<String>,
    limit: u64,
    burst: Option<u64>,
    #[serde(default, rename = "match")]
    only: BTreeMap<Field, String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawServer {
    listen: Option<String>,
    public_url: Option<String>,
    data_dir: Option<PathBuf>,
    max_body_bytes: Option<usize>,
    workers: Option<usize>,
    tls_cert: Option<PathBuf>,
    tls_key: Option<PathBuf>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawTokens {
    tenant: Option<String>,
    #[serde(default, with = "humantime_serde")]
    max_ttl: Option<Duration>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawUpstream {
    kind: String,
    base_url: Option<String>,
    api_key: Option<String>,
    organization: Option<String>,
    project: Option<String>,
    auth_header: Option<String>,
    basic_user: Option<String>,
    auth_query: Option<String>,
    #[serde(default)]
    deployments: BTreeMap<String, String>,
    region: Option<String>,
    aws_access_key_id: Option<String>,
    aws_secret_access_key: Option<String>,
    aws_session_token: Option<String>,
    location: Option<String>,
    service_account_file: Option<PathBuf>,
    service_account_json: Option<String>,
    token_uri: Option<String>,
    #[serde(default)]
    allow_private_network: bool,
    #[serde(default, with = "humantime_serde")]
    timeout: Option<Duration>,
    #[serde(default, with = "humantime_serde")]
    connect_timeout: Option<Duration>,
    #[serde(default, with = "humantime_serde")]
    read_timeout: Option<Duration>,
    max_response_bytes: Option<usize>,
}

/// A validated configuration.
#[derive(Debug, Clone)]
pub struct Config {
    /// Where the gateway listens.
    pub listen: SocketAddr,
    /// The URL clients reach the gateway at; its identity in client assertions' `aud`.
    /// Defaults to `http://<listen address>`.
    pub public_url: Option<String>,
    /// The data directory (database, keys).
    pub data_dir: PathBuf,
    /// Largest request body accepted; larger ones get 413 before being read.
    pub max_body_bytes: usize,
    /// Serving threads (one runtime each); defaults to the number of CPU cores. 0 serves
    /// on the main multi-threaded runtime instead.
    pub workers: usize,
    /// Serve HTTPS with this certificate and key; plain HTTP when absent.
    pub tls: Option<TlsFiles>,
    /// Tenant of agents when none is named.
    pub tenant: String,
    /// Largest writ lifetime.
    pub max_ttl: Duration,
    /// Upstreams by name.
    pub upstreams: BTreeMap<String, UpstreamConfig>,
    /// Model prices: the shipped table with the config's overrides.
    pub pricing: writ_providers::Pricing,
    /// Where limit state lives and what happens when it is unreachable.
    pub limiter: LimiterConfig,
    /// Declared limits.
    pub limits: Vec<LimitSpec>,
    /// The audit log.
    pub audit: AuditConfig,
    /// Detectors' modes, the brute-force policy and detection webhooks.
    pub detection: DetectionConfig,
}

/// Where audit records go.
#[derive(Debug, Clone)]
pub enum AuditSinkConfig {
    /// `audit.db` in the data directory.
    Sqlite,
    /// PostgreSQL; the URL may hold a password.
    Postgres(UpstreamSecret),
    /// A JSON-lines file.
    File(PathBuf),
}

/// The audit log's settings.
#[derive(Debug, Clone)]
pub struct AuditConfig {
    /// Refuse requests that cannot be audited (503) rather than serve them unaudited.
    pub strict: bool,
    /// The sink.
    pub sink: AuditSinkConfig,
    /// Sign a checkpoint after this many records…
    pub checkpoint_every: u64,
    /// …or this long after the last one, whichever comes first (and at shutdown).
    pub checkpoint_interval: Duration,
    /// Record each request's client address, as a keyed pseudonym (default on).
    pub client_addresses: bool,
    /// When the SQLite or file sink forces records to disk: after every signed checkpoint
    /// (`committed`, the default) or on every write (`synced`).
    pub durability: writ_audit::sink::Durability,
}

/// Where limit state lives.
#[derive(Debug, Clone)]
pub enum LimiterBackend {
    /// In this process.
    Memory,
    /// In Redis, shared by every gateway using it. The URL may hold a password.
    Redis(UpstreamSecret),
}

/// The limiter's settings.
#[derive(Debug, Clone)]
pub struct LimiterConfig {
    /// The backend.
    pub backend: LimiterBackend,
    /// With the Redis backend unreachable, fall back to limits in this process instead of
    /// refusing requests (503).
    pub local_fallback: bool,
    /// How long a concurrency lease lives if its gateway dies.
    pub lease_ttl: Duration,
    /// Output tokens reserved for a request that states no cap.
    pub default_output_tokens: u64,
    /// Longest wait for the Redis backend to connect or answer one command.
    pub timeout: Duration,
}

/// One configured upstream.
#[derive(Debug, Clone)]
pub struct UpstreamConfig {
    /// What it speaks.
    pub kind: ProviderKind,
    /// Base URL requests are sent to. `None` for a `mock` upstream the gateway runs itself.
    pub base_url: Option<Uri>,
    /// The credential injected on every request. `None` only for a self-run `mock`, which
    /// gets a random key at start.
    pub api_key: Option<UpstreamSecret>,
    /// `OpenAI-Organization` to send.
    pub organization: Option<String>,
    /// `OpenAI-Project` to send.
    pub project: Option<String>,
    /// For `mcp` and `http` upstreams: send the key as this header's whole value instead
    /// of `Authorization: Bearer <key>`.
    pub auth_header: Option<http::HeaderName>,
    /// For `mcp` and `http` upstreams: send HTTP Basic with this user and the key as password.
    pub basic_user: Option<String>,
    /// For `mcp` and `http` upstreams: send the key as this query parameter (toward the
    /// upstream only; never accepted from agents).
    pub auth_query: Option<String>,
    /// Allow addresses outside the public internet (loopback, private, metadata); off by
    /// default so a base URL cannot be turned against the gateway's own network.
    pub allow_private_network: bool,
    /// For `azure` upstreams: the model each deployment serves, for grants and prices.
    pub deployments: BTreeMap<String, String>,
    /// For `bedrock` upstreams: the AWS region and the credentials requests are signed with.
    pub aws: Option<AwsSigning>,
    /// For `vertex` upstreams: the service account, project and location.
    pub vertex: Option<VertexAuth>,
    /// Longest wait for the upstream's response headers.
    pub timeout: Duration,
    /// Longest wait to connect.
    pub connect_timeout: Duration,
    /// Longest wait between two chunks of the response body.
    pub read_timeout: Duration,
    /// Largest response accepted from the upstream.
    pub max_response_bytes: usize,
}

/// PEM files of the server's certificate chain and private key.
#[derive(Debug, Clone)]
pub struct TlsFiles {
    /// Certificate chain, leaf first.
    pub cert: PathBuf,
    /// Private key.
    pub key: PathBuf,
}

/// How a `vertex` upstream is reached: a service-account key exchanged for access tokens.
#[derive(Debug, Clone)]
pub struct VertexAuth {
    /// The key.
    pub service_account: writ_providers::vertex::ServiceAccount,
    /// Where assertions are exchanged (the key file's `token_uri` unless overridden).
    pub token_uri: Uri,
    /// The only project requests may name.
    pub project: String,
    /// The only location requests may name.
    pub location: String,
}

/// How a `bedrock` upstream's requests are signed.
#[derive(Debug, Clone)]
pub struct AwsSigning {
    /// AWS region, such as `us-east-1`.
    pub region: String,
    /// Static credentials, with a session token if temporary.
    pub credentials: writ_providers::sigv4::AwsCredentials,
}

/// Why a configuration was refused.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file is not valid TOML or has unknown or mistyped keys.
    #[error("{0}")]
    Parse(String),
    /// A `${env:NAME}` reference names an unset variable.
    #[error("environment variable `{name}` is not set (referenced as ${{env:{name}}})")]
    MissingEnv {
        /// The variable name.
        name: String,
    },
    /// A `${…}` reference is not of the form `${env:NAME}`.
    #[error("invalid reference in `{field}`: only ${{env:NAME}} is supported")]
    BadReference {
        /// Where it was found.
        field: String,
    },
    /// A value is out of range or inconsistent.
    #[error("invalid `{field}`: {reason}")]
    Invalid {
        /// The offending key.
        field: String,
        /// What is wrong.
        reason: String,
    },
}

impl RawConfig {
    /// Parses TOML text.
    pub fn from_toml(text: &str) -> Result<Self, ConfigError> {
        toml::from_str(text).map_err(|e| ConfigError::Parse(e.to_string()))
    }
}

impl Config {
    /// The embedded default: no upstreams, defaults everywhere.
    pub fn embedded_default() -> Self {
        Self::from_raw(RawConfig::default(), &|_| None).unwrap_or_else(|_| unreachable!())
    }

    /// Validates a raw config; `env` resolves `${env:NAME}` references.
    pub fn from_raw(
        raw: RawConfig,
        env: &dyn Fn(&str) -> Option<String>,
    ) -> Result<Self, ConfigError> {
        let invalid = |field: &str, reason: &str| ConfigError::Invalid {
            field: field.to_string(),
            reason: reason.to_string(),
        };
        let listen = raw.server.listen.as_deref().unwrap_or(DEFAULT_LISTEN);
        let listen: SocketAddr = listen.parse().map_err(|_| {
            invalid(
                "server.listen",
                "expected host:port, such as 127.0.0.1:8787",
            )
        })?;
        let max_body_bytes = raw.server.max_body_bytes.unwrap_or(DEFAULT_MAX_BODY_BYTES);
        if max_body_bytes == 0 || max_body_bytes > 1 << 30 {
            return Err(invalid(
                "server.max_body_bytes",
                "must be between 1 and 1 GiB",
            ));
        }
        let max_ttl = raw.tokens.max_ttl.unwrap_or(DEFAULT_MAX_TTL);
        if max_ttl.as_secs() == 0 || max_ttl.subsec_nanos() != 0 || max_ttl.as_secs() > 86_400 {
            return Err(invalid(
                "tokens.max_ttl",
                "must be whole seconds, 1s to 24h",
            ));
        }
        let tenant = raw.tokens.tenant.unwrap_or_else(|| "default".to_string());
        check_name("tokens.tenant", &tenant)?;
        let mut upstreams = BTreeMap::new();
        for (name, u) in raw.upstreams {
            check_name(&format!("upstreams.{name}"), &name)?;
            let field = |f: &str| format!("upstreams.{name}.{f}");
            let kind = match u.kind.as_str() {
                "openai" => ProviderKind::OpenAi,
                "mock" => ProviderKind::Mock,
                "anthropic" => ProviderKind::Anthropic,
                "gemini" => ProviderKind::Gemini,
                "azure" => ProviderKind::Azure,
                "bedrock" => ProviderKind::Bedrock,
                "vertex" => ProviderKind::Vertex,
                "mcp" => ProviderKind::Mcp,
                "http" => ProviderKind::Http,
                other => {
                    return Err(invalid(
                        &field("kind"),
                        &format!(
                            "unknown kind `{other}` (expected openai, anthropic, gemini, vertex, azure, bedrock, mock, mcp or http)"
                        ),
                    ));
                }
            };
            let aws = match kind {
                ProviderKind::Bedrock => Some(aws_signing(&field, &u, env)?),
                _ => {
                    let aws_fields = [
                        ("region", u.region.is_some()),
                        ("aws_access_key_id", u.aws_access_key_id.is_some()),
                        ("aws_secret_access_key", u.aws_secret_access_key.is_some()),
                        ("aws_session_token", u.aws_session_token.is_some()),
                    ];
                    if let Some((f, _)) = aws_fields.iter().find(|(_, set)| *set) {
                        return Err(invalid(&field(f), "only for bedrock upstreams"));
                    }
                    None
                }
            };
            let vertex = match kind {
                ProviderKind::Vertex => Some(vertex_auth(&field, &u, env)?),
                _ => {
                    let vertex_fields = [
                        ("location", u.location.is_some()),
                        ("service_account_file", u.service_account_file.is_some()),
                        ("service_account_json", u.service_account_json.is_some()),
                        ("token_uri", u.token_uri.is_some()),
                    ];
                    if let Some((f, _)) = vertex_fields.iter().find(|(_, set)| *set) {
                        return Err(invalid(&field(f), "only for vertex upstreams"));
                    }
                    None
                }
            };
            let base_url = match (u.base_url, kind) {
                (Some(url), _) => Some(parse_base_url(
                    &field("base_url"),
                    &expand(&field("base_url"), &url, env)?,
                )?),
                (None, ProviderKind::OpenAi) => Some(Uri::from_static("https://api.openai.com")),
                (None, ProviderKind::Anthropic) => {
                    Some(Uri::from_static("https://api.anthropic.com"))
                }
                (None, ProviderKind::Gemini) => Some(Uri::from_static(
                    "https://generativelanguage.googleapis.com",
                )),
                (None, ProviderKind::Bedrock) => {
                    let region = aws.as_ref().map(|a| a.region.as_str()).unwrap_or_default();
                    Some(parse_base_url(
                        &field("region"),
                        &format!("https://bedrock-runtime.{region}.amazonaws.com"),
                    )?)
                }
                (None, ProviderKind::Vertex) => {
                    let location = vertex
                        .as_ref()
                        .map(|v| v.location.as_str())
                        .unwrap_or_default();
                    Some(parse_base_url(
                        &field("location"),
                        &writ_providers::vertex::default_base_url(location),
                    )?)
                }
                (None, ProviderKind::Mock) => None,
                (None, ProviderKind::Mcp | ProviderKind::Http | ProviderKind::Azure) => {
                    return Err(invalid(&field("base_url"), "required for this kind"));
                }
            };
            // A literal address never reaches the resolver, so it is checked here.
            if let Some(host) = base_url.as_ref().and_then(Uri::host) {
                let bare = host.trim_start_matches('[').trim_end_matches(']');
                if let Ok(ip) = bare.parse::<std::net::IpAddr>()
                    && crate::egress::is_forbidden(ip)
                    && !u.allow_private_network
                {
                    return Err(invalid(
                        &field("base_url"),
                        "points outside the public internet; set allow_private_network = true if that is intended",
                    ));
                }
            }
            let auth_header = match (&u.auth_header, kind) {
                (None, _) => None,
                (Some(h), ProviderKind::Mcp | ProviderKind::Http) => Some(
                    http::HeaderName::try_from(h.as_str())
                        .map_err(|_| invalid(&field("auth_header"), "not a valid header name"))?,
                ),
                (Some(_), _) => {
                    return Err(invalid(
                        &field("auth_header"),
                        "only for mcp and http upstreams",
                    ));
                }
            };
            let api_key = match u.api_key {
                Some(_) if kind == ProviderKind::Bedrock => {
                    return Err(invalid(
                        &field("api_key"),
                        "bedrock upstreams sign with aws_access_key_id and aws_secret_access_key",
                    ));
                }
                Some(_) if kind == ProviderKind::Vertex => {
                    return Err(invalid(
                        &field("api_key"),
                        "vertex upstreams use a service account (service_account_file or service_account_json)",
                    ));
                }
                Some(k) => Some(UpstreamSecret::new(expand(&field("api_key"), &k, env)?)),
                None if kind == ProviderKind::Mock && base_url.is_none() => None,
                None if matches!(kind, ProviderKind::Bedrock | ProviderKind::Vertex) => None,
                None => return Err(invalid(&field("api_key"), "required for this kind")),
            };
            if let Some(key) = &api_key
                && (key.expose().is_empty()
                    || http::HeaderValue::try_from(format!("Bearer {}", key.expose())).is_err())
            {
                return Err(invalid(
                    &field("api_key"),
                    "empty or not a valid header value",
                ));
            }
            let tool_auth = [
                u.auth_header.is_some(),
                u.basic_user.is_some(),
                u.auth_query.is_some(),
            ];
            if tool_auth.iter().filter(|x| **x).count() > 1 {
                return Err(invalid(
                    &field("auth_header"),
                    "choose one of auth_header, basic_user and auth_query",
                ));
            }
            if (u.basic_user.is_some() || u.auth_query.is_some())
                && !matches!(kind, ProviderKind::Mcp | ProviderKind::Http)
            {
                return Err(invalid(
                    &field("basic_user"),
                    "basic_user and auth_query are only for mcp and http upstreams",
                ));
            }
            if u.basic_user
                .as_deref()
                .is_some_and(|n| n.is_empty() || n.contains(':'))
            {
                return Err(invalid(
                    &field("basic_user"),
                    "must be non-empty and hold no ':'",
                ));
            }
            let param_ok = |n: &str| {
                !n.is_empty()
                    && n.bytes()
                        .all(|b| b.is_ascii_alphanumeric() || b"_-.".contains(&b))
            };
            if u.auth_query.as_deref().is_some_and(|n| !param_ok(n)) {
                return Err(invalid(
                    &field("auth_query"),
                    "a parameter name of A-Z a-z 0-9 _ - .",
                ));
            }
            let header_value =
                |f: &str, v: Option<String>| -> Result<Option<String>, ConfigError> {
                    match v {
                        Some(v) if http::HeaderValue::try_from(v.as_str()).is_err() => {
                            Err(invalid(&field(f), "not a valid header value"))
                        }
                        v => Ok(v),
                    }
                };
            upstreams.insert(
                name.clone(),
                UpstreamConfig {
                    kind,
                    base_url,
                    api_key,
                    organization: header_value("organization", u.organization)?,
                    // For vertex upstreams `project` is the GCP project, kept in `vertex`.
                    project: match kind {
                        ProviderKind::Vertex => None,
                        _ => header_value("project", u.project)?,
                    },
                    auth_header,
                    basic_user: u.basic_user.clone(),
                    auth_query: u.auth_query.clone(),
                    deployments: u.deployments,
                    aws,
                    vertex,
                    allow_private_network: u.allow_private_network,
                    timeout: u.timeout.unwrap_or(Duration::from_secs(120)),
                    connect_timeout: u.connect_timeout.unwrap_or(Duration::from_secs(10)),
                    read_timeout: u.read_timeout.unwrap_or(Duration::from_secs(60)),
                    max_response_bytes: match u.max_response_bytes {
                        None => 64 * 1024 * 1024,
                        Some(0) => {
                            return Err(invalid(&field("max_response_bytes"), "must be positive"));
                        }
                        Some(n) => n,
                    },
                },
            );
        }
        let mut pricing = writ_providers::Pricing::builtin();
        for (model, entry) in raw.pricing {
            pricing
                .set(&model, entry)
                .map_err(|e| invalid(&format!("pricing.{model}"), &e.to_string()))?;
        }
        let tls = match (raw.server.tls_cert, raw.server.tls_key) {
            (None, None) => None,
            (Some(cert), Some(key)) => Some(TlsFiles { cert, key }),
            (Some(_), None) => return Err(invalid("server.tls_key", "required with tls_cert")),
            (None, Some(_)) => return Err(invalid("server.tls_cert", "required with tls_key")),
        };
        let workers = match raw.server.workers {
            None => std::thread::available_parallelism()
                .map_or(1, |n| n.get())
                .min(crate::workers::MAX_WORKERS),
            Some(n) if n <= crate::workers::MAX_WORKERS => n,
            Some(_) => {
                return Err(invalid(
                    "server.workers",
                    &format!("must be 0 to {}", crate::workers::MAX_WORKERS),
                ));
            }
        };
        let limiter = limiter_config(raw.limiter, env)?;
        let audit = audit_config(raw.audit, env)?;
        let detection = detection::detection_config(raw.detection, env)?;
        let mut limits = Vec::with_capacity(raw.limit.len());
        for (i, l) in raw.limit.into_iter().enumerate() {
            limits.push(limit_spec(&format!("limit[{i}]"), l)?);
        }
        let public_url = match raw.server.public_url {
            None => None,
            Some(u) => {
                let uri = parse_base_url("server.public_url", &u)?;
                Some(uri.to_string().trim_end_matches('/').to_string())
            }
        };
        Ok(Self {
            listen,
            public_url,
            data_dir: raw
                .server
                .data_dir
                .unwrap_or_else(|| PathBuf::from(DEFAULT_DATA_DIR)),
            max_body_bytes,
            workers,
            tls,
            tenant,
            max_ttl,
            upstreams,
            pricing,
            limiter,
            limits,
            audit,
            detection,
        })
    }
}

/// The service account, project and location of a `vertex` upstream.
fn vertex_auth(
    field: &dyn Fn(&str) -> String,
    u: &RawUpstream,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<VertexAuth, ConfigError> {
    let invalid = |f: &str, reason: String| ConfigError::Invalid {
        field: field(f),
        reason,
    };
    let (json, source) = match (&u.service_account_file, &u.service_account_json) {
        (Some(path), None) => (
            std::fs::read_to_string(path).map_err(|e| {
                invalid(
                    "service_account_file",
                    format!("cannot read {}: {e}", path.display()),
                )
            })?,
            "service_account_file",
        ),
        (None, Some(text)) => (
            expand(&field("service_account_json"), text, env)?,
            "service_account_json",
        ),
        (None, None) => {
            return Err(invalid(
                "service_account_file",
                "required for vertex upstreams (or service_account_json)".to_string(),
            ));
        }
        (Some(_), Some(_)) => {
            return Err(invalid(
                "service_account_json",
                "choose one of service_account_file and service_account_json".to_string(),
            ));
        }
    };
    let service_account = writ_providers::vertex::ServiceAccount::from_json(&json)
        .map_err(|e| invalid(source, e.to_string()))?;
    let token_uri = match &u.token_uri {
        Some(t) => expand(&field("token_uri"), t, env)?,
        None => service_account.token_uri.clone(),
    };
    let token_uri: Uri = token_uri
        .parse()
        .ok()
        .filter(|u: &Uri| matches!(u.scheme_str(), Some("http" | "https")) && u.host().is_some())
        .ok_or_else(|| invalid("token_uri", "not an http(s) URL".to_string()))?;
    let name_ok = |s: &str| {
        !s.is_empty()
            && s.len() <= 128
            && s.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b))
    };
    let project = u
        .project
        .clone()
        .or_else(|| service_account.project_id.clone())
        .ok_or_else(|| {
            invalid(
                "project",
                "required: the key file names no project_id".to_string(),
            )
        })?;
    if !name_ok(&project) {
        return Err(invalid("project", "not a GCP project id".to_string()));
    }
    let location = u.location.clone().ok_or_else(|| {
        invalid(
            "location",
            "required for vertex upstreams, such as us-central1".to_string(),
        )
    })?;
    if !name_ok(&location) {
        return Err(invalid("location", "not a GCP location".to_string()));
    }
    Ok(VertexAuth {
        service_account,
        token_uri,
        project,
        location,
    })
}

/// The region and credentials of a `bedrock` upstream.
fn aws_signing(
    field: &dyn Fn(&str) -> String,
    u: &RawUpstream,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<AwsSigning, ConfigError> {
    let required = |f: &str, v: &Option<String>| -> Result<String, ConfigError> {
        let v = v.as_deref().ok_or_else(|| ConfigError::Invalid {
            field: field(f),
            reason: "required for bedrock upstreams".to_string(),
        })?;
        expand(&field(f), v, env)
    };
    let region = required("region", &u.region)?;
    let region_ok = !region.is_empty()
        && region.len() <= 32
        && region
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-');
    if !region_ok {
        return Err(ConfigError::Invalid {
            field: field("region"),
            reason: "an AWS region such as us-east-1".to_string(),
        });
    }
    let access_key_id = required("aws_access_key_id", &u.aws_access_key_id)?;
    let secret = required("aws_secret_access_key", &u.aws_secret_access_key)?;
    let session_token = match &u.aws_session_token {
        None => None,
        Some(t) => Some(expand(&field("aws_session_token"), t, env)?),
    };
    let printable = |v: &str| !v.is_empty() && v.bytes().all(|b| b.is_ascii_graphic());
    for (f, v) in [
        ("aws_access_key_id", Some(access_key_id.as_str())),
        ("aws_secret_access_key", Some(secret.as_str())),
        ("aws_session_token", session_token.as_deref()),
    ] {
        if v.is_some_and(|v| !printable(v)) {
            return Err(ConfigError::Invalid {
                field: field(f),
                reason: "empty or not printable ASCII".to_string(),
            });
        }
    }
    Ok(AwsSigning {
        region,
        credentials: writ_providers::sigv4::AwsCredentials {
            access_key_id,
            secret_access_key: UpstreamSecret::new(secret),
            session_token: session_token.map(UpstreamSecret::new),
        },
    })
}

fn audit_config(
    raw: RawAudit,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<AuditConfig, ConfigError> {
    let invalid = |field: &str, reason: &str| ConfigError::Invalid {
        field: format!("audit.{field}"),
        reason: reason.to_string(),
    };
    let strict = match raw.mode.as_deref() {
        None | Some("strict") => true,
        Some("best_effort") => false,
        Some(_) => return Err(invalid("mode", "expected strict or best_effort")),
    };
    let sink = match (raw.sink.as_deref(), raw.postgres_url, raw.file) {
        (None | Some("sqlite"), None, None) => AuditSinkConfig::Sqlite,
        (Some("postgres"), Some(url), None) => {
            let url = expand("audit.postgres_url", &url, env)?;
            if !(url.starts_with("postgres://") || url.starts_with("postgresql://")) {
                return Err(invalid("postgres_url", "expected postgres://user@host/db"));
            }
            AuditSinkConfig::Postgres(UpstreamSecret::new(url))
        }
        (Some("postgres"), None, _) => {
            return Err(invalid("postgres_url", "required with sink = \"postgres\""));
        }
        (Some("file"), None, Some(path)) => AuditSinkConfig::File(path),
        (Some("file"), _, None) => return Err(invalid("file", "required with sink = \"file\"")),
        (None | Some("sqlite" | "postgres" | "file"), _, _) => {
            return Err(invalid(
                "sink",
                "postgres_url goes with sink = \"postgres\", file with sink = \"file\"",
            ));
        }
        (Some(_), _, _) => return Err(invalid("sink", "expected sqlite, postgres or file")),
    };
    let checkpoint_every = raw.checkpoint_every.unwrap_or(1000);
    if checkpoint_every == 0 {
        return Err(invalid("checkpoint_every", "must be positive"));
    }
    let checkpoint_interval = raw.checkpoint_interval.unwrap_or(Duration::from_secs(60));
    if checkpoint_interval.is_zero() {
        return Err(invalid("checkpoint_interval", "must be positive"));
    }
    let durability = match raw.durability.as_deref() {
        None | Some("committed") => writ_audit::sink::Durability::Committed,
        Some("synced") => writ_audit::sink::Durability::Synced,
        Some(_) => return Err(invalid("durability", "expected committed or synced")),
    };
    Ok(AuditConfig {
        durability,
        client_addresses: raw.client_addresses.unwrap_or(true),
        strict,
        sink,
        checkpoint_every,
        checkpoint_interval,
    })
}

fn limiter_config(
    raw: RawLimiter,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<LimiterConfig, ConfigError> {
    let invalid = |field: &str, reason: &str| ConfigError::Invalid {
        field: format!("limiter.{field}"),
        reason: reason.to_string(),
    };
    let backend = match (raw.backend.as_deref(), raw.redis_url) {
        (None | Some("memory"), None) => LimiterBackend::Memory,
        (Some("memory"), Some(_)) => {
            return Err(invalid("redis_url", "only with backend = \"redis\""));
        }
        (None | Some("redis"), Some(url)) => {
            let url = expand("limiter.redis_url", &url, env)?;
            if !(url.starts_with("redis://") || url.starts_with("rediss://")) {
                return Err(invalid("redis_url", "expected redis://host:port[/db]"));
            }
            LimiterBackend::Redis(UpstreamSecret::new(url))
        }
        (Some("redis"), None) => {
            return Err(invalid("redis_url", "required with backend = \"redis\""));
        }
        (Some(_), _) => return Err(invalid("backend", "expected memory or redis")),
    };
    let local_fallback = match raw.on_backend_failure.as_deref() {
        None | Some("closed") => false,
        Some("local") => true,
        Some(_) => return Err(invalid("on_backend_failure", "expected closed or local")),
    };
    let lease_ttl = raw
        .lease_ttl
        .unwrap_or(writ_limits::model::DEFAULT_LEASE_TTL);
    if lease_ttl < Duration::from_secs(1) || lease_ttl > Duration::from_secs(86_400) {
        return Err(invalid("lease_ttl", "must be 1s to 24h"));
    }
    let timeout = raw.timeout.unwrap_or(Duration::from_secs(2));
    if timeout.is_zero() || timeout > Duration::from_secs(60) {
        return Err(invalid("timeout", "must be above 0 and at most 60s"));
    }
    Ok(LimiterConfig {
        timeout,
        backend,
        local_fallback,
        lease_ttl,
        default_output_tokens: raw.default_output_tokens.unwrap_or(1024),
    })
}

fn limit_spec(field: &str, raw: RawLimit) -> Result<LimitSpec, ConfigError> {
    let invalid = |f: &str, reason: &str| ConfigError::Invalid {
        field: format!("{field}.{f}"),
        reason: reason.to_string(),
    };
    let mut scope = match raw.scope {
        OneOrMany::One(f) => vec![f],
        OneOrMany::Many(v) => v,
    };
    scope.sort();
    scope.dedup();
    if scope.is_empty() {
        return Err(invalid(
            "scope",
            "name at least one of tenant, agent, writ, upstream, model",
        ));
    }
    if raw.limit == 0 {
        return Err(invalid("limit", "must be positive"));
    }
    let window = match (raw.dimension, raw.per.as_deref()) {
        (Dimension::Concurrency, None) => Window::InFlight,
        (Dimension::Concurrency, Some(_)) => {
            return Err(invalid(
                "per",
                "concurrency counts what is in flight; it has no window",
            ));
        }
        (_, Some("second")) => Window::Rate {
            period: Duration::from_secs(1),
        },
        (_, Some("minute")) => Window::Rate {
            period: Duration::from_secs(60),
        },
        (_, Some("hour")) => Window::Rate {
            period: Duration::from_secs(3600),
        },
        (_, Some("day")) => Window::Day,
        (_, Some("month")) => Window::Month,
        (_, _) => {
            return Err(invalid(
                "per",
                "expected second, minute, hour, day or month",
            ));
        }
    };
    let burst = match (window, raw.burst) {
        (Window::Rate { .. }, Some(0)) => return Err(invalid("burst", "must be positive")),
        (Window::Rate { .. }, Some(b)) => b,
        (_, Some(_)) => {
            return Err(invalid(
                "burst",
                "only for per-second, -minute or -hour rates",
            ));
        }
        (_, None) => raw.limit,
    };
    if raw.only.values().any(|v| v.is_empty()) {
        return Err(invalid("match", "values must be non-empty"));
    }
    Ok(LimitSpec {
        scope,
        dimension: raw.dimension,
        window,
        limit: raw.limit,
        burst,
        only: raw.only.into_iter().collect(),
    })
}

/// Names of tenants and upstreams: 1–64 of `[A-Za-z0-9_.-]`.
fn check_name(field: &str, name: &str) -> Result<(), ConfigError> {
    let ok = !name.is_empty()
        && name.len() <= 64
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"_.-".contains(&b));
    if ok {
        Ok(())
    } else {
        Err(ConfigError::Invalid {
            field: field.to_string(),
            reason: "names are 1-64 characters of A-Z a-z 0-9 _ . -".to_string(),
        })
    }
}

fn parse_base_url(field: &str, text: &str) -> Result<Uri, ConfigError> {
    let uri: Uri = text.parse().map_err(|_| ConfigError::Invalid {
        field: field.to_string(),
        reason: "not a URL".to_string(),
    })?;
    let scheme_ok = matches!(uri.scheme_str(), Some("http" | "https"));
    if !scheme_ok || uri.authority().is_none() || uri.query().is_some() {
        return Err(ConfigError::Invalid {
            field: field.to_string(),
            reason: "expected http(s)://host[:port][/prefix] without a query".to_string(),
        });
    }
    Ok(uri)
}

/// Replaces every `${env:NAME}` in `value`.
fn expand(
    field: &str,
    value: &str,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<String, ConfigError> {
    let mut out = String::with_capacity(value.len());
    let mut rest = value;
    while let Some(start) = rest.find("${") {
        out.push_str(&rest[..start]);
        let after = &rest[start + 2..];
        let end = after.find('}').ok_or_else(|| ConfigError::BadReference {
            field: field.to_string(),
        })?;
        let name = after[..end]
            .strip_prefix("env:")
            .filter(|n| !n.is_empty())
            .ok_or_else(|| ConfigError::BadReference {
                field: field.to_string(),
            })?;
        let resolved = env(name).ok_or_else(|| ConfigError::MissingEnv {
            name: name.to_string(),
        })?;
        out.push_str(&resolved);
        rest = &after[end + 1..];
    }
    out.push_str(rest);
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(name: &str) -> Option<String> {
        (name == "OPENAI_KEY").then(|| "sk-from-env".to_string())
    }

    fn load(text: &str) -> Result<Config, ConfigError> {
        Config::from_raw(RawConfig::from_toml(text)?, &env)
    }

    #[test]
    fn defaults_without_config() {
        let c = Config::embedded_default();
        assert_eq!(c.listen.to_string(), DEFAULT_LISTEN);
        assert_eq!(c.max_ttl, Duration::from_secs(30));
        assert!(c.upstreams.is_empty());
    }

    #[test]
    fn expands_env_references() {
        let c = load("[upstreams.openai]\nkind = \"openai\"\napi_key = \"${env:OPENAI_KEY}\"\n")
            .unwrap();
        assert_eq!(
            c.upstreams["openai"].api_key.as_ref().unwrap().expose(),
            "sk-from-env"
        );
        assert!(matches!(
            load("[upstreams.o]\nkind = \"openai\"\napi_key = \"${env:NOPE}\"\n"),
            Err(ConfigError::MissingEnv { name }) if name == "NOPE"
        ));
        assert!(matches!(
            load("[upstreams.o]\nkind = \"openai\"\napi_key = \"${file:/etc/x}\"\n"),
            Err(ConfigError::BadReference { .. })
        ));
        assert!(matches!(
            load("[upstreams.o]\nkind = \"openai\"\napi_key = \"${env:OPENAI_KEY\"\n"),
            Err(ConfigError::BadReference { .. })
        ));
    }

    #[test]
    fn serving_threads_and_audit_durability() {
        let c = load("").unwrap();
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
        assert_eq!(c.workers, cores.min(crate::workers::MAX_WORKERS));
        assert_eq!(c.audit.durability, writ_audit::sink::Durability::Committed);
        let c = load("[server]\nworkers = 3\n[audit]\ndurability = \"synced\"").unwrap();
        assert_eq!(c.workers, 3);
        assert_eq!(load("[server]\nworkers = 0").unwrap().workers, 0);
        assert_eq!(c.audit.durability, writ_audit::sink::Durability::Synced);
        let err = load("[server]\nworkers = -1").unwrap_err().to_string();
        assert!(err.contains("workers"), "{err}");
    }

    #[test]
    fn typos_are_errors_with_a_line() {
        let err = load("[server]\nlisten = \"127.0.0.1:1\"\nlisen = \"x\"\n").unwrap_err();
        let text = err.to_string();
        assert!(text.contains("lisen") && text.contains("line 3"), "{text}");
    }

    #[test]
    fn refuses_bad_values() {
        for (text, field) in [
            ("[server]\nlisten = \"nowhere\"", "server.listen"),
            ("[server]\nmax_body_bytes = 0", "server.max_body_bytes"),
            ("[server]\nworkers = 257", "server.workers"),
            ("[audit]\ndurability = \"eventually\"", "audit.durability"),
            ("[tokens]\nmax_ttl = \"0s\"", "tokens.max_ttl"),
            (
                "[upstreams.o]\nkind = \"carrier-pigeon\"",
                "upstreams.o.kind",
            ),
            ("[upstreams.o]\nkind = \"openai\"", "upstreams.o.api_key"),
            (
                "[upstreams.o]\nkind = \"openai\"\napi_key=\"k\"\nbase_url=\"ftp://x\"",
                "upstreams.o.base_url",
            ),
            (
                "[upstreams.o]\nkind = \"openai\"\napi_key=\"a\\nb\"",
                "upstreams.o.api_key",
            ),
            ("[upstreams.\"a b\"]\nkind = \"mock\"", "upstreams.a b"),
            (
                "[upstreams.o]\nkind = \"http\"\napi_key=\"k\"\nbase_url=\"https://x\"\nbasic_user=\"u\"\nauth_query=\"key\"",
                "upstreams.o.auth_header",
            ),
            (
                "[upstreams.o]\nkind = \"openai\"\napi_key=\"k\"\nbasic_user=\"u\"",
                "upstreams.o.basic_user",
            ),
            (
                "[upstreams.o]\nkind = \"http\"\napi_key=\"k\"\nbase_url=\"https://x\"\nbasic_user=\"a:b\"",
                "upstreams.o.basic_user",
            ),
            (
                "[upstreams.o]\nkind = \"http\"\napi_key=\"k\"\nbase_url=\"https://x\"\nauth_query=\"a&b\"",
                "upstreams.o.auth_query",
            ),
            (
                "[upstreams.o]\nkind = \"azure\"\napi_key=\"k\"",
                "upstreams.o.base_url",
            ),
            ("[pricing.m]\ninput = -1.0\noutput = 1.0", "pricing.m"),
            ("[server]\ntls_cert = \"c.pem\"", "server.tls_key"),
            ("[server]\ntls_key = \"k.pem\"", "server.tls_cert"),
            (
                "[upstreams.b]\nkind = \"bedrock\"\naws_access_key_id = \"A\"\naws_secret_access_key = \"S\"",
                "upstreams.b.region",
            ),
            (
                "[upstreams.b]\nkind = \"bedrock\"\nregion = \"us east\"\naws_access_key_id = \"A\"\naws_secret_access_key = \"S\"",
                "upstreams.b.region",
            ),
            (
                "[upstreams.b]\nkind = \"bedrock\"\nregion = \"us-east-1\"\naws_access_key_id = \"A\"",
                "upstreams.b.aws_secret_access_key",
            ),
            (
                "[upstreams.b]\nkind = \"bedrock\"\nregion = \"us-east-1\"\naws_access_key_id = \"A\"\naws_secret_access_key = \"S S\"",
                "upstreams.b.aws_secret_access_key",
            ),
            (
                "[upstreams.b]\nkind = \"bedrock\"\nregion = \"us-east-1\"\napi_key = \"k\"\naws_access_key_id = \"A\"\naws_secret_access_key = \"S\"",
                "upstreams.b.api_key",
            ),
            (
                "[upstreams.o]\nkind = \"openai\"\napi_key = \"k\"\nregion = \"us-east-1\"",
                "upstreams.o.region",
            ),
            (
                "[upstreams.o]\nkind = \"openai\"\napi_key = \"k\"\nlocation = \"us-central1\"",
                "upstreams.o.location",
            ),
            (
                "[upstreams.v]\nkind = \"vertex\"\nlocation = \"us-central1\"",
                "upstreams.v.service_account_file",
            ),
            (
                "[upstreams.v]\nkind = \"vertex\"\nlocation = \"us-central1\"\nservice_account_json = \"{}\"",
                "upstreams.v.service_account_json",
            ),
            (
                "[upstreams.v]\nkind = \"vertex\"\nlocation = \"us-central1\"\nservice_account_file = \"/nonexistent.json\"",
                "upstreams.v.service_account_file",
            ),
        ] {
            match load(text) {
                Err(ConfigError::Invalid { field: f, .. }) => assert_eq!(f, field, "{text}"),
                other => panic!("{text}: {other:?}"),
            }
        }
        assert!(matches!(
            load("[server]\nlisten = 5"),
            Err(ConfigError::Parse(_))
        ));
    }

    #[test]
    fn a_json_value_with_a_key_given_twice_is_refused() {
        // Valid but for `project_id` twice: which project a reader takes would depend on
        // its parser, so the configuration is refused, naming the key.
        let text = r#"[upstreams.v]
kind = "vertex"
location = "us-central1"
service_account_json = '{"type":"service_account","client_email":"a@b","private_key":"k","project_id":"p1","project_id":"p2"}'
"#;
        match load(text) {
            Err(ConfigError::Invalid { field, reason }) => {
                assert_eq!(field, "upstreams.v.service_account_json");
                assert!(reason.contains("`project_id` more than once"), "{reason}");
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn private_literal_addresses_need_an_explicit_allow() {
        for base in [
            "http://169.254.169.254",
            "http://127.0.0.1:8080",
            "http://[::1]:9000",
            "http://10.0.0.5/v1",
        ] {
            let text = format!(
                "[upstreams.o]\nkind = \"openai\"\napi_key = \"k\"\nbase_url = \"{base}\"\n"
            );
            assert!(
                matches!(load(&text), Err(ConfigError::Invalid { field, .. }) if field == "upstreams.o.base_url"),
                "{base}"
            );
            assert!(
                load(&format!("{text}allow_private_network = true\n")).is_ok(),
                "{base}"
            );
        }
        assert!(load("[upstreams.o]\nkind = \"openai\"\napi_key = \"k\"\nbase_url = \"https://8.8.8.8\"\n").is_ok());
    }

    #[test]
    fn bedrock_defaults_its_endpoint_from_the_region() {
        let c = load("[upstreams.b]\nkind = \"bedrock\"\nregion = \"eu-west-3\"\naws_access_key_id = \"AKID\"\naws_secret_access_key = \"s3cr3t-aws-key\"\n").unwrap();
        let b = &c.upstreams["b"];
        assert_eq!(
            b.base_url.as_ref().unwrap().to_string(),
            "https://bedrock-runtime.eu-west-3.amazonaws.com/"
        );
        assert_eq!(b.aws.as_ref().unwrap().region, "eu-west-3");
        assert!(!format!("{c:?}").contains("s3cr3t-aws-key"));
    }

    #[test]
    fn limits_are_declared_and_checked() {
        let c = load(
            "[limiter]\nbackend = \"redis\"\nredis_url = \"redis://:pw-secret@127.0.0.1:6379\"\non_backend_failure = \"local\"\n\n[[limit]]\nscope = [\"tenant\", \"agent\"]\ndimension = \"tokens\"\nper = \"minute\"\nlimit = 1000\nburst = 200\n\n[[limit]]\nscope = \"agent\"\ndimension = \"concurrency\"\nlimit = 2\n",
        )
        .unwrap();
        assert_eq!(c.limits.len(), 2);
        assert_eq!(c.limits[0].burst, 200);
        assert_eq!(c.limits[1].window, Window::InFlight);
        assert!(c.limiter.local_fallback);
        assert!(!format!("{c:?}").contains("pw-secret"));
        for (text, field) in [
            (
                "[[limit]]\nscope = \"agent\"\ndimension = \"requests\"\nlimit = 5",
                "limit[0].per",
            ),
            (
                "[[limit]]\nscope = \"agent\"\ndimension = \"requests\"\nper = \"fortnight\"\nlimit = 5",
                "limit[0].per",
            ),
            (
                "[[limit]]\nscope = \"agent\"\ndimension = \"requests\"\nper = \"day\"\nlimit = 0",
                "limit[0].limit",
            ),
            (
                "[[limit]]\nscope = \"agent\"\ndimension = \"requests\"\nper = \"day\"\nlimit = 5\nburst = 2",
                "limit[0].burst",
            ),
            (
                "[[limit]]\nscope = \"agent\"\ndimension = \"concurrency\"\nper = \"day\"\nlimit = 5",
                "limit[0].per",
            ),
            (
                "[[limit]]\nscope = []\ndimension = \"requests\"\nper = \"day\"\nlimit = 5",
                "limit[0].scope",
            ),
            ("[limiter]\nbackend = \"redis\"", "limiter.redis_url"),
            ("[limiter]\nbackend = \"etcd\"", "limiter.backend"),
            ("[limiter]\nredis_url = \"http://x\"", "limiter.redis_url"),
            (
                "[limiter]\non_backend_failure = \"open\"",
                "limiter.on_backend_failure",
            ),
        ] {
            match load(text) {
                Err(ConfigError::Invalid { field: f, .. }) => assert_eq!(f, field, "{text}"),
                other => panic!("{text}: {other:?}"),
            }
        }
        assert!(matches!(
            load(
                "[[limit]]\nscope = \"planet\"\ndimension = \"requests\"\nper = \"day\"\nlimit = 5"
            ),
            Err(ConfigError::Parse(_))
        ));
    }

    #[test]
    fn debug_output_hides_secrets() {
        let c = load("[upstreams.o]\nkind = \"openai\"\napi_key = \"sk-top-secret\"\n").unwrap();
        let shown = format!("{c:?}");
        assert!(!shown.contains("sk-top-secret"));
    }
}
