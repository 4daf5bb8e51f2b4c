//! `UpstreamSecret`: a credential the gateway holds for an upstream, never printed.

use sha2::{Digest, Sha256};
use zeroize::Zeroizing;

/// An upstream credential. Zeroized on drop; `Debug` and `Display` show only a short
/// fingerprint, so it can sit in config structs that get logged.
#[derive(Clone)]
pub struct UpstreamSecret(Zeroizing<String>);

impl UpstreamSecret {
    /// Wraps a secret value.
    pub fn new(value: impl Into<String>) -> Self {
        Self(Zeroizing::new(value.into()))
    }

    /// The secret itself, for the one place that injects it.
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// First 8 hex digits of the SHA-256 of the value: enough to tell keys apart in logs.
    pub fn fingerprint(&self) -> String {
        hex::encode(&Sha256::digest(self.0.as_bytes())[..4])
    }
}

impl std::fmt::Debug for UpstreamSecret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "UpstreamSecret(fp:{})", self.fingerprint())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_never_shows_the_value() {
        let s = UpstreamSecret::new("sk-live-very-secret");
        let shown = format!("{s:?}");
        assert!(!shown.contains("sk-live"), "{shown}");
        assert!(shown.starts_with("UpstreamSecret(fp:"));
    }
}
