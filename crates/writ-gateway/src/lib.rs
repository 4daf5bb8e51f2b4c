//! The writ gateway: an HTTP server that verifies writs, authorizes each request against
//! them, injects the real upstream credential and forwards the call.
//!
//! The data plane is [`pipeline`]: one module per phase of DESIGN §4, composed in order by
//! one short function. Errors become HTTP in exactly one place, [`error`].

mod access_token;
mod admin;
pub mod audit;
mod brute_force;
pub mod config;
pub mod detections;
mod dpop;
pub mod egress;
pub mod error;
mod fanout;
mod gateway;
mod limits;
pub mod operator_log;
mod pipeline;
mod replay;
mod server;
pub mod tls;
mod token_endpoint;
mod upstream;
pub mod usage_log;
pub mod webhook;
pub mod workers;
pub mod writ_cache;

pub use gateway::{Gateway, KeyState, Shared, StartError};
pub use server::{router, serve, serve_with_workers};
