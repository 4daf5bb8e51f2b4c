//! Authorize: every block of the writ, checked against the request facts at `now`.

use writ_token::{Authorization, RequestFacts, VerifiedWrit};

use crate::error::GatewayError;
use crate::gateway::Gateway;

pub(crate) fn check(
    gw: &Gateway,
    writ: &VerifiedWrit,
    facts: &RequestFacts,
) -> Result<Authorization, GatewayError> {
    let now = gw.clock.now();
    let authorization = writ.authorize(facts, now)?;
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
    Ok(authorization)
}
