//! Property: for any input and any chunking, a `StreamRedactor`'s concatenated output and
//! its findings equal `Scanner::redact` of the whole input.

#[path = "support/corpus.rs"]
#[allow(dead_code)]
mod samples;

use std::sync::{Arc, LazyLock};

use proptest::prelude::*;
use writ_detect::{Finding, RuleId, Scanner, StreamRedactor};

static SCANNER: LazyLock<Arc<Scanner>> = LazyLock::new(|| Arc::new(samples::scanner()));
static POSITIVES: LazyLock<Vec<Vec<u8>>> =
    LazyLock::new(|| samples::positives().into_iter().map(|p| p.text).collect());
static NEGATIVES: LazyLock<Vec<Vec<u8>>> =
    LazyLock::new(|| samples::negatives().into_iter().map(|(_, t)| t).collect());
/// Texts where a rule's loose search pattern matches but its exact pattern does not, or
/// matches only a bounded prefix: a JWT header over 1 KiB, a PEM body over 8 KiB.
static OVERLONG: LazyLock<Vec<Vec<u8>>> = LazyLock::new(|| {
    let jwt = format!("eyJ{}.eyJzdWIiOiJ4In0.c2ln", "A".repeat(1100));
    let pem = format!("-----BEGIN PRIVATE KEY-----\n{}", "QUJD".repeat(2300));
    vec![jwt.into_bytes(), pem.into_bytes()]
});

/// Pieces that make streams interesting: whole samples, samples cut short, start literals
/// alone, prose, and arbitrary bytes.
fn piece() -> impl Strategy<Value = Vec<u8>> {
    let n_pos = POSITIVES.len();
    let n_neg = NEGATIVES.len();
    prop_oneof![
        (0..n_pos).prop_map(|i| POSITIVES[i].clone()),
        (0..n_neg).prop_map(|i| NEGATIVES[i].clone()),
        (0..OVERLONG.len()).prop_map(|i| OVERLONG[i].clone()),
        (0..n_pos, any::<prop::sample::Index>()).prop_map(|(i, cut)| {
            let t = &POSITIVES[i];
            t[..cut.index(t.len() + 1)].to_vec()
        }),
        prop::sample::select(vec![
            "sk-",
            "sk-ant-",
            "AKIA",
            "eyJ",
            "writ_",
            "password=",
            "token: ",
            "api-key: ",
            "-----BEGIN PRIVATE KEY-----\n",
            "-----END PRIVATE KEY-----",
            "ghp_",
            "xoxb-",
            "writ-test-configured-",
            "writ-test-configured-SECRET-0001",
            "=",
            ".",
            "\n",
            " ",
        ])
        .prop_map(|s| s.as_bytes().to_vec()),
        "[A-Za-z0-9 _./+=-]{0,60}".prop_map(String::into_bytes),
        prop::collection::vec(any::<u8>(), 0..40),
    ]
}

fn input() -> impl Strategy<Value = Vec<u8>> {
    prop::collection::vec(piece(), 0..12).prop_map(|ps| ps.concat())
}

fn stream(text: &[u8], sizes: &[usize]) -> (Vec<u8>, Vec<Finding>) {
    stream_with(&SCANNER, text, sizes)
}

fn stream_with(scanner: &Arc<Scanner>, text: &[u8], sizes: &[usize]) -> (Vec<u8>, Vec<Finding>) {
    let mut r = StreamRedactor::new(scanner.clone());
    let mut out = Vec::new();
    let mut rest = text;
    let mut i = 0;
    while !rest.is_empty() {
        let n = sizes[i % sizes.len()].min(rest.len());
        out.extend(r.push(&rest[..n]));
        rest = &rest[n..];
        i += 1;
        assert!(r.held_back() <= scanner.max_held_back());
    }
    out.extend(r.finish());
    (out, r.findings().to_vec())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn any_chunking_equals_whole_redaction(
        text in input(),
        sizes in prop::collection::vec(1usize..400, 1..40),
    ) {
        let whole = SCANNER.redact(&text);
        prop_assert_eq!(stream(&text, &sizes), whole);
    }

    #[test]
    fn configured_secret_never_survives(
        before in input(),
        after in input(),
        sizes in prop::collection::vec(1usize..64, 1..10),
    ) {
        let secret = samples::CONFIGURED.1.as_bytes();
        let text = [before.as_slice(), secret, after.as_slice()].concat();
        let (out, _) = stream(&text, &sizes);
        prop_assert!(!out.windows(secret.len()).any(|w| w == secret));
    }
}

#[test]
fn held_back_stays_bounded_on_a_long_stream() {
    let mut r = StreamRedactor::new(SCANNER.clone());
    let mut released = 0;
    let mut pushed = 0;
    // A JWT start followed by a long run that keeps it pending as long as possible.
    for chunk in std::iter::once(b"eyJ".to_vec()).chain(std::iter::repeat_n(vec![b'a'; 100], 500)) {
        pushed += chunk.len();
        released += r.push(&chunk).len();
        assert!(r.held_back() <= SCANNER.max_held_back());
    }
    released += r.finish().len();
    assert_eq!(released, pushed);
}

/// The gateway's own secrets (writs, an upstream key): a set small enough to keep the
/// regex engine's literal prefilter.
static OWN: LazyLock<Arc<Scanner>> = LazyLock::new(|| {
    Arc::new(
        Scanner::new(
            [writ_detect::rules::builtin(RuleId::Writ)],
            &[samples::CONFIGURED],
        )
        .expect("the writ rule compiles"),
    )
});
/// The same rules with two more that cannot match in [`writ_text`] (no text there holds
/// `-----BEGIN` or `hooks.slack.com`): too many rules for the prefilter.
static OWN_UNFILTERED: LazyLock<Scanner> = LazyLock::new(|| {
    let rules = [RuleId::Writ, RuleId::PrivateKey, RuleId::SlackWebhook];
    Scanner::new(
        rules.into_iter().map(writ_detect::rules::builtin),
        &[samples::CONFIGURED],
    )
    .expect("built-in rules compile")
});

/// Text with writs (whole, cut short, run together), the configured secret, and filler.
fn writ_text() -> impl Strategy<Value = Vec<u8>> {
    let writs: Vec<Vec<u8>> = POSITIVES
        .iter()
        .filter(|p| p.windows(5).any(|w| w == b"writ_"))
        .cloned()
        .collect();
    let n = writs.len();
    let piece = prop_oneof![
        (0..n).prop_map(move |i| writs[i].clone()),
        "writ_[A-Za-z0-9_-]{0,90}={0,2}".prop_map(String::into_bytes),
        Just(samples::CONFIGURED.1.as_bytes().to_vec()),
        "[a-z0-9 _./+=]{0,40}".prop_map(String::into_bytes),
        prop::collection::vec(any::<u8>(), 0..20),
    ];
    prop::collection::vec(piece, 0..10).prop_map(|ps| ps.concat())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn a_prefiltered_small_rule_set_finds_what_the_unfiltered_set_finds(text in writ_text()) {
        prop_assert_eq!(OWN.redact(&text), OWN_UNFILTERED.redact(&text));
    }

    #[test]
    fn a_prefiltered_small_rule_set_streams_like_whole_redaction(
        text in writ_text(),
        sizes in prop::collection::vec(1usize..200, 1..20),
    ) {
        prop_assert_eq!(stream_with(&OWN, &text, &sizes), OWN.redact(&text));
    }
}
