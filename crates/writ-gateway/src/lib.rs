//! The writ gateway: an HTTP server that verifies writs, authorizes each request against
//! them, injects the real upstream credential and forwards the call.
//!
//! The data plane is [`pipeline`]: one module per phase of DESIGN §4, composed in order by
//! one short function. Errors become HTTP in exactly one place, [`error`].

mod approval;
pub mod audit;
pub mod config;
mod console;
mod control;
pub mod detect;
pub mod error;
mod gateway;
mod limits;
mod metrics;
mod pipeline;
pub mod serve;
mod tenancy;
pub mod traces;
pub mod upstream;

pub use gateway::{ConfigChanges, Gateway, KeyState, ReloadError, Shared, StartError, open_store};
pub use serve::server::{
    Listeners, admin_router, data_router, router, serve, serve_listeners, serve_with_workers,
};
