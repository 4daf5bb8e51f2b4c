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
use crate::tree::Tree;

/// The `prev` of the first record: no record comes before it.
pub const GENESIS_PREV: Hash = [0; 32];

/// One gateway instance's audit log, in memory: the next sequence number, the chain head,
/// and the Merkle tree of all records so far.
///
/// Memory: the tree keeps every leaf hash and interior node, about 64 bytes per record
/// (a million records, 64 MB), which makes checkpoints O(log n) and inclusion proofs
/// O(log² n). The record lines themselves are not kept. An instance that must run for
/// hundreds of millions of records should end its log and start another under a new
/// instance id.
#[derive(Debug, Clone)]
pub struct AuditLog {
    instance: String,
    origin: String,
    head: Hash,
    tree: Tree,
}

/// An inclusion proof for one record, against the log's current tree head.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InclusionProof {
    /// The record's `seq`: its leaf index.
    pub seq: u64,
    /// The audit path, from the leaf's sibling upwards.
    pub proof: Vec<Hash>,
    /// The tree size the proof is for.
    pub size: u64,
    /// The root of that tree.
    pub root: Hash,
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
            tree: Tree::new(),
        })
    }

    /// Appends `record`: sets its `seq`, `instance` and `prev`, and returns its line (to be
    /// written followed by `\n`) and leaf hash.
    pub fn append(&mut self, mut record: AuditRecord) -> (String, Hash) {
        record.seq = self.tree.len();
        record.instance.clone_from(&self.instance);
        record.prev = hex::encode(self.head);
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

    /// The proof that record `seq` is in the current tree; `None` if there is no such record.
    pub fn inclusion_proof(&self, seq: u64) -> Option<InclusionProof> {
        let size = self.tree.len();
        let proof = self.tree.inclusion_proof(seq, size)?;
        Some(InclusionProof {
            seq,
            proof,
            size,
            root: self.tree.root(),
        })
    }

    /// The proof that the tree at an earlier checkpoint's `size` is a prefix of the current
    /// tree; `None` if `size` is larger than the log.
    pub fn consistency_proof(&self, size: u64) -> Option<Vec<Hash>> {
        self.tree.consistency_proof(size, self.tree.len())
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
        let proof = log.consistency_proof(old.size()).unwrap();
        assert!(merkle::verify_consistency(
            5,
            11,
            old.root(),
            new.root(),
            &proof
        ));
        let incl = log.inclusion_proof(3).unwrap();
        assert!(merkle::verify_inclusion(
            3,
            incl.size,
            &leaves[3],
            &incl.proof,
            new.root()
        ));
        assert_eq!(log.inclusion_proof(11), None);
    }

    #[test]
    fn origin_must_be_a_line() {
        assert!(AuditLog::new("i1", "").is_err());
        assert!(AuditLog::new("i1", "a\nb").is_err());
    }
}
