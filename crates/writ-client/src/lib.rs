//! For agents: a supply of writs from a writ gateway's token endpoint, used with reqwest.
//!
//! A [`WritSource`] authenticates the agent (`private_key_jwt` with an Ed25519 or P-256
//! key, or a client secret), asks for the grants the caller states as RFC 9396
//! `authorization_details`, and keeps the writ it gets until a few seconds before it
//! expires; then the next request mints a new one. However many requests need a new writ
//! at once, one mint is in flight. With a [`DpopKey`], every writ is bound to the key
//! (RFC 9449) and every request carries a fresh proof. [`WritSource::send`] sends a
//! request once more with a fresh writ when the gateway answers `401 expired_writ`.
//!
//! ```no_run
//! # async fn run() -> Result<(), writ_client::Error> {
//! let writs = writ_client::WritSource::builder("http://127.0.0.1:8787/oauth2/token", "support-bot")
//!     .private_key_pem(&std::fs::read_to_string("support-bot.pem").expect("key file"))?
//!     .grants(&serde_json::json!([{"type": "writ:llm", "upstream": "demo", "actions": ["chat"]}]))?
//!     .build()?;
//! let http = reqwest::Client::new();
//! let reply = writs
//!     .send(http.post("http://127.0.0.1:8787/v1/chat/completions").json(&serde_json::json!({
//!         "model": "gpt-4o-mini", "messages": [{"role": "user", "content": "Hello!"}]
//!     })))
//!     .await?;
//! # Ok(()) }
//! ```
//!
//! TLS is the `reqwest::Client`'s: enable a TLS feature of reqwest in your crate, and pass
//! the client to [`WritSourceBuilder::http_client`] for the token endpoint too.

mod clock;
mod credential;
mod dpop;
mod error;
mod send;
mod source;

pub use clock::{Clock, SystemClock};
pub use credential::ClientCredential;
pub use dpop::DpopKey;
pub use error::Error;
pub use source::{DEFAULT_RENEW_BEFORE, Stats, Writ, WritSource, WritSourceBuilder};
