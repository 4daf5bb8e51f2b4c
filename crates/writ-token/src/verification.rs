//! What verifying a writ's text established, shared by every request presenting that
//! text: the part of a live writ the verified-writ cache holds, so its layout is what a
//! live writ costs (measured by the `live_writs` bench).

use std::collections::BTreeSet;
use std::num::NonZeroU64;
use std::sync::{Arc, OnceLock};
use std::time::SystemTime;

use biscuit_auth::{Biscuit, PublicKey};

use crate::blocks::Blocks;
use crate::error::{Denial, WritError};
use crate::evaluation_cost::CheckShapes;
use crate::parsed::Loaded;
use crate::revocation_ids::RevocationIds;
use crate::shape::Shape;
use crate::verify::WritClaims;

/// What verifying a writ's text established: everything but the text, so that a live writ
/// the cache holds costs a few hundred bytes (see the `live_writs` bench).
pub(crate) struct Verification {
    /// The parsed token (about 14 KB for a writ minted here), held in the process's
    /// bounded ring of parsed tokens (see `parsed`) while it may be needed: let go once
    /// the memo below has answered a repeated request and holds to the writ's expiry, or
    /// when [`crate::PARSED_CAPACITY`] other tokens were parsed since; parsed again from
    /// the presented text if a request with other facts comes after all.
    pub(crate) parsed: crate::parsed::Parsed,
    /// The root key that verified it (shared between writs), to parse the text again.
    pub(crate) root: Arc<PublicKey>,
    /// Revocation ids of every block, authority first.
    pub(crate) revocation_ids: RevocationIds,
    /// Delegations and third-party signers, if any block is a third-party block (most
    /// writs have none, so they cost one pointer).
    pub(crate) third_party: Option<Box<ThirdParty>>,
    /// The claims read from the authority block (or minted with).
    pub(crate) claims: WritClaims,
    /// The last second through which this writ's Datalog answers alike whatever the time
    /// (see `time_bound`), or `None` if the answer may change every second (a bound of
    /// second 0 is no bound for any later time, so it is kept as `None`).
    pub(crate) holds_through: Option<NonZeroU64>,
    /// The last request this writ allowed, and the seconds that decision holds for.
    /// Datalog is deterministic and `time` is stated to the second, so the same facts get
    /// the same answer within those seconds: an agent repeating a call skips the authorizer.
    pub(crate) last_allowed: std::sync::Mutex<Option<Allowed>>,
    /// The last request this writ's checks refused, and the seconds that refusal holds for
    /// (by the same argument): an agent repeating a refused call is refused without the
    /// authorizer, so a refusal costs no more than an allow. Kept apart from `last_allowed`
    /// so explaining a refusal (which tries lower caps, and may be allowed) keeps both.
    pub(crate) last_denied: std::sync::Mutex<Option<Box<Denied>>>,
    /// How many times the Datalog authorizer ran for this writ.
    pub(crate) evaluations: std::sync::atomic::AtomicU64,
    /// For a writ minted here, its shape: decisions are shared with the other writs of
    /// that shape (see `shape`).
    pub(crate) shape: Option<Shape>,
    /// The upstreams the writ's checks limit it to, read once when a request first routes
    /// by them (see `upstreams.rs`): the same for every request presenting the writ.
    pub(crate) named_upstreams: OnceLock<Option<BTreeSet<String>>>,
}

/// What is read from a writ's serialized blocks, apart from evaluating them.
#[derive(Clone)]
pub(crate) struct Reads {
    /// The shapes of the checks after the authority block.
    pub(crate) checks: Arc<CheckShapes>,
    /// The last second through which the blocks' Datalog answers alike whatever the time
    /// (see `time_bound`); `None` for a token that cannot be read that way, which is then
    /// decided again every second (never given a wrong bound).
    pub(crate) holds_through: Option<u64>,
}

impl Reads {
    /// Reads the serialized token `sealed` (signatures already verified); refuses one
    /// whose checks break the structural limits.
    pub(crate) fn of(sealed: &[u8]) -> Result<Self, WritError> {
        let blocks = Blocks::decode(sealed)
            .map_err(|block| crate::evaluation_cost::DatalogError::Unreadable { block })?;
        Self::of_blocks(&blocks)
    }

    /// [`Reads::of`] a token's decoded blocks.
    pub(crate) fn of_blocks(blocks: &Blocks) -> Result<Self, WritError> {
        Ok(Self {
            checks: Arc::new(CheckShapes::of(blocks)?),
            holds_through: crate::time_bound::holds_through(blocks),
        })
    }
}

/// Delegations stated by blocks a trusted root key signed, oldest first, as
/// `(block index, by, to)`.
pub(crate) type Delegations = Vec<(i64, String, String)>;

/// What third-party blocks state: kept apart, since most writs have none.
pub(crate) struct ThirdParty {
    /// Delegations stated by blocks a trusted root key signed, oldest first, as
    /// `(block index, by, to)`.
    pub(crate) delegation: Delegations,
    /// The keys that signed third-party blocks (delegations, approvals).
    pub(crate) external_keys: Vec<PublicKey>,
}

/// What a remembered decision answers: the facts it was made for and the seconds it
/// holds (UNIX time, `from` through `through`).
#[derive(Clone, Copy)]
pub(crate) struct Reach {
    pub(crate) from: u64,
    pub(crate) through: u64,
    /// SHA-256 of `RequestFacts::encode_into` of the facts: 32 bytes held instead of about
    /// 110, and a request with other facts cannot be taken for them (finding two encodings
    /// with one digest is finding a SHA-256 collision).
    pub(crate) facts: [u8; 32],
}

impl Reach {
    /// Whether the decision answers the facts hashed as `facts` at second `now_secs`.
    pub(crate) fn answers(&self, now_secs: u64, facts: &[u8; 32]) -> bool {
        (self.from..=self.through).contains(&now_secs) && self.facts == *facts
    }
}

/// A remembered allow.
pub(crate) struct Allowed {
    pub(crate) reach: Reach,
    /// Whether the memo has answered a request since it was made.
    pub(crate) repeated: bool,
}

/// A remembered refusal by the writ's checks, and why.
pub(crate) struct Denied {
    pub(crate) reach: Reach,
    pub(crate) denial: Denial,
}

impl Verification {
    /// What verifying `biscuit` established, with what was read of its bytes (`reads`),
    /// and with its parsed token placed in the process's ring.
    pub(crate) fn new(
        biscuit: Biscuit,
        root: PublicKey,
        reads: Reads,
        claims: WritClaims,
        delegation: Delegations,
        shape: Option<Shape>,
    ) -> Result<Self, WritError> {
        let Reads {
            checks,
            holds_through,
        } = reads;
        let holds_through = holds_through.and_then(NonZeroU64::new);
        let external_keys: Vec<PublicKey> = biscuit
            .external_public_keys()
            .into_iter()
            .flatten()
            .collect();
        let third_party = (!external_keys.is_empty() || !delegation.is_empty()).then(|| {
            Box::new(ThirdParty {
                delegation,
                external_keys,
            })
        });
        Ok(Self {
            revocation_ids: RevocationIds::new(&biscuit.revocation_identifiers())?,
            third_party,
            parsed: crate::parsed::Parsed::holding(Arc::new(Loaded { biscuit, checks })),
            root: crate::parsed::shared_root(root),
            claims,
            holds_through,
            last_allowed: std::sync::Mutex::new(None),
            last_denied: std::sync::Mutex::new(None),
            evaluations: std::sync::atomic::AtomicU64::new(0),
            shape,
            named_upstreams: OnceLock::new(),
        })
    }

    /// When the writ expires.
    pub(crate) fn expires_at(&self) -> SystemTime {
        self.claims.expires_at
    }
}
