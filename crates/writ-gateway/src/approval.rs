//! Human approval (DESIGN §2, §3): requests and mints an approval rule holds, a person's
//! decision, and the approval block that carries it.
//!
//! The store holds each approval and moves it along once (`pending` → `approved` |
//! `denied` → `used`; `voided` and `expired` on the way); the limiter backend's replay
//! store makes its one use hold across instances. Every step writes one audit record of
//! kind `approval`: pending, approved or denied (by whom, how they authenticated, and the
//! digest of the summary they were shown), used, voided and expired. Nothing here holds a
//! writ: a pending approval keeps only what an approval block must be made for.

pub(crate) mod ledger;
pub(crate) mod notify;
pub(crate) mod request;
pub(crate) mod summary;

use writ_store::ApprovalRecord;

pub(crate) use self::ledger::{Decider, Event};
use crate::error::GatewayError;
use crate::gateway::Gateway;

/// Unix seconds on the gateway's clock.
pub(crate) fn unix_now(gw: &Gateway) -> u64 {
    gw.approval_ledger().now()
}

/// The approval `id` as a decider of `tenant` (`None`: every tenant) may see it: see
/// [`ledger::visible`].
pub(crate) async fn visible(
    gw: &Gateway,
    id: &str,
    tenant: Option<&str>,
) -> Result<ApprovalRecord, GatewayError> {
    ledger::visible(&gw.approval_ledger(), id, tenant).await
}

/// Records `decider`'s decision on the pending approval `id`: see [`ledger::decide`].
pub(crate) async fn decide(
    gw: &Gateway,
    id: &str,
    decider: &Decider,
    approve: bool,
    reason: Option<String>,
) -> Result<ApprovalRecord, GatewayError> {
    ledger::decide(&gw.approval_ledger(), id, decider, approve, reason).await
}

/// Marks the approvals past their expiry as expired: see [`ledger::sweep`].
pub(crate) async fn sweep(gw: &Gateway) {
    ledger::sweep(&gw.approval_ledger()).await
}

/// Writes the audit record of `event` for `record`: see [`ledger::audit`].
pub(crate) async fn audit(
    gw: &Gateway,
    record: &ApprovalRecord,
    event: Event,
    decider: Option<&Decider>,
    reason: Option<&str>,
) {
    ledger::audit(&gw.approval_ledger(), record, event, decider, reason).await
}
