//! `Identity`: who made a request and what it is for — what every record about it
//! (detections, usage, audit) is derived from.

use std::net::IpAddr;

use crate::detect::detections::{Action, Detection, Detector};
use crate::gateway::Gateway;

/// Who made a request and what it is for, as far as the phases have learnt it: filled in
/// by authenticate (tenant, agent, writ), route (upstream) and inspect (model). Records
/// about the request are built from it by [`Identity::detection`] and
/// [`Identity::audit_record`], never by copying fields by hand.
#[derive(Debug, Clone, Default)]
pub(crate) struct Identity {
    /// The tenant of the writ's agent.
    pub(crate) tenant: Option<String>,
    /// The acting agent: the delegate of a delegated writ, else the writ's agent.
    pub(crate) agent: Option<String>,
    /// For a delegated writ, the agents from the issuing one to the actor.
    pub(crate) delegation: Option<Vec<String>>,
    /// The writ's token id; written to records and logs only as a pseudonym.
    pub(crate) token_id: Option<String>,
    /// The client's address (its TCP peer); written only as a pseudonym.
    pub(crate) client: Option<IpAddr>,
    /// The upstream the request is for.
    pub(crate) upstream: Option<String>,
    /// The model the body names, or for a tool call the tool.
    pub(crate) model: Option<String>,
    /// The route's operation (`chat`, `embeddings`, …).
    pub(crate) operation: &'static str,
}

impl Identity {
    /// A detection about this request by `detector`, which did `action` at `location`;
    /// the caller adds the rules that fired and their count.
    pub(crate) fn detection(
        &self,
        detector: Detector,
        action: Action,
        location: &'static str,
    ) -> Detection {
        let mut d = Detection::new(detector, action, location);
        d.tenant.clone_from(&self.tenant);
        d.agent.clone_from(&self.agent);
        d.token_id.clone_from(&self.token_id);
        d.client = self.client;
        d.upstream.clone_from(&self.upstream);
        d.model.clone_from(&self.model);
        d.operation = Some(self.operation.to_string());
        d
    }

    /// An audit record of `kind` about this request — or, once its decision was committed
    /// (strict audit, `decision` its `seq`), that decision's outcome record — naming who
    /// asked, through which writ and client (as pseudonyms), for which upstream, model and
    /// operation, and a delegated writ's chain.
    pub(crate) fn audit_record(
        &self,
        gw: &Gateway,
        kind: writ_audit::Kind,
        decision: Option<u64>,
    ) -> writ_audit::AuditRecord {
        let mut record = crate::audit::end_record(decision, kind, gw.clock.now());
        record.tenant.clone_from(&self.tenant);
        record.agent.clone_from(&self.agent);
        record.writ = self.token_id.as_deref().map(|t| gw.audit.pseudonym(t));
        record.client = self.client.and_then(|ip| gw.audit.client_pseudonym(ip));
        record.upstream.clone_from(&self.upstream);
        record.model.clone_from(&self.model);
        record.operation = Some(self.operation.to_string());
        if let Some(chain) = &self.delegation {
            record
                .detail
                .get_or_insert_with(Default::default)
                .insert("delegation".into(), serde_json::json!(chain));
        }
        record
    }
}
