//! Brute force at authenticate: an address that keeps presenting invalid writs is slowed
//! down, then locked out for a while (`writ unlock` lifts it early).

use crate::detect::brute_force;
use crate::error::GatewayError;
use crate::gateway::Gateway;
use crate::pipeline::RequestCtx;

/// Refuses the request when its client's address is throttled; ignoring the back-off
/// counts against the address. Requests without a known address are never throttled.
pub(crate) async fn check(gw: &Gateway, ctx: &RequestCtx) -> Result<(), GatewayError> {
    let Some(ip) = ctx.id.client else {
        return Ok(());
    };
    let Some(t) = brute_force::address_throttled(gw, ip) else {
        return Ok(());
    };
    let t = if t.locked {
        t
    } else {
        brute_force::invalid_writ_from(gw, ip).await.unwrap_or(t)
    };
    Err(GatewayError::AuthThrottled {
        retry_after_secs: t.retry_after_secs(),
        locked: t.locked,
    })
}

/// Counts a credential that failed verification against its client's address.
pub(crate) async fn failed(gw: &Gateway, ctx: &RequestCtx) {
    if let Some(ip) = ctx.id.client {
        brute_force::invalid_writ_from(gw, ip).await;
    }
}
