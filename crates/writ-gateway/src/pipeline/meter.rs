//! Meter: read the upstream's response, record what the call consumed and cost, and hand
//! the client what the upstream sent.
//!
//! Event streams pass through chunk by chunk while a [`StreamMeter`] reads usage on the
//! way; the call is settled when the stream ends, when the upstream stops, stalls or
//! sends too much, or when the client goes away (the guard settles on drop). Other bodies
//! are read whole (they are small and must be checked): a success that is not what the
//! API promises becomes a 502. Upstream 5xx become 502. The upstream credential is
//! scrubbed from anything passed back.

use std::sync::Arc;
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::response::Response;
use http::{HeaderValue, StatusCode, header};
use http_body_util::BodyExt;
use hyper::body::Incoming;
use writ_providers::{ApiFamily, StreamMeter, Usage, anthropic, estimate_tokens, gemini, openai};

use crate::error::GatewayError;
use crate::gateway::Gateway;
use crate::upstream::Upstream;
use crate::usage_log::{Outcome, UsageRecord};

/// Who made the call and what it asked for: everything a usage record needs.
#[derive(Debug, Clone)]
pub(crate) struct CallInfo {
    pub(crate) token_id: String,
    pub(crate) tenant: String,
    pub(crate) agent: String,
    pub(crate) upstream: String,
    pub(crate) model: Option<String>,
    pub(crate) family: ApiFamily,
    /// Bytes of the request body, for an input estimate when no usage is reported.
    pub(crate) request_bytes: usize,
    /// The gateway added `include_usage`; the client must not see the extra chunk.
    pub(crate) drop_usage_chunk: bool,
}

pub(crate) async fn respond(
    gw: Arc<Gateway>,
    upstream: &Upstream,
    info: CallInfo,
    response: http::Response<Incoming>,
) -> Result<Response, GatewayError> {
    let (mut parts, body) = response.into_parts();
    if parts.status.is_server_error() {
        settle(&gw, &info, parts.status, None, 0, Outcome::Completed);
        return Err(GatewayError::UpstreamStatus {
            status: parts.status.as_u16(),
        });
    }
    let is_stream = parts
        .headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("text/event-stream"));
    if is_stream {
        // The body changes length when the usage chunk is dropped.
        parts.headers.remove(header::CONTENT_LENGTH);
        let guard = Settlement {
            gw,
            info,
            status: parts.status,
            meter: None,
            outcome: Outcome::ClientGone,
            settled: false,
        };
        let body = metered_stream(
            body,
            guard,
            upstream.read_timeout,
            upstream.max_response_bytes,
        );
        return Ok(Response::from_parts(parts, body));
    }
    let bytes = read_whole(body, upstream.read_timeout, upstream.max_response_bytes)
        .await
        .inspect_err(|_| {
            settle(&gw, &info, parts.status, None, 0, Outcome::UpstreamCut);
        })?;
    let usage = match info.family {
        ApiFamily::OpenAi | ApiFamily::Azure => openai::usage_from_json(&bytes),
        ApiFamily::Anthropic => anthropic::usage_from_json(&bytes),
        ApiFamily::Gemini => gemini::usage_from_json(&bytes),
        ApiFamily::Mcp | ApiFamily::Http => None,
    };
    let claims_json = parts
        .headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/json"));
    let must_be_json = matches!(info.family, ApiFamily::OpenAi | ApiFamily::Anthropic)
        && parts.status.is_success();
    if (must_be_json || claims_json)
        && serde_json::from_slice::<serde::de::IgnoredAny>(&bytes).is_err()
    {
        settle(&gw, &info, parts.status, None, 0, Outcome::UpstreamCut);
        return Err(GatewayError::UpstreamInvalid);
    }
    settle(&gw, &info, parts.status, usage, 0, Outcome::Completed);
    let bytes = scrub(upstream, bytes);
    parts
        .headers
        .insert(header::CONTENT_LENGTH, HeaderValue::from(bytes.len()));
    Ok(Response::from_parts(parts, Body::from(bytes)))
}

/// Reads a whole body within a size cap, with a deadline between chunks.
async fn read_whole(
    mut body: Incoming,
    idle: Duration,
    limit: usize,
) -> Result<Bytes, GatewayError> {
    let mut out = Vec::new();
    loop {
        match tokio::time::timeout(idle, body.frame()).await {
            Err(_) => return Err(GatewayError::UpstreamTimeout),
            Ok(None) => return Ok(Bytes::from(out)),
            Ok(Some(Err(_))) => return Err(GatewayError::UpstreamFailed),
            Ok(Some(Ok(frame))) => {
                if let Ok(data) = frame.into_data() {
                    if out.len() + data.len() > limit {
                        return Err(GatewayError::UpstreamTooLarge);
                    }
                    out.extend_from_slice(&data);
                }
            }
        }
    }
}

/// An upstream may echo its credential in an error ("Incorrect API key provided: sk-…").
/// It never reaches the client.
fn scrub(upstream: &Upstream, body: Bytes) -> Bytes {
    let secret = upstream.secret.expose().as_bytes();
    if secret.len() < 8 || !body.windows(secret.len()).any(|w| w == secret) {
        return body;
    }
    let mut out = Vec::with_capacity(body.len());
    let mut rest: &[u8] = &body;
    while let Some(i) = rest.windows(secret.len()).position(|w| w == secret) {
        out.extend_from_slice(&rest[..i]);
        out.extend_from_slice(b"[REDACTED:upstream_credential]");
        rest = &rest[i + secret.len()..];
    }
    out.extend_from_slice(rest);
    Bytes::from(out)
}

/// Settles a streamed call exactly once: at the end of the stream, or when dropped.
struct Settlement {
    gw: Arc<Gateway>,
    info: CallInfo,
    status: StatusCode,
    meter: Option<StreamMeter>,
    outcome: Outcome,
    settled: bool,
}

impl Settlement {
    fn finish(&mut self, outcome: Outcome) {
        if self.settled {
            return;
        }
        self.settled = true;
        let (usage, chars) = self
            .meter
            .as_ref()
            .map_or((None, 0), |m| (m.usage(), m.output_chars()));
        settle(&self.gw, &self.info, self.status, usage, chars, outcome);
    }
}

impl Drop for Settlement {
    fn drop(&mut self) {
        let outcome = self.outcome;
        self.finish(outcome);
    }
}

fn metered_stream(body: Incoming, mut guard: Settlement, idle: Duration, limit: usize) -> Body {
    guard.meter = Some(StreamMeter::new(
        guard.info.family,
        guard.info.drop_usage_chunk,
    ));
    let state = (body, guard, 0usize, false);
    let stream = futures_util::stream::unfold(
        state,
        move |(mut body, mut guard, mut seen, done)| async move {
            if done {
                return None;
            }
            let cut = |guard: &mut Settlement, why: &'static str| {
                guard.outcome = Outcome::UpstreamCut;
                guard.finish(Outcome::UpstreamCut);
                Err(std::io::Error::other(why))
            };
            match tokio::time::timeout(idle, body.frame()).await {
                Err(_) => {
                    let e = cut(&mut guard, "upstream stalled");
                    Some((e, (body, guard, seen, true)))
                }
                Ok(None) => {
                    let tail = guard
                        .meter
                        .as_mut()
                        .and_then(StreamMeter::finish)
                        .unwrap_or_default();
                    guard.outcome = Outcome::Completed;
                    guard.finish(Outcome::Completed);
                    Some((Ok(Bytes::from(tail)), (body, guard, seen, true)))
                }
                Ok(Some(Err(_))) => {
                    let e = cut(&mut guard, "upstream stream failed");
                    Some((e, (body, guard, seen, true)))
                }
                Ok(Some(Ok(frame))) => {
                    let Ok(data) = frame.into_data() else {
                        return Some((Ok(Bytes::new()), (body, guard, seen, false)));
                    };
                    seen += data.len();
                    if seen > limit {
                        let e = cut(&mut guard, "upstream response too large");
                        return Some((e, (body, guard, seen, true)));
                    }
                    let out = match guard.meter.as_mut().and_then(|m| m.feed(&data)) {
                        Some(filtered) => Bytes::from(filtered),
                        None => data,
                    };
                    Some((Ok(out), (body, guard, seen, false)))
                }
            }
        },
    );
    Body::from_stream(stream)
}

/// Records a call: reported usage, or an estimate flagged as one, and its cost.
fn settle(
    gw: &Gateway,
    info: &CallInfo,
    status: StatusCode,
    usage: Option<Usage>,
    output_chars: u64,
    outcome: Outcome,
) {
    let (usage, estimated) = match usage {
        Some(u) => (u, false),
        // Nothing was sent or received to estimate from (a model list, say).
        None if info.request_bytes == 0 && output_chars == 0 => (Usage::default(), false),
        None if status.is_success() => (
            Usage {
                input_tokens: estimate_tokens(info.request_bytes as u64),
                output_tokens: estimate_tokens(output_chars),
                cached_input_tokens: 0,
            },
            true,
        ),
        None => (Usage::default(), false),
    };
    let cost_usd_micros = info
        .model
        .as_deref()
        .and_then(|m| gw.pricing.cost_usd_micros(m, &usage));
    gw.usage.push(UsageRecord {
        token_id: info.token_id.clone(),
        tenant: info.tenant.clone(),
        agent: info.agent.clone(),
        upstream: info.upstream.clone(),
        model: info.model.clone(),
        status: status.as_u16(),
        usage,
        estimated,
        cost_usd_micros,
        outcome,
    });
}
