//! Why a [`Scanner`](crate::scanner::Scanner) could not be built.

/// A scanner configuration that cannot work, named by cause.
#[derive(Debug, thiserror::Error)]
pub enum DetectError {
    /// The rule's pattern is not a valid regex.
    #[error("rule {rule}: pattern does not compile")]
    Pattern {
        /// The rule's id.
        rule: &'static str,
        /// The regex compiler's complaint.
        #[source]
        source: Box<regex::Error>,
    },
    /// The rules' loose patterns do not compile together into the first-pass set.
    #[error("the rules' patterns do not compile together into one set")]
    RuleSet {
        /// The regex compiler's complaint.
        #[source]
        source: Box<regex_automata::meta::BuildError>,
    },
    /// The rule's pattern does not compile for anchored matching.
    #[error("rule {rule}: pattern does not compile for anchored matching")]
    Exact {
        /// The rule's id.
        rule: &'static str,
        /// The regex compiler's complaint.
        #[source]
        source: Box<regex_automata::meta::BuildError>,
    },
    /// The rule's loose pattern does not compile as a lazy DFA (for streaming waits).
    #[error("rule {rule}: pattern does not compile as a lazy DFA")]
    Prefix {
        /// The rule's id.
        rule: &'static str,
        /// The regex compiler's complaint.
        #[source]
        source: Box<regex_automata::hybrid::BuildError>,
    },
    /// The rule's pattern is not valid regex syntax.
    #[error("rule {rule}: pattern does not parse")]
    Syntax {
        /// The rule's id.
        rule: &'static str,
        /// The parser's complaint.
        #[source]
        source: Box<regex_syntax::Error>,
    },
    /// The rule's pattern can match arbitrarily long text, so a stream would have to hold
    /// back without bound.
    #[error("rule {rule}: pattern has no longest match; bound every repetition")]
    UnboundedPattern {
        /// The rule's id.
        rule: &'static str,
    },
    /// The rule's pattern can match the empty string.
    #[error("rule {rule}: pattern can match the empty string")]
    EmptyMatch {
        /// The rule's id.
        rule: &'static str,
    },
    /// The rule's pattern uses `\A` or `^` without `(?m)`, which cannot be evaluated in
    /// the middle of a stream.
    #[error("rule {rule}: pattern is anchored to the start of the text")]
    AnchoredPattern {
        /// The rule's id.
        rule: &'static str,
    },
    /// A configured secret is the empty string.
    #[error("configured secret {label:?} is empty")]
    EmptySecret {
        /// Its label.
        label: String,
    },
    /// A configured secret is longer than any stream window.
    #[error("configured secret {label:?} is {len} bytes, over the {max}-byte limit")]
    SecretTooLong {
        /// Its label.
        label: String,
        /// Its length in bytes.
        len: usize,
        /// [`MAX_CONFIGURED_SECRET_LEN`](crate::scanner::MAX_CONFIGURED_SECRET_LEN).
        max: usize,
    },
    /// The exact-match automaton over configured secrets could not be built.
    #[error("configured secrets: automaton")]
    Automaton(#[from] aho_corasick::BuildError),
}
