//! A tenant's rules: its policies (Datalog checks applied to every request) and its
//! limits (`[[limit]]` tables applying to it alone), each stored by name. The store
//! holds their text; their meaning is the gateway's.

use sqlx::Row;

use crate::changes;
use crate::error::StoreError;
use crate::store::{Store, secs, unsecs};

/// Which kind of rule.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RuleKind {
    /// Datalog checks (`policies`).
    Policy,
    /// A limit (`limits`), stored as the JSON of its `[[limit]]` keys.
    Limit,
}

impl RuleKind {
    fn table(self) -> &'static str {
        match self {
            RuleKind::Policy => "policies",
            RuleKind::Limit => "limits",
        }
    }

    fn column(self) -> &'static str {
        match self {
            RuleKind::Policy => "datalog",
            RuleKind::Limit => "spec",
        }
    }

    fn what(self) -> &'static str {
        match self {
            RuleKind::Policy => "policy",
            RuleKind::Limit => "limit",
        }
    }
}

/// One named rule of a tenant.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct RuleRecord {
    /// The tenant it applies to.
    pub tenant: String,
    /// Its name, unique in the tenant among rules of its kind.
    pub name: String,
    /// Its text: Datalog for a policy, JSON for a limit.
    pub body: String,
    /// Unix seconds.
    pub created_at: u64,
    /// Unix seconds.
    pub updated_at: u64,
}

impl Store {
    /// Creates or replaces a rule (its `created_at` kept on replace); whether it was
    /// created. [`StoreError::NotFound`] when the tenant does not exist.
    pub async fn put_rule(&self, kind: RuleKind, rule: &RuleRecord) -> Result<bool, StoreError> {
        let (table, column) = (kind.table(), kind.column());
        let mut tx = self.pool.begin().await?;
        Self::require_tenant(&mut tx, &rule.tenant).await?;
        let updated = sqlx::query(&format!(
            "UPDATE {table} SET {column} = $1, updated_at = $2 WHERE tenant = $3 AND name = $4"
        ))
        .bind(&rule.body)
        .bind(secs(rule.updated_at))
        .bind(&rule.tenant)
        .bind(&rule.name)
        .execute(&mut *tx)
        .await?;
        let created = updated.rows_affected() == 0;
        if created {
            sqlx::query(&format!(
                "INSERT INTO {table} (tenant, name, {column}, created_at, updated_at)
                 VALUES ($1, $2, $3, $4, $5)"
            ))
            .bind(&rule.tenant)
            .bind(&rule.name)
            .bind(&rule.body)
            .bind(secs(rule.created_at))
            .bind(secs(rule.updated_at))
            .execute(&mut *tx)
            .await?;
        }
        changes::record(&mut tx, self.backend, kind.what()).await?;
        tx.commit().await?;
        Ok(created)
    }

    /// The rule `name` of `tenant`, if any.
    pub async fn rule(
        &self,
        kind: RuleKind,
        tenant: &str,
        name: &str,
    ) -> Result<Option<RuleRecord>, StoreError> {
        let (table, column) = (kind.table(), kind.column());
        let row = sqlx::query(&format!(
            "SELECT tenant, name, {column} AS body, created_at, updated_at FROM {table}
             WHERE tenant = $1 AND name = $2"
        ))
        .bind(tenant)
        .bind(name)
        .fetch_optional(&self.pool)
        .await?;
        row.as_ref().map(rule_row).transpose()
    }

    /// The rules of `tenant` (`None`: of every tenant), by tenant and name.
    pub async fn rules(
        &self,
        kind: RuleKind,
        tenant: Option<&str>,
    ) -> Result<Vec<RuleRecord>, StoreError> {
        let (table, column) = (kind.table(), kind.column());
        let rows = sqlx::query(&format!(
            "SELECT tenant, name, {column} AS body, created_at, updated_at FROM {table}
             WHERE tenant = $1 OR $1 = '' ORDER BY tenant, name"
        ))
        .bind(tenant.unwrap_or(""))
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(rule_row).collect()
    }

    /// Removes a rule; [`StoreError::NotFound`] when there is none.
    pub async fn delete_rule(
        &self,
        kind: RuleKind,
        tenant: &str,
        name: &str,
    ) -> Result<(), StoreError> {
        let mut tx = self.pool.begin().await?;
        let done = sqlx::query(&format!(
            "DELETE FROM {} WHERE tenant = $1 AND name = $2",
            kind.table()
        ))
        .bind(tenant)
        .bind(name)
        .execute(&mut *tx)
        .await?;
        if done.rows_affected() == 0 {
            return Err(StoreError::NotFound {
                what: kind.what(),
                name: name.to_string(),
            });
        }
        changes::record(&mut tx, self.backend, kind.what()).await?;
        tx.commit().await?;
        Ok(())
    }
}

fn rule_row(row: &sqlx::any::AnyRow) -> Result<RuleRecord, StoreError> {
    Ok(RuleRecord {
        tenant: row.try_get("tenant")?,
        name: row.try_get("name")?,
        body: row.try_get("body")?,
        created_at: unsecs(row.try_get("created_at")?),
        updated_at: unsecs(row.try_get("updated_at")?),
    })
}
