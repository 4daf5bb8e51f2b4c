//! Serving: the router, the listeners and their worker threads, TLS, and readiness.

pub(crate) mod readiness;
pub(crate) mod server;
pub mod tls;
pub mod workers;
