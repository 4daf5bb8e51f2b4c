//! Authorize: every block of the writ, checked against the request facts at `now`.
//!
//! Every evaluation is bounded before it runs (`writ_token::VerifiedWrit::evaluation_work`:
//! a few milliseconds of one core at most). One that could take more than
//! [`INLINE_WORK`] runs on the blocking pool, one such evaluation at a time, so a holder
//! who appended costly checks to a writ waits behind its own kind and never holds up the
//! requests a serving thread has in hand.

use std::sync::Arc;

use tokio::sync::Semaphore;
use writ_token::{Authorization, RequestFacts, VerifiedWrit};

use crate::error::GatewayError;
use crate::gateway::Gateway;

/// Units of work (about 10 ns each) an evaluation may cost and still run on the serving
/// thread: about 0.2 ms. Writs the gateway mints evaluate in a few thousand.
pub(crate) const INLINE_WORK: u64 = 20_000;

/// Where costly evaluations run: one at a time, off the serving threads.
#[derive(Debug)]
pub(crate) struct CostlyEvaluations(Arc<Semaphore>);

impl Default for CostlyEvaluations {
    fn default() -> Self {
        Self(Arc::new(Semaphore::new(1)))
    }
}

/// Authorizes a data-plane request: on this thread when the evaluation is cheap, on the
/// blocking pool (one at a time) when it could be costly.
pub(crate) async fn check(
    gw: &Gateway,
    writ: &Arc<VerifiedWrit>,
    facts: &RequestFacts,
) -> Result<Authorization, GatewayError> {
    let now = gw.clock.now();
    let authorization = match writ.authorize_within(facts, now, INLINE_WORK)? {
        Some(authorization) => authorization,
        None => {
            let permit = gw
                .costly_evaluations
                .0
                .clone()
                .acquire_owned()
                .await
                .map_err(|_| GatewayError::Internal("costly evaluations closed"))?;
            let (writ, facts) = (writ.clone(), facts.clone());
            tokio::task::spawn_blocking(move || {
                let _permit = permit;
                writ.authorize(&facts, now)
            })
            .await
            .map_err(|_| GatewayError::Internal("authorization task failed"))??
        }
    };
    single_use(gw, writ, now)?;
    Ok(authorization)
}

/// Authorizes on this thread (bounded like every evaluation): for the admin API, whose
/// writs the operator issues.
pub(crate) fn check_inline(
    gw: &Gateway,
    writ: &VerifiedWrit,
    facts: &RequestFacts,
) -> Result<Authorization, GatewayError> {
    let now = gw.clock.now();
    let authorization = writ.authorize(facts, now)?;
    single_use(gw, writ, now)?;
    Ok(authorization)
}

fn single_use(
    gw: &Gateway,
    writ: &VerifiedWrit,
    now: std::time::SystemTime,
) -> Result<(), GatewayError> {
    // Recorded only once the request is allowed, so a refused attempt does not use it up.
    if writ.claims().single_use
        && !gw.used_writs.first_use(
            writ.claims().token_id.clone(),
            writ.claims().expires_at,
            now,
        )
    {
        return Err(GatewayError::AlreadyUsed);
    }
    Ok(())
}
