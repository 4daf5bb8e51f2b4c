//! `Identity`: who made a request and what it is for — what every record about it
//! (detections, usage, audit) is derived from.

use std::net::IpAddr;
use std::sync::OnceLock;

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
    /// An MCP call's method, name and argument digest.
    pub(crate) mcp: Option<McpAudit>,
    /// The writ's and the client's pseudonyms (an HMAC each), computed once per request
    /// the first time a record needs them: a forwarded call names them in its decision,
    /// its outcome and its usage record.
    pub(super) pseudonyms: OnceLock<(Option<String>, Option<String>)>,
}

/// What the audit record says of an MCP call: the method, the tool or prompt called, and a
/// keyed digest of its arguments or resource URI (never the values).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct McpAudit {
    /// The JSON-RPC method.
    pub(crate) method: String,
    /// The tool or prompt named.
    pub(crate) name: Option<String>,
    /// The audit pseudonym of the arguments as authorized (or of the resource URI).
    pub(crate) digest: Option<String>,
}

impl Identity {
    /// Notes the writ the request presented, by its token id.
    pub(crate) fn set_writ(&mut self, token_id: String) {
        self.token_id = Some(token_id);
        // Pseudonyms of an earlier state would name no writ.
        self.pseudonyms = OnceLock::new();
    }

    /// The writ's pseudonym and the client's (`None` when unknown, or when the gateway
    /// keeps no client addresses), as every record about the request names them.
    pub(crate) fn pseudonyms(&self, gw: &Gateway) -> &(Option<String>, Option<String>) {
        self.pseudonyms.get_or_init(|| {
            (
                self.token_id.as_deref().map(|t| gw.audit.pseudonym(t)),
                self.client.and_then(|ip| gw.audit.client_pseudonym(ip)),
            )
        })
    }

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
        let (writ, client) = self.pseudonyms(gw);
        record.writ.clone_from(writ);
        record.client.clone_from(client);
        record.upstream.clone_from(&self.upstream);
        record.model.clone_from(&self.model);
        record.operation = Some(self.operation.to_string());
        if let Some(chain) = &self.delegation {
            record
                .detail
                .get_or_insert_with(Default::default)
                .insert("delegation".into(), serde_json::json!(chain));
        }
        if let Some(mcp) = &self.mcp {
            let mut call = serde_json::Map::new();
            call.insert("method".into(), serde_json::json!(mcp.method));
            if let Some(name) = &mcp.name {
                call.insert("name".into(), serde_json::json!(name));
            }
            if let Some(digest) = &mcp.digest {
                call.insert("digest".into(), serde_json::json!(digest));
            }
            record
                .detail
                .get_or_insert_with(Default::default)
                .insert("mcp".into(), serde_json::Value::Object(call));
        }
        record
    }
}

#[cfg(test)]
mod tests {
    use std::net::IpAddr;

    use super::*;
    use crate::pipeline::fixture::Fixture;

    const CLIENT: &str = "192.0.2.7";

    /// A delegated request by `demo` (issued to `planner`) for `gpt-4o` on `openai`.
    fn identity() -> Identity {
        Identity {
            tenant: Some("acme".into()),
            agent: Some("demo".into()),
            delegation: Some(vec!["planner".into(), "demo".into()]),
            token_id: Some("tok-1".into()),
            client: Some(CLIENT.parse().unwrap()),
            upstream: Some("openai".into()),
            model: Some("gpt-4o".into()),
            operation: "chat",
            mcp: None,
            pseudonyms: Default::default(),
        }
    }

    #[test]
    fn a_detection_names_who_asked_for_what_and_nothing_it_found() {
        let d = identity().detection(Detector::PromptSecret, Action::Monitored, "request");
        assert_eq!(d.detector, Detector::PromptSecret);
        assert_eq!(d.action, Action::Monitored);
        assert_eq!(d.location, "request");
        assert_eq!(d.tenant.as_deref(), Some("acme"));
        assert_eq!(d.agent.as_deref(), Some("demo"));
        assert_eq!(d.token_id.as_deref(), Some("tok-1"));
        assert_eq!(d.client, Some(CLIENT.parse::<IpAddr>().unwrap()));
        assert_eq!(d.upstream.as_deref(), Some("openai"));
        assert_eq!(d.model.as_deref(), Some("gpt-4o"));
        assert_eq!(d.operation.as_deref(), Some("chat"));
        // The caller adds the rules that fired.
        assert!(d.rules.is_empty());
        assert_eq!(d.count, 0);
    }

    #[test]
    fn a_detection_before_authentication_names_only_the_route_and_client() {
        let id = Identity {
            client: Some(CLIENT.parse().unwrap()),
            operation: "embeddings",
            ..Identity::default()
        };
        let d = id.detection(Detector::UrlCredential, Action::Blocked, "url");
        assert!(d.tenant.is_none() && d.agent.is_none() && d.token_id.is_none());
        assert!(d.upstream.is_none() && d.model.is_none());
        assert_eq!(d.client, id.client);
        assert_eq!(d.operation.as_deref(), Some("embeddings"));
    }

    #[tokio::test]
    async fn an_audit_record_names_the_writ_and_client_only_by_pseudonym() {
        let f = Fixture::start("").await;
        let r = identity().audit_record(&f.gw, writ_audit::Kind::RequestDenied, None);
        assert_eq!(r.kind, writ_audit::Kind::RequestDenied);
        assert!(r.decision_seq.is_none());
        assert_eq!(r.tenant.as_deref(), Some("acme"));
        assert_eq!(r.agent.as_deref(), Some("demo"));
        assert_eq!(r.upstream.as_deref(), Some("openai"));
        assert_eq!(r.model.as_deref(), Some("gpt-4o"));
        assert_eq!(r.operation.as_deref(), Some("chat"));
        // The gateway's pseudonyms, never the token id or the address.
        let writ = r.writ.as_deref().unwrap();
        assert_eq!(writ, f.gw.audit.pseudonym("tok-1"));
        assert!(!writ.contains("tok-1"));
        let client = r.client.as_deref().unwrap();
        assert_eq!(
            Some(client),
            f.gw.audit
                .client_pseudonym(CLIENT.parse().unwrap())
                .as_deref()
        );
        assert!(!client.contains(CLIENT));
        let json = serde_json::to_string(&r).unwrap();
        assert!(!json.contains("tok-1") && !json.contains(CLIENT));
        let detail = r.detail.unwrap();
        assert_eq!(detail["delegation"], serde_json::json!(["planner", "demo"]));
    }

    #[tokio::test]
    async fn an_undelegated_anonymous_request_has_no_writ_client_or_chain() {
        let f = Fixture::start("").await;
        let id = Identity {
            operation: "chat",
            ..Identity::default()
        };
        let r = id.audit_record(&f.gw, writ_audit::Kind::RequestAllowed, None);
        assert_eq!(r.kind, writ_audit::Kind::RequestAllowed);
        assert!(r.writ.is_none() && r.client.is_none() && r.agent.is_none());
        assert!(
            r.detail
                .as_ref()
                .is_none_or(|d| !d.contains_key("delegation"))
        );
    }

    #[tokio::test]
    async fn with_client_addresses_off_the_record_names_no_client() {
        let f = Fixture::start("[audit]\nclient_addresses = false\n").await;
        let r = identity().audit_record(&f.gw, writ_audit::Kind::RequestAllowed, None);
        assert!(r.client.is_none());
        assert!(r.writ.is_some());
    }

    #[tokio::test]
    async fn after_a_committed_decision_the_record_is_its_outcome() {
        let f = Fixture::start("").await;
        for kind in [
            writ_audit::Kind::RequestAllowed,
            writ_audit::Kind::RequestDenied,
        ] {
            let r = identity().audit_record(&f.gw, kind, Some(41));
            assert_eq!(r.kind, writ_audit::Kind::RequestOutcome);
            assert_eq!(r.decision_seq, Some(41));
            assert_eq!(r.agent.as_deref(), Some("demo"));
            assert_eq!(r.writ, Some(f.gw.audit.pseudonym("tok-1")));
        }
    }

    #[tokio::test]
    async fn pseudonyms_are_computed_once_and_follow_the_writ() {
        let f = Fixture::start("").await;
        let mut id = identity();
        let first = id.pseudonyms(&f.gw).clone();
        assert_eq!(first.0, Some(f.gw.audit.pseudonym("tok-1")));
        // The same strings every time: one HMAC per request, not one per record.
        assert!(std::ptr::eq(id.pseudonyms(&f.gw), id.pseudonyms(&f.gw)));
        id.set_writ("tok-2".into());
        let record = id.audit_record(&f.gw, writ_audit::Kind::RequestAllowed, None);
        assert_eq!(record.writ, Some(f.gw.audit.pseudonym("tok-2")));
        assert_eq!(record.client, first.1);
    }
}
