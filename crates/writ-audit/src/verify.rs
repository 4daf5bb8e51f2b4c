//! Offline verification of one instance's log against the checkpoints it signed, naming
//! the first problem found.
//!
//! # What is checked, in order
//!
//! 1. **Records, first to last** ([`verify_log`] is given each line's exact bytes). Every
//!    line's leaf hash is computed from its bytes. Line `i` must carry `seq = i`,
//!    `prev =` the leaf hash of line `i − 1` (64 zeros for line 0) and the same
//!    `instance` as line 0. The first line that breaks this is diagnosed from its
//!    neighbours, since every intact record vouches for the one before it:
//!    - an exact copy of another line; one of two lines claiming the same predecessor
//!      (the one no later record links to); a line the chain skips (the next line links
//!      to the line before it) → [`Problem::ForgedRecord`];
//!    - a genuine record whose predecessor is elsewhere in the file, or whose expected
//!      record turns up later → [`Problem::OutOfOrder`];
//!    - the right `seq` but not linked to the line before: one of the two was edited. If
//!      a checkpoint covering the line before matches, or nothing links to this line
//!      either, it is this line; otherwise (the next line links to it, or it is the last
//!      line) the line before → [`Problem::RecordAltered`]. Also a line that links
//!      correctly but has the wrong `seq`, or that does not parse;
//!    - a `seq` that jumps ahead, with the expected record nowhere →
//!      [`Problem::MissingRecord`].
//!
//!    Once the chain holds, a record carrying another `instance` than line 0 is
//!    [`Problem::InstanceMismatch`] (or `RecordAltered`, if the next line does not link
//!    to it).
//! 2. **Checkpoints, in the order signed.** Each must be a note signed by the given key,
//!    for the given origin; sizes never decrease; each size is at most the number of
//!    records (else the tail was cut: [`Problem::TruncatedAfterCheckpoint`]); each root
//!    equals the Merkle root of that many leaves; and a consistency proof built from the
//!    leaves between consecutive checkpoints verifies against their signed roots.
//! 3. **Rollback.** The latest checkpoint is at least as large as `expect_at_least`, a size
//!    the caller learned elsewhere (an earlier verification, a witness).
//! 4. **Decisions and outcomes** (strict mode's pairs, see [`crate::record`]). Every
//!    `request_outcome` must name, by `decision_seq`, an earlier record of the same log
//!    that is a `request_allowed` decision (no `status` of its own), of the same tenant,
//!    agent, writ, upstream and operation, and not already ended by an earlier outcome;
//!    otherwise [`Problem::OutcomeWithoutDecision`] (no such earlier record, or none named)
//!    or [`Problem::OutcomeMislinked`]. A decision with no outcome is not a problem (its
//!    request was in flight when the log ended, or the instance stopped before writing
//!    it): [`Summary::open_decisions`] counts them.
//!
//! # What the chain cannot pin down
//!
//! The chain names a record only when a later record disagrees with it. Edits that leave
//! the chain intact (the newest record edited, or every record from the edited one on
//! re-chained by someone who recomputed the `prev` links) are caught by the checkpoints
//! instead, as [`Problem::CheckpointMismatch`] for the first checkpoint covering them:
//! such a log and a checkpoint signed over a forked tree look the same. An edit to the
//! `prev` field of the last line, unless a checkpoint clears the line before it, is named
//! as an edit to the line before: the evidence fits both, and content edits are the
//! likelier. Records after the latest checkpoint are protected
//! only by the chain: cutting them off, or appending correctly chained ones, goes unseen;
//! [`Summary::unsigned_records`] says how many there are.

use serde::Deserialize;

use crate::checkpoint::{self, CheckpointError};
use crate::key::VerifierKey;
use crate::log::GENESIS_PREV;
use crate::merkle::{self, Hash};
use crate::tree::Tree;

/// The first thing wrong with a log. `seq` values are positions in the log: the record
/// that should be at that position is the one in question.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Problem {
    /// Record `seq`'s bytes are not the ones that were written.
    #[error("record {seq} was altered")]
    RecordAltered {
        /// The altered record.
        seq: u64,
    },
    /// Record `seq` is missing: the record in its place comes later in the log and links to
    /// a record that is not in the file.
    #[error("record {seq} is missing")]
    MissingRecord {
        /// The first missing record.
        seq: u64,
    },
    /// The record at position `seq` is a genuine record that belongs elsewhere.
    #[error("records are out of order at {seq}")]
    OutOfOrder {
        /// Where the order first breaks.
        seq: u64,
    },
    /// The record at position `seq` was not written by the log: nothing links to it, or it
    /// duplicates another.
    #[error("record at {seq} was inserted")]
    ForgedRecord {
        /// Position of the inserted record.
        seq: u64,
    },
    /// Record `seq` carries another instance's id than the first record.
    #[error("record {seq} belongs to another instance")]
    InstanceMismatch {
        /// The record.
        seq: u64,
    },
    /// A checkpoint commits to more records than the log holds: its tail was removed.
    #[error("a checkpoint covers {checkpoint_size} records but the log has {records}")]
    TruncatedAfterCheckpoint {
        /// The checkpoint's size.
        checkpoint_size: u64,
        /// Records present.
        records: u64,
    },
    /// Checkpoint `index` is not a well-formed checkpoint note.
    #[error("checkpoint {index} is malformed: {reason}")]
    MalformedCheckpoint {
        /// 0-based position in the checkpoints given.
        index: usize,
        /// What is wrong with it.
        reason: CheckpointError,
    },
    /// Checkpoint `index` has no valid signature by the given key.
    #[error("checkpoint {index} is not validly signed by the audit key")]
    BadCheckpointSignature {
        /// 0-based position in the checkpoints given.
        index: usize,
    },
    /// Checkpoint `index` is for another log.
    #[error("checkpoint {index} is for another origin")]
    OriginMismatch {
        /// 0-based position in the checkpoints given.
        index: usize,
    },
    /// Checkpoint `index`'s root is not the root of the first `size` records: it was
    /// signed over another (forked) tree, or records it covers were changed in a way the
    /// chain cannot see (see the module docs).
    #[error("checkpoint {index} (size {size}) does not match the records")]
    CheckpointMismatch {
        /// 0-based position in the checkpoints given.
        index: usize,
        /// Its tree size.
        size: u64,
    },
    /// Outcome record `seq` names no earlier record of this log as its decision.
    #[error("outcome record {seq} has no decision record before it")]
    OutcomeWithoutDecision {
        /// The outcome record.
        seq: u64,
    },
    /// Outcome record `seq` names record `decision`, which is not a `request_allowed`
    /// decision of the same request (another kind, a best-effort record with its own
    /// status, another tenant, agent, writ, upstream or operation) or was already ended
    /// by an earlier outcome.
    #[error("outcome record {seq} points at record {decision}, which is not its decision")]
    OutcomeMislinked {
        /// The outcome record.
        seq: u64,
        /// The record it names.
        decision: u64,
    },
    /// A checkpoint of `size` records where one of at least `expected` was already seen:
    /// an earlier checkpoint in the list, or `expect_at_least`.
    #[error("checkpoint size {size} rolls back from {expected}")]
    Rollback {
        /// The smaller size.
        size: u64,
        /// The size already seen.
        expected: u64,
    },
}

/// What a clean verification established.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Summary {
    /// The instance whose log this is; `None` for an empty log.
    pub instance: Option<String>,
    /// Records verified.
    pub records: u64,
    /// Checkpoints verified.
    pub checkpoints: usize,
    /// The size of the latest checkpoint (0 if none).
    pub signed_size: u64,
    /// The root of the latest checkpoint (the empty root if none).
    pub signed_root: Hash,
    /// The leaf hash of the last record (zeros for an empty log).
    pub head: Hash,
    /// `request_allowed` decisions (strict mode) with no outcome record: requests in flight
    /// when the log ended, or whose outcome was lost with the instance.
    pub open_decisions: u64,
}

impl Summary {
    /// Records after the latest checkpoint: chained, but not yet signed.
    pub fn unsigned_records(&self) -> u64 {
        self.records - self.signed_size
    }
}

/// Verifies one instance's log.
///
/// - `lines`: its record lines in file order, each exactly as stored, without the `\n`;
/// - `checkpoints`: the checkpoint notes it signed, in the order it signed them;
/// - `key`: the instance's verifier key; `origin`: the log's origin;
/// - `expect_at_least`: a checkpoint size known to have been published for this log,
///   if any, so a log rolled back to an older, smaller state is caught.
///
/// Returns the first problem; see the [module docs](self) for the order of checks.
pub fn verify_log(
    lines: &[&str],
    checkpoints: &[&str],
    key: &VerifierKey,
    origin: &str,
    expect_at_least: Option<u64>,
) -> Result<Summary, Problem> {
    let hashes: Vec<Hash> = lines
        .iter()
        .map(|l| merkle::leaf_hash(l.as_bytes()))
        .collect();
    let headers: Vec<Option<Header>> = lines.iter().map(|l| Header::parse(l)).collect();
    let tree = Tree::from_leaves(hashes.iter().copied());
    let opened: Vec<_> = checkpoints
        .iter()
        .map(|note| checkpoint::open(note, key))
        .collect();
    // The records the checkpoints show intact, as evidence for the chain walk when the
    // chain alone cannot say which of two records changed (see `Records::diagnose`).
    let signed_prefix = opened
        .iter()
        .flatten()
        .filter(|cp| cp.origin() == origin && tree.root_at(cp.size()) == Some(*cp.root()))
        .map(checkpoint::Checkpoint::size)
        .max()
        .unwrap_or(0);
    let records = Records {
        hashes: &hashes,
        headers: &headers,
        signed_prefix,
    };
    let instance = records.check()?;

    let mut latest: Option<checkpoint::Checkpoint> = None;
    for (index, cp) in opened.into_iter().enumerate() {
        let cp = cp.map_err(|reason| match reason {
            CheckpointError::UnknownKey | CheckpointError::BadSignature => {
                Problem::BadCheckpointSignature { index }
            }
            reason => Problem::MalformedCheckpoint { index, reason },
        })?;
        if cp.origin() != origin {
            return Err(Problem::OriginMismatch { index });
        }
        let size = cp.size();
        if let Some(prev) = &latest
            && size < prev.size()
        {
            return Err(Problem::Rollback {
                size,
                expected: prev.size(),
            });
        }
        let Some(root) = tree.root_at(size) else {
            return Err(Problem::TruncatedAfterCheckpoint {
                checkpoint_size: size,
                records: tree.len(),
            });
        };
        if root != *cp.root() {
            return Err(Problem::CheckpointMismatch { index, size });
        }
        // Both roots were just recomputed from the same leaves, so this proof can only
        // fail if the tree code is wrong; it is the check a witness, who has only the
        // checkpoints, makes, and costs O(log² n).
        if let Some(prev) = &latest {
            let proof = tree
                .consistency_proof(prev.size(), size)
                .unwrap_or_default();
            if !merkle::verify_consistency(prev.size(), size, prev.root(), cp.root(), &proof) {
                return Err(Problem::CheckpointMismatch { index, size });
            }
        }
        latest = Some(cp);
    }

    let signed_size = latest.as_ref().map_or(0, checkpoint::Checkpoint::size);
    if let Some(expected) = expect_at_least
        && signed_size < expected
    {
        return Err(Problem::Rollback {
            size: signed_size,
            expected,
        });
    }
    let open_decisions = check_pairs(lines)?;
    Ok(Summary {
        instance,
        open_decisions,
        records: tree.len(),
        checkpoints: checkpoints.len(),
        signed_size,
        signed_root: latest.map_or_else(merkle::empty_root, |cp| *cp.root()),
        head: hashes.last().copied().unwrap_or(GENESIS_PREV),
    })
}

/// What a record line says about its request, for matching outcomes to decisions.
#[derive(Deserialize)]
struct Request<'a> {
    #[serde(borrow)]
    kind: std::borrow::Cow<'a, str>,
    #[serde(default)]
    decision_seq: Option<u64>,
    #[serde(default)]
    status: Option<u64>,
    #[serde(default, borrow)]
    tenant: Option<std::borrow::Cow<'a, str>>,
    #[serde(default, borrow)]
    agent: Option<std::borrow::Cow<'a, str>>,
    #[serde(default, borrow)]
    writ: Option<std::borrow::Cow<'a, str>>,
    #[serde(default, borrow)]
    upstream: Option<std::borrow::Cow<'a, str>>,
    #[serde(default, borrow)]
    operation: Option<std::borrow::Cow<'a, str>>,
}

impl Request<'_> {
    /// A strict-mode decision: allowed, its outcome still to come in another record.
    fn is_decision(&self) -> bool {
        self.kind == "request_allowed" && self.status.is_none()
    }

    /// Both records name the same request: tenant, agent, writ, upstream and operation.
    fn same_request(&self, other: &Self) -> bool {
        (
            &self.tenant,
            &self.agent,
            &self.writ,
            &self.upstream,
            &self.operation,
        ) == (
            &other.tenant,
            &other.agent,
            &other.writ,
            &other.upstream,
            &other.operation,
        )
    }
}

/// Step 4: matches every outcome to its decision (the chain has already shown the lines
/// are the log's, in order, so `seq` is the line's position). Returns how many decisions
/// have no outcome.
fn check_pairs(lines: &[&str]) -> Result<u64, Problem> {
    let requests: Vec<Option<Request<'_>>> = lines
        .iter()
        .map(|line| serde_json::from_str(line).ok())
        .collect();
    let mut ended = vec![false; lines.len()];
    for (i, request) in requests.iter().enumerate() {
        let seq = i as u64;
        let Some(outcome) = request.as_ref().filter(|r| r.kind == "request_outcome") else {
            continue;
        };
        let decision = outcome
            .decision_seq
            .filter(|d| *d < seq)
            .ok_or(Problem::OutcomeWithoutDecision { seq })?;
        let d = usize::try_from(decision).map_err(|_| Problem::OutcomeWithoutDecision { seq })?;
        let mislinked = Problem::OutcomeMislinked { seq, decision };
        match requests.get(d).and_then(Option::as_ref) {
            Some(allowed) if allowed.is_decision() && allowed.same_request(outcome) => {}
            _ => return Err(mislinked),
        }
        if std::mem::replace(&mut ended[d], true) {
            return Err(mislinked);
        }
    }
    Ok(requests
        .iter()
        .zip(&ended)
        .filter(|(r, ended)| !**ended && r.as_ref().is_some_and(Request::is_decision))
        .count() as u64)
}

/// The fields of a record line that verification reads; the rest only count through the
/// line's hash, so lines of later schema versions verify too.
struct Header {
    seq: u64,
    instance: String,
    /// `None` if `prev` is not 64 hex characters: it links to nothing.
    prev: Option<Hash>,
}

impl Header {
    fn parse(line: &str) -> Option<Self> {
        #[derive(Deserialize)]
        struct Raw {
            seq: u64,
            instance: String,
            prev: String,
        }
        let raw: Raw = serde_json::from_str(line).ok()?;
        let mut prev = [0u8; 32];
        let prev = hex::decode_to_slice(&raw.prev, &mut prev)
            .ok()
            .map(|()| prev);
        Some(Self {
            seq: raw.seq,
            instance: raw.instance,
            prev,
        })
    }
}

/// The record lines, hashed and parsed, for the chain walk.
struct Records<'a> {
    hashes: &'a [Hash],
    headers: &'a [Option<Header>],
    /// Lines `0..signed_prefix` are covered by a checkpoint whose root matches them.
    signed_prefix: u64,
}

impl Records<'_> {
    /// Walks the chain; returns the instance id, or the first problem.
    fn check(&self) -> Result<Option<String>, Problem> {
        let mut instance: Option<&str> = None;
        for (i, header) in self.headers.iter().enumerate() {
            let seq = i as u64;
            let Some(h) = header
                .as_ref()
                .filter(|h| h.seq == seq && h.prev == Some(self.expected_prev(i)))
            else {
                return Err(self.diagnose(i));
            };
            match instance {
                None => instance = Some(&h.instance),
                Some(first) if first != h.instance => {
                    // If the next record does not vouch for this one, the instance field
                    // was edited here, not written by another instance.
                    if i + 1 < self.len() && !self.links(i + 1, &self.hashes[i]) {
                        return Err(Problem::RecordAltered { seq });
                    }
                    return Err(Problem::InstanceMismatch { seq });
                }
                Some(_) => {}
            }
        }
        Ok(instance.map(str::to_owned))
    }

    /// Names what is wrong with line `i`, the first line that does not carry `seq = i` and
    /// link to line `i − 1`. Lines before it are known good.
    fn diagnose(&self, i: usize) -> Problem {
        let seq = i as u64;
        let expected = self.expected_prev(i);
        let last = i + 1 == self.len();
        // The chain skips this line: the next line links to the one before it.
        let skipped = self.links(i + 1, &expected);
        let duplicated = self
            .hashes
            .iter()
            .enumerate()
            .any(|(j, hash)| j != i && *hash == self.hashes[i]);
        if duplicated {
            return Problem::ForgedRecord { seq };
        }
        let Some(h) = &self.headers[i] else {
            return if skipped {
                Problem::ForgedRecord { seq }
            } else {
                Problem::RecordAltered { seq }
            };
        };
        // Two lines both claiming line i − 2 as their predecessor: one was inserted. The
        // one a later record links to is genuine.
        if i > 0 && h.prev.is_some() && self.headers[i - 1].as_ref().and_then(|p| p.prev) == h.prev
        {
            let genuine_here = last || self.links(i + 1, &self.hashes[i]);
            return Problem::ForgedRecord {
                seq: if genuine_here { seq - 1 } else { seq },
            };
        }
        // A genuine record whose predecessor is in the file, just not right before it.
        // Checked before `skipped`, which two swapped neighbours also look like.
        if let Some(prev) = h.prev {
            let predecessor_elsewhere = (prev == GENESIS_PREV && i > 0)
                || self
                    .hashes
                    .iter()
                    .enumerate()
                    .any(|(j, hash)| *hash == prev && j + 1 != i && j != i);
            if predecessor_elsewhere {
                return Problem::OutOfOrder { seq };
            }
        }
        if skipped {
            return Problem::ForgedRecord { seq };
        }
        if h.seq == seq {
            // Right number, wrong link: this line or the one before changed. A matching
            // checkpoint covering the one before clears it. Otherwise, if the next line
            // vouches for this one, it was the one before; with no next line, the one
            // before is the likelier (an edit to its content), though both are suspect.
            let before_signed = i > 0 && seq <= self.signed_prefix;
            let vouched = self.links(i + 1, &self.hashes[i]);
            let blame_before = i > 0 && !before_signed && (vouched || last);
            return Problem::RecordAltered {
                seq: if blame_before { seq - 1 } else { seq },
            };
        }
        if h.prev == Some(expected) {
            // Correctly chained but misnumbered: its seq field was edited.
            return Problem::RecordAltered { seq };
        }
        let appears_later = self.headers[i + 1..]
            .iter()
            .flatten()
            .any(|later| later.seq == seq);
        if appears_later {
            Problem::OutOfOrder { seq }
        } else if h.seq > seq {
            Problem::MissingRecord { seq }
        } else {
            Problem::RecordAltered { seq }
        }
    }

    fn len(&self) -> usize {
        self.hashes.len()
    }

    /// What line `i`'s `prev` must be.
    fn expected_prev(&self, i: usize) -> Hash {
        i.checked_sub(1).map_or(GENESIS_PREV, |j| self.hashes[j])
    }

    /// Whether line `j` exists, parses, and links to `to`.
    fn links(&self, j: usize, to: &Hash) -> bool {
        self.headers
            .get(j)
            .and_then(Option::as_ref)
            .is_some_and(|h| h.prev.as_ref() == Some(to))
    }
}
