//! `writ.toml`: parsed strictly (unknown keys are errors with a line number), then
//! validated into a [`Config`] with defaults filled in one place. Validation reports
//! every problem it finds, not only the first (`writ config check` lists them all).

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use http::Uri;
use serde::Deserialize;
use writ_limits::LimitSpec;

mod admin;
mod approvals;
mod audit;
mod detection;
mod limits;
mod log;
mod metrics;
pub(crate) mod origin;
mod risk;
mod secrets;
mod store;
mod tenants;
mod traces;
mod unknown_keys;
mod upstream;
pub mod webhook;
pub use admin::AdminListener;
pub use approvals::{ApprovalWebhook, ApprovalsConfig};
pub use audit::{AuditConfig, AuditConfigError, AuditSinkConfig};
use audit::{RawAudit, audit_config};
pub use detection::{DetectionConfig, DetectionConfigError, Detector, Mode};
pub use limits::{LimiterBackend, LimiterConfig, LimitsConfigError, tenant_limit};
use limits::{RawLimit, RawLimiter, limit_spec, limiter_config};
pub use log::{LogFormat, check_log_level};
pub use metrics::MetricsConfig;
pub use risk::Warning;
pub use secrets::{DeferredSecret, Secrets};
pub use store::{
    DEFAULT_POLL_INTERVAL, MasterKeyBytes, MasterKeySource, PostgresUrl, StoreBackend, StoreConfig,
    StoreConfigError,
};
pub use tenants::TenantConfig;
pub use traces::TracesConfig;
pub use upstream::UpstreamConfig;
pub use upstream::address::resolve_check;
pub use upstream::api::{ApiUpstream, UpstreamTemplate, api_upstream, build_with_credential};
pub use webhook::{RawWebhook, WebhookConfig, WebhookConfigError};

/// Default listen address.
pub const DEFAULT_LISTEN: &str = "127.0.0.1:8787";
/// Default data directory.
pub const DEFAULT_DATA_DIR: &str = "writ-data";
/// Default largest request body, in bytes.
pub const DEFAULT_MAX_BODY_BYTES: usize = 10 * 1024 * 1024;
/// How long a stop waits for requests in flight by default.
pub const DEFAULT_DRAIN_TIMEOUT: Duration = Duration::from_secs(30);
/// The longest `server.drain_timeout`.
const MAX_DRAIN_TIMEOUT: Duration = Duration::from_secs(3600);
/// Default and, unless raised in config, largest writ lifetime.
pub const DEFAULT_MAX_TTL: Duration = Duration::from_secs(30);

/// The configuration file as written: every field optional, no unknown field allowed.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawConfig {
    #[serde(default)]
    server: RawServer,
    #[serde(default)]
    admin: admin::RawAdmin,
    #[serde(default)]
    tokens: RawTokens,
    #[serde(default)]
    upstreams: BTreeMap<String, upstream::RawUpstream>,
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
    #[serde(default)]
    store: store::RawStore,
    #[serde(default)]
    tenants: BTreeMap<String, tenants::RawTenant>,
    #[serde(default)]
    approvals: approvals::RawApprovals,
    #[serde(default)]
    log: log::RawLog,
    #[serde(default)]
    metrics: metrics::RawMetrics,
    traces: Option<traces::RawTraces>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawServer {
    listen: Option<String>,
    public_url: Option<String>,
    data_dir: Option<PathBuf>,
    max_body_bytes: Option<usize>,
    workers: Option<usize>,
    #[serde(default, with = "humantime_serde")]
    drain_timeout: Option<Duration>,
    tls_cert: Option<PathBuf>,
    tls_key: Option<PathBuf>,
    tls_ca: Option<PathBuf>,
    #[serde(default)]
    allow_plaintext_admin: bool,
    #[serde(default)]
    allow_private_upstreams: bool,
    #[serde(default)]
    mcp_allowed_origins: Vec<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawTokens {
    tenant: Option<String>,
    #[serde(default, with = "humantime_serde")]
    max_ttl: Option<Duration>,
}

/// A validated configuration.
#[derive(Debug, Clone)]
pub struct Config {
    /// Where the gateway listens.
    pub listen: SocketAddr,
    /// The admin API, `/metrics` and the console on a listener of their own (`[admin]`);
    /// on `listen` with the data plane when `None`.
    pub admin: Option<AdminListener>,
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
    /// How long a stop (SIGTERM) waits for requests and streams in flight before it
    /// exits anyway (default 30 s, at most 1 h).
    pub drain_timeout: Duration,
    /// Serve HTTPS with this certificate and key; plain HTTP when absent.
    pub tls: Option<TlsFiles>,
    /// The CA certificate(s) (PEM) that signed `tls`'s certificate, which the `writ` CLI
    /// trusts when it reaches this gateway; the public web roots when absent.
    pub tls_ca: Option<PathBuf>,
    /// Serve the admin API on a non-loopback address without TLS. Off by default: the
    /// admin API then answers 403 `admin_api_disabled` there.
    pub allow_plaintext_admin: bool,
    /// Whether upstreams created through the admin API may reach addresses outside the
    /// public internet (`allow_private_network` in their settings): off by default, so an
    /// admin writ cannot turn the gateway against its own network.
    pub allow_private_upstreams: bool,
    /// Web origins besides the gateway's own whose pages may call `/mcp/{upstream}` (a
    /// request there with another `Origin` is refused, 403), each in canonical form
    /// (`https://app.example.com`: lowercase, no default port).
    pub mcp_allowed_origins: Vec<String>,
    /// Tenant of agents when none is named.
    pub tenant: String,
    /// Tenants `writ.toml` declares, seeded into the store: its `[tenants.<name>]` tables
    /// and always `tenant`.
    pub tenants: BTreeMap<String, TenantConfig>,
    /// Where tenants, agents, upstreams and credentials live, and the vault's master key.
    /// At its defaults (SQLite, the data directory's key) when deferred.
    pub store: StoreConfig,
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
    /// How held requests and mints wait for a person.
    pub approvals: ApprovalsConfig,
    /// How log lines are written (`[log] format`; `WRIT_LOG_FORMAT` overrides it).
    pub log_format: LogFormat,
    /// What is logged (`[log] level`, tracing's filter syntax; `WRIT_LOG` overrides it).
    pub log_level: Option<String>,
    /// Log one line per request at info (`[log] requests`), as its audit record has it:
    /// writs by pseudonym, never a prompt or a secret.
    pub log_requests: bool,
    /// What `/metrics` shows and who may read it (`[metrics]`).
    pub metrics: MetricsConfig,
    /// OpenTelemetry traces (`[traces]`); `None`, the default, traces nothing.
    pub traces: Option<TracesConfig>,
    /// References to unset variables of a config loaded with [`Secrets::Defer`]; their
    /// sections are left out or at defaults. Empty otherwise. A gateway refuses to start
    /// with any.
    pub deferred: Vec<DeferredSecret>,
}

/// PEM files of the server's certificate chain and private key.
#[derive(Debug, Clone)]
pub struct TlsFiles {
    /// Certificate chain, leaf first.
    pub cert: PathBuf,
    /// Private key.
    pub key: PathBuf,
}

/// Why a configuration was refused.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file is not valid TOML or has unknown or mistyped keys.
    #[error("{0}")]
    Parse(String),
    /// A `${env:NAME}` reference names an unset variable.
    #[error(
        "environment variable `{name}` is not set (referenced as ${{env:{name}}} in `{field}`)"
    )]
    MissingEnv {
        /// The variable name.
        name: String,
        /// The first key referencing it.
        field: String,
    },
    /// A `${…}` reference is not of the form `${env:NAME}`.
    #[error("invalid reference in `{field}`: only ${{env:NAME}} is supported")]
    BadReference {
        /// Where it was found.
        field: String,
    },
    /// A key the parser does not know (a typo, or a key of another section).
    #[error("unknown key `{key}` at line {line}: {detail}")]
    UnknownKey {
        /// Its dotted path, such as `server.tls_cafile`.
        key: String,
        /// Its line in the file (1-based).
        line: usize,
        /// The parser's message, with the keys it expected.
        detail: String,
    },
    /// An `[audit]` value is not one the sink or mode understands.
    #[error("invalid `{field}`: {error}")]
    Audit {
        /// The offending key, such as `audit.sink`.
        field: String,
        /// What is wrong with it.
        error: AuditConfigError,
    },
    /// A `[limiter]` or `[[limit]]` value is out of range or not understood.
    #[error("invalid `{field}`: {error}")]
    Limits {
        /// The offending key, such as `limiter.redis_url` or `limit[0].per`.
        field: String,
        /// What is wrong with it.
        error: LimitsConfigError,
    },
    /// A `[detection]` value is out of range or names no detector or mode.
    #[error("invalid `{field}`: {error}")]
    Detection {
        /// The offending key, such as `detection.brute_force.lockout`.
        field: String,
        /// What is wrong with it.
        error: DetectionConfigError,
    },
    /// A `[[detection.webhooks]]` or `[[approvals.webhooks]]` entry is not usable.
    #[error("invalid `{field}`: {error}")]
    Webhook {
        /// The entry, such as `detection.webhooks[0]`.
        field: String,
        /// What is wrong with it.
        error: WebhookConfigError,
    },
    /// A tenant's credential cannot be used for an upstream (its shape, or its value as
    /// the field it fills). Never quotes the credential.
    #[error("the credential for upstream `{upstream}` is refused: {error}")]
    Credential {
        /// The upstream's name.
        upstream: String,
        /// What is wrong with it.
        error: writ_providers::CredentialError,
    },
    /// A `[store]` value is not usable (the value is never quoted).
    #[error("invalid `{field}`: {error}")]
    Store {
        /// The offending key, such as `store.url` or `store.previous_master_keys[1]`.
        field: String,
        /// What is wrong with it.
        error: StoreConfigError,
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

impl ConfigError {
    /// The dotted key a value was refused at (`limiter.redis_url`, `limit[0].per`,
    /// `detection.webhooks[1]`); `None` for parse errors, whose message gives the line,
    /// and for a refused credential, which is no key of a config.
    pub fn field(&self) -> Option<&str> {
        match self {
            ConfigError::Invalid { field, .. }
            | ConfigError::Audit { field, .. }
            | ConfigError::Limits { field, .. }
            | ConfigError::Detection { field, .. }
            | ConfigError::Webhook { field, .. }
            | ConfigError::Store { field, .. }
            | ConfigError::MissingEnv { field, .. }
            | ConfigError::BadReference { field } => Some(field),
            ConfigError::UnknownKey { key, .. } => Some(key),
            ConfigError::Parse(_) | ConfigError::Credential { .. } => None,
        }
    }
}

/// Every problem found in one configuration, in the order found; never empty.
#[derive(Debug)]
pub struct ConfigErrors(pub Vec<ConfigError>);

impl std::fmt::Display for ConfigErrors {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        for (i, e) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str("\n")?;
            }
            write!(f, "{e}")?;
        }
        Ok(())
    }
}

impl std::error::Error for ConfigErrors {}

impl ConfigErrors {
    /// The first problem found (a parse error if, against the type's promise, there
    /// is none).
    pub fn into_first(self) -> ConfigError {
        self.0
            .into_iter()
            .next()
            .unwrap_or_else(|| ConfigError::Parse("invalid config".to_string()))
    }
}

impl RawConfig {
    /// Parses TOML text, stopping at the first problem.
    pub fn from_toml(text: &str) -> Result<Self, ConfigError> {
        toml::from_str(text).map_err(|e| ConfigError::Parse(e.to_string()))
    }

    /// `[log] format`, if the file sets it: read before the rest is checked, since logging
    /// starts first.
    pub fn log_format(&self) -> Option<LogFormat> {
        self.log.format
    }

    /// `[log] level`, if the file sets it and it passes [`check_log_level`]: read before the
    /// rest is checked, since logging starts first.
    pub fn log_level(&self) -> Option<&str> {
        self.log
            .level
            .as_deref()
            .filter(|level| check_log_level(level).is_ok())
    }

    /// Parses TOML text reporting every unknown key, not only the first: returns the
    /// config without those keys (`None` if the text cannot be parsed even then) and one
    /// [`ConfigError::UnknownKey`] per key in file order, or the parse error.
    pub fn from_toml_all(text: &str) -> (Option<Self>, Vec<ConfigError>) {
        unknown_keys::parse(text)
    }
}

/// Records a section's problem and yields `fallback` in its place, so validation goes on
/// and reports the next problem too. Nothing built from a fallback is returned.
fn keep<T>(problems: &mut Vec<ConfigError>, result: Result<T, ConfigError>, fallback: T) -> T {
    result.unwrap_or_else(|e| {
        problems.push(e);
        fallback
    })
}

/// Runs `build` for a section that may reference variables. A section that met an unset
/// variable holds stand-ins: it yields `None` and its own errors are dropped (they may be
/// artefacts of the stand-ins); the unset variables are reported instead.
fn section<T>(
    env: &secrets::Env,
    problems: &mut Vec<ConfigError>,
    build: impl FnOnce() -> Result<T, ConfigError>,
) -> Option<T> {
    let before = env.unset_count();
    let result = build();
    if env.unset_count() > before {
        return None;
    }
    result.map_err(|e| problems.push(e)).ok()
}

impl Config {
    /// The embedded default: no upstreams, defaults everywhere.
    pub fn embedded_default() -> Self {
        Self::from_raw(RawConfig::default(), &|_| None).unwrap_or_else(|_| unreachable!())
    }

    /// Validates a raw config; `env` resolves `${env:NAME}` references. Returns the first
    /// problem; [`Config::validate`] returns them all.
    pub fn from_raw(
        raw: RawConfig,
        env: &dyn Fn(&str) -> Option<String>,
    ) -> Result<Self, ConfigError> {
        Self::validate(raw, Secrets::Resolve(env)).map_err(ConfigErrors::into_first)
    }

    /// Validates a raw config, reporting every problem found; `secrets` says whether
    /// references to unset variables are errors or deferred.
    pub fn validate(raw: RawConfig, secrets: Secrets<'_>) -> Result<Self, ConfigErrors> {
        let env = secrets::Env::new(secrets);
        let mut problems = Vec::new();
        let invalid = |field: &str, reason: &str| ConfigError::Invalid {
            field: field.to_string(),
            reason: reason.to_string(),
        };
        let listen = raw.server.listen.as_deref().unwrap_or(DEFAULT_LISTEN);
        let listen: Result<SocketAddr, _> = listen.parse().map_err(|_| {
            invalid(
                "server.listen",
                "expected host:port, such as 127.0.0.1:8787",
            )
        });
        let listen = keep(&mut problems, listen, SocketAddr::from(([127, 0, 0, 1], 0)));
        let admin = admin::admin_config(raw.admin, listen, &mut problems);
        let max_body_bytes = raw.server.max_body_bytes.unwrap_or(DEFAULT_MAX_BODY_BYTES);
        if max_body_bytes == 0 || max_body_bytes > 1 << 30 {
            problems.push(invalid(
                "server.max_body_bytes",
                "must be between 1 and 1 GiB",
            ));
        }
        let max_ttl = raw.tokens.max_ttl.unwrap_or(DEFAULT_MAX_TTL);
        if max_ttl.as_secs() == 0 || max_ttl.subsec_nanos() != 0 || max_ttl.as_secs() > 86_400 {
            problems.push(invalid(
                "tokens.max_ttl",
                "must be whole seconds, 1s to 24h",
            ));
        }
        let tenant = raw.tokens.tenant.unwrap_or_else(|| "default".to_string());
        if let Err(e) = check_name("tokens.tenant", &tenant) {
            problems.push(e);
        }
        let tenants = tenants::tenants(raw.tenants, &tenant, &mut problems);
        let store = section(&env, &mut problems, || store::store_config(raw.store, &env));
        let mut upstreams = BTreeMap::new();
        for (name, u) in raw.upstreams {
            if let Some(u) = section(&env, &mut problems, || {
                upstream::upstream_config(&name, u, &env)
            }) {
                upstreams.insert(name, u);
            }
        }
        let mut pricing = writ_providers::Pricing::builtin();
        for (model, entry) in raw.pricing {
            if let Err(e) = pricing.set(&model, entry) {
                problems.push(invalid(&format!("pricing.{model}"), &e.to_string()));
            }
        }
        let tls = match (raw.server.tls_cert, raw.server.tls_key) {
            (None, None) => None,
            (Some(cert), Some(key)) => Some(TlsFiles { cert, key }),
            (Some(_), None) => {
                problems.push(invalid("server.tls_key", "required with tls_cert"));
                None
            }
            (None, Some(_)) => {
                problems.push(invalid("server.tls_cert", "required with tls_key"));
                None
            }
        };
        let workers = match raw.server.workers {
            None => std::thread::available_parallelism()
                .map_or(1, |n| n.get())
                .min(crate::serve::workers::MAX_WORKERS),
            Some(n) if n <= crate::serve::workers::MAX_WORKERS => n,
            Some(_) => {
                problems.push(invalid(
                    "server.workers",
                    &format!("must be 0 to {}", crate::serve::workers::MAX_WORKERS),
                ));
                0
            }
        };
        let drain_timeout = match raw.server.drain_timeout {
            None => DEFAULT_DRAIN_TIMEOUT,
            Some(d) if d <= MAX_DRAIN_TIMEOUT => d,
            Some(_) => {
                problems.push(invalid("server.drain_timeout", "must be at most 1h"));
                DEFAULT_DRAIN_TIMEOUT
            }
        };
        let limiter = section(&env, &mut problems, || limiter_config(raw.limiter, &env));
        let audit = section(&env, &mut problems, || audit_config(raw.audit, &env));
        let detection = section(&env, &mut problems, || {
            detection::detection_config(raw.detection, &env)
        });
        let approvals = approvals::approvals_config(raw.approvals, &env, &mut problems);
        let traces = raw
            .traces
            .and_then(|t| traces::traces_config(t, &mut problems));
        if let Some(level) = &raw.log.level
            && let Err(reason) = check_log_level(level)
        {
            problems.push(ConfigError::Invalid {
                field: "log.level".to_string(),
                reason: reason.to_string(),
            });
        }
        let mut limits = Vec::with_capacity(raw.limit.len());
        for (i, l) in raw.limit.into_iter().enumerate() {
            match limit_spec(&format!("limit[{i}]"), l) {
                Ok(l) => limits.push(l),
                Err(e) => problems.push(e),
            }
        }
        let public_url = match raw.server.public_url {
            None => None,
            Some(u) => match parse_base_url("server.public_url", &u) {
                Ok(uri) => Some(uri.to_string().trim_end_matches('/').to_string()),
                Err(e) => {
                    problems.push(e);
                    None
                }
            },
        };
        let mut mcp_allowed_origins = Vec::with_capacity(raw.server.mcp_allowed_origins.len());
        for (i, text) in raw.server.mcp_allowed_origins.iter().enumerate() {
            match origin::canonical(text) {
                Ok(origin) => mcp_allowed_origins.push(origin),
                Err(e) => problems.push(invalid(
                    &format!("server.mcp_allowed_origins[{i}]"),
                    &e.to_string(),
                )),
            }
        }
        let unset = env.into_unset();
        let deferred = match secrets {
            Secrets::Defer(_) => unset,
            Secrets::Resolve(_) => {
                let mut seen = std::collections::BTreeSet::new();
                for u in unset {
                    if seen.insert(u.variable.clone()) {
                        problems.push(ConfigError::MissingEnv {
                            name: u.variable,
                            field: u.field,
                        });
                    }
                }
                Vec::new()
            }
        };
        if !problems.is_empty() {
            return Err(ConfigErrors(problems));
        }
        // Sections left out for deferred secrets take their defaults: nothing reads them
        // (a gateway refuses to start with deferred secrets).
        let defaults = || {
            Self::validate(RawConfig::default(), Secrets::Resolve(&|_| None))
                .map_err(|e| ConfigErrors(e.0))
        };
        let (limiter, audit, detection) = match (limiter, audit, detection) {
            (Some(l), Some(a), Some(d)) => (l, a, d),
            (l, a, d) => {
                let base = defaults()?;
                (
                    l.unwrap_or(base.limiter),
                    a.unwrap_or(base.audit),
                    d.unwrap_or(base.detection),
                )
            }
        };
        Ok(Self {
            listen,
            admin,
            public_url,
            data_dir: raw
                .server
                .data_dir
                .unwrap_or_else(|| PathBuf::from(DEFAULT_DATA_DIR)),
            max_body_bytes,
            workers,
            drain_timeout,
            tls,
            tls_ca: raw.server.tls_ca,
            allow_plaintext_admin: raw.server.allow_plaintext_admin,
            allow_private_upstreams: raw.server.allow_private_upstreams,
            mcp_allowed_origins,
            tenant,
            tenants,
            store: store.unwrap_or_default(),
            max_ttl,
            upstreams,
            pricing,
            limiter,
            limits,
            audit,
            detection,
            approvals,
            log_format: raw.log.format.unwrap_or_default(),
            log_level: raw.log.level,
            log_requests: raw.log.requests,
            metrics: raw.metrics.into(),
            traces,
            deferred,
        })
    }

    /// The risky settings this config allows (each a warning, never an error): see
    /// [`Warning`]. `writ serve` logs them at start and `writ config check` prints them.
    pub fn warnings(&self) -> Vec<Warning> {
        risk::warnings(self)
    }

    /// Whether the admin API is served: not on a non-loopback address without TLS unless
    /// `allow_plaintext_admin` says so. The address is the admin listener's when
    /// `[admin] listen` is set.
    pub fn admin_api_allowed(&self) -> bool {
        risk::admin_api_allowed(self)
    }

    /// Where the admin API, `/metrics` and the console are served: `[admin] listen`, else
    /// `listen`.
    pub fn admin_listen(&self) -> SocketAddr {
        self.admin.as_ref().map_or(self.listen, |a| a.listen)
    }

    /// Refuses an admin listener at the data plane's address (see `[admin] listen`);
    /// `writ serve` checks again after `--listen` overrides `listen`.
    pub fn check_admin_apart(&self) -> Result<(), ConfigError> {
        match &self.admin {
            Some(admin) => admin::distinct(admin.listen, self.listen),
            None => Ok(()),
        }
    }
}

/// Whether `name` is a valid name of a tenant, agent or upstream: 1–64 of
/// `[A-Za-z0-9_.-]`.
pub fn valid_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 64
        // `.` and `..` would be read as path steps where names travel in URLs.
        && name.bytes().any(|b| b != b'.')
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"_.-".contains(&b))
}

/// Names of tenants and upstreams: see [`valid_name`].
fn check_name(field: &str, name: &str) -> Result<(), ConfigError> {
    if valid_name(name) {
        Ok(())
    } else {
        Err(ConfigError::Invalid {
            field: field.to_string(),
            reason: "names are 1-64 characters of A-Z a-z 0-9 _ . - (not only dots)".to_string(),
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

#[cfg(test)]
mod tests;
