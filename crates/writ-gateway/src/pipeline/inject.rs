//! Inject: build the outbound request. The writ and every client credential header are
//! removed; the upstream's own credential is added.
//!
//! Takes an [`Authorization`], so no request reaches this phase unauthorized.

use axum::body::{Body, Bytes};
use http::header::{self, HeaderName};
use http::request::Parts;
use http::{HeaderMap, Request};
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

/// The request to send upstream.
pub(crate) struct Outbound(pub(crate) Request<Body>);

/// For a streamed OpenAI chat that did not ask for usage, ask for it (so the call can be
/// metered) and say so, so the meter removes the extra chunk. Returns the body to send.
pub(crate) fn ask_for_stream_usage(route: &RouteSpec, body: Bytes) -> (Bytes, bool) {
    if !matches!(route.family, ApiFamily::OpenAi | ApiFamily::Azure)
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
    if upstream.kind.family() == ApiFamily::Anthropic && !headers.contains_key(anthropic::VERSION) {
        headers.insert(
            anthropic::VERSION,
            http::HeaderValue::from_static(anthropic::DEFAULT_VERSION),
        );
    }
    headers.insert(header::CONTENT_LENGTH, body.len().into());
    let mut request = Request::builder()
        .method(parts.method.clone())
        .uri(uri)
        .body(Body::from(body))
        .map_err(|_| GatewayError::Internal("outbound request could not be built"))?;
    *request.headers_mut() = headers;
    Ok(Outbound(request))
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
