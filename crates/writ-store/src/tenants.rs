//! Tenants: the unit everything else belongs to. A tenant is removed only when nothing
//! of it is left, so no agent, upstream, credential, policy or limit is ever orphaned.

use sqlx::Row;

use crate::changes;
use crate::error::StoreError;
use crate::store::{Store, secs, unsecs};

/// One tenant.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Tenant {
    /// Its name, as writs and agents name it.
    pub name: String,
    /// A name for people, if given.
    pub display_name: Option<String>,
    /// Unix seconds (0 for tenants that predate the record).
    pub created_at: u64,
}

/// The tables holding records that belong to a tenant, with what to call them.
const BELONGINGS: &[(&str, &str)] = &[
    ("agents", "agents"),
    ("upstreams", "upstreams"),
    ("credentials", "credentials"),
    ("policies", "policies"),
    ("limits", "limits"),
];

impl Store {
    /// Creates `tenant`; [`StoreError::Conflict`] when the name is taken.
    pub async fn create_tenant(&self, tenant: &Tenant) -> Result<(), StoreError> {
        let mut tx = self.pool.begin().await?;
        let done = sqlx::query(
            "INSERT INTO tenants (name, display_name, created_at) VALUES ($1, $2, $3)
             ON CONFLICT (name) DO NOTHING",
        )
        .bind(&tenant.name)
        .bind(&tenant.display_name)
        .bind(secs(tenant.created_at))
        .execute(&mut *tx)
        .await?;
        if done.rows_affected() == 0 {
            return Err(StoreError::Conflict {
                what: "tenant",
                name: tenant.name.clone(),
            });
        }
        changes::record(&mut tx, self.backend, "tenant").await?;
        tx.commit().await?;
        Ok(())
    }

    /// Creates the tenant `name` unless it exists (seeding); whether it was created.
    pub async fn ensure_tenant(&self, name: &str, at: u64) -> Result<bool, StoreError> {
        let tenant = Tenant {
            name: name.to_string(),
            display_name: None,
            created_at: at,
        };
        match self.create_tenant(&tenant).await {
            Ok(()) => Ok(true),
            Err(StoreError::Conflict { .. }) => Ok(false),
            Err(e) => Err(e),
        }
    }

    /// The tenant `name`, if it exists.
    pub async fn tenant(&self, name: &str) -> Result<Option<Tenant>, StoreError> {
        let row = sqlx::query("SELECT name, display_name, created_at FROM tenants WHERE name = $1")
            .bind(name)
            .fetch_optional(&self.pool)
            .await?;
        row.as_ref().map(tenant_row).transpose()
    }

    /// Every tenant, by name.
    pub async fn tenants(&self) -> Result<Vec<Tenant>, StoreError> {
        let rows = sqlx::query("SELECT name, display_name, created_at FROM tenants ORDER BY name")
            .fetch_all(&self.pool)
            .await?;
        rows.iter().map(tenant_row).collect()
    }

    /// Removes the tenant `name`: [`StoreError::NotFound`] when there is none,
    /// [`StoreError::Refused`] while anything still belongs to it.
    pub async fn delete_tenant(&self, name: &str) -> Result<(), StoreError> {
        let mut tx = self.pool.begin().await?;
        for (table, what) in BELONGINGS {
            let count: i64 = sqlx::query_scalar(&format!(
                "SELECT CAST(COUNT(*) AS BIGINT) FROM {table} WHERE tenant = $1"
            ))
            .bind(name)
            .fetch_one(&mut *tx)
            .await?;
            if count > 0 {
                return Err(StoreError::Refused(format!(
                    "tenant `{name}` still has {count} {what}; delete them first"
                )));
            }
        }
        let done = sqlx::query("DELETE FROM tenants WHERE name = $1")
            .bind(name)
            .execute(&mut *tx)
            .await?;
        if done.rows_affected() == 0 {
            return Err(StoreError::NotFound {
                what: "tenant",
                name: name.to_string(),
            });
        }
        changes::record(&mut tx, self.backend, "tenant").await?;
        tx.commit().await?;
        Ok(())
    }

    /// [`StoreError::NotFound`] unless the tenant `name` exists, read in `tx`.
    pub(crate) async fn require_tenant(
        tx: &mut sqlx::Transaction<'_, sqlx::Any>,
        name: &str,
    ) -> Result<(), StoreError> {
        // SQLite: a write first (touching nothing), so the transaction holds the write
        // lock from its start. Were it to read first, a write committed by another
        // connection before its own would fail it at once ("database is locked") instead
        // of waiting its turn.
        let count: i64 = if tx.backend_name() == "SQLite" {
            let done = sqlx::query("UPDATE tenants SET name = name WHERE name = $1")
                .bind(name)
                .execute(&mut **tx)
                .await?;
            i64::try_from(done.rows_affected()).unwrap_or(i64::MAX)
        } else {
            sqlx::query_scalar("SELECT CAST(COUNT(*) AS BIGINT) FROM tenants WHERE name = $1")
                .bind(name)
                .fetch_one(&mut **tx)
                .await?
        };
        if count == 0 {
            return Err(StoreError::NotFound {
                what: "tenant",
                name: name.to_string(),
            });
        }
        Ok(())
    }
}

fn tenant_row(row: &sqlx::any::AnyRow) -> Result<Tenant, StoreError> {
    Ok(Tenant {
        name: row.try_get("name")?,
        display_name: row.try_get("display_name")?,
        created_at: unsecs(row.try_get("created_at")?),
    })
}
