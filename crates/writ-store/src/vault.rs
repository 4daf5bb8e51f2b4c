//! The credential vault's cryptography: each secret sealed with its own data key
//! (AES-256-GCM), each data key wrapped by the master key; rotating the master key re-wraps
//! data keys and leaves ciphertexts untouched.
//!
//! Pure: bytes in, bytes out. Where the sealed records live is the store's business.

use ring::aead::{AES_256_GCM, Aad, LessSafeKey, NONCE_LEN, Nonce, UnboundKey};
use ring::rand::{SecureRandom, SystemRandom};
use sha2::{Digest, Sha256};
use zeroize::Zeroizing;

/// Label mixed into the master key to derive the key that wraps data keys, so the master
/// key's other uses (audit pseudonyms) never share a key with the vault.
const WRAPPING_LABEL: &[u8] = b"writ vault wrapping key v1";

/// Why sealing or opening failed. Never carries secret material.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum VaultError {
    /// The record was wrapped by a master key this vault does not hold.
    #[error(
        "sealed under master key {kid}, which this gateway does not hold; add it to \
         [store] previous_master_keys, then rewrap (POST /admin/v1/vault/rewrap)"
    )]
    UnknownMasterKey {
        /// The record's master key id.
        kid: String,
    },
    /// Authentication failed: the record was altered, or moved to another tenant or
    /// upstream.
    #[error("sealed record failed authentication (altered, or not this credential's)")]
    Tampered,
    /// The system's random source failed.
    #[error("no randomness available")]
    Random,
}

/// A master key: 32 bytes, with the id records name it by.
struct MasterKey {
    kid: String,
    wrapping: LessSafeKey,
}

impl MasterKey {
    fn new(key: &[u8; 32]) -> Self {
        let mut derive = Sha256::new();
        derive.update(WRAPPING_LABEL);
        derive.update(key);
        let wrapping = Zeroizing::new(<[u8; 32]>::from(derive.finalize()));
        let kid = hex::encode(&Sha256::digest(&wrapping[..])[..4]);
        Self {
            kid,
            wrapping: aes_key(&wrapping),
        }
    }
}

fn aes_key(bytes: &[u8; 32]) -> LessSafeKey {
    // AES-256 takes exactly 32 bytes: cannot fail.
    LessSafeKey::new(UnboundKey::new(&AES_256_GCM, bytes).expect("a 32-byte AES-256 key"))
}

/// One secret at rest: its ciphertext, and its data key wrapped by a master key.
#[derive(Clone, PartialEq, Eq)]
pub struct Sealed {
    /// Id of the master key that wraps the data key.
    pub master_kid: String,
    /// Nonce ‖ AES-256-GCM(master, data key).
    pub wrapped_key: Vec<u8>,
    /// Nonce ‖ AES-256-GCM(data key, secret).
    pub ciphertext: Vec<u8>,
}

impl std::fmt::Debug for Sealed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Sealed")
            .field("master_kid", &self.master_kid)
            .finish_non_exhaustive()
    }
}

/// The master key in use and the previous ones still accepted (during a rotation).
pub struct Vault {
    current: MasterKey,
    previous: Vec<MasterKey>,
    random: SystemRandom,
}

impl std::fmt::Debug for Vault {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Vault")
            .field("master_kid", &self.current.kid)
            .finish_non_exhaustive()
    }
}

impl Vault {
    /// A vault sealing under `current` and still opening what `previous` keys wrapped.
    pub fn new(current: &[u8; 32], previous: &[[u8; 32]]) -> Self {
        Self {
            current: MasterKey::new(current),
            previous: previous.iter().map(MasterKey::new).collect(),
            random: SystemRandom::new(),
        }
    }

    /// Id of the master key new records are wrapped by (not secret: a hash of a hash).
    pub fn master_kid(&self) -> &str {
        &self.current.kid
    }

    fn key(&self, kid: &str) -> Result<&MasterKey, VaultError> {
        std::iter::once(&self.current)
            .chain(&self.previous)
            .find(|k| k.kid == kid)
            .ok_or_else(|| VaultError::UnknownMasterKey {
                kid: kid.to_string(),
            })
    }

    /// Seals `secret` under a fresh data key, bound to `context` (who it belongs to):
    /// opening it under another context fails.
    pub fn seal(&self, secret: &[u8], context: &[u8]) -> Result<Sealed, VaultError> {
        let mut data_key = Zeroizing::new([0u8; 32]);
        self.random
            .fill(&mut data_key[..])
            .map_err(|_| VaultError::Random)?;
        let ciphertext = self.encrypt(&aes_key(&data_key), secret, context)?;
        let wrapped_key = self.encrypt(&self.current.wrapping, &data_key[..], context)?;
        Ok(Sealed {
            master_kid: self.current.kid.clone(),
            wrapped_key,
            ciphertext,
        })
    }

    /// The secret `sealed` holds, if it was sealed for `context` and is unaltered.
    pub fn open(&self, sealed: &Sealed, context: &[u8]) -> Result<Zeroizing<Vec<u8>>, VaultError> {
        let data_key = self.unwrap_key(sealed, context)?;
        decrypt(&aes_key(&data_key), &sealed.ciphertext, context)
    }

    /// `sealed` with its data key wrapped by the current master key (ciphertext as it
    /// was); `None` when it already is.
    pub fn rewrap(&self, sealed: &Sealed, context: &[u8]) -> Result<Option<Sealed>, VaultError> {
        if sealed.master_kid == self.current.kid {
            return Ok(None);
        }
        let data_key = self.unwrap_key(sealed, context)?;
        let wrapped_key = self.encrypt(&self.current.wrapping, &data_key[..], context)?;
        Ok(Some(Sealed {
            master_kid: self.current.kid.clone(),
            wrapped_key,
            ciphertext: sealed.ciphertext.clone(),
        }))
    }

    fn unwrap_key(
        &self,
        sealed: &Sealed,
        context: &[u8],
    ) -> Result<Zeroizing<[u8; 32]>, VaultError> {
        let master = self.key(&sealed.master_kid)?;
        let bytes = decrypt(&master.wrapping, &sealed.wrapped_key, context)?;
        let key: [u8; 32] = bytes[..].try_into().map_err(|_| VaultError::Tampered)?;
        Ok(Zeroizing::new(key))
    }

    fn encrypt(
        &self,
        key: &LessSafeKey,
        plaintext: &[u8],
        context: &[u8],
    ) -> Result<Vec<u8>, VaultError> {
        let mut nonce = [0u8; NONCE_LEN];
        self.random
            .fill(&mut nonce)
            .map_err(|_| VaultError::Random)?;
        let mut out = Vec::with_capacity(NONCE_LEN + plaintext.len() + 16);
        out.extend_from_slice(&nonce);
        out.extend_from_slice(plaintext);
        let tag = key
            .seal_in_place_separate_tag(
                Nonce::assume_unique_for_key(nonce),
                Aad::from(context),
                &mut out[NONCE_LEN..],
            )
            .map_err(|_| VaultError::Random)?;
        out.extend_from_slice(tag.as_ref());
        Ok(out)
    }
}

fn decrypt(
    key: &LessSafeKey,
    sealed: &[u8],
    context: &[u8],
) -> Result<Zeroizing<Vec<u8>>, VaultError> {
    if sealed.len() < NONCE_LEN + 16 {
        return Err(VaultError::Tampered);
    }
    let (nonce, body) = sealed.split_at(NONCE_LEN);
    let nonce = Nonce::try_assume_unique_for_key(nonce).map_err(|_| VaultError::Tampered)?;
    let mut buffer = Zeroizing::new(body.to_vec());
    let plain_len = key
        .open_in_place(nonce, Aad::from(context), &mut buffer[..])
        .map_err(|_| VaultError::Tampered)?
        .len();
    buffer.truncate(plain_len);
    Ok(buffer)
}

#[cfg(test)]
mod tests {
    use super::*;

    const K1: [u8; 32] = [1; 32];
    const K2: [u8; 32] = [2; 32];

    #[test]
    fn a_sealed_secret_opens_only_in_its_context_and_holds_no_plaintext() {
        let vault = Vault::new(&K1, &[]);
        let sealed = vault
            .seal(b"sk-tenant-a-secret", b"acme/openai/1")
            .expect("seal");
        assert!(
            !sealed
                .ciphertext
                .windows(18)
                .any(|w| w == b"sk-tenant-a-secret")
        );
        assert_eq!(
            &vault.open(&sealed, b"acme/openai/1").expect("open")[..],
            b"sk-tenant-a-secret"
        );
        assert_eq!(
            vault.open(&sealed, b"other/openai/1"),
            Err(VaultError::Tampered)
        );
        let mut altered = sealed.clone();
        let last = altered.ciphertext.len() - 1;
        altered.ciphertext[last] ^= 1;
        assert_eq!(
            vault.open(&altered, b"acme/openai/1"),
            Err(VaultError::Tampered)
        );
        let mut short = sealed.clone();
        short.wrapped_key.truncate(5);
        assert_eq!(
            vault.open(&short, b"acme/openai/1"),
            Err(VaultError::Tampered)
        );
        // Two seals of one secret differ (fresh data key and nonces).
        assert_ne!(
            vault
                .seal(b"sk-tenant-a-secret", b"c")
                .expect("seal")
                .ciphertext,
            vault
                .seal(b"sk-tenant-a-secret", b"c")
                .expect("seal")
                .ciphertext
        );
    }

    #[test]
    fn rotating_the_master_key_rewraps_without_touching_ciphertexts() {
        let old = Vault::new(&K1, &[]);
        let sealed = old.seal(b"secret", b"ctx").expect("seal");
        let new_only = Vault::new(&K2, &[]);
        assert!(matches!(
            new_only.open(&sealed, b"ctx"),
            Err(VaultError::UnknownMasterKey { .. })
        ));
        let rotating = Vault::new(&K2, &[K1]);
        assert_eq!(
            &rotating.open(&sealed, b"ctx").expect("open")[..],
            b"secret"
        );
        let rewrapped = rotating
            .rewrap(&sealed, b"ctx")
            .expect("rewrap")
            .expect("changed");
        assert_eq!(rewrapped.ciphertext, sealed.ciphertext);
        assert_eq!(rewrapped.master_kid, new_only.master_kid());
        assert_eq!(
            &new_only.open(&rewrapped, b"ctx").expect("open")[..],
            b"secret"
        );
        assert_eq!(rotating.rewrap(&rewrapped, b"ctx"), Ok(None));
        let shown = format!("{rewrapped:?} {rotating:?}");
        assert!(!shown.contains("secret\""), "{shown}");
    }
}
