//! Decisions shared by writs of one shape: the writs this process mints for one agent
//! with one ceiling and one list of grants differ only in their id, issue time and expiry,
//! so a request one of them was allowed is allowed to the others for as long as the
//! decision holds. A just-in-time agent mints a writ per task and uses it a few times: its
//! first use is then answered here without evaluating Datalog or parsing the token again.
//!
//! Why it is sound: [`crate::mint`] builds a writ's two blocks from the fields the shape
//! hashes (tenant, agent, DPoP binding, audience, ceiling, grants, root key) plus
//! `token_id`, `issued_at` and `expires_at`. No compiled grant, no allow policy and no
//! verification query reads `token_id` or `issued_at`; `expires_at` is read only by the
//! expiry check, which [`crate::VerifiedWrit::authorize`] applies itself before any memo
//! answers. A raw Datalog grant (`writ:datalog`) may read any of the three, so a writ
//! minted with one, in its ceiling or its grants, has no shape. A decision is kept with the seconds it holds for ([`crate::time_bound`]),
//! which for a minted writ end no later than the expiry of the writ that made it, so a
//! writ of the same shape reuses it only at seconds where its own Datalog sees the same
//! world. Only allows are shared; a denial is evaluated again (and explained).
//!
//! Only writs minted here have a shape: a writ verified from its text (minted elsewhere,
//! attenuated, delegated) is decided by its own Datalog, and its own memo.
//!
//! What is read from a minted writ's bytes apart from evaluating them ([`Reads`]) is the
//! same for writs of one shape and one expiry, so it is read once per shape ([`read`]).

use std::cell::RefCell;
use std::collections::HashMap;
use std::sync::{LazyLock, Mutex};
use std::time::UNIX_EPOCH;

use sha2::{Digest, Sha256};

use crate::error::WritError;
use crate::verification::Reads;
use crate::verify::WritClaims;

/// SHA-256 of what a minted writ's Datalog is made of, apart from its id, issue time and
/// expiry (see the module documentation).
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) struct Shape([u8; 32]);

impl std::fmt::Debug for Shape {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Shape(..)")
    }
}

/// The parts of a mint a shape is made of, each already reduced to bytes.
pub(crate) struct ShapeParts<'a> {
    /// The root key's id and public key bytes.
    pub(crate) key_id: u32,
    pub(crate) root: &'a [u8],
    pub(crate) tenant: &'a str,
    pub(crate) agent: &'a str,
    pub(crate) cnf_jkt: Option<&'a str>,
    pub(crate) audience: Option<&'a str>,
    /// [`grants_digest`] of the ceiling and of the grants.
    pub(crate) ceiling: &'a [u8; 32],
    pub(crate) grants: &'a [u8; 32],
}

impl Shape {
    /// The shape of a writ minted from `parts`: equal for two mints exactly when every
    /// part is (each is tagged and length-prefixed, so no two lists of parts share bytes).
    pub(crate) fn of(parts: &ShapeParts<'_>) -> Self {
        let mut h = Sha256::new();
        h.update(b"writ shape v1\0");
        h.update(parts.key_id.to_le_bytes());
        text(&mut h, parts.root);
        text(&mut h, parts.tenant.as_bytes());
        text(&mut h, parts.agent.as_bytes());
        optional(&mut h, parts.cnf_jkt);
        optional(&mut h, parts.audience);
        h.update(parts.ceiling);
        h.update(parts.grants);
        Self(h.finalize().into())
    }
}

fn text(h: &mut Sha256, bytes: &[u8]) {
    h.update((bytes.len() as u64).to_le_bytes());
    h.update(bytes);
}

fn optional(h: &mut Sha256, v: Option<&str>) {
    match v {
        None => h.update([0]),
        Some(v) => {
            h.update([1]);
            text(h, v.as_bytes());
        }
    }
}

/// SHA-256 of a grant list's JSON: the form grants are read from, which reads back as the
/// same list (so two lists with one digest are one list, short of a SHA-256 collision).
/// `None` if the list cannot be written as JSON, or holds a raw Datalog grant (whose checks
/// may read the id, issue time or expiry, which differ between writs of one shape): it
/// then gives no shape.
pub(crate) fn grants_digest(grants: &[crate::Grant]) -> Option<[u8; 32]> {
    if grants.iter().any(|g| matches!(g, crate::Grant::Datalog(_))) {
        return None;
    }
    let json = serde_json::to_vec(grants).ok()?;
    Some(Sha256::digest(&json).into())
}

/// Most decisions held; past this, the ones no longer holding are let go, and if none is,
/// all are (a memo, never a source of truth: losing it costs evaluations only).
pub(crate) const CAPACITY: usize = 4096;

/// An allowed request of one shape: the seconds (UNIX time) its decision holds for.
#[derive(Clone, Copy)]
struct Window {
    from: u64,
    through: u64,
}

/// Allowed requests, by shape and by the SHA-256 of the request's facts.
type Decisions = HashMap<(Shape, [u8; 32]), Window>;

/// The process's decisions.
static ALLOWED: LazyLock<Mutex<Decisions>> = LazyLock::new(|| Mutex::new(HashMap::new()));

/// Whether a writ of `shape` was allowed the request whose facts hash to `facts` by a
/// decision that holds at second `now`.
pub(crate) fn allowed(shape: Shape, facts: &[u8; 32], now: u64) -> bool {
    let held = ALLOWED.lock().unwrap_or_else(|p| p.into_inner());
    held.get(&(shape, *facts))
        .is_some_and(|w| (w.from..=w.through).contains(&now))
}

/// Remembers that a writ of `shape` was allowed the request whose facts hash to `facts`,
/// by a decision made at second `from` that holds through second `through`.
pub(crate) fn remember(shape: Shape, facts: [u8; 32], from: u64, through: u64) {
    let mut held = ALLOWED.lock().unwrap_or_else(|p| p.into_inner());
    if held.len() >= CAPACITY && !held.contains_key(&(shape, facts)) {
        held.retain(|_, w| w.through >= from);
        if held.len() >= CAPACITY {
            held.clear();
        }
    }
    held.insert((shape, facts), Window { from, through });
}

/// Shapes whose [`Reads`] are held, per thread, most recently read first: a just-in-time
/// agent mints writs of one shape task after task.
const READS_HELD: usize = 32;

thread_local! {
    /// Per shape, the reads of its writs that expire at one second (UNIX time).
    static READS: RefCell<Vec<(Shape, u64, Reads)>> = const { RefCell::new(Vec::new()) };
}

/// What [`Reads::of`] gives for `sealed`, the bytes of a writ just minted with `claims` in
/// shape `shape`: read from the bytes once per shape and expiry, and shared.
///
/// Why it is the same: writs of one shape are made of the same blocks but for the token
/// id, the issue time and the expiry (see the module documentation). The shapes of the
/// checks count facts and predicate names, the lengths of strings and the kinds of terms,
/// never a date's value, and the token id is a ULID, always 26 characters. The time bound
/// reads rules and checks only, where the expiry is the one value that differs: it is
/// part of the key. Debug builds read the bytes at every call and compare.
pub(crate) fn read(shape: Shape, claims: &WritClaims, sealed: &[u8]) -> Result<Reads, WritError> {
    let expires = claims
        .expires_at
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let held = READS.with_borrow_mut(|memo| {
        let i = memo
            .iter()
            .position(|(s, e, _)| *s == shape && *e == expires)?;
        let entry = memo.remove(i);
        let reads = entry.2.clone();
        memo.insert(0, entry);
        Some(reads)
    });
    if let Some(reads) = held {
        #[cfg(debug_assertions)]
        {
            let fresh = Reads::of(sealed)?;
            debug_assert!(fresh.checks == reads.checks);
            debug_assert_eq!(fresh.holds_through, reads.holds_through);
        }
        return Ok(reads);
    }
    let reads = Reads::of(sealed)?;
    READS.with_borrow_mut(|memo| {
        // One expiry per shape is enough: the writs minted next expire then or later.
        memo.retain(|(s, _, _)| *s != shape);
        memo.truncate(READS_HELD - 1);
        memo.insert(0, (shape, expires, reads.clone()));
    });
    Ok(reads)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parts<'a>(digest: &'a [u8; 32], agent: &'a str) -> ShapeParts<'a> {
        ShapeParts {
            key_id: 1,
            root: b"root",
            tenant: "acme",
            agent,
            cnf_jkt: None,
            audience: None,
            ceiling: digest,
            grants: digest,
        }
    }

    #[test]
    fn shapes_differ_when_any_part_does() {
        let d = [7u8; 32];
        let base = Shape::of(&parts(&d, "a"));
        assert_eq!(base, Shape::of(&parts(&d, "a")));
        assert_ne!(base, Shape::of(&parts(&d, "b")));
        // Moving bytes between neighbouring parts gives another shape.
        let mut moved = parts(&d, "a");
        moved.tenant = "acm";
        moved.agent = "ea";
        assert_ne!(base, Shape::of(&moved));
        let mut bound = parts(&d, "a");
        bound.cnf_jkt = Some("");
        assert_ne!(base, Shape::of(&bound));
        let mut other_grants = parts(&d, "a");
        let e = [8u8; 32];
        other_grants.grants = &e;
        assert_ne!(base, Shape::of(&other_grants));
        let mut other_key = parts(&d, "a");
        other_key.key_id = 2;
        assert_ne!(base, Shape::of(&other_key));
    }

    #[test]
    fn a_decision_is_found_only_within_its_seconds_and_for_its_facts() {
        let shape = Shape::of(&parts(&[1u8; 32], "window"));
        let facts = [3u8; 32];
        remember(shape, facts, 100, 130);
        assert!(allowed(shape, &facts, 100));
        assert!(allowed(shape, &facts, 130));
        assert!(!allowed(shape, &facts, 99));
        assert!(!allowed(shape, &facts, 131));
        assert!(!allowed(shape, &[4u8; 32], 110));
        let other = Shape::of(&parts(&[1u8; 32], "other"));
        assert!(!allowed(other, &facts, 110));
    }

    #[test]
    fn grant_lists_with_one_digest_are_one_list() {
        let a: Vec<crate::Grant> =
            crate::parse_grants(r#"[{"type":"writ:llm","upstream":"u","models":["gpt-4o-mini"]}]"#)
                .unwrap();
        let b: Vec<crate::Grant> =
            crate::parse_grants(r#"[{"type":"writ:llm","upstream":"u","models":["gpt-4o"]}]"#)
                .unwrap();
        assert_eq!(grants_digest(&a), grants_digest(&a.clone()));
        assert_ne!(grants_digest(&a), grants_digest(&b));
    }
}
