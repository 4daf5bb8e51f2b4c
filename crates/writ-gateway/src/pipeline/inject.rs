//! Inject: build the outbound request. The writ and every client credential header are
//! removed; the upstream's own credential is added.
//!
//! Takes an [`Authorization`], so no request reaches this phase unauthorized.

use axum::body::{Body, Bytes};
use http::header::{self, HeaderName};
use http::request::Parts;
use http::{HeaderMap, Request};
use std::time::SystemTime;

use writ_providers::sigv4::{self, Signer};
use writ_providers::{ApiFamily, Operation, RouteSpec, anthropic, openai};
use writ_token::Authorization;

use crate::error::GatewayError;
use crate::pipeline::extract::{CREDENTIAL_HEADERS, PresentedWrit};
use crate::pipeline::route::{Target, UPSTREAM_HEADER};

/// Headers that describe one hop (RFC 9110 §7.6.1) or that the gateway sets itself.
const NOT_FORWARDED: &[&str] = &[
    "connection",
    "keep-alive",
    "proxy-connection",
    "proxy-authorization",
    "proxy-authenticate",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
    "host",
    "content-length",
    "cookie",
    // Responses are read by later phases (metering, redaction): ask for them uncompressed.
    "accept-encoding",
    // The proof is for the gateway; the upstream has never seen the key.
    "dpop",
    "openai-organization",
    "openai-project",
    UPSTREAM_HEADER,
];

/// Per-request credential material: an access token to send, and the time to sign at.
pub(crate) struct Signing {
    /// `Authorization` value obtained for this request (Vertex).
    pub(crate) access: Option<http::HeaderValue>,
    /// Now, for SigV4.
    pub(crate) now: SystemTime,
}

/// The request to send upstream.
pub(crate) struct Outbound(pub(crate) Request<Body>);

/// For a streamed OpenAI chat that did not ask for usage, ask for it (so the call can be
/// metered) and say so, so the meter removes the extra chunk. Returns the body to send.
pub(crate) fn ask_for_stream_usage(route: &RouteSpec, stream: bool, body: Bytes) -> (Bytes, bool) {
    // `stream` is what inspection read from the same body: a call that is not streamed
    // is not parsed again.
    if !stream
        || !matches!(route.family, ApiFamily::OpenAi | ApiFamily::Azure)
        || route.operation != Operation::Chat
    {
        return (body, false);
    }
    match openai::with_stream_usage(&body) {
        Some(rewritten) => (Bytes::from(rewritten), true),
        None => (body, false),
    }
}

pub(crate) fn prepare(
    _authorization: &Authorization,
    target: &Target<'_>,
    parts: &Parts,
    body: Bytes,
    presented: &PresentedWrit,
    signing: Signing,
) -> Result<Outbound, GatewayError> {
    let upstream = target.upstream;
    let mut uri = format!("{}{}", upstream.base, target.path);
    let mut query: Vec<&str> = parts
        .uri
        .query()
        .map(|q| q.split('&').collect())
        .unwrap_or_default();
    let credential_param;
    if let Some(name) = &upstream.auth_query {
        // The agent cannot choose the credential parameter's value: its own is dropped.
        let prefix = format!("{name}=");
        query.retain(|p| !p.starts_with(&prefix) && *p != name.as_str());
        let mut value = String::new();
        for b in upstream.secret.expose().bytes() {
            if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) {
                value.push(char::from(b));
            } else {
                value.push_str(&format!("%{b:02X}"));
            }
        }
        credential_param = format!("{name}={value}");
        query.push(&credential_param);
    }
    if !query.is_empty() {
        uri.push('?');
        uri.push_str(&query.join("&"));
    }
    let mut headers = HeaderMap::with_capacity(parts.headers.len() + upstream.credential.len());
    for (name, value) in &parts.headers {
        if forwarded(name) && !contains(value.as_bytes(), presented.as_str().as_bytes()) {
            headers.append(name.clone(), value.clone());
        }
    }
    for (name, value) in &upstream.credential {
        headers.insert(name.clone(), value.clone());
    }
    if let Some(access) = signing.access {
        headers.insert(header::AUTHORIZATION, access);
    }
    if upstream.kind.family() == ApiFamily::Anthropic && !headers.contains_key(anthropic::VERSION) {
        headers.insert(
            anthropic::VERSION,
            http::HeaderValue::from_static(anthropic::DEFAULT_VERSION),
        );
    }
    headers.insert(header::CONTENT_LENGTH, body.len().into());
    if let Some(signer) = &upstream.signer {
        sign(
            signer,
            &parts.method,
            &uri,
            &mut headers,
            &body,
            signing.now,
        )?;
    }
    let mut request = Request::builder()
        .method(parts.method.clone())
        .uri(uri)
        .body(Body::from(body))
        .map_err(|_| GatewayError::Internal("outbound request could not be built"))?;
    *request.headers_mut() = headers;
    Ok(Outbound(request))
}

/// Headers the signer sets; an agent's own are dropped.
const SIGNER_SET: &[&str] = &["x-amz-date", "x-amz-security-token", "x-amz-content-sha256"];

/// Signs the final request with SigV4 (Bedrock): `host`, `content-type` and any `x-amz-*`
/// headers are covered; the signature headers are added to `headers`.
fn sign(
    signer: &Signer,
    method: &http::Method,
    uri: &str,
    headers: &mut HeaderMap,
    body: &[u8],
    now: SystemTime,
) -> Result<(), GatewayError> {
    for name in SIGNER_SET {
        headers.remove(*name);
    }
    let parsed: http::Uri = uri
        .parse()
        .map_err(|_| GatewayError::Internal("outbound URL is invalid"))?;
    // The Host the client will send: the port only when it is not the scheme's default.
    let host = match (parsed.host(), parsed.port_u16(), parsed.scheme_str()) {
        (Some(h), Some(80), Some("http")) | (Some(h), Some(443), Some("https")) => h.to_string(),
        (Some(h), Some(port), _) => format!("{h}:{port}"),
        (Some(h), None, _) => h.to_string(),
        (None, ..) => return Err(GatewayError::Internal("outbound URL has no host")),
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
    let request = sigv4::Unsigned {
        method: method.as_str(),
        url: uri,
        headers: &to_sign,
        body,
    };
    let signed = sigv4::sign_request(signer, request, now).map_err(|e| {
        tracing::warn!(error = %e, "SigV4 signing failed");
        GatewayError::Internal("the upstream request could not be signed")
    })?;
    let mut add = Vec::with_capacity(signed.len() + 1);
    add.push((header::HOST, host.clone()));
    for (name, value) in signed {
        let name = HeaderName::try_from(name)
            .map_err(|_| GatewayError::Internal("signer produced a bad header"))?;
        add.push((name, value));
    }
    for (name, value) in add {
        let mut value = http::HeaderValue::try_from(value)
            .map_err(|_| GatewayError::Internal("signer produced a bad header"))?;
        if name != header::HOST && name != "x-amz-date" {
            value.set_sensitive(true);
        }
        headers.insert(name, value);
    }
    Ok(())
}

fn forwarded(name: &HeaderName) -> bool {
    let name = name.as_str();
    !NOT_FORWARDED.contains(&name) && !CREDENTIAL_HEADERS.contains(&name)
}

/// Whether `needle` occurs in `haystack`; a header carrying the writ under another name
/// must not reach the upstream either.
fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    !needle.is_empty() && haystack.windows(needle.len()).any(|w| w == needle)
}
