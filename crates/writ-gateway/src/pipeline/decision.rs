//! Decision: in strict audit mode, the request's `request_allowed` record is committed to
//! the audit sink before anything is sent upstream, so no request acts unaudited.
//!
//! Runs after authorize and limit (a refused request keeps its one `request_denied`
//! record) and before inject and forward. If the commit fails the request is refused with
//! 503 `audit_unavailable` and nothing is sent: a client that retries cannot make the
//! upstream act twice for one audited decision. The outcome record that ends the request
//! names this one ([`crate::audit::end_record`]).

use std::sync::Arc;

use crate::audit::Appended;
use crate::error::GatewayError;
use crate::gateway::Gateway;
use crate::pipeline::RequestCtx;

/// Commits the request's decision in strict mode and notes its `seq` in `ctx` (also when
/// it was kept for a later write, so the refusal's record links to it); does nothing in
/// best-effort mode. An error means the request must not be forwarded.
pub(crate) async fn commit(gw: &Arc<Gateway>, ctx: &mut RequestCtx) -> Result<(), GatewayError> {
    if !gw.audit.decides_first() {
        return Ok(());
    }
    let record = ctx.audit_record(gw, writ_audit::Kind::RequestAllowed);
    match gw.audit.commit_decision(record).await {
        Appended::Durable(seq) => {
            ctx.decision = Some(seq);
            ctx.outcome_owed = Some(gw.clone());
            Ok(())
        }
        Appended::Kept(seq) => {
            ctx.decision = Some(seq);
            Err(GatewayError::AuditUnavailable)
        }
        Appended::Lost => Err(GatewayError::AuditUnavailable),
    }
}
