//! The CIBA polling grant (OpenID CIBA Core 1.0, poll mode): an agent whose mint is held
//! for approval polls with its `auth_req_id` until a person decides, and gets the writ,
//! carrying the approval block, exactly once.
//!
//! Answers, all as RFC 6749 §5.2 errors until the writ is issued: `authorization_pending`
//! (keep polling), `slow_down` (polled sooner than `interval`: the interval grows by 5
//! seconds), `access_denied` (a person said no; their reason is in the description),
//! `expired_token`, and `invalid_grant` for an id this client does not own, an unknown id,
//! and one whose writ was issued already: the same answer, so ids cannot be probed.

use std::time::{Duration, UNIX_EPOCH};

use serde_json::json;
use writ_store::{Agent, ApprovalKind, ApprovalRecord, ApprovalStatus, PollPace};
use writ_token::{ApprovalStatement, append_approval, valid_approval_id};

use super::mint_approval::{self, MintPlan};
use super::oauth_error::{OAuthError, OAuthErrorCode};
use crate::approval::{self, Event};
use crate::gateway::Gateway;

/// Longest `auth_req_id` read; the ids this endpoint gives are 26 bytes.
const MAX_AUTH_REQ_ID_BYTES: usize = 64;

/// The `auth_req_id` of a poll, checked for shape before anything is looked up.
pub(super) fn auth_req_id(raw: Option<&str>) -> Result<&str, OAuthError> {
    let id = raw.ok_or_else(|| {
        OAuthError::invalid_request(format!(
            "auth_req_id is required with grant_type={}: send the one the token endpoint answered authorization_pending with",
            mint_approval::CIBA_GRANT_TYPE
        ))
    })?;
    if id.len() > MAX_AUTH_REQ_ID_BYTES || !valid_approval_id(id) {
        return Err(OAuthError::invalid_request(
            "auth_req_id is malformed: send it exactly as the token endpoint answered it (apr_ and 22 characters)",
        ));
    }
    Ok(id)
}

fn unknown() -> OAuthError {
    OAuthError::invalid_grant(
        "auth_req_id is not a pending or approved request of this client: ask for the writ again",
    )
}

/// The approved mint `id` of `agent` and what to mint, or the CIBA answer for where it
/// stands. A pending one notes the poll (`slow_down` when too early).
pub(super) async fn approved(
    gw: &Gateway,
    agent: &Agent,
    id: &str,
) -> Result<(ApprovalRecord, MintPlan), OAuthError> {
    let unavailable = |e: writ_store::StoreError| {
        tracing::error!(error = %e, "approval store unavailable at a CIBA poll");
        OAuthError::server("the approval store is unavailable; poll again shortly")
    };
    let record = gw
        .store()
        .approval(id)
        .await
        .map_err(unavailable)?
        .filter(|r| {
            r.kind == ApprovalKind::Mint && r.tenant == agent.tenant && r.agent == agent.name
        })
        .ok_or_else(unknown)?;
    let now = approval::unix_now(gw);
    match record.status_at(now) {
        ApprovalStatus::Pending => {
            match gw
                .store()
                .note_approval_poll(id, now)
                .await
                .map_err(unavailable)?
            {
                PollPace::SlowDown(interval) => Err(OAuthError::new(
                    OAuthErrorCode::PollTooFast,
                    format!("polled too soon: wait at least {interval} seconds between polls"),
                )
                .with("interval", json!(interval))),
                PollPace::InTime => Err(mint_approval::pending(&record, now)),
            }
        }
        ApprovalStatus::Approved => {
            let plan = record
                .mint_request
                .as_deref()
                .and_then(|text| serde_json::from_str::<MintPlan>(text).ok())
                .ok_or_else(|| {
                    tracing::error!(approval = %record.id, "approved mint holds no readable mint request");
                    OAuthError::server("the approved request cannot be read; ask for the writ again")
                })?;
            Ok((record, plan))
        }
        ApprovalStatus::Denied => Err(OAuthError::new(
            OAuthErrorCode::AccessDenied,
            match record.decision_reason.as_deref() {
                Some(reason) => format!("a person denied this writ: {reason}"),
                None => "a person denied this writ (no reason given)".to_string(),
            },
        )),
        ApprovalStatus::Expired => Err(OAuthError::new(
            OAuthErrorCode::ExpiredToken,
            "auth_req_id expired before the writ was approved and issued: ask for the writ again",
        )),
        ApprovalStatus::Voided => Err(OAuthError::new(
            OAuthErrorCode::AccessDenied,
            "the approval was voided by a stop of this agent or its tenant: ask for the writ again once the stop is lifted",
        )),
        ApprovalStatus::Used => Err(unknown()),
    }
}

/// `writ` (minted for the approved `record`) with its approval block appended: signed by
/// the approval key, stating who approved, how, the mint's digest, the revocation id of
/// the writ's last block and the writ's expiry.
pub(super) fn seal(
    gw: &Gateway,
    record: &ApprovalRecord,
    writ: &str,
) -> Result<String, OAuthError> {
    let failed = |e: writ_token::WritError| {
        tracing::error!(error = %e, approval = %record.id, "approval block not made");
        OAuthError::server("the approval could not be attached to the writ; poll again")
    };
    let verified = writ_token::decode(writ)
        .and_then(|w| w.verify(&gw.keys().trusted))
        .map_err(failed)?;
    let statement = ApprovalStatement {
        scope: writ_token::ApprovalScope::Mint,
        id: record.id.clone(),
        approved_by: record.decided_by.clone().unwrap_or_default(),
        method: record.decided_method.clone().unwrap_or_default(),
        approved_at: UNIX_EPOCH + Duration::from_secs(record.decided_at.unwrap_or_default()),
        expires_at: verified.claims().expires_at,
        request_digest: record.request_digest.clone(),
        writ: verified.last_revocation_id(),
    };
    let ticket = verified.approval_ticket().map_err(failed)?;
    let block = gw.approvals.sign(&ticket, &statement).map_err(|e| {
        tracing::error!(error = %e, approval = %record.id, "approval block not signed");
        OAuthError::server("the approval could not be attached to the writ; poll again")
    })?;
    append_approval(writ, &block).map_err(failed)
}

/// Marks the approval used, exactly once across gateways, and writes its `used` record
/// naming the writ (`token_id`). A poll that lost the race gets `invalid_grant`.
pub(super) async fn use_once(
    gw: &Gateway,
    record: &ApprovalRecord,
    token_id: &str,
) -> Result<(), OAuthError> {
    let won = gw
        .store()
        .finish_approval(&record.id, ApprovalStatus::Used, approval::unix_now(gw))
        .await
        .map_err(|e| {
            tracing::error!(error = %e, "approval not marked used");
            OAuthError::server("the approval store is unavailable; poll again shortly")
        })?;
    if !won {
        return Err(unknown());
    }
    let mut used = record.clone();
    used.status = ApprovalStatus::Used;
    used.writ_token_id = Some(token_id.to_string());
    approval::audit(gw, &used, Event::Used, None, None).await;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_missing_oversized_or_malformed_id_is_an_invalid_request() {
        for raw in [
            None,
            Some(""),
            Some("apr_"),
            Some("apr_AAAAAAAAAAAAAAAAAAAAA!"),
            Some("xyz_AAAAAAAAAAAAAAAAAAAAAA"),
        ] {
            let e = auth_req_id(raw).expect_err("refused");
            assert_eq!(e.code, OAuthErrorCode::InvalidRequest, "{raw:?}");
        }
        let long = format!("apr_{}", "A".repeat(10_000));
        assert_eq!(
            auth_req_id(Some(&long)).expect_err("refused").code,
            OAuthErrorCode::InvalidRequest
        );
        let good = writ_token::new_approval_id();
        assert_eq!(auth_req_id(Some(&good)).ok(), Some(good.as_str()));
    }
}
