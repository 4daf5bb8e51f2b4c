//! Dev-only test kit: a gateway fixture with a settable clock, the `writ serve` process,
//! OAuth and webhook peers, the pinned Python and npm tools interop tests run, a headless
//! browser harness (Playwright, Chromium, axe-core, a virtual WebAuthn authenticator), and the
//! failure cases tests need (closed ports, a Redis and a PostgreSQL of a test's own to kill
//! and restart). The recording mock upstream lives in
//! `writ-mock` and is re-exported here.
//!
//! Never a dependency of production crates.

mod bearer_shim;
mod browser;
mod gateway;
mod npm;
mod oauth;
mod own_postgres;
mod postgres;
mod process;
mod python;
mod redis;
mod tls;
mod webhook;

pub use bearer_shim::BearerShim;
pub use browser::{
    AxeViolation, BrowserError, BrowserRun, ConsoleMessage, Step, is_png, on_localhost, run_browser,
};
pub use gateway::{TestGateway, mint_with};
pub use npm::{McpConformance, mcp_conformance};
pub use oauth::{DpopKey, OAuthClient};
pub use own_postgres::OwnPostgres;
pub use postgres::{FreshDatabase, POSTGRES_ADMIN_URL};
pub use process::{OPERATOR, ServeProcess};
pub use python::{python, python_env, run_python_lines};
pub use redis::OwnRedis;
pub use tls::TestCertificates;
pub use webhook::{Delivery, WebhookReceiver};
pub use writ_mock::{Behavior, MockUpstream, RecordedRequest, Script, ScriptEnd};

/// A URL on which nothing listens: a loopback port bound then released.
pub fn closed_port_url() -> String {
    let listener = std::net::TcpListener::bind((std::net::Ipv4Addr::LOCALHOST, 0)).expect("bind");
    let addr = listener.local_addr().expect("address");
    drop(listener);
    format!("http://{addr}")
}
