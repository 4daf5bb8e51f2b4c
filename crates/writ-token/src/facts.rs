//! Request facts: the stable vocabulary the gateway states about a request (DESIGN §2).

use std::time::SystemTime;

use biscuit_auth::builder::{Fact, Term, fact};

/// What the gateway knows about one request, stated to the authorizer as Datalog facts.
///
/// Facts come only from here, never from token blocks. Names are part of the writ format:
/// `time`, `upstream`, `operation`, `method`, `path`, `model`, `max_output_tokens`, `stream`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RequestFacts {
    /// Configured upstream name the request goes to.
    pub upstream: String,
    /// Provider-neutral operation, such as `chat` or `embeddings`.
    pub operation: String,
    /// HTTP method, upper case.
    pub method: String,
    /// Request path as received, without the query.
    pub path: String,
    /// Model named in the request, if any.
    pub model: Option<String>,
    /// The output-token cap the request states, if any.
    pub max_output_tokens: Option<u64>,
    /// Whether the response is streamed.
    pub stream: bool,
}

impl RequestFacts {
    /// The Datalog facts for this request at time `now`.
    pub(crate) fn to_facts(&self, now: SystemTime) -> Vec<Fact> {
        let mut out = vec![
            fact("time", &[Term::from(now)]),
            fact("upstream", &[Term::from(self.upstream.as_str())]),
            fact("operation", &[Term::from(self.operation.as_str())]),
            fact("method", &[Term::from(self.method.as_str())]),
            fact("path", &[Term::from(self.path.as_str())]),
            fact("stream", &[Term::from(self.stream)]),
        ];
        if let Some(model) = &self.model {
            out.push(fact("model", &[Term::from(model.as_str())]));
        }
        if let Some(n) = self.max_output_tokens {
            let n = i64::try_from(n).unwrap_or(i64::MAX);
            out.push(fact("max_output_tokens", &[Term::from(n)]));
        }
        out
    }
}
