//! Telling people an approval waits: `[[approvals.webhooks]]`, each told of the pending
//! approvals of its tenants, signed and delivered as detection webhooks are (same
//! headers, same retries, never blocking the request). What a receiver gets is described
//! in [`webhooks`].

pub(crate) mod webhooks;

use writ_store::ApprovalRecord;

use crate::gateway::Gateway;

/// Tells the webhooks of `record`'s tenant that it waits for a person. Never blocks and
/// never fails the caller: delivery is queued and retried in the background.
// Called from the request path and the token endpoint once they hold approvals
// (issue 23); until then only the tests call it.
pub(crate) fn pending(gw: &Gateway, record: &ApprovalRecord) {
    if let Some(hooks) = &gw.approval_webhooks {
        let event = webhooks::pending_event(&gw.scanner(), &gw.admin_url(), record);
        hooks.send(&record.tenant, &event);
    }
}

#[cfg(test)]
mod tests;
