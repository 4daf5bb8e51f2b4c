//! [`whole_text`] against the general search run with `eof` from the start: the same
//! candidates in the same order, hence the same findings, for every input.

use std::sync::LazyLock;

use proptest::prelude::*;

use super::*;
use crate::resolve;
use crate::rules::{BUILTIN, RuleId};
use crate::scanner::Finding;

const POSITIVES: &str = include_str!("../../tests/corpus/positives.txt");
const NEGATIVES: &str = include_str!("../../tests/corpus/negatives.txt");

/// The corpus' texts, secret markers dropped and escapes read.
fn corpus() -> Vec<Vec<u8>> {
    let texts = POSITIVES
        .lines()
        .filter_map(|l| l.split_once('\t').map(|(_, text)| text))
        .chain(NEGATIVES.lines());
    texts
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .map(|l| {
            l.replace(['«', '»'], "")
                .replace("\\n", "\n")
                .replace("\\\\", "\\")
                .into_bytes()
        })
        .collect()
}

/// Scanners whose differences matter: configured secrets or none, one shorter than every
/// rule's shortest match, one with a rule's start literal, no rules, some rules, a rule
/// whose shortest match is shorter than every configured secret.
fn scanners() -> Vec<Scanner> {
    let some_rules = BUILTIN
        .iter()
        .filter(|r| matches!(r.id, RuleId::Jwt | RuleId::GenericSecret | RuleId::AzureKey));
    [
        Scanner::new(BUILTIN, &[("upstream", "writ-test-configured-SECRET-0001")]),
        Scanner::new(BUILTIN, &[]),
        Scanner::new(BUILTIN, &[("short", "k3y9"), ("literal", "sk-live")]),
        Scanner::new(std::iter::empty(), &[("only", "abcdefgh"), ("é", "é✓")]),
        Scanner::new(some_rules, &[("upstream", "Zx81QwErTyUiOpAs")]),
        // A rule whose shortest match is a finding, and a longer configured secret.
        Scanner::new(
            BUILTIN.iter().filter(|r| r.id == RuleId::AwsAccessKeyId),
            &[("long", "writ-test-configured-SECRET-0001-longer")],
        ),
    ]
    .into_iter()
    .map(|s| s.unwrap_or_else(|e| panic!("{e}")))
    .collect()
}

type Key = (usize, usize, ScanRule, usize);

fn keys(candidates: &[Candidate]) -> Vec<Key> {
    candidates
        .iter()
        .map(|c| (c.start, c.end, c.rule, c.priority))
        .collect()
}

fn general(scanner: &Scanner, text: &[u8]) -> Vec<Key> {
    let mut out = Vec::new();
    Search::new(scanner).advance(scanner, text, 0, true, &mut out);
    keys(&out)
}

fn fast(scanner: &Scanner, text: &[u8]) -> Vec<Key> {
    let mut out = Vec::new();
    whole_text(scanner, text, &mut out);
    keys(&out)
}

/// What `Scanner::scan` returned before it had a fast path: the general search over every
/// text, however short.
fn scan_general(scanner: &Scanner, text: &[u8]) -> Vec<Finding> {
    let mut candidates = Vec::new();
    Search::new(scanner).advance(scanner, text, 0, true, &mut candidates);
    resolve::findings(candidates)
}

#[test]
fn corpus_texts_and_every_prefix_and_suffix_agree() {
    let scanners = scanners();
    let mut found = 0;
    for text in corpus() {
        for scanner in &scanners {
            for cut in 0..=text.len() {
                for part in [&text[..cut], &text[cut..]] {
                    assert_eq!(fast(scanner, part), general(scanner, part), "{part:?}");
                    let scanned = scanner.scan(part);
                    assert_eq!(scanned, scan_general(scanner, part), "{part:?}");
                    found += scanned.len();
                }
            }
        }
    }
    // The corpus' secrets are found (the comparison is not of two empty lists).
    assert!(found > 1000, "{found}");
}

#[test]
fn texts_about_as_long_as_the_shortest_matches_agree() {
    for scanner in scanners() {
        // Around the shortest match of all, of any rule, of the configured secrets: the
        // lengths below which a scan, the rule set or a matcher is skipped.
        let mut lengths: Vec<usize> = [scanner.min_match_len(), scanner.min_rule_match_len()]
            .into_iter()
            .chain(scanner.matchers.first().map(|m| m.min_len))
            .filter(|&n| n < 1000)
            .flat_map(|n| [n.saturating_sub(1).max(1), n, n + 1])
            .collect();
        lengths.sort_unstable();
        lengths.dedup();
        for text in corpus() {
            for &n in &lengths {
                for window in text.windows(n) {
                    assert_eq!(scanner.scan(window), scan_general(&scanner, window));
                    assert_eq!(fast(&scanner, window), general(&scanner, window));
                }
            }
        }
    }
}

#[test]
fn secrets_back_to_back_split_and_beside_multibyte_characters_agree() {
    let configured = "writ-test-configured-SECRET-0001";
    let texts = [
        configured.repeat(3),
        "AKIAIOSFODNN7EXAMPLE".repeat(3),
        "k3y9k3y9k3y9 abcdefghabcdefgh sk-livesk-live".to_owned(),
        format!("é{configured}✓😀{configured}\u{a0}"),
        "token=éZx81QwErTyUiOpAs9876 token=Zx81QwErTyUi✓OpAs9876".to_owned(),
        "api-key: 01233a18f6d4b2907e5c3a18f6d4b290é".to_owned(),
        "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJ4In0.c2lnbmF0dXJl✓eyJhbGciOiJIUzI1NiJ9.e30".to_owned(),
        format!("{}Zx81QwErTyUiOpAs", &configured[..20]),
        "Zx81QwErTyUiOpAs".to_owned(),
        "Zx81QwErTyUiOpA".to_owned(),
        configured[1..].to_owned(),
        "AKIAIOSFODNN7EXAMPLE".to_owned(),
        "eyJhbGciOiJ.Ab".to_owned(),
    ];
    for scanner in scanners() {
        for text in &texts {
            let text = text.as_bytes();
            assert_eq!(fast(&scanner, text), general(&scanner, text), "{text:?}");
            assert_eq!(scanner.scan(text), scan_general(&scanner, text));
        }
    }
}

/// The first pass as it was built before: `regex::bytes::RegexSet` over the loose patterns.
fn regex_set(scanner: &Scanner) -> regex::bytes::RegexSet {
    let loose = scanner.matchers.iter().map(|m| m.loose_pattern.as_str());
    regex::bytes::RegexSetBuilder::new(loose.filter(|p| !p.is_empty()))
        .size_limit(crate::matcher::REGEX_SIZE_LIMIT * BUILTIN.len())
        .build()
        .unwrap_or_else(|e| panic!("{e}"))
}

/// Which rules the first pass says match, as the old set and as the scanner's.
fn first_pass(scanner: &Scanner, set: &regex::bytes::RegexSet, text: &[u8], at: usize) {
    let old: Vec<usize> = set.matches_at(text, at).into_iter().collect();
    let new = scanner.rules_matching(text, at);
    let new: Vec<usize> = new.iter().map(|id| id.as_usize()).collect();
    assert_eq!(new, old, "{text:?} at {at}");
    if at == 0 {
        assert_eq!(scanner.any_rule_matches(text), !old.is_empty(), "{text:?}");
    }
}

#[test]
fn the_first_pass_says_what_regex_set_says() {
    for scanner in scanners() {
        let set = regex_set(&scanner);
        for text in corpus() {
            for at in 0..=text.len() {
                first_pass(&scanner, &set, &text, at);
                first_pass(&scanner, &set, &text[at..], 0);
            }
        }
    }
}

/// Pieces whose joins make secrets meet, overlap, split and sit next to multibyte
/// characters.
fn piece(corpus: &[Vec<u8>]) -> impl Strategy<Value = Vec<u8>> {
    let texts = corpus.to_vec();
    let n = texts.len();
    let cut_texts = texts.clone();
    prop_oneof![
        (0..n).prop_map(move |i| texts[i].clone()),
        (
            0..n,
            any::<prop::sample::Index>(),
            any::<prop::sample::Index>()
        )
            .prop_map(move |(i, a, b)| {
                let t = &cut_texts[i];
                let (a, b) = (a.index(t.len() + 1), b.index(t.len() + 1));
                t[a.min(b)..a.max(b)].to_vec()
            }),
        prop::sample::select(vec![
            "sk-",
            "sk-ant-api03-",
            "AKIA",
            "eyJ",
            "writ_",
            "password=",
            "token: ",
            "api-key: ",
            "-----BEGIN PRIVATE KEY-----\n",
            "ghp_",
            "writ-test-configured-",
            "writ-test-configured-SECRET-0001",
            "k3y9",
            "abcdefgh",
            "é✓",
            "é",
            "✓",
            "😀",
            "\u{a0}",
            "=",
            "\"",
            ".",
            "\n",
            " ",
        ])
        .prop_map(|s| s.as_bytes().to_vec()),
        "[A-Za-z0-9 _./+=:-]{0,40}".prop_map(String::into_bytes),
        prop::collection::vec(any::<u8>(), 0..8),
    ]
}

/// The scanners, each with the rule set as `regex` builds it: compiled once for every case.
static COMPILED: LazyLock<Vec<(Scanner, regex::bytes::RegexSet)>> = LazyLock::new(|| {
    scanners()
        .into_iter()
        .map(|s| {
            let set = regex_set(&s);
            (s, set)
        })
        .collect()
});

proptest! {
    #![proptest_config(ProptestConfig::with_cases(1024))]
    #[test]
    fn joined_pieces_agree(pieces in prop::collection::vec(piece(&corpus()), 1..6)) {
        let text = pieces.concat();
        for (scanner, set) in COMPILED.iter() {
            prop_assert_eq!(fast(scanner, &text), general(scanner, &text));
            first_pass(scanner, set, &text, 0);
            prop_assert_eq!(scanner.scan(&text), scan_general(scanner, &text));
        }
    }
}
