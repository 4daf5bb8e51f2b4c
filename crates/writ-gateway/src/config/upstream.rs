//! `[upstreams.<name>]`: each upstream's kind, base URL, credential and timeouts, and the
//! refusal of settings that would expose the credential (plain HTTP off the host).

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use http::Uri;
use serde::Deserialize;
use writ_providers::{ProviderKind, UpstreamSecret};

use super::secrets::Env;
use super::{ConfigError, check_name, parse_base_url};

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawUpstream {
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
    #[serde(default)]
    allow_plaintext: bool,
    #[serde(default, with = "humantime_serde")]
    timeout: Option<Duration>,
    #[serde(default, with = "humantime_serde")]
    connect_timeout: Option<Duration>,
    #[serde(default, with = "humantime_serde")]
    read_timeout: Option<Duration>,
    max_response_bytes: Option<usize>,
}

/// One configured upstream.
#[derive(Debug, Clone)]
pub struct UpstreamConfig {
    /// What it speaks.
    pub kind: ProviderKind,
    /// Base URL requests are sent to: the configured one, or the kind's default.
    pub base_url: Uri,
    /// The credential injected on every request. `None` for `bedrock` (which signs with
    /// its AWS credentials) and `vertex` (which exchanges its service account's key).
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
    let kind = match u.kind.as_str() {
        "openai" => ProviderKind::OpenAi,
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
                    "unknown kind `{other}` (expected openai, anthropic, gemini, vertex, azure, bedrock, mcp or http)"
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
        (Some(url), _) => {
            parse_base_url(&field("base_url"), &env.expand(&field("base_url"), &url)?)?
        }
        (None, ProviderKind::OpenAi) => Uri::from_static("https://api.openai.com"),
        (None, ProviderKind::Anthropic) => Uri::from_static("https://api.anthropic.com"),
        (None, ProviderKind::Gemini) => {
            Uri::from_static("https://generativelanguage.googleapis.com")
        }
        (None, ProviderKind::Bedrock) => {
            let region = aws.as_ref().map(|a| a.region.as_str()).unwrap_or_default();
            parse_base_url(
                &field("region"),
                &format!("https://bedrock-runtime.{region}.amazonaws.com"),
            )?
        }
        (None, ProviderKind::Vertex) => {
            let location = vertex
                .as_ref()
                .map(|v| v.location.as_str())
                .unwrap_or_default();
            parse_base_url(
                &field("location"),
                &writ_providers::vertex::default_base_url(location),
            )?
        }
        (None, ProviderKind::Mcp | ProviderKind::Http | ProviderKind::Azure) => {
            return Err(invalid(&field("base_url"), "required for this kind"));
        }
    };
    // A literal address never reaches the resolver, so it is checked here.
    if let Some(host) = base_url.host() {
        let bare = host.trim_start_matches('[').trim_end_matches(']');
        if let Ok(ip) = bare.parse::<std::net::IpAddr>()
            && crate::upstream::egress::is_forbidden(ip)
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
        Some(k) => Some(UpstreamSecret::new(env.expand(&field("api_key"), &k)?)),
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
    // A credential sent over plain HTTP is readable by everyone on the path; only this
    // host's loopback is exempt, or an operator who says so.
    let carries_credential = api_key.is_some() || aws.is_some() || vertex.is_some();
    if base_url.scheme_str() == Some("http")
        && carries_credential
        && !is_loopback(&base_url)
        && !u.allow_plaintext
    {
        return Err(invalid(
            &field("base_url"),
            "plain http:// to another host would send the upstream credential unencrypted; \
             use https://, or set allow_plaintext = true on this upstream if the network is trusted",
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
    let header_value = |f: &str, v: Option<String>| -> Result<Option<String>, ConfigError> {
        match v {
            Some(v) if http::HeaderValue::try_from(v.as_str()).is_err() => {
                Err(invalid(&field(f), "not a valid header value"))
            }
            v => Ok(v),
        }
    };
    Ok(UpstreamConfig {
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
    })
}

/// Whether `uri` points at this host: a loopback address or `localhost`.
pub(super) fn is_loopback(uri: &Uri) -> bool {
    let Some(host) = uri.host() else {
        return false;
    };
    let bare = host.trim_start_matches('[').trim_end_matches(']');
    bare.eq_ignore_ascii_case("localhost")
        || bare
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

/// The service account, project and location of a `vertex` upstream.
fn vertex_auth(
    field: &dyn Fn(&str) -> String,
    u: &RawUpstream,
    env: &Env,
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
            env.expand(&field("service_account_json"), text)?,
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
        Some(t) => env.expand(&field("token_uri"), t)?,
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
    env: &Env,
) -> Result<AwsSigning, ConfigError> {
    let required = |f: &str, v: &Option<String>| -> Result<String, ConfigError> {
        let v = v.as_deref().ok_or_else(|| ConfigError::Invalid {
            field: field(f),
            reason: "required for bedrock upstreams".to_string(),
        })?;
        env.expand(&field(f), v)
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
        Some(t) => Some(env.expand(&field("aws_session_token"), t)?),
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
