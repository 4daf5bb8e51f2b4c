//! An append-only Merkle tree that keeps every node, so the root and proofs of any earlier
//! size cost O(log n) hashes instead of O(n); and its right edge alone, which is all an
//! appender needs for the root, in O(log n) memory.

use crate::merkle::{self, Hash};

/// The RFC 6962 tree over a growing list of leaf hashes, with every complete subtree's
/// root cached.
///
/// `levels[0]` holds the leaf hashes; `levels[h][i]` is the root of the perfect subtree
/// over leaves `i·2ʰ .. (i+1)·2ʰ`, kept once both halves exist. Together the levels hold
/// fewer than `2n` hashes: about 64 bytes per leaf. Every subtree an RFC 6962 proof names
/// is either one of these (O(1)) or the ragged right edge, which splits into O(log n)
/// cached ones; so [`Tree::root_at`] is O(log n) and proofs O(log² n), for any earlier
/// size, which is what checking many checkpoints of a long log needs.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Tree {
    levels: Vec<Vec<Hash>>,
}

impl Tree {
    /// An empty tree.
    pub fn new() -> Self {
        Self::default()
    }

    /// The tree over `leaves` (leaf hashes, in log order).
    pub fn from_leaves(leaves: impl IntoIterator<Item = Hash>) -> Self {
        let mut tree = Self::new();
        for leaf in leaves {
            tree.push(leaf);
        }
        tree
    }

    /// Appends one leaf hash. Amortized O(1): each push completes on average one subtree.
    pub fn push(&mut self, leaf: Hash) {
        let mut node = leaf;
        let mut level = 0;
        loop {
            if self.levels.len() == level {
                self.levels.push(Vec::new());
            }
            let nodes = &mut self.levels[level];
            nodes.push(node);
            let len = nodes.len();
            if len % 2 == 1 {
                break;
            }
            node = merkle::node_hash(&nodes[len - 2], &nodes[len - 1]);
            level += 1;
        }
    }

    /// The number of leaves.
    pub fn len(&self) -> u64 {
        self.leaves().len() as u64
    }

    /// Whether the tree has no leaves.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The leaf hashes, in log order.
    pub fn leaves(&self) -> &[Hash] {
        self.levels.first().map_or(&[], Vec::as_slice)
    }

    /// The root of the whole tree.
    pub fn root(&self) -> Hash {
        self.mth(0, self.len())
    }

    /// The root the tree had when it held its first `size` leaves; `None` if it never did.
    pub fn root_at(&self, size: u64) -> Option<Hash> {
        (size <= self.len()).then(|| self.mth(0, size))
    }

    /// The inclusion proof of leaf `index` in the tree of the first `size` leaves, as
    /// [`merkle::inclusion_proof`] would build it; `None` unless `index < size <= len`.
    pub fn inclusion_proof(&self, index: u64, size: u64) -> Option<Vec<Hash>> {
        if index >= size || size > self.len() {
            return None;
        }
        let mut proof = Vec::new();
        merkle::inclusion_path(index, 0, size, &|a, b| self.mth(a, b), &mut proof);
        Some(proof)
    }

    /// The consistency proof from the tree of the first `m` leaves to that of the first
    /// `n`, as [`merkle::consistency_proof`] would build it; `None` unless `m <= n <= len`.
    pub fn consistency_proof(&self, m: u64, n: u64) -> Option<Vec<Hash>> {
        if m > n || n > self.len() {
            return None;
        }
        let mut proof = Vec::new();
        if 0 < m && m < n {
            merkle::subproof(m, 0, n, true, &|a, b| self.mth(a, b), &mut proof);
        }
        Some(proof)
    }

    /// The root of the subtree over leaves `start..end`, where `start..end` is a subtree of
    /// some RFC 6962 tree (so a perfect range is always aligned to its size).
    fn mth(&self, start: u64, end: u64) -> Hash {
        let n = end - start;
        if n == 0 {
            return merkle::empty_root();
        }
        if n.is_power_of_two() && start.is_multiple_of(n) {
            let level = n.trailing_zeros() as usize;
            return self.levels[level][(start >> level) as usize];
        }
        let k = merkle::split(n);
        merkle::node_hash(&self.mth(start, start + k), &self.mth(start + k, end))
    }
}

/// The right edge of an RFC 6962 tree: the roots of the perfect subtrees its leaves split
/// into, largest (leftmost) first, one for each bit set in its size. Enough to append and
/// to compute the root, in at most 64 hashes however many leaves there are; proofs need a
/// [`Tree`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Frontier {
    size: u64,
    peaks: Vec<Hash>,
}

impl Frontier {
    /// An empty tree's edge.
    pub fn new() -> Self {
        Self::default()
    }

    /// Appends one leaf hash: it merges with the equal-sized subtrees at the edge, one for
    /// each trailing bit set in the size before it.
    pub fn push(&mut self, leaf: Hash) {
        let mut node = leaf;
        for _ in 0..self.size.trailing_ones() {
            if let Some(left) = self.peaks.pop() {
                node = merkle::node_hash(&left, &node);
            }
        }
        self.peaks.push(node);
        self.size += 1;
    }

    /// The number of leaves.
    pub fn len(&self) -> u64 {
        self.size
    }

    /// Whether the tree has no leaves.
    pub fn is_empty(&self) -> bool {
        self.size == 0
    }

    /// The root of the tree: the subtrees joined from the right, as RFC 6962 splits a tree
    /// at the largest power of two below its size.
    pub fn root(&self) -> Hash {
        let mut from_right = self.peaks.iter().rev();
        match from_right.next() {
            None => merkle::empty_root(),
            Some(last) => from_right.fold(*last, |right, left| merkle::node_hash(left, &right)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::merkle::{consistency_proof, inclusion_proof, leaf_hash, root};

    /// The edge alone gives the root of every size, and never holds more than one hash per
    /// bit of the size.
    #[test]
    fn the_frontier_has_the_root_of_every_size_up_to_300() {
        let leaves: Vec<Hash> = (0u32..300).map(|i| leaf_hash(&i.to_le_bytes())).collect();
        let mut edge = Frontier::new();
        assert!(edge.is_empty());
        assert_eq!(edge.root(), merkle::empty_root());
        for (n, leaf) in leaves.iter().enumerate() {
            edge.push(*leaf);
            let size = n as u64 + 1;
            assert_eq!(edge.len(), size);
            assert_eq!(edge.root(), root(&leaves[..=n]), "root {size}");
            assert_eq!(edge.peaks.len(), size.count_ones() as usize);
        }
    }

    #[test]
    fn agrees_with_the_slice_functions_for_every_size_up_to_40() {
        let leaves: Vec<Hash> = (0u32..40).map(|i| leaf_hash(&i.to_le_bytes())).collect();
        let tree = Tree::from_leaves(leaves.iter().copied());
        assert_eq!(tree.root_at(0), Some(merkle::empty_root()));
        for n in 1..=40u64 {
            let prefix = &leaves[..n as usize];
            assert_eq!(tree.root_at(n), Some(root(prefix)), "root {n}");
            for i in 0..n {
                assert_eq!(tree.inclusion_proof(i, n), Some(inclusion_proof(i, prefix)));
            }
            for m in 0..=n {
                assert_eq!(
                    tree.consistency_proof(m, n),
                    Some(consistency_proof(m, prefix))
                );
            }
        }
        assert_eq!(tree.root_at(41), None);
        assert_eq!(tree.inclusion_proof(3, 41), None);
        assert_eq!(tree.consistency_proof(5, 4), None);
    }
}
