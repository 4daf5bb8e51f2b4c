//! Revocation records in the store: what was revoked, when, by whom and why, and whether it
//! was lifted since.

use sqlx::Row;
use writ_token::Revocation;

use crate::changes;
use crate::error::StoreError;
use crate::store::{Store, secs};

/// Who records a revocation and why.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RevocationNote {
    /// Unix seconds.
    pub at: u64,
    /// The operator (the admin writ's subject, or the local user of the CLI).
    pub by: Option<String>,
    /// Why, in the operator's words.
    pub reason: Option<String>,
}

/// One recorded revocation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RevocationRecord {
    /// Its id in this store, as `writ revoke --list` shows and `--lift` takes.
    pub id: i64,
    /// What was revoked.
    pub revocation: Revocation,
    /// When, by whom and why it was recorded.
    pub revoked: RevocationNote,
    /// When and by whom it was lifted (`reason` unused); `None` while in force.
    pub lifted: Option<RevocationNote>,
}

fn encode(revocation: &Revocation) -> Result<String, StoreError> {
    serde_json::to_string(revocation).map_err(|e| StoreError::Corrupt {
        what: "revocation",
        reason: e.to_string(),
    })
}

fn record(row: &sqlx::any::AnyRow) -> Result<RevocationRecord, StoreError> {
    let body: String = row.try_get("body")?;
    let revocation = serde_json::from_str(&body).map_err(|e| StoreError::Corrupt {
        what: "revocation",
        reason: e.to_string(),
    })?;
    let created_at: i64 = row.try_get("created_at")?;
    let lifted_at: Option<i64> = row.try_get("lifted_at")?;
    Ok(RevocationRecord {
        id: row.try_get("id")?,
        revocation,
        revoked: RevocationNote {
            at: created_at.max(0) as u64,
            by: row.try_get("revoked_by")?,
            reason: row.try_get("reason")?,
        },
        lifted: lifted_at.map(|at| RevocationNote {
            at: at.max(0) as u64,
            by: row.try_get("lifted_by").ok().flatten(),
            reason: None,
        }),
    })
}

const COLUMNS: &str = "id, body, created_at, revoked_by, reason, lifted_at, lifted_by";

impl Store {
    /// Records a revocation in force; returns its id.
    pub async fn put_revocation(
        &self,
        revocation: &Revocation,
        note: &RevocationNote,
    ) -> Result<i64, StoreError> {
        let mut tx = self.pool.begin().await?;
        let id: i64 = sqlx::query_scalar(
            "INSERT INTO revocations (body, created_at, revoked_by, reason)
             VALUES ($1, $2, $3, $4) RETURNING id",
        )
        .bind(encode(revocation)?)
        .bind(secs(note.at))
        .bind(&note.by)
        .bind(&note.reason)
        .fetch_one(&mut *tx)
        .await?;
        changes::record(&mut tx, self.backend, "revocation").await?;
        tx.commit().await?;
        Ok(id)
    }

    /// Every revocation in force (not lifted), oldest first.
    pub async fn revocations(&self) -> Result<Vec<Revocation>, StoreError> {
        Ok(self
            .revocation_records()
            .await?
            .into_iter()
            .filter(|r| r.lifted.is_none())
            .map(|r| r.revocation)
            .collect())
    }

    /// Every recorded revocation, lifted ones included, oldest first.
    pub async fn revocation_records(&self) -> Result<Vec<RevocationRecord>, StoreError> {
        let rows = sqlx::query(&format!("SELECT {COLUMNS} FROM revocations ORDER BY id"))
            .fetch_all(&self.pool)
            .await?;
        rows.iter().map(record).collect()
    }

    /// The revocation recorded under `id`.
    pub async fn revocation_record(&self, id: i64) -> Result<Option<RevocationRecord>, StoreError> {
        let row = sqlx::query(&format!("SELECT {COLUMNS} FROM revocations WHERE id = $1"))
            .bind(id)
            .fetch_optional(&self.pool)
            .await?;
        row.as_ref().map(record).transpose()
    }

    /// Marks every revocation in force that says the same as `revocation` lifted; how many
    /// were.
    pub async fn lift_revocations(
        &self,
        revocation: &Revocation,
        note: &RevocationNote,
    ) -> Result<u64, StoreError> {
        let mut tx = self.pool.begin().await?;
        let done = sqlx::query(
            "UPDATE revocations SET lifted_at = $1, lifted_by = $2
             WHERE body = $3 AND lifted_at IS NULL",
        )
        .bind(secs(note.at))
        .bind(&note.by)
        .bind(encode(revocation)?)
        .execute(&mut *tx)
        .await?;
        changes::record(&mut tx, self.backend, "revocation").await?;
        tx.commit().await?;
        Ok(done.rows_affected())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const BEFORE_THIS_CHANGE: &[&str] = &[
        "CREATE TABLE agents (tenant TEXT NOT NULL, name TEXT NOT NULL, ceiling TEXT NOT NULL,
            max_ttl_secs INTEGER NOT NULL, PRIMARY KEY (tenant, name))",
        "CREATE TABLE revocations (id INTEGER PRIMARY KEY AUTOINCREMENT, body TEXT NOT NULL,
            created_at INTEGER NOT NULL)",
        "ALTER TABLE agents ADD COLUMN credentials TEXT NOT NULL DEFAULT '{}'",
    ];

    #[tokio::test]
    async fn revocations_persist_in_order_with_who_and_why() {
        let tmp = tempfile::tempdir().expect("ok");
        let path = tmp.path().join("writ.db");
        let store = Store::open(&path).await.expect("ok");
        let a = Revocation::TokenId {
            token_id: "01ABC".into(),
        };
        let b = Revocation::IssuedBefore {
            tenant: None,
            before: 1_800_000_000,
        };
        let note = RevocationNote {
            at: 1,
            by: Some("alice".into()),
            reason: Some("leaked in a CI log".into()),
        };
        let id_a = store.put_revocation(&a, &note).await.expect("ok");
        store
            .put_revocation(&b, &RevocationNote::default())
            .await
            .expect("ok");
        store.close().await;
        let store = Store::open(&path).await.expect("ok");
        assert_eq!(store.revocations().await.expect("ok"), vec![a.clone(), b]);
        let first = store
            .revocation_record(id_a)
            .await
            .expect("ok")
            .expect("ok");
        assert_eq!(
            (first.revocation, first.revoked, first.lifted),
            (a, note, None)
        );
    }

    #[tokio::test]
    async fn a_lift_takes_every_matching_revocation_out_of_force() {
        let tmp = tempfile::tempdir().expect("ok");
        let store = Store::open(&tmp.path().join("writ.db")).await.expect("ok");
        let agent = Revocation::Agent {
            tenant: "default".into(),
            agent: "dp".into(),
        };
        let other = Revocation::Agent {
            tenant: "default".into(),
            agent: "other".into(),
        };
        for r in [&agent, &agent, &other] {
            store
                .put_revocation(r, &RevocationNote::default())
                .await
                .expect("ok");
        }
        let lift = RevocationNote {
            at: 9,
            by: Some("bob".into()),
            reason: None,
        };
        assert_eq!(store.lift_revocations(&agent, &lift).await.expect("ok"), 2);
        assert_eq!(store.lift_revocations(&agent, &lift).await.expect("ok"), 0);
        assert_eq!(store.revocations().await.expect("ok"), vec![other]);
        let all = store.revocation_records().await.expect("ok");
        assert_eq!(all.len(), 3, "lifted revocations stay listed");
        assert_eq!(all[0].lifted, Some(lift));
    }

    #[tokio::test]
    async fn the_migration_keeps_revocations_recorded_before_it() {
        let tmp = tempfile::tempdir().expect("ok");
        let path = tmp.path().join("writ.db");
        let options = sqlx::sqlite::SqliteConnectOptions::new()
            .filename(&path)
            .create_if_missing(true);
        let pool = sqlx::SqlitePool::connect_with(options).await.expect("ok");
        sqlx::query("CREATE TABLE schema_version (version INTEGER NOT NULL)")
            .execute(&pool)
            .await
            .expect("ok");
        for (i, sql) in BEFORE_THIS_CHANGE.iter().enumerate() {
            sqlx::query(sql).execute(&pool).await.expect("ok");
            sqlx::query("INSERT INTO schema_version (version) VALUES (?)")
                .bind(i as i64 + 1)
                .execute(&pool)
                .await
                .expect("ok");
        }
        sqlx::query("INSERT INTO revocations (body, created_at) VALUES (?, 7)")
            .bind(r#"{"kind":"tenant","tenant":"acme"}"#)
            .execute(&pool)
            .await
            .expect("ok");
        pool.close().await;
        let store = Store::open(&path).await.expect("ok");
        let all = store.revocation_records().await.expect("ok");
        assert_eq!(all.len(), 1);
        assert_eq!(
            all[0].revocation,
            Revocation::Tenant {
                tenant: "acme".into()
            }
        );
        assert_eq!(
            all[0].revoked,
            RevocationNote {
                at: 7,
                by: None,
                reason: None
            }
        );
        assert_eq!(all[0].lifted, None);
    }
}
