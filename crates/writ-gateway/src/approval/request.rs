//! Request-time approval: a request an approval rule matches is held (403
//! `approval_required`) until a person approves it; its retry passes once.
//!
//! Two phases of the data plane: [`presented`], before authorize, reads the approval a
//! retry carries (the `writ-approval` header, or an approval block appended to the writ)
//! and checks it was given for this very request and writ, so the writ's checks and the
//! tenant's policies see `approved_by(person, method)`; [`check`], after them, holds a
//! request a rule matches unless it carries an approval, and uses that approval once (in
//! the limiter backend's replay store, so once across instances).

use std::time::{Duration, UNIX_EPOCH};

use http::HeaderMap;
use writ_limits::ReplayKind;
use writ_store::{
    ApprovalKind, ApprovalRecord, ApprovalStatus, NewApproval, PendingBounds, StoreError,
};
use writ_token::{RequestFacts, VerifiedWrit, new_approval_id, request_digest, valid_approval_id};

use super::summary::{self, Asker};
use super::{Event, audit, unix_now, visible};
use crate::error::{ApprovalError, GatewayError};
use crate::gateway::Gateway;

/// The header a retry names its approval in.
pub(crate) const APPROVAL_HEADER: &str = "writ-approval";

/// An approval a request carries, checked against it.
#[derive(Debug)]
pub(crate) struct Presented {
    record: ApprovalRecord,
}

/// What the held request is, for the approval's record: its canonical form's digest and
/// the path it was sent to.
pub(crate) struct Asked<'a> {
    /// The path and query the client sent.
    pub(crate) path_and_query: &'a str,
    /// The body as received.
    pub(crate) body: &'a [u8],
}

/// Reads the approval the request carries, if any, and checks it: of this tenant and agent,
/// approved and not used, expired or voided, given for this writ and for exactly this
/// request. Sets `facts.approved_by` to who approved and how they authenticated.
pub(crate) async fn presented(
    gw: &Gateway,
    writ: &VerifiedWrit,
    headers: &HeaderMap,
    facts: &mut RequestFacts,
    asked: &Asked<'_>,
) -> Result<Option<Presented>, GatewayError> {
    let named = named_in_header(headers)?;
    let key = gw.approvals.public_key();
    let carried = if writ.has_block_signed_by(&key) {
        // The last request approval it carries (a mint approval approves no request).
        writ.approvals(&key)?
            .into_iter()
            .rev()
            .find(|s| s.scope == writ_token::ApprovalScope::Request)
    } else {
        None
    };
    let id = match (&named, &carried) {
        (None, None) => return Ok(None),
        (Some(id), None) => id.clone(),
        (None, Some(statement)) => statement.id.clone(),
        (Some(id), Some(statement)) if *id == statement.id => id.clone(),
        (Some(_), Some(_)) => {
            return Err(GatewayError::InvalidRequest {
                reason: format!(
                    "the {APPROVAL_HEADER} header names another approval than the one appended to the writ: present one approval"
                ),
            });
        }
    };
    let (tenant, agent) = writ.acting_agent();
    let record = visible(gw, &id, Some(&writ.claims().tenant)).await?;
    if record.agent != agent || record.tenant != tenant || record.kind != ApprovalKind::Request {
        return Err(ApprovalError::Unknown { id }.into());
    }
    match record.status_at(unix_now(gw)) {
        ApprovalStatus::Approved => {}
        ApprovalStatus::Pending => return Err(ApprovalError::Pending { id }.into()),
        ApprovalStatus::Denied => {
            return Err(ApprovalError::Denied {
                id,
                reason: record.decision_reason.clone(),
            }
            .into());
        }
        ApprovalStatus::Expired => return Err(ApprovalError::Expired { id }.into()),
        ApprovalStatus::Used => return Err(ApprovalError::Used { id }.into()),
        ApprovalStatus::Voided => return Err(ApprovalError::Voided { id }.into()),
    }
    // Bound to the writ: the header works only with the writ the approval was asked with;
    // an appended block is bound by its signature to the block it follows.
    let bound = record.bound_revocation_id().unwrap_or_default();
    let same_writ = match &carried {
        Some(statement) => statement.writ == bound,
        None => writ.last_revocation_id() == bound,
    };
    if !same_writ {
        return Err(ApprovalError::OtherWrit { id }.into());
    }
    if request_digest(facts, asked.path_and_query, asked.body) != record.request_digest {
        return Err(ApprovalError::OtherRequest { id }.into());
    }
    facts.approved_by = Some((
        record.decided_by.clone().unwrap_or_default(),
        record.decided_method.clone().unwrap_or_default(),
    ));
    Ok(Some(Presented { record }))
}

/// The approval id the `writ-approval` header names, if it is present: one value with an
/// approval id's shape ([`ApprovalError::Unknown`] otherwise, as for an unknown id).
fn named_in_header(headers: &HeaderMap) -> Result<Option<String>, GatewayError> {
    let mut values = headers.get_all(APPROVAL_HEADER).iter();
    let Some(value) = values.next() else {
        return Ok(None);
    };
    if values.next().is_some() {
        return Err(GatewayError::InvalidRequest {
            reason: format!(
                "the {APPROVAL_HEADER} header is given more than once: name one approval"
            ),
        });
    }
    match value.to_str().map(str::trim) {
        Ok(id) if valid_approval_id(id) => Ok(Some(id.to_string())),
        _ => Err(ApprovalError::Unknown {
            id: "(malformed id)".to_string(),
        }
        .into()),
    }
}

/// After authorize and the tenant's policies: a request an approval rule of `tenant`
/// matches passes only with an approval ([`presented`]), which it uses up; without one it
/// is held (a pending approval is recorded, its webhook told) and refused with 403
/// `approval_required`. A request no rule matches passes, and an approval it carries is
/// left unused.
pub(crate) async fn check(
    gw: &Gateway,
    snapshot: &crate::tenancy::Snapshot,
    writ: &VerifiedWrit,
    facts: &RequestFacts,
    presented: Option<Presented>,
    asked: &Asked<'_>,
) -> Result<(), GatewayError> {
    let tenant = &writ.claims().tenant;
    let Some(Ok(policy)) = snapshot.policy(tenant) else {
        // No policies, or policies that failed to compile (refused by the policy phase).
        return Ok(());
    };
    if !policy.asks_approval() {
        return Ok(());
    }
    let reason = policy
        .approval_required(facts, gw.clock.now())
        .map_err(|denial| {
            GatewayError::DeniedByPolicy(Box::new(crate::error::PolicyRefusal {
                denial,
                tenant: Some(tenant.clone()),
            }))
        })?;
    let Some(reason) = reason else {
        return Ok(());
    };
    match presented {
        Some(p) => use_once(gw, p.record).await,
        None => Err(hold(gw, writ, facts, &reason.reason, asked).await),
    }
}

/// Uses an approval: the first use across instances wins, any other is `approval_used`.
async fn use_once(gw: &Gateway, record: ApprovalRecord) -> Result<(), GatewayError> {
    let now = gw.clock.now();
    let expires = UNIX_EPOCH + Duration::from_secs(record.expires_at);
    match gw
        .replay
        .record(ReplayKind::Approval, &[&record.id], expires, now)
        .await
    {
        Ok(true) => {}
        Ok(false) => return Err(ApprovalError::Used { id: record.id }.into()),
        Err(_) => return Err(GatewayError::LimiterUnavailable),
    }
    match gw
        .store()
        .finish_approval(&record.id, ApprovalStatus::Used, unix_now(gw))
        .await
    {
        Ok(true) => {
            audit(gw, &record, Event::Used, None, None).await;
            Ok(())
        }
        // Voided (or expired) between the check and now: the stop wins.
        Ok(false) => Err(ApprovalError::Voided { id: record.id }.into()),
        Err(e) => Err(e.into()),
    }
}

/// Records a pending approval for this request and returns the refusal that names it.
async fn hold(
    gw: &Gateway,
    writ: &VerifiedWrit,
    facts: &RequestFacts,
    reason: &str,
    asked: &Asked<'_>,
) -> GatewayError {
    match record_pending(gw, writ, facts, reason, asked).await {
        Ok(record) => {
            audit(gw, &record, Event::Pending, None, None).await;
            super::notify::pending(gw, &record);
            let summary = serde_json::from_str(&record.summary).unwrap_or_default();
            ApprovalError::Required {
                poll_url: poll_url(gw, &record.id),
                id: record.id,
                reason: record.reason,
                expires_at: record.expires_at,
                summary,
            }
            .into()
        }
        Err(e) => e,
    }
}

async fn record_pending(
    gw: &Gateway,
    writ: &VerifiedWrit,
    facts: &RequestFacts,
    reason: &str,
    asked: &Asked<'_>,
) -> Result<ApprovalRecord, GatewayError> {
    let config = gw.approvals.config();
    let now = unix_now(gw);
    let claims = writ.claims();
    let secs = |t: std::time::SystemTime| t.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
    // Never past the writ: the approval is good only with it.
    let expires_at = (now + config.ttl.as_secs()).min(secs(claims.expires_at));
    let (_, agent) = writ.acting_agent();
    let scanner = gw.scanner();
    let own = gw.own_secrets();
    let summary = summary::of_request(
        facts,
        asked.body,
        &Asker {
            tenant: &claims.tenant,
            agent,
            reason,
        },
        &[&own, &scanner],
    );
    let new = NewApproval {
        id: new_approval_id(),
        tenant: claims.tenant.clone(),
        agent: agent.to_string(),
        kind: ApprovalKind::Request,
        reason: reason.to_string(),
        summary_digest: summary::digest(&summary),
        summary: summary.to_string(),
        request_digest: request_digest(facts, asked.path_and_query, asked.body),
        writ_token_id: Some(claims.token_id.clone()),
        writ_revocation_ids: writ.revocation_ids().iter().map(hex::encode).collect(),
        writ_issued_at: Some(secs(claims.issued_at)),
        ticket: Some(writ.approval_ticket()?),
        mint_request: None,
        created_at: now,
        expires_at,
        poll_interval: config.poll_interval.as_secs(),
    };
    let bounds = PendingBounds {
        per_agent: config.max_pending_per_agent,
        per_tenant: config.max_pending_per_tenant,
    };
    gw.store()
        .create_approval(&new, bounds)
        .await
        .map_err(|e| match e {
            StoreError::Refused(why) => ApprovalError::TooManyPending(why).into(),
            e => e.into(),
        })
}

/// Where an agent reads the state of approval `id`.
pub(crate) fn poll_url(gw: &Gateway, id: &str) -> String {
    format!("{}/approvals/{id}", gw.issuer())
}
