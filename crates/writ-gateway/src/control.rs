//! The control plane: the OAuth token endpoint that mints writs, the admin API, and the
//! fan-out of revocations between instances.

pub(crate) mod admin;
pub(crate) mod fanout;
pub(crate) mod token_endpoint;
