//! The secret scanner: finds credentials in a byte string by rule and by exact match
//! against the secrets the gateway holds, and redacts them.
//!
//! A scan runs in two passes. One automaton over all rules' patterns (a regex set) says
//! which rules match anywhere; only those run their own regex for positions, each hit
//! confirmed by the rule's exact pattern anchored at its start (and capture groups read,
//! when a rule's secret is part of a larger match such as `password=…`); `matcher.rs`
//! says why the search and the confirmation use different patterns. Configured secrets
//! are found with one Aho-Corasick automaton, leftmost-longest, so an upstream key the
//! gateway injects is always found whatever shape it has. Where matches overlap, see
//! `resolve.rs`: every flagged byte is redacted once.

use regex_automata::nfa::thompson::WhichCaptures;
use regex_automata::util::syntax;
use regex_automata::{Input, MatchKind, PatternSet, meta};

use crate::error::DetectError;
use crate::matcher::{Matcher, REGEX_SIZE_LIMIT};
use crate::resolve;
use crate::rules::{Rule, RuleId};
use crate::search::{self, CONTEXT};

/// Longest configured secret accepted. A stream holds back up to the longest match of
/// any matcher, so this bounds that too; a service-account private key is under 2 KiB.
pub const MAX_CONFIGURED_SECRET_LEN: usize = 8 * 1024;

/// Replaces a configured secret when redacting. The label is not shown, so output names
/// no upstream; the [`Finding`] carries the label's index for the audit record.
pub const CONFIGURED_REDACTION: &str = "[REDACTED:configured-secret]";

/// The id of findings of configured secrets, alongside the [`RuleId`] ids.
pub const CONFIGURED_ID: &str = "configured-secret";

/// Which pattern matched a secret: a built-in rule or a configured secret. Its
/// [`id`](ScanRule::id) is kebab-case (`openai-api-key`), so it is never mistaken for the
/// gateway's detector kinds, which are snake_case (`prompt_secret`): a detector says what
/// kind of attack was seen, a scan rule which pattern matched.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum ScanRule {
    /// A built-in rule.
    Builtin(RuleId),
    /// Exact match of a configured secret: its index in the `exact_secrets` given to
    /// [`Scanner::new`] (see [`Scanner::configured_label`]).
    Configured(usize),
}

impl ScanRule {
    /// The stable id: the rule's, or `configured-secret`.
    pub fn id(self) -> &'static str {
        match self {
            ScanRule::Builtin(id) => id.as_str(),
            ScanRule::Configured(_) => CONFIGURED_ID,
        }
    }

    /// Whether findings of this rule are redacted whatever the operator's mode: the
    /// gateway's own upstream credentials and writs never reach a client.
    pub fn always_redacted(self) -> bool {
        matches!(
            self,
            ScanRule::Configured(_) | ScanRule::Builtin(RuleId::Writ)
        )
    }
}

/// A secret found at `start..end` (byte offsets in the scanned text, or in the whole
/// stream for a [`StreamRedactor`](crate::stream::StreamRedactor)).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Finding {
    /// Which pattern matched.
    pub rule: ScanRule,
    /// First byte.
    pub start: usize,
    /// One past the last byte.
    pub end: usize,
}

/// A rule set this small keeps the regex engine's literal prefilter (see [`Scanner::new`]).
const FEW_RULES: usize = 2;

/// A compiled set of rules and configured secrets. Cheap to share (`Arc`) across
/// requests and threads; scanning takes `&self`.
pub struct Scanner {
    /// Configured secrets first (if any), then rules in priority order.
    pub(crate) matchers: Vec<Matcher>,
    /// For each matcher, its index in `set`; `None` for the configured-secret matcher.
    pub(crate) set_index: Vec<Option<usize>>,
    /// Every rule's loose pattern, pattern `k` for rule `k`: `regex::bytes::RegexSet`'s
    /// configuration (see [`Scanner::new`]).
    set: meta::Regex,
    rules: Vec<&'static Rule>,
    labels: Vec<String>,
    max_match_len: usize,
    /// The shortest text any matcher can match: a shorter one holds no secret.
    min_match_len: usize,
    /// The shortest text any rule can match (`usize::MAX` without rules).
    min_rule_match_len: usize,
}

impl std::fmt::Debug for Scanner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never the secrets themselves.
        f.debug_struct("Scanner")
            .field(
                "rules",
                &self.rules.iter().map(|r| r.id).collect::<Vec<_>>(),
            )
            .field("configured", &self.labels)
            .finish_non_exhaustive()
    }
}

impl Scanner {
    /// Compiles `rules` (usually [`rules::BUILTIN`](crate::rules::BUILTIN), or a
    /// filtered subset of it) and the configured secrets, given as `(label, secret)` pairs.
    pub fn new(
        rules: impl IntoIterator<Item = &'static Rule>,
        exact_secrets: &[(&str, &str)],
    ) -> Result<Scanner, DetectError> {
        let rules: Vec<&'static Rule> = rules.into_iter().collect();
        let mut matchers = Vec::with_capacity(rules.len() + 1);
        let mut set_index = Vec::with_capacity(rules.len() + 1);
        let mut labels = Vec::with_capacity(exact_secrets.len());
        if !exact_secrets.is_empty() {
            let mut secrets = Vec::with_capacity(exact_secrets.len());
            for &(label, secret) in exact_secrets {
                if secret.is_empty() {
                    return Err(DetectError::EmptySecret {
                        label: label.to_owned(),
                    });
                }
                if secret.len() > MAX_CONFIGURED_SECRET_LEN {
                    return Err(DetectError::SecretTooLong {
                        label: label.to_owned(),
                        len: secret.len(),
                        max: MAX_CONFIGURED_SECRET_LEN,
                    });
                }
                labels.push(label.to_owned());
                secrets.push(secret.as_bytes());
            }
            matchers.push(Matcher::for_secrets(&secrets)?);
            set_index.push(None);
        }
        for (k, &rule) in rules.iter().enumerate() {
            matchers.push(Matcher::for_rule(rule)?);
            set_index.push(Some(k));
        }
        let loose: Vec<&str> = matchers
            .iter()
            .filter(|m| !m.loose_pattern.is_empty())
            .map(|m| m.loose_pattern.as_str())
            .collect();
        // What `regex::bytes::RegexSetBuilder` builds (every match of every pattern, bytes
        // not UTF-8, no captures, its 2 MiB lazy-DFA cache), bar the literal prefilter:
        // with hundreds of start literals, most of them case variants, it fires on most
        // bytes of prose or JSON and made the search about twice as slow. A prefilter
        // only ever skips to where a match may start; which rules match is the same.
        // A set of a rule or two (the gateway's own writs) has a literal or two to look
        // for, which a prefilter finds at memory speed: it is kept there.
        let set = meta::Regex::builder()
            .configure(
                meta::Config::new()
                    .match_kind(MatchKind::All)
                    .utf8_empty(false)
                    .which_captures(WhichCaptures::None)
                    .nfa_size_limit(Some(REGEX_SIZE_LIMIT.saturating_mul(rules.len().max(1))))
                    .hybrid_cache_capacity(2 << 20)
                    .auto_prefilter(rules.len() <= FEW_RULES),
            )
            .syntax(syntax::Config::new().utf8(false))
            .build_many(&loose)
            .map_err(|e| DetectError::RuleSet {
                source: Box::new(e),
            })?;
        let max_match_len = matchers.iter().map(|m| m.max_len).max().unwrap_or(0);
        let min_match_len = matchers
            .iter()
            .map(|m| m.min_len)
            .min()
            .unwrap_or(usize::MAX);
        let min_rule_match_len = matchers
            .iter()
            .zip(&set_index)
            .filter(|(_, k)| k.is_some())
            .map(|(m, _)| m.min_len)
            .min()
            .unwrap_or(usize::MAX);
        Ok(Scanner {
            min_rule_match_len,
            matchers,
            set_index,
            set,
            rules,
            labels,
            max_match_len,
            min_match_len,
        })
    }

    /// A scanner with every built-in rule and no configured secrets.
    pub fn builtin() -> Result<Scanner, DetectError> {
        Scanner::new(crate::rules::BUILTIN, &[])
    }

    /// The rules this scanner applies, in priority order.
    pub fn rules(&self) -> impl Iterator<Item = &'static Rule> + '_ {
        self.rules.iter().copied()
    }

    /// The label given with configured secret `index`.
    pub fn configured_label(&self, index: usize) -> Option<&str> {
        self.labels.get(index).map(String::as_str)
    }

    /// The longest text any rule or configured secret can match. A
    /// [`StreamRedactor`](crate::stream::StreamRedactor) holds back at most this plus
    /// eight bytes of context between calls.
    pub fn max_match_len(&self) -> usize {
        self.max_match_len
    }

    /// The shortest text any rule or configured secret can match: [`scan`](Self::scan)
    /// finds nothing in a shorter one without searching it.
    pub fn min_match_len(&self) -> usize {
        self.min_match_len
    }

    /// Bytes a stream may hold back between calls: see
    /// [`StreamRedactor`](crate::stream::StreamRedactor).
    pub fn max_held_back(&self) -> usize {
        self.max_match_len + 2 * CONTEXT
    }

    /// What replaces a finding of `rule` when redacting: the rule's marker, `[REDACTED:<id>]`.
    pub fn redaction(&self, rule: ScanRule) -> &'static str {
        match rule {
            ScanRule::Builtin(id) => crate::rules::builtin(id).redaction,
            ScanRule::Configured(_) => CONFIGURED_REDACTION,
        }
    }

    /// The matchers of configured secrets, which the rule set does not cover.
    pub(crate) fn exact_matchers(&self) -> std::ops::Range<usize> {
        0..self.matchers.len() - self.rules.len()
    }

    /// The matcher of rule `k`, pattern `k` of the rule set: the rules follow the
    /// configured secrets.
    pub(crate) fn rule_matcher(&self, k: usize) -> usize {
        self.matchers.len() - self.rules.len() + k
    }

    /// The shortest text any rule (not a configured secret) can match.
    pub(crate) fn min_rule_match_len(&self) -> usize {
        self.min_rule_match_len
    }

    /// Whether any rule's loose pattern matches anywhere in `hay`: the cheap
    /// question, a search that stops at the first match of any rule.
    pub(crate) fn any_rule_matches(&self, hay: &[u8]) -> bool {
        self.set.is_match(Input::new(hay))
    }

    /// The rules whose loose pattern matches in `hay` at or after `at`, `hay[..at]` read
    /// as look-behind context: pattern `k` for rule `k`.
    pub(crate) fn rules_matching(&self, hay: &[u8], at: usize) -> PatternSet {
        let mut present = PatternSet::new(self.set.pattern_len());
        let input = Input::new(hay).span(at..hay.len());
        self.set.which_overlapping_matches(&input, &mut present);
        present
    }

    /// Every secret in `text`, in order, non-overlapping.
    pub fn scan(&self, text: &[u8]) -> Vec<Finding> {
        if text.len() < self.min_match_len {
            // Too short for any match (a path segment, a header value): nothing to search.
            return Vec::new();
        }
        let mut candidates = Vec::new();
        search::whole_text(self, text, &mut candidates);
        resolve::findings(candidates)
    }

    /// `text` with every finding replaced by `[REDACTED:<id>]`, and the findings
    /// (offsets in `text`).
    pub fn redact(&self, text: &[u8]) -> (Vec<u8>, Vec<Finding>) {
        let (out, findings) = self.redact_where(text, |_| true);
        (out.into_owned(), findings)
    }

    /// Like [`redact`](Self::redact), but replaces only the findings `redact` picks;
    /// every finding is returned. Text with nothing to replace is returned borrowed.
    pub fn redact_where<'t>(
        &self,
        text: &'t [u8],
        redact: fn(ScanRule) -> bool,
    ) -> (std::borrow::Cow<'t, [u8]>, Vec<Finding>) {
        let findings = self.scan(text);
        if !findings.iter().any(|f| redact(f.rule)) {
            return (std::borrow::Cow::Borrowed(text), findings);
        }
        let mut out = Vec::with_capacity(text.len());
        let mut cursor = 0;
        for f in findings.iter().filter(|f| redact(f.rule)) {
            out.extend_from_slice(&text[cursor..f.start]);
            out.extend_from_slice(self.redaction(f.rule).as_bytes());
            cursor = f.end;
        }
        out.extend_from_slice(&text[cursor..]);
        (std::borrow::Cow::Owned(out), findings)
    }

    /// Whether `text` contains a configured secret or matches any rule.
    pub fn contains_secret(&self, text: &[u8]) -> bool {
        !self.scan(text).is_empty()
    }
}

// Shared across request tasks behind an `Arc`.
const _: () = {
    const fn shareable<T: Send + Sync>() {}
    shareable::<Scanner>();
};

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rules::BUILTIN;

    fn scanner() -> Scanner {
        Scanner::new(BUILTIN, &[("openai-prod", "upstream-secret-value-1234")]).unwrap()
    }

    #[test]
    fn configured_secret_is_found_and_labelled() {
        let s = scanner();
        let text = b"the key is upstream-secret-value-1234, see";
        let (out, findings) = s.redact(text);
        assert_eq!(
            findings,
            vec![Finding {
                rule: ScanRule::Configured(0),
                start: 11,
                end: 37
            }]
        );
        assert_eq!(s.configured_label(0), Some("openai-prod"));
        assert_eq!(out, b"the key is [REDACTED:configured-secret], see");
    }

    #[test]
    fn specific_rule_wins_over_generic_at_same_start() {
        let s = scanner();
        let text = b"token=ghp_EXAMPLE0123456789abcdefEXAMPLE0123456";
        let findings = s.scan(text);
        assert_eq!(findings.len(), 1);
        assert_eq!(findings[0].rule, ScanRule::Builtin(RuleId::GithubToken));
        assert_eq!(findings[0].start, 6);
    }

    #[test]
    fn overlong_tokens() {
        let s = scanner();
        // A header over the JWT rule's 1 KiB bound is no JWT; the real one after it is.
        let jwt = "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJ4In0.c2lnbmF0dXJlMDEyMzQ1Njc4OQ";
        let text = format!("eyJ{}.eyJzdWIiOiJ4In0.c2ln {jwt}", "A".repeat(1100));
        let found = s.scan(text.as_bytes());
        assert_eq!(found.len(), 1);
        assert_eq!(&text[found[0].start..found[0].end], jwt);
        // A PEM body over 8 KiB: the header and the first 8 KiB go.
        let pem = format!("-----BEGIN PRIVATE KEY-----\n{}", "QUJD".repeat(2300));
        let (out, found) = s.redact(pem.as_bytes());
        assert_eq!(found[0].rule, ScanRule::Builtin(RuleId::PrivateKey));
        // The 27-byte header line, then 8192 body bytes (the newline among them).
        assert_eq!(found[0].end - found[0].start, 27 + 8192);
        assert_eq!(
            out,
            [b"[REDACTED:private-key]", &pem.as_bytes()[27 + 8192..]].concat()
        );
    }

    #[test]
    fn bad_configured_secrets_are_refused() {
        assert!(matches!(
            Scanner::new(BUILTIN, &[("x", "")]),
            Err(DetectError::EmptySecret { .. })
        ));
        let long = "a".repeat(MAX_CONFIGURED_SECRET_LEN + 1);
        assert!(matches!(
            Scanner::new(BUILTIN, &[("x", &long)]),
            Err(DetectError::SecretTooLong { .. })
        ));
    }

    #[test]
    fn texts_shorter_than_any_match_are_not_searched_and_the_shortest_is_found() {
        // The shortest built-in match: a JWT's `eyJ`, 8 bytes, a dot and 2 bytes.
        assert_eq!(scanner().min_match_len(), 14);
        // A configured secret shorter than every rule's shortest match lowers the bound,
        // and a text of exactly that length is still searched.
        let short = Scanner::new(BUILTIN, &[("x", "abcdefgh")]).unwrap();
        assert_eq!(short.min_match_len(), 8);
        assert_eq!(
            short.scan(b"abcdefgh"),
            vec![Finding {
                rule: ScanRule::Configured(0),
                start: 0,
                end: 8
            }]
        );
        assert!(short.scan(b"abcdefg").is_empty());
        // With nothing to find, nothing is ever found.
        let empty = Scanner::new(std::iter::empty(), &[]).unwrap();
        assert!(empty.scan(b"eyJhbGciOiJ.Ab and more text").is_empty());
    }

    #[test]
    fn debug_does_not_print_secrets() {
        let printed = format!("{:?}", scanner());
        assert!(!printed.contains("upstream-secret-value"));
        assert!(printed.contains("openai-prod"));
    }
}
