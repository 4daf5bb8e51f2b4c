//! Detection of credential leaks and broken authentication: secret scanning, JWT linting,
//! credentials in URLs.
//!
//! Everything here is pure — bytes and values in, findings out, no I/O and no clock (pass
//! `now`) — so the gateway's redact and extract phases, the `writ lint` command and the
//! fuzzers all drive the same code.
//!
//! - [`rules`] lists what credentials look like; [`scanner::Scanner`] finds them, by rule
//!   and by exact match against the secrets the gateway holds, and redacts them.
//! - [`stream::StreamRedactor`] redacts a chunked response body with a bounded window and
//!   the same result as redacting it whole.
//! - [`url::check_url`] finds credentials in a request's path and query.
//! - [`jwt::lint`] finds weaknesses in a JSON Web Token.

mod entropy;
pub mod error;
pub mod jwt;
mod matcher;
mod resolve;
pub mod rules;
pub mod scanner;
mod search;
pub mod stream;
pub mod url;

pub use error::DetectError;
pub use rules::{BUILTIN, Rule, RuleId};
pub use scanner::{Finding, ScanRule, Scanner};
pub use stream::StreamRedactor;
