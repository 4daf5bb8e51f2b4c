//! The log line of each request (`[log] requests`), made from its audit record so it
//! follows the audit log's rules: writs by pseudonym, no prompt, no secret.

use writ_audit::{AuditRecord, Kind};

/// The log line of a request's record (`[log] requests`): how it ended, from the record
/// that says so — an outcome, a refusal, or a best-effort decision that carries its
/// status — with what the audit log holds of it (writs by pseudonym, no prompt, no
/// secret). Strict mode's decision records are not logged: their outcome is.
pub(crate) fn log_request(record: &AuditRecord) {
    let ended = match record.kind {
        Kind::RequestOutcome | Kind::RequestDenied => true,
        Kind::RequestAllowed => record.status.is_some(),
        _ => false,
    };
    if !ended {
        return;
    }
    let code = record.decision.as_ref().and_then(|d| d.code.as_deref());
    tracing::info!(
        target: "writ::request",
        tenant = record.tenant.as_deref(),
        agent = record.agent.as_deref(),
        writ = record.writ.as_deref(),
        upstream = record.upstream.as_deref(),
        model = record.model.as_deref(),
        operation = record.operation.as_deref(),
        status = record.status,
        code,
        input_tokens = record.usage.as_ref().map(|u| u.input_tokens),
        output_tokens = record.usage.as_ref().map(|u| u.output_tokens),
        cost_usd_micros = record.cost_usd_micros,
        latency_ms = record.latency_ms,
        "request"
    );
}
