//! `[upstreams.<name>]`: the settings every upstream has (base URL, network policy,
//! timeouts) and the refusal of those that would expose the credential (plain HTTP off the
//! host); the provider's own settings (`kind` and its fields) are `writ_providers`'.
//! Upstreams created through the admin API and tenants' credentials are [`api`]'s.

use std::path::Path;
use std::time::Duration;

use http::Uri;
use serde::Deserialize;
use writ_providers::{BuildError, ConfigSource, Provider, ProviderConfig};

use super::secrets::Env;
use super::{ConfigError, check_name, parse_base_url};

pub mod address;
pub mod api;

pub(super) use address::is_loopback;

/// `[upstreams.<name>]` as written: the settings every upstream has, and `kind` with the
/// provider's own fields. Unknown keys are refused by the provider's settings, which take
/// every key not named here (`deny_unknown_fields` there: serde's `flatten` cannot refuse
/// them here), so a field of another kind is an unknown key, named with its line.
#[derive(Debug, Deserialize)]
pub(super) struct RawUpstream {
    pub(super) base_url: Option<String>,
    #[serde(default)]
    pub(super) allow_private_network: bool,
    #[serde(default)]
    pub(super) allow_plaintext: bool,
    #[serde(default, with = "humantime_serde")]
    pub(super) timeout: Option<Duration>,
    #[serde(default, with = "humantime_serde")]
    pub(super) connect_timeout: Option<Duration>,
    #[serde(default, with = "humantime_serde")]
    pub(super) read_timeout: Option<Duration>,
    pub(super) max_response_bytes: Option<usize>,
    #[serde(flatten)]
    pub(super) provider: ProviderConfig,
}

/// One configured upstream.
#[derive(Debug, Clone)]
pub struct UpstreamConfig {
    /// What it speaks and how it is authenticated to: asked, never matched on.
    pub provider: Provider,
    /// The provider settings `provider` was built from, without a tenant's credential:
    /// `${env:…}` references resolved and key files read at load, so a tenant's credential
    /// is applied to them ([`api::build_with_credential`]) without reading the environment
    /// or a file again. As written for a server the gateway starts (it takes none).
    pub settings: ProviderConfig,
    /// Base URL requests are sent to: the configured one, or the provider's default;
    /// `None` for an MCP server the gateway starts itself (`command`).
    pub base_url: Option<Uri>,
    /// Allow addresses outside the public internet (loopback, private, metadata); off by
    /// default so a base URL cannot be turned against the gateway's own network.
    pub allow_private_network: bool,
    /// Longest wait for the upstream's response headers (a started server's answer).
    pub timeout: Duration,
    /// Longest wait to connect (for a started server: to start it and complete the MCP
    /// handshake).
    pub connect_timeout: Duration,
    /// Longest wait between two chunks of the response body.
    pub read_timeout: Duration,
    /// Largest response accepted from the upstream (a started server's longest line).
    pub max_response_bytes: usize,
}

/// The gateway's side of a provider's validation: `${env:…}` references resolved through
/// [`Env`], files read from disk, and fields named `upstreams.<name>.<field>`.
struct Source<'a> {
    name: &'a str,
    env: &'a Env<'a>,
}

impl Source<'_> {
    fn field(&self, field: &str) -> String {
        format!("upstreams.{}.{field}", self.name)
    }
}

impl ConfigSource for Source<'_> {
    type Error = ConfigError;

    fn expand(&self, field: &'static str, value: &str) -> Result<String, ConfigError> {
        self.env.expand(&self.field(field), value)
    }

    fn read_file(&self, field: &'static str, path: &Path) -> Result<String, ConfigError> {
        std::fs::read_to_string(path).map_err(|e| ConfigError::Invalid {
            field: self.field(field),
            reason: format!("cannot read {}: {e}", path.display()),
        })
    }
}

/// The source of settings already resolved ([`ProviderConfig::resolved`]) or written
/// through the admin API: values are used as they are, no file is read.
pub(super) struct Verbatim<'a> {
    pub(super) name: &'a str,
}

impl ConfigSource for Verbatim<'_> {
    type Error = ConfigError;

    fn expand(&self, _: &'static str, value: &str) -> Result<String, ConfigError> {
        Ok(value.to_string())
    }

    fn read_file(&self, field: &'static str, _: &Path) -> Result<String, ConfigError> {
        Err(ConfigError::Invalid {
            field: format!("upstreams.{}.{field}", self.name),
            reason: "no file is read for this upstream; put the key's JSON in a credential"
                .to_string(),
        })
    }
}

/// Validates one upstream. References to unset variables are left to the caller (see
/// [`Env`]); every other problem is the first one found in this upstream.
pub(super) fn upstream_config(
    name: &str,
    u: RawUpstream,
    env: &Env,
) -> Result<UpstreamConfig, ConfigError> {
    let invalid = |field: &str, reason: &str| ConfigError::Invalid {
        field: field.to_string(),
        reason: reason.to_string(),
    };
    check_name(&format!("upstreams.{name}"), name)?;
    let field = |f: &str| format!("upstreams.{name}.{f}");
    let source = Source { name, env };
    let settings = u.provider.resolved(&source)?;
    let built = if settings.is_launched() {
        u.provider.build(&source)
    } else {
        settings.build(&Verbatim { name })
    };
    let provider = built.map_err(|e| match e {
        BuildError::Source(e) => e,
        BuildError::Invalid { field: f, problem } => ConfigError::Invalid {
            field: field(f),
            reason: problem.to_string(),
        },
    })?;
    if let Some(launch) = provider.launch() {
        launched(name, &u, launch)?;
        let timeout = u.timeout.unwrap_or(DEFAULT_TIMEOUT);
        return Ok(UpstreamConfig {
            provider,
            settings,
            base_url: None,
            allow_private_network: false,
            timeout,
            connect_timeout: u.connect_timeout.unwrap_or(DEFAULT_CONNECT_TIMEOUT),
            // Its answer reaches the meter whole: no wait between chunks.
            read_timeout: timeout,
            max_response_bytes: max_response_bytes(name, u.max_response_bytes)?,
        });
    }
    let base_url = match (u.base_url, provider.default_base_url()) {
        (Some(url), _) => {
            parse_base_url(&field("base_url"), &env.expand(&field("base_url"), &url)?)?
        }
        (None, Some(default)) => parse_base_url(&field("base_url"), &default)?,
        (None, None) => {
            let reason = format!("required for {} upstreams", provider.kind().as_str());
            return Err(invalid(&field("base_url"), &reason));
        }
    };
    address::check_base_url(
        &field("base_url"),
        &base_url,
        u.allow_private_network,
        u.allow_plaintext,
    )?;
    address::check_token_endpoint(&field("token_uri"), &provider, u.allow_private_network)?;
    Ok(UpstreamConfig {
        provider,
        settings,
        base_url: Some(base_url),
        allow_private_network: u.allow_private_network,
        timeout: u.timeout.unwrap_or(DEFAULT_TIMEOUT),
        connect_timeout: u.connect_timeout.unwrap_or(DEFAULT_CONNECT_TIMEOUT),
        read_timeout: u.read_timeout.unwrap_or(DEFAULT_READ_TIMEOUT),
        max_response_bytes: max_response_bytes(name, u.max_response_bytes)?,
    })
}

/// Longest wait for response headers unless configured.
const DEFAULT_TIMEOUT: Duration = Duration::from_secs(120);
/// Longest wait to connect unless configured.
const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// Longest wait between two chunks of a response body unless configured.
const DEFAULT_READ_TIMEOUT: Duration = Duration::from_secs(60);

/// `max_response_bytes` of upstream `name` (its default, 64 MiB, when absent), refused as
/// `<prefix>max_response_bytes` when zero.
fn max_response_bytes(name: &str, configured: Option<usize>) -> Result<usize, ConfigError> {
    max_response_bytes_at(&format!("upstreams.{name}."), configured)
}

fn max_response_bytes_at(prefix: &str, configured: Option<usize>) -> Result<usize, ConfigError> {
    match configured {
        None => Ok(64 * 1024 * 1024),
        Some(0) => Err(ConfigError::Invalid {
            field: format!("{prefix}max_response_bytes"),
            reason: "must be positive".to_string(),
        }),
        Some(n) => Ok(n),
    }
}

/// Checks what the gateway's side of a started server's settings can: no network
/// settings beside `command`, and a program and directory that exist on this host.
fn launched(
    name: &str,
    u: &RawUpstream,
    launch: &writ_providers::Launch,
) -> Result<(), ConfigError> {
    let invalid = |field: &str, reason: String| ConfigError::Invalid {
        field: format!("upstreams.{name}.{field}"),
        reason,
    };
    let network = [
        ("base_url", u.base_url.is_some()),
        ("allow_private_network", u.allow_private_network),
        ("allow_plaintext", u.allow_plaintext),
        ("read_timeout", u.read_timeout.is_some()),
    ];
    if let Some((field, _)) = network.iter().find(|(_, set)| *set) {
        return Err(invalid(
            field,
            "does not apply to a server the gateway starts (`command`): choose one of \
             base_url and command"
                .to_string(),
        ));
    }
    let program = launch.program();
    let runnable = std::fs::metadata(program).map(|m| {
        use std::os::unix::fs::PermissionsExt;
        m.is_file() && m.permissions().mode() & 0o111 != 0
    });
    match runnable {
        Ok(true) => {}
        Ok(false) => {
            return Err(invalid(
                "command",
                format!("{} is not an executable file", program.display()),
            ));
        }
        Err(e) => {
            return Err(invalid(
                "command",
                format!("cannot run {}: {e}", program.display()),
            ));
        }
    }
    if !launch.cwd().is_dir() {
        return Err(invalid(
            "cwd",
            format!("{} is not a directory", launch.cwd().display()),
        ));
    }
    Ok(())
}
