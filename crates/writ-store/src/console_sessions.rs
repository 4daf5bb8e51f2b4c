//! Console sessions, kept in the database so that every gateway sharing it knows every
//! session: a person signed in on one instance is signed in on all of them, and signing
//! out (or expiry) on one ends the session on all.
//!
//! A row is keyed by the SHA-256 of the session id; the id itself lives only in the
//! browser's cookie, so a copy of the table signs nobody in.

use sqlx::Row;

use crate::error::StoreError;
use crate::store::{Store, secs, unsecs};

/// One console session as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConsoleSession {
    /// SHA-256 (hex) of the session id.
    pub id_hash: String,
    /// The person signed in, as approvals and revocations record them.
    pub person: String,
    /// The one tenant they act on; `None`: every tenant.
    pub tenant: Option<String>,
    /// What they may do (the console's name for it: `admin`, `approver`).
    pub role: String,
    /// How they signed in (`admin_writ`, `approver_token`, `passkey`).
    pub method: String,
    /// What the session must be checked against on every request, as the console wrote it
    /// (JSON): the admin writ's revocation subject, the approver token's hash, … Never a
    /// credential.
    pub proof: String,
    /// Unix seconds: signed in.
    pub started_at: u64,
    /// Unix seconds: the session ends at this time however busy.
    pub ends_at: u64,
    /// Unix seconds: the session ends at this time unless a request comes first.
    pub idle_until: u64,
}

impl ConsoleSession {
    /// Whether the session is still open at `now`.
    pub fn alive_at(&self, now: u64) -> bool {
        now < self.ends_at && now < self.idle_until
    }
}

const COLUMNS: &str =
    "id_hash, person, tenant, role, method, proof, started_at, ends_at, idle_until";

impl Store {
    /// Stores `session`, after dropping every session ended by `now`. `Ok(false)`, storing
    /// nothing, when `max_open` sessions are open already.
    pub async fn open_console_session(
        &self,
        session: &ConsoleSession,
        max_open: u64,
        now: u64,
    ) -> Result<bool, StoreError> {
        let mut tx = self.pool.begin().await?;
        sqlx::query("DELETE FROM console_sessions WHERE ends_at <= $1 OR idle_until <= $1")
            .bind(secs(now))
            .execute(&mut *tx)
            .await?;
        let open: i64 = sqlx::query("SELECT COUNT(*) AS n FROM console_sessions")
            .fetch_one(&mut *tx)
            .await?
            .try_get("n")?;
        if unsecs(open) >= max_open {
            return Ok(false);
        }
        sqlx::query(&format!(
            "INSERT INTO console_sessions ({COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)"
        ))
        .bind(&session.id_hash)
        .bind(&session.person)
        .bind(session.tenant.as_deref())
        .bind(&session.role)
        .bind(&session.method)
        .bind(&session.proof)
        .bind(secs(session.started_at))
        .bind(secs(session.ends_at))
        .bind(secs(session.idle_until))
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(true)
    }

    /// The session keyed `id_hash` if it is open at `now`, its idle end moved to
    /// `idle_until` (never earlier than it was); an ended one is deleted and `None`.
    pub async fn touch_console_session(
        &self,
        id_hash: &str,
        now: u64,
        idle_until: u64,
    ) -> Result<Option<ConsoleSession>, StoreError> {
        let row = sqlx::query(&format!(
            "SELECT {COLUMNS} FROM console_sessions WHERE id_hash = $1"
        ))
        .bind(id_hash)
        .fetch_optional(&self.pool)
        .await?;
        let Some(mut session) = row.as_ref().map(session_row).transpose()? else {
            return Ok(None);
        };
        if !session.alive_at(now) {
            self.close_console_session(id_hash).await?;
            return Ok(None);
        }
        if idle_until > session.idle_until {
            sqlx::query(
                "UPDATE console_sessions SET idle_until = $2 WHERE id_hash = $1 AND idle_until < $2",
            )
            .bind(id_hash)
            .bind(secs(idle_until))
            .execute(&self.pool)
            .await?;
            session.idle_until = idle_until;
        }
        Ok(Some(session))
    }

    /// Ends the session keyed `id_hash`, if there is one.
    pub async fn close_console_session(&self, id_hash: &str) -> Result<(), StoreError> {
        sqlx::query("DELETE FROM console_sessions WHERE id_hash = $1")
            .bind(id_hash)
            .execute(&self.pool)
            .await?;
        Ok(())
    }
}

fn session_row(row: &sqlx::any::AnyRow) -> Result<ConsoleSession, StoreError> {
    Ok(ConsoleSession {
        id_hash: row.try_get("id_hash")?,
        person: row.try_get("person")?,
        tenant: row.try_get("tenant")?,
        role: row.try_get("role")?,
        method: row.try_get("method")?,
        proof: row.try_get("proof")?,
        started_at: unsecs(row.try_get("started_at")?),
        ends_at: unsecs(row.try_get("ends_at")?),
        idle_until: unsecs(row.try_get("idle_until")?),
    })
}
