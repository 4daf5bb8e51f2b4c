//! Decision: in strict audit mode, the request's `request_allowed` record is committed to
//! the audit sink before anything is sent upstream, so no request acts unaudited.
//!
//! Runs after authorize and limit (a refused request keeps its one `request_denied`
//! record) and before inject and forward. If the commit fails the request is refused with
//! 503 `audit_unavailable` and nothing is sent: a client that retries cannot make the
//! upstream act twice for one audited decision. The outcome record that ends the request
//! names this one ([`crate::audit::end_record`]).
//!
//! With limits kept in Redis, the reservation and the commit are two round trips to two
//! servers: they are made at once ([`reserve_and_commit`]), so a request waits for the
//! longer of them rather than both. A request the limits then refuse is recorded as that
//! committed decision followed by its refusal (the 429 as the decision's outcome, linked
//! to it), both before its answer; nothing is sent upstream either way.

use writ_token::{RequestFacts, VerifiedWrit};

use crate::audit::Appended;
use crate::error::GatewayError;
use crate::gateway::Gateway;
use crate::limits::Held;
use crate::pipeline::route::Target;
use crate::pipeline::{RequestCtx, limit};

/// Limit, then decision: every applicable limit reserved (all or nothing), and in strict
/// mode the `request_allowed` record committed. With limits in Redis and strict audit the
/// two are done at once (see the module's doc); otherwise one after the other, and a
/// request the limits refuse has no decision. Returns the reservation to carry on with; an
/// error means the request must not be forwarded, and nothing stays reserved.
pub(crate) async fn reserve_and_commit(
    gw: &Gateway,
    ctx: &mut RequestCtx,
    writ: &VerifiedWrit,
    target: &Target,
    facts: &RequestFacts,
    request_bytes: usize,
) -> Result<Option<Held>, GatewayError> {
    if !(gw.audit.decides_first() && gw.limits.reserves_remotely()) {
        let limits = &ctx.snapshot.limits;
        let held = limit::reserve(gw, limits, writ, target, facts, request_bytes).await?;
        return commit(gw, ctx, held).await;
    }
    // The reservation reads the snapshot while the decision's record is written to `ctx`.
    let snapshot = ctx.snapshot.clone();
    let reserving = limit::reserve(gw, &snapshot.limits, writ, target, facts, request_bytes);
    let Some(due) = ctx.audit.as_mut() else {
        return Err(GatewayError::Internal("audit record already written"));
    };
    let record = ctx
        .id
        .audit_record(gw, writ_audit::Kind::RequestAllowed, None);
    let (reserved, committed) = tokio::join!(reserving, gw.audit.commit_decision(record));
    match (reserved, committed) {
        (Ok(held), Appended::Durable(seq)) => {
            due.allowed(Some(seq));
            Ok(held)
        }
        (Ok(held), refused) => {
            // Nothing was sent: the reservation is given back whole.
            limit::give_back(held);
            if let Appended::Kept(seq) = refused {
                // The refusal's record links to the decision kept for a later write.
                due.linked(seq);
            }
            Err(GatewayError::AuditUnavailable)
        }
        (Err(refused), Appended::Durable(seq) | Appended::Kept(seq)) => {
            // The limits' refusal is the committed (or kept) decision's outcome.
            due.linked(seq);
            Err(refused)
        }
        (Err(refused), Appended::Lost) => Err(refused),
    }
}

/// Refuses with 503 `audit_unavailable` while strict audit cannot write: checked before
/// limits are reserved, so a refused request holds nothing.
pub(crate) fn may_proceed(gw: &Gateway) -> Result<(), GatewayError> {
    if gw.audit.may_proceed() {
        Ok(())
    } else {
        Err(GatewayError::AuditUnavailable)
    }
}

/// Decides to forward the request: in strict mode commits its `request_allowed` record
/// first and makes its audit record that decision's outcome; in best-effort mode only
/// notes that it was allowed. Returns `held` to carry on with; an error means the request
/// must not be forwarded, and the reservation has been given back whole.
pub(crate) async fn commit(
    gw: &Gateway,
    ctx: &mut RequestCtx,
    held: Option<Held>,
) -> Result<Option<Held>, GatewayError> {
    let refused = match commit_record(gw, ctx).await {
        Ok(()) => return Ok(held),
        Err(e) => e,
    };
    // Nothing was sent: the reservation is given back whole.
    limit::give_back(held);
    Err(refused)
}

async fn commit_record(gw: &Gateway, ctx: &mut RequestCtx) -> Result<(), GatewayError> {
    let Some(due) = ctx.audit.as_mut() else {
        return Err(GatewayError::Internal("audit record already written"));
    };
    if !gw.audit.decides_first() {
        due.allowed(None);
        return Ok(());
    }
    let record = ctx
        .id
        .audit_record(gw, writ_audit::Kind::RequestAllowed, None);
    match gw.audit.commit_decision(record).await {
        Appended::Durable(seq) => {
            due.allowed(Some(seq));
            Ok(())
        }
        Appended::Kept(seq) => {
            // The refusal's record links to the decision kept for a later write.
            due.linked(seq);
            Err(GatewayError::AuditUnavailable)
        }
        Appended::Lost => Err(GatewayError::AuditUnavailable),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pipeline::fixture::Fixture;
    use writ_providers::ROUTES;

    fn ctx(f: &Fixture) -> RequestCtx {
        let mut ctx = RequestCtx::new(&f.gw, ROUTES[0], None);
        ctx.id.agent = Some("demo".into());
        ctx.id.token_id = Some("tok-1".into());
        ctx.id.upstream = Some("openai".into());
        ctx.id.tenant = Some("default".into());
        ctx
    }

    #[tokio::test]
    async fn strict_mode_commits_the_decision_before_forwarding_and_links_the_outcome_to_it() {
        let f = Fixture::start("").await;
        let mut ctx = ctx(&f);
        commit(&f.gw, &mut ctx, None).await.unwrap();
        let due = ctx.audit.as_ref().unwrap();
        assert!(due.decision().is_some(), "the outcome names the decision");
        assert!(due.is_allowed());
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
        let mut ctx = ctx(&f);
        commit(&f.gw, &mut ctx, None).await.unwrap();
        let due = ctx.audit.as_ref().unwrap();
        assert_eq!(due.decision(), None);
        assert!(due.is_allowed());
        let exported = f.gw.audit_export().await.unwrap().join("\n");
        assert!(!exported.contains("request_allowed"), "{exported}");
    }
}
