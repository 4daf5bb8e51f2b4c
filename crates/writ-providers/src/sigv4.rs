//! AWS Signature Version 4 over the final outgoing request, with the `aws-sigv4` crate:
//! the credential Bedrock upstreams are reached with.

use std::time::SystemTime;

use aws_credential_types::Credentials;
use aws_sigv4::http_request::{SignableBody, SignableRequest, SigningSettings, sign};
use aws_sigv4::sign::v4;

use crate::secret::UpstreamSecret;

/// Static AWS credentials, optionally with a session token. Never printed.
#[derive(Clone)]
pub struct AwsCredentials {
    /// The access key id (not secret, but kept with its secret).
    pub access_key_id: String,
    /// The secret access key.
    pub secret_access_key: UpstreamSecret,
    /// A session token, for temporary credentials.
    pub session_token: Option<UpstreamSecret>,
}

impl std::fmt::Debug for AwsCredentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AwsCredentials")
            .field("access_key_id", &self.access_key_id)
            .field("secret_access_key", &self.secret_access_key)
            .finish_non_exhaustive()
    }
}

/// Signing failed: a request the signer cannot canonicalize.
#[derive(Debug, thiserror::Error)]
#[error("could not sign the upstream request: {0}")]
pub struct SigningFailed(String);

/// Who signs, for which region and service.
#[derive(Debug, Clone)]
pub struct Signer {
    /// The credentials.
    pub credentials: AwsCredentials,
    /// AWS region, such as `us-east-1`.
    pub region: String,
    /// Service name in the credential scope, such as `bedrock`.
    pub service: String,
}

/// One request to sign. `url` is the full, already encoded URL; `headers` are the headers
/// to sign, `host` among them.
#[derive(Debug, Clone, Copy)]
pub struct Unsigned<'a> {
    /// HTTP method.
    pub method: &'a str,
    /// Full URL.
    pub url: &'a str,
    /// Headers to sign.
    pub headers: &'a [(&'a str, &'a str)],
    /// The body.
    pub body: &'a [u8],
}

/// The headers that sign a request at `time`: `authorization`, `x-amz-date`, and
/// `x-amz-security-token` with temporary credentials.
pub fn sign_request(
    signer: &Signer,
    request: Unsigned<'_>,
    time: SystemTime,
) -> Result<Vec<(String, String)>, SigningFailed> {
    let Unsigned {
        method,
        url,
        headers,
        body,
    } = request;
    let (credentials, region, service) = (
        &signer.credentials,
        signer.region.as_str(),
        signer.service.as_str(),
    );
    let identity = Credentials::new(
        credentials.access_key_id.clone(),
        credentials.secret_access_key.expose().to_string(),
        credentials
            .session_token
            .as_ref()
            .map(|t| t.expose().to_string()),
        None,
        "writ",
    )
    .into();
    let params = v4::SigningParams::builder()
        .identity(&identity)
        .region(region)
        .name(service)
        .time(time)
        .settings(SigningSettings::default())
        .build()
        .map_err(|e| SigningFailed(e.to_string()))?
        .into();
    let request = SignableRequest::new(
        method,
        url,
        headers.iter().copied(),
        SignableBody::Bytes(body),
    )
    .map_err(|e| SigningFailed(e.to_string()))?;
    let (instructions, _signature) = sign(request, &params)
        .map_err(|e| SigningFailed(e.to_string()))?
        .into_parts();
    let (signed, _query) = instructions.into_parts();
    Ok(signed
        .iter()
        .map(|h| (h.name().to_string(), h.value().to_string()))
        .collect())
}

/// Why a request could not be signed.
#[derive(Debug, thiserror::Error)]
pub enum SignError {
    /// The outbound URL does not parse, or names no host.
    #[error("the outbound URL is invalid or has no host")]
    BadUrl,
    /// The signer refused the request.
    #[error(transparent)]
    Signer(#[from] SigningFailed),
    /// The signer produced a header that is not valid HTTP.
    #[error("the signer produced an invalid header")]
    BadHeader,
}

/// Headers the signer sets; an agent's own are dropped.
const SIGNER_SET: &[&str] = &["x-amz-date", "x-amz-security-token", "x-amz-content-sha256"];

/// Signs the final request in place: `host`, `content-type` and any `x-amz-*` headers are
/// covered; `host` and the signature headers are added to `headers` (the signature's
/// values marked sensitive). An agent's own signer headers are dropped first.
pub(crate) fn sign_headers(
    signer: &Signer,
    method: &http::Method,
    uri: &str,
    headers: &mut http::HeaderMap,
    body: &[u8],
    now: SystemTime,
) -> Result<(), SignError> {
    use http::header::{self, HeaderName, HeaderValue};
    for name in SIGNER_SET {
        headers.remove(*name);
    }
    let parsed: http::Uri = uri.parse().map_err(|_| SignError::BadUrl)?;
    // The Host the client will send: the port only when it is not the scheme's default.
    let host = match (parsed.host(), parsed.port_u16(), parsed.scheme_str()) {
        (Some(h), Some(80), Some("http")) | (Some(h), Some(443), Some("https")) => h.to_string(),
        (Some(h), Some(port), _) => format!("{h}:{port}"),
        (Some(h), None, _) => h.to_string(),
        (None, ..) => return Err(SignError::BadUrl),
    };
    let mut to_sign: Vec<(&str, &str)> = vec![("host", host.as_str())];
    for (name, value) in headers.iter() {
        let n = name.as_str();
        if (n == "content-type" || n.starts_with("x-amz"))
            && let Ok(v) = value.to_str()
        {
            to_sign.push((n, v));
        }
    }
    let request = Unsigned {
        method: method.as_str(),
        url: uri,
        headers: &to_sign,
        body,
    };
    let signed = sign_request(signer, request, now)?;
    let mut add = Vec::with_capacity(signed.len() + 1);
    add.push((header::HOST, host.clone()));
    for (name, value) in signed {
        let name = HeaderName::try_from(name).map_err(|_| SignError::BadHeader)?;
        add.push((name, value));
    }
    for (name, value) in add {
        let mut value = HeaderValue::try_from(value).map_err(|_| SignError::BadHeader)?;
        if name != header::HOST && name != "x-amz-date" {
            value.set_sensitive(true);
        }
        headers.insert(name, value);
    }
    Ok(())
}
