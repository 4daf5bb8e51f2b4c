//! The replay store's vocabulary: what kind of one-time id is recorded ([`ReplayKind`]),
//! the fixed-size form it is stored in ([`ReplayId`]), and why a check could not be made
//! ([`ReplayError`]). Both backends record ids with "set if absent, with expiry":
//! [`MemoryReplay`](crate::memory::MemoryReplay) in this process,
//! [`RedisLimiter::first_use`](crate::RedisLimiter::first_use) in Redis.

use sha2::{Digest, Sha256};

use crate::error::BackendError;

/// What a one-time id identifies. Each kind is a namespace of its own: the same text as a
/// DPoP `jti` and as an assertion `jti` are two different ids, and in memory each kind has
/// its own bound, so a flood of one kind cannot crowd out another.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ReplayKind {
    /// The token id of a writ whose grants say `single_use`.
    SingleUse,
    /// A DPoP proof (RFC 9449): the key's thumbprint and the proof's `jti`.
    DpopProof,
    /// A client assertion (RFC 7523): the client id and the assertion's `jti`.
    Assertion,
    /// A person's approval of one request: its id (an approval lets one request through).
    Approval,
}

impl ReplayKind {
    /// Every kind, in a fixed order (the index of each is [`ReplayKind::index`]).
    pub const ALL: [ReplayKind; 4] = [
        Self::SingleUse,
        Self::DpopProof,
        Self::Assertion,
        Self::Approval,
    ];

    /// The kind's name in Redis keys and messages.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::SingleUse => "single-use",
            Self::DpopProof => "dpop",
            Self::Assertion => "assertion",
            Self::Approval => "approval",
        }
    }

    /// The kind's position in [`ReplayKind::ALL`].
    pub(crate) fn index(self) -> usize {
        match self {
            Self::SingleUse => 0,
            Self::DpopProof => 1,
            Self::Assertion => 2,
            Self::Approval => 3,
        }
    }
}

/// A one-time id as the store keeps it: its kind and the SHA-256 of its parts. Every id
/// costs the same 32 bytes whatever its length, so a hostile client's long `jti` costs the
/// store no more than a short one, and no id can name a Redis key of another shape.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct ReplayId {
    kind: ReplayKind,
    digest: [u8; 32],
}

impl std::fmt::Debug for ReplayId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The digest only: never the id (a writ's token id is pseudonymised in the audit
        // log and must not appear raw anywhere else either).
        write!(
            f,
            "ReplayId({}:{})",
            self.kind.as_str(),
            hex::encode(self.digest)
        )
    }
}

impl ReplayId {
    /// The id made of `parts` (for example a key thumbprint and a `jti`). Each part is
    /// hashed with its length first, so no two different lists of parts share an id
    /// (`["a\0b"]` and `["a", "b"]` differ), whatever bytes they hold.
    pub fn new(kind: ReplayKind, parts: &[&str]) -> Self {
        let mut hash = Sha256::new();
        for part in parts {
            hash.update((part.len() as u64).to_be_bytes());
            hash.update(part.as_bytes());
        }
        Self {
            kind,
            digest: hash.finalize().into(),
        }
    }

    /// What the id identifies.
    pub fn kind(&self) -> ReplayKind {
        self.kind
    }

    /// The SHA-256 of the id's parts.
    pub(crate) fn digest(&self) -> &[u8; 32] {
        &self.digest
    }

    /// The Redis key it is recorded under: `writ:replay:{kind}:{64 hex digits}`, at most
    /// 87 bytes.
    pub fn redis_key(&self) -> String {
        format!(
            "writ:replay:{}:{}",
            self.kind.as_str(),
            hex::encode(self.digest)
        )
    }
}

/// Why the store could not tell whether an id was seen. Either way the id must not be
/// accepted: a replay check that cannot be made refuses (fails closed).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ReplayError {
    /// The backend could not be reached or answered nonsense.
    #[error(transparent)]
    Unavailable(#[from] BackendError),
    /// The store in memory holds as many unexpired ids of this kind as it may: the id
    /// cannot be recorded, so it could be replayed, and is refused until ids expire.
    #[error("replay store full: {capacity} unexpired {} ids", kind.as_str())]
    Full {
        /// The kind whose ids fill the store.
        kind: ReplayKind,
        /// How many ids of one kind the store holds.
        capacity: usize,
    },
}

/// Milliseconds an id recorded at `now_ns` is kept to last until `expires_ns`: rounded up,
/// and at least one, since Redis refuses an expiry of zero.
pub(crate) fn ttl_ms(expires_ns: u64, now_ns: u64) -> u64 {
    expires_ns.saturating_sub(now_ns).div_ceil(1_000_000).max(1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parts_are_length_prefixed_so_no_two_lists_share_an_id() {
        let a = ReplayId::new(ReplayKind::DpopProof, &["a\u{0}b"]);
        let b = ReplayId::new(ReplayKind::DpopProof, &["a", "b"]);
        let c = ReplayId::new(ReplayKind::DpopProof, &["a", "b"]);
        assert_ne!(a, b);
        assert_eq!(b, c);
        assert_ne!(
            ReplayId::new(ReplayKind::Assertion, &["a", "b"]),
            b,
            "kinds are namespaces"
        );
    }

    #[test]
    fn a_key_is_short_whatever_the_id() {
        let long = "j".repeat(100_000);
        let key = ReplayId::new(ReplayKind::Assertion, &["client", &long]).redis_key();
        assert!(key.starts_with("writ:replay:assertion:"), "{key}");
        assert_eq!(key.len(), "writ:replay:assertion:".len() + 64);
        let debug = format!(
            "{:?}",
            ReplayId::new(ReplayKind::SingleUse, &["01HTOKENID"])
        );
        assert!(!debug.contains("01HTOKENID"), "{debug}");
    }

    #[test]
    fn a_ttl_is_whole_milliseconds_and_never_zero() {
        assert_eq!(ttl_ms(1_000_000_001, 0), 1_001);
        assert_eq!(ttl_ms(5, 5), 1);
        assert_eq!(ttl_ms(5, 10), 1);
    }
}
