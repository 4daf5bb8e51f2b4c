//! The parsed tokens of writs being evaluated, in one small ring shared by every writ of
//! the process, so that the memory held as parsed tokens (about 14 KB each, with the
//! shapes of their checks) is bounded whatever the number of live writs.
//!
//! A verified writ keeps what verification read of it and, here, at most one slot. Its
//! parsed token stays until [`CAPACITY`] other tokens have been parsed since (or the writ
//! drops it, or is dropped); a writ that needs it after that parses the text its request
//! presents again, signatures checked, and takes a new slot. A writ whose requests repeat is answered by its memo and
//! never needs it; one whose requests keep changing keeps taking a slot back.

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, LazyLock, Mutex};

use biscuit_auth::{Biscuit, PublicKey};

use crate::evaluation_cost::CheckShapes;

/// A writ as evaluation needs it: the parsed token and the shapes of its checks (to bound
/// an evaluation's cost before it runs). Derived from the writ's text alone.
pub(crate) struct Loaded {
    /// The parsed token.
    pub(crate) biscuit: Biscuit,
    /// The shape of the checks after the authority block (shared by the writs of one
    /// shape: see `shape::read`).
    pub(crate) checks: Arc<CheckShapes>,
}

impl std::ops::Deref for Loaded {
    type Target = Biscuit;
    fn deref(&self) -> &Biscuit {
        &self.biscuit
    }
}

/// Most parsed tokens held by the process's ring: about 14 MB for writs minted here.
pub const CAPACITY: usize = 1024;

/// No slot.
const NONE: usize = usize::MAX;

/// A slot: a parsed token and the id of the writ it belongs to, or nothing.
type Slot = Option<(u64, Arc<Loaded>)>;

/// A ring of parsed tokens, each tagged with the id of the writ it belongs to.
pub(crate) struct Ring {
    slots: Box<[Mutex<Slot>]>,
    /// Slots taken so far: the next one to take, modulo the capacity.
    next: AtomicUsize,
}

/// The process's ring.
static RING: LazyLock<Ring> = LazyLock::new(|| Ring::new(CAPACITY));

/// Ids given to writs, so a slot a later writ took over is never read as this one's.
static IDS: AtomicU64 = AtomicU64::new(0);

/// Root keys writs were verified with, shared between them: a key is about 200 bytes and
/// every verified writ keeps the one that verified it (to parse its bytes again).
static ROOTS: Mutex<Vec<Arc<PublicKey>>> = Mutex::new(Vec::new());

/// Most root keys shared; past this, the oldest stops being shared (never wrong, only
/// larger).
const SHARED_ROOTS: usize = 64;

/// `key`, shared with every writ verified by the same key.
pub(crate) fn shared_root(key: PublicKey) -> Arc<PublicKey> {
    let mut roots = ROOTS.lock().unwrap_or_else(|p| p.into_inner());
    if let Some(shared) = roots.iter().find(|k| ***k == key) {
        return shared.clone();
    }
    let shared = Arc::new(key);
    if roots.len() >= SHARED_ROOTS {
        roots.remove(0);
    }
    roots.push(shared.clone());
    shared
}

/// One writ's claim on a slot of the process's ring: 16 bytes.
#[derive(Debug)]
pub(crate) struct Parsed {
    id: u64,
    slot: AtomicUsize,
}

impl Parsed {
    /// A claim holding `biscuit` in the process's ring.
    pub(crate) fn holding(biscuit: Arc<Loaded>) -> Self {
        let parsed = Parsed {
            id: IDS.fetch_add(1, Ordering::Relaxed),
            slot: AtomicUsize::new(NONE),
        };
        parsed.put(biscuit);
        parsed
    }

    /// The parsed token, if the ring still holds it.
    pub(crate) fn get(&self) -> Option<Arc<Loaded>> {
        RING.get(self.id, &self.slot)
    }

    /// Holds `biscuit` in a slot of the ring, pushing out the oldest.
    pub(crate) fn put(&self, biscuit: Arc<Loaded>) {
        RING.put(self.id, &self.slot, biscuit);
    }

    /// Lets the parsed token go now.
    pub(crate) fn release(&self) {
        RING.release(self.id, &self.slot);
    }
}

impl Drop for Parsed {
    fn drop(&mut self) {
        self.release();
    }
}

impl Ring {
    /// An empty ring of `capacity` slots (at least one).
    pub(crate) fn new(capacity: usize) -> Self {
        Ring {
            slots: (0..capacity.max(1)).map(|_| Mutex::new(None)).collect(),
            next: AtomicUsize::new(0),
        }
    }

    fn lock(&self, slot: usize) -> Option<std::sync::MutexGuard<'_, Slot>> {
        self.slots
            .get(slot)
            .map(|s| s.lock().unwrap_or_else(|p| p.into_inner()))
    }

    /// The token writ `id` holds in `slot`, if no other writ has taken the slot since.
    pub(crate) fn get(&self, id: u64, slot: &AtomicUsize) -> Option<Arc<Loaded>> {
        let guard = self.lock(slot.load(Ordering::Acquire))?;
        match guard.as_ref() {
            Some((holder, biscuit)) if *holder == id => Some(biscuit.clone()),
            _ => None,
        }
    }

    /// Holds `biscuit` for writ `id` in the next slot, recording it in `slot`; whatever
    /// the slot held goes (dropped outside the lock).
    pub(crate) fn put(&self, id: u64, slot: &AtomicUsize, biscuit: Arc<Loaded>) {
        let taken = self.next.fetch_add(1, Ordering::Relaxed) % self.slots.len();
        let old = self
            .lock(taken)
            .and_then(|mut guard| guard.replace((id, biscuit)));
        let previous = slot.swap(taken, Ordering::AcqRel);
        if previous != taken {
            self.release_slot(id, previous);
        }
        drop(old);
    }

    /// Empties the slot writ `id` holds, if it still holds one.
    pub(crate) fn release(&self, id: u64, slot: &AtomicUsize) {
        self.release_slot(id, slot.swap(NONE, Ordering::AcqRel));
    }

    fn release_slot(&self, id: u64, slot: usize) {
        let old = self.lock(slot).and_then(|mut guard| {
            if guard.as_ref().is_some_and(|(holder, _)| *holder == id) {
                guard.take()
            } else {
                None
            }
        });
        drop(old);
    }

    /// How many slots hold a token.
    #[cfg(test)]
    pub(crate) fn held(&self) -> usize {
        (0..self.slots.len())
            .filter(|&i| self.lock(i).is_some_and(|g| g.is_some()))
            .count()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use biscuit_auth::KeyPair;

    fn token() -> Arc<Loaded> {
        let root = KeyPair::new();
        let biscuit = Biscuit::builder()
            .fact("writ_version(1)")
            .unwrap()
            .build(&root)
            .unwrap();
        let checks = Arc::new(CheckShapes::read(&biscuit.to_vec().unwrap()).unwrap());
        Arc::new(Loaded { biscuit, checks })
    }

    #[test]
    fn the_ring_holds_at_most_its_capacity_and_keeps_the_newest() {
        let ring = Ring::new(4);
        let slots: Vec<AtomicUsize> = (0..10).map(|_| AtomicUsize::new(NONE)).collect();
        let tokens: Vec<Arc<Loaded>> = (0..10).map(|_| token()).collect();
        for (id, (slot, biscuit)) in slots.iter().zip(&tokens).enumerate() {
            ring.put(id as u64, slot, biscuit.clone());
        }
        assert_eq!(ring.held(), 4);
        let held: Vec<bool> = (0..10)
            .map(|id| ring.get(id as u64, &slots[id]).is_some())
            .collect();
        assert_eq!(
            held,
            [
                false, false, false, false, false, false, true, true, true, true
            ]
        );
        // Tokens pushed out are let go: only the test's own reference remains.
        assert_eq!(Arc::strong_count(&tokens[0]), 1);
        assert_eq!(Arc::strong_count(&tokens[9]), 2);
        // A writ whose slot another took over reads nothing, and releasing it does not
        // empty the other's slot.
        ring.release(0, &slots[0]);
        assert_eq!(ring.held(), 4);
        ring.release(9, &slots[9]);
        assert_eq!(ring.held(), 3);
        assert!(ring.get(9, &slots[9]).is_none());
    }

    #[test]
    fn a_writ_taking_a_new_slot_lets_its_old_one_go() {
        let ring = Ring::new(8);
        let slot = AtomicUsize::new(NONE);
        ring.put(1, &slot, token());
        ring.put(1, &slot, token());
        assert_eq!(ring.held(), 1);
        assert!(ring.get(1, &slot).is_some());
        assert!(
            ring.get(2, &slot).is_none(),
            "another writ's id reads nothing"
        );
    }
}
