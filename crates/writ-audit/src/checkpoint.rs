//! Checkpoints: signed tree heads in the C2SP `tlog-checkpoint` signed-note format.
//!
//! A checkpoint commits to the log's first `size` records by their Merkle root. It is a
//! [signed note](https://c2sp.org/signed-note) whose text is the
//! [checkpoint body](https://c2sp.org/tlog-checkpoint):
//!
//! ```text
//! <origin>\n
//! <tree size, decimal>\n
//! <root hash, base64>\n
//! [extension lines\n]
//! \n
//! — <key name> <base64(4-byte key id ‖ 64-byte Ed25519 signature over the body)>\n
//! ```
//!
//! The em dash is U+2014. A note may carry signatures from several keys (a witness adds
//! its cosignature line); lines from keys the verifier does not know are ignored, but a
//! line from the verifier's key that fails to verify makes the whole note invalid. We write
//! no extension lines and ignore (signed) ones we read.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use ed25519_dalek::{Signature, Signer as _, SigningKey, VerifyingKey};

use crate::key::{self, VerifierKey};
use crate::merkle::Hash;

/// Signature lines start with an em dash and a space.
const SIGNATURE_PREFIX: &str = "\u{2014} ";

/// More signature lines than this is a malformed note (the limit Go's `note.Open` uses),
/// so a hostile note cannot make us check signatures without end.
const MAX_SIGNATURES: usize = 100;

/// A note could not be read as a checkpoint signed by the expected key.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CheckpointError {
    /// Signed notes may hold no ASCII control characters other than newline.
    #[error("note contains a control character")]
    ControlCharacter,
    /// There is no blank line followed by newline-terminated signature lines.
    #[error("note has no signature block")]
    MissingSignatureBlock,
    /// Signature line `line` (from 1) is not `— <name> <base64>` with at least 5 bytes.
    #[error("signature line {line} is malformed")]
    BadSignatureLine {
        /// 1-based position within the signature block.
        line: usize,
    },
    /// More than 100 signature lines.
    #[error("note has more than {MAX_SIGNATURES} signatures")]
    TooManySignatures,
    /// A key name that signed-note does not allow (empty, or holding whitespace or `+`).
    #[error("invalid key name")]
    BadKeyName,
    /// The body has fewer than three lines.
    #[error("checkpoint body is missing lines")]
    TruncatedBody,
    /// The origin line is empty or holds a control character.
    #[error("checkpoint origin is empty or holds a control character")]
    BadOrigin,
    /// The tree size line is not a decimal u64 without leading zeros.
    #[error("checkpoint tree size is not a decimal number")]
    BadTreeSize,
    /// The root hash line is not the standard base64 of 32 bytes.
    #[error("checkpoint root hash is not base64 of 32 bytes")]
    BadRootHash,
    /// An extension line is empty.
    #[error("checkpoint has an empty extension line")]
    EmptyExtensionLine,
    /// No signature line carries the expected key's name and key id.
    #[error("note is not signed by the expected key")]
    UnknownKey,
    /// A signature line of the expected key does not verify over the body.
    #[error("signature does not verify")]
    BadSignature,
}

/// A tree head: the log named `origin` had `size` records, whose Merkle root was `root`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Checkpoint {
    origin: String,
    size: u64,
    root: Hash,
}

impl Checkpoint {
    /// A checkpoint. The origin names the log uniquely and for good (we use
    /// `<gateway host>/audit/<instance id>`); it must be non-empty and hold no control
    /// characters, since it is a line of the note.
    pub fn new(origin: impl Into<String>, size: u64, root: Hash) -> Result<Self, CheckpointError> {
        let origin = origin.into();
        if !valid_origin(&origin) {
            return Err(CheckpointError::BadOrigin);
        }
        Ok(Self { origin, size, root })
    }

    /// The log's name.
    pub fn origin(&self) -> &str {
        &self.origin
    }

    /// How many records the checkpoint commits to.
    pub fn size(&self) -> u64 {
        self.size
    }

    /// The Merkle root of those records.
    pub fn root(&self) -> &Hash {
        &self.root
    }

    /// The note text that is signed: `<origin>\n<size>\n<base64 root>\n`.
    pub fn body(&self) -> String {
        format!(
            "{}\n{}\n{}\n",
            self.origin,
            self.size,
            BASE64.encode(self.root)
        )
    }
}

/// Whether `origin` can be a checkpoint's first line.
pub(crate) fn valid_origin(origin: &str) -> bool {
    !origin.is_empty() && !origin.chars().any(char::is_control)
}

/// Signs `checkpoint` with `key` under the key name `name`, returning the note text
/// (body, blank line, one signature line, final newline).
///
/// Fails only if `name` is not a valid key name. [`crate::AuditKey::sign`] cannot fail.
pub fn sign(
    checkpoint: &Checkpoint,
    name: &str,
    key: &SigningKey,
) -> Result<String, CheckpointError> {
    if !key::valid_name(name) {
        return Err(CheckpointError::BadKeyName);
    }
    Ok(sign_named(checkpoint, name, key))
}

/// [`sign`], for a name already known to be valid.
pub(crate) fn sign_named(checkpoint: &Checkpoint, name: &str, key: &SigningKey) -> String {
    sign_text(&checkpoint.body(), name, key)
}

/// Signs a note `text` (ending in a newline). Private so an audit key signs nothing but
/// checkpoints.
fn sign_text(text: &str, name: &str, key: &SigningKey) -> String {
    let mut blob = Vec::with_capacity(4 + 64);
    blob.extend_from_slice(&key::key_id(name, &key.verifying_key()));
    blob.extend_from_slice(&key.sign(text.as_bytes()).to_bytes());
    format!("{text}\n{SIGNATURE_PREFIX}{name} {}\n", BASE64.encode(blob))
}

/// Reads `note` as a checkpoint signed by the Ed25519 key `key` named `name`.
///
/// The note must be a well-formed signed note with at least one signature line by this
/// key (same name and key id), all of whose signature lines by this key verify; other
/// signers' lines are ignored. Signatures are checked with strict Ed25519 verification
/// (no small-order keys, canonical encodings only).
pub fn parse_and_verify(
    note: &str,
    name: &str,
    key: &VerifyingKey,
) -> Result<Checkpoint, CheckpointError> {
    let verifier = VerifierKey::new(name, *key).map_err(|_| CheckpointError::BadKeyName)?;
    open(note, &verifier)
}

/// [`parse_and_verify`] with the name and key given as one verifier key.
pub fn open(note: &str, verifier: &VerifierKey) -> Result<Checkpoint, CheckpointError> {
    parse_body(open_note(note, verifier)?)
}

/// Checks any signed note (not only a checkpoint) against `verifier` and returns its text,
/// ending in a newline: for notes such as a witness's, which this crate does not parse.
pub fn open_note<'n>(note: &'n str, verifier: &VerifierKey) -> Result<&'n str, CheckpointError> {
    if note.chars().any(|c| c < ' ' && c != '\n') {
        return Err(CheckpointError::ControlCharacter);
    }
    // The text ends at the last blank line; it keeps its own final newline.
    let split = note
        .rfind("\n\n")
        .ok_or(CheckpointError::MissingSignatureBlock)?;
    let (text, signatures) = (&note[..=split], &note[split + 2..]);
    let Some(signatures) = signatures.strip_suffix('\n') else {
        return Err(CheckpointError::MissingSignatureBlock);
    };

    let mut verified = false;
    for (i, line) in signatures.split('\n').enumerate() {
        if i >= MAX_SIGNATURES {
            return Err(CheckpointError::TooManySignatures);
        }
        let bad_line = CheckpointError::BadSignatureLine { line: i + 1 };
        let (signer, blob) = line
            .strip_prefix(SIGNATURE_PREFIX)
            .and_then(|rest| rest.split_once(' '))
            .ok_or(bad_line.clone())?;
        if !key::valid_name(signer) {
            return Err(bad_line);
        }
        let blob = BASE64.decode(blob).map_err(|_| bad_line.clone())?;
        let Some((id, signature)) = blob.split_first_chunk::<4>() else {
            return Err(bad_line);
        };
        if signature.is_empty() {
            return Err(bad_line);
        }
        if signer != verifier.name() || *id != verifier.id() {
            continue;
        }
        let signature = <&[u8; 64]>::try_from(signature)
            .map(Signature::from_bytes)
            .map_err(|_| CheckpointError::BadSignature)?;
        verifier
            .key()
            .verify_strict(text.as_bytes(), &signature)
            .map_err(|_| CheckpointError::BadSignature)?;
        verified = true;
    }
    if !verified {
        return Err(CheckpointError::UnknownKey);
    }
    Ok(text)
}

/// Reads a checkpoint body (ending in a newline) into its three fields.
fn parse_body(text: &str) -> Result<Checkpoint, CheckpointError> {
    let mut lines = text.split('\n');
    // `text` ends in '\n', so the last piece is empty and is not a line.
    let _ = lines.next_back();
    let origin = lines.next().ok_or(CheckpointError::TruncatedBody)?;
    let size = lines.next().ok_or(CheckpointError::TruncatedBody)?;
    let root = lines.next().ok_or(CheckpointError::TruncatedBody)?;
    if lines.any(str::is_empty) {
        return Err(CheckpointError::EmptyExtensionLine);
    }
    if !valid_origin(origin) {
        return Err(CheckpointError::BadOrigin);
    }
    let canonical_decimal = size.bytes().all(|b| b.is_ascii_digit())
        && !size.is_empty()
        && (size == "0" || !size.starts_with('0'));
    let size = size
        .parse::<u64>()
        .ok()
        .filter(|_| canonical_decimal)
        .ok_or(CheckpointError::BadTreeSize)?;
    let root = BASE64
        .decode(root)
        .ok()
        .and_then(|bytes| Hash::try_from(bytes).ok())
        .ok_or(CheckpointError::BadRootHash)?;
    Ok(Checkpoint {
        origin: origin.to_owned(),
        size,
        root,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::AuditKey;

    fn key() -> AuditKey {
        AuditKey::from_seed("example.com/log", &[3; 32]).unwrap()
    }

    fn note(size: u64) -> String {
        key().sign(&Checkpoint::new("example.com/log", size, [7; 32]).unwrap())
    }

    #[test]
    fn signs_and_opens() {
        let cp = open(&note(5), &key().verifier_key()).unwrap();
        assert_eq!(
            (cp.origin(), cp.size(), cp.root()),
            ("example.com/log", 5, &[7; 32])
        );
        let k = key();
        let again = parse_and_verify(&note(5), k.name(), &k.signing_key().verifying_key());
        assert_eq!(again, Ok(cp));
    }

    #[test]
    fn wrong_key_or_name_is_unknown_key() {
        let other = AuditKey::from_seed("example.com/log", &[4; 32]).unwrap();
        assert_eq!(
            open(&note(5), &other.verifier_key()),
            Err(CheckpointError::UnknownKey)
        );
        let renamed = VerifierKey::new("example.com/other", key().signing_key().verifying_key());
        assert_eq!(
            open(&note(5), &renamed.unwrap()),
            Err(CheckpointError::UnknownKey)
        );
    }

    #[test]
    fn edited_body_is_bad_signature() {
        let edited = note(5).replacen("\n5\n", "\n6\n", 1);
        assert_eq!(
            open(&edited, &key().verifier_key()),
            Err(CheckpointError::BadSignature)
        );
    }

    #[test]
    fn other_signers_are_ignored_but_needed_key_must_verify() {
        let k = key();
        let cosigned = format!("{}— witness.example AAAAAAAA\n", note(5));
        assert!(open(&cosigned, &k.verifier_key()).is_ok());
        let wrong = format!("{}— {} {}\n", note(5), k.name(), BASE64.encode([0u8; 68]));
        // A line with our name but another key id is someone else's key: ignored.
        assert!(open(&wrong, &k.verifier_key()).is_ok());
        let mut blob = k.verifier_key().id().to_vec();
        blob.extend_from_slice(&[0u8; 64]);
        let forged = format!("{}— {} {}\n", note(5), k.name(), BASE64.encode(blob));
        assert_eq!(
            open(&forged, &k.verifier_key()),
            Err(CheckpointError::BadSignature)
        );
    }

    #[test]
    fn malformed_notes_are_named() {
        let v = key().verifier_key();
        let good = note(5);
        assert_eq!(
            open(good.trim_end(), &v),
            Err(CheckpointError::MissingSignatureBlock)
        );
        assert_eq!(
            open(&good.replace("\n\n", "\n"), &v),
            Err(CheckpointError::MissingSignatureBlock)
        );
        assert_eq!(
            open(&good.replace('\u{2014}', "-"), &v),
            Err(CheckpointError::BadSignatureLine { line: 1 })
        );
        assert_eq!(
            open(&format!("\t{good}"), &v),
            Err(CheckpointError::ControlCharacter)
        );
        let many = format!("{good}{}", "— w AAAAAAAA\n".repeat(100));
        assert_eq!(open(&many, &v), Err(CheckpointError::TooManySignatures));
        let short = format!("{good}— w AAAA\n");
        assert_eq!(
            open(&short, &v),
            Err(CheckpointError::BadSignatureLine { line: 2 })
        );
    }

    #[test]
    fn body_fields_are_checked_after_the_signature() {
        let k = key();
        let sign_text = |text: &str| {
            let mut blob = k.verifier_key().id().to_vec();
            blob.extend_from_slice(&k.signing_key().sign(text.as_bytes()).to_bytes());
            format!("{text}\n— {} {}\n", k.name(), BASE64.encode(blob))
        };
        let v = k.verifier_key();
        let root = BASE64.encode([1u8; 32]);
        let cases = [
            ("o\n5\n".to_owned(), CheckpointError::TruncatedBody),
            (format!("o\n05\n{root}\n"), CheckpointError::BadTreeSize),
            (format!("o\n+5\n{root}\n"), CheckpointError::BadTreeSize),
            (format!("o\n\n{root}\n"), CheckpointError::BadTreeSize),
            (
                format!("o\n18446744073709551616\n{root}\n"),
                CheckpointError::BadTreeSize,
            ),
            ("o\n5\nAAAA\n".to_owned(), CheckpointError::BadRootHash),
            (format!("\n5\n{root}\n"), CheckpointError::BadOrigin),
        ];
        for (text, want) in cases {
            assert_eq!(open(&sign_text(&text), &v), Err(want), "{text:?}");
        }
        let ext = open(&sign_text(&format!("o\n0\n{root}\nsome extension\n")), &v).unwrap();
        assert_eq!((ext.size(), ext.root()), (0, &[1; 32]));
    }

    /// Known answers from Go's `golang.org/x/mod/sumdb/note` and the C2SP signed-note spec.
    #[test]
    fn matches_published_signed_note_vectors() {
        let v: serde_json::Value =
            serde_json::from_str(include_str!("../tests/vectors/signed_note.json")).unwrap();
        let s = |path: &str| v.pointer(path).and_then(|x| x.as_str()).unwrap().to_owned();

        // Go: private key string → same verifier key, key id, and byte-identical note
        // (Ed25519 signatures are deterministic).
        let key = AuditKey::parse(&s("/go/private_key")).unwrap();
        assert_eq!(key.verifier_key().to_string(), s("/go/verifier_key"));
        assert_eq!(*key.to_private_string(), s("/go/private_key"));
        let signed = sign_text(&s("/go/text"), key.name(), key.signing_key());
        assert_eq!(signed, s("/go/note"));
        let vkey = VerifierKey::parse(&s("/go/verifier_key")).unwrap();
        assert_eq!(hex::encode(vkey.id()), "c74f20a3");
        assert_eq!(open_note(&s("/go/note"), &vkey), Ok(s("/go/text").as_str()));
        let edited = s("/go/note").replacen("answer", "answers", 1);
        assert_eq!(
            open_note(&edited, &vkey),
            Err(CheckpointError::BadSignature)
        );

        // C2SP: verifier key and example note.
        let vkey = VerifierKey::parse(&s("/c2sp/verifier_key")).unwrap();
        assert_eq!(
            (vkey.name(), hex::encode(vkey.id()).as_str()),
            ("example.com/foo", "530d903a")
        );
        assert_eq!(vkey.to_string(), s("/c2sp/verifier_key"));
        assert_eq!(
            open_note(&s("/c2sp/note"), &vkey),
            Ok(s("/c2sp/text").as_str())
        );
        let upper = s("/c2sp/verifier_key").replacen("530d903a", "530D903A", 1);
        assert_eq!(VerifierKey::parse(&upper), Err(crate::KeyError::Malformed));
    }

    #[test]
    fn origins_must_be_one_line() {
        assert_eq!(
            Checkpoint::new("", 0, [0; 32]),
            Err(CheckpointError::BadOrigin)
        );
        assert_eq!(
            Checkpoint::new("a\nb", 0, [0; 32]),
            Err(CheckpointError::BadOrigin)
        );
        let cp = Checkpoint::new("o", 0, [0; 32]).unwrap();
        assert_eq!(
            sign(&cp, "bad name", key().signing_key()),
            Err(CheckpointError::BadKeyName)
        );
    }
}
