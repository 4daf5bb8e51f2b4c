//! Durable state: the data directory and its key files, and in one database (SQLite by
//! default, PostgreSQL for many gateways) tenants, agents, upstreams, the credential vault,
//! policies, limits, revocations, approvals, approvers, and the console's people, passkeys
//! and sessions, with a change feed gateways
//! reload from.

mod agent;
mod agents;
mod approvals;
mod changes;
mod console_sessions;
mod credentials;
mod data_dir;
mod error;
mod migrations;
mod passkeys;
mod revocations;
mod rules;
mod store;
mod tenants;
mod upstreams;
pub mod vault;

pub use agent::{
    Agent, AgentCredentials, AgentKey, UnsupportedKey, burn_secret_check, new_client_secret,
};
pub use approvals::{
    ApprovalFilter, ApprovalKind, ApprovalRecord, ApprovalStatus, ApproverRecord, Decision,
    NewApproval, PendingBounds, PollPace, VoidMatch,
};
pub use changes::ChangeFeed;
pub use console_sessions::ConsoleSession;
pub use credentials::{CredentialVersion, MAX_SECRET_BYTES, OpenedCredential};
pub use data_dir::{DataDir, MasterKey, RootKeyFiles};
pub use error::StoreError;
pub use passkeys::{
    CeremonyKind, CeremonyRecord, ConsoleAdminRecord, PasskeyRecord, Person, PersonRole,
};
pub use revocations::{RevocationNote, RevocationRecord};
pub use rules::{RuleKind, RuleRecord};
pub use store::{Backend, Store};
pub use tenants::Tenant;
pub use upstreams::UpstreamRecord;
pub use vault::{Sealed, Vault, VaultError};
