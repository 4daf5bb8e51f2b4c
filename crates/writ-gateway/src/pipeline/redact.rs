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
            Mode::Off => gw.own_secrets(),
            Mode::Block | Mode::Monitor => gw.scanner(),
        };
        Self { scanner, mode }
    }

    /// Which findings are replaced: all of them when blocking, otherwise only the
    /// gateway's own credentials and writs.
    fn policy(&self) -> fn(writ_detect::ScanRule) -> bool {
        match self.mode {
            Mode::Block => |_| true,
            Mode::Monitor | Mode::Off => writ_detect::ScanRule::always_redacted,
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pipeline::fixture::Fixture;

    /// The `openai` upstream's credential, which no built-in rule matches: only the
    /// gateway's own-credential rule finds it.
    const KEY: &str = "upstream-credential-0123456789";
    const AWS: &str = "AKIAIOSFODNN7EXAMPLE";

    /// A gateway with an `openai` upstream holding [`KEY`], and `detection` after it.
    async fn gateway(detection: &str) -> Fixture {
        Fixture::start(&format!(
            "[upstreams.openai]\nkind = \"openai\"\napi_key = \"{KEY}\"\n{detection}"
        ))
        .await
    }

    /// A gateway whose `response_secret` mode is `mode`.
    async fn in_mode(mode: &str) -> Fixture {
        gateway(&format!(
            "[detection.modes]\nresponse_secret = \"{mode}\"\n"
        ))
        .await
    }

    /// `text` (a body's or a header's) with both secrets in it.
    fn leaky() -> String {
        format!("the key is {KEY} and also {AWS}.")
    }

    fn text(bytes: &Bytes) -> &str {
        std::str::from_utf8(bytes).unwrap()
    }

    /// A request's identity, for reports.
    fn identity() -> Identity {
        Identity {
            tenant: Some("default".into()),
            agent: Some("demo".into()),
            operation: "chat",
            ..Identity::default()
        }
    }

    #[tokio::test]
    async fn block_redacts_every_secret_and_reports_them_redacted() {
        let f = in_mode("block").await;
        let redactor = Redactor::for_tenant(&f.gw, Some("default"));
        let (body, findings) = redactor.body(Bytes::from(leaky())).unwrap();
        assert!(!text(&body).contains(KEY), "own credential redacted");
        assert!(!text(&body).contains(AWS), "other secret redacted");
        assert!(text(&body).starts_with("the key is "));
        assert_eq!(findings.len(), 2);
        redactor.report(&f.gw, &identity(), &findings).await;
        let total = |a| f.gw.detections.total(Detector::ResponseSecret, a);
        assert_eq!(total(Action::Redacted), 1, "one detection of both rules");
        assert_eq!(total(Action::Monitored), 0);
    }

    #[tokio::test]
    async fn monitor_redacts_only_own_credentials_and_reports_the_rest_monitored() {
        let f = in_mode("monitor").await;
        let redactor = Redactor::for_tenant(&f.gw, Some("default"));
        let (body, findings) = redactor.body(Bytes::from(leaky())).unwrap();
        assert!(!text(&body).contains(KEY), "own credential redacted");
        assert!(text(&body).contains(AWS), "other secret let through");
        assert_eq!(findings.len(), 2);
        redactor.report(&f.gw, &identity(), &findings).await;
        let total = |a| f.gw.detections.total(Detector::ResponseSecret, a);
        assert_eq!(total(Action::Redacted), 1);
        assert_eq!(total(Action::Monitored), 1);
    }

    #[tokio::test]
    async fn off_redacts_only_own_credentials_and_reports_nothing_else() {
        let f = in_mode("off").await;
        let redactor = Redactor::for_tenant(&f.gw, Some("default"));
        let (body, findings) = redactor.body(Bytes::from(leaky())).unwrap();
        assert!(!text(&body).contains(KEY), "own credential redacted");
        assert!(
            text(&body).contains(AWS),
            "other secret not even looked for"
        );
        // Only the own-credential scanner ran: the AWS key is not a finding.
        assert_eq!(findings.len(), 1);
        assert!(findings[0].rule.always_redacted());
        redactor.report(&f.gw, &identity(), &findings).await;
        let total = |a| f.gw.detections.total(Detector::ResponseSecret, a);
        assert_eq!(total(Action::Redacted), 1);
        assert_eq!(total(Action::Monitored), 0);
    }

    #[tokio::test]
    async fn the_tenants_mode_overrides_the_default() {
        let f = gateway("[detection.tenants.acme]\nresponse_secret = \"monitor\"\n").await;
        let body = || Bytes::from(leaky());
        let (acme, _) = Redactor::for_tenant(&f.gw, Some("acme"))
            .body(body())
            .unwrap();
        assert!(text(&acme).contains(AWS));
        let (other, _) = Redactor::for_tenant(&f.gw, Some("other"))
            .body(body())
            .unwrap();
        assert!(!text(&other).contains(AWS));
        let (unknown, _) = Redactor::for_tenant(&f.gw, None).body(body()).unwrap();
        assert!(!text(&unknown).contains(AWS));
    }

    #[tokio::test]
    async fn headers_are_redacted_in_place() {
        for (mode, aws_kept) in [("block", false), ("monitor", true), ("off", true)] {
            let f = in_mode(mode).await;
            let redactor = Redactor::for_tenant(&f.gw, Some("default"));
            let mut headers = HeaderMap::new();
            headers.insert("x-echo", HeaderValue::from_str(&leaky()).unwrap());
            headers.insert("x-plain", HeaderValue::from_static("nothing to see"));
            let findings = redactor.headers(&mut headers);
            let echo = headers["x-echo"].to_str().unwrap();
            assert!(!echo.contains(KEY), "{mode}: own credential redacted");
            assert_eq!(echo.contains(AWS), aws_kept, "{mode}");
            assert_eq!(headers["x-plain"], "nothing to see");
            assert_eq!(findings.len(), if mode == "off" { 1 } else { 2 }, "{mode}");
        }
    }

    /// The scrubbed copy is built only from the first header that changes: the ones before
    /// it, repeated names included, must come through whole and in order, as must the ones
    /// after; a header named by a secret goes.
    #[tokio::test]
    async fn headers_around_a_redacted_one_are_kept_in_order() {
        let f = in_mode("block").await;
        let redactor = Redactor::for_tenant(&f.gw, Some("default"));
        let mut headers = HeaderMap::new();
        headers.append("x-before", HeaderValue::from_static("first value here"));
        headers.append("x-before", HeaderValue::from_static("second value here"));
        headers.append("x-echo", HeaderValue::from_str(&leaky()).unwrap());
        headers.append(KEY, HeaderValue::from_static("named by the key"));
        headers.append("x-after", HeaderValue::from_static("after the secret"));
        let findings = redactor.headers(&mut headers);
        let before: Vec<_> = headers.get_all("x-before").iter().collect();
        assert_eq!(before, ["first value here", "second value here"]);
        let echo = headers["x-echo"].to_str().unwrap();
        assert!(!echo.contains(KEY) && !echo.contains(AWS));
        assert!(
            headers.get(KEY).is_none(),
            "a header named by a secret goes"
        );
        assert_eq!(headers["x-after"], "after the secret");
        assert_eq!(headers.len(), 4);
        assert_eq!(findings.len(), 3);
        // Nothing to redact: the map is left as it was.
        let mut clean = HeaderMap::new();
        clean.append(
            "x-plain",
            HeaderValue::from_static("nothing to see in here"),
        );
        clean.append("x-plain", HeaderValue::from_static("nor in here at all"));
        let before = clean.clone();
        assert!(redactor.headers(&mut clean).is_empty());
        assert_eq!(clean, before);
    }

    #[tokio::test]
    async fn a_json_escaped_secret_is_redacted_as_its_client_reads_it() {
        let f = in_mode("block").await;
        let redactor = Redactor::for_tenant(&f.gw, Some("default"));
        let body = Bytes::from_static(br#"{"content":"key: AKIA\u0049OSFODNN7EXAMPLE"}"#);
        let (body, findings) = redactor.body(body).unwrap();
        assert_eq!(findings.len(), 1);
        let value: serde_json::Value = serde_json::from_slice(&body).unwrap();
        let content = value["content"].as_str().unwrap();
        assert!(content.starts_with("key: "));
        assert!(!content.contains(AWS));
    }

    #[tokio::test]
    async fn a_clean_body_is_passed_on_unchanged() {
        let f = in_mode("block").await;
        let redactor = Redactor::for_tenant(&f.gw, Some("default"));
        let body = Bytes::from_static(br#"{"content": "hello"}"#);
        let (out, findings) = redactor.body(body.clone()).unwrap();
        assert_eq!(out, body);
        assert!(findings.is_empty());
    }

    #[tokio::test]
    async fn ambiguous_json_hiding_a_secret_to_redact_is_refused() {
        // Duplicate keys, and an escaped secret the mode redacts: a client may read
        // either copy, so the body cannot be rewritten safely.
        for (mode, secret) in [
            ("block", r"AKIA\u0049OSFODNN7EXAMPLE"),
            ("monitor", r"upstream\u002dcredential-0123456789"),
            ("off", r"upstream\u002dcredential-0123456789"),
        ] {
            let f = in_mode(mode).await;
            let redactor = Redactor::for_tenant(&f.gw, Some("default"));
            let body = Bytes::from(format!(r#"{{"content":"hi","content":"{secret}"}}"#));
            assert!(
                matches!(redactor.body(body), Err(GatewayError::UpstreamInvalid)),
                "{mode}"
            );
        }
    }

    #[tokio::test]
    async fn duplicate_keys_with_nothing_to_redact_pass() {
        let f = in_mode("block").await;
        let redactor = Redactor::for_tenant(&f.gw, Some("default"));
        let body = Bytes::from_static(br#"{"content":"a\nb","content":"c"}"#);
        let (out, findings) = redactor.body(body.clone()).unwrap();
        assert_eq!(out, body);
        assert!(findings.is_empty());
    }

    #[tokio::test]
    async fn the_phase_redacts_a_whole_answer_reports_it_and_fixes_its_length() {
        let f = in_mode("block").await;
        let mut ctx = RequestCtx::new(&f.gw, writ_providers::ROUTES[0], None);
        ctx.id = identity();
        let (mut parts, _) = http::Response::new(()).into_parts();
        parts
            .headers
            .insert(header::CONTENT_LENGTH, HeaderValue::from(leaky().len()));
        parts
            .headers
            .insert("x-echo", HeaderValue::from_static(AWS));
        let answer = Unredacted::Whole(parts, Bytes::from(leaky()));
        let response = response(&f.gw, &ctx, answer).await.unwrap();
        let (parts, body) = response.into_parts();
        let bytes = axum::body::to_bytes(body, usize::MAX).await.unwrap();
        assert!(!text(&bytes).contains(KEY) && !text(&bytes).contains(AWS));
        assert!(!parts.headers["x-echo"].to_str().unwrap().contains(AWS));
        assert_eq!(
            parts.headers[header::CONTENT_LENGTH],
            bytes.len().to_string()
        );
        // Body and header findings, one detection.
        let total = |a| f.gw.detections.total(Detector::ResponseSecret, a);
        assert_eq!(total(Action::Redacted), 1);
    }
}
