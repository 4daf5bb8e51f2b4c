//! What an audit log is opened with: the deployment's signing key (created on first use)
//! and the configured sink; shared by the gateway's [`Auditor`](super::Auditor) and the
//! operator trail of CLI commands.

use writ_audit::AuditKey;
use writ_audit::sink::{Sink, SinkError};
use writ_store::DataDir;
use zeroize::Zeroizing;

use crate::config::{AuditConfig, AuditSinkConfig};

/// Name of the audit key in signed notes.
pub const KEY_NAME: &str = "writ-audit";

/// The origin line of an instance's checkpoints.
pub fn origin(instance: &str) -> String {
    format!("{KEY_NAME}/{instance}")
}

/// Why the deployment's audit key could not be had.
#[derive(Debug, thiserror::Error)]
pub enum AuditKeyError {
    /// `keys/audit.key` could not be read, or created on first use.
    #[error(transparent)]
    Store(#[from] writ_store::StoreError),
    /// `keys/audit.key` holds something else than an audit signing key (or generating
    /// one failed, which leaves it empty).
    #[error("keys/audit.key is not an audit key")]
    NotAKey(#[source] writ_audit::KeyError),
}

/// Loads the deployment's audit key from the data directory, creating it on first use.
/// Fails when the key file cannot be read or written ([`AuditKeyError::Store`]) or does
/// not hold an audit key ([`AuditKeyError::NotAKey`]).
pub fn load_key(data: &DataDir) -> Result<AuditKey, AuditKeyError> {
    let text = data.secret("audit.key", || match AuditKey::generate(KEY_NAME) {
        Ok(key) => key.to_private_string(),
        Err(_) => Zeroizing::new(String::new()),
    })?;
    AuditKey::parse(&text).map_err(AuditKeyError::NotAKey)
}

/// Opens the configured sink: SQLite's `audit.db` in the data directory, the PostgreSQL
/// database (connecting to it), or the JSON-lines file (opened on first write). Fails
/// with the sink's error when the database cannot be opened or prepared.
pub async fn open_sink(config: &AuditConfig, data: &DataDir) -> Result<Sink, SinkError> {
    match &config.sink {
        AuditSinkConfig::Sqlite => {
            Sink::sqlite_with(&data.path().join("audit.db"), config.durability).await
        }
        AuditSinkConfig::Postgres(url) => {
            Sink::postgres_with(url.expose(), config.durability).await
        }
        AuditSinkConfig::File(path) => Ok(Sink::file_with(path.clone(), config.durability)),
    }
}
