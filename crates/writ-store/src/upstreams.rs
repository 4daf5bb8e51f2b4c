//! Upstreams created through the admin API (those of `writ.toml` are the config's, not
//! the store's). A shared upstream serves every tenant; a tenant's own serves only it. No
//! name is both: a tenant upstream may not take a shared one's name, nor the reverse.

use sqlx::Row;

use crate::changes;
use crate::error::StoreError;
use crate::store::{Store, from_json, secs, to_json, unsecs};

/// One upstream created through the admin API.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct UpstreamRecord {
    /// The tenant it belongs to; `None` for a shared upstream.
    pub tenant: Option<String>,
    /// Its name, unique among its tenant's and the shared ones.
    pub name: String,
    /// Its `kind` (`openai`, `mcp`, …), for listing.
    pub kind: String,
    /// Its settings as the API took them (the keys of an `[upstreams.NAME]` table), never
    /// holding a secret.
    pub settings: serde_json::Value,
    /// Unix seconds.
    pub created_at: u64,
    /// Unix seconds.
    pub updated_at: u64,
}

/// How a shared upstream is keyed.
const SHARED: &str = "";

fn key(tenant: Option<&str>) -> &str {
    tenant.unwrap_or(SHARED)
}

impl Store {
    /// Creates `record`: [`StoreError::Conflict`] when its name is taken (among its
    /// tenant's or the shared ones), [`StoreError::NotFound`] when its tenant does not
    /// exist.
    pub async fn create_upstream(&self, record: &UpstreamRecord) -> Result<(), StoreError> {
        let mut tx = self.pool.begin().await?;
        if let Some(tenant) = &record.tenant {
            Self::require_tenant(&mut tx, tenant).await?;
        }
        // The name is free where it is created and, for a shared one, in every tenant;
        // for a tenant's, among the shared ones.
        let taken: i64 = sqlx::query_scalar(
            "SELECT CAST(COUNT(*) AS BIGINT) FROM upstreams
             WHERE name = $1 AND (tenant = $2 OR tenant = '' OR $2 = '')",
        )
        .bind(&record.name)
        .bind(key(record.tenant.as_deref()))
        .fetch_one(&mut *tx)
        .await?;
        if taken > 0 {
            return Err(StoreError::Conflict {
                what: "upstream",
                name: record.name.clone(),
            });
        }
        sqlx::query(
            "INSERT INTO upstreams (tenant, name, kind, settings, created_at, updated_at)
             VALUES ($1, $2, $3, $4, $5, $6)",
        )
        .bind(key(record.tenant.as_deref()))
        .bind(&record.name)
        .bind(&record.kind)
        .bind(to_json("upstream settings", &record.settings)?)
        .bind(secs(record.created_at))
        .bind(secs(record.updated_at))
        .execute(&mut *tx)
        .await?;
        changes::record(&mut tx, self.backend, "upstream").await?;
        tx.commit().await?;
        Ok(())
    }

    /// Replaces the kind and settings of an existing upstream (its `created_at` is kept);
    /// [`StoreError::NotFound`] when there is none.
    pub async fn update_upstream(&self, record: &UpstreamRecord) -> Result<(), StoreError> {
        let mut tx = self.pool.begin().await?;
        let done = sqlx::query(
            "UPDATE upstreams SET kind = $1, settings = $2, updated_at = $3
             WHERE tenant = $4 AND name = $5",
        )
        .bind(&record.kind)
        .bind(to_json("upstream settings", &record.settings)?)
        .bind(secs(record.updated_at))
        .bind(key(record.tenant.as_deref()))
        .bind(&record.name)
        .execute(&mut *tx)
        .await?;
        if done.rows_affected() == 0 {
            return Err(StoreError::NotFound {
                what: "upstream",
                name: record.name.clone(),
            });
        }
        changes::record(&mut tx, self.backend, "upstream").await?;
        tx.commit().await?;
        Ok(())
    }

    /// The upstream `name` of `tenant` (`None`: the shared one).
    pub async fn upstream(
        &self,
        tenant: Option<&str>,
        name: &str,
    ) -> Result<Option<UpstreamRecord>, StoreError> {
        let row = sqlx::query(
            "SELECT tenant, name, kind, settings, created_at, updated_at FROM upstreams
             WHERE tenant = $1 AND name = $2",
        )
        .bind(key(tenant))
        .bind(name)
        .fetch_optional(&self.pool)
        .await?;
        row.as_ref().map(upstream_row).transpose()
    }

    /// The upstreams of `tenant` (`None`: the shared ones), by name.
    pub async fn upstreams(&self, tenant: Option<&str>) -> Result<Vec<UpstreamRecord>, StoreError> {
        let rows = sqlx::query(
            "SELECT tenant, name, kind, settings, created_at, updated_at FROM upstreams
             WHERE tenant = $1 ORDER BY name",
        )
        .bind(key(tenant))
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(upstream_row).collect()
    }

    /// Every upstream of every tenant and the shared ones.
    pub async fn all_upstreams(&self) -> Result<Vec<UpstreamRecord>, StoreError> {
        let rows = sqlx::query(
            "SELECT tenant, name, kind, settings, created_at, updated_at FROM upstreams
             ORDER BY tenant, name",
        )
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(upstream_row).collect()
    }

    /// Removes an upstream with every credential held for it (a shared one's: every
    /// tenant's); [`StoreError::NotFound`] when there is none.
    pub async fn delete_upstream(
        &self,
        tenant: Option<&str>,
        name: &str,
    ) -> Result<(), StoreError> {
        let mut tx = self.pool.begin().await?;
        let done = sqlx::query("DELETE FROM upstreams WHERE tenant = $1 AND name = $2")
            .bind(key(tenant))
            .bind(name)
            .execute(&mut *tx)
            .await?;
        if done.rows_affected() == 0 {
            return Err(StoreError::NotFound {
                what: "upstream",
                name: name.to_string(),
            });
        }
        sqlx::query("DELETE FROM credentials WHERE upstream = $1 AND (tenant = $2 OR $2 = '')")
            .bind(name)
            .bind(key(tenant))
            .execute(&mut *tx)
            .await?;
        changes::record(&mut tx, self.backend, "upstream").await?;
        tx.commit().await?;
        Ok(())
    }
}

fn upstream_row(row: &sqlx::any::AnyRow) -> Result<UpstreamRecord, StoreError> {
    let tenant: String = row.try_get("tenant")?;
    let settings: String = row.try_get("settings")?;
    Ok(UpstreamRecord {
        tenant: (!tenant.is_empty()).then_some(tenant),
        name: row.try_get("name")?,
        kind: row.try_get("kind")?,
        settings: from_json("upstream settings", &settings)?,
        created_at: unsecs(row.try_get("created_at")?),
        updated_at: unsecs(row.try_get("updated_at")?),
    })
}
