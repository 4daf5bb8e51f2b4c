//! Agents in the store: registered per tenant (a registration creates its tenant when
//! needed, as the CLI has always done).

use std::time::Duration;

use sqlx::Row;

use crate::agent::Agent;
use crate::changes;
use crate::error::StoreError;
use crate::store::{Store, from_json, to_json};

impl Store {
    /// Registers `agent` unless an agent of the same tenant and name exists; whether it
    /// was registered.
    pub async fn insert_agent(&self, agent: &Agent) -> Result<bool, StoreError> {
        self.write_agent(agent, false).await
    }

    /// Registers `agent`, replacing any agent of the same tenant and name.
    pub async fn put_agent(&self, agent: &Agent) -> Result<(), StoreError> {
        self.write_agent(agent, true).await.map(|_| ())
    }

    async fn write_agent(&self, agent: &Agent, replace: bool) -> Result<bool, StoreError> {
        let ceiling = to_json("agent ceiling", &agent.ceiling)?;
        let credentials = to_json("agent credentials", &agent.credentials)?;
        let on_conflict = if replace {
            "DO UPDATE SET ceiling = excluded.ceiling, max_ttl_secs = excluded.max_ttl_secs,
               credentials = excluded.credentials"
        } else {
            "DO NOTHING"
        };
        // A tenant an agent names exists from the agent's registration on.
        let now = writ_token::Clock::now(&writ_token::SystemClock)
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        let mut tx = self.pool.begin().await?;
        sqlx::query(
            "INSERT INTO tenants (name, created_at) VALUES ($1, $2) ON CONFLICT (name) DO NOTHING",
        )
        .bind(&agent.tenant)
        .bind(crate::store::secs(now))
        .execute(&mut *tx)
        .await?;
        let done = sqlx::query(&format!(
            "INSERT INTO agents (tenant, name, ceiling, max_ttl_secs, credentials)
             VALUES ($1, $2, $3, $4, $5) ON CONFLICT (tenant, name) {on_conflict}"
        ))
        .bind(&agent.tenant)
        .bind(&agent.name)
        .bind(ceiling)
        .bind(i64::try_from(agent.max_ttl.as_secs()).unwrap_or(i64::MAX))
        .bind(credentials)
        .execute(&mut *tx)
        .await?;
        let written = done.rows_affected() > 0;
        if written {
            changes::record(&mut tx, self.backend, "agent").await?;
        }
        tx.commit().await?;
        Ok(written)
    }

    /// Whether `tenant` has any registered agent.
    pub async fn tenant_has_agents(&self, tenant: &str) -> Result<bool, StoreError> {
        let count: i64 =
            sqlx::query_scalar("SELECT CAST(COUNT(*) AS BIGINT) FROM agents WHERE tenant = $1")
                .bind(tenant)
                .fetch_one(&self.pool)
                .await?;
        Ok(count > 0)
    }

    /// The agent `name` of `tenant`, if registered.
    pub async fn agent(&self, tenant: &str, name: &str) -> Result<Option<Agent>, StoreError> {
        let row = sqlx::query(
            "SELECT name, ceiling, max_ttl_secs, credentials FROM agents
             WHERE tenant = $1 AND name = $2",
        )
        .bind(tenant)
        .bind(name)
        .fetch_optional(&self.pool)
        .await?;
        row.map(|row| agent_row(tenant, &row)).transpose()
    }

    /// Every agent of `tenant`, by name.
    pub async fn agents(&self, tenant: &str) -> Result<Vec<Agent>, StoreError> {
        let rows = sqlx::query(
            "SELECT name, ceiling, max_ttl_secs, credentials FROM agents
             WHERE tenant = $1 ORDER BY name",
        )
        .bind(tenant)
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(|row| agent_row(tenant, row)).collect()
    }

    /// Removes an agent; whether it existed.
    pub async fn remove_agent(&self, tenant: &str, name: &str) -> Result<bool, StoreError> {
        let mut tx = self.pool.begin().await?;
        let done = sqlx::query("DELETE FROM agents WHERE tenant = $1 AND name = $2")
            .bind(tenant)
            .bind(name)
            .execute(&mut *tx)
            .await?;
        let removed = done.rows_affected() > 0;
        if removed {
            changes::record(&mut tx, self.backend, "agent").await?;
        }
        tx.commit().await?;
        Ok(removed)
    }
}

fn agent_row(tenant: &str, row: &sqlx::any::AnyRow) -> Result<Agent, StoreError> {
    let ceiling: String = row.try_get("ceiling")?;
    let max_ttl_secs: i64 = row.try_get("max_ttl_secs")?;
    let credentials: String = row.try_get("credentials")?;
    Ok(Agent {
        tenant: tenant.to_string(),
        name: row.try_get("name")?,
        ceiling: from_json("agent ceiling", &ceiling)?,
        max_ttl: Duration::from_secs(max_ttl_secs.max(0) as u64),
        credentials: from_json("agent credentials", &credentials)?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use writ_token::parse_grants;

    #[tokio::test]
    async fn agents_round_trip_and_upsert() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let path = tmp.path().join("writ.db");
        let store = Store::open(&path).await.expect("open");
        assert_eq!(store.agent("default", "demo").await.expect("read"), None);
        let mut agent = Agent {
            tenant: "default".into(),
            name: "demo".into(),
            ceiling: parse_grants(r#"{"type":"writ:llm","upstream":"demo"}"#).expect("grants"),
            max_ttl: Duration::from_secs(30),
            credentials: crate::AgentCredentials::default(),
        };
        store.put_agent(&agent).await.expect("put");
        agent.max_ttl = Duration::from_secs(10);
        agent.credentials.secret_hash = Some("$argon2id$v=19$m=19456,t=2,p=1$c2FsdA$aGFzaA".into());
        store.put_agent(&agent).await.expect("put");
        assert!(!store.insert_agent(&agent).await.expect("insert"));
        store.close().await;
        // Reopening applies no migration twice and keeps the data.
        let store = Store::open(&path).await.expect("reopen");
        assert_eq!(
            store.agent("default", "demo").await.expect("read"),
            Some(agent)
        );
        assert!(store.tenant("default").await.expect("tenant").is_some());
    }
}
