//! Store failures, by cause.

use std::path::PathBuf;

/// Why the store could not read or write state.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// A file or directory could not be created or read.
    #[error("{path}: {source}")]
    Io {
        /// The path involved.
        path: PathBuf,
        /// The underlying error.
        source: std::io::Error,
    },
    /// A key file exists but does not hold a key.
    #[error("{path}: not a valid key file")]
    InvalidKeyFile {
        /// The key file.
        path: PathBuf,
    },
    /// A key file is readable by others than its owner.
    #[error("{path}: key file mode is {mode:o}; it must be 0600")]
    KeyFileMode {
        /// The key file.
        path: PathBuf,
        /// Its mode bits.
        mode: u32,
    },
    /// A command that only reads gateway state found no data directory there.
    #[error("no writ data directory at {path}; run it where the gateway runs or pass --data-dir")]
    NoDataDir {
        /// The directory looked for.
        path: PathBuf,
    },
    /// A key the gateway creates at its first start is missing, and this command may not
    /// create it (only `writ serve` does).
    #[error(
        "no {what} in {path}; it is created by `writ serve` at its first start, not by this command"
    )]
    MissingKey {
        /// Which key.
        what: &'static str,
        /// Where it was looked for.
        path: PathBuf,
    },
    /// The database refused an operation.
    #[error("database error: {0}")]
    Database(#[from] sqlx::Error),
    /// A stored row could not be decoded.
    #[error("corrupt stored {what}: {reason}")]
    Corrupt {
        /// What kind of row.
        what: &'static str,
        /// Why it could not be decoded.
        reason: String,
    },
    /// `[store] url` is not a PostgreSQL URL (`postgres://…`). The URL is not repeated: it
    /// may hold a password.
    #[error("[store] url must be a postgres:// or postgresql:// URL")]
    InvalidUrl,
    /// The database was migrated by a newer writ than this one.
    #[error(
        "the database schema is at version {found}, newer than this writ knows ({known}); \
         run the newer writ, or restore a backup"
    )]
    NewerSchema {
        /// The version found.
        found: i64,
        /// The newest this build knows.
        known: i64,
    },
    /// A record of this name exists already.
    #[error("{what} `{name}` exists already")]
    Conflict {
        /// What kind of record (`tenant`, `upstream`, `policy`).
        what: &'static str,
        /// Its name.
        name: String,
    },
    /// The change would leave something dangling or break a rule, explained.
    #[error("{0}")]
    Refused(String),
    /// No record of this name.
    #[error("no {what} `{name}`")]
    NotFound {
        /// What kind of record.
        what: &'static str,
        /// The name asked for.
        name: String,
    },
    /// A secret could not be sealed or opened.
    #[error("vault: {0}")]
    Vault(#[from] crate::vault::VaultError),
}
