//! The vocabulary of ways a writ can fail: each variant names one cause.

use std::time::SystemTime;

use crate::grant::GrantError;

/// Why a writ could not be decoded, verified, authorized or minted.
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum WritError {
    /// The presented string is longer than any writ this gateway accepts.
    #[error("writ is {len} bytes, more than the {max} accepted")]
    TooLarge {
        /// Length presented.
        len: usize,
        /// Largest accepted length.
        max: usize,
    },
    /// The presented string does not start with `writ_`.
    #[error("credential is not a writ (expected the `writ_` prefix)")]
    MissingPrefix,
    /// The bytes after the prefix are not a well-formed Biscuit.
    #[error("writ is malformed: {reason}")]
    Malformed {
        /// What was wrong, without echoing the token.
        reason: &'static str,
    },
    /// The writ has more blocks than accepted.
    #[error("writ has {count} blocks, more than the {max} accepted")]
    TooManyBlocks {
        /// Blocks presented.
        count: usize,
        /// Largest accepted count.
        max: usize,
    },
    /// The writ names a root key id this gateway does not trust (or none at all).
    #[error("{}", match kid {
        Some(kid) => format!("writ is signed with root key id {kid}, which this gateway does not trust (retired, or from another gateway's keys)"),
        None => "writ names no root key id, and no key this gateway trusts verifies it".to_string(),
    })]
    UnknownKeyId {
        /// The key id the writ named, if any.
        kid: Option<u32>,
    },
    /// A block signature does not verify.
    #[error(
        "writ signature does not verify: it was altered, or signed by another gateway's root key"
    )]
    BadSignature,
    /// The authority block lacks a claim every writ carries.
    #[error("writ lacks the `{claim}` claim")]
    MissingClaim {
        /// The missing fact's name.
        claim: &'static str,
    },
    /// The writ expired.
    #[error("writ expired")]
    Expired {
        /// When it expired.
        at: SystemTime,
    },
    /// The writ, its agent or its tenant was revoked.
    #[error("writ revoked")]
    Revoked,
    /// The writ's Datalog could cost more to evaluate than accepted: refused before it runs.
    #[error(transparent)]
    Datalog(#[from] crate::evaluation_cost::DatalogError),
    /// The writ is valid but does not allow this request.
    #[error("writ does not allow this request: {0}")]
    Denied(Denial),
    /// A grant given to mint could not be compiled.
    #[error(transparent)]
    Grant(#[from] GrantError),
    /// The requested lifetime is zero or above the allowed maximum.
    #[error(
        "requested ttl {requested_secs}s is outside 1..={max_secs}s: ask for whole seconds, at most {max_secs}s (the agent's and the config's max_ttl)"
    )]
    TtlOutOfRange {
        /// Requested lifetime in seconds.
        requested_secs: u64,
        /// Largest allowed lifetime in seconds.
        max_secs: u64,
    },
    /// An audience given to mint or delegate is not a usable resource URI.
    #[error("the audience is not a usable resource URI: {reason}")]
    InvalidAudience {
        /// What is wrong with it, without echoing it.
        reason: &'static str,
    },
    /// A delegation names another audience than the one its subject writ is bound to: a
    /// delegated writ keeps its subject's audience.
    #[error(
        "the subject writ is for resource {current}; a writ delegated from it cannot be for another"
    )]
    AudienceConflict {
        /// The subject writ's audience.
        current: String,
    },
    /// The Biscuit library refused to build the token; a bug in the grant compiler.
    #[error("could not build writ: {0}")]
    Build(String),
}

/// Why authorization refused a request, in terms a client can act on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Denial {
    /// Every check that failed, as `(block index, rule text)`. Block 0 is the agent's
    /// ceiling, block 1 the grants asked for at mint time, later blocks attenuations.
    pub failed_checks: Vec<(u32, String)>,
    /// Set when evaluation stopped at a run limit rather than a failed check.
    pub run_limit: bool,
}

impl std::fmt::Display for Denial {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.run_limit {
            return f.write_str("authorization exceeded its evaluation limits");
        }
        if self.failed_checks.is_empty() {
            return f.write_str("no allow policy matched");
        }
        for (i, (block, rule)) in self.failed_checks.iter().enumerate() {
            if i > 0 {
                f.write_str("; ")?;
            }
            let what = match block {
                0 => "agent ceiling",
                1 => "granted at mint",
                _ => "attenuation",
            };
            write!(f, "block {block} ({what}): {rule}")?;
        }
        Ok(())
    }
}
