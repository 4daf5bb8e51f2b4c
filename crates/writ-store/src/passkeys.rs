//! The people who sign in to the console with a passkey: console admins (approvers are in
//! `approvals.rs`), their one-time enrolment links, their passkeys, and the state of
//! WebAuthn ceremonies between their two halves.
//!
//! A person is a role, a tenant (none: an admin of every tenant) and a name. Tables store
//! "every tenant" as `''`, as `upstreams` does. An enrolment link is stored as the SHA-256
//! of its token only; it is used once, expires, and a new link for the same person voids
//! the old. A passkey is stored as the relying party library's JSON; this crate does not
//! read it.

use sqlx::Row;

use crate::error::StoreError;
use crate::store::{Store, secs, unsecs};

/// What a person may do in the console.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum PersonRole {
    /// An admin of one tenant, or of every tenant.
    Admin,
    /// An approver of one tenant.
    Approver,
}

impl PersonRole {
    /// The stored and shown name: `admin` or `approver`.
    pub fn as_str(self) -> &'static str {
        match self {
            PersonRole::Admin => "admin",
            PersonRole::Approver => "approver",
        }
    }

    fn parse(s: &str) -> Option<Self> {
        match s {
            "admin" => Some(PersonRole::Admin),
            "approver" => Some(PersonRole::Approver),
            _ => None,
        }
    }
}

/// Someone who may sign in to the console.
#[derive(Debug, Clone, PartialEq, Eq, Hash, serde::Serialize)]
pub struct Person {
    /// Admin or approver.
    pub role: PersonRole,
    /// Their tenant; `None`: every tenant (admins only).
    pub tenant: Option<String>,
    /// Their name.
    pub name: String,
}

/// A console admin, as listed.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct ConsoleAdminRecord {
    /// The tenant they administer; `None`: every tenant.
    pub tenant: Option<String>,
    /// Their name.
    pub name: String,
    /// Unix seconds.
    pub created_at: u64,
}

/// A stored passkey.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PasskeyRecord {
    /// The credential id (base64url), as the authenticator names it.
    pub credential_id: String,
    /// Whose it is.
    pub person: Person,
    /// The relying party library's passkey, as JSON (public key and counter only).
    pub passkey: String,
    /// Unix seconds.
    pub created_at: u64,
    /// Unix seconds of the last sign-in with it.
    pub last_used_at: Option<u64>,
}

/// Which half-finished ceremony a state belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CeremonyKind {
    /// Registering a passkey through an enrolment link.
    Enrol,
    /// Signing in with a passkey.
    SignIn,
}

impl CeremonyKind {
    fn as_str(self) -> &'static str {
        match self {
            CeremonyKind::Enrol => "enrol",
            CeremonyKind::SignIn => "sign_in",
        }
    }
}

/// A ceremony's state, kept between its two halves.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CeremonyRecord {
    /// The SHA-256 (hex) of the id the browser holds.
    pub id_hash: String,
    /// Which ceremony.
    pub kind: CeremonyKind,
    /// What it is for: the enrolment token's hash, or the person signing in, as the caller
    /// wrote it.
    pub subject: String,
    /// The relying party library's state, as JSON.
    pub state: String,
    /// Unix seconds after which it cannot be finished.
    pub expires_at: u64,
}

fn tenant_column(tenant: Option<&str>) -> &str {
    tenant.unwrap_or("")
}

fn tenant_of(column: String) -> Option<String> {
    (!column.is_empty()).then_some(column)
}

impl Store {
    /// Adds a console admin of `tenant` (`None`: every tenant). [`StoreError::NotFound`]
    /// when the tenant does not exist; [`StoreError::Conflict`] when that admin exists.
    pub async fn add_console_admin(
        &self,
        tenant: Option<&str>,
        name: &str,
        at: u64,
    ) -> Result<ConsoleAdminRecord, StoreError> {
        let mut tx = self.pool.begin().await?;
        if let Some(tenant) = tenant {
            Self::require_tenant(&mut tx, tenant).await?;
        }
        sqlx::query("INSERT INTO console_admins (tenant, name, created_at) VALUES ($1, $2, $3)")
            .bind(tenant_column(tenant))
            .bind(name)
            .bind(secs(at))
            .execute(&mut *tx)
            .await
            .map_err(|e| match e {
                sqlx::Error::Database(d) if d.is_unique_violation() => StoreError::Conflict {
                    what: "console admin",
                    name: name.to_string(),
                },
                e => StoreError::Database(e),
            })?;
        tx.commit().await?;
        Ok(ConsoleAdminRecord {
            tenant: tenant.map(str::to_string),
            name: name.to_string(),
            created_at: at,
        })
    }

    /// The console admins of `tenant` (`Some("")` is never a tenant; `None`: every
    /// admin, those of every tenant included), by tenant and name.
    pub async fn console_admins(
        &self,
        tenant: Option<&str>,
    ) -> Result<Vec<ConsoleAdminRecord>, StoreError> {
        let rows = sqlx::query(
            "SELECT tenant, name, created_at FROM console_admins
             WHERE tenant = $1 OR $2 = 1 ORDER BY tenant, name",
        )
        .bind(tenant.unwrap_or(""))
        .bind(i64::from(tenant.is_none()))
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|row| {
                Ok(ConsoleAdminRecord {
                    tenant: tenant_of(row.try_get("tenant")?),
                    name: row.try_get("name")?,
                    created_at: unsecs(row.try_get("created_at")?),
                })
            })
            .collect()
    }

    /// Whether `person` may sign in: an admin or approver of that tenant and name exists.
    pub async fn person_exists(&self, person: &Person) -> Result<bool, StoreError> {
        let query = match person.role {
            PersonRole::Admin => {
                "SELECT CAST(COUNT(*) AS BIGINT) FROM console_admins WHERE tenant = $1 AND name = $2"
            }
            PersonRole::Approver => {
                "SELECT CAST(COUNT(*) AS BIGINT) FROM approvers WHERE tenant = $1 AND name = $2"
            }
        };
        let count: i64 = sqlx::query_scalar(query)
            .bind(tenant_column(person.tenant.as_deref()))
            .bind(&person.name)
            .fetch_one(&self.pool)
            .await?;
        Ok(count > 0)
    }

    /// Removes a console admin with their passkeys and enrolment links (their sessions end
    /// at their next request); [`StoreError::NotFound`] when there is none.
    pub async fn delete_console_admin(
        &self,
        tenant: Option<&str>,
        name: &str,
    ) -> Result<(), StoreError> {
        let mut tx = self.pool.begin().await?;
        let done = sqlx::query("DELETE FROM console_admins WHERE tenant = $1 AND name = $2")
            .bind(tenant_column(tenant))
            .bind(name)
            .execute(&mut *tx)
            .await?;
        if done.rows_affected() == 0 {
            return Err(StoreError::NotFound {
                what: "console admin",
                name: name.to_string(),
            });
        }
        let person = Person {
            role: PersonRole::Admin,
            tenant: tenant.map(str::to_string),
            name: name.to_string(),
        };
        Self::forget_sign_ins(&mut tx, &person).await?;
        tx.commit().await?;
        Ok(())
    }

    /// Deletes the passkeys and enrolment links of `person`, in `tx`.
    pub(crate) async fn forget_sign_ins(
        tx: &mut sqlx::Transaction<'_, sqlx::Any>,
        person: &Person,
    ) -> Result<(), StoreError> {
        for table in ["passkeys", "enrolments"] {
            sqlx::query(&format!(
                "DELETE FROM {table} WHERE role = $1 AND tenant = $2 AND name = $3"
            ))
            .bind(person.role.as_str())
            .bind(tenant_column(person.tenant.as_deref()))
            .bind(&person.name)
            .execute(&mut **tx)
            .await?;
        }
        Ok(())
    }

    /// Records a one-time enrolment link for `person` (the SHA-256, hex, of its token),
    /// valid until `expires_at`, voiding any earlier link of theirs.
    /// [`StoreError::NotFound`] when there is no such person.
    pub async fn create_enrolment(
        &self,
        person: &Person,
        token_hash: &str,
        at: u64,
        expires_at: u64,
    ) -> Result<(), StoreError> {
        if !self.person_exists(person).await? {
            return Err(StoreError::NotFound {
                what: person.role.as_str(),
                name: person.name.clone(),
            });
        }
        let mut tx = self.pool.begin().await?;
        sqlx::query("DELETE FROM enrolments WHERE role = $1 AND tenant = $2 AND name = $3")
            .bind(person.role.as_str())
            .bind(tenant_column(person.tenant.as_deref()))
            .bind(&person.name)
            .execute(&mut *tx)
            .await?;
        sqlx::query(
            "INSERT INTO enrolments (token_hash, role, tenant, name, created_at, expires_at)
             VALUES ($1, $2, $3, $4, $5, $6)",
        )
        .bind(token_hash)
        .bind(person.role.as_str())
        .bind(tenant_column(person.tenant.as_deref()))
        .bind(&person.name)
        .bind(secs(at))
        .bind(secs(expires_at))
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(())
    }

    /// The person an enrolment link is for, if it is unused and unexpired at `now`.
    pub async fn enrolment(
        &self,
        token_hash: &str,
        now: u64,
    ) -> Result<Option<Person>, StoreError> {
        let row = sqlx::query(
            "SELECT role, tenant, name FROM enrolments
             WHERE token_hash = $1 AND used_at IS NULL AND expires_at > $2",
        )
        .bind(token_hash)
        .bind(secs(now))
        .fetch_optional(&self.pool)
        .await?;
        row.as_ref().map(person_row).transpose()
    }

    /// Uses an enrolment link to store its person's passkey, once: in one transaction the
    /// link is marked used (only if unused and unexpired at `now`) and the passkey added.
    /// [`StoreError::Refused`] when the link was used, expired or replaced (of those who
    /// race, one wins); [`StoreError::Conflict`] when the credential is stored already.
    pub async fn complete_enrolment(
        &self,
        token_hash: &str,
        credential_id: &str,
        passkey: &str,
        now: u64,
    ) -> Result<Person, StoreError> {
        let mut tx = self.pool.begin().await?;
        let done = sqlx::query(
            "UPDATE enrolments SET used_at = $1
             WHERE token_hash = $2 AND used_at IS NULL AND expires_at > $1",
        )
        .bind(secs(now))
        .bind(token_hash)
        .execute(&mut *tx)
        .await?;
        if done.rows_affected() == 0 {
            return Err(StoreError::Refused(
                "this enrolment link was used, has expired or was replaced".to_string(),
            ));
        }
        let row = sqlx::query("SELECT role, tenant, name FROM enrolments WHERE token_hash = $1")
            .bind(token_hash)
            .fetch_one(&mut *tx)
            .await?;
        let person = person_row(&row)?;
        sqlx::query(
            "INSERT INTO passkeys (credential_id, role, tenant, name, passkey, created_at)
             VALUES ($1, $2, $3, $4, $5, $6)",
        )
        .bind(credential_id)
        .bind(person.role.as_str())
        .bind(tenant_column(person.tenant.as_deref()))
        .bind(&person.name)
        .bind(passkey)
        .bind(secs(now))
        .execute(&mut *tx)
        .await
        .map_err(|e| match e {
            sqlx::Error::Database(d) if d.is_unique_violation() => StoreError::Conflict {
                what: "passkey",
                name: "(this credential)".to_string(),
            },
            e => StoreError::Database(e),
        })?;
        tx.commit().await?;
        Ok(person)
    }

    /// The passkeys of the admins and approvers named `name` in `tenant` (`None`: the
    /// admins of every tenant).
    pub async fn passkeys_named(
        &self,
        tenant: Option<&str>,
        name: &str,
    ) -> Result<Vec<PasskeyRecord>, StoreError> {
        let rows = sqlx::query(
            "SELECT credential_id, role, tenant, name, passkey, created_at, last_used_at
             FROM passkeys WHERE tenant = $1 AND name = $2 ORDER BY created_at, credential_id",
        )
        .bind(tenant_column(tenant))
        .bind(name)
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(passkey_row).collect()
    }

    /// The passkey of credential id `credential_id`, if stored.
    pub async fn passkey(&self, credential_id: &str) -> Result<Option<PasskeyRecord>, StoreError> {
        let row = sqlx::query(
            "SELECT credential_id, role, tenant, name, passkey, created_at, last_used_at
             FROM passkeys WHERE credential_id = $1",
        )
        .bind(credential_id)
        .fetch_optional(&self.pool)
        .await?;
        row.as_ref().map(passkey_row).transpose()
    }

    /// Records a sign-in with a passkey at `at`, with its updated form (its counter).
    pub async fn note_passkey_use(
        &self,
        credential_id: &str,
        passkey: &str,
        at: u64,
    ) -> Result<(), StoreError> {
        sqlx::query("UPDATE passkeys SET passkey = $1, last_used_at = $2 WHERE credential_id = $3")
            .bind(passkey)
            .bind(secs(at))
            .bind(credential_id)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// Keeps a ceremony's state until its second half, unless `max` ceremonies of its
    /// kind, or `max_per_subject` of its kind and subject, are open (unexpired at
    /// `now`): then [`StoreError::Refused`]. Expired states are dropped first. (The bound
    /// per subject keeps one person's ceremonies, asked for by anyone who knows their
    /// name, from filling everyone's room.)
    pub async fn save_ceremony(
        &self,
        ceremony: &CeremonyRecord,
        now: u64,
        max: u64,
        max_per_subject: u64,
    ) -> Result<(), StoreError> {
        let mut tx = self.pool.begin().await?;
        sqlx::query("DELETE FROM ceremonies WHERE expires_at <= $1")
            .bind(secs(now))
            .execute(&mut *tx)
            .await?;
        let open: i64 =
            sqlx::query_scalar("SELECT CAST(COUNT(*) AS BIGINT) FROM ceremonies WHERE kind = $1")
                .bind(ceremony.kind.as_str())
                .fetch_one(&mut *tx)
                .await?;
        let theirs: i64 = sqlx::query_scalar(
            "SELECT CAST(COUNT(*) AS BIGINT) FROM ceremonies WHERE kind = $1 AND subject = $2",
        )
        .bind(ceremony.kind.as_str())
        .bind(&ceremony.subject)
        .fetch_one(&mut *tx)
        .await?;
        if unsecs(open) >= max || unsecs(theirs) >= max_per_subject {
            return Err(StoreError::Refused(
                "too many passkey ceremonies are under way; try again in a few minutes".to_string(),
            ));
        }
        sqlx::query(
            "INSERT INTO ceremonies (id_hash, kind, subject, state, expires_at)
             VALUES ($1, $2, $3, $4, $5)",
        )
        .bind(&ceremony.id_hash)
        .bind(ceremony.kind.as_str())
        .bind(&ceremony.subject)
        .bind(&ceremony.state)
        .bind(secs(ceremony.expires_at))
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(())
    }

    /// Takes (reads and deletes) the unexpired ceremony of `kind` whose id hashes to
    /// `id_hash`: each state finishes at most one ceremony.
    pub async fn take_ceremony(
        &self,
        id_hash: &str,
        kind: CeremonyKind,
        now: u64,
    ) -> Result<Option<CeremonyRecord>, StoreError> {
        let row = sqlx::query(
            "DELETE FROM ceremonies WHERE id_hash = $1 AND kind = $2
             RETURNING subject, state, expires_at",
        )
        .bind(id_hash)
        .bind(kind.as_str())
        .fetch_optional(&self.pool)
        .await?;
        let Some(row) = row else { return Ok(None) };
        let expires_at = unsecs(row.try_get("expires_at")?);
        if expires_at <= now {
            return Ok(None);
        }
        Ok(Some(CeremonyRecord {
            id_hash: id_hash.to_string(),
            kind,
            subject: row.try_get("subject")?,
            state: row.try_get("state")?,
            expires_at,
        }))
    }
}

fn person_row(row: &sqlx::any::AnyRow) -> Result<Person, StoreError> {
    let role: String = row.try_get("role")?;
    Ok(Person {
        role: PersonRole::parse(&role).ok_or_else(|| StoreError::Corrupt {
            what: "person",
            reason: "unknown role".to_string(),
        })?,
        tenant: tenant_of(row.try_get("tenant")?),
        name: row.try_get("name")?,
    })
}

fn passkey_row(row: &sqlx::any::AnyRow) -> Result<PasskeyRecord, StoreError> {
    Ok(PasskeyRecord {
        credential_id: row.try_get("credential_id")?,
        person: person_row(row)?,
        passkey: row.try_get("passkey")?,
        created_at: unsecs(row.try_get("created_at")?),
        last_used_at: row.try_get::<Option<i64>, _>("last_used_at")?.map(unsecs),
    })
}
