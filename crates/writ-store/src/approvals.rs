//! Approvals (requests and mints held for a person's yes) and approvers (the people who
//! give it, each with a token of their own).
//!
//! An approval moves from `pending` to `approved` or `denied` once, by a conditional
//! update, so two people (or two gateways) deciding at once cannot both win; an approved
//! one ends `used` once, the same way. `expired` is written by whoever notices first
//! ([`Store::expire_approvals`]); until then a pending approval past its expiry reads as
//! expired all the same. Approvals are not configuration: they are read where they are
//! needed and never go through the change feed.

use sqlx::Row;

use crate::error::StoreError;
use crate::store::{Store, secs, unsecs};

/// What an approval holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ApprovalKind {
    /// One data-plane request, bound to its writ and its digest.
    Request,
    /// The minting of a writ at the token endpoint (CIBA-style polling).
    Mint,
}

impl ApprovalKind {
    /// Its stored (and API) name.
    pub fn as_str(self) -> &'static str {
        match self {
            ApprovalKind::Request => "request",
            ApprovalKind::Mint => "mint",
        }
    }

    fn parse(s: &str) -> Option<Self> {
        match s {
            "request" => Some(ApprovalKind::Request),
            "mint" => Some(ApprovalKind::Mint),
            _ => None,
        }
    }
}

/// Where an approval stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ApprovalStatus {
    /// Waiting for a person.
    Pending,
    /// A person said yes; not used yet.
    Approved,
    /// A person said no.
    Denied,
    /// Used once: the request went through, or the writ was issued.
    Used,
    /// Its writ, agent or tenant was stopped before it was used.
    Voided,
    /// Nobody decided (or it was not used) before its expiry.
    Expired,
}

impl ApprovalStatus {
    /// Its stored (and API) name.
    pub fn as_str(self) -> &'static str {
        match self {
            ApprovalStatus::Pending => "pending",
            ApprovalStatus::Approved => "approved",
            ApprovalStatus::Denied => "denied",
            ApprovalStatus::Used => "used",
            ApprovalStatus::Voided => "voided",
            ApprovalStatus::Expired => "expired",
        }
    }

    /// The status named `s`, if any.
    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "pending" => ApprovalStatus::Pending,
            "approved" => ApprovalStatus::Approved,
            "denied" => ApprovalStatus::Denied,
            "used" => ApprovalStatus::Used,
            "voided" => ApprovalStatus::Voided,
            "expired" => ApprovalStatus::Expired,
            _ => return None,
        })
    }
}

/// A new approval, as the gateway asks for it.
#[derive(Debug, Clone)]
pub struct NewApproval {
    /// `apr_…` (random, 128 bits).
    pub id: String,
    /// The tenant of the agent asking.
    pub tenant: String,
    /// The agent asking.
    pub agent: String,
    /// What is held.
    pub kind: ApprovalKind,
    /// The reason the approval rule states.
    pub reason: String,
    /// What the person deciding is shown (JSON, secrets already redacted).
    pub summary: String,
    /// SHA-256 (hex) of the summary's canonical JSON.
    pub summary_digest: String,
    /// SHA-256 (hex) of the canonical request (or mint) the approval binds to.
    pub request_digest: String,
    /// The token id of the writ the request came with (request approvals).
    pub writ_token_id: Option<String>,
    /// Revocation ids (hex) of every block of that writ, authority first; the last is the
    /// one the approval is bound to.
    pub writ_revocation_ids: Vec<String>,
    /// When that writ was issued (Unix seconds).
    pub writ_issued_at: Option<u64>,
    /// What an approval block for that writ must be made for (no secret).
    pub ticket: Option<Vec<u8>>,
    /// What to mint once approved (mint approvals; JSON, no secret).
    pub mint_request: Option<String>,
    /// Unix seconds.
    pub created_at: u64,
    /// Unix seconds; never after the writ's expiry.
    pub expires_at: u64,
    /// Seconds a client is asked to wait between polls.
    pub poll_interval: u64,
}

/// How many approvals may wait at once.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PendingBounds {
    /// For one agent.
    pub per_agent: u64,
    /// For one tenant.
    pub per_tenant: u64,
}

/// A person's decision.
#[derive(Debug, Clone)]
pub struct Decision {
    /// Yes or no.
    pub approve: bool,
    /// Who decided (an approver's name, or the operator).
    pub by: String,
    /// How they authenticated (`approver_token`, `admin_writ`, `passkey`).
    pub method: String,
    /// Why, as they said it.
    pub reason: Option<String>,
    /// Unix seconds.
    pub at: u64,
    /// The signed approval block (request approvals that were approved).
    pub block: Option<Vec<u8>>,
}

/// One approval as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApprovalRecord {
    /// `apr_…`.
    pub id: String,
    /// The tenant of the agent that asked.
    pub tenant: String,
    /// The agent that asked.
    pub agent: String,
    /// What is held.
    pub kind: ApprovalKind,
    /// Where it stands, as stored (see [`ApprovalRecord::status_at`]).
    pub status: ApprovalStatus,
    /// The approval rule's reason.
    pub reason: String,
    /// What the person deciding is shown (JSON).
    pub summary: String,
    /// SHA-256 (hex) of the summary's canonical JSON.
    pub summary_digest: String,
    /// SHA-256 (hex) of the canonical request or mint.
    pub request_digest: String,
    /// The writ's token id (request approvals).
    pub writ_token_id: Option<String>,
    /// Revocation ids (hex) of the writ's blocks, authority first.
    pub writ_revocation_ids: Vec<String>,
    /// When the writ was issued (Unix seconds).
    pub writ_issued_at: Option<u64>,
    /// What an approval block must be made for.
    pub ticket: Option<Vec<u8>>,
    /// What to mint once approved (JSON).
    pub mint_request: Option<String>,
    /// Unix seconds.
    pub created_at: u64,
    /// Unix seconds.
    pub expires_at: u64,
    /// Who decided.
    pub decided_by: Option<String>,
    /// How they authenticated.
    pub decided_method: Option<String>,
    /// Unix seconds.
    pub decided_at: Option<u64>,
    /// Why, as they said it.
    pub decision_reason: Option<String>,
    /// The signed approval block, once approved (request approvals).
    pub block: Option<Vec<u8>>,
    /// Seconds a client is asked to wait between polls (grows on `slow_down`).
    pub poll_interval: u64,
    /// Unix seconds before which a poll is too early.
    pub next_poll_at: u64,
    /// When it was used, voided or marked expired (Unix seconds).
    pub finished_at: Option<u64>,
}

impl ApprovalRecord {
    /// Where it stands at `now`: a pending or approved (unused) approval past its expiry
    /// is expired, whether or not that was written yet.
    pub fn status_at(&self, now: u64) -> ApprovalStatus {
        match self.status {
            ApprovalStatus::Pending | ApprovalStatus::Approved if now >= self.expires_at => {
                ApprovalStatus::Expired
            }
            s => s,
        }
    }

    /// The revocation id (hex) the approval is bound to: the writ's last block.
    pub fn bound_revocation_id(&self) -> Option<&str> {
        self.writ_revocation_ids.last().map(String::as_str)
    }
}

/// Which approvals a listing returns, newest first.
#[derive(Debug, Clone, Default)]
pub struct ApprovalFilter {
    /// Only of this tenant.
    pub tenant: Option<String>,
    /// Only of this agent (of `tenant`).
    pub agent: Option<String>,
    /// Only with this stored status (`Pending` also leaves out those past expiry).
    pub status: Option<ApprovalStatus>,
    /// At most this many (capped at 1000).
    pub limit: u64,
}

/// What a poll found: whether it came too early (and the interval now asked for).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PollPace {
    /// Polled no sooner than asked.
    InTime,
    /// Polled too early: wait this many seconds (the interval, grown by 5).
    SlowDown(u64),
}

/// Which approvals a stop voids: those of a writ (by token id, or by a revocation id of
/// any of its blocks), of an agent, of a tenant, or of writs issued before a time.
#[derive(Debug, Clone)]
pub enum VoidMatch<'a> {
    /// Approvals for the writ with this token id.
    TokenId(&'a str),
    /// Approvals for writs with a block of this revocation id (hex).
    RevocationId(&'a str),
    /// Approvals asked by this agent.
    Agent {
        /// Its tenant.
        tenant: &'a str,
        /// The agent.
        agent: &'a str,
    },
    /// Approvals of this tenant.
    Tenant(&'a str),
    /// Approvals for writs issued before this time (Unix seconds), in one tenant or all.
    IssuedBefore {
        /// The tenant, or every tenant.
        tenant: Option<&'a str>,
        /// Unix seconds.
        before: u64,
    },
}

/// A person who may decide approvals of one tenant.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct ApproverRecord {
    /// The tenant whose approvals they decide.
    pub tenant: String,
    /// Their name, as approval records show it.
    pub name: String,
    /// Unix seconds.
    pub created_at: u64,
}

const COLUMNS: &str = "id, tenant, agent, kind, status, reason, summary, summary_digest, \
     request_digest, writ_token_id, writ_revocation_ids, writ_issued_at, ticket, mint_request, \
     created_at, expires_at, decided_by, decided_method, decided_at, decision_reason, block, \
     poll_interval, next_poll_at, finished_at";

impl Store {
    /// Records a pending approval, unless the agent or its tenant already has `bounds`
    /// approvals waiting (not expired): then [`StoreError::Refused`] says which bound.
    /// Count and insert hold the tenant's write turn, so gateways asking at once on one
    /// database cannot together pass a bound.
    pub async fn create_approval(
        &self,
        new: &NewApproval,
        bounds: PendingBounds,
    ) -> Result<ApprovalRecord, StoreError> {
        let mut tx = self.pool.begin().await?;
        match self.backend {
            // One transaction at a time per tenant, until this one ends.
            crate::store::Backend::Postgres => {
                sqlx::query("SELECT CAST(pg_advisory_xact_lock(hashtext($1)) AS TEXT)")
                    .bind(format!("writ approvals {}", new.tenant))
                    .fetch_optional(&mut *tx)
                    .await?;
            }
            // A write first takes the database's write lock (waiting on the busy
            // timeout), so no other writer counts between this count and this insert.
            crate::store::Backend::Sqlite => {
                sqlx::query("UPDATE approvals SET status = status WHERE 1 = 0")
                    .execute(&mut *tx)
                    .await?;
            }
        }
        let waiting = |agent: Option<&str>| {
            sqlx::query(
                "SELECT COUNT(*) AS n FROM approvals WHERE tenant = $1 AND status = 'pending'
                 AND expires_at > $2 AND (agent = $3 OR $3 = '')",
            )
            .bind(new.tenant.clone())
            .bind(secs(new.created_at))
            .bind(agent.unwrap_or("").to_string())
        };
        let count = |row: sqlx::any::AnyRow| -> Result<u64, StoreError> {
            Ok(unsecs(row.try_get::<i64, _>("n")?))
        };
        let by_agent = count(waiting(Some(&new.agent)).fetch_one(&mut *tx).await?)?;
        if by_agent >= bounds.per_agent {
            return Err(StoreError::Refused(format!(
                "agent `{}` already has {by_agent} approvals waiting, the most allowed: wait for a decision or for them to expire",
                new.agent
            )));
        }
        let by_tenant = count(waiting(None).fetch_one(&mut *tx).await?)?;
        if by_tenant >= bounds.per_tenant {
            return Err(StoreError::Refused(format!(
                "tenant `{}` already has {by_tenant} approvals waiting, the most allowed: wait for decisions or for them to expire",
                new.tenant
            )));
        }
        sqlx::query(
            "INSERT INTO approvals (id, tenant, agent, kind, status, reason, summary,
                 summary_digest, request_digest, writ_token_id, writ_revocation_ids,
                 writ_issued_at, ticket, mint_request, created_at, expires_at, poll_interval,
                 next_poll_at)
             VALUES ($1, $2, $3, $4, 'pending', $5, $6, $7, $8, $9, $10, $11, $12, $13, $14,
                 $15, $16, $17)",
        )
        .bind(&new.id)
        .bind(&new.tenant)
        .bind(&new.agent)
        .bind(new.kind.as_str())
        .bind(&new.reason)
        .bind(&new.summary)
        .bind(&new.summary_digest)
        .bind(&new.request_digest)
        .bind(new.writ_token_id.clone())
        .bind(new.writ_revocation_ids.join(" "))
        .bind(new.writ_issued_at.map(secs))
        .bind(new.ticket.clone())
        .bind(new.mint_request.clone())
        .bind(secs(new.created_at))
        .bind(secs(new.expires_at))
        .bind(secs(new.poll_interval))
        .bind(secs(new.created_at.saturating_add(new.poll_interval)))
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        self.approval(&new.id).await?.ok_or(StoreError::NotFound {
            what: "approval",
            name: new.id.clone(),
        })
    }

    /// The approval `id`, if any.
    pub async fn approval(&self, id: &str) -> Result<Option<ApprovalRecord>, StoreError> {
        let row = sqlx::query(&format!("SELECT {COLUMNS} FROM approvals WHERE id = $1"))
            .bind(id)
            .fetch_optional(&self.pool)
            .await?;
        row.as_ref().map(approval_row).transpose()
    }

    /// Approvals matching `filter`, newest first; `now` decides which pending ones have
    /// expired.
    pub async fn approvals(
        &self,
        filter: &ApprovalFilter,
        now: u64,
    ) -> Result<Vec<ApprovalRecord>, StoreError> {
        let status = filter.status.map(ApprovalStatus::as_str).unwrap_or("");
        let rows = sqlx::query(&format!(
            "SELECT {COLUMNS} FROM approvals
             WHERE (tenant = $1 OR $1 = '') AND (agent = $2 OR $2 = '')
               AND (status = $3 OR $3 = '')
               AND ($3 <> 'pending' OR expires_at > $4)
             ORDER BY created_at DESC, id LIMIT $5"
        ))
        .bind(filter.tenant.clone().unwrap_or_default())
        .bind(filter.agent.clone().unwrap_or_default())
        .bind(status)
        .bind(secs(now))
        .bind(secs(filter.limit.clamp(1, 1000)))
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(approval_row).collect()
    }

    /// Records a person's decision on a pending approval that has not expired at
    /// `decision.at`, and returns it. [`StoreError::NotFound`] when there is no such
    /// approval; [`StoreError::Refused`] (saying where it stands) when it was decided,
    /// used, voided or expired already.
    pub async fn decide_approval(
        &self,
        id: &str,
        decision: &Decision,
    ) -> Result<ApprovalRecord, StoreError> {
        let done = sqlx::query(
            "UPDATE approvals SET status = $1, decided_by = $2, decided_method = $3,
                 decided_at = $4, decision_reason = $5, block = $6
             WHERE id = $7 AND status = 'pending' AND expires_at > $4",
        )
        .bind(if decision.approve {
            "approved"
        } else {
            "denied"
        })
        .bind(&decision.by)
        .bind(&decision.method)
        .bind(secs(decision.at))
        .bind(decision.reason.clone())
        .bind(decision.block.clone())
        .bind(id)
        .execute(&self.pool)
        .await?;
        let record = self.approval(id).await?.ok_or(StoreError::NotFound {
            what: "approval",
            name: id.to_string(),
        })?;
        if done.rows_affected() == 0 {
            return Err(StoreError::Refused(format!(
                "approval {id} is {}: only a pending approval can be decided",
                record.status_at(decision.at).as_str()
            )));
        }
        Ok(record)
    }

    /// Ends an approval as `status` ([`ApprovalStatus::Used`], `Voided` or `Expired`) if
    /// it is still pending or approved; whether this call ended it (so exactly one caller
    /// writes its record).
    pub async fn finish_approval(
        &self,
        id: &str,
        status: ApprovalStatus,
        at: u64,
    ) -> Result<bool, StoreError> {
        let done = sqlx::query(
            "UPDATE approvals SET status = $1, finished_at = $2
             WHERE id = $3 AND status IN ('pending', 'approved')",
        )
        .bind(status.as_str())
        .bind(secs(at))
        .bind(id)
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected() > 0)
    }

    /// Notes a client's poll of a pending mint approval at `at`: too early (before the
    /// interval since the last poll) grows the interval by 5 seconds
    /// ([`PollPace::SlowDown`], OpenID CIBA §11).
    pub async fn note_approval_poll(&self, id: &str, at: u64) -> Result<PollPace, StoreError> {
        let early = sqlx::query(
            "UPDATE approvals SET poll_interval = poll_interval + 5,
                 next_poll_at = $1 + poll_interval + 5
             WHERE id = $2 AND next_poll_at > $1",
        )
        .bind(secs(at))
        .bind(id)
        .execute(&self.pool)
        .await?;
        if early.rows_affected() > 0 {
            let interval = self.approval(id).await?.map_or(5, |a| a.poll_interval);
            return Ok(PollPace::SlowDown(interval));
        }
        sqlx::query("UPDATE approvals SET next_poll_at = $1 + poll_interval WHERE id = $2")
            .bind(secs(at))
            .bind(id)
            .execute(&self.pool)
            .await?;
        Ok(PollPace::InTime)
    }

    /// Voids every pending or approved (unused) approval `matching` a stop, and returns
    /// those this call voided.
    pub async fn void_approvals(
        &self,
        matching: &VoidMatch<'_>,
        at: u64,
    ) -> Result<Vec<ApprovalRecord>, StoreError> {
        enum Param {
            Text(String),
            Int(i64),
        }
        let (condition, params) = match matching {
            VoidMatch::TokenId(id) => ("writ_token_id = $2", vec![Param::Text(id.to_string())]),
            // Hex only: anything else names no block (and would be a LIKE pattern).
            VoidMatch::RevocationId(rid)
                if rid.is_empty() || !rid.bytes().all(|b| b.is_ascii_hexdigit()) =>
            {
                return Ok(Vec::new());
            }
            VoidMatch::RevocationId(rid) => (
                "(' ' || writ_revocation_ids || ' ') LIKE $2",
                vec![Param::Text(format!("% {} %", rid.to_ascii_lowercase()))],
            ),
            VoidMatch::Agent { tenant, agent } => (
                "tenant = $2 AND agent = $3",
                vec![
                    Param::Text(tenant.to_string()),
                    Param::Text(agent.to_string()),
                ],
            ),
            VoidMatch::Tenant(tenant) => ("tenant = $2", vec![Param::Text(tenant.to_string())]),
            VoidMatch::IssuedBefore { tenant, before } => (
                "(tenant = $2 OR $2 = '') AND COALESCE(writ_issued_at, created_at) < $3",
                vec![
                    Param::Text(tenant.unwrap_or("").to_string()),
                    Param::Int(secs(*before)),
                ],
            ),
        };
        let sql = format!(
            "UPDATE approvals SET status = 'voided', finished_at = $1
             WHERE status IN ('pending', 'approved') AND {condition}
             RETURNING {COLUMNS}"
        );
        let mut query = sqlx::query(&sql).bind(secs(at));
        for param in params {
            query = match param {
                Param::Text(t) => query.bind(t),
                Param::Int(n) => query.bind(n),
            };
        }
        let rows = query.fetch_all(&self.pool).await?;
        rows.iter().map(approval_row).collect()
    }

    /// Marks every pending or approved approval past its expiry at `now` as expired, and
    /// returns those this call marked (each once, whichever gateway calls).
    pub async fn expire_approvals(&self, now: u64) -> Result<Vec<ApprovalRecord>, StoreError> {
        let rows = sqlx::query(&format!(
            "UPDATE approvals SET status = 'expired', finished_at = $1
             WHERE status IN ('pending', 'approved') AND expires_at <= $1
             RETURNING {COLUMNS}"
        ))
        .bind(secs(now))
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(approval_row).collect()
    }

    /// Adds an approver of `tenant` whose token hashes (SHA-256, hex) to `token_hash`.
    /// [`StoreError::NotFound`] when the tenant does not exist; [`StoreError::Conflict`]
    /// when the tenant has an approver of that name.
    pub async fn add_approver(
        &self,
        tenant: &str,
        name: &str,
        token_hash: &str,
        at: u64,
    ) -> Result<ApproverRecord, StoreError> {
        let mut tx = self.pool.begin().await?;
        Self::require_tenant(&mut tx, tenant).await?;
        sqlx::query(
            "INSERT INTO approvers (tenant, name, token_hash, created_at) VALUES ($1, $2, $3, $4)",
        )
        .bind(tenant)
        .bind(name)
        .bind(token_hash)
        .bind(secs(at))
        .execute(&mut *tx)
        .await
        .map_err(|e| match e {
            sqlx::Error::Database(d) if d.is_unique_violation() => StoreError::Conflict {
                what: "approver",
                name: name.to_string(),
            },
            e => StoreError::Database(e),
        })?;
        tx.commit().await?;
        Ok(ApproverRecord {
            tenant: tenant.to_string(),
            name: name.to_string(),
            created_at: at,
        })
    }

    /// The approver whose token hashes to `token_hash`, if any.
    pub async fn approver_by_token_hash(
        &self,
        token_hash: &str,
    ) -> Result<Option<ApproverRecord>, StoreError> {
        let row =
            sqlx::query("SELECT tenant, name, created_at FROM approvers WHERE token_hash = $1")
                .bind(token_hash)
                .fetch_optional(&self.pool)
                .await?;
        row.as_ref().map(approver_row).transpose()
    }

    /// The approvers of `tenant` (`None`: of every tenant), by tenant and name.
    pub async fn approvers(&self, tenant: Option<&str>) -> Result<Vec<ApproverRecord>, StoreError> {
        let rows = sqlx::query(
            "SELECT tenant, name, created_at FROM approvers
             WHERE tenant = $1 OR $1 = '' ORDER BY tenant, name",
        )
        .bind(tenant.unwrap_or(""))
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(approver_row).collect()
    }

    /// Removes an approver with their passkeys and enrolment links (their token stops
    /// working at once); [`StoreError::NotFound`] when there is none.
    pub async fn delete_approver(&self, tenant: &str, name: &str) -> Result<(), StoreError> {
        let mut tx = self.pool.begin().await?;
        let done = sqlx::query("DELETE FROM approvers WHERE tenant = $1 AND name = $2")
            .bind(tenant)
            .bind(name)
            .execute(&mut *tx)
            .await?;
        if done.rows_affected() == 0 {
            return Err(StoreError::NotFound {
                what: "approver",
                name: name.to_string(),
            });
        }
        let person = crate::Person {
            role: crate::PersonRole::Approver,
            tenant: Some(tenant.to_string()),
            name: name.to_string(),
        };
        Self::forget_sign_ins(&mut tx, &person).await?;
        tx.commit().await?;
        Ok(())
    }
}

fn approver_row(row: &sqlx::any::AnyRow) -> Result<ApproverRecord, StoreError> {
    Ok(ApproverRecord {
        tenant: row.try_get("tenant")?,
        name: row.try_get("name")?,
        created_at: unsecs(row.try_get("created_at")?),
    })
}

fn approval_row(row: &sqlx::any::AnyRow) -> Result<ApprovalRecord, StoreError> {
    let corrupt = |reason: &str| StoreError::Corrupt {
        what: "approval",
        reason: reason.to_string(),
    };
    let kind: String = row.try_get("kind")?;
    let status: String = row.try_get("status")?;
    let optional_secs = |column: &str| -> Result<Option<u64>, StoreError> {
        Ok(row.try_get::<Option<i64>, _>(column)?.map(unsecs))
    };
    let revocation_ids: String = row.try_get("writ_revocation_ids")?;
    Ok(ApprovalRecord {
        id: row.try_get("id")?,
        tenant: row.try_get("tenant")?,
        agent: row.try_get("agent")?,
        kind: ApprovalKind::parse(&kind).ok_or_else(|| corrupt("unknown kind"))?,
        status: ApprovalStatus::parse(&status).ok_or_else(|| corrupt("unknown status"))?,
        reason: row.try_get("reason")?,
        summary: row.try_get("summary")?,
        summary_digest: row.try_get("summary_digest")?,
        request_digest: row.try_get("request_digest")?,
        writ_token_id: row.try_get("writ_token_id")?,
        writ_revocation_ids: revocation_ids
            .split_ascii_whitespace()
            .map(str::to_string)
            .collect(),
        writ_issued_at: optional_secs("writ_issued_at")?,
        ticket: row.try_get("ticket")?,
        mint_request: row.try_get("mint_request")?,
        created_at: unsecs(row.try_get("created_at")?),
        expires_at: unsecs(row.try_get("expires_at")?),
        decided_by: row.try_get("decided_by")?,
        decided_method: row.try_get("decided_method")?,
        decided_at: optional_secs("decided_at")?,
        decision_reason: row.try_get("decision_reason")?,
        block: row.try_get("block")?,
        poll_interval: unsecs(row.try_get("poll_interval")?),
        next_poll_at: unsecs(row.try_get("next_poll_at")?),
        finished_at: optional_secs("finished_at")?,
    })
}
