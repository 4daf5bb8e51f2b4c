//! Meter: read the upstream's answer, measure what the call consumed and cost (usage
//! reported in the JSON body or, for streams, read incrementally from SSE or event-stream
//! frames), and settle its reservation with the actual numbers.
//!
//! Event streams pass through chunk by chunk while a [`StreamMeter`] reads usage on the
//! way; the call is settled when the stream ends, when the upstream stops, stalls or
//! sends too much, or when the client goes away (the guard settles on drop). Other bodies
//! are read whole (they are small and must be checked): a success that is not what the
//! API promises becomes a 502, and so does any answer with a `Content-Encoding` (asked
//! for unencoded, it cannot be scanned). Upstream 5xx become 502. What passes back is filtered by
//! the redact phase: a whole body by [`super::redact`] in the pipeline, a stream's text by
//! the filter it installs in the stream ([`Unredacted::Stream`]).

use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::body::{Body, Bytes};
use http::{StatusCode, header};
use http_body_util::BodyExt;
use writ_limits::Amounts;
use writ_providers::{BodyUsage, Dialect, StreamMeter, Usage, estimate_tokens, is_event_stream};

use super::audit::{Answer, AuditDue, Ending};
use super::ctx::RequestCtx;
use super::identity::Identity;
use super::redact::{Redactor, TextScrubber, Unredacted};
use crate::audit::usage_log::{Outcome, UsageRecord};
use crate::error::GatewayError;
use crate::gateway::Gateway;
use crate::limits::Held;
use crate::pipeline::forward::UpstreamBody;
use crate::upstream::client::Upstream;

/// What the meter needs of a call besides who made it (the request's [`Identity`]).
#[derive(Debug)]
pub(crate) struct CallInfo {
    /// The route's dialect: how usage is read and which statuses refuse the credential.
    pub(crate) dialect: Dialect,
    /// Bytes of the request body, for an input estimate when no usage is reported.
    pub(crate) request_bytes: usize,
    /// The gateway added `include_usage`; the client must not see the extra chunk.
    pub(crate) drop_usage_chunk: bool,
    /// The answer is read whole even when it is an event stream (to the event that
    /// answers the request), as a list answer must be filtered before any of it passes.
    pub(crate) whole: bool,
    /// The limits reserved for this call, settled when it ends.
    pub(crate) held: Option<Held>,
    /// When the request was sent upstream, for the `compute` dimension and the upstream
    /// time of the metrics.
    pub(crate) sent: Instant,
}

/// Reads the upstream's `response` to the request of `ctx`. A body read whole settles
/// the call here and leaves its [`Answer`] in `ctx.answer` (also when the call failed after
/// the upstream answered: a 5xx, a refused credential, a cut or invalid body, each an
/// error); a stream takes the request's audit record along, to write when it ends.
pub(crate) async fn read(
    gw: &Arc<Gateway>,
    ctx: &mut RequestCtx,
    upstream: &Upstream,
    mut info: CallInfo,
    response: http::Response<UpstreamBody>,
) -> Result<Unredacted, GatewayError> {
    let (mut parts, body) = response.into_parts();
    let failed = if parts.status.is_server_error() {
        Some(GatewayError::UpstreamStatus {
            upstream: upstream.name.clone(),
            status: parts.status.as_u16(),
        })
    } else if info.dialect.credential_refused(parts.status.as_u16()) {
        // The upstream refused the credential the gateway injected. Its body is not
        // passed on (it may echo the key), and the agent learns it was not its writ.
        Some(GatewayError::UpstreamCredentialRefused {
            upstream: upstream.name.clone(),
            tenant_credential: upstream.tenant_credential.clone(),
            status: parts.status.as_u16(),
        })
    } else {
        None
    };
    if let Some(error) = failed {
        settle_here(gw, ctx, &mut info, parts.status, None, Outcome::Completed).await;
        return Err(error);
    }
    // The gateway asks for answers unencoded (it sends no `Accept-Encoding`): an encoded
    // body can be neither metered nor scanned, and the client's HTTP library would decode
    // what no scanner read — an echoed credential, say.
    let encoded = parts
        .headers
        .get(header::CONTENT_ENCODING)
        .is_some_and(|v| !v.as_bytes().eq_ignore_ascii_case(b"identity"));
    if encoded {
        settle_here(gw, ctx, &mut info, parts.status, None, Outcome::UpstreamCut).await;
        return Err(GatewayError::UpstreamInvalid);
    }
    let is_stream = parts
        .headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(is_event_stream);
    if is_stream && !info.whole {
        // The body changes length when the usage chunk is dropped.
        parts.headers.remove(header::CONTENT_LENGTH);
        let call = StreamCall {
            body,
            idle: upstream.read_timeout,
            limit: upstream.max_response_bytes,
            settlement: Settlement {
                gw: gw.clone(),
                meter: StreamMeter::new(info.dialect, info.drop_usage_chunk),
                info,
                id: ctx.id.clone(),
                audit: ctx.audit.take(),
                status: parts.status,
                scrubber: None,
                redactor: None,
                outcome: Outcome::ClientGone,
            },
        };
        return Ok(Unredacted::Stream(
            parts,
            Box::new(move |redactor, scrubber| call.into_body(redactor, scrubber)),
        ));
    }
    let read = if is_stream {
        read_to_answer(body, upstream.read_timeout, upstream.max_response_bytes).await
    } else {
        read_whole(body, upstream.read_timeout, upstream.max_response_bytes).await
    };
    let bytes = match read {
        Ok(bytes) => bytes,
        Err(e) => {
            settle_here(gw, ctx, &mut info, parts.status, None, Outcome::UpstreamCut).await;
            return Err(e);
        }
    };
    // Usage read from the body means the body was parsed whole as one JSON object, so it
    // need not be checked again below; Bedrock's may come from headers alone.
    let BodyUsage {
        usage,
        parsed_whole,
    } = info.dialect.usage_of_response(&parts.headers, &bytes);
    let claims_json = parts
        .headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/json"));
    let must_be_json = info.dialect.success_is_json() && parts.status.is_success();
    // An empty body (a notification's `202 Accepted`) claims nothing, whatever its type.
    if (must_be_json || (claims_json && !bytes.is_empty()))
        && !parsed_whole
        && serde_json::from_slice::<serde::de::IgnoredAny>(&bytes).is_err()
    {
        settle_here(gw, ctx, &mut info, parts.status, None, Outcome::UpstreamCut).await;
        return Err(GatewayError::UpstreamInvalid);
    }
    settle_here(gw, ctx, &mut info, parts.status, usage, Outcome::Completed).await;
    Ok(Unredacted::Whole(parts, bytes))
}

/// Settles a call whose body was read whole (or not at all) and leaves its answer in `ctx`.
async fn settle_here(
    gw: &Arc<Gateway>,
    ctx: &mut RequestCtx,
    info: &mut CallInfo,
    status: StatusCode,
    usage: Option<Usage>,
    outcome: Outcome,
) {
    let (answer, limits) = settle(gw, &ctx.id, info, status, usage, 0, outcome);
    ctx.answer = Some(answer);
    limits.run();
}

/// Reads a body whole, within `limit` bytes and `idle` between frames.
async fn read_whole(
    body: UpstreamBody,
    idle: Duration,
    limit: usize,
) -> Result<Bytes, GatewayError> {
    read_until(body, idle, limit, |_| false).await
}

/// Reads an event stream up to and including the event that answers the request (a
/// JSON-RPC response: `result` or `error`), or its end; what follows is not read.
async fn read_to_answer(
    body: UpstreamBody,
    idle: Duration,
    limit: usize,
) -> Result<Bytes, GatewayError> {
    let mut parser = writ_providers::sse::SseParser::new();
    read_until(body, idle, limit, move |data| {
        parser.push(data).iter().any(|event| {
            serde_json::from_str::<serde_json::Value>(&event.data)
                .is_ok_and(|m| m.get("result").is_some() || m.get("error").is_some())
        })
    })
    .await
}

/// Reads a body until its end or until `done` says the data read so far (given each
/// frame's data in turn) is enough, within `limit` bytes and `idle` between frames.
async fn read_until(
    mut body: UpstreamBody,
    idle: Duration,
    limit: usize,
    mut done: impl FnMut(&[u8]) -> bool,
) -> Result<Bytes, GatewayError> {
    let mut out = Gathered::default();
    loop {
        match tokio::time::timeout(idle, body.frame()).await {
            Err(_) => return Err(GatewayError::UpstreamTimeout),
            Ok(None) => return Ok(out.into_bytes()),
            Ok(Some(Err(_))) => return Err(GatewayError::UpstreamFailed),
            Ok(Some(Ok(frame))) => {
                let Ok(data) = frame.into_data() else {
                    continue;
                };
                if out.len() + data.len() > limit {
                    return Err(GatewayError::UpstreamTooLarge);
                }
                let enough = done(&data);
                out.push(data);
                if enough {
                    return Ok(out.into_bytes());
                }
            }
        }
    }
}

/// A body's frames read so far: one frame kept as it came (an answer that fits one read
/// of the connection arrives as one), more copied together.
#[derive(Debug, Default)]
enum Gathered {
    #[default]
    Nothing,
    One(Bytes),
    Many(Vec<u8>),
}

impl Gathered {
    fn len(&self) -> usize {
        match self {
            Self::Nothing => 0,
            Self::One(b) => b.len(),
            Self::Many(v) => v.len(),
        }
    }

    fn push(&mut self, data: Bytes) {
        *self = match std::mem::take(self) {
            Self::Nothing => Self::One(data),
            Self::One(first) => {
                let mut all = Vec::with_capacity(first.len() + data.len());
                all.extend_from_slice(&first);
                all.extend_from_slice(&data);
                Self::Many(all)
            }
            Self::Many(mut all) => {
                all.extend_from_slice(&data);
                Self::Many(all)
            }
        };
    }

    fn into_bytes(self) -> Bytes {
        match self {
            Self::Nothing => Bytes::new(),
            Self::One(b) => b,
            Self::Many(v) => Bytes::from(v),
        }
    }
}

/// A streamed answer not yet passed on: the upstream's body and the settlement that
/// follows it.
pub(crate) struct StreamCall {
    body: UpstreamBody,
    idle: Duration,
    limit: usize,
    settlement: Settlement,
}

impl std::fmt::Debug for StreamCall {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StreamCall").finish_non_exhaustive()
    }
}

/// Settles a streamed call exactly once — at the end of the stream, or when dropped — and
/// writes its audit record and its response detections.
struct Settlement {
    gw: Arc<Gateway>,
    info: CallInfo,
    id: Identity,
    audit: Option<AuditDue>,
    status: StatusCode,
    meter: StreamMeter,
    scrubber: Option<TextScrubber>,
    redactor: Option<Redactor>,
    outcome: Outcome,
}

impl Settlement {
    /// Settles the call, once: its usage record and limits, its audit record, and the
    /// secrets its redaction found. Returns what is left to run (await) where it ended;
    /// nothing the second time.
    fn finish(&mut self, outcome: Outcome) -> Option<Closing> {
        let audit = self.audit.take()?;
        let usage = self.meter.usage();
        let chars = self.meter.output_chars();
        let (answer, limits) = settle(
            &self.gw,
            &self.id,
            &mut self.info,
            self.status,
            usage,
            chars,
            outcome,
        );
        let findings = match (&self.redactor, &self.scrubber) {
            (Some(r), Some(s)) if !s.findings().is_empty() => {
                Some((r.clone(), s.findings().to_vec()))
            }
            _ => None,
        };
        Some(Closing {
            gw: self.gw.clone(),
            id: self.id.clone(),
            audit,
            answer,
            limits,
            findings,
        })
    }
}

impl Drop for Settlement {
    fn drop(&mut self) {
        // The client went away: no one awaits this, so the settlement runs on its own.
        let outcome = self.outcome;
        if let Some(closing) = self.finish(outcome)
            && let Ok(runtime) = tokio::runtime::Handle::try_current()
        {
            runtime.spawn(closing.run());
        }
    }
}

/// What is left to do when a streamed call has ended.
#[must_use]
struct Closing {
    gw: Arc<Gateway>,
    id: Identity,
    audit: AuditDue,
    answer: Answer,
    limits: PendingLimits,
    findings: Option<(Redactor, Vec<writ_detect::Finding>)>,
}

impl Closing {
    async fn run(self) {
        // The settlement is only queued (`limits/settling.rs`), so nothing here can be cut
        // off between it and the record.
        self.limits.run();
        self.audit
            .write(&self.id, Ending::Answered(&self.answer))
            .await;
        if let Some((redactor, findings)) = self.findings {
            redactor.report(&self.gw, &self.id, &findings).await;
        }
    }
}

impl StreamCall {
    /// The body passed to the client: the upstream's events as the meter reads them, each
    /// event's text through `scrubber` (the redact phase's filter), settled when it ends.
    ///
    /// Every event is parsed and re-written from its scanned, decoded text (Bedrock's
    /// frames re-encoded with their CRCs), so no byte reaches the client unscanned and the
    /// raw-byte redactor is not needed: see `writ_providers::stream_text`.
    pub(crate) fn into_body(self, redactor: Redactor, scrubber: TextScrubber) -> Body {
        let StreamCall {
            body,
            idle,
            limit,
            mut settlement,
        } = self;
        settlement.redactor = Some(redactor);
        settlement.scrubber = Some(scrubber);
        let state = (body, settlement, 0usize, false);
        let stream = futures_util::stream::unfold(
            state,
            move |(mut body, mut guard, mut seen, done)| async move {
                if done {
                    return None;
                }
                async fn cut(guard: &mut Settlement, why: &'static str) -> std::io::Error {
                    guard.outcome = Outcome::UpstreamCut;
                    if let Some(closing) = guard.finish(Outcome::UpstreamCut) {
                        closing.run().await;
                    }
                    std::io::Error::other(why)
                }
                match tokio::time::timeout(idle, body.frame()).await {
                    Err(_) => {
                        let e = cut(&mut guard, "upstream stalled").await;
                        Some((Err(e), (body, guard, seen, true)))
                    }
                    Ok(None) => {
                        let out = match guard.scrubber.as_mut() {
                            Some(scrubber) => guard.meter.finish_filtered(scrubber),
                            None => Vec::new(),
                        };
                        guard.outcome = Outcome::Completed;
                        if let Some(closing) = guard.finish(Outcome::Completed) {
                            closing.run().await;
                        }
                        Some((Ok(Bytes::from(out)), (body, guard, seen, true)))
                    }
                    Ok(Some(Err(_))) => {
                        let e = cut(&mut guard, "upstream stream failed").await;
                        Some((Err(e), (body, guard, seen, true)))
                    }
                    Ok(Some(Ok(frame))) => {
                        let Ok(data) = frame.into_data() else {
                            return Some((Ok(Bytes::new()), (body, guard, seen, false)));
                        };
                        seen += data.len();
                        if seen > limit {
                            let e = cut(&mut guard, "upstream response too large").await;
                            return Some((Err(e), (body, guard, seen, true)));
                        }
                        // Secrets are redacted on the way; a few bytes of a channel's text
                        // may wait for its next event so one split across events is still
                        // found.
                        let out = match guard.scrubber.as_mut() {
                            Some(scrubber) => {
                                Bytes::from(guard.meter.feed_filtered(&data, scrubber))
                            }
                            None => data,
                        };
                        if guard.meter.is_corrupt() {
                            let e = cut(&mut guard, "upstream stream could not be scanned").await;
                            return Some((Err(e), (body, guard, seen, true)));
                        }
                        Some((Ok(out), (body, guard, seen, false)))
                    }
                }
            },
        );
        Body::from_stream(stream)
    }
}

/// A reservation still to settle with what a call used.
#[must_use]
pub(crate) struct PendingLimits(Option<(Held, Amounts)>);

impl PendingLimits {
    /// Settles it (with the Redis limiter, queued: see `limits/settling.rs`).
    pub(crate) fn run(self) {
        if let Some((held, actual)) = self.0 {
            held.settle(actual);
        }
    }
}

/// Measures a call: reported usage, or an estimate flagged as one, and its cost; pushes
/// its usage record. Returns its [`Answer`] (for the audit record) and the settlement of
/// its limits (what it used, a request refunded when the upstream failed).
fn settle(
    gw: &Arc<Gateway>,
    id: &Identity,
    info: &mut CallInfo,
    status: StatusCode,
    usage: Option<Usage>,
    output_chars: u64,
    outcome: Outcome,
) -> (Answer, PendingLimits) {
    let (usage, estimated) = match usage {
        // A stream that ended early (cut, or its client gone) may hold only what the
        // upstream reported as it began (Anthropic's `message_start`: one output token):
        // the text that did come is metered at least, as an estimate.
        Some(mut u)
            if outcome != Outcome::Completed && estimate_tokens(output_chars) > u.output_tokens =>
        {
            u.output_tokens = estimate_tokens(output_chars);
            (u, true)
        }
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
    let model = id.model.as_deref();
    let cost_usd_micros = model.and_then(|m| gw.pricing.cost_usd_micros(m, &usage));
    gw.usage.push(UsageRecord {
        writ: id.pseudonyms(gw).0.clone().unwrap_or_default(),
        tenant: id.tenant.clone().unwrap_or_default(),
        agent: id.agent.clone().unwrap_or_default(),
        upstream: id.upstream.clone().unwrap_or_default(),
        model: id.model.clone(),
        status: status.as_u16(),
        usage,
        estimated,
        cost_usd_micros,
        outcome,
    });
    let actual = Amounts {
        requests: u64::from(!status.is_server_error()),
        input_tokens: usage.input_tokens,
        output_tokens: usage.output_tokens,
        cost_usd_micros: cost_usd_micros.unwrap_or(0),
        compute_ms: u64::try_from(info.sent.elapsed().as_millis()).unwrap_or(u64::MAX),
    };
    let answer = Answer {
        // What the client was answered: an upstream's 5xx, or its refusal of the
        // gateway's credential, reached it as a 502.
        status: if status.is_server_error() || info.dialect.credential_refused(status.as_u16()) {
            502
        } else {
            status.as_u16()
        },
        usage,
        estimated,
        cost_usd_micros,
        outcome,
        upstream: Some(info.sent.elapsed()),
    };
    let limits = PendingLimits(info.held.take().map(|held| (held, actual)));
    (answer, limits)
}

#[cfg(test)]
mod tests;
