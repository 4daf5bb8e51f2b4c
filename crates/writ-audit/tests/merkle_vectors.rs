//! RFC 6962 Merkle hashing and proofs against the Certificate Transparency reference
//! vectors (tests/vectors/rfc6962.json), and exhaustively for every tree up to 64 leaves.
#![allow(clippy::unwrap_used)] // test helpers outside #[test] fns

use proptest::prelude::*;
use serde::Deserialize;
use writ_audit::Tree;
use writ_audit::merkle::{
    Hash, consistency_proof, empty_root, inclusion_proof, leaf_hash, root, verify_consistency,
    verify_inclusion,
};

#[derive(Deserialize)]
struct Vectors {
    leaves: Vec<String>,
    roots: Vec<String>,
    inclusion: Vec<Inclusion>,
    consistency: Vec<Consistency>,
}

#[derive(Deserialize)]
struct Inclusion {
    index: u64,
    size: u64,
    proof: Vec<String>,
}

#[derive(Deserialize)]
struct Consistency {
    m: u64,
    n: u64,
    proof: Vec<String>,
}

fn vectors() -> Vectors {
    serde_json::from_str(include_str!("vectors/rfc6962.json")).unwrap()
}

fn h(s: &str) -> Hash {
    hex::decode(s).unwrap().try_into().unwrap()
}

fn hashes(v: &[String]) -> Vec<Hash> {
    v.iter().map(|s| h(s)).collect()
}

fn ct_leaves(v: &Vectors) -> Vec<Hash> {
    v.leaves
        .iter()
        .map(|l| leaf_hash(&hex::decode(l).unwrap()))
        .collect()
}

fn flip(mut x: Hash, bit: usize) -> Hash {
    x[bit / 8] ^= 1 << (bit % 8);
    x
}

/// A corrupted probe: (index or m, size or n, leaf or root m, root or root n, proof, what).
type Probe = (u64, u64, Hash, Hash, Vec<Hash>, &'static str);

const SOME_HASH: &str = "abacaba000000000000000000000000000000000000000000060061e00123456";

#[test]
fn roots_match_for_every_size() {
    let v = vectors();
    let leaves = ct_leaves(&v);
    let tree = Tree::from_leaves(leaves.iter().copied());
    assert_eq!(empty_root(), h(&v.roots[0]));
    for (size, want) in v.roots.iter().enumerate() {
        assert_eq!(root(&leaves[..size]), h(want), "size {size}");
        assert_eq!(tree.root_at(size as u64), Some(h(want)), "tree size {size}");
    }
}

#[test]
fn inclusion_proofs_match_and_corruptions_fail() {
    let v = vectors();
    let leaves = ct_leaves(&v);
    for t in &v.inclusion {
        let (i, n) = (t.index, t.size);
        let want = hashes(&t.proof);
        let prefix = &leaves[..n as usize];
        let r = h(&v.roots[n as usize]);
        let leaf = leaves[i as usize];
        assert_eq!(inclusion_proof(i, prefix), want, "proof of {i} in {n}");
        assert!(verify_inclusion(i, n, &leaf, &want, &r));

        // The corruptions transparency-dev/merkle probes with.
        let mut bad: Vec<Probe> = vec![
            (i.wrapping_sub(1), n, leaf, r, want.clone(), "index - 1"),
            (i + 1, n, leaf, r, want.clone(), "index + 1"),
            (i ^ 2, n, leaf, r, want.clone(), "index ^ 2"),
            (i, n * 2, leaf, r, want.clone(), "size * 2"),
            (i, n / 2, leaf, r, want.clone(), "size / 2"),
            (i, n, leaf_hash(b"WrongLeaf"), r, want.clone(), "wrong leaf"),
            (i, n, leaf, empty_root(), want.clone(), "empty root"),
            (i, n, leaf, h(SOME_HASH), want.clone(), "random root"),
            (
                i,
                n,
                leaf,
                r,
                [want.clone(), vec![r]].concat(),
                "trailing root",
            ),
            (
                i,
                n,
                leaf,
                r,
                [vec![r], want.clone()].concat(),
                "preceding root",
            ),
            (
                i,
                n,
                leaf,
                r,
                [want.clone(), vec![[0; 32]]].concat(),
                "trailing garbage",
            ),
        ];
        for k in 0..want.len() {
            let mut p = want.clone();
            p[k] = flip(p[k], 3);
            bad.push((i, n, leaf, r, p, "flipped bit"));
        }
        if !want.is_empty() {
            bad.push((
                i,
                n,
                leaf,
                r,
                want[..want.len() - 1].to_vec(),
                "removed component",
            ));
        }
        if want.len() > 1 {
            let p = [vec![want[0], h(SOME_HASH)], want[1..].to_vec()].concat();
            bad.push((i, n, leaf, r, p, "inserted component"));
        }
        for (bi, bn, bleaf, broot, bp, what) in bad {
            assert!(
                !verify_inclusion(bi, bn, &bleaf, &bp, &broot),
                "{what}: {i} in {n}"
            );
        }
    }
}

#[test]
fn consistency_proofs_match_and_corruptions_fail() {
    let v = vectors();
    let leaves = ct_leaves(&v);
    for t in &v.consistency {
        let (m, n) = (t.m, t.n);
        let want = hashes(&t.proof);
        let (rm, rn) = (h(&v.roots[m as usize]), h(&v.roots[n as usize]));
        assert_eq!(
            consistency_proof(m, &leaves[..n as usize]),
            want,
            "{m} -> {n}"
        );
        assert!(verify_consistency(m, n, &rm, &rn, &want));
        if want.is_empty() {
            continue;
        }
        let mut bad: Vec<Probe> = vec![
            (m - 1, n, rm, rn, want.clone(), "m - 1"),
            (m + 1, n, rm, rn, want.clone(), "m + 1"),
            (m ^ 2, n, rm, rn, want.clone(), "m ^ 2"),
            (m, n * 2, rm, rn, want.clone(), "n * 2"),
            (m, n / 2, rm, rn, want.clone(), "n / 2"),
            (m, n, h(SOME_HASH), rn, want.clone(), "wrong root m"),
            (m, n, rm, h(SOME_HASH), want.clone(), "wrong root n"),
            (m, n, rn, rm, want.clone(), "swapped roots"),
            (m, n, rm, rn, vec![], "empty proof"),
            (
                m,
                n,
                rm,
                rn,
                [want.clone(), vec![rm]].concat(),
                "trailing root m",
            ),
            (
                m,
                n,
                rm,
                rn,
                [want.clone(), vec![rn]].concat(),
                "trailing root n",
            ),
            (
                m,
                n,
                rm,
                rn,
                [vec![rm], want.clone()].concat(),
                "preceding root m",
            ),
            (
                m,
                n,
                rm,
                rn,
                [vec![rn], want.clone()].concat(),
                "preceding root n",
            ),
            (
                m,
                n,
                rm,
                rn,
                [vec![want[0]], want.clone()].concat(),
                "preceding proof[0]",
            ),
            (
                m,
                n,
                rm,
                rn,
                want[..want.len() - 1].to_vec(),
                "truncated proof",
            ),
        ];
        for k in 0..want.len() {
            let mut p = want.clone();
            p[k] = flip(p[k], 4);
            bad.push((m, n, rm, rn, p, "flipped bit"));
        }
        for (bm, bn, brm, brn, bp, what) in bad {
            assert!(
                !verify_consistency(bm, bn, &brm, &brn, &bp),
                "{what}: {m} -> {n}"
            );
        }
    }
}

#[test]
fn consistency_edge_cases_follow_the_reference_verifiers() {
    let (r1, r2) = (h(SOME_HASH), empty_root());
    assert!(verify_consistency(0, 0, &r1, &r1, &[]));
    assert!(!verify_consistency(0, 0, &r1, &r2, &[]));
    assert!(verify_consistency(0, 1, &r1, &r2, &[]));
    assert!(!verify_consistency(0, 1, &r2, &r2, &[r2]));
    assert!(verify_consistency(1, 1, &r2, &r2, &[]));
    assert!(!verify_consistency(1, 1, &r2, &r2, &[r2]));
    assert!(!verify_consistency(1, 0, &r1, &r2, &[]));
    assert!(!verify_consistency(2, 1, &r1, &r2, &[]));
    assert!(!verify_consistency(1, 2, &r1, &r2, &[]));
    assert!(!verify_inclusion(0, 0, &r1, &[], &r2));
    assert!(!verify_inclusion(1, 1, &r1, &[], &r1));
    assert!(verify_inclusion(0, 1, &r1, &[], &r1));
}

fn many_leaves(n: u64) -> Vec<Hash> {
    (0..n)
        .map(|i| leaf_hash(format!("leaf {i}").as_bytes()))
        .collect()
}

/// Which bit to flip for a given case: varies over the whole hash across cases, so every
/// byte position gets exercised without flipping all 256 bits of every hash (SHA-256 in a
/// debug build is slow).
fn bit_for(a: u64, b: u64, k: usize) -> usize {
    ((a * 7 + b * 13) as usize + k * 31) % 256
}

#[test]
fn every_proof_up_to_64_leaves_verifies_and_a_flipped_bit_anywhere_fails() {
    let all = many_leaves(64);
    let tree = Tree::from_leaves(all.iter().copied());
    for n in 1..=64u64 {
        let leaves = &all[..n as usize];
        let rn = root(leaves);
        for i in 0..n {
            let leaf = leaves[i as usize];
            let p = inclusion_proof(i, leaves);
            assert_eq!(tree.inclusion_proof(i, n).as_ref(), Some(&p));
            assert!(verify_inclusion(i, n, &leaf, &p, &rn), "{i} in {n}");
            let bit = bit_for(i, n, 0);
            assert!(!verify_inclusion(i, n, &flip(leaf, bit), &p, &rn));
            assert!(!verify_inclusion(i, n, &leaf, &p, &flip(rn, bit)));
            for k in 0..p.len() {
                let mut bad = p.clone();
                bad[k] = flip(bad[k], bit_for(i, n, k));
                assert!(
                    !verify_inclusion(i, n, &leaf, &bad, &rn),
                    "{i} in {n}, [{k}]"
                );
            }
        }
        for m in 1..n {
            let rm = root(&leaves[..m as usize]);
            let p = consistency_proof(m, leaves);
            assert_eq!(tree.consistency_proof(m, n).as_ref(), Some(&p));
            assert!(verify_consistency(m, n, &rm, &rn, &p), "{m} -> {n}");
            let bit = bit_for(m, n, 0);
            assert!(!verify_consistency(m, n, &flip(rm, bit), &rn, &p));
            assert!(!verify_consistency(m, n, &rm, &flip(rn, bit), &p));
            for k in 0..p.len() {
                let mut bad = p.clone();
                bad[k] = flip(bad[k], bit_for(m, n, k));
                assert!(
                    !verify_consistency(m, n, &rm, &rn, &bad),
                    "{m} -> {n}, [{k}]"
                );
            }
        }
    }
}

proptest! {
    #[test]
    fn random_sizes_and_flips(n in 2u64..300, a in any::<u64>(), k in any::<usize>(), bit in 0usize..256) {
        let leaves = many_leaves(n);
        let rn = root(&leaves);
        let m = 1 + a % (n - 1);
        let p = consistency_proof(m, &leaves);
        let rm = root(&leaves[..m as usize]);
        prop_assert!(verify_consistency(m, n, &rm, &rn, &p));
        let mut bad = p.clone();
        let k = k % bad.len();
        bad[k] = flip(bad[k], bit);
        prop_assert!(!verify_consistency(m, n, &rm, &rn, &bad));

        let i = a % n;
        let p = inclusion_proof(i, &leaves);
        prop_assert!(verify_inclusion(i, n, &leaves[i as usize], &p, &rn));
        let mut bad = p.clone();
        let k = k % bad.len();
        bad[k] = flip(bad[k], bit);
        prop_assert!(!verify_inclusion(i, n, &leaves[i as usize], &bad, &rn));
    }
}
