//! Reading the synthetic corpus under `tests/corpus/`, shared by the corpus and stream
//! property tests.

use writ_detect::{Finding, RuleId, ScanRule, Scanner};

/// The configured secret positives of rule `configured-secret` use.
pub const CONFIGURED: (&str, &str) = ("test-upstream", "writ-test-configured-SECRET-0001");

pub fn scanner() -> Scanner {
    Scanner::new(writ_detect::BUILTIN, &[CONFIGURED]).expect("built-in rules compile")
}

/// A positive sample: the text, and the findings it must give exactly.
pub struct Positive {
    pub line: usize,
    pub text: Vec<u8>,
    pub expected: Vec<Finding>,
}

fn unescape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut chars = s.chars();
    while let Some(c) = chars.next() {
        if c != '\\' {
            out.push(c);
            continue;
        }
        match chars.next() {
            Some('n') => out.push('\n'),
            Some('\\') => out.push('\\'),
            other => panic!("bad escape \\{other:?} in corpus"),
        }
    }
    out
}

fn lines(file: &str) -> impl Iterator<Item = (usize, &str)> {
    file.lines()
        .enumerate()
        .map(|(i, l)| (i + 1, l))
        .filter(|(_, l)| !l.is_empty() && !l.starts_with('#'))
}

pub fn positives() -> Vec<Positive> {
    lines(include_str!("../corpus/positives.txt"))
        .map(|(line, l)| {
            let (rule, text) = l.split_once('\t').expect("rule<TAB>text");
            let detector = if rule == "configured-secret" {
                ScanRule::Configured(0)
            } else {
                ScanRule::Builtin(RuleId::from_id(rule).unwrap_or_else(|| panic!("rule {rule}")))
            };
            let marked = unescape(text);
            let mut plain = Vec::new();
            let mut expected = Vec::new();
            let mut open = None;
            for c in marked.chars() {
                match c {
                    '«' => open = Some(plain.len()),
                    '»' => expected.push(Finding {
                        rule: detector,
                        start: open.take().expect("» without «"),
                        end: plain.len(),
                    }),
                    c => plain.extend_from_slice(c.encode_utf8(&mut [0; 4]).as_bytes()),
                }
            }
            assert!(!expected.is_empty(), "line {line} marks no secret");
            Positive {
                line,
                text: plain,
                expected,
            }
        })
        .collect()
}

pub fn negatives() -> Vec<(usize, Vec<u8>)> {
    lines(include_str!("../corpus/negatives.txt"))
        .map(|(line, l)| (line, unescape(l).into_bytes()))
        .collect()
}
