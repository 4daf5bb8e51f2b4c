//! Redact: secrets are taken out of what an upstream sends back before the client sees
//! it — headers, a whole body, or a stream chunk by chunk (a per-chunk body filter, like
//! pingora's `response_body_filter`, with a window carried across chunk boundaries) — and
//! what was found is reported as a `response_secret` detection.
//!
//! The gateway's own upstream credentials and writs are always redacted; other secrets
//! as the tenant's `response_secret` mode says (`block` redacts them, `monitor` reports
//! them, `off` neither).

mod scrub;

use std::borrow::Cow;
use std::sync::Arc;

use axum::body::{Body, Bytes};
use axum::response::Response;
use http::{HeaderMap, HeaderValue, header};
use writ_detect::{Finding, Scanner};

pub(crate) use self::scrub::TextScrubber;
use super::ctx::RequestCtx;
use super::identity::Identity;
use crate::detect::detections::{Action, Detector, Mode};
use crate::error::GatewayError;
use crate::gateway::Gateway;

/// An upstream's answer as the meter phase passes it on, not yet redacted.
pub(crate) enum Unredacted {
    /// A body read whole.
    Whole(http::response::Parts, Bytes),
    /// An event stream: given the redactor and the filter of its events' text, the body
    /// that applies them as the stream passes.
    Stream(http::response::Parts, StreamBody),
}

/// The body of a streamed answer, once given its redactor and text filter.
pub(crate) type StreamBody = Box<dyn FnOnce(Redactor, TextScrubber) -> Body + Send>;

impl std::fmt::Debug for Unredacted {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Unredacted::Whole(parts, bytes) => f
                .debug_struct("Whole")
                .field("status", &parts.status)
                .field("bytes", &bytes.len())
                .finish(),
            Unredacted::Stream(parts, _) => f
                .debug_struct("Stream")
                .field("status", &parts.status)
                .finish_non_exhaustive(),
        }
    }
}

/// The redact phase: the response passed to the client with secrets taken out of its
/// headers and body — whole, or a stream's events as they pass — and what was found in a
/// whole body reported now (a stream reports when it ends). Fails with `UpstreamInvalid`
/// on a JSON body that cannot be scanned safely.
pub(crate) async fn response(
    gw: &Gateway,
    ctx: &RequestCtx,
    answer: Unredacted,
) -> Result<Response, GatewayError> {
    let redactor = Redactor::for_tenant(gw, ctx.id.tenant.as_deref());
    match answer {
        Unredacted::Whole(mut parts, bytes) => {
            let header_findings = redactor.headers(&mut parts.headers);
            let (bytes, mut findings) = redactor.body(bytes)?;
            findings.extend(header_findings);
            if !findings.is_empty() {
                redactor.report(gw, &ctx.id, &findings).await;
            }
            parts
                .headers
                .insert(header::CONTENT_LENGTH, HeaderValue::from(bytes.len()));
            Ok(Response::from_parts(parts, Body::from(bytes)))
        }
        Unredacted::Stream(mut parts, body) => {
            let header_findings = redactor.headers(&mut parts.headers);
            let scrubber = redactor.stream(header_findings);
            Ok(Response::from_parts(parts, body(redactor, scrubber)))
        }
    }
}

/// How one response is redacted: the scanner and the findings it replaces, by the
/// tenant's `response_secret` mode.
#[derive(Clone)]
pub(crate) struct Redactor {
    scanner: Arc<Scanner>,
    mode: Mode,
}

impl std::fmt::Debug for Redactor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Redactor")
            .field("mode", &self.mode)
            .finish_non_exhaustive()
    }
}

impl Redactor {
    /// The redactor of a response to a request of `tenant`. With `off` only the gateway's
    /// own credentials and writs are looked for, since nothing else would be redacted or
    /// reported.
    pub(crate) fn for_tenant(gw: &Gateway, tenant: Option<&str>) -> Self {
        let mode = gw.detections.mode(Detector::ResponseSecret, tenant);
        let scanner = match mode {
            Mode::Off => gw.own_secrets.clone(),
            Mode::Block | Mode::Monitor => gw.scanner.clone(),
        };
        Self { scanner, mode }
    }

    /// Which findings are replaced: all of them when blocking, otherwise only the
    /// gateway's own credentials and writs.
    fn policy(&self) -> fn(writ_detect::Detector) -> bool {
        match self.mode {
            Mode::Block => |_| true,
            Mode::Monitor | Mode::Off => writ_detect::Detector::always_redacted,
        }
    }

    /// Redacts the response's headers in place; returns every finding.
    pub(crate) fn headers(&self, headers: &mut HeaderMap) -> Vec<Finding> {
        scrub::scrub_headers(&self.scanner, self.policy(), headers)
    }

    /// Redacts a whole body: a JSON body's strings decoded, as its client reads them,
    /// others as bytes. Fails with `UpstreamInvalid` on JSON that two readers could
    /// decode differently (duplicate keys, say), which cannot be scanned safely.
    pub(crate) fn body(&self, bytes: Bytes) -> Result<(Bytes, Vec<Finding>), GatewayError> {
        let policy = self.policy();
        Ok(match scrub::scrub_json(&self.scanner, policy, &bytes) {
            scrub::JsonScrub::Rewritten(rewritten, findings) => (Bytes::from(rewritten), findings),
            scrub::JsonScrub::Unchanged(findings) => (bytes, findings),
            scrub::JsonScrub::Ambiguous => return Err(GatewayError::UpstreamInvalid),
            scrub::JsonScrub::Raw => match self.scanner.redact_where(&bytes, policy) {
                (Cow::Owned(changed), findings) => (Bytes::from(changed), findings),
                (Cow::Borrowed(_), findings) => (bytes, findings),
            },
        })
    }

    /// The per-chunk filter of a stream's decoded text; `findings` are those already made
    /// in the same response (its headers).
    pub(crate) fn stream(&self, findings: Vec<Finding>) -> TextScrubber {
        TextScrubber::new(self.scanner.clone(), self.policy(), findings)
    }

    /// Reports the secrets found in a response of the request `id`: those replaced as
    /// `redacted`, the others (let through in `monitor` mode) as `monitored`; nothing for
    /// them in `off` mode.
    pub(crate) async fn report(&self, gw: &Gateway, id: &Identity, findings: &[Finding]) {
        let redact = self.policy();
        for (action, picked) in [(Action::Redacted, true), (Action::Monitored, false)] {
            if action == Action::Monitored && self.mode == Mode::Off {
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
            let mut detection = id.detection(Detector::ResponseSecret, action, "response");
            detection.rules = rules;
            detection.count = count;
            gw.detected(detection, true).await;
        }
    }
}
