//! The control plane: the OAuth token endpoint that mints writs, and the admin API.

pub(crate) mod admin;
pub(crate) mod token_endpoint;
