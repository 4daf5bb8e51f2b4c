//! Pseudonyms for sensitive values (writ token ids, client IPs): keyed HMAC, so audit
//! records can be joined on a value without storing it.

use std::fmt;

use hmac::{Hmac, Mac};
use sha2::Sha256;

/// How many hex characters of the HMAC a pseudonym keeps: 128 bits, far past any chance
/// of two values colliding in one deployment's logs, and half the width in every line.
pub const PSEUDONYM_HEX_LEN: usize = 32;

/// Turns sensitive values into stable pseudonyms: the first 32 hex characters of
/// `HMAC-SHA256(key, value)`.
///
/// Why keyed: writ ids and IP addresses come from small or guessable spaces, so a plain
/// hash could be reversed by trying candidates. Without the key, a pseudonym reveals
/// nothing; with it, an operator can answer "is this writ's activity in the log?" by
/// computing its pseudonym. Keep the key as secret as the gateway's master key and stable
/// for as long as records must be joined: a new key gives every value a new pseudonym.
///
/// Prints without its key.
#[derive(Clone)]
pub struct Pseudonymizer {
    // Keyed once; each call clones the keyed state instead of re-deriving it.
    mac: Hmac<Sha256>,
}

impl Pseudonymizer {
    /// A pseudonymizer keyed with `key` (32 random bytes, or derived from a master key).
    pub fn new(key: &[u8; 32]) -> Self {
        // HMAC takes keys of any length; `new_from_slice` only has a Result for MACs that
        // don't.
        let mac = <Hmac<Sha256> as Mac>::new_from_slice(key).expect("HMAC accepts any key length");
        Self { mac }
    }

    /// The pseudonym of `value`: 32 lowercase hex characters.
    pub fn pseudonym(&self, value: &str) -> String {
        let tag = self
            .mac
            .clone()
            .chain_update(value.as_bytes())
            .finalize()
            .into_bytes();
        crate::log::lower_hex(&tag[..PSEUDONYM_HEX_LEN / 2])
    }
}

impl fmt::Debug for Pseudonymizer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Pseudonymizer(..)")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matches_hmac_sha256_test_vector() {
        // RFC 4231 test case 2 uses the 4-byte key "Jefe"; zero-padding a key to the block
        // size does not change HMAC, so the same tag comes from "Jefe" padded to 32 bytes.
        let mut key = [0u8; 32];
        key[..4].copy_from_slice(b"Jefe");
        let p = Pseudonymizer::new(&key);
        assert_eq!(
            p.pseudonym("what do ya want for nothing?"),
            "5bdcc146bf60754e6a042426089575c7"
        );
    }

    #[test]
    fn stable_per_key_and_different_across_keys() {
        let a = Pseudonymizer::new(&[1; 32]);
        let b = Pseudonymizer::new(&[2; 32]);
        assert_eq!(a.pseudonym("wrt_01J9"), a.pseudonym("wrt_01J9"));
        assert_ne!(a.pseudonym("wrt_01J9"), b.pseudonym("wrt_01J9"));
        assert_ne!(a.pseudonym("10.0.0.1"), a.pseudonym("10.0.0.2"));
        assert_eq!(a.pseudonym("x").len(), PSEUDONYM_HEX_LEN);
        assert_eq!(format!("{a:?}"), "Pseudonymizer(..)");
    }
}
