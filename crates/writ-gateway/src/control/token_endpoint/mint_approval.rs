//! Mint-time approval (issue 23): the facts a requested writ is held against the tenant's
//! `requires_approval` rules with, one set per access grant, and the pending approval
//! (CIBA's `auth_req_id`) a matching rule holds the mint for.
//!
//! The vocabulary of mint facts: `operation("mint")`, `api` of the grant's kind
//! (`llm`, `tool` for tool, prompt and resource grants, `http`, `admin`), `upstream`, and
//! what the grant fixes: `model` when it allows exactly one model; `tool` and
//! `arg(name, value)` for each argument fixed to one value (a bare value, or `one_of` with
//! one value); `prompt` (and its fixed arguments) for a prompt grant; `uri` for a resource
//! grant of exactly one URI; `method` when exactly one method is allowed and `path` when
//! every parameter of the template is fixed (else both are `""`); `admin_tenant` for an
//! admin grant of one tenant; `resource` when the writ is asked for an MCP resource and
//! `dpop_jkt` when it is to be bound to a DPoP key. Budget and Datalog grants state no
//! facts of their own.

use serde::{Deserialize, Serialize};
use serde_json::json;
use sha2::{Digest, Sha256};
use writ_store::{ApprovalKind, ApprovalRecord, NewApproval, PendingBounds, StoreError};
use writ_token::{
    Api, ApprovalReason, ArgValue, Constraint, Grant, RequestFacts, canonical_json, new_approval_id,
};

use super::oauth_error::{OAuthError, OAuthErrorCode};
use crate::approval::{self, Event};
use crate::gateway::Gateway;

/// The polling grant type of OpenID CIBA Core 1.0 (poll mode).
pub(crate) const CIBA_GRANT_TYPE: &str = "urn:openid:params:grant-type:ciba";

/// Exactly what to mint once a person approves: what the token request asked for, checked
/// then, and checked again at the poll that issues it. Holds no secret: a token exchange's
/// subject writ is kept only as its digest, and must be presented again.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(super) struct MintPlan {
    /// `client_credentials` or `token_exchange`.
    pub(super) grant_type: String,
    /// The agent's tenant.
    pub(super) tenant: String,
    /// The agent the writ is for (the actor of a token exchange).
    pub(super) agent: String,
    /// The grants, as asked for.
    pub(super) grants: Vec<Grant>,
    /// The lifetime asked for (seconds); never more than the agent's maximum at the poll.
    pub(super) ttl_secs: u64,
    /// The one resource the writ is for (RFC 8707), if any.
    pub(super) audience: Option<String>,
    /// The DPoP key thumbprint the writ is bound to, if any.
    pub(super) cnf_jkt: Option<String>,
    /// The scope to answer with, if one was asked for.
    pub(super) scope: Option<String>,
    /// For a token exchange: the subject writ it delegates from.
    pub(super) subject: Option<SubjectRef>,
}

/// The subject writ of a token exchange, without the writ: the poll must present it again.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(super) struct SubjectRef {
    /// SHA-256 (hex) of the subject writ's text.
    pub(super) digest: String,
    /// Who delegates: `tenant/agent` of the subject writ.
    pub(super) delegator: String,
}

impl SubjectRef {
    /// The reference to the subject writ `text`, delegated by `delegator`.
    pub(super) fn of(text: &str, delegator: String) -> Self {
        Self {
            digest: Self::digest_of(text),
            delegator,
        }
    }

    /// SHA-256 (hex) of a subject writ's text, as [`SubjectRef::digest`] holds it.
    pub(super) fn digest_of(text: &str) -> String {
        hex::encode(Sha256::digest(text.as_bytes()))
    }
}

/// The value an argument (or path parameter) constraint fixes: a bare value, or `one_of`
/// with one value and no other rule.
fn fixed(constraint: &Constraint) -> Option<&ArgValue> {
    match constraint {
        Constraint::Exact(v) => Some(v),
        Constraint::Rule(rule) => match (&rule.one_of, rule.max, rule.min, &rule.prefix) {
            (Some(values), None, None, None) if values.len() == 1 => values.first(),
            _ => None,
        },
    }
}

/// The path a template names when every parameter is fixed to a string or an integer.
fn fixed_path(
    template: &str,
    params: &std::collections::BTreeMap<String, Constraint>,
) -> Option<String> {
    let mut out = Vec::new();
    for segment in template.split('/') {
        match segment.strip_prefix('{').and_then(|s| s.strip_suffix('}')) {
            Some(name) => match params.get(name).and_then(fixed) {
                Some(ArgValue::Str(s)) => out.push(s.clone()),
                Some(ArgValue::Int(n)) => out.push(n.to_string()),
                _ => return None,
            },
            None => out.push(segment.to_string()),
        }
    }
    Some(out.join("/"))
}

/// The mint facts of one access grant of `plan` (see the module's vocabulary); `None`
/// for budget and Datalog grants.
pub(super) fn mint_facts(grant: &Grant, plan: &MintPlan) -> Option<RequestFacts> {
    let mut facts = match grant {
        Grant::Llm(g) => {
            let mut f = RequestFacts::new(Api::Llm, "mint", "", "");
            f.upstream = Some(g.upstream.clone());
            f.model = match g.models.as_deref() {
                Some([one]) => Some(one.clone()),
                _ => None,
            };
            f
        }
        Grant::Tool(g) => {
            let mut f = RequestFacts::new(Api::Tool, "mint", "", "");
            f.upstream = Some(g.upstream.clone());
            f.tool = Some(g.tool.clone());
            f.args = fixed_args(&g.arguments);
            f
        }
        Grant::Prompt(g) => {
            let mut f = RequestFacts::new(Api::Tool, "mint", "", "");
            f.upstream = Some(g.upstream.clone());
            f.prompt = Some(g.prompt.clone());
            f.args = fixed_args(&g.arguments);
            f
        }
        Grant::Resource(g) => {
            let mut f = RequestFacts::new(Api::Tool, "mint", "", "");
            f.upstream = Some(g.upstream.clone());
            f.uri = match fixed(&g.uri) {
                Some(ArgValue::Str(uri)) => Some(uri.clone()),
                _ => None,
            };
            f
        }
        Grant::Http(g) => {
            let method = match g.methods.as_deref() {
                Some([one]) => one.as_str(),
                _ => "",
            };
            let path = fixed_path(&g.path, &g.params).unwrap_or_default();
            let mut f = RequestFacts::new(Api::Http, "mint", method, &path);
            f.upstream = Some(g.upstream.clone());
            f
        }
        Grant::Admin(g) => {
            let mut f = RequestFacts::new(Api::Admin, "mint", "", "");
            f.admin_tenant = g.tenant.clone();
            f
        }
        Grant::Budget(_) | Grant::Datalog(_) => return None,
    };
    facts.resource = plan.audience.clone();
    facts.dpop_jkt = plan.cnf_jkt.clone();
    Some(facts)
}

fn fixed_args(
    arguments: &std::collections::BTreeMap<String, Constraint>,
) -> Vec<(String, ArgValue)> {
    arguments
        .iter()
        .filter_map(|(name, c)| fixed(c).map(|v| (name.clone(), v.clone())))
        .collect()
}

/// The first approval rule of the tenant's policies a grant of `plan` matches, if any.
/// Fails closed: policies that could not be compiled, or that cannot be evaluated for a
/// grant, refuse the mint.
fn approval_reason(gw: &Gateway, plan: &MintPlan) -> Result<Option<ApprovalReason>, OAuthError> {
    let snapshot = gw.tenancy.snapshot();
    let policy = match snapshot.policy(&plan.tenant) {
        None => return Ok(None),
        Some(Ok(policy)) => policy.clone(),
        Some(Err(_)) => {
            return Err(OAuthError::server(
                "this tenant's policies could not be compiled, so no writ is issued; a tenant admin can list and fix them: `writ policy list --tenant <tenant>`",
            ));
        }
    };
    if !policy.asks_approval() {
        return Ok(None);
    }
    let now = gw.clock.now();
    for grant in &plan.grants {
        let Some(facts) = mint_facts(grant, plan) else {
            continue;
        };
        match policy.approval_required(&facts, now) {
            Ok(Some(reason)) => return Ok(Some(reason)),
            Ok(None) => {}
            Err(denial) => {
                return Err(OAuthError::new(
                    OAuthErrorCode::AccessDenied,
                    format!("{denial}; no writ is issued until a tenant admin fixes the policy"),
                ));
            }
        }
    }
    Ok(None)
}

/// SHA-256 (hex) of `value`'s canonical JSON, and that JSON.
fn canonical_and_digest(value: &serde_json::Value) -> (String, String) {
    let mut canonical = Vec::new();
    canonical_json(value, &mut canonical);
    let hex = hex::encode(Sha256::digest(&canonical));
    (hex, String::from_utf8_lossy(&canonical).into_owned())
}

/// `Ok` when no approval rule matches `plan`: mint now. Otherwise creates the pending
/// `Mint` approval (written to the audit log, told to the tenant's approval webhooks), expiring after `[approvals] ttl` and never
/// after `not_after` (a token exchange's subject writ), and answers CIBA's
/// `authorization_pending` with its `auth_req_id`; 429 `too_many_pending_approvals` when
/// the agent or tenant has as many waiting as allowed.
pub(super) async fn hold(
    gw: &Gateway,
    plan: &MintPlan,
    not_after: Option<std::time::SystemTime>,
) -> Result<(), OAuthError> {
    let Some(reason) = approval_reason(gw, plan)? else {
        return Ok(());
    };
    let plan_json = serde_json::to_value(plan)
        .map_err(|_| OAuthError::server("the mint could not be held for approval"))?;
    let (request_digest, mint_request) = canonical_and_digest(&plan_json);
    let summary = json!({
        "kind": "mint",
        "operation": "mint",
        "tenant": plan.tenant,
        "agent": plan.agent,
        "grants": plan.grants,
        "ttl_secs": plan.ttl_secs,
        "resource": plan.audience,
        "dpop_bound": plan.cnf_jkt.is_some(),
        "delegated_from": plan.subject.as_ref().map(|s| s.delegator.as_str()),
        "reason": reason.reason,
        "policy": reason.policy,
    });
    // What the person is shown passes the scanners, as a request's summary does.
    let (own, scanner) = (gw.own_secrets(), gw.scanner());
    let summary = approval::summary::redacted(summary, &[&own, &scanner]);
    let summary_digest = approval::summary::digest(&summary);
    let summary = summary.to_string();
    let config = gw.approvals.config();
    let now = approval::unix_now(gw);
    let mut expires_at = now.saturating_add(config.ttl.as_secs().max(1));
    if let Some(t) = not_after {
        let secs = t
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        expires_at = expires_at.min(secs.max(now + 1));
    }
    let new = NewApproval {
        id: new_approval_id(),
        tenant: plan.tenant.clone(),
        agent: plan.agent.clone(),
        kind: ApprovalKind::Mint,
        reason: reason.reason.clone(),
        summary,
        summary_digest,
        request_digest,
        writ_token_id: None,
        writ_revocation_ids: Vec::new(),
        writ_issued_at: None,
        ticket: None,
        mint_request: Some(mint_request),
        created_at: now,
        expires_at,
        poll_interval: config.poll_interval.as_secs().max(1),
    };
    let bounds = PendingBounds {
        per_agent: config.max_pending_per_agent,
        per_tenant: config.max_pending_per_tenant,
    };
    let record = match gw.store().create_approval(&new, bounds).await {
        Ok(record) => record,
        Err(StoreError::Refused(why)) => {
            return Err(OAuthError::new(
                OAuthErrorCode::TooManyPendingApprovals,
                why,
            ));
        }
        Err(e) => {
            tracing::error!(error = %e, "mint approval not recorded");
            return Err(OAuthError::server(
                "the approval store is unavailable, so this writ (which needs a person's approval) cannot be asked for now; retry shortly",
            ));
        }
    };
    tracing::info!(agent = %plan.agent, tenant = %plan.tenant, approval = %record.id, "mint held for approval");
    approval::audit(gw, &record, Event::Pending, None, None).await;
    approval::notify::pending(gw, &record);
    Err(pending(&record, now))
}

/// CIBA's `authorization_pending` for `record` at `now`: its `auth_req_id`, the poll
/// `interval` and `expires_in`, and what to do.
pub(super) fn pending(record: &ApprovalRecord, now: u64) -> OAuthError {
    OAuthError::new(
        OAuthErrorCode::AuthorizationPending,
        format!(
            "a person must approve this writ first ({}): poll this endpoint with grant_type={CIBA_GRANT_TYPE} and this auth_req_id, at most every {} seconds",
            record.reason, record.poll_interval
        ),
    )
    .with("auth_req_id", json!(record.id))
    .with("interval", json!(record.poll_interval))
    .with("expires_in", json!(record.expires_at.saturating_sub(now)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn plan(grants: &str) -> MintPlan {
        MintPlan {
            grant_type: "client_credentials".into(),
            tenant: "acme".into(),
            agent: "bot".into(),
            grants: writ_token::parse_grants(grants).expect("grants"),
            ttl_secs: 60,
            audience: None,
            cnf_jkt: Some("jkt".into()),
            scope: None,
            subject: None,
        }
    }

    fn facts_of(grants: &str) -> RequestFacts {
        let p = plan(grants);
        mint_facts(&p.grants[0], &p).expect("an access grant states facts")
    }

    #[test]
    fn a_tool_grant_states_its_tool_and_only_its_fixed_arguments() {
        let f = facts_of(
            r#"{"type":"writ:tool","upstream":"pay","tool":"pay","arguments":{"amount":250,"to":{"one_of":["bob"]},"memo":{"prefix":"x"},"n":{"max":5}}}"#,
        );
        assert_eq!((f.api, f.operation.as_str()), (Api::Tool, "mint"));
        assert_eq!(f.upstream.as_deref(), Some("pay"));
        assert_eq!(f.tool.as_deref(), Some("pay"));
        assert_eq!(
            f.args,
            vec![
                ("amount".to_string(), ArgValue::Int(250)),
                ("to".to_string(), ArgValue::Str("bob".into())),
            ]
        );
        assert_eq!(f.dpop_jkt.as_deref(), Some("jkt"));
    }

    #[test]
    fn a_model_is_stated_only_when_the_grant_allows_exactly_one() {
        let one = facts_of(r#"{"type":"writ:llm","upstream":"demo","models":["gpt-4o"]}"#);
        assert_eq!(one.model.as_deref(), Some("gpt-4o"));
        let two = facts_of(r#"{"type":"writ:llm","upstream":"demo","models":["a","b"]}"#);
        assert_eq!(two.model, None);
        assert_eq!(two.api, Api::Llm);
    }

    #[test]
    fn an_http_path_is_stated_when_every_parameter_is_fixed() {
        let fixed = facts_of(
            r#"{"type":"writ:http","upstream":"h","methods":["DELETE"],"path":"/v1/bookings/{id}","params":{"id":42}}"#,
        );
        assert_eq!(
            (fixed.method.as_str(), fixed.path.as_str()),
            ("DELETE", "/v1/bookings/42")
        );
        let open = facts_of(
            r#"{"type":"writ:http","upstream":"h","methods":["GET","DELETE"],"path":"/v1/bookings/{id}"}"#,
        );
        assert_eq!((open.method.as_str(), open.path.as_str()), ("", ""));
    }

    #[test]
    fn budgets_state_no_facts_and_admin_states_its_tenant() {
        let p =
            plan(r#"[{"type":"writ:admin","tenant":"acme"},{"type":"writ:budget","tokens":5}]"#);
        let admin = mint_facts(&p.grants[0], &p).expect("admin facts");
        assert_eq!(admin.admin_tenant.as_deref(), Some("acme"));
        assert!(mint_facts(&p.grants[1], &p).is_none());
    }

    #[test]
    fn the_pending_answer_carries_the_id_interval_and_time_left() {
        let record = ApprovalRecord {
            id: "apr_AAAAAAAAAAAAAAAAAAAAAA".into(),
            tenant: "acme".into(),
            agent: "bot".into(),
            kind: ApprovalKind::Mint,
            status: writ_store::ApprovalStatus::Pending,
            reason: "big payments".into(),
            summary: "{}".into(),
            summary_digest: String::new(),
            request_digest: String::new(),
            writ_token_id: None,
            writ_revocation_ids: Vec::new(),
            writ_issued_at: None,
            ticket: None,
            mint_request: None,
            created_at: 100,
            expires_at: 400,
            decided_by: None,
            decided_method: None,
            decided_at: None,
            decision_reason: None,
            block: None,
            poll_interval: 5,
            next_poll_at: 105,
            finished_at: None,
        };
        let e = pending(&record, 150);
        assert_eq!(e.code, OAuthErrorCode::AuthorizationPending);
        assert!(e.description.contains("big payments"), "{}", e.description);
        assert_eq!(e.extra_member("expires_in"), Some(&json!(250)));
        assert_eq!(e.extra_member("interval"), Some(&json!(5)));
        assert_eq!(e.extra_member("auth_req_id"), Some(&json!(record.id)));
    }
}
