//! The appender's state for one instance's log: numbering, chaining and hashing records,
//! and signing checkpoints. Pure: the caller writes the lines and notes where it likes.
//!
//! # How a log is built
//!
//! Each appended record gets `seq` (its position), `instance` and `prev` (the hex leaf hash
//! of the record before it, or 64 zeros for the first), and is encoded to its canonical
//! line. The line's leaf hash `SHA-256(0x00 ‖ line)` is then both
//!
//! - the next record's `prev`: a hash chain, so each record vouches for the one before it
//!   and a verifier can say *which* record was edited, dropped, moved or inserted; and
//! - a leaf of the RFC 6962 Merkle tree, whose signed root (a checkpoint) vouches for all
//!   records up to its size at once, including the newest one, which no later record
//!   vouches for yet, and whose consistency proofs let a witness check the log only grows.

use crate::checkpoint::{Checkpoint, CheckpointError, valid_origin};
use crate::key::AuditKey;
use crate::merkle::{self, Hash};
use crate::record::AuditRecord;
use crate::tree::Frontier;

/// The `prev` of the first record: no record comes before it.
pub const GENESIS_PREV: Hash = [0; 32];

/// Up to 32 bytes as lowercase hex, through a buffer rather than `hex::encode`'s iterator
/// of chars (a per-request cost: every record's `prev` and pseudonyms); empty for more.
pub(crate) fn lower_hex(bytes: &[u8]) -> String {
    let mut out = [0u8; 64];
    let Some(out) = out.get_mut(..bytes.len() * 2) else {
        return String::new();
    };
    match (hex::encode_to_slice(bytes, out), std::str::from_utf8(out)) {
        (Ok(()), Ok(text)) => text.to_owned(),
        // Neither can happen: the buffer has exactly the room, and hex is ASCII.
        _ => String::new(),
    }
}

/// One gateway instance's audit log, in memory: the next sequence number, the chain head,
/// and the right edge of the Merkle tree of all records so far.
///
/// Memory: O(log n) — the edge holds one subtree root per bit of the size, so a
/// long-running gateway's log costs the same after a billion records as after ten. (It
/// kept every node once, 64 bytes per record: 1.3 MB a second at full load.) Proofs are
/// built from the records themselves, offline ([`Tree`](crate::tree::Tree),
/// [`verify_log`](crate::verify_log)).
#[derive(Debug, Clone)]
pub struct AuditLog {
    instance: String,
    origin: String,
    head: Hash,
    tree: Frontier,
}

impl AuditLog {
    /// An empty log for `instance`, whose checkpoints will name it `origin` (see
    /// [`Checkpoint::new`]: one line, non-empty).
    pub fn new(
        instance: impl Into<String>,
        origin: impl Into<String>,
    ) -> Result<Self, CheckpointError> {
        let origin = origin.into();
        if !valid_origin(&origin) {
            return Err(CheckpointError::BadOrigin);
        }
        Ok(Self {
            instance: instance.into(),
            origin,
            head: GENESIS_PREV,
            tree: Frontier::new(),
        })
    }

    /// Appends `record`: sets its `seq`, `instance` and `prev`, and returns its line (to be
    /// written followed by `\n`) and leaf hash.
    pub fn append(&mut self, mut record: AuditRecord) -> (String, Hash) {
        record.seq = self.tree.len();
        record.instance.clone_from(&self.instance);
        record.prev = lower_hex(&self.head);
        let line = record.to_line();
        let leaf = merkle::leaf_hash(line.as_bytes());
        self.head = leaf;
        self.tree.push(leaf);
        (line, leaf)
    }

    /// The current tree head, unsigned.
    pub fn tree_head(&self) -> Checkpoint {
        Checkpoint::new(self.origin.clone(), self.tree.len(), self.tree.root())
            .expect("the origin was checked when the log was made")
    }

    /// Signs the current tree head with `key`: the checkpoint note to publish.
    pub fn checkpoint(&self, key: &AuditKey) -> String {
        key.sign(&self.tree_head())
    }

    /// How many records have been appended; the `seq` the next one gets.
    pub fn size(&self) -> u64 {
        self.tree.len()
    }

    /// The Merkle root of all records so far.
    pub fn root(&self) -> Hash {
        self.tree.root()
    }

    /// The leaf hash of the last record (the next record's `prev`).
    pub fn head(&self) -> Hash {
        self.head
    }

    /// The instance id every record carries.
    pub fn instance(&self) -> &str {
        &self.instance
    }

    /// The origin every checkpoint carries.
    pub fn origin(&self) -> &str {
        &self.origin
    }
}

#[cfg(test)]
mod tests {
    use std::time::UNIX_EPOCH;

    use super::*;
    use crate::checkpoint;
    use crate::record::Kind;

    #[test]
    fn lower_hex_matches_hex_encode_up_to_32_bytes() {
        for n in [0, 1, 16, 31, 32] {
            let bytes: Vec<u8> = (0..n).map(|i| (i * 37 + 11) as u8).collect();
            assert_eq!(lower_hex(&bytes), hex::encode(&bytes));
        }
        assert_eq!(lower_hex(&[0xab; 33]), "");
    }

    #[test]
    fn append_numbers_chains_and_hashes() {
        let mut log = AuditLog::new("i1", "writ.test/audit/i1").unwrap();
        let (l0, h0) = log.append(AuditRecord::new(Kind::WritMinted, UNIX_EPOCH));
        let (l1, h1) = log.append(AuditRecord::new(Kind::RequestAllowed, UNIX_EPOCH));
        let r0 = AuditRecord::from_line(&l0).unwrap();
        let r1 = AuditRecord::from_line(&l1).unwrap();
        assert_eq!((r0.seq, r1.seq), (0, 1));
        assert_eq!((r0.instance.as_str(), r1.instance.as_str()), ("i1", "i1"));
        assert_eq!(r0.prev, "0".repeat(64));
        assert_eq!(r1.prev, hex::encode(h0));
        assert_eq!(h1, merkle::leaf_hash(l1.as_bytes()));
        assert_eq!((log.size(), log.head()), (2, h1));
        assert_eq!(log.root(), merkle::root(&[h0, h1]));
    }

    #[test]
    fn checkpoints_and_proofs_check_out() {
        let key = AuditKey::from_seed("writ.test/audit/i1", &[5; 32]).unwrap();
        let mut log = AuditLog::new("i1", "writ.test/audit/i1").unwrap();
        let mut leaves = Vec::new();
        for _ in 0..5 {
            leaves.push(
                log.append(AuditRecord::new(Kind::RequestAllowed, UNIX_EPOCH))
                    .1,
            );
        }
        let old = checkpoint::open(&log.checkpoint(&key), &key.verifier_key()).unwrap();
        for _ in 0..6 {
            leaves.push(
                log.append(AuditRecord::new(Kind::RequestAllowed, UNIX_EPOCH))
                    .1,
            );
        }
        let new = checkpoint::open(&log.checkpoint(&key), &key.verifier_key()).unwrap();
        assert_eq!((old.size(), new.size()), (5, 11));
        // Both checkpoints are the RFC 6962 roots of the records' leaves, so proofs built
        // from the records alone check out against them.
        let proof = merkle::consistency_proof(5, &leaves);
        assert!(merkle::verify_consistency(
            5,
            11,
            old.root(),
            new.root(),
            &proof
        ));
        let incl = merkle::inclusion_proof(3, &leaves);
        assert!(merkle::verify_inclusion(
            3,
            11,
            &leaves[3],
            &incl,
            new.root()
        ));
    }

    #[test]
    fn origin_must_be_a_line() {
        for origin in ["", "a\nb"] {
            assert!(matches!(
                AuditLog::new("i1", origin),
                Err(crate::CheckpointError::BadOrigin)
            ));
        }
    }
}
