//! Inject: build the outbound request. The writ and every client credential header are
//! removed; the upstream's own credential is added.
//!
//! Takes an [`Authorization`], so no request reaches this phase unauthorized.

use axum::body::{Body, Bytes};
use http::header::{self, HeaderName};
use http::request::Parts;
use http::{HeaderMap, Request};
use std::time::SystemTime;

use writ_providers::RouteSpec;
use writ_providers::sigv4::SignError;
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
    // The approval is the gateway's to check; the upstream has no use for its id.
    crate::approval::request::APPROVAL_HEADER,
];

/// Per-request material the outbound request is completed with: an access token to send,
/// the time to sign at, and the trace context naming the upstream call's span.
pub(crate) struct Signing {
    /// `Authorization` value obtained for this request (Vertex).
    pub(crate) access: Option<http::HeaderValue>,
    /// Now, for SigV4.
    pub(crate) now: SystemTime,
    /// With traces on, the `traceparent` (and `tracestate`) sent upstream in place of the
    /// client's, so the upstream's spans are children of the gateway's call. With traces
    /// off the gateway takes no part in tracing, and the client's pass through as sent.
    pub(crate) trace: Option<crate::traces::Outgoing>,
}

/// The request to send upstream.
pub(crate) struct Outbound(pub(crate) Request<Body>);

/// For a streamed call whose API reports usage only when asked (an OpenAI-style chat)
/// and that did not ask, ask for it (so the call can be metered) and say so, so the meter
/// removes the extra chunk. Returns the body to send.
pub(crate) fn ask_for_stream_usage(route: &RouteSpec, stream: bool, body: Bytes) -> (Bytes, bool) {
    // `stream` is what inspection read from the same body: a call that is not streamed
    // is not parsed again.
    if !stream {
        return (body, false);
    }
    match route.with_stream_usage(&body) {
        Some(rewritten) => (Bytes::from(rewritten), true),
        None => (body, false),
    }
}

pub(crate) fn prepare(
    _authorization: &Authorization,
    target: &Target,
    parts: &Parts,
    body: Bytes,
    presented: &PresentedWrit,
    signing: Signing,
) -> Result<Outbound, GatewayError> {
    let upstream = &target.upstream;
    // Built by hand: `format!` of the two strings was a quarter of this phase's time.
    let query_len = parts.uri.query().map_or(0, str::len);
    let mut uri = String::with_capacity(upstream.base.len() + target.path.len() + query_len + 64);
    uri.push_str(&upstream.base);
    uri.push_str(&target.path);
    let mut query: Vec<&str> = parts
        .uri
        .query()
        .map(|q| q.split('&').collect())
        .unwrap_or_default();
    let provider = &upstream.provider;
    if let Some((prefix, pair)) = provider.credential_param() {
        // The agent cannot choose the credential parameter's value: its own is dropped.
        let name = &prefix[..prefix.len() - 1];
        query.retain(|p| !p.starts_with(prefix) && *p != name);
        query.push(pair);
    }
    if !query.is_empty() {
        uri.push('?');
        uri.push_str(&query.join("&"));
    }
    let credential = provider.credential_headers();
    let mut headers = HeaderMap::with_capacity(parts.headers.len() + credential.len());
    for (name, value) in &parts.headers {
        if forwarded(name) && !contains(value.as_bytes(), presented.as_str().as_bytes()) {
            headers.append(name.clone(), value.clone());
        }
    }
    for (name, value) in credential {
        headers.insert(name.clone(), value.clone());
    }
    if let Some(access) = signing.access {
        headers.insert(header::AUTHORIZATION, access);
    }
    provider.complete_headers(&mut headers);
    if let Some(trace) = &signing.trace {
        trace.write(&mut headers);
    }
    headers.insert(header::CONTENT_LENGTH, body.len().into());
    provider
        .sign(&parts.method, &uri, &mut headers, &body, signing.now)
        .map_err(|e| match e {
            SignError::BadUrl => GatewayError::Internal("outbound URL is invalid"),
            SignError::BadHeader => GatewayError::Internal("signer produced a bad header"),
            SignError::Signer(e) => {
                tracing::warn!(error = %e, "SigV4 signing failed");
                GatewayError::Internal("the upstream request could not be signed")
            }
        })?;
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pipeline::extract;
    use crate::pipeline::fixture::{self, Fixture};
    use writ_providers::anthropic;
    use writ_token::{Api, RequestFacts};

    const OPENAI_KEY: &str = "sk-upstream-0123456789";

    fn route(pattern: &str) -> RouteSpec {
        *RouteSpec::find(pattern).expect("a route")
    }

    /// Builds the outbound request for `request` with a writ `f` minted for `upstream`.
    async fn outbound(
        toml: &str,
        name: &str,
        request: http::request::Builder,
        path: &str,
    ) -> (Request<Body>, String) {
        let f = Fixture::start(toml).await;
        let writ = f.mint(r#"{"type":"writ:llm","upstream":"any"}"#, None);
        let mut facts = RequestFacts::new(Api::Llm, "chat", "POST", "/");
        facts.upstream = Some("any".into());
        let authorization = f.verified(&writ).authorize(&facts, fixture::t0()).unwrap();
        let request = request
            .header("authorization", format!("Bearer {writ}"))
            .body(())
            .unwrap();
        let (parts, ()) = request.into_parts();
        let presented = extract::writ(&parts.headers).unwrap();
        let upstream = f.gw.tenancy.declared().upstreams[name].clone();
        let target = Target {
            upstream,
            path: path.to_string(),
        };
        let signing = Signing {
            access: None,
            now: fixture::t0(),
            trace: None,
        };
        let body = Bytes::from_static(b"{\"model\":\"gpt-4o\"}");
        let Outbound(out) =
            prepare(&authorization, &target, &parts, body, &presented, signing).unwrap();
        (out, writ)
    }

    #[tokio::test]
    async fn the_writ_and_client_credentials_are_replaced_by_the_upstreams() {
        let toml = format!("[upstreams.openai]\nkind = \"openai\"\napi_key = \"{OPENAI_KEY}\"\n");
        let builder = http::Request::post("/v1/chat/completions?user=1")
            .header("x-api-key", "sk-agents-own")
            .header("cookie", "session=1")
            .header("dpop", "a.b.c")
            .header("connection", "close")
            .header("accept-encoding", "gzip")
            .header(UPSTREAM_HEADER, "openai")
            .header("content-type", "application/json")
            .header("user-agent", "sdk/1.0");
        let (out, writ) = outbound(&toml, "openai", builder, "/v1/chat/completions").await;
        assert_eq!(
            out.uri().to_string(),
            "https://api.openai.com/v1/chat/completions?user=1"
        );
        let headers = out.headers();
        assert_eq!(
            headers[header::AUTHORIZATION].to_str().unwrap(),
            format!("Bearer {OPENAI_KEY}")
        );
        assert!(headers[header::AUTHORIZATION].is_sensitive());
        for gone in [
            "x-api-key",
            "cookie",
            "dpop",
            "connection",
            "accept-encoding",
            UPSTREAM_HEADER,
        ] {
            assert!(!headers.contains_key(gone), "{gone} was forwarded");
        }
        assert_eq!(headers["content-type"], "application/json");
        assert_eq!(headers["user-agent"], "sdk/1.0");
        assert_eq!(headers[header::CONTENT_LENGTH], "18");
        for (name, value) in headers {
            assert!(
                !contains(value.as_bytes(), writ.as_bytes()),
                "{name} carries the writ"
            );
        }
    }

    #[tokio::test]
    async fn a_header_carrying_the_writ_under_another_name_is_dropped() {
        let toml = format!("[upstreams.openai]\nkind = \"openai\"\napi_key = \"{OPENAI_KEY}\"\n");
        let f = Fixture::start(&toml).await;
        let writ = f.mint(r#"{"type":"writ:llm","upstream":"openai"}"#, None);
        // `outbound` mints its own writ: build this one by hand to smuggle it.
        let mut facts = RequestFacts::new(Api::Llm, "chat", "POST", "/v1/chat/completions");
        facts.upstream = Some("openai".into());
        let authorization = f.verified(&writ).authorize(&facts, fixture::t0()).unwrap();
        let (parts, ()) = http::Request::post("/v1/chat/completions")
            .header("authorization", format!("Bearer {writ}"))
            .header("x-forwarded-credential", format!("token={writ};"))
            .header("x-trace", "kept")
            .body(())
            .unwrap()
            .into_parts();
        let presented = extract::writ(&parts.headers).unwrap();
        let target = Target {
            upstream: f.gw.tenancy.declared().upstreams["openai"].clone(),
            path: "/v1/chat/completions".into(),
        };
        let signing = Signing {
            access: None,
            now: fixture::t0(),
            trace: None,
        };
        let Outbound(out) = prepare(
            &authorization,
            &target,
            &parts,
            Bytes::new(),
            &presented,
            signing,
        )
        .unwrap();
        assert!(!out.headers().contains_key("x-forwarded-credential"));
        assert_eq!(out.headers()["x-trace"], "kept");
    }

    #[tokio::test]
    async fn a_query_credential_replaces_the_agents_own_and_is_percent_encoded() {
        let toml = "[upstreams.crm]\nkind = \"http\"\nbase_url = \"https://crm.example.com/api/\"\napi_key = \"k y/+=0123\"\nauth_query = \"key\"\n";
        let builder = http::Request::get("/u/crm/v1/bookings?key=agents&key&page=2");
        let (out, _) = outbound(toml, "crm", builder, "/v1/bookings").await;
        assert_eq!(
            out.uri().to_string(),
            "https://crm.example.com/api/v1/bookings?page=2&key=k%20y%2F%2B%3D0123"
        );
        assert!(!out.headers().contains_key(header::AUTHORIZATION));
    }

    #[tokio::test]
    async fn anthropic_requests_carry_a_version_unless_the_client_chose_one() {
        let toml = "[upstreams.anthropic]\nkind = \"anthropic\"\napi_key = \"sk-ant-0123456789\"\n";
        let (out, _) = outbound(
            toml,
            "anthropic",
            http::Request::post("/v1/messages"),
            "/v1/messages",
        )
        .await;
        assert_eq!(
            out.headers()[anthropic::VERSION],
            anthropic::DEFAULT_VERSION
        );
        assert_eq!(out.headers()["x-api-key"], "sk-ant-0123456789");
        let (out, _) = outbound(
            toml,
            "anthropic",
            http::Request::post("/v1/messages").header("anthropic-version", "2024-01-01"),
            "/v1/messages",
        )
        .await;
        assert_eq!(out.headers()[anthropic::VERSION], "2024-01-01");
    }

    #[test]
    fn usage_is_asked_for_only_on_streamed_openai_style_chats_that_lack_it() {
        let streamed = Bytes::from_static(br#"{"model":"m","stream":true}"#);
        let chat = route("/v1/chat/completions");
        let (body, added) = ask_for_stream_usage(&chat, true, streamed.clone());
        assert!(added);
        let body: serde_json::Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(body["stream_options"]["include_usage"], true);
        let azure = route("/openai/deployments/{deployment}/chat/completions");
        assert!(ask_for_stream_usage(&azure, true, streamed.clone()).1);
        for (route, stream) in [
            (chat, false),
            (route("/v1/messages"), true),
            (route("/v1/responses"), true),
        ] {
            let (body, added) = ask_for_stream_usage(&route, stream, streamed.clone());
            assert!(!added);
            assert_eq!(body, streamed);
        }
        let asked = Bytes::from_static(
            br#"{"model":"m","stream":true,"stream_options":{"include_usage":true}}"#,
        );
        assert_eq!(
            ask_for_stream_usage(&chat, true, asked.clone()),
            (asked, false)
        );
    }

    #[test]
    fn only_end_to_end_non_credential_headers_are_forwarded() {
        for name in ["content-type", "user-agent", "x-request-id", "openai-beta"] {
            assert!(forwarded(&HeaderName::from_static(name)), "{name}");
        }
        for name in [
            "authorization",
            "x-api-key",
            "api-key",
            "x-goog-api-key",
            "host",
            "content-length",
            "transfer-encoding",
            "proxy-authorization",
            "openai-organization",
        ] {
            assert!(!forwarded(&HeaderName::from_static(name)), "{name}");
        }
        assert!(!contains(b"anything", b""));
        assert!(contains(b"a writ_x b", b"writ_x"));
    }
}
