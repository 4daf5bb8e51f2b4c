//! Root keys: the one signing key pair and the set of trusted verification keys, by key id.

use std::collections::BTreeMap;

use biscuit_auth::{Algorithm, KeyPair, PrivateKey, PublicKey, RootKeyProvider, error};
use sha2::{Digest, Sha256};
use zeroize::Zeroizing;

/// Identifies a root key. Every writ names the key id that signed it, so keys can rotate.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct KeyId(pub u32);

impl std::fmt::Display for KeyId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", self.0)
    }
}

/// An Ed25519 root signing key with its id. Prints only its id and public fingerprint.
pub struct RootKeyPair {
    kid: KeyId,
    pair: KeyPair,
}

impl std::fmt::Debug for RootKeyPair {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "RootKeyPair(kid:{}, public:{})",
            self.kid,
            fingerprint(&self.pair.public())
        )
    }
}

impl RootKeyPair {
    /// Generates a new key from the operating system's randomness.
    pub fn generate(kid: KeyId) -> Self {
        Self {
            kid,
            pair: KeyPair::new_with_rng(Algorithm::Ed25519, &mut rand::rngs::OsRng),
        }
    }

    /// Loads a key from the hex encoding of its 32 private bytes.
    pub fn from_private_hex(kid: KeyId, hex_bytes: &str) -> Result<Self, KeyError> {
        let private = PrivateKey::from_bytes_hex(hex_bytes.trim(), Algorithm::Ed25519)
            .map_err(|_| KeyError::InvalidPrivateKey)?;
        Ok(Self {
            kid,
            pair: KeyPair::from(&private),
        })
    }

    /// The hex encoding of the private key, for writing to a 0600 key file.
    pub fn private_hex(&self) -> Zeroizing<String> {
        Zeroizing::new(self.pair.private().to_bytes_hex())
    }

    /// This key's id.
    pub fn kid(&self) -> KeyId {
        self.kid
    }

    /// The public half.
    pub fn public(&self) -> PublicKey {
        self.pair.public()
    }

    pub(crate) fn pair(&self) -> &KeyPair {
        &self.pair
    }
}

/// A key file did not hold a valid key.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum KeyError {
    /// The bytes are not an Ed25519 private key.
    #[error("not a valid Ed25519 private key")]
    InvalidPrivateKey,
    /// The bytes are not an Ed25519 public key.
    #[error("not a valid Ed25519 public key")]
    InvalidPublicKey,
}

/// The hex encoding of a root public key, as a retired key's `.pub` file holds it.
pub fn public_key_hex(key: &PublicKey) -> String {
    key.to_bytes_hex()
}

/// Reads a root public key from [`public_key_hex`]'s encoding.
pub fn public_key_from_hex(hex_bytes: &str) -> Result<PublicKey, KeyError> {
    PublicKey::from_bytes_hex(hex_bytes.trim(), Algorithm::Ed25519)
        .map_err(|_| KeyError::InvalidPublicKey)
}

/// The root public keys this gateway trusts, by key id.
///
/// A writ that names no key id, or one not in the set, is refused: there is no default key.
#[derive(Debug, Clone, Default)]
pub struct RootKeys {
    keys: BTreeMap<KeyId, PublicKey>,
}

impl RootKeys {
    /// An empty set.
    pub fn new() -> Self {
        Self::default()
    }

    /// Trusts `key` under `kid`.
    pub fn insert(&mut self, kid: KeyId, key: PublicKey) {
        self.keys.insert(kid, key);
    }

    /// The trusted keys, by id.
    pub fn iter(&self) -> impl Iterator<Item = (KeyId, &PublicKey)> {
        self.keys.iter().map(|(k, v)| (*k, v))
    }
}

impl RootKeyProvider for &RootKeys {
    fn choose(&self, key_id: Option<u32>) -> Result<PublicKey, error::Format> {
        key_id
            .and_then(|id| self.keys.get(&KeyId(id)).copied())
            .ok_or(error::Format::UnknownPublicKey)
    }
}

/// A short, stable fingerprint of a public key for logs: the first 8 hex digits of its SHA-256.
pub fn fingerprint(key: &PublicKey) -> String {
    let digest = Sha256::digest(key.to_bytes());
    hex::encode(&digest[..4])
}
