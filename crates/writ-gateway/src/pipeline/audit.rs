//! Audit: the last phase, run exactly once for every request whatever its outcome —
//! answered, refused at any phase, failed upstream, or abandoned by its client — like
//! pingora's `logging` phase.
//!
//! The request's one record is owed from the moment it arrives: [`AuditDue`] is created
//! with the [`RequestCtx`](super::RequestCtx), consumed by [`AuditDue::write`], and, if
//! the request is dropped with the record still owed (its client went away), dropping it
//! writes a `client_closed_request` record. A streamed answer carries it in its body and
//! writes it when the stream ends. In strict mode the record is the outcome of the
//! decision committed before forwarding (see `decision.rs`).

use std::sync::Arc;
use std::time::{Duration, Instant};

use writ_audit::record::{Decision, LimitHit};
use writ_audit::{AuditRecord, Kind};
use writ_providers::Usage;

use super::identity::Identity;
use crate::audit::usage_log::Outcome;
use crate::detect::detections::Detection;
use crate::error::{Class, Fault, GatewayError};
use crate::gateway::Gateway;

/// What the upstream's answer amounted to, as the meter phase measured it.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Answer {
    /// The status the client was given for it (an upstream 5xx reaches it as 502).
    pub(crate) status: u16,
    /// Tokens reported by the upstream, or estimated (`estimated`).
    pub(crate) usage: Usage,
    /// `usage` is the gateway's estimate: the upstream reported none.
    pub(crate) estimated: bool,
    /// Cost by the pricing table; `None` for an unpriced model.
    pub(crate) cost_usd_micros: Option<u64>,
    /// How the call ended.
    pub(crate) outcome: Outcome,
    /// How long the upstream call took, from sending the request to the end of its
    /// answer (body or stream); `None` when not measured.
    pub(crate) upstream: Option<Duration>,
}

impl Answer {
    /// The answer of a call the meter could not measure: `status`, nothing used.
    pub(crate) fn unmeasured(status: http::StatusCode) -> Self {
        Self {
            status: status.as_u16(),
            usage: Usage::default(),
            estimated: false,
            cost_usd_micros: None,
            outcome: Outcome::Completed,
            upstream: None,
        }
    }
}

/// How a request ended, for its record.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Ending<'a> {
    /// The upstream's answer was passed on.
    Answered(&'a Answer),
    /// A phase refused the request, or the call failed; `answer` is what the upstream
    /// consumed when it had answered before the failure.
    Failed {
        error: &'a GatewayError,
        detection: Option<&'a Detection>,
        answer: Option<&'a Answer>,
    },
    /// The client went away before it was answered.
    ClientClosed,
}

impl Ending<'_> {
    /// The upstream call's time, when it was measured.
    fn upstream_time(&self) -> Option<Duration> {
        match self {
            Ending::Answered(answer)
            | Ending::Failed {
                answer: Some(answer),
                ..
            } => answer.upstream,
            _ => None,
        }
    }
}

/// The request's one audit record, owed until written.
pub(crate) struct AuditDue {
    gw: Arc<Gateway>,
    started: Instant,
    /// Strict audit: the `seq` of the committed `request_allowed` decision.
    decision: Option<u64>,
    /// The request was allowed to go upstream (decided).
    allowed: bool,
    /// The request's trace (`[traces]`), ended with the record; `None` when off.
    pub(super) trace: Option<Box<crate::traces::RequestTrace>>,
}

impl std::fmt::Debug for AuditDue {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AuditDue")
            .field("decision", &self.decision)
            .finish_non_exhaustive()
    }
}

impl AuditDue {
    /// The record owed by a request received at `started`.
    pub(crate) fn new(gw: Arc<Gateway>, started: Instant) -> Self {
        Self {
            gw,
            started,
            decision: None,
            allowed: false,
            trace: None,
        }
    }

    /// Notes that the request was allowed to go upstream and, in strict mode, the `seq`
    /// of its committed decision, whose outcome its record becomes.
    pub(crate) fn allowed(&mut self, decision: Option<u64>) {
        self.allowed = true;
        self.decision = decision;
    }

    /// Links the record to a decision that was kept for a later write but not committed:
    /// the request is refused, and its refusal is that decision's outcome.
    pub(crate) fn linked(&mut self, decision: u64) {
        self.decision = Some(decision);
    }

    /// The `seq` of the decision this record will be the outcome of.
    #[cfg(test)]
    pub(crate) fn decision(&self) -> Option<u64> {
        self.decision
    }

    /// Whether the request was allowed to go upstream.
    #[cfg(test)]
    pub(crate) fn is_allowed(&self) -> bool {
        self.allowed
    }

    /// Writes the record of a request from `id` that ended as `ending`. The record is
    /// queued (strict mode keeps and retries one the sink refuses), not waited for.
    pub(crate) async fn write(mut self, id: &Identity, ending: Ending<'_>) {
        let record = self.record(id, ending);
        self.gw
            .metrics
            .request(&record, self.overhead(ending), ending.upstream_time());
        // The trace's attributes are the record's; its audit span lasts until it is queued.
        let trace = self.trace.take().map(|t| t.ending(&record, self.allowed));
        self.gw.audit.record(record).await;
        if let Some(trace) = trace {
            trace.end();
        }
    }

    /// The gateway's own time on the request: all of it when nothing was sent upstream,
    /// less the upstream call's when that was measured; unknown otherwise (a call that
    /// failed before its answer).
    fn overhead(&self, ending: Ending<'_>) -> Option<Duration> {
        let total = self.started.elapsed();
        match ending.upstream_time() {
            Some(upstream) => Some(total.saturating_sub(upstream)),
            None if !self.allowed => Some(total),
            None => None,
        }
    }

    /// The record itself; see [`AuditDue::write`].
    fn record(&self, id: &Identity, ending: Ending<'_>) -> AuditRecord {
        let latency = u64::try_from(self.started.elapsed().as_millis()).unwrap_or(u64::MAX);
        let (kind, answer) = match ending {
            Ending::Answered(answer) => (Kind::RequestAllowed, Some(answer)),
            Ending::Failed { error, answer, .. } => match error.classify().fault {
                // Allowed, but the upstream failed.
                Fault::Upstream => (Kind::RequestAllowed, answer),
                Fault::Client | Fault::Internal => (Kind::RequestDenied, answer),
            },
            // Abandoned after it was let through, or before anything was decided.
            Ending::ClientClosed if self.allowed => (Kind::RequestAllowed, None),
            Ending::ClientClosed => (Kind::RequestDenied, None),
        };
        let mut record = id.audit_record(&self.gw, kind, self.decision);
        record.latency_ms = Some(latency);
        if let Some(answer) = answer {
            add_answer(&mut record, answer);
        }
        match ending {
            Ending::Answered(_) => {}
            Ending::Failed {
                error, detection, ..
            } => add_failure(&mut record, error, detection),
            Ending::ClientClosed => {
                // nginx's "client closed request": no response was sent.
                record.status = Some(499);
                record.decision = Some(Decision {
                    code: Some("client_closed_request".to_string()),
                    ..Default::default()
                });
            }
        }
        record
    }
}

/// Status, usage, cost and how the call ended, from the upstream's answer.
fn add_answer(record: &mut AuditRecord, answer: &Answer) {
    record.status = Some(answer.status);
    record.usage = Some(writ_audit::record::Usage {
        input_tokens: answer.usage.input_tokens,
        output_tokens: answer.usage.output_tokens,
        cached_tokens: (answer.usage.cached_input_tokens > 0)
            .then_some(answer.usage.cached_input_tokens),
    });
    record.cost_usd_micros = answer.cost_usd_micros;
    if answer.outcome != Outcome::Completed || answer.estimated {
        let detail = record.detail.get_or_insert_with(Default::default);
        detail.insert(
            "outcome".into(),
            serde_json::json!(format!("{:?}", answer.outcome)),
        );
        detail.insert(
            "usage_estimated".into(),
            serde_json::json!(answer.estimated),
        );
    }
}

/// The status the client was given and why: the error's code, the check or limit that
/// refused it, the detection that blocked it.
fn add_failure(record: &mut AuditRecord, error: &GatewayError, detection: Option<&Detection>) {
    let Class { status, code, .. } = error.classify();
    record.status = Some(status.as_u16());
    let mut decision = Decision {
        code: Some(code.to_string()),
        ..Default::default()
    };
    match error {
        GatewayError::Writ(writ_token::WritError::Denied(d)) => {
            decision.check = Some(d.to_string());
        }
        GatewayError::Denied(d) => {
            decision.check = Some(d.denial.to_string());
        }
        GatewayError::DeniedByPolicy(refusal) => {
            decision.check = Some(refusal.denial.to_string());
        }
        GatewayError::RateLimited(r) => {
            decision.limit = Some(LimitHit {
                scope: r.scope.clone(),
                dimension: r.dimension.as_str().to_string(),
            });
        }
        _ => {}
    }
    if let Some(detection) = detection {
        decision.check = Some(detection.detector.as_str().to_string());
        record
            .detail
            .get_or_insert_with(Default::default)
            .extend(detection.detail());
    }
    record.decision = Some(decision);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pipeline::fixture::Fixture;

    fn identity() -> Identity {
        Identity {
            tenant: Some("default".into()),
            agent: Some("demo".into()),
            delegation: Some(vec!["planner".into(), "demo".into()]),
            token_id: Some("tok-1".into()),
            client: Some("192.0.2.7".parse().unwrap()),
            upstream: Some("openai".into()),
            model: Some("gpt-4o".into()),
            operation: "chat",
            mcp: None,
            pseudonyms: Default::default(),
        }
    }

    fn answer(outcome: Outcome, estimated: bool) -> Answer {
        Answer {
            status: 200,
            usage: Usage {
                input_tokens: 12,
                output_tokens: 34,
                cached_input_tokens: 0,
            },
            estimated,
            cost_usd_micros: Some(99),
            outcome,
            upstream: Some(Duration::from_millis(5)),
        }
    }

    #[tokio::test]
    async fn an_answer_is_an_allowed_request_with_its_usage_and_identity() {
        let f = Fixture::start("").await;
        let due = AuditDue::new(f.gw.clone(), Instant::now());
        let r = due.record(
            &identity(),
            Ending::Answered(&answer(Outcome::Completed, false)),
        );
        assert_eq!(r.kind, Kind::RequestAllowed);
        assert_eq!(r.status, Some(200));
        assert_eq!(r.usage.as_ref().map(|u| u.output_tokens), Some(34));
        assert_eq!(r.cost_usd_micros, Some(99));
        assert_eq!(r.agent.as_deref(), Some("demo"));
        assert_eq!(r.operation.as_deref(), Some("chat"));
        // Pseudonyms, never the token id or the address.
        let writ = r.writ.as_deref().unwrap();
        assert_ne!(writ, "tok-1");
        assert!(r.client.as_deref().is_none_or(|c| !c.contains("192.0.2.7")));
        let detail = r.detail.unwrap();
        assert_eq!(detail["delegation"], serde_json::json!(["planner", "demo"]));
        assert!(
            !detail.contains_key("outcome"),
            "a completed, reported call"
        );
    }

    #[tokio::test]
    async fn an_estimate_or_a_cut_call_says_so() {
        let f = Fixture::start("").await;
        let due = AuditDue::new(f.gw.clone(), Instant::now());
        let r = due.record(
            &identity(),
            Ending::Answered(&answer(Outcome::UpstreamCut, true)),
        );
        let detail = r.detail.unwrap();
        assert_eq!(detail["outcome"], "UpstreamCut");
        assert_eq!(detail["usage_estimated"], true);
    }

    #[tokio::test]
    async fn a_refusal_is_denied_with_its_code_and_a_failing_upstream_is_allowed() {
        let f = Fixture::start("").await;
        let due = AuditDue::new(f.gw.clone(), Instant::now());
        let refused = GatewayError::MissingWrit;
        let r = due.record(
            &Identity::default(),
            Ending::Failed {
                error: &refused,
                detection: None,
                answer: None,
            },
        );
        assert_eq!(r.kind, Kind::RequestDenied);
        assert_eq!(r.status, Some(401));
        assert!(r.usage.is_none());
        let failed = GatewayError::UpstreamTimeout;
        let r = due.record(
            &identity(),
            Ending::Failed {
                error: &failed,
                detection: None,
                answer: None,
            },
        );
        assert_eq!(r.kind, Kind::RequestAllowed);
        assert_eq!(r.status, Some(504));
    }

    #[tokio::test]
    async fn after_a_committed_decision_every_ending_is_its_outcome() {
        let f = Fixture::start("").await;
        let mut due = AuditDue::new(f.gw.clone(), Instant::now());
        due.allowed(Some(41));
        for ending in [
            Ending::Answered(&answer(Outcome::Completed, false)),
            Ending::Failed {
                error: &GatewayError::UpstreamFailed,
                detection: None,
                answer: None,
            },
            Ending::ClientClosed,
        ] {
            let r = due.record(&identity(), ending);
            assert_eq!(r.kind, Kind::RequestOutcome);
            assert_eq!(r.decision_seq, Some(41));
        }
        let r = due.record(&identity(), Ending::ClientClosed);
        assert_eq!(r.status, Some(499));
        assert_eq!(
            r.decision.and_then(|d| d.code).as_deref(),
            Some("client_closed_request")
        );
    }
}
