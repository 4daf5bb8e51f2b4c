//! The session store's vocabulary: which MCP session a binding is about ([`SessionKey`]),
//! whom it is bound to ([`SessionOwner`]) and what recording one found ([`Bound`]). Both
//! backends keep bindings with "set if absent, with expiry":
//! [`MemorySessions`](crate::memory::MemorySessions) in this process,
//! [`RedisLimiter::session_bind`](crate::RedisLimiter::session_bind) in Redis.
//!
//! Neither form holds what it was made of: a session id is a bearer secret of its MCP
//! server (whoever presents it speaks in that session), so the store keeps only digests.

use sha2::{Digest, Sha256};

/// The SHA-256 of `parts`, each hashed with its length first, so no two different lists of
/// parts share a digest (`["a\0b"]` and `["a", "b"]` differ).
fn digest(parts: &[&str]) -> [u8; 32] {
    let mut hash = Sha256::new();
    for part in parts {
        hash.update((part.len() as u64).to_be_bytes());
        hash.update(part.as_bytes());
    }
    hash.finalize().into()
}

/// An MCP session as the store keys it: the SHA-256 of the upstream's name and the session
/// id the upstream assigned. Every key costs the same 32 bytes whatever the id, and the same
/// id at two upstreams is two sessions.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct SessionKey([u8; 32]);

impl std::fmt::Debug for SessionKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The digest only: the id itself lets anyone speak in the session.
        write!(f, "SessionKey({})", hex::encode(self.0))
    }
}

impl SessionKey {
    /// The session `session_id` of upstream `upstream`.
    pub fn new(upstream: &str, session_id: &str) -> Self {
        Self(digest(&[upstream, session_id]))
    }

    /// The digest, as the memory store indexes it.
    pub(crate) fn digest(&self) -> &[u8; 32] {
        &self.0
    }

    /// The Redis key the binding is kept under: `writ:mcp-session:{64 hex digits}`.
    pub fn redis_key(&self) -> String {
        format!("writ:mcp-session:{}", hex::encode(self.0))
    }
}

/// Whom a session is bound to: the SHA-256 of a tenant and an agent.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct SessionOwner([u8; 32]);

impl std::fmt::Debug for SessionOwner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "SessionOwner({})", hex::encode(self.0))
    }
}

impl SessionOwner {
    /// Agent `agent` of tenant `tenant`.
    pub fn new(tenant: &str, agent: &str) -> Self {
        Self(digest(&[tenant, agent]))
    }

    /// The owner as Redis stores it: 64 lowercase hex digits.
    pub(crate) fn to_hex(self) -> String {
        hex::encode(self.0)
    }

    /// The owner Redis stored as [`SessionOwner::to_hex`]; `None` for anything else.
    pub(crate) fn from_hex(text: &[u8]) -> Option<Self> {
        let mut bytes = [0u8; 32];
        hex::decode_to_slice(text, &mut bytes).ok()?;
        Some(Self(bytes))
    }
}

/// What binding a session found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Bound {
    /// The session was not bound: it now is, to the owner given.
    New,
    /// The session was bound to the owner given already (unchanged, expiry included).
    Same,
    /// The session is bound to another owner, and stays so.
    Other,
}

impl Bound {
    /// What binding `owner` found where `existing` was bound (`None`: nothing was).
    pub(crate) fn of(existing: Option<SessionOwner>, owner: SessionOwner) -> Self {
        match existing {
            None => Bound::New,
            Some(o) if o == owner => Bound::Same,
            Some(_) => Bound::Other,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_and_owners_are_fixed_size_digests_that_keep_parts_apart() {
        assert_ne!(
            SessionKey::new("a\u{0}b", "s"),
            SessionKey::new("a", "\u{0}bs")
        );
        assert_ne!(
            SessionKey::new("travel", "s1"),
            SessionKey::new("crm", "s1")
        );
        assert_eq!(
            SessionKey::new("travel", "s1"),
            SessionKey::new("travel", "s1")
        );
        assert_ne!(SessionOwner::new("t", "ab"), SessionOwner::new("ta", "b"));
        let key = SessionKey::new("travel", &"x".repeat(10_000)).redis_key();
        assert_eq!(key.len(), "writ:mcp-session:".len() + 64);
        let debug = format!("{:?}", SessionKey::new("travel", "SECRET-SESSION"));
        assert!(!debug.contains("SECRET-SESSION"), "{debug}");
    }

    #[test]
    fn an_owner_reads_back_from_its_hex_form_only() {
        let owner = SessionOwner::new("default", "planner");
        assert_eq!(
            SessionOwner::from_hex(owner.to_hex().as_bytes()),
            Some(owner)
        );
        assert_eq!(SessionOwner::from_hex(b"planner"), None);
        assert_eq!(SessionOwner::from_hex(&[b'a'; 63]), None);
    }

    #[test]
    fn a_binding_is_new_same_or_other() {
        let (a, b) = (SessionOwner::new("t", "a"), SessionOwner::new("t", "b"));
        assert_eq!(Bound::of(None, a), Bound::New);
        assert_eq!(Bound::of(Some(a), a), Bound::Same);
        assert_eq!(Bound::of(Some(b), a), Bound::Other);
    }
}
