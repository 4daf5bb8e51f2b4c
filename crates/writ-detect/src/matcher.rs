//! One compiled matcher — a rule's regex or the exact set of configured secrets — with
//! the two facts streaming needs about it: its longest match and the literals every match
//! starts with.
//!
//! A rule's pattern bounds every repetition (8 KiB of PEM body, JWT segments), and a lazy
//! DFA searching for counted repetitions at every position of a long text needs a state
//! per count: after a few keys or tokens its cache thrashes and the engine falls back to
//! an NFA simulation for good, 100 times slower. So a rule is searched for with a *loose*
//! copy of its pattern, long repetitions made unbounded — a superset, so it finds every
//! start the exact pattern could have — and each loose hit is then confirmed by the exact
//! pattern, anchored at that start, which only ever reads up to the longest match.

use std::collections::HashSet;

use aho_corasick::{AhoCorasick, Input, MatchKind};
use regex::bytes::{Regex, RegexBuilder};
use regex_automata::hybrid::LazyStateID;
use regex_automata::hybrid::dfa::{Cache, DFA};
use regex_automata::{Anchored, meta, nfa::thompson, util::syntax};
use regex_syntax::hir::literal::{ExtractKind, Extractor};
use regex_syntax::hir::{Capture, Hir, HirKind, Look, Repetition};

use crate::error::DetectError;
use crate::rules::Rule;
use crate::scanner::ScanRule;

/// Compiled-size cap for one rule. The built-in rules' bounded repetitions (8 KiB of
/// PEM body, JWT segments) need more than regex's 10 MiB default.
pub(crate) const REGEX_SIZE_LIMIT: usize = 64 << 20;

/// Repetitions allowing more than this many items are unbounded in the loose pattern.
const LOOSE_ABOVE: u32 = 64;

/// Literal prefixes are cut to this length: long enough to make a false start rare,
/// short enough that checking a partial prefix at the end of a buffer is cheap.
const START_LITERAL_LEN: usize = 16;

pub(crate) enum Kind {
    Rule {
        rule: &'static Rule,
        /// Finds candidate starts: the pattern with long repetitions unbounded.
        loose: Regex,
        /// The pattern itself, run anchored at a candidate start.
        exact: meta::Regex,
        has_group: bool,
        /// The loose pattern as a lazy DFA, run anchored from a start literal while a
        /// stream waits there: once it is dead no match can begin at that literal, so the
        /// stream need not wait for the longest match to pass.
        prefix: Box<DFA>,
    },
    Exact {
        ac: AhoCorasick,
    },
}

pub(crate) struct Matcher {
    pub(crate) kind: Kind,
    /// The loose pattern, for the scanner's first-pass rule set.
    pub(crate) loose_pattern: String,
    /// Longest possible match, in bytes.
    pub(crate) max_len: usize,
    /// Shortest possible match, in bytes (at least 1).
    pub(crate) min_len: usize,
    pub(crate) starts: Starts,
}

/// A match of a matcher's pattern. `secret` is `None` when the match failed the rule's
/// validation: the search still resumes after it, exactly as a stream would.
pub(crate) struct Hit {
    pub(crate) start: usize,
    pub(crate) end: usize,
    pub(crate) secret: Option<(usize, usize, ScanRule)>,
}

impl Matcher {
    pub(crate) fn for_rule(rule: &'static Rule) -> Result<Matcher, DetectError> {
        let id = rule.id.as_str();
        let hir = regex_syntax::ParserBuilder::new()
            .utf8(false)
            .build()
            .parse(rule.pattern)
            .map_err(|e| DetectError::Syntax {
                rule: id,
                source: Box::new(e),
            })?;
        let props = hir.properties();
        let max_len = props
            .maximum_len()
            .ok_or(DetectError::UnboundedPattern { rule: id })?;
        let min_len = props.minimum_len().unwrap_or(0);
        if min_len == 0 {
            return Err(DetectError::EmptyMatch { rule: id });
        }
        if props.look_set().contains(Look::Start) {
            return Err(DetectError::AnchoredPattern { rule: id });
        }
        let pattern_error = |source| DetectError::Pattern {
            rule: id,
            source: Box::new(source),
        };
        let loose_pattern = loosen(&hir).to_string();
        let loose = RegexBuilder::new(&loose_pattern)
            .size_limit(REGEX_SIZE_LIMIT)
            .build()
            .map_err(pattern_error)?;
        let exact = meta::Regex::builder()
            .configure(meta::Config::new().nfa_size_limit(Some(REGEX_SIZE_LIMIT)))
            .build_from_hir(&hir)
            .map_err(|e| DetectError::Exact {
                rule: id,
                source: Box::new(e),
            })?;
        let has_group = exact.captures_len() > 1;
        let prefix = DFA::builder()
            .syntax(syntax::Config::new().utf8(false))
            .thompson(
                thompson::Config::new()
                    .utf8(false)
                    .nfa_size_limit(Some(REGEX_SIZE_LIMIT)),
            )
            .build(&loose_pattern)
            .map_err(|e| DetectError::Prefix {
                rule: id,
                source: Box::new(e),
            })?;
        let mut extractor = Extractor::new();
        extractor
            .kind(ExtractKind::Prefix)
            .limit_literal_len(START_LITERAL_LEN);
        let seq = extractor.extract(&hir);
        let literals: Option<Vec<Vec<u8>>> = seq
            .literals()
            .map(|lits| lits.iter().map(|l| l.as_bytes().to_vec()).collect());
        Ok(Matcher {
            kind: Kind::Rule {
                rule,
                loose,
                exact,
                has_group,
                prefix: Box::new(prefix),
            },
            loose_pattern,
            max_len,
            min_len,
            starts: Starts::new(literals)?,
        })
    }

    /// `secrets` are non-empty; the scanner checks that.
    pub(crate) fn for_secrets(secrets: &[&[u8]]) -> Result<Matcher, DetectError> {
        let ac = AhoCorasick::builder()
            .match_kind(MatchKind::LeftmostLongest)
            .build(secrets)?;
        let max_len = secrets.iter().map(|s| s.len()).max().unwrap_or(0);
        let min_len = secrets.iter().map(|s| s.len()).min().unwrap_or(1).max(1);
        let literals = secrets
            .iter()
            .map(|s| s[..s.len().min(START_LITERAL_LEN)].to_vec())
            .collect();
        Ok(Matcher {
            kind: Kind::Exact { ac },
            loose_pattern: String::new(),
            max_len,
            min_len,
            starts: Starts::new(Some(literals))?,
        })
    }

    /// Runs the anchored DFA of the loose pattern from a start literal at `at` (absolute;
    /// `buf` holds the text from `base`), resuming from `wait` when it was run before, over
    /// the bytes up to the end of `buf`.
    pub(crate) fn feed_prefix(
        &self,
        cache: &mut Option<Cache>,
        buf: &[u8],
        base: usize,
        at: usize,
        wait: Option<Wait>,
    ) -> Prefix {
        let Kind::Rule { prefix, .. } = &self.kind else {
            return Prefix::Unknown;
        };
        let cache = cache.get_or_insert_with(|| prefix.create_cache());
        // State ids do not survive the cache being cleared: start again from `at` then.
        let resumed = wait.filter(|w| w.clears == cache.clear_count());
        let (mut state, next) = match resumed {
            Some(w) => (w.state, w.next),
            None => {
                let input = regex_automata::Input::new(buf)
                    .range(at - base..)
                    .anchored(Anchored::Yes);
                match prefix.start_state_forward(cache, &input) {
                    Ok(state) => (state, at),
                    Err(_) => return Prefix::Unknown,
                }
            }
        };
        for &byte in buf.get(next - base..).unwrap_or_default() {
            state = match prefix.next_state(cache, state, byte) {
                Ok(state) => state,
                Err(_) => return Prefix::Unknown,
            };
            // A match seen (or a state the DFA gives up in): the usual wait decides.
            if state.is_match() || state.is_quit() || state.is_unknown() {
                return Prefix::Unknown;
            }
            if state.is_dead() {
                return Prefix::Dead;
            }
        }
        Prefix::Alive(Wait {
            state,
            next: base + buf.len(),
            clears: cache.clear_count(),
        })
    }

    /// A fresh DFA cache slot for [`feed_prefix`](Self::feed_prefix).
    pub(crate) fn no_cache() -> Option<Cache> {
        None
    }

    /// The leftmost match starting at or after `at`, with `hay[..at]` as look-behind
    /// context.
    pub(crate) fn find_at(&self, hay: &[u8], at: usize) -> Option<Hit> {
        match &self.kind {
            Kind::Rule {
                rule,
                loose,
                exact,
                has_group,
                ..
            } => {
                let mut at = at;
                let (start, end, secret) = loop {
                    let s = loose.find_at(hay, at)?.start();
                    let input = meta_input(hay, s);
                    if *has_group {
                        let mut caps = exact.create_captures();
                        exact.search_captures(&input, &mut caps);
                        if let Some(whole) = caps.get_match() {
                            let secret = caps.get_group(1).unwrap_or(whole.span());
                            break (whole.start(), whole.end(), (secret.start, secret.end));
                        }
                    } else if let Some(m) = exact.search(&input) {
                        break (m.start(), m.end(), (m.start(), m.end()));
                    }
                    // The loose pattern matches here but the exact one does not (a segment
                    // over its bound, say): look further on.
                    at = s + 1;
                };
                let valid = rule.validate.is_none_or(|v| v(&hay[secret.0..secret.1]));
                Some(Hit {
                    start,
                    end,
                    secret: valid.then_some((secret.0, secret.1, ScanRule::Builtin(rule.id))),
                })
            }
            Kind::Exact { ac } => {
                let m = ac.find(Input::new(hay).span(at..hay.len()))?;
                Some(Hit {
                    start: m.start(),
                    end: m.end(),
                    secret: Some((
                        m.start(),
                        m.end(),
                        ScanRule::Configured(m.pattern().as_usize()),
                    )),
                })
            }
        }
    }
}

/// A search for a match starting exactly at `start`, with the bytes before it as
/// look-behind context.
fn meta_input(hay: &[u8], start: usize) -> regex_automata::Input<'_> {
    regex_automata::Input::new(hay)
        .range(start..)
        .anchored(Anchored::Yes)
}

/// `hir` with every repetition of more than [`LOOSE_ABOVE`] items unbounded: it matches a
/// superset of `hir` (at every start, with the same look-around), without counting.
fn loosen(hir: &Hir) -> Hir {
    match hir.kind() {
        HirKind::Repetition(rep) => Hir::repetition(Repetition {
            min: rep.min,
            max: rep.max.filter(|&m| m <= LOOSE_ABOVE),
            greedy: rep.greedy,
            sub: Box::new(loosen(&rep.sub)),
        }),
        HirKind::Capture(cap) => Hir::capture(Capture {
            index: cap.index,
            name: cap.name.clone(),
            sub: Box::new(loosen(&cap.sub)),
        }),
        HirKind::Concat(subs) => Hir::concat(subs.iter().map(loosen).collect()),
        HirKind::Alternation(subs) => Hir::alternation(subs.iter().map(loosen).collect()),
        _ => hir.clone(),
    }
}

/// Where the DFA of a wait at a start literal stands.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Wait {
    state: LazyStateID,
    /// The absolute offset of the next byte to feed it.
    next: usize,
    /// The cache's clear count when `state` was taken.
    clears: usize,
}

/// What the bytes so far say about a match at a start literal.
pub(crate) enum Prefix {
    /// No match can begin there, whatever follows.
    Dead,
    /// One still could; feed the next bytes from here.
    Alive(Wait),
    /// Not known (no DFA for this matcher, a match already seen): wait as before.
    Unknown,
}

/// A place a match could begin.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum PossibleStart {
    /// A whole start literal is there: only the bytes up to the longest match settle it.
    Literal(usize),
    /// The end of the buffer is the beginning of a start literal: the next byte settles it.
    CutOff(usize),
}

/// Where a match could begin: at a start literal, or at a tail of the buffer that is the
/// beginning of one. `ac: None` means the pattern has no usable literal prefix, so any
/// position could begin a match.
pub(crate) struct Starts {
    ac: Option<AhoCorasick>,
    /// Every proper, non-empty prefix of every start literal.
    partials: HashSet<Vec<u8>>,
    longest: usize,
}

impl Starts {
    fn new(literals: Option<Vec<Vec<u8>>>) -> Result<Starts, DetectError> {
        let literals = literals.filter(|l| !l.is_empty() && l.iter().all(|l| !l.is_empty()));
        let Some(literals) = literals else {
            return Ok(Starts {
                ac: None,
                partials: HashSet::new(),
                longest: 0,
            });
        };
        let partials = literals
            .iter()
            .flat_map(|l| (1..l.len()).map(|n| l[..n].to_vec()))
            .collect();
        let longest = literals.iter().map(Vec::len).max().unwrap_or(0);
        let ac = AhoCorasick::builder()
            .match_kind(MatchKind::LeftmostFirst)
            .build(&literals)?;
        Ok(Starts {
            ac: Some(ac),
            partials,
            longest,
        })
    }

    /// The first position in `from..before` at which a match could begin once more bytes
    /// arrive after `hay`.
    pub(crate) fn first_possible(
        &self,
        hay: &[u8],
        from: usize,
        before: usize,
    ) -> Option<PossibleStart> {
        if from >= before {
            return None;
        }
        let Some(ac) = &self.ac else {
            return Some(PossibleStart::Literal(from));
        };
        let whole = ac
            .find(Input::new(hay).span(from..hay.len()))
            .map(|m| m.start())
            .filter(|&p| p < before);
        // A literal cut off by the end of `hay` starts within its last `longest - 1` bytes.
        let tail_from = from.max(hay.len().saturating_sub(self.longest.saturating_sub(1)));
        let partial =
            (tail_from..before.min(hay.len())).find(|&p| self.partials.contains(&hay[p..]));
        match (whole, partial) {
            (Some(w), Some(p)) if p < w => Some(PossibleStart::CutOff(p)),
            (Some(w), _) => Some(PossibleStart::Literal(w)),
            (None, p) => p.map(PossibleStart::CutOff),
        }
    }

    #[cfg(test)]
    pub(crate) fn has_literals(&self) -> bool {
        self.ac.is_some()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rules::BUILTIN;

    #[test]
    fn every_builtin_rule_is_bounded_and_has_start_literals() {
        for rule in BUILTIN {
            let m = Matcher::for_rule(rule).unwrap();
            assert!(m.max_len <= 8 * 1024 + 256, "{}: {}", rule.id, m.max_len);
            assert!(m.starts.has_literals(), "{} has no start literals", rule.id);
        }
    }

    #[test]
    fn possible_starts() {
        let s = Starts::new(Some(vec![b"sk-".to_vec(), b"AKIA".to_vec()])).unwrap();
        use PossibleStart::{CutOff, Literal};
        assert_eq!(s.first_possible(b"hello world", 0, 11), None);
        assert_eq!(s.first_possible(b"hello sk-x", 0, 10), Some(Literal(6)));
        assert_eq!(s.first_possible(b"hello AK", 0, 8), Some(CutOff(6)));
        assert_eq!(s.first_possible(b"hello s", 0, 7), Some(CutOff(6)));
        assert_eq!(s.first_possible(b"hello s", 0, 6), None);
        assert_eq!(s.first_possible(b"sk- sk-", 1, 7), Some(Literal(4)));
        assert_eq!(s.first_possible(b"sk- sk", 1, 6), Some(CutOff(4)));
    }
}
