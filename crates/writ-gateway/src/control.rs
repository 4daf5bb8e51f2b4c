//! The control plane: the OAuth token endpoint that mints writs, its discovery metadata,
//! the admin API, where agents read their approvals, and the fan-out of revocations
//! between instances.

pub(crate) mod admin;
pub(crate) mod approval_status;
pub(crate) mod discovery;
pub(crate) mod fanout;
pub(crate) mod token_endpoint;
