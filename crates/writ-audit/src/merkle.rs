//! RFC 6962 Merkle tree hashing and proofs, as pure functions over leaf hashes.
//!
//! The tree is the one Certificate Transparency uses (RFC 6962 §2.1, restated in RFC 9162
//! §2.1), so any transparency tooling can check our roots and proofs:
//!
//! - a leaf's hash is `SHA-256(0x00 ‖ data)`, an interior node's is
//!   `SHA-256(0x01 ‖ left ‖ right)`; the different prefixes stop a leaf from passing for a
//!   node (second-preimage attacks);
//! - the tree over `n` leaves splits at `k`, the largest power of two below `n`, so a tree
//!   only ever grows on its right edge and the tree of the first `m` leaves is a part of
//!   every later tree;
//! - the root of the empty tree is `SHA-256("")`.
//!
//! Functions here take the leaf hashes, not the leaf data, so callers hash each record once.
//! Building a proof from a slice costs O(n) hashes; [`crate::Tree`] keeps the interior nodes
//! and builds the same proofs in O(log² n).

use sha2::{Digest, Sha256};

/// A SHA-256 digest: a leaf hash, a node hash or a root.
pub type Hash = [u8; 32];

/// `SHA-256(0x00 ‖ data)`: the hash of one leaf (for us, one audit record line).
pub fn leaf_hash(data: &[u8]) -> Hash {
    let mut h = Sha256::new();
    h.update([0x00]);
    h.update(data);
    h.finalize().into()
}

/// `SHA-256(0x01 ‖ left ‖ right)`: the hash of an interior node.
pub fn node_hash(left: &Hash, right: &Hash) -> Hash {
    let mut h = Sha256::new();
    h.update([0x01]);
    h.update(left);
    h.update(right);
    h.finalize().into()
}

/// The root of the tree with no leaves: `SHA-256("")`.
pub fn empty_root() -> Hash {
    Sha256::digest([]).into()
}

/// The Merkle Tree Hash (RFC 6962 §2.1) of `leaves`, which are leaf hashes in log order.
pub fn root(leaves: &[Hash]) -> Hash {
    match leaves {
        [] => empty_root(),
        [one] => *one,
        _ => {
            let k = split(leaves.len() as u64) as usize;
            node_hash(&root(&leaves[..k]), &root(&leaves[k..]))
        }
    }
}

/// The audit path (RFC 6962 §2.1.1) for leaf `index` in the tree over all of `leaves`,
/// ordered from the leaf's sibling up to the root's child.
///
/// Empty if `index` is not a leaf of the tree (and for the only leaf of a one-leaf tree).
pub fn inclusion_proof(index: u64, leaves: &[Hash]) -> Vec<Hash> {
    let size = leaves.len() as u64;
    let mut proof = Vec::new();
    if index < size {
        inclusion_path(
            index,
            0,
            size,
            &|a, b| root(&leaves[a as usize..b as usize]),
            &mut proof,
        );
    }
    proof
}

/// Whether `proof` shows that `leaf` is leaf number `index` of the tree of `size` leaves
/// whose root is `root` (the algorithm of RFC 9162 §2.1.3.2).
pub fn verify_inclusion(index: u64, size: u64, leaf: &Hash, proof: &[Hash], root: &Hash) -> bool {
    if index >= size {
        return false;
    }
    let (mut fnode, mut snode) = (index, size - 1);
    let mut r = *leaf;
    for p in proof {
        if snode == 0 {
            return false;
        }
        if fnode & 1 == 1 || fnode == snode {
            r = node_hash(p, &r);
            // Past the right edge of an unbalanced tree there are no siblings: climb to
            // the level where this node is a right child again.
            while fnode & 1 == 0 && fnode != 0 {
                fnode >>= 1;
                snode >>= 1;
            }
        } else {
            r = node_hash(&r, p);
        }
        fnode >>= 1;
        snode >>= 1;
    }
    snode == 0 && r == *root
}

/// The consistency proof (RFC 6962 §2.1.2) that the tree over the first `m` leaves is a
/// prefix of the tree over all of `leaves`.
///
/// Empty when `m` is 0 or `m` is the whole tree (no proof is needed: see
/// [`verify_consistency`]) and when `m` is larger than the tree (no proof exists).
pub fn consistency_proof(m: u64, leaves: &[Hash]) -> Vec<Hash> {
    let size = leaves.len() as u64;
    let mut proof = Vec::new();
    if 0 < m && m < size {
        subproof(
            m,
            0,
            size,
            true,
            &|a, b| root(&leaves[a as usize..b as usize]),
            &mut proof,
        );
    }
    proof
}

/// Whether `proof` shows that the tree of `m` leaves with root `root_m` is a prefix of the
/// tree of `n` leaves with root `root_n` (the algorithm of RFC 9162 §2.1.4.2).
///
/// As in the Go and C++ CT verifiers: equal sizes need an empty proof and equal roots, and
/// the empty tree (`m == 0`) is a prefix of every tree, with an empty proof.
pub fn verify_consistency(m: u64, n: u64, root_m: &Hash, root_n: &Hash, proof: &[Hash]) -> bool {
    if m > n {
        return false;
    }
    if m == n {
        return proof.is_empty() && root_m == root_n;
    }
    if m == 0 {
        return proof.is_empty();
    }
    if proof.is_empty() {
        return false;
    }
    // When the old tree is a complete subtree of the new one its root is the first node of
    // the path and the proof leaves it out; put it back.
    let mut path = proof.iter();
    let seed = if m.is_power_of_two() {
        *root_m
    } else {
        match path.next() {
            Some(first) => *first,
            None => return false,
        }
    };
    let (mut fnode, mut snode) = (m - 1, n - 1);
    while fnode & 1 == 1 {
        fnode >>= 1;
        snode >>= 1;
    }
    let (mut fr, mut sr) = (seed, seed);
    for c in path {
        if snode == 0 {
            return false;
        }
        if fnode & 1 == 1 || fnode == snode {
            fr = node_hash(c, &fr);
            sr = node_hash(c, &sr);
            while fnode & 1 == 0 && fnode != 0 {
                fnode >>= 1;
                snode >>= 1;
            }
        } else {
            sr = node_hash(&sr, c);
        }
        fnode >>= 1;
        snode >>= 1;
    }
    fr == *root_m && sr == *root_n && snode == 0
}

/// The largest power of two strictly below `n`; `n` must be at least 2.
pub(crate) fn split(n: u64) -> u64 {
    debug_assert!(n >= 2);
    1 << (63 - (n - 1).leading_zeros())
}

/// RFC 6962 `PATH(index, D[start..end])`, with `mth(a, b)` giving the root of leaves
/// `a..b`. Written once over `mth` so the slice functions here and the cached
/// [`crate::Tree`] build byte-identical proofs.
pub(crate) fn inclusion_path(
    index: u64,
    start: u64,
    end: u64,
    mth: &impl Fn(u64, u64) -> Hash,
    out: &mut Vec<Hash>,
) {
    let n = end - start;
    if n <= 1 {
        return;
    }
    let k = split(n);
    if index < k {
        inclusion_path(index, start, start + k, mth, out);
        out.push(mth(start + k, end));
    } else {
        inclusion_path(index - k, start + k, end, mth, out);
        out.push(mth(start, start + k));
    }
}

/// RFC 6962 `SUBPROOF(m, D[start..end], complete)`, over `mth` as in [`inclusion_path`].
pub(crate) fn subproof(
    m: u64,
    start: u64,
    end: u64,
    complete: bool,
    mth: &impl Fn(u64, u64) -> Hash,
    out: &mut Vec<Hash>,
) {
    let n = end - start;
    if m == n {
        if !complete {
            out.push(mth(start, end));
        }
        return;
    }
    let k = split(n);
    if m <= k {
        subproof(m, start, start + k, complete, mth, out);
        out.push(mth(start + k, end));
    } else {
        subproof(m - k, start + k, end, false, mth, out);
        out.push(mth(start, start + k));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn leaves(n: u64) -> Vec<Hash> {
        (0..n).map(|i| leaf_hash(&i.to_be_bytes())).collect()
    }

    #[test]
    fn split_is_largest_power_of_two_below() {
        assert_eq!(split(2), 1);
        assert_eq!(split(3), 2);
        assert_eq!(split(4), 2);
        assert_eq!(split(5), 4);
        assert_eq!(split(8), 4);
        assert_eq!(split(9), 8);
        assert_eq!(split(u64::MAX), 1 << 63);
    }

    #[test]
    fn every_inclusion_proof_up_to_64_leaves_verifies() {
        for n in 1..=64 {
            let l = leaves(n);
            let r = root(&l);
            for i in 0..n {
                let p = inclusion_proof(i, &l);
                assert!(verify_inclusion(i, n, &l[i as usize], &p, &r), "{i} in {n}");
                assert!(!verify_inclusion(i, n, &l[(i as usize + 1) % l.len()], &p, &r) || n == 1);
            }
        }
    }

    #[test]
    fn every_consistency_proof_up_to_64_leaves_verifies() {
        for n in 1..=64u64 {
            let l = leaves(n);
            let rn = root(&l);
            for m in 0..=n {
                let rm = root(&l[..m as usize]);
                let p = consistency_proof(m, &l);
                assert!(verify_consistency(m, n, &rm, &rn, &p), "{m} -> {n}");
            }
        }
    }

    #[test]
    fn a_proof_with_a_missing_root_is_refused() {
        let l = leaves(4);
        // m = 2 is a power of two, so its root is implied; an empty proof proves nothing.
        assert!(!verify_consistency(2, 4, &root(&l[..2]), &root(&l), &[]));
        assert!(!verify_consistency(
            3,
            2,
            &root(&l[..3]),
            &root(&l[..2]),
            &[]
        ));
    }
}
