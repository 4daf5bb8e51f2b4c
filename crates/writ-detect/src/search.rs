//! The search both [`Scanner::scan`](crate::scanner::Scanner::scan) and the
//! [`StreamRedactor`](crate::stream::StreamRedactor) run: each matcher's leftmost
//! matches, one after another, over a buffer that may be only a window of the text.
//!
//! Over a window the question is which matches are *final* — the same as they would be
//! over the whole text. A match of a pattern whose longest match is `L` bytes, starting at
//! `s`, depends only on the bytes from `s - CONTEXT` to `s + L + CONTEXT` (look-around
//! reads at most `CONTEXT` bytes either side). So once the window reaches that far the
//! match is final; before then the matcher waits at `s`. Positions that no match could
//! begin at — no start literal there, nor a cut-off beginning of one at the end of the
//! window — are passed over, which is what keeps a stream of prose flowing with only a
//! few bytes held back. Since whole-text scanning is this same search with nothing
//! still to come, a stream and a whole-text scan agree by construction.
//! [`whole_text`] is that search with `eof` from the start, written out without the
//! waiting a stream needs; a unit test holds the two to the same candidates.

use regex_automata::hybrid::dfa::Cache;
use regex_automata::{PatternID, PatternSet};

use crate::matcher::{Matcher, PossibleStart, Prefix, Wait};
use crate::scanner::{ScanRule, Scanner};

/// Bytes of look-around context a pattern may read before its start or after its end.
/// ASCII `\b` reads one; four covers any UTF-8 character.
pub(crate) const CONTEXT: usize = 4;

/// A final match of one matcher, before overlaps with other matchers are resolved.
/// Positions are absolute offsets in the text.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Candidate {
    pub(crate) start: usize,
    pub(crate) end: usize,
    pub(crate) rule: ScanRule,
    /// The matcher's index: lower wins when two candidates start at the same byte.
    pub(crate) priority: usize,
}

/// Where each matcher's next search begins: every match of matcher `i` not yet reported
/// starts at or after `resume[i]`. A matcher waiting at a start literal or an unsettled
/// match is not searched again before the window's end reaches `recheck_at[i]`: nothing
/// about it can change before then, and re-searching the held window on every small chunk
/// would make a stream quadratic in its chunk count.
pub(crate) struct Search {
    resume: Vec<usize>,
    recheck_at: Vec<usize>,
    /// For a matcher waiting at a start literal (`resume`), its DFA's progress: when it
    /// dies the wait ends early (`Matcher::feed_prefix`).
    waits: Vec<Option<Wait>>,
    caches: Vec<Option<Cache>>,
}

/// Appends to `out` every final candidate in a whole text: exactly what
/// `Search::new(scanner).advance(scanner, text, 0, true, out)` appends.
///
/// With every byte there, no matcher waits, so `advance`'s per-matcher state (where to
/// resume, when to recheck, the DFAs of waits) is never read: each matcher's matches are
/// simply taken one after another from offset 0, and only the matchers that can match
/// are visited. The first pass asks the rule set only whether any rule matches (a
/// search that stops early and needs no overlapping state); only then which ones, a
/// second search over the text. Over the clean text most requests and responses carry,
/// that is one search and no allocation.
pub(crate) fn whole_text(scanner: &Scanner, text: &[u8], out: &mut Vec<Candidate>) {
    // A candidate is a match of a matcher's exact pattern, so no matcher whose shortest
    // match is longer than the text need run, nor the set if that holds for every rule
    // (a configured secret longer than a header value, say).
    let present = (text.len() >= scanner.min_rule_match_len() && scanner.any_rule_matches(text))
        .then(|| scanner.rules_matching(text, 0));
    // Configured secrets always, then the rules the set found, each in matcher order.
    let rules = present.iter().flat_map(|p| p.iter());
    let matching = scanner
        .exact_matchers()
        .chain(rules.map(|k| scanner.rule_matcher(k.as_usize())));
    for i in matching {
        let matcher = &scanner.matchers[i];
        if text.len() < matcher.min_len {
            continue;
        }
        let mut resume = 0;
        while resume < text.len() {
            let Some(hit) = matcher.find_at(text, resume) else {
                break;
            };
            if let Some((start, end, rule)) = hit.secret {
                out.push(Candidate {
                    start,
                    end,
                    rule,
                    priority: i,
                });
            }
            // Patterns never match the empty string, so this always moves forward.
            resume = hit.end.max(hit.start + 1);
        }
    }
}

/// Whether rule `k` is among the rules `present` says match.
fn in_rule_set(present: &PatternSet, k: usize) -> bool {
    PatternID::new(k).is_ok_and(|id| present.contains(id))
}

impl Search {
    pub(crate) fn new(scanner: &Scanner) -> Search {
        let n = scanner.matchers.len();
        Search {
            resume: vec![0; n],
            recheck_at: vec![0; n],
            waits: vec![None; n],
            caches: (0..n).map(|_| Matcher::no_cache()).collect(),
        }
    }

    /// Runs every matcher over `buf`, which holds the text's bytes from absolute offset
    /// `base`, appending final candidates to `out`. `eof` says no bytes follow `buf`.
    ///
    /// Returns the frontier: every candidate not yet appended starts at or after it.
    /// `buf` must hold `CONTEXT` bytes before the previous frontier (or start at 0).
    pub(crate) fn advance(
        &mut self,
        scanner: &Scanner,
        buf: &[u8],
        base: usize,
        eof: bool,
        out: &mut Vec<Candidate>,
    ) -> usize {
        let end = base + buf.len();
        // A wait at a start literal ends as soon as no match can begin there: that is what
        // keeps prose after `token` or `key` from being held for the rule's longest match.
        for (i, matcher) in scanner.matchers.iter().enumerate() {
            let Some(wait) = self.waits[i].take() else {
                continue;
            };
            if eof || end >= self.recheck_at[i] {
                continue;
            }
            let at = self.resume[i];
            match matcher.feed_prefix(&mut self.caches[i], buf, base, at, Some(wait)) {
                Prefix::Dead => {
                    self.resume[i] = at + 1;
                    self.recheck_at[i] = 0;
                }
                Prefix::Alive(wait) => self.waits[i] = Some(wait),
                Prefix::Unknown => {}
            }
        }
        let active: Vec<bool> = self.recheck_at.iter().map(|&r| eof || end >= r).collect();
        // First pass: one automaton over the rest of the window says which rules can match
        // at all; the others skip their own search.
        let set_from = (0..scanner.matchers.len())
            .filter(|&i| active[i] && scanner.set_index[i].is_some())
            .map(|i| self.resume[i])
            .min()
            .filter(|&from| from < end);
        let present = set_from.map(|from| scanner.rules_matching(buf, from - base));
        for (i, matcher) in scanner.matchers.iter().enumerate() {
            if !active[i] {
                continue;
            }
            let in_set = match scanner.set_index[i] {
                Some(k) => present.as_ref().is_some_and(|p| in_rule_set(p, k)),
                None => true,
            };
            // Once the window reaches here, a match starting at `p` is settled.
            let settled_at = |p: usize| p + matcher.max_len + CONTEXT + 1;
            loop {
                let resume = self.resume[i];
                if resume >= end {
                    self.recheck_at[i] = end + 1;
                    break;
                }
                let hit = if in_set {
                    matcher.find_at(buf, resume - base)
                } else {
                    None
                };
                if !eof {
                    // Starts before `horizon` are settled by the bytes we have; between it and
                    // the hit (or the end) a match could still begin once more bytes come.
                    let horizon = end.saturating_sub(matcher.max_len + CONTEXT);
                    let hit_start = hit.as_ref().map_or(end, |h| base + h.start);
                    let from = resume.max(horizon);
                    match matcher
                        .starts
                        .first_possible(buf, from - base, hit_start - base)
                    {
                        Some(PossibleStart::Literal(p)) => {
                            let at = base + p;
                            match matcher.feed_prefix(&mut self.caches[i], buf, base, at, None) {
                                Prefix::Dead => {
                                    // No match begins here: look on from the next byte.
                                    self.resume[i] = at + 1;
                                    continue;
                                }
                                Prefix::Alive(wait) => self.waits[i] = Some(wait),
                                Prefix::Unknown => self.waits[i] = None,
                            }
                            self.resume[i] = at;
                            self.recheck_at[i] = settled_at(at);
                            break;
                        }
                        Some(PossibleStart::CutOff(p)) => {
                            self.resume[i] = base + p;
                            self.recheck_at[i] = end + 1;
                            break;
                        }
                        None => {}
                    }
                    if hit.is_none() {
                        self.resume[i] = end;
                        self.recheck_at[i] = end + 1;
                        break;
                    }
                    if hit_start >= horizon {
                        // More bytes could still change this match.
                        self.resume[i] = hit_start;
                        self.recheck_at[i] = settled_at(hit_start);
                        break;
                    }
                }
                let Some(hit) = hit else {
                    self.resume[i] = end;
                    break;
                };
                if let Some((start, end, rule)) = hit.secret {
                    out.push(Candidate {
                        start: base + start,
                        end: base + end,
                        rule,
                        priority: i,
                    });
                }
                // Patterns never match the empty string, so this always moves forward.
                self.resume[i] = base + hit.end.max(hit.start + 1);
            }
        }
        if eof {
            end
        } else {
            self.resume.iter().copied().min().unwrap_or(end)
        }
    }
}

#[cfg(test)]
mod tests;
