//! The fixed root key and clock the writ targets verify against, so the seed writs minted
//! with it (`examples/seed_corpus.rs`) verify in every run, fuzzing and replay alike.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use writ_token::{KeyId, RootKeyPair, RootKeys};

/// The private half of the fuzzing root key (key id 1). Public on purpose: it signs
/// nothing but fuzz seeds, and no gateway trusts it.
const FIXED_PRIVATE_HEX: &str = "be3c5ac5a1b7fe39665df9b7e2736c2cc9a327e48127495ee6f9d2f97abf78ab";

/// The time every target checks at: 2027-01-15, after the seeds' issue time and before
/// their expiry.
pub const FIXED_NOW: u64 = 1_800_000_000;

/// [`FIXED_NOW`] as a time.
pub(crate) fn fixed_now() -> SystemTime {
    UNIX_EPOCH + Duration::from_secs(FIXED_NOW)
}

/// The fuzzing root key pair, key id 1.
pub fn fixed_root_key() -> RootKeyPair {
    match RootKeyPair::from_private_hex(KeyId(1), FIXED_PRIVATE_HEX) {
        Ok(key) => key,
        Err(e) => panic!("the fixed fuzzing key is a valid Ed25519 key: {e}"),
    }
}

/// The root keys the writ targets trust: the fixed key alone.
pub fn fixed_root_keys() -> RootKeys {
    let key = fixed_root_key();
    let mut keys = RootKeys::new();
    keys.insert(key.kid(), key.public());
    keys
}
