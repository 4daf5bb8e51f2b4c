//! Durable state of one gateway: the data directory, its key files, and the registry of
//! agents in SQLite (PostgreSQL arrives with the distributed mode).

mod agent;
mod data_dir;
mod error;
mod revocations;
mod sqlite;

pub use agent::{
    Agent, AgentCredentials, AgentKey, UnsupportedKey, burn_secret_check, new_client_secret,
};
pub use data_dir::{DataDir, MasterKey, RootKeyFiles};
pub use error::StoreError;
pub use revocations::{RevocationNote, RevocationRecord};
pub use sqlite::SqliteStore;
