//! Why a request was denied, in terms its sender can act on: which block refused it, and
//! the largest output cap the writ would allow with everything else unchanged.
//!
//! The answer is the authorizer's, never a reading of the checks' text: the text of a
//! failed check only proposes candidate caps, and each candidate is tried against the
//! writ itself, so a hint can never promise a request the writ would refuse.

use std::time::SystemTime;

use crate::error::Denial;
use crate::facts::RequestFacts;
use crate::verify::{Remember, VerifiedWrit};

/// Most candidate caps tried for one denial, so a denied request costs a few evaluations
/// at most, whatever its writ holds.
const MAX_CANDIDATES: usize = 8;

/// Who can lift a denial: which kind of block refused the request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeniedBy {
    /// The writ is bound to another resource (its RFC 8707 audience) than the request is
    /// at: only a writ minted for this resource can be used here.
    Audience,
    /// The agent's ceiling (block 0): only the operator can widen it.
    Ceiling,
    /// The grants asked for at mint time (block 1): a writ minted with other grants may pass.
    MintGrants,
    /// An attenuation appended by a holder: the writ's issuer must hand over a wider one.
    Attenuation,
    /// No check failed (a run limit, or no allow policy matched).
    Unknown,
}

impl Denial {
    /// The kind of the earliest block whose check failed: the one the sender must get
    /// changed first. A failed audience check comes before all: no grant matters at a
    /// resource the writ is not for.
    pub fn denied_by(&self) -> DeniedBy {
        if self
            .failed_checks
            .iter()
            .any(|(_, rule)| crate::audience::is_audience_check(rule))
        {
            return DeniedBy::Audience;
        }
        match self.failed_checks.iter().map(|(block, _)| *block).min() {
            Some(0) => DeniedBy::Ceiling,
            Some(1) => DeniedBy::MintGrants,
            Some(u32::MAX) | None => DeniedBy::Unknown,
            Some(_) => DeniedBy::Attenuation,
        }
    }
}

impl VerifiedWrit {
    /// After `denial`: the largest output cap this writ allows for `facts` with everything
    /// else unchanged, or `None` when the output cap is not what refused the request (or
    /// finding out would cost more than `max_work` per evaluation).
    pub fn largest_output_cap(
        &self,
        denial: &Denial,
        facts: &RequestFacts,
        now: SystemTime,
        max_work: u64,
    ) -> Option<u64> {
        let mut candidates: Vec<u64> = denial
            .failed_checks
            .iter()
            .filter(|(_, rule)| rule.contains("max_output_tokens("))
            .flat_map(|(_, rule)| caps_in(rule))
            .filter(|&cap| facts.max_output_tokens.is_none_or(|asked| cap < asked))
            .collect();
        candidates.sort_unstable_by(|a, b| b.cmp(a));
        candidates.dedup();
        let mut tried = facts.clone();
        for cap in candidates.into_iter().take(MAX_CANDIDATES) {
            tried.max_output_tokens = Some(cap);
            match self.decide(&tried, now, max_work, Remember::AllowsOnly) {
                Ok(Some(_)) => return Some(cap),
                Ok(None) => return None,
                Err(_) => {}
            }
        }
        None
    }
}

/// Integers compared against in `rule` (`$max_0 <= 500`): the caps it may state.
fn caps_in(rule: &str) -> Vec<u64> {
    rule.split("<=")
        .skip(1)
        .filter_map(|rest| {
            let digits: String = rest
                .trim_start()
                .chars()
                .take_while(char::is_ascii_digit)
                .collect();
            digits.parse().ok()
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn caps_are_the_numbers_compared_against() {
        assert_eq!(
            caps_in(
                r#"check if api("llm"), max_output_tokens($max_0), $max_0 <= 500 or x, $max_1 <= 20"#
            ),
            vec![500, 20]
        );
        assert!(caps_in("check if model($m), $m == \"a\"").is_empty());
    }

    #[test]
    fn the_earliest_failed_block_says_who_can_lift_it() {
        let d = |blocks: &[u32]| Denial {
            failed_checks: blocks.iter().map(|b| (*b, String::new())).collect(),
            run_limit: false,
        };
        assert_eq!(d(&[1, 0]).denied_by(), DeniedBy::Ceiling);
        assert_eq!(d(&[1]).denied_by(), DeniedBy::MintGrants);
        assert_eq!(d(&[3, 2]).denied_by(), DeniedBy::Attenuation);
        assert_eq!(d(&[]).denied_by(), DeniedBy::Unknown);
        let audience = Denial {
            failed_checks: vec![
                (1, r#"check if api("llm")"#.into()),
                (0, r#"check if resource("https://gw/mcp/a")"#.into()),
            ],
            run_limit: false,
        };
        assert_eq!(audience.denied_by(), DeniedBy::Audience);
    }
}
