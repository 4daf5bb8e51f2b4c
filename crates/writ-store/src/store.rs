//! `Store`: durable state in one database, SQLite (the embedded default, one file in WAL
//! mode) or PostgreSQL (many gateways), behind one interface: the same SQL runs on both,
//! only the schema's spelling and the change feed's wake-up differ.

use std::path::Path;
use std::time::Duration;

use sqlx::any::{AnyConnectOptions, AnyPoolOptions};
use sqlx::{AnyPool, Executor};

use crate::error::StoreError;
use crate::migrations;

/// Which database a store runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    /// One SQLite file.
    Sqlite,
    /// A PostgreSQL database shared by every gateway.
    Postgres,
}

/// Durable state, shared safely by a running server and CLI commands (SQLite: WAL mode
/// and a busy timeout; PostgreSQL: a pool). Every change is written in one transaction
/// with a row of the change feed (see [`crate::ChangeFeed`]).
#[derive(Clone)]
pub struct Store {
    pub(crate) pool: AnyPool,
    pub(crate) backend: Backend,
    /// The PostgreSQL URL, for the change feed's own listening connection. It may hold a
    /// password: never shown (see [`Store::describe`]).
    pub(crate) url: Option<String>,
    /// What and where the database is, without a password.
    location: String,
}

/// Shows the backend and where it is, never the URL (which may hold a password).
impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Store")
            .field("location", &self.location)
            .finish_non_exhaustive()
    }
}

fn install_drivers() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(sqlx::any::install_default_drivers);
}

impl Store {
    /// Opens (creating if needed) the SQLite database at `path` and brings its schema up
    /// to date.
    pub async fn open(path: &Path) -> Result<Self, StoreError> {
        install_drivers();
        let path = std::path::absolute(path).map_err(|source| StoreError::Io {
            path: path.to_path_buf(),
            source,
        })?;
        let url = sqlite_url(&path);
        let options: AnyConnectOptions = url.parse()?;
        let pool = AnyPoolOptions::new()
            .max_connections(4)
            .after_connect(|conn, _| {
                Box::pin(async move {
                    conn.execute("PRAGMA busy_timeout = 5000").await?;
                    conn.execute("PRAGMA foreign_keys = ON").await?;
                    Ok(())
                })
            })
            .connect_with(options)
            .await?;
        // Persistent: set once per file, kept by every later connection.
        sqlx::query("PRAGMA journal_mode = WAL")
            .execute(&pool)
            .await?;
        let store = Self {
            pool,
            backend: Backend::Sqlite,
            url: None,
            location: format!("SQLite at {}", path.display()),
        };
        store.migrate().await?;
        Ok(store)
    }

    /// Connects to the PostgreSQL database at `url` (`postgres://…`) and brings its schema
    /// up to date. Gateways sharing it take turns to migrate (an advisory lock).
    pub async fn connect(url: &str) -> Result<Self, StoreError> {
        install_drivers();
        if !(url.starts_with("postgres://") || url.starts_with("postgresql://")) {
            return Err(StoreError::InvalidUrl);
        }
        let options: AnyConnectOptions = url.parse().map_err(|_| StoreError::InvalidUrl)?;
        let pool = AnyPoolOptions::new()
            .max_connections(8)
            .acquire_timeout(Duration::from_secs(5))
            .connect_with(options)
            .await?;
        let location = match url.parse::<sqlx::postgres::PgConnectOptions>() {
            Ok(o) => format!(
                "PostgreSQL at {}:{}/{}",
                o.get_host(),
                o.get_port(),
                o.get_database().unwrap_or("")
            ),
            Err(_) => "PostgreSQL".to_string(),
        };
        let store = Self {
            pool,
            backend: Backend::Postgres,
            url: Some(url.to_string()),
            location,
        };
        store.migrate().await?;
        Ok(store)
    }

    /// Which database this is.
    pub fn backend(&self) -> Backend {
        self.backend
    }

    /// What and where the database is, for an operator: `SQLite at PATH`, `PostgreSQL at
    /// HOST:PORT/DATABASE` (never a password).
    pub fn describe(&self) -> &str {
        &self.location
    }

    /// Whether the database answers now: one read of the change feed. Not a write: on
    /// SQLite a probe's write transaction makes any concurrent transaction that read
    /// before it fail its own write at once (`database is locked`), and readiness is
    /// polled every few seconds.
    pub async fn probe(&self) -> Result<(), StoreError> {
        sqlx::query("SELECT MAX(seq) FROM changes")
            .fetch_optional(&self.pool)
            .await?;
        Ok(())
    }

    async fn migrate(&self) -> Result<(), StoreError> {
        let steps = match self.backend {
            Backend::Sqlite => migrations::SQLITE,
            Backend::Postgres => migrations::POSTGRES,
        };
        let mut tx = self.pool.begin().await?;
        if self.backend == Backend::Postgres {
            // Held to the end of the transaction: one gateway migrates at a time.
            sqlx::query("SELECT pg_advisory_xact_lock(7235166)")
                .execute(&mut *tx)
                .await?;
        }
        sqlx::query("CREATE TABLE IF NOT EXISTS schema_version (version BIGINT NOT NULL)")
            .execute(&mut *tx)
            .await?;
        let current: i64 = sqlx::query_scalar(
            "SELECT CAST(COALESCE(MAX(version), 0) AS BIGINT) FROM schema_version",
        )
        .fetch_one(&mut *tx)
        .await?;
        if current > steps.len() as i64 {
            return Err(StoreError::NewerSchema {
                found: current,
                known: steps.len() as i64,
            });
        }
        for (i, sql) in steps.iter().enumerate().skip(current.max(0) as usize) {
            sqlx::query(sql).execute(&mut *tx).await?;
            sqlx::query("INSERT INTO schema_version (version) VALUES ($1)")
                .bind(i as i64 + 1)
                .execute(&mut *tx)
                .await?;
        }
        tx.commit().await?;
        Ok(())
    }

    /// Closes every connection (SQLite: flushing the WAL).
    pub async fn close(&self) {
        self.pool.close().await;
    }
}

/// `sqlite://<path>?mode=rwc`, the path percent-encoded so any file name is taken as is.
fn sqlite_url(path: &Path) -> String {
    let mut url = String::from("sqlite://");
    for b in path.to_string_lossy().bytes() {
        if b.is_ascii_alphanumeric() || b"/-_.~".contains(&b) {
            url.push(char::from(b));
        } else {
            url.push_str(&format!("%{b:02X}"));
        }
    }
    url.push_str("?mode=rwc");
    url
}

/// Unix seconds as stored (BIGINT).
pub(crate) fn secs(at: u64) -> i64 {
    i64::try_from(at).unwrap_or(i64::MAX)
}

/// Stored BIGINT seconds as Unix seconds.
pub(crate) fn unsecs(at: i64) -> u64 {
    at.max(0) as u64
}

/// A JSON column's text, or why the value could not be written.
pub(crate) fn to_json<T: serde::Serialize>(
    what: &'static str,
    value: &T,
) -> Result<String, StoreError> {
    serde_json::to_string(value).map_err(|e| StoreError::Corrupt {
        what,
        reason: e.to_string(),
    })
}

/// A JSON column's value, or why the stored text could not be read.
pub(crate) fn from_json<T: serde::de::DeserializeOwned>(
    what: &'static str,
    text: &str,
) -> Result<T, StoreError> {
    serde_json::from_str(text).map_err(|e| StoreError::Corrupt {
        what,
        reason: e.to_string(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sqlite_urls_take_any_file_name_as_is() {
        assert_eq!(
            sqlite_url(Path::new("/tmp/a b/writ?.db")),
            "sqlite:///tmp/a%20b/writ%3F.db?mode=rwc"
        );
    }
}
