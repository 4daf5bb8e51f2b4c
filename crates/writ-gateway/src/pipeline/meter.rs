//! Meter: read the upstream's response, record what the call consumed and cost, and hand
//! the client what the upstream sent.
//!
//! Event streams pass through chunk by chunk while a [`StreamMeter`] reads usage on the
//! way; the call is settled when the stream ends, when the upstream stops, stalls or
//! sends too much, or when the client goes away (the guard settles on drop). Other bodies
//! are read whole (they are small and must be checked): a success that is not what the
//! API promises becomes a 502. Upstream 5xx become 502. Secrets are scrubbed from
//! everything passed back, headers included (see `scrub.rs`); a stream's text is scanned
//! decoded and per channel across its events.

mod scrub;
#[cfg(test)]
mod tests;

use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::body::{Body, Bytes};
use axum::response::Response;
use http::{HeaderValue, StatusCode, header};
use http_body_util::BodyExt;
use hyper::body::Incoming;
use writ_limits::Amounts;
use writ_providers::{BodyUsage, Dialect, StreamMeter, Usage, estimate_tokens, is_event_stream};

use crate::audit::usage_log::{Outcome, UsageRecord};
use crate::detect::detections::{Action, Detection, Detector, Mode};
use crate::error::GatewayError;
use crate::gateway::Gateway;
use crate::limits::Held;
use crate::upstream::client::Upstream;

/// Who made the call and what it asked for: everything a usage record needs.
#[derive(Debug)]
pub(crate) struct CallInfo {
    pub(crate) token_id: String,
    pub(crate) tenant: String,
    /// The acting agent (the delegate of a delegated writ).
    pub(crate) agent: String,
    /// For a delegated writ, the agents from the issuing one to the actor.
    pub(crate) delegation: Option<Vec<String>>,
    pub(crate) upstream: String,
    pub(crate) model: Option<String>,
    /// The route's dialect: how usage is read and which statuses refuse the credential.
    pub(crate) dialect: Dialect,
    /// Bytes of the request body, for an input estimate when no usage is reported.
    pub(crate) request_bytes: usize,
    /// The gateway added `include_usage`; the client must not see the extra chunk.
    pub(crate) drop_usage_chunk: bool,
    /// The limits reserved for this call, settled when it ends.
    pub(crate) held: Option<Held>,
    /// Strict audit: the `seq` of the call's committed decision, named by its outcome.
    pub(crate) decision: Option<u64>,
    /// Set when the outcome is recorded (see `RequestCtx::outcome_owed`).
    pub(crate) outcome_recorded: Arc<std::sync::atomic::AtomicBool>,
    /// When the request was sent upstream, for the `compute` dimension.
    pub(crate) sent: Instant,
    /// When the gateway received the request, for the audit record's latency.
    pub(crate) started: Instant,
    /// The operation, for the audit record.
    pub(crate) operation: &'static str,
    /// The client's address, for the audit record (as a pseudonym).
    pub(crate) client: Option<std::net::IpAddr>,
    /// What the `response_secret` detector does for this tenant.
    pub(crate) response_mode: Mode,
}

/// The scanner a response is redacted with in `mode`: with `off` only the gateway's own
/// credentials and writs are looked for, since nothing else would be redacted or recorded.
fn response_scanner(gw: &Gateway, mode: Mode) -> &Arc<writ_detect::Scanner> {
    match mode {
        Mode::Off => &gw.own_secrets,
        Mode::Block | Mode::Monitor => &gw.scanner,
    }
}

/// Which findings a response gets redacted in `mode`: all of them when blocking,
/// otherwise only the gateway's own credentials and writs.
fn redaction_policy(mode: Mode) -> fn(writ_detect::ScanRule) -> bool {
    match mode {
        Mode::Block => |_| true,
        Mode::Monitor | Mode::Off => writ_detect::ScanRule::always_redacted,
    }
}

pub(crate) async fn respond(
    gw: Arc<Gateway>,
    upstream: &Upstream,
    mut info: CallInfo,
    response: http::Response<Incoming>,
) -> Result<Response, GatewayError> {
    let (mut parts, body) = response.into_parts();
    if parts.status.is_server_error() {
        settle(&gw, &mut info, parts.status, None, 0, Outcome::Completed)
            .run()
            .await;
        return Err(GatewayError::UpstreamStatus {
            upstream: upstream.name.clone(),
            status: parts.status.as_u16(),
        });
    }
    // The upstream refused the credential the gateway injected. Its body is not passed
    // on (it may echo the key), and the agent learns it was not its writ.
    if info.dialect.credential_refused(parts.status.as_u16()) {
        settle(&gw, &mut info, parts.status, None, 0, Outcome::Completed)
            .run()
            .await;
        return Err(GatewayError::UpstreamCredentialRefused {
            upstream: upstream.name.clone(),
            status: parts.status.as_u16(),
        });
    }
    let header_findings = scrub::scrub_headers(
        response_scanner(&gw, info.response_mode),
        redaction_policy(info.response_mode),
        &mut parts.headers,
    );
    let is_stream = parts
        .headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(is_event_stream);
    if is_stream {
        // The body changes length when the usage chunk is dropped.
        parts.headers.remove(header::CONTENT_LENGTH);
        let guard = Settlement {
            gw,
            info,
            status: parts.status,
            meter: None,
            scrubber: None,
            outcome: Outcome::ClientGone,
            settled: false,
        };
        let body = metered_stream(
            body,
            guard,
            header_findings,
            upstream.read_timeout,
            upstream.max_response_bytes,
        );
        return Ok(Response::from_parts(parts, body));
    }
    let bytes = match read_whole(body, upstream.read_timeout, upstream.max_response_bytes).await {
        Ok(bytes) => bytes,
        Err(e) => {
            settle(&gw, &mut info, parts.status, None, 0, Outcome::UpstreamCut)
                .run()
                .await;
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
    if (must_be_json || claims_json)
        && !parsed_whole
        && serde_json::from_slice::<serde::de::IgnoredAny>(&bytes).is_err()
    {
        settle(&gw, &mut info, parts.status, None, 0, Outcome::UpstreamCut)
            .run()
            .await;
        return Err(GatewayError::UpstreamInvalid);
    }
    // The upstream has acted, its decision audited before: the response is released even
    // if the outcome record cannot be written yet (it is kept and retried).
    settle(&gw, &mut info, parts.status, usage, 0, Outcome::Completed)
        .run()
        .await;
    let (scanner, policy) = (
        response_scanner(&gw, info.response_mode),
        redaction_policy(info.response_mode),
    );
    // A JSON body with escapes is scanned decoded, as its client reads it.
    let (bytes, mut findings) = match scrub::scrub_json(scanner, policy, &bytes) {
        scrub::JsonScrub::Rewritten(rewritten, findings) => (Bytes::from(rewritten), findings),
        scrub::JsonScrub::Unchanged(findings) => (bytes, findings),
        scrub::JsonScrub::Ambiguous => return Err(GatewayError::UpstreamInvalid),
        scrub::JsonScrub::Raw => match scanner.redact_where(&bytes, policy) {
            (std::borrow::Cow::Owned(changed), findings) => (Bytes::from(changed), findings),
            (std::borrow::Cow::Borrowed(_), findings) => (bytes, findings),
        },
    };
    findings.extend(header_findings);
    if !findings.is_empty() {
        record_detection(&gw, &info, &findings).await;
    }
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

/// Reports the secrets found in a response: those replaced as `redacted`, the others
/// (let through in `monitor` mode) as `monitored`; nothing for them in `off` mode.
async fn record_detection(gw: &Arc<Gateway>, info: &CallInfo, findings: &[writ_detect::Finding]) {
    let redact = redaction_policy(info.response_mode);
    for (action, picked) in [(Action::Redacted, true), (Action::Monitored, false)] {
        if action == Action::Monitored && info.response_mode == Mode::Off {
            continue;
        }
        let mut rules: Vec<String> = findings
            .iter()
            .filter(|f| redact(f.rule) == picked)
            .map(|f| f.rule.id().to_string())
            .collect();
        if rules.is_empty() {
            continue;
        }
        let count = rules.len();
        rules.sort_unstable();
        rules.dedup();
        let mut detection = Detection::new(Detector::ResponseSecret, action, "response");
        detection.rules = rules;
        detection.count = count;
        detection.tenant = Some(info.tenant.clone());
        detection.agent = Some(info.agent.clone());
        detection.token_id = Some(info.token_id.clone());
        detection.client = info.client;
        detection.upstream = Some(info.upstream.clone());
        detection.model.clone_from(&info.model);
        detection.operation = Some(info.operation.to_string());
        gw.detected(detection, true).await;
    }
}

/// Settles a streamed call exactly once: at the end of the stream, or when dropped.
struct Settlement {
    gw: Arc<Gateway>,
    info: CallInfo,
    status: StatusCode,
    meter: Option<StreamMeter>,
    scrubber: Option<scrub::TextScrubber>,
    outcome: Outcome,
    settled: bool,
}

impl Settlement {
    /// Records the call once; returns the limit settlement still to run.
    fn finish(&mut self, outcome: Outcome) -> LimitSettlement {
        if self.settled {
            return LimitSettlement(None, None);
        }
        self.settled = true;
        let (usage, chars) = self
            .meter
            .as_ref()
            .map_or((None, 0), |m| (m.usage(), m.output_chars()));
        settle(&self.gw, &mut self.info, self.status, usage, chars, outcome)
    }
}

impl Drop for Settlement {
    fn drop(&mut self) {
        // The client went away: no one awaits this, so the settlement runs on its own.
        let outcome = self.outcome;
        let pending = self.finish(outcome);
        if (pending.0.is_some() || pending.1.is_some())
            && let Ok(runtime) = tokio::runtime::Handle::try_current()
        {
            runtime.spawn(pending.run());
        }
    }
}

fn metered_stream(
    body: Incoming,
    mut guard: Settlement,
    header_findings: Vec<writ_detect::Finding>,
    idle: Duration,
    limit: usize,
) -> Body {
    guard.meter = Some(StreamMeter::new(
        guard.info.dialect,
        guard.info.drop_usage_chunk,
    ));
    // Every event is parsed and re-written from its scanned, decoded text (Bedrock's
    // frames re-encoded with their CRCs), so no byte reaches the client unscanned and the
    // raw-byte redactor is not needed: see `writ_providers::stream_text`.
    guard.scrubber = Some(scrub::TextScrubber::new(
        response_scanner(&guard.gw, guard.info.response_mode).clone(),
        redaction_policy(guard.info.response_mode),
        header_findings,
    ));
    let state = (body, guard, 0usize, false);
    let stream = futures_util::stream::unfold(
        state,
        move |(mut body, mut guard, mut seen, done)| async move {
            if done {
                return None;
            }
            async fn cut(
                guard: &mut Settlement,
                why: &'static str,
            ) -> Result<Bytes, std::io::Error> {
                guard.outcome = Outcome::UpstreamCut;
                guard.finish(Outcome::UpstreamCut).run().await;
                Err(std::io::Error::other(why))
            }
            match tokio::time::timeout(idle, body.frame()).await {
                Err(_) => {
                    let e = cut(&mut guard, "upstream stalled").await;
                    Some((e, (body, guard, seen, true)))
                }
                Ok(None) => {
                    let out = match (guard.meter.as_mut(), guard.scrubber.as_mut()) {
                        (Some(meter), Some(scrubber)) => meter.finish_filtered(scrubber),
                        _ => Vec::new(),
                    };
                    guard.outcome = Outcome::Completed;
                    guard.finish(Outcome::Completed).run().await;
                    let findings = guard
                        .scrubber
                        .as_ref()
                        .map(|s| s.findings().to_vec())
                        .unwrap_or_default();
                    if !findings.is_empty() {
                        record_detection(&guard.gw, &guard.info, &findings).await;
                    }
                    Some((Ok(Bytes::from(out)), (body, guard, seen, true)))
                }
                Ok(Some(Err(_))) => {
                    let e = cut(&mut guard, "upstream stream failed").await;
                    Some((e, (body, guard, seen, true)))
                }
                Ok(Some(Ok(frame))) => {
                    let Ok(data) = frame.into_data() else {
                        return Some((Ok(Bytes::new()), (body, guard, seen, false)));
                    };
                    seen += data.len();
                    if seen > limit {
                        let e = cut(&mut guard, "upstream response too large").await;
                        return Some((e, (body, guard, seen, true)));
                    }
                    // Secrets are redacted on the way; a few bytes of a channel's text may
                    // wait for its next event so one split across events is still found.
                    let out = match (guard.meter.as_mut(), guard.scrubber.as_mut()) {
                        (Some(meter), Some(scrubber)) => {
                            Bytes::from(meter.feed_filtered(&data, scrubber))
                        }
                        _ => data,
                    };
                    if guard.meter.as_ref().is_some_and(StreamMeter::is_corrupt) {
                        let e = cut(&mut guard, "upstream stream could not be scanned").await;
                        return Some((e, (body, guard, seen, true)));
                    }
                    Some((Ok(out), (body, guard, seen, false)))
                }
            }
        },
    );
    Body::from_stream(stream)
}

/// What is left to do when a call has ended, to run (await) where it ended: settle its
/// limits and make its audit record durable.
#[must_use]
pub(crate) struct LimitSettlement(
    Option<(Held, Amounts, std::time::SystemTime)>,
    Option<(Arc<Gateway>, writ_audit::AuditRecord)>,
);

impl LimitSettlement {
    /// Runs it. The audit record is an outcome (strict) or best-effort: not waited for.
    pub(crate) async fn run(self) {
        // The record first: it is only queued, and a request dropped while its limits
        // settle (a round trip to Redis) must still leave its outcome.
        if let Some((gw, record)) = self.1 {
            gw.audit.record(record).await;
        }
        if let Some((held, actual, now)) = self.0 {
            held.settle(actual, now).await;
        }
    }
}

/// Records a call: reported usage, or an estimate flagged as one, and its cost. Returns
/// the settlement of its limits (what it used, a request refunded when the upstream
/// failed) and its audit record.
fn settle(
    gw: &Arc<Gateway>,
    info: &mut CallInfo,
    status: StatusCode,
    usage: Option<Usage>,
    output_chars: u64,
    outcome: Outcome,
) -> LimitSettlement {
    info.outcome_recorded
        .store(true, std::sync::atomic::Ordering::Release);
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
        writ: gw.audit.pseudonym(&info.token_id),
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
    let actual = Amounts {
        requests: u64::from(!status.is_server_error()),
        input_tokens: usage.input_tokens,
        output_tokens: usage.output_tokens,
        cost_usd_micros: cost_usd_micros.unwrap_or(0),
        compute_ms: u64::try_from(info.sent.elapsed().as_millis()).unwrap_or(u64::MAX),
    };
    let mut record = crate::audit::end_record(
        info.decision,
        writ_audit::Kind::RequestAllowed,
        gw.clock.now(),
    );
    record.tenant = Some(info.tenant.clone());
    record.agent = Some(info.agent.clone());
    record.writ = Some(gw.audit.pseudonym(&info.token_id));
    record.client = info.client.and_then(|ip| gw.audit.client_pseudonym(ip));
    record.upstream = Some(info.upstream.clone());
    record.model.clone_from(&info.model);
    record.operation = Some(info.operation.to_string());
    // What the client was answered: an upstream's 5xx, or its refusal of the gateway's
    // credential, reached it as a 502.
    record.status = Some(
        if status.is_server_error() || info.dialect.credential_refused(status.as_u16()) {
            502
        } else {
            status.as_u16()
        },
    );
    record.usage = Some(writ_audit::record::Usage {
        input_tokens: usage.input_tokens,
        output_tokens: usage.output_tokens,
        cached_tokens: (usage.cached_input_tokens > 0).then_some(usage.cached_input_tokens),
    });
    record.cost_usd_micros = cost_usd_micros;
    record.latency_ms = Some(u64::try_from(info.started.elapsed().as_millis()).unwrap_or(u64::MAX));
    if outcome != Outcome::Completed || estimated {
        let mut detail = serde_json::Map::new();
        detail.insert("outcome".into(), serde_json::json!(format!("{outcome:?}")));
        detail.insert("usage_estimated".into(), serde_json::json!(estimated));
        record.detail = Some(detail);
    }
    if let Some(chain) = &info.delegation {
        record
            .detail
            .get_or_insert_with(Default::default)
            .insert("delegation".into(), serde_json::json!(chain));
    }
    LimitSettlement(
        info.held.take().map(|held| (held, actual, gw.clock.now())),
        Some((gw.clone(), record)),
    )
}
