//! Dev-only test kit: a recording mock upstream, a gateway fixture with a settable clock,
//! and helpers for the failure cases tests need (closed ports, hanging upstreams).
//!
//! Never a dependency of production crates.

mod gateway;
mod oauth;
mod process;
mod python;
mod tls;
mod upstream;
mod webhook;

pub use gateway::{TestGateway, mint_with};
pub use oauth::{DpopKey, OAuthClient};
pub use process::{OPERATOR, ServeProcess};
pub use python::{python, python_env, run_python_lines};
pub use tls::TestCertificates;
pub use upstream::{Behavior, MockUpstream, RecordedRequest, Script, ScriptEnd, closed_port_url};
pub use webhook::{Delivery, WebhookReceiver};
