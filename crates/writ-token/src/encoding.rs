//! The outer envelope: the `writ_` prefix, size caps, and Biscuit decoding.

use biscuit_auth::{Biscuit, RootKeyProvider, error};

use crate::error::WritError;
use crate::keys::RootKeys;
use crate::verify::VerifiedWrit;

/// Every writ starts with this, so secret scanners can recognise one.
pub const WRIT_PREFIX: &str = "writ_";

/// Largest writ accepted, in bytes of its text form. Checked before any parsing.
pub const MAX_WRIT_BYTES: usize = 8 * 1024;

/// Largest number of blocks accepted (authority, mint grants, attenuations).
pub const MAX_BLOCKS: usize = 16;

/// A writ whose envelope is sound but whose signatures have not been checked.
///
/// The only thing to do with one is [`UnverifiedWrit::verify`] it.
pub struct UnverifiedWrit<'a> {
    /// The text as presented, prefix included.
    pub(crate) text: &'a str,
    /// The text after the prefix.
    pub(crate) body: &'a str,
}

impl std::fmt::Debug for UnverifiedWrit<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("UnverifiedWrit(..)")
    }
}

/// Checks size and prefix of a presented credential, without parsing it.
pub fn decode(presented: &str) -> Result<UnverifiedWrit<'_>, WritError> {
    if presented.len() > MAX_WRIT_BYTES {
        return Err(WritError::TooLarge {
            len: presented.len(),
            max: MAX_WRIT_BYTES,
        });
    }
    let body = presented
        .strip_prefix(WRIT_PREFIX)
        .ok_or(WritError::MissingPrefix)?;
    if body.is_empty() {
        return Err(WritError::Malformed {
            reason: "empty after prefix",
        });
    }
    Ok(UnverifiedWrit {
        text: presented,
        body,
    })
}

impl UnverifiedWrit<'_> {
    /// Parses the Biscuit, checks every block signature against the trusted root keys
    /// and reads the authority claims.
    pub fn verify(self, keys: &RootKeys) -> Result<VerifiedWrit, WritError> {
        let biscuit = Biscuit::from_base64(self.body, keys).map_err(|e| {
            match classify_parse_error(e) {
                // The key provider refused the id: read it (unverified) to name it.
                WritError::UnknownKeyId { kid: None } => WritError::UnknownKeyId {
                    kid: biscuit_auth::UnverifiedBiscuit::from_base64(self.body)
                        .ok()
                        .and_then(|b| b.root_key_id()),
                },
                other => other,
            }
        })?;
        if biscuit.block_count() > MAX_BLOCKS {
            return Err(WritError::TooManyBlocks {
                count: biscuit.block_count(),
                max: MAX_BLOCKS,
            });
        }
        let root = keys
            .choose(biscuit.root_key_id())
            .map_err(|_| WritError::UnknownKeyId {
                kid: biscuit.root_key_id(),
            })?;
        VerifiedWrit::from_biscuit(self.text, biscuit, root, keys)
    }
}

pub(crate) fn classify_parse_error(e: error::Token) -> WritError {
    match e {
        error::Token::Base64(_) => WritError::Malformed {
            reason: "not base64url",
        },
        error::Token::Format(error::Format::UnknownPublicKey) => {
            WritError::UnknownKeyId { kid: None }
        }
        error::Token::Format(error::Format::Signature(_))
        | error::Token::Format(error::Format::SealedSignature)
        | error::Token::Format(error::Format::InvalidSignatureSize(_)) => WritError::BadSignature,
        error::Token::Format(error::Format::Version { .. }) => WritError::Malformed {
            reason: "unsupported block version",
        },
        _ => WritError::Malformed {
            reason: "not a valid biscuit",
        },
    }
}

/// Encodes a Biscuit as writ text.
pub(crate) fn encode(biscuit: &Biscuit) -> Result<String, WritError> {
    let b64 = biscuit
        .to_base64()
        .map_err(|e| WritError::Build(e.to_string()))?;
    Ok(format!("{WRIT_PREFIX}{b64}"))
}
