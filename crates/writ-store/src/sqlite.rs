//! `SqliteStore`: agents in the embedded SQLite database.

use std::path::Path;
use std::str::FromStr;
use std::time::Duration;

use sqlx::Row;
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions};

use crate::agent::Agent;
use crate::error::StoreError;

/// Schema, applied in order; `schema_version` records how far a database has come.
const MIGRATIONS: &[&str] = &[
    "CREATE TABLE agents (
        tenant        TEXT NOT NULL,
        name          TEXT NOT NULL,
        ceiling       TEXT NOT NULL,
        max_ttl_secs  INTEGER NOT NULL,
        PRIMARY KEY (tenant, name)
    )",
    "CREATE TABLE revocations (
        id          INTEGER PRIMARY KEY AUTOINCREMENT,
        body        TEXT NOT NULL,
        created_at  INTEGER NOT NULL
    )",
    "ALTER TABLE agents ADD COLUMN credentials TEXT NOT NULL DEFAULT '{}'",
    // Who revoked and why; when and by whom a revocation was lifted. Older rows keep
    // NULLs: recorded by nobody named, for no stated reason, in force.
    "ALTER TABLE revocations ADD COLUMN revoked_by TEXT",
    "ALTER TABLE revocations ADD COLUMN reason TEXT",
    "ALTER TABLE revocations ADD COLUMN lifted_at INTEGER",
    "ALTER TABLE revocations ADD COLUMN lifted_by TEXT",
];

/// State in one SQLite file, shared safely by a running server and CLI commands (WAL mode,
/// busy timeout).
#[derive(Debug, Clone)]
pub struct SqliteStore {
    pub(crate) pool: SqlitePool,
}

impl SqliteStore {
    /// Opens (creating if needed) the database at `path` and brings its schema up to date.
    pub async fn open(path: &Path) -> Result<Self, StoreError> {
        let options = SqliteConnectOptions::from_str("sqlite:")?
            .filename(path)
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .busy_timeout(Duration::from_secs(5));
        let pool = SqlitePoolOptions::new()
            .max_connections(4)
            .connect_with(options)
            .await?;
        let store = Self { pool };
        store.migrate().await?;
        Ok(store)
    }

    async fn migrate(&self) -> Result<(), StoreError> {
        let mut tx = self.pool.begin().await?;
        sqlx::query("CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL)")
            .execute(&mut *tx)
            .await?;
        let current: i64 =
            sqlx::query_scalar("SELECT COALESCE(MAX(version), 0) FROM schema_version")
                .fetch_one(&mut *tx)
                .await?;
        for (i, sql) in MIGRATIONS.iter().enumerate().skip(current.max(0) as usize) {
            sqlx::query(sql).execute(&mut *tx).await?;
            sqlx::query("INSERT INTO schema_version (version) VALUES (?)")
                .bind(i as i64 + 1)
                .execute(&mut *tx)
                .await?;
        }
        tx.commit().await?;
        Ok(())
    }

    /// Registers `agent` unless an agent of the same tenant and name exists; whether it
    /// was registered.
    pub async fn insert_agent(&self, agent: &Agent) -> Result<bool, StoreError> {
        let (ceiling, credentials) = agent_columns(agent)?;
        let done = sqlx::query(
            "INSERT INTO agents (tenant, name, ceiling, max_ttl_secs, credentials) VALUES (?, ?, ?, ?, ?)
             ON CONFLICT (tenant, name) DO NOTHING",
        )
        .bind(&agent.tenant)
        .bind(&agent.name)
        .bind(ceiling)
        .bind(i64::try_from(agent.max_ttl.as_secs()).unwrap_or(i64::MAX))
        .bind(credentials)
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected() > 0)
    }

    /// Whether `tenant` has any registered agent.
    pub async fn tenant_has_agents(&self, tenant: &str) -> Result<bool, StoreError> {
        let found: Option<(i64,)> = sqlx::query_as("SELECT 1 FROM agents WHERE tenant = ? LIMIT 1")
            .bind(tenant)
            .fetch_optional(&self.pool)
            .await?;
        Ok(found.is_some())
    }

    /// Registers `agent`, replacing any agent of the same tenant and name.
    pub async fn put_agent(&self, agent: &Agent) -> Result<(), StoreError> {
        let (ceiling, credentials) = agent_columns(agent)?;
        sqlx::query(
            "INSERT INTO agents (tenant, name, ceiling, max_ttl_secs, credentials) VALUES (?, ?, ?, ?, ?)
             ON CONFLICT (tenant, name) DO UPDATE SET
               ceiling = excluded.ceiling, max_ttl_secs = excluded.max_ttl_secs,
               credentials = excluded.credentials",
        )
        .bind(&agent.tenant)
        .bind(&agent.name)
        .bind(ceiling)
        .bind(i64::try_from(agent.max_ttl.as_secs()).unwrap_or(i64::MAX))
        .bind(credentials)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// The agent `name` of `tenant`, if registered.
    pub async fn agent(&self, tenant: &str, name: &str) -> Result<Option<Agent>, StoreError> {
        let row = sqlx::query(
            "SELECT ceiling, max_ttl_secs, credentials FROM agents WHERE tenant = ? AND name = ?",
        )
        .bind(tenant)
        .bind(name)
        .fetch_optional(&self.pool)
        .await?;
        let Some(row) = row else { return Ok(None) };
        let ceiling: String = row.try_get("ceiling")?;
        let max_ttl_secs: i64 = row.try_get("max_ttl_secs")?;
        let credentials: String = row.try_get("credentials")?;
        let credentials = serde_json::from_str(&credentials).map_err(|e| StoreError::Corrupt {
            what: "agent credentials",
            reason: e.to_string(),
        })?;
        let ceiling = serde_json::from_str(&ceiling).map_err(|e| StoreError::Corrupt {
            what: "agent ceiling",
            reason: e.to_string(),
        })?;
        Ok(Some(Agent {
            tenant: tenant.to_string(),
            name: name.to_string(),
            ceiling,
            max_ttl: Duration::from_secs(max_ttl_secs.max(0) as u64),
            credentials,
        }))
    }

    /// Every agent of `tenant`, by name.
    pub async fn agents(&self, tenant: &str) -> Result<Vec<Agent>, StoreError> {
        let names: Vec<(String,)> =
            sqlx::query_as("SELECT name FROM agents WHERE tenant = ? ORDER BY name")
                .bind(tenant)
                .fetch_all(&self.pool)
                .await?;
        let mut out = Vec::with_capacity(names.len());
        for (name,) in names {
            if let Some(agent) = self.agent(tenant, &name).await? {
                out.push(agent);
            }
        }
        Ok(out)
    }

    /// Removes an agent; whether it existed.
    pub async fn remove_agent(&self, tenant: &str, name: &str) -> Result<bool, StoreError> {
        let done = sqlx::query("DELETE FROM agents WHERE tenant = ? AND name = ?")
            .bind(tenant)
            .bind(name)
            .execute(&self.pool)
            .await?;
        Ok(done.rows_affected() > 0)
    }

    /// Closes every connection, flushing the WAL.
    pub async fn close(&self) {
        self.pool.close().await;
    }
}

/// The JSON columns of an agent row: its ceiling and its credentials.
fn agent_columns(agent: &Agent) -> Result<(String, String), StoreError> {
    let ceiling = serde_json::to_string(&agent.ceiling).map_err(|e| StoreError::Corrupt {
        what: "agent ceiling",
        reason: e.to_string(),
    })?;
    let credentials =
        serde_json::to_string(&agent.credentials).map_err(|e| StoreError::Corrupt {
            what: "agent credentials",
            reason: e.to_string(),
        })?;
    Ok((ceiling, credentials))
}

#[cfg(test)]
mod tests {
    use super::*;
    use writ_token::parse_grants;

    #[tokio::test]
    async fn agents_round_trip_and_upsert() {
        let tmp = tempfile::tempdir().unwrap();
        let path = tmp.path().join("writ.db");
        let store = SqliteStore::open(&path).await.unwrap();
        assert_eq!(store.agent("default", "demo").await.unwrap(), None);
        let mut agent = Agent {
            tenant: "default".into(),
            name: "demo".into(),
            ceiling: parse_grants(r#"{"type":"writ:llm","upstream":"demo"}"#).unwrap(),
            max_ttl: Duration::from_secs(30),
            credentials: crate::AgentCredentials::default(),
        };
        store.put_agent(&agent).await.unwrap();
        agent.max_ttl = Duration::from_secs(10);
        agent.credentials.secret_hash = Some("$argon2id$v=19$m=19456,t=2,p=1$c2FsdA$aGFzaA".into());
        store.put_agent(&agent).await.unwrap();
        store.close().await;
        // Reopening applies no migration twice and keeps the data.
        let store = SqliteStore::open(&path).await.unwrap();
        assert_eq!(store.agent("default", "demo").await.unwrap(), Some(agent));
    }
}
