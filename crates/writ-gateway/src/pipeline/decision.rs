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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pipeline::fixture::Fixture;
    use writ_providers::RouteSpec;

    fn ctx() -> RequestCtx {
        RequestCtx {
            route: *RouteSpec::find("/v1/chat/completions").unwrap(),
            started: std::time::Instant::now(),
            agent: Some("demo".into()),
            delegation: None,
            token_id: Some("tok-1".into()),
            upstream: Some("openai".into()),
            model: Some("gpt-4o".into()),
            tenant: Some("default".into()),
            metered: false,
            client: None,
            detection: None,
            decision: None,
            outcome_owed: None,
            outcome_recorded: Default::default(),
        }
    }

    #[tokio::test]
    async fn strict_mode_commits_the_decision_before_forwarding_and_owes_its_outcome() {
        let f = Fixture::start("").await;
        let mut ctx = ctx();
        commit(&f.gw, &mut ctx).await.unwrap();
        assert!(ctx.decision.is_some());
        assert!(ctx.outcome_owed.take().is_some(), "the outcome is owed");
        let exported = f.gw.audit_export().await.unwrap().join("\n");
        assert!(exported.contains("request_allowed"), "{exported}");
        assert!(
            !exported.contains("tok-1"),
            "the writ is named by its pseudonym"
        );
    }

    #[tokio::test]
    async fn best_effort_mode_commits_nothing_first() {
        let f = Fixture::start("[audit]\nmode = \"best_effort\"\n").await;
        let mut ctx = ctx();
        commit(&f.gw, &mut ctx).await.unwrap();
        assert_eq!(ctx.decision, None);
        assert!(ctx.outcome_owed.is_none());
    }
}
