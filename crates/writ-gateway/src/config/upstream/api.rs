//! Upstreams created through the admin API (the JSON of an `[upstreams.NAME]` table, with
//! nothing that holds a secret, starts a process, reads a file or reads the environment)
//! and the [`UpstreamConfig`] of one tenant's credential applied to a declared or an API
//! upstream.

use std::time::Duration;

use http::Uri;
use serde_json::Value;
use writ_providers::vertex::ServiceAccountError;
use writ_providers::{
    BuildError, CredentialError, FieldProblem, Provider, ProviderConfig, ProviderKind,
};

use super::{
    DEFAULT_CONNECT_TIMEOUT, DEFAULT_READ_TIMEOUT, DEFAULT_TIMEOUT, RawUpstream, UpstreamConfig,
    Verbatim, address, max_response_bytes_at,
};
use crate::config::{ConfigError, check_name, parse_base_url};
use crate::upstream::egress::is_forbidden;

/// Keys of settings that hold or name a credential: a credential is stored through the
/// credentials route, encrypted, never in settings (which the API shows).
const CREDENTIAL_KEYS: [&str; 5] = [
    "api_key",
    "aws_access_key_id",
    "aws_secret_access_key",
    "aws_session_token",
    "service_account_json",
];

/// Why each refused key is refused, and what to do instead.
fn refusal(key: &str) -> Option<&'static str> {
    if CREDENTIAL_KEYS.contains(&key) {
        return Some(
            "credentials go through POST /admin/v1/tenants/{tenant}/credentials/{upstream}, never in settings",
        );
    }
    match key {
        "command" | "env" | "cwd" => Some(
            "an upstream created through the API cannot start a process on the gateway host; \
             declare such an MCP server in writ.toml",
        ),
        "service_account_file" => Some(
            "an upstream created through the API cannot read a file on the gateway host; \
             store the key's JSON as a credential (POST /admin/v1/tenants/{tenant}/credentials/{upstream})",
        ),
        _ => None,
    }
}

/// An upstream created through the admin API, validated: everything of it but a
/// credential. Built into an [`UpstreamConfig`] per tenant by [`build_with_credential`].
#[derive(Debug, Clone)]
pub struct ApiUpstream {
    name: String,
    kind: ProviderKind,
    provider: ProviderConfig,
    base_url: Option<Uri>,
    /// A Vertex upstream's `token_uri` setting.
    token_uri: Option<Uri>,
    allow_private_network: bool,
    timeout: Duration,
    connect_timeout: Duration,
    read_timeout: Duration,
    max_response_bytes: usize,
    settings: Value,
}

impl ApiUpstream {
    /// Its name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// What it speaks.
    pub fn kind(&self) -> ProviderKind {
        self.kind
    }

    /// The settings as given (an object holding no secret): what the API stores and shows.
    pub fn settings(&self) -> &Value {
        &self.settings
    }

    /// The base URL given; `None` when the provider's default (a public host) is used.
    pub fn base_url(&self) -> Option<&Uri> {
        self.base_url.as_ref()
    }

    /// Whether the settings allow addresses outside the public internet. The admin API
    /// decides whether its caller may ask for that.
    pub fn allow_private_network(&self) -> bool {
        self.allow_private_network
    }

    /// [`address::resolve_check`] of the base URL and the token endpoint given, as
    /// `settings.base_url` and `settings.token_uri`; a provider's default base URL is a
    /// public host and is not resolved.
    pub async fn resolve_check(&self) -> Result<(), ConfigError> {
        for (key, uri) in [("base_url", &self.base_url), ("token_uri", &self.token_uri)] {
            if let Some(uri) = uri {
                address::resolve_check(&field(key), uri, self.allow_private_network).await?;
            }
        }
        Ok(())
    }
}

/// `settings.<key>`, the field of a refusal.
fn field(key: &str) -> String {
    format!("settings.{key}")
}

fn invalid(field: String, reason: impl Into<String>) -> ConfigError {
    ConfigError::Invalid {
        field,
        reason: reason.into(),
    }
}

/// Validates the JSON body of an upstream created through the admin API: the keys of an
/// `[upstreams.NAME]` table (`kind` and its fields, `base_url`, `allow_private_network`,
/// `allow_plaintext`, `timeout`, `connect_timeout`, `read_timeout` as `"30s"`,
/// `max_response_bytes`). Refused, as `name` or `settings.<key>`: an invalid name; keys
/// holding a credential (`api_key`, `aws_access_key_id`, `aws_secret_access_key`,
/// `aws_session_token`, `service_account_json`); `command`, `env`, `cwd` (no process is
/// started for the API); `service_account_file` (no file is read); a `${env:` reference in
/// any key or value (the environment is not read); unknown keys; settings the provider
/// refuses (checked without a credential); a base URL the file would refuse. Names are
/// not resolved here: see [`ApiUpstream::resolve_check`].
pub fn api_upstream(name: &str, settings: &Value) -> Result<ApiUpstream, ConfigError> {
    check_name("name", name)?;
    let Value::Object(map) = settings else {
        return Err(invalid(
            "settings".to_string(),
            "must be a JSON object of an upstream's settings, such as {\"kind\": \"openai\"}",
        ));
    };
    for (key, value) in map {
        if let Some(reason) = refusal(key) {
            return Err(invalid(field(key), reason));
        }
        if mentions_env(key) || mentions_env_in(value) {
            return Err(invalid(
                field(key),
                "holds a ${env:…} reference: an upstream created through the API cannot read \
                 the gateway's environment; write the value itself",
            ));
        }
    }
    let raw: RawUpstream = serde_json::from_value(settings.clone())
        .map_err(|e| invalid("settings".to_string(), e.to_string()))?;
    raw.provider.check_settings().map_err(|e| match e {
        BuildError::Invalid { field: f, problem } => invalid(field(f), problem.to_string()),
        BuildError::Source(never) => match never {},
    })?;
    let kind = raw.provider.kind().ok_or_else(|| {
        invalid(
            field("kind"),
            format!("unknown kind (expected {})", ProviderKind::NAMES),
        )
    })?;
    let base_url = match &raw.base_url {
        Some(text) => {
            let uri = parse_base_url(&field("base_url"), text)?;
            address::check_base_url(
                &field("base_url"),
                &uri,
                raw.allow_private_network,
                raw.allow_plaintext,
            )?;
            Some(uri)
        }
        None if has_default_base_url(kind) => None,
        None => {
            return Err(invalid(
                field("base_url"),
                format!("required for {} upstreams", kind.as_str()),
            ));
        }
    };
    // Its form was checked with the settings; its address is checked as a base URL's.
    let token_uri = match map.get("token_uri").and_then(Value::as_str) {
        Some(text) => {
            let uri: Uri = text
                .parse()
                .map_err(|_| invalid(field("token_uri"), "not an http(s) URL"))?;
            if uri
                .host()
                .and_then(address::literal_ip)
                .is_some_and(is_forbidden)
                && !raw.allow_private_network
            {
                return Err(invalid(
                    field("token_uri"),
                    "points outside the public internet; set allow_private_network = true if that is intended",
                ));
            }
            Some(uri)
        }
        None => None,
    };
    Ok(ApiUpstream {
        name: name.to_string(),
        kind,
        base_url,
        token_uri,
        allow_private_network: raw.allow_private_network,
        timeout: raw.timeout.unwrap_or(DEFAULT_TIMEOUT),
        connect_timeout: raw.connect_timeout.unwrap_or(DEFAULT_CONNECT_TIMEOUT),
        read_timeout: raw.read_timeout.unwrap_or(DEFAULT_READ_TIMEOUT),
        max_response_bytes: max_response_bytes_at("settings.", raw.max_response_bytes)?,
        provider: raw.provider,
        settings: settings.clone(),
    })
}

/// Whether a kind's provider has a base URL of its own (see `Provider::default_base_url`).
fn has_default_base_url(kind: ProviderKind) -> bool {
    match kind {
        ProviderKind::OpenAi
        | ProviderKind::Anthropic
        | ProviderKind::Gemini
        | ProviderKind::Bedrock
        | ProviderKind::Vertex => true,
        ProviderKind::Azure | ProviderKind::Mcp | ProviderKind::Http => false,
    }
}

fn mentions_env(text: &str) -> bool {
    text.contains("${env:")
}

fn mentions_env_in(value: &Value) -> bool {
    match value {
        Value::String(s) => mentions_env(s),
        Value::Array(items) => items.iter().any(mentions_env_in),
        Value::Object(map) => map
            .iter()
            .any(|(k, v)| mentions_env(k) || mentions_env_in(v)),
        Value::Null | Value::Bool(_) | Value::Number(_) => false,
    }
}

/// What a tenant's credential is applied to.
#[derive(Debug, Clone, Copy)]
pub enum UpstreamTemplate<'a> {
    /// An upstream of `writ.toml`, as loaded.
    Declared(&'a UpstreamConfig),
    /// An upstream created through the admin API.
    Api(&'a ApiUpstream),
}

/// The [`UpstreamConfig`] of upstream `name` with one tenant's credential `secret`
/// (see [`ProviderConfig::with_credential`] for its shape per kind). The secret is used
/// literally, never `${env:…}`-expanded; nothing reads the environment or a file. A
/// token endpoint it names (a Vertex key's `token_uri`) is checked as a base URL is. A
/// declared upstream keeps its base URL, timeouts and resolved settings; an API one gets
/// its base URL (or the provider's default) and defaults. The credential's own problems
/// are [`ConfigError::Credential`], naming the upstream, never quoting it.
pub fn build_with_credential(
    name: &str,
    template: UpstreamTemplate<'_>,
    secret: &str,
) -> Result<UpstreamConfig, ConfigError> {
    match template {
        UpstreamTemplate::Declared(declared) => {
            let provider = provider_with(name, &declared.settings, secret)?;
            address::check_token_endpoint(
                &format!("upstreams.{name}.token_uri"),
                &provider,
                declared.allow_private_network,
            )?;
            Ok(UpstreamConfig {
                provider,
                ..declared.clone()
            })
        }
        UpstreamTemplate::Api(api) => {
            let provider = provider_with(name, &api.provider, secret)?;
            address::check_token_endpoint(
                &field("token_uri"),
                &provider,
                api.allow_private_network,
            )?;
            let base_url = match (&api.base_url, provider.default_base_url()) {
                (Some(url), _) => url.clone(),
                (None, Some(default)) => parse_base_url(&field("base_url"), &default)?,
                (None, None) => {
                    return Err(invalid(
                        field("base_url"),
                        format!("required for {} upstreams", api.kind.as_str()),
                    ));
                }
            };
            Ok(UpstreamConfig {
                provider,
                settings: api.provider.clone(),
                base_url: Some(base_url),
                allow_private_network: api.allow_private_network,
                timeout: api.timeout,
                connect_timeout: api.connect_timeout,
                read_timeout: api.read_timeout,
                max_response_bytes: api.max_response_bytes,
            })
        }
    }
}

/// `settings` with `secret` applied, built with nothing expanded and no file read.
fn provider_with(
    name: &str,
    settings: &ProviderConfig,
    secret: &str,
) -> Result<Provider, ConfigError> {
    let credential = |error| ConfigError::Credential {
        upstream: name.to_string(),
        error,
    };
    let with = settings.with_credential(secret).map_err(credential)?;
    with.build(&Verbatim { name }).map_err(|e| match e {
        BuildError::Source(e) => e,
        BuildError::Invalid { field, problem } if settings.credential_fields().contains(&field) => {
            credential(CredentialError::Refused {
                field,
                problem: unquoted(problem),
            })
        }
        BuildError::Invalid { field, problem } => ConfigError::Invalid {
            field: format!("upstreams.{name}.{field}"),
            reason: problem.to_string(),
        },
    })
}

/// `problem` without any value of the credential: a key's `type` is not repeated.
fn unquoted(problem: FieldProblem) -> FieldProblem {
    match problem {
        FieldProblem::ServiceAccount(ServiceAccountError::WrongType(_)) => {
            FieldProblem::Form("not a service-account key: its `type` must be `service_account`")
        }
        other => other,
    }
}

#[cfg(test)]
mod tests;
