//! Authorize: every block of the writ, checked against the request facts at `now`.

use writ_token::{Authorization, RequestFacts, VerifiedWrit};

use crate::error::GatewayError;
use crate::gateway::Gateway;

pub(crate) fn check(
    gw: &Gateway,
    writ: &VerifiedWrit,
    facts: &RequestFacts,
) -> Result<Authorization, GatewayError> {
    Ok(writ.authorize(facts, gw.clock.now())?)
}
