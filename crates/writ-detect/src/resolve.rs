//! Overlapping candidates from different matchers become non-overlapping findings.
//!
//! Candidates are taken in order of start (then priority, then longest first). One that
//! lies wholly inside what earlier findings cover is dropped; one that sticks out past
//! them becomes a finding for the part that sticks out, so every byte any matcher flagged
//! is redacted exactly once. The decision for a candidate depends only on the findings
//! before it, which is what lets a stream make it as soon as no earlier-starting
//! candidate can still appear.

use std::cmp::Reverse;

use crate::scanner::Finding;
use crate::search::Candidate;

/// The order candidates are resolved in.
pub(crate) fn sort(candidates: &mut [Candidate]) {
    candidates.sort_by_key(|c| (c.start, c.priority, Reverse(c.end)));
}

/// The findings of a whole text's candidates: sorted, then resolved in that order.
pub(crate) fn findings(mut candidates: Vec<Candidate>) -> Vec<Finding> {
    sort(&mut candidates);
    let mut resolver = Resolver::default();
    candidates
        .into_iter()
        .filter_map(|c| resolver.take(c))
        .collect()
}

/// Resolution state: how far findings so far reach.
#[derive(Default)]
pub(crate) struct Resolver {
    covered_to: usize,
}

impl Resolver {
    /// The finding `candidate` adds, given every earlier-sorted candidate was taken.
    pub(crate) fn take(&mut self, candidate: Candidate) -> Option<Finding> {
        if candidate.end <= self.covered_to {
            return None;
        }
        let start = candidate.start.max(self.covered_to);
        self.covered_to = candidate.end;
        Some(Finding {
            rule: candidate.rule,
            start,
            end: candidate.end,
        })
    }
}
