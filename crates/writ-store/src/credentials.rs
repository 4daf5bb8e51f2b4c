//! The credential vault's records: per tenant and upstream, numbered versions of a secret,
//! one active; older ones kept (sealed) until retired, when their ciphertext is erased.
//! Secrets are sealed before they reach the database (see [`crate::vault`]): no column
//! holds plaintext.

use sqlx::Row;
use zeroize::Zeroizing;

use crate::changes;
use crate::error::StoreError;
use crate::store::{Store, secs, unsecs};
use crate::vault::{Sealed, Vault, VaultError};

/// What may be said of one credential version: everything but the secret.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct CredentialVersion {
    /// The tenant it is used for.
    pub tenant: String,
    /// The upstream it authenticates to.
    pub upstream: String,
    /// 1, 2, …: never reused.
    pub version: u32,
    /// First 8 hex digits of the secret's SHA-256, to tell versions apart.
    pub fingerprint: String,
    /// Whether requests use it now.
    pub active: bool,
    /// Unix seconds.
    pub created_at: u64,
    /// When it last became active.
    pub activated_at: Option<u64>,
    /// When it was retired (its ciphertext erased).
    pub retired_at: Option<u64>,
    /// The operator who added it.
    pub created_by: Option<String>,
}

/// An active credential with its secret opened, for the gateway's in-memory snapshot.
pub struct OpenedCredential {
    /// Which credential.
    pub meta: CredentialVersion,
    /// Its secret, or why it could not be opened (a master key this gateway lacks).
    pub secret: Result<Zeroizing<String>, VaultError>,
}

impl std::fmt::Debug for OpenedCredential {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OpenedCredential")
            .field("meta", &self.meta)
            .field("opened", &self.secret.is_ok())
            .finish()
    }
}

/// Largest secret accepted (a service-account key file is a few KiB).
pub const MAX_SECRET_BYTES: usize = 16 * 1024;

/// What a sealed secret is bound to: opening it as another tenant's, upstream's or
/// version's fails.
fn context(tenant: &str, upstream: &str, version: u32) -> Vec<u8> {
    format!("writ-credential\0{tenant}\0{upstream}\0{version}").into_bytes()
}

const COLUMNS: &str = "tenant, upstream, version, fingerprint, active, created_at, activated_at, \
                       retired_at, created_by";

impl Store {
    /// Seals `secret` as the next version of `tenant`'s credential for `upstream` and
    /// makes it the active one, in one transaction. [`StoreError::NotFound`] when the
    /// tenant does not exist; [`StoreError::Refused`] when the secret is empty or larger
    /// than [`MAX_SECRET_BYTES`]. (Whether the upstream exists is the caller's to check:
    /// `writ.toml`'s are not in the store.)
    #[allow(clippy::too_many_arguments)]
    pub async fn add_credential(
        &self,
        vault: &Vault,
        tenant: &str,
        upstream: &str,
        secret: &str,
        fingerprint: &str,
        by: Option<&str>,
        at: u64,
    ) -> Result<CredentialVersion, StoreError> {
        if secret.is_empty() || secret.len() > MAX_SECRET_BYTES {
            return Err(StoreError::Refused(format!(
                "a secret must hold 1 to {MAX_SECRET_BYTES} bytes"
            )));
        }
        let mut tx = self.pool.begin().await?;
        Self::require_tenant(&mut tx, tenant).await?;
        let last: i64 = sqlx::query_scalar(
            "SELECT CAST(COALESCE(MAX(version), 0) AS BIGINT) FROM credentials
             WHERE tenant = $1 AND upstream = $2",
        )
        .bind(tenant)
        .bind(upstream)
        .fetch_one(&mut *tx)
        .await?;
        let version = u32::try_from(last + 1)
            .map_err(|_| StoreError::Refused("too many credential versions".into()))?;
        let sealed = vault.seal(secret.as_bytes(), &context(tenant, upstream, version))?;
        sqlx::query("UPDATE credentials SET active = 0 WHERE tenant = $1 AND upstream = $2")
            .bind(tenant)
            .bind(upstream)
            .execute(&mut *tx)
            .await?;
        sqlx::query(
            "INSERT INTO credentials (tenant, upstream, version, fingerprint, master_kid,
               wrapped_key, ciphertext, active, created_at, activated_at, created_by)
             VALUES ($1, $2, $3, $4, $5, $6, $7, 1, $8, $8, $9)",
        )
        .bind(tenant)
        .bind(upstream)
        .bind(i64::from(version))
        .bind(fingerprint)
        .bind(&sealed.master_kid)
        .bind(&sealed.wrapped_key)
        .bind(&sealed.ciphertext)
        .bind(secs(at))
        .bind(by)
        .execute(&mut *tx)
        .await
        .map_err(|e| match e {
            sqlx::Error::Database(d) if d.is_unique_violation() => StoreError::Refused(
                "another version was added at the same moment; try again".into(),
            ),
            e => e.into(),
        })?;
        changes::record(&mut tx, self.backend, "credential").await?;
        tx.commit().await?;
        Ok(CredentialVersion {
            tenant: tenant.to_string(),
            upstream: upstream.to_string(),
            version,
            fingerprint: fingerprint.to_string(),
            active: true,
            created_at: at,
            activated_at: Some(at),
            retired_at: None,
            created_by: by.map(str::to_string),
        })
    }

    /// Every version of `tenant`'s credential for `upstream`, oldest first.
    pub async fn credentials(
        &self,
        tenant: &str,
        upstream: &str,
    ) -> Result<Vec<CredentialVersion>, StoreError> {
        let rows = sqlx::query(&format!(
            "SELECT {COLUMNS} FROM credentials WHERE tenant = $1 AND upstream = $2 ORDER BY version"
        ))
        .bind(tenant)
        .bind(upstream)
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(version_row).collect()
    }

    /// Every version of every credential of `tenant`.
    pub async fn tenant_credentials(
        &self,
        tenant: &str,
    ) -> Result<Vec<CredentialVersion>, StoreError> {
        let rows = sqlx::query(&format!(
            "SELECT {COLUMNS} FROM credentials WHERE tenant = $1 ORDER BY upstream, version"
        ))
        .bind(tenant)
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(version_row).collect()
    }

    /// Makes `version` the active one (a roll back or forward), in one transaction:
    /// requests switch to it together. Refused for a retired version.
    pub async fn activate_credential(
        &self,
        tenant: &str,
        upstream: &str,
        version: u32,
        at: u64,
    ) -> Result<CredentialVersion, StoreError> {
        let mut tx = self.pool.begin().await?;
        let current = Self::version_in(&mut tx, tenant, upstream, version).await?;
        if current.retired_at.is_some() {
            return Err(StoreError::Refused(format!(
                "version {version} is retired (its secret was erased); add a new version instead"
            )));
        }
        sqlx::query("UPDATE credentials SET active = 0 WHERE tenant = $1 AND upstream = $2")
            .bind(tenant)
            .bind(upstream)
            .execute(&mut *tx)
            .await?;
        sqlx::query(
            "UPDATE credentials SET active = 1, activated_at = $1
             WHERE tenant = $2 AND upstream = $3 AND version = $4",
        )
        .bind(secs(at))
        .bind(tenant)
        .bind(upstream)
        .bind(i64::from(version))
        .execute(&mut *tx)
        .await?;
        changes::record(&mut tx, self.backend, "credential").await?;
        tx.commit().await?;
        Ok(CredentialVersion {
            active: true,
            activated_at: Some(at),
            ..current
        })
    }

    /// Retires `version`: its ciphertext and wrapped key are erased, what may be said of
    /// it is kept. Refused for the active version (activate another first).
    pub async fn retire_credential(
        &self,
        tenant: &str,
        upstream: &str,
        version: u32,
        at: u64,
    ) -> Result<CredentialVersion, StoreError> {
        let mut tx = self.pool.begin().await?;
        let current = Self::version_in(&mut tx, tenant, upstream, version).await?;
        if current.active {
            return Err(StoreError::Refused(format!(
                "version {version} is the active one; add or activate another version first"
            )));
        }
        if current.retired_at.is_some() {
            return Ok(current);
        }
        sqlx::query(
            "UPDATE credentials SET retired_at = $1, master_kid = NULL, wrapped_key = NULL,
               ciphertext = NULL
             WHERE tenant = $2 AND upstream = $3 AND version = $4",
        )
        .bind(secs(at))
        .bind(tenant)
        .bind(upstream)
        .bind(i64::from(version))
        .execute(&mut *tx)
        .await?;
        changes::record(&mut tx, self.backend, "credential").await?;
        tx.commit().await?;
        Ok(CredentialVersion {
            retired_at: Some(at),
            ..current
        })
    }

    async fn version_in(
        tx: &mut sqlx::Transaction<'_, sqlx::Any>,
        tenant: &str,
        upstream: &str,
        version: u32,
    ) -> Result<CredentialVersion, StoreError> {
        let row = sqlx::query(&format!(
            "SELECT {COLUMNS} FROM credentials WHERE tenant = $1 AND upstream = $2 AND version = $3"
        ))
        .bind(tenant)
        .bind(upstream)
        .bind(i64::from(version))
        .fetch_optional(&mut **tx)
        .await?;
        match row {
            Some(row) => version_row(&row),
            None => Err(StoreError::NotFound {
                what: "credential version",
                name: format!("{tenant}/{upstream}/{version}"),
            }),
        }
    }

    /// Every active credential, opened with `vault`: what the gateway holds in memory.
    /// One that cannot be opened is returned with why, so the others still serve.
    pub async fn active_credentials(
        &self,
        vault: &Vault,
    ) -> Result<Vec<OpenedCredential>, StoreError> {
        let rows = sqlx::query(&format!(
            "SELECT {COLUMNS}, master_kid, wrapped_key, ciphertext FROM credentials
             WHERE active = 1 ORDER BY tenant, upstream"
        ))
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|row| {
                let meta = version_row(row)?;
                let sealed = sealed_row(row)?;
                let context = context(&meta.tenant, &meta.upstream, meta.version);
                let secret = vault.open(&sealed, &context).and_then(|bytes| {
                    String::from_utf8(bytes.to_vec())
                        .map(Zeroizing::new)
                        .map_err(|_| VaultError::Tampered)
                });
                Ok(OpenedCredential { meta, secret })
            })
            .collect()
    }

    /// Re-wraps every data key not wrapped by `vault`'s current master key (ciphertexts
    /// untouched); how many were. Fails, changing nothing, when one cannot be unwrapped.
    pub async fn rewrap_credentials(&self, vault: &Vault) -> Result<u64, StoreError> {
        let mut tx = self.pool.begin().await?;
        let rows = sqlx::query(&format!(
            "SELECT {COLUMNS}, master_kid, wrapped_key, ciphertext FROM credentials
             WHERE ciphertext IS NOT NULL AND master_kid <> $1"
        ))
        .bind(vault.master_kid())
        .fetch_all(&mut *tx)
        .await?;
        let mut count = 0;
        for row in &rows {
            let meta = version_row(row)?;
            let sealed = sealed_row(row)?;
            let context = context(&meta.tenant, &meta.upstream, meta.version);
            if let Some(new) = vault.rewrap(&sealed, &context)? {
                sqlx::query(
                    "UPDATE credentials SET master_kid = $1, wrapped_key = $2
                     WHERE tenant = $3 AND upstream = $4 AND version = $5",
                )
                .bind(&new.master_kid)
                .bind(&new.wrapped_key)
                .bind(&meta.tenant)
                .bind(&meta.upstream)
                .bind(i64::from(meta.version))
                .execute(&mut *tx)
                .await?;
                count += 1;
            }
        }
        if count > 0 {
            changes::record(&mut tx, self.backend, "credential").await?;
        }
        tx.commit().await?;
        Ok(count)
    }
}

fn version_row(row: &sqlx::any::AnyRow) -> Result<CredentialVersion, StoreError> {
    let version: i64 = row.try_get("version")?;
    let active: i64 = row.try_get("active")?;
    Ok(CredentialVersion {
        tenant: row.try_get("tenant")?,
        upstream: row.try_get("upstream")?,
        version: u32::try_from(version).map_err(|_| StoreError::Corrupt {
            what: "credential",
            reason: "version out of range".into(),
        })?,
        fingerprint: row.try_get("fingerprint")?,
        active: active != 0,
        created_at: unsecs(row.try_get("created_at")?),
        activated_at: row.try_get::<Option<i64>, _>("activated_at")?.map(unsecs),
        retired_at: row.try_get::<Option<i64>, _>("retired_at")?.map(unsecs),
        created_by: row.try_get("created_by")?,
    })
}

fn sealed_row(row: &sqlx::any::AnyRow) -> Result<Sealed, StoreError> {
    let missing = || StoreError::Corrupt {
        what: "credential",
        reason: "an active version holds no ciphertext".into(),
    };
    Ok(Sealed {
        master_kid: row
            .try_get::<Option<String>, _>("master_kid")?
            .ok_or_else(missing)?,
        wrapped_key: row
            .try_get::<Option<Vec<u8>>, _>("wrapped_key")?
            .ok_or_else(missing)?,
        ciphertext: row
            .try_get::<Option<Vec<u8>>, _>("ciphertext")?
            .ok_or_else(missing)?,
    })
}
