//! Serving: the router, the listeners and their worker threads, and TLS.

pub(crate) mod server;
pub mod tls;
pub mod workers;
