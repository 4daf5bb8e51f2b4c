//! The approvals' ledger: deciding, voiding and expiring approvals in the store, each step
//! with its audit record, and the approval key that signs approval blocks. Free of the
//! gateway itself, which holds the key and lends the rest (`Gateway::approval_ledger`).

use std::time::{Duration, UNIX_EPOCH};

use serde_json::json;
use writ_store::{ApprovalKind, ApprovalRecord, ApprovalStatus, Decision, StoreError, VoidMatch};
use writ_token::{ApprovalKey, ApprovalStatement, PublicKey, sign_approval, valid_approval_id};

use crate::audit::Auditor;
use crate::config::ApprovalsConfig;
use crate::error::{ApprovalError, GatewayError};
use writ_store::Store;
use writ_token::Clock;

/// The approval key and settings of this gateway.
pub(crate) struct Approvals {
    key: ApprovalKey,
    config: ApprovalsConfig,
    /// When the periodic sweep next has something to do (Unix seconds): the earliest
    /// expiry of the approvals this instance recorded since its last sweep, or a minute
    /// after it, for approvals other instances recorded. A gateway with no approval
    /// waiting does not query the store every few seconds.
    sweep_due: std::sync::atomic::AtomicU64,
}

impl std::fmt::Debug for Approvals {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Approvals")
            .field("key", &self.key)
            .field("config", &self.config)
            .finish()
    }
}

/// Who decides an approval, and how they proved it.
#[derive(Debug, Clone)]
pub(crate) struct Decider {
    /// The one tenant whose approvals they may decide (`None`: every tenant, the operator).
    pub(crate) tenant: Option<String>,
    /// Their name, as records show it.
    pub(crate) person: String,
    /// How they authenticated: `approver_token`, `admin_writ`, `passkey`.
    pub(crate) method: &'static str,
}

/// What happened to an approval, for its audit record.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Event {
    Pending,
    Approved,
    Denied,
    Used,
    Voided,
    Expired,
}

impl Event {
    fn as_str(self) -> &'static str {
        match self {
            Event::Pending => "approval_pending",
            Event::Approved => "approval_approved",
            Event::Denied => "approval_denied",
            Event::Used => "approval_used",
            Event::Voided => "approval_voided",
            Event::Expired => "approval_expired",
        }
    }
}

impl Approvals {
    /// The approvals of a gateway whose approval key is `key`.
    pub(crate) fn new(key: ApprovalKey, config: ApprovalsConfig) -> Self {
        Self {
            key,
            config,
            sweep_due: std::sync::atomic::AtomicU64::new(0),
        }
    }

    /// Notes that an approval expiring at `at` (Unix seconds) waits: the periodic sweep
    /// looks for expired approvals then at the latest.
    fn expect_expiry(&self, at: u64) {
        self.sweep_due
            .fetch_min(at, std::sync::atomic::Ordering::Relaxed);
    }

    /// The public half of the approval key: the only key approval blocks are read from.
    pub(crate) fn public_key(&self) -> PublicKey {
        self.key.public()
    }

    /// The settings.
    pub(crate) fn config(&self) -> &ApprovalsConfig {
        &self.config
    }

    /// An approval block saying `statement`, for the writ `ticket` was taken from.
    pub(crate) fn sign(
        &self,
        ticket: &[u8],
        statement: &ApprovalStatement,
    ) -> Result<Vec<u8>, GatewayError> {
        sign_approval(&self.key, ticket, statement).map_err(GatewayError::Writ)
    }
}

/// What deciding, voiding and expiring approvals work with: the store, the audit log,
/// the clock and the approval key. The gateway lends one (`Gateway::approval_ledger`).
pub(crate) struct Ledger<'a> {
    pub(crate) store: &'a Store,
    pub(crate) audit: &'a Auditor,
    pub(crate) clock: &'a dyn Clock,
    pub(crate) approvals: &'a Approvals,
}

impl Ledger<'_> {
    /// Unix seconds on the gateway's clock.
    pub(crate) fn now(&self) -> u64 {
        self.clock
            .now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_secs())
    }
}

/// The approval `id` as `decider` may see it: [`ApprovalError::Unknown`] when the id is
/// malformed, unknown, or of a tenant they do not decide for (the same answer, so ids of
/// other tenants cannot be probed).
pub(crate) async fn visible(
    gw: &Ledger<'_>,
    id: &str,
    tenant: Option<&str>,
) -> Result<ApprovalRecord, GatewayError> {
    let unknown = || ApprovalError::Unknown {
        id: if valid_approval_id(id) {
            id.to_string()
        } else {
            "(malformed id)".to_string()
        },
    };
    if !valid_approval_id(id) {
        return Err(unknown().into());
    }
    match gw.store.approval(id).await? {
        Some(record) if tenant.is_none_or(|t| t == record.tenant) => Ok(record),
        _ => Err(unknown().into()),
    }
}

/// Records `decider`'s decision on the pending approval `id`: for an approved request,
/// signs the approval block bound to its writ and request digest. Writes the audit record.
pub(crate) async fn decide(
    gw: &Ledger<'_>,
    id: &str,
    decider: &Decider,
    approve: bool,
    reason: Option<String>,
) -> Result<ApprovalRecord, GatewayError> {
    let record = visible(gw, id, decider.tenant.as_deref()).await?;
    let now = gw.now();
    let status = record.status_at(now);
    if status != ApprovalStatus::Pending {
        return Err(ApprovalError::NotPending {
            id: record.id,
            status: status.as_str(),
        }
        .into());
    }
    let block = match (&record.kind, &record.ticket, approve) {
        (ApprovalKind::Request, Some(ticket), true) => {
            let statement = ApprovalStatement {
                scope: writ_token::ApprovalScope::Request,
                id: record.id.clone(),
                approved_by: decider.person.clone(),
                method: decider.method.to_string(),
                approved_at: UNIX_EPOCH + Duration::from_secs(now),
                expires_at: UNIX_EPOCH + Duration::from_secs(record.expires_at),
                request_digest: record.request_digest.clone(),
                writ: record.bound_revocation_id().unwrap_or_default().to_string(),
            };
            Some(gw.approvals.sign(ticket, &statement)?)
        }
        _ => None,
    };
    let decision = Decision {
        approve,
        by: decider.person.clone(),
        method: decider.method.to_string(),
        reason: reason.clone(),
        at: now,
        block,
    };
    let decided = match gw.store.decide_approval(id, &decision).await {
        Ok(decided) => decided,
        Err(StoreError::Refused(_)) => {
            // Another person (or gateway) decided first, or it expired meanwhile.
            let now_status = gw
                .store
                .approval(id)
                .await?
                .map_or(ApprovalStatus::Expired, |r| r.status_at(gw.now()));
            return Err(ApprovalError::NotPending {
                id: id.to_string(),
                status: now_status.as_str(),
            }
            .into());
        }
        Err(e) => return Err(e.into()),
    };
    let event = if approve {
        Event::Approved
    } else {
        Event::Denied
    };
    audit(gw, &decided, event, Some(decider), reason.as_deref()).await;
    Ok(decided)
}

/// Voids the pending and approved approvals a stop reaches, each with its audit record.
/// A failure is logged, not returned: the stop itself already holds, and a voided
/// approval's writ is refused anyway.
pub(crate) async fn void(gw: &Ledger<'_>, matching: VoidMatch<'_>) {
    match gw.store.void_approvals(&matching, gw.now()).await {
        Ok(voided) => {
            for record in &voided {
                audit(gw, record, Event::Voided, None, None).await;
            }
        }
        Err(e) => tracing::error!(error = %e, "approvals of a stopped writ not voided"),
    }
}

/// How often the periodic sweep looks for approvals other instances recorded.
const SWEEP_EVERY: u64 = 60;

/// [`sweep`] when it may have something to do (see `Approvals::sweep_due`): for the
/// server's periodic task. An expired approval gets its record at most a minute late; its
/// status reads expired at once all the same.
pub(crate) async fn sweep_if_due(gw: &Ledger<'_>) {
    let now = gw.now();
    let due = &gw.approvals.sweep_due;
    if now < due.load(std::sync::atomic::Ordering::Relaxed) {
        return;
    }
    due.store(now + SWEEP_EVERY, std::sync::atomic::Ordering::Relaxed);
    sweep(gw).await;
}

/// Marks the approvals past their expiry as expired, each with its audit record (once,
/// whichever gateway sweeps first).
pub(crate) async fn sweep(gw: &Ledger<'_>) {
    match gw.store.expire_approvals(gw.now()).await {
        Ok(expired) => {
            for record in &expired {
                audit(gw, record, Event::Expired, None, None).await;
            }
        }
        Err(e) => tracing::warn!(error = %e, "expired approvals not swept"),
    }
}

/// Writes the audit record of `event` for `record`: who asked, what for (the reason, the
/// request's and the summary's digests), and for a decision who decided and how they
/// authenticated. Never the summary's text or any argument.
pub(crate) async fn audit(
    gw: &Ledger<'_>,
    record: &ApprovalRecord,
    event: Event,
    decider: Option<&Decider>,
    reason: Option<&str>,
) {
    let mut audit = crate::audit::record_at(writ_audit::Kind::Approval, gw.clock.now());
    audit.tenant = Some(record.tenant.clone());
    audit.agent = Some(record.agent.clone());
    audit.writ = record
        .writ_token_id
        .as_deref()
        .map(|t| gw.audit.pseudonym(t));
    audit.operation = Some(event.as_str().to_string());
    let mut detail = serde_json::Map::new();
    detail.insert("approval".into(), json!(record.id));
    detail.insert("kind".into(), json!(record.kind.as_str()));
    detail.insert("reason".into(), json!(record.reason));
    detail.insert("request_digest".into(), json!(record.request_digest));
    detail.insert("summary_digest".into(), json!(record.summary_digest));
    detail.insert("expires_at".into(), json!(record.expires_at));
    if let Some(d) = decider {
        detail.insert("decided_by".into(), json!(d.person));
        detail.insert("authenticated_by".into(), json!(d.method));
    }
    if let Some(r) = reason {
        detail.insert("decision_reason".into(), json!(r));
    }
    audit.detail = Some(detail);
    gw.audit.record(audit).await;
    if event == Event::Pending {
        gw.approvals.expect_expiry(record.expires_at);
    }
}

/// What every approver token starts with.
pub(crate) const APPROVER_TOKEN_PREFIX: &str = "wap_";

/// The SHA-256 (hex) an approver token is stored and looked up as (a token is 256 random
/// bits, so no slow hash is needed).
pub(crate) fn approver_token_hash(token: &str) -> String {
    use sha2::Digest;
    hex::encode(sha2::Sha256::digest(token.as_bytes()))
}

/// The approval key (`keys/approval.key`), generated at the first start.
pub(crate) fn load_key(data: &writ_store::DataDir) -> Result<writ_token::ApprovalKey, StoreError> {
    let text = data.secret("approval.key", || {
        writ_token::ApprovalKey::generate().private_hex()
    })?;
    writ_token::ApprovalKey::from_private_hex(&text).map_err(|_| StoreError::InvalidKeyFile {
        path: data.path().join("keys").join("approval.key"),
    })
}

/// The approvals a revocation reaches.
pub(crate) fn stopped_by(revocation: &writ_token::Revocation) -> VoidMatch<'_> {
    match revocation {
        writ_token::Revocation::TokenId { token_id } => VoidMatch::TokenId(token_id),
        writ_token::Revocation::RevocationId { revocation_id } => {
            VoidMatch::RevocationId(revocation_id)
        }
        writ_token::Revocation::Agent { tenant, agent } => VoidMatch::Agent { tenant, agent },
        writ_token::Revocation::Tenant { tenant } => VoidMatch::Tenant(tenant),
        writ_token::Revocation::IssuedBefore { tenant, before } => VoidMatch::IssuedBefore {
            tenant: tenant.as_deref(),
            before: *before,
        },
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use writ_store::{NewApproval, PendingBounds};
    use writ_token::ManualClock;

    use super::*;
    use crate::pipeline::fixture::{Fixture, t0};

    fn pending(now: u64, expires_at: u64) -> NewApproval {
        NewApproval {
            id: writ_token::new_approval_id(),
            tenant: "default".into(),
            agent: "demo".into(),
            kind: writ_store::ApprovalKind::Request,
            reason: "r".into(),
            summary: "{}".into(),
            summary_digest: String::new(),
            request_digest: String::new(),
            writ_token_id: None,
            writ_revocation_ids: Vec::new(),
            writ_issued_at: Some(now),
            ticket: None,
            mint_request: None,
            created_at: now,
            expires_at,
            poll_interval: 5,
        }
    }

    #[tokio::test]
    async fn the_periodic_sweep_asks_the_store_only_when_something_may_have_expired() {
        let f = Fixture::start("").await;
        let clock = ManualClock::new(t0());
        let ledger = Ledger {
            store: f.gw.store(),
            audit: &f.gw.audit,
            clock: &clock,
            approvals: &f.gw.approvals,
        };
        let bounds = PendingBounds {
            per_agent: 10,
            per_tenant: 10,
        };
        let now = ledger.now();
        // The first tick sweeps; the next minute has nothing due.
        sweep_if_due(&ledger).await;
        // Recorded by another instance: this one does not know of it.
        let elsewhere = ledger
            .store
            .create_approval(&pending(now, now + 10), bounds)
            .await
            .expect("recorded");
        clock.advance(Duration::from_secs(11));
        sweep_if_due(&ledger).await;
        let status = |id: String| async move {
            ledger
                .store
                .approval(&id)
                .await
                .expect("read")
                .expect("stored")
                .status
        };
        assert_eq!(
            status(elsewhere.id.clone()).await,
            writ_store::ApprovalStatus::Pending,
            "not swept before the minute is up"
        );
        // Recorded here (its pending record written): swept as soon as it expires.
        let now = ledger.now();
        let here = ledger
            .store
            .create_approval(&pending(now, now + 5), bounds)
            .await
            .expect("recorded");
        audit(&ledger, &here, Event::Pending, None, None).await;
        clock.advance(Duration::from_secs(6));
        sweep_if_due(&ledger).await;
        assert_eq!(status(here.id).await, writ_store::ApprovalStatus::Expired);
        assert_eq!(
            status(elsewhere.id).await,
            writ_store::ApprovalStatus::Expired,
            "the same sweep takes every expired one"
        );
    }
}
