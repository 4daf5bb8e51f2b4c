//! Mock upstreams that check what the real providers check: the exact credential header
//! of each provider and the body shape it requires, answering deterministically with real
//! usage. Used by `writ serve --demo` (the offline quickstart), tests and benches; never
//! by the gateway crate, which sees a mock as the ordinary upstream it imitates.
//!
//! - [`reply`]: the answers, pure (body in, answer out);
//! - [`MockServer`]: every mock served on a loopback port;
//! - [`MockUpstream`]: the same mocks recording what they receive, or failing as tests
//!   need (hanging, holding a stream, playing back a script).

mod body;
mod recording;
pub mod reply;
mod server;

use std::fmt;
use std::sync::Arc;

pub use body::Rejection;
pub use recording::{Behavior, MockUpstream, RecordedRequest, Script, ScriptEnd};
pub use reply::Reply;
pub use server::{
    MockServer, gemini_path, random_key, respond, respond_anthropic, respond_azure, respond_gemini,
    router,
};

/// The credential a mock requires. Its `Debug` output hides the value.
#[derive(Clone, PartialEq, Eq)]
pub struct MockKey(Arc<str>);

impl MockKey {
    /// The key `key`.
    pub fn new(key: impl Into<Arc<str>>) -> Self {
        Self(key.into())
    }

    /// The key itself, to configure the upstream that sends it.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for MockKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("MockKey(***)")
    }
}
