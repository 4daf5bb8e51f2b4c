//! `writ.toml`: parsed strictly (unknown keys are errors with a line number), then
//! validated into a [`Config`] with defaults filled in one place.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use http::Uri;
use serde::Deserialize;
use writ_providers::{ProviderKind, UpstreamSecret};

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
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawServer {
    listen: Option<String>,
    public_url: Option<String>,
    data_dir: Option<PathBuf>,
    max_body_bytes: Option<usize>,
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
    /// Tenant of agents when none is named.
    pub tenant: String,
    /// Largest writ lifetime.
    pub max_ttl: Duration,
    /// Upstreams by name.
    pub upstreams: BTreeMap<String, UpstreamConfig>,
    /// Model prices: the shipped table with the config's overrides.
    pub pricing: writ_providers::Pricing,
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
    /// Longest wait for the upstream's response headers.
    pub timeout: Duration,
    /// Longest wait to connect.
    pub connect_timeout: Duration,
    /// Longest wait between two chunks of the response body.
    pub read_timeout: Duration,
    /// Largest response accepted from the upstream.
    pub max_response_bytes: usize,
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
                "mcp" => ProviderKind::Mcp,
                "http" => ProviderKind::Http,
                other => {
                    return Err(invalid(
                        &field("kind"),
                        &format!(
                            "unknown kind `{other}` (expected openai, anthropic, gemini, azure, mock, mcp or http)"
                        ),
                    ));
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
                Some(k) => Some(UpstreamSecret::new(expand(&field("api_key"), &k, env)?)),
                None if kind == ProviderKind::Mock && base_url.is_none() => None,
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
                    project: header_value("project", u.project)?,
                    auth_header,
                    basic_user: u.basic_user.clone(),
                    auth_query: u.auth_query.clone(),
                    deployments: u.deployments,
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
            tenant,
            max_ttl,
            upstreams,
            pricing,
        })
    }
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
    fn debug_output_hides_secrets() {
        let c = load("[upstreams.o]\nkind = \"openai\"\napi_key = \"sk-top-secret\"\n").unwrap();
        let shown = format!("{c:?}");
        assert!(!shown.contains("sk-top-secret"));
    }
}
