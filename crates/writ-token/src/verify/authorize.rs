//! Authorizing a request with a verified writ: the Datalog authorizer over every block,
//! and the writ's memory of its last allow and its last refusal, which answer a repeated
//! request for as long as the writ's Datalog cannot tell one second from another.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use biscuit_auth::AuthorizerBuilder;
use biscuit_auth::error::{self, FailedCheck, Logic};
use sha2::{Digest, Sha256};

use super::{Authorization, VerifiedWrit, queries, run_limits};
use crate::error::{Denial, WritError};
use crate::facts::RequestFacts;
use crate::verification::{Allowed, Denied, Reach};

impl VerifiedWrit {
    /// Checks the request against every block of the writ at time `now`.
    pub fn authorize(
        &self,
        facts: &RequestFacts,
        now: SystemTime,
    ) -> Result<Authorization, WritError> {
        match self.authorize_within(facts, now, u64::MAX)? {
            Some(authorization) => Ok(authorization),
            // Unreachable: no bound exceeds `u64::MAX`, so every evaluation runs.
            None => Err(crate::DatalogError::TooCostly {
                block: 0,
                max: crate::MAX_WORK_PER_WRIT,
            }
            .into()),
        }
    }

    /// Like [`authorize`](Self::authorize), but answers `Ok(None)` without evaluating when
    /// the evaluation could cost more than `max_work` units (see
    /// [`evaluation_work`](Self::evaluation_work)): the caller then runs
    /// [`authorize`](Self::authorize) where a costly evaluation holds nobody up. A request
    /// the memo answers is answered whatever its bound.
    pub fn authorize_within(
        &self,
        facts: &RequestFacts,
        now: SystemTime,
        max_work: u64,
    ) -> Result<Option<Authorization>, WritError> {
        self.decide(facts, now, max_work, Remember::Refusals)
    }

    /// [`authorize_within`](Self::authorize_within), remembering a refusal only when
    /// `remember` says so: the facts explaining a refusal tries (lower caps) are not what
    /// the agent asked, and must not displace the refusal it will ask again.
    pub(crate) fn decide(
        &self,
        facts: &RequestFacts,
        now: SystemTime,
        max_work: u64,
        remember: Remember,
    ) -> Result<Option<Authorization>, WritError> {
        // Compare at the one-second resolution of Biscuit dates, as the Datalog check does.
        let now_secs = now.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
        let now = UNIX_EPOCH + Duration::from_secs(now_secs);
        let v = &self.verification;
        if now > v.claims.expires_at {
            return Err(WritError::Expired {
                at: v.claims.expires_at,
            });
        }
        let allowed = || Authorization {
            token_id: v.claims.token_id.clone(),
            tenant: v.claims.tenant.clone(),
            agent: v.claims.agent.clone(),
        };
        let mut encoded = Vec::with_capacity(128);
        facts.encode_into(&mut encoded);
        let digest: [u8; 32] = Sha256::digest(&encoded).into();
        if let Ok(mut last) = v.last_allowed.lock()
            && let Some(a) = last.as_mut()
            && a.reach.answers(now_secs, &digest)
        {
            // Answered from the memo a second time: if it holds for the rest of the writ's
            // life, requests like this one never need the parsed token again.
            if !a.repeated && a.reach.through >= self.expires_secs() {
                v.parsed.release();
            }
            a.repeated = true;
            return Ok(Some(allowed()));
        }
        // A writ minted here: the same request allowed to a writ of its shape, by a
        // decision that holds this second, is allowed to it (see `shape`).
        if let Some(shape) = v.shape
            && crate::shape::allowed(shape, &digest, now_secs)
        {
            self.remember_allowed(now_secs, digest);
            return Ok(Some(allowed()));
        }
        // The same request refused this second, or within the seconds that refusal holds.
        if let Ok(last) = v.last_denied.lock()
            && let Some(d) = last.as_ref()
            && d.reach.answers(now_secs, &digest)
        {
            return Err(WritError::Denied(d.denial.clone()));
        }
        let loaded = self.biscuit()?;
        // Bounded before it runs: the library's own limits do not stop a costly check.
        if loaded.checks.work(facts)? > max_work {
            return Ok(None);
        }
        v.evaluations
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let mut builder = AuthorizerBuilder::new().set_limits(run_limits());
        for fact in facts.to_facts(now) {
            builder = builder.fact(fact).map_err(denied_by)?;
        }
        // Exactly one allow policy (see `Queries`); every block's checks must also pass.
        let mut authorizer = builder
            .policy(queries()?.allow.clone())
            .map_err(denied_by)?
            .build(&loaded.biscuit)
            .map_err(denied_by)?;
        if let Err(e) = authorizer.authorize() {
            // Only a refusal by the checks and policies is the Datalog's answer; a run limit
            // (which counts wall-clock time too) or another failure is decided again.
            let decided = matches!(
                e,
                error::Token::FailedLogic(
                    Logic::Unauthorized { .. } | Logic::NoMatchingPolicy { .. }
                )
            );
            let error = denied_by(e);
            if decided
                && remember == Remember::Refusals
                && let WritError::Denied(denial) = &error
            {
                self.remember_denied(now_secs, digest, denial.clone());
            }
            return Err(error);
        }
        let through = self.remember_allowed(now_secs, digest);
        if let Some(shape) = v.shape {
            crate::shape::remember(shape, digest, now_secs, through);
        }
        Ok(Some(allowed()))
    }

    /// What a decision made at second `now_secs` on the facts hashed as `facts` answers:
    /// through the writ's time bound, or past it (decided by a branch that does not read
    /// the time) only this second.
    fn reach(&self, now_secs: u64, facts: [u8; 32]) -> Reach {
        let through = self
            .holds_through()
            .filter(|&b| b >= now_secs)
            .unwrap_or(now_secs);
        Reach {
            from: now_secs,
            through,
            facts,
        }
    }

    /// Remembers that the request whose facts hash to `facts` was refused with `denial`
    /// at second `now_secs`.
    fn remember_denied(&self, now_secs: u64, facts: [u8; 32], denial: Denial) {
        let reach = self.reach(now_secs, facts);
        if let Ok(mut last) = self.verification.last_denied.lock() {
            *last = Some(Box::new(Denied { reach, denial }));
        }
    }

    /// Remembers that the request whose facts hash to `facts` was allowed at second
    /// `now_secs`; returns the last second that decision holds for.
    fn remember_allowed(&self, now_secs: u64, facts: [u8; 32]) -> u64 {
        let reach = self.reach(now_secs, facts);
        if let Ok(mut last) = self.verification.last_allowed.lock() {
            *last = Some(Allowed {
                reach,
                repeated: false,
            });
        }
        reach.through
    }
}

/// Whether an evaluation's refusal is remembered ([`VerifiedWrit::decide`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Remember {
    /// A request as the agent sent it: its refusal is remembered.
    Refusals,
    /// Facts tried to explain a refusal: only an allow is remembered.
    AllowsOnly,
}

fn denied_by(e: error::Token) -> WritError {
    let failed = |checks: Vec<FailedCheck>| {
        checks
            .into_iter()
            .map(|c| match c {
                FailedCheck::Block(b) => (b.block_id, b.rule),
                FailedCheck::Authorizer(a) => (u32::MAX, a.rule),
            })
            .collect()
    };
    let denial = match e {
        error::Token::FailedLogic(Logic::Unauthorized { checks, .. })
        | error::Token::FailedLogic(Logic::NoMatchingPolicy { checks }) => Denial {
            failed_checks: failed(checks),
            run_limit: false,
        },
        error::Token::RunLimit(_) => Denial {
            failed_checks: vec![],
            run_limit: true,
        },
        _ => Denial {
            failed_checks: vec![],
            run_limit: false,
        },
    };
    WritError::Denied(denial)
}
