//! Audit signing keys in the signed-note key formats: key names, key ids, verifier keys and
//! private key strings.
//!
//! A gateway instance signs its checkpoints with an Ed25519 [`AuditKey`]. Keys are written
//! the way the C2SP signed-note ecosystem (Go's `golang.org/x/mod/sumdb/note`, transparency
//! witnesses) writes them, so the same strings work with those tools:
//!
//! - **verifier key** (public; give it to auditors and witnesses):
//!   `<name>+<key id, 8 lowercase hex>+<base64(0x01 ‖ 32-byte public key)>`, e.g.
//!   `PeterNeumann+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW`;
//! - **private key** (secret; keep it in a 0600 file):
//!   `PRIVATE+KEY+<name>+<key id>+<base64(0x01 ‖ 32-byte Ed25519 seed)>`.
//!
//! The key id is the first 4 bytes of `SHA-256(name ‖ 0x0A ‖ 0x01 ‖ public key)`: it binds
//! the key to its name, so a verifier needs both (the verifier key string carries both).

use std::fmt;
use std::str::FromStr;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use ed25519_dalek::{SigningKey, VerifyingKey};
use rand::RngCore as _;
use sha2::{Digest, Sha256};
use zeroize::Zeroizing;

use crate::checkpoint::{self, Checkpoint};

/// The signed-note signature type byte for Ed25519.
pub const ALG_ED25519: u8 = 0x01;

/// A key string could not be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KeyError {
    /// Key names must be non-empty and contain neither whitespace nor `+`.
    #[error("key name must be non-empty and contain no whitespace or '+'")]
    BadName,
    /// The string is not `<name>+<hex id>+<base64>` (or its `PRIVATE+KEY+` form).
    #[error("key string is not in signed-note key format")]
    Malformed,
    /// The key is for a signature algorithm other than Ed25519.
    #[error("unsupported signature algorithm {0:#04x}; only Ed25519 (0x01) is supported")]
    UnsupportedAlgorithm(u8),
    /// The key id in the string is not the one computed from the name and key.
    #[error("key id does not match the key name and key")]
    KeyIdMismatch,
    /// The 32 bytes are not an Ed25519 public key.
    #[error("not a valid Ed25519 public key")]
    BadPublicKey,
}

/// Whether `name` may name a signed-note key: non-empty, no Unicode whitespace, no `+`.
pub fn valid_name(name: &str) -> bool {
    !name.is_empty() && !name.contains(|c: char| c == '+' || c.is_whitespace())
}

/// The signed-note key id of an Ed25519 key named `name`:
/// the first 4 bytes of `SHA-256(name ‖ 0x0A ‖ 0x01 ‖ public key)`.
pub fn key_id(name: &str, key: &VerifyingKey) -> [u8; 4] {
    let mut h = Sha256::new();
    h.update(name.as_bytes());
    h.update([b'\n', ALG_ED25519]);
    h.update(key.as_bytes());
    let digest = h.finalize();
    [digest[0], digest[1], digest[2], digest[3]]
}

/// A named Ed25519 public key that checks checkpoint signatures: what auditors are given.
///
/// Parses from and prints as the signed-note verifier key string
/// `<name>+<hex key id>+<base64(0x01 ‖ public key)>`.
#[derive(Clone, PartialEq, Eq)]
pub struct VerifierKey {
    name: String,
    key: VerifyingKey,
    id: [u8; 4],
}

impl VerifierKey {
    /// The verifier for `key` under `name`.
    pub fn new(name: &str, key: VerifyingKey) -> Result<Self, KeyError> {
        if !valid_name(name) {
            return Err(KeyError::BadName);
        }
        Ok(Self {
            name: name.to_owned(),
            id: key_id(name, &key),
            key,
        })
    }

    /// Parses a verifier key string, checking that its key id matches its name and key.
    pub fn parse(s: &str) -> Result<Self, KeyError> {
        let (name, id, payload) = split_key_string(s.trim())?;
        let Ok([alg, key @ ..]) = <[u8; 33]>::try_from(payload.as_slice()) else {
            return Err(wrong_payload(&payload));
        };
        if alg != ALG_ED25519 {
            return Err(KeyError::UnsupportedAlgorithm(alg));
        }
        let key = VerifyingKey::from_bytes(&key).map_err(|_| KeyError::BadPublicKey)?;
        let verifier = Self::new(name, key)?;
        if verifier.id != id {
            return Err(KeyError::KeyIdMismatch);
        }
        Ok(verifier)
    }

    /// The key's name; by convention the origin of the log it signs.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The Ed25519 public key.
    pub fn key(&self) -> &VerifyingKey {
        &self.key
    }

    /// The signed-note key id.
    pub fn id(&self) -> [u8; 4] {
        self.id
    }
}

impl fmt::Display for VerifierKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut payload = [0u8; 33];
        payload[0] = ALG_ED25519;
        payload[1..].copy_from_slice(self.key.as_bytes());
        write!(
            f,
            "{}+{}+{}",
            self.name,
            hex::encode(self.id),
            BASE64.encode(payload)
        )
    }
}

impl fmt::Debug for VerifierKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "VerifierKey({self})")
    }
}

impl FromStr for VerifierKey {
    type Err = KeyError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse(s)
    }
}

/// A gateway instance's checkpoint signing key: an Ed25519 key and its signed-note name.
///
/// Stored as the signed-note private key string
/// `PRIVATE+KEY+<name>+<hex key id>+<base64(0x01 ‖ 32-byte seed)>` (see
/// [`AuditKey::to_private_string`]), the format Go's `note.NewSigner` reads. The seed is
/// wiped from memory when the key is dropped. Prints only its verifier key.
pub struct AuditKey {
    name: String,
    key: SigningKey,
}

impl AuditKey {
    /// A new key named `name`, from the operating system's randomness.
    pub fn generate(name: &str) -> Result<Self, KeyError> {
        let mut seed = Zeroizing::new([0u8; 32]);
        rand::rngs::OsRng.fill_bytes(seed.as_mut());
        Self::from_seed(name, &seed)
    }

    /// The key whose Ed25519 seed (RFC 8032 private key) is `seed`.
    pub fn from_seed(name: &str, seed: &[u8; 32]) -> Result<Self, KeyError> {
        if !valid_name(name) {
            return Err(KeyError::BadName);
        }
        Ok(Self {
            name: name.to_owned(),
            key: SigningKey::from_bytes(seed),
        })
    }

    /// Parses a `PRIVATE+KEY+…` string, checking its key id.
    pub fn parse(s: &str) -> Result<Self, KeyError> {
        let rest = s
            .trim()
            .strip_prefix("PRIVATE+KEY+")
            .ok_or(KeyError::Malformed)?;
        let (name, id, payload) = split_key_string(rest)?;
        let payload = Zeroizing::new(payload);
        let Ok([alg, seed @ ..]) = <[u8; 33]>::try_from(payload.as_slice()) else {
            return Err(wrong_payload(&payload));
        };
        let seed = Zeroizing::new(seed);
        if alg != ALG_ED25519 {
            return Err(KeyError::UnsupportedAlgorithm(alg));
        }
        let key = Self::from_seed(name, &seed)?;
        if key_id(name, &key.key.verifying_key()) != id {
            return Err(KeyError::KeyIdMismatch);
        }
        Ok(key)
    }

    /// The private key string, for writing to a 0600 key file.
    pub fn to_private_string(&self) -> Zeroizing<String> {
        let mut payload = Zeroizing::new([0u8; 33]);
        payload[0] = ALG_ED25519;
        payload[1..].copy_from_slice(self.key.as_bytes());
        let id = key_id(&self.name, &self.key.verifying_key());
        Zeroizing::new(format!(
            "PRIVATE+KEY+{}+{}+{}",
            self.name,
            hex::encode(id),
            BASE64.encode(payload.as_slice())
        ))
    }

    /// The key's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The Ed25519 signing key.
    pub fn signing_key(&self) -> &SigningKey {
        &self.key
    }

    /// The public half, named: what `writ audit verify` is given.
    pub fn verifier_key(&self) -> VerifierKey {
        VerifierKey {
            name: self.name.clone(),
            id: key_id(&self.name, &self.key.verifying_key()),
            key: self.key.verifying_key(),
        }
    }

    /// Signs `checkpoint` as a signed note (see [`checkpoint::sign`]).
    pub fn sign(&self, checkpoint: &Checkpoint) -> String {
        checkpoint::sign_named(checkpoint, &self.name, &self.key)
    }
}

impl fmt::Debug for AuditKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "AuditKey({})", self.verifier_key())
    }
}

/// Why a key payload is not `0x01 ‖ 32 bytes`: another algorithm, or just malformed.
fn wrong_payload(payload: &[u8]) -> KeyError {
    match payload.first() {
        Some(&alg) if alg != ALG_ED25519 => KeyError::UnsupportedAlgorithm(alg),
        _ => KeyError::Malformed,
    }
}

/// Splits `<name>+<8 lowercase hex>+<base64>` (the name cannot hold `+`; the base64 can).
fn split_key_string(s: &str) -> Result<(&str, [u8; 4], Vec<u8>), KeyError> {
    let mut parts = s.splitn(3, '+');
    let (Some(name), Some(id_hex), Some(payload)) = (parts.next(), parts.next(), parts.next())
    else {
        return Err(KeyError::Malformed);
    };
    if !valid_name(name) {
        return Err(KeyError::BadName);
    }
    // Lowercase only, as written by every signed-note implementation: one key, one string.
    if id_hex.len() != 8
        || !id_hex
            .bytes()
            .all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
    {
        return Err(KeyError::Malformed);
    }
    let mut id = [0u8; 4];
    hex::decode_to_slice(id_hex, &mut id).map_err(|_| KeyError::Malformed)?;
    let payload = BASE64.decode(payload).map_err(|_| KeyError::Malformed)?;
    Ok((name, id, payload))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn private_key_string_round_trips() {
        let key = AuditKey::from_seed("writ.test/audit/i1", &[9; 32]).unwrap();
        let s = key.to_private_string();
        let again = AuditKey::parse(&s).unwrap();
        assert_eq!(again.name(), key.name());
        assert_eq!(again.signing_key().to_bytes(), key.signing_key().to_bytes());
        let vkey = key.verifier_key().to_string();
        assert_eq!(VerifierKey::parse(&vkey).unwrap(), key.verifier_key());
    }

    #[test]
    fn debug_shows_no_secret() {
        let key = AuditKey::from_seed("n", &[9; 32]).unwrap();
        let seed_b64 = &key.to_private_string()["PRIVATE+KEY+n+00000000+".len()..];
        assert!(!format!("{key:?}").contains(seed_b64));
    }

    #[test]
    fn bad_key_strings_are_named() {
        assert_eq!(
            AuditKey::from_seed("a b", &[0; 32]).err(),
            Some(KeyError::BadName)
        );
        assert_eq!(
            AuditKey::from_seed("a+b", &[0; 32]).err(),
            Some(KeyError::BadName)
        );
        assert_eq!(
            AuditKey::from_seed("", &[0; 32]).err(),
            Some(KeyError::BadName)
        );
        let good = AuditKey::from_seed("n", &[1; 32])
            .unwrap()
            .verifier_key()
            .to_string();
        let (name_id, b64) = good.rsplit_once('+').unwrap();
        assert_eq!(VerifierKey::parse("n+00000000+"), Err(KeyError::Malformed));
        assert_eq!(
            VerifierKey::parse("n+0000000+AAAA"),
            Err(KeyError::Malformed)
        );
        let other_name = format!("m{}", &good[1..]);
        assert_eq!(
            VerifierKey::parse(&other_name),
            Err(KeyError::KeyIdMismatch)
        );
        let mut raw = BASE64.decode(b64).unwrap();
        raw[0] = 0x02;
        let alg2 = format!("{name_id}+{}", BASE64.encode(&raw));
        assert_eq!(
            VerifierKey::parse(&alg2),
            Err(KeyError::UnsupportedAlgorithm(2))
        );
        assert_eq!(AuditKey::parse(&good).err(), Some(KeyError::Malformed));
    }
}
