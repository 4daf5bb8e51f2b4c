//! Every committed corpus file of every fuzz target (and every regression input kept
//! from a crash) replayed through the target's function on the stable toolchain, so
//! `cargo test` catches a regression without nightly or libFuzzer (issue 26).

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::{Path, PathBuf};

fn fuzz_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fuzz")
}

fn files(dir: &Path) -> Vec<PathBuf> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut files: Vec<PathBuf> = entries
        .map(|e| e.expect("a readable directory entry").path())
        .filter(|p| p.is_file())
        .collect();
    files.sort();
    files
}

/// Runs `target` on every file of `dir`; returns the files it panicked on.
fn replay(target: writ_fuzz::Target, dir: &Path) -> Vec<String> {
    let mut failed = Vec::new();
    for file in files(dir) {
        let data = std::fs::read(&file).expect("a readable corpus file");
        if catch_unwind(AssertUnwindSafe(|| target(&data))).is_err() {
            failed.push(file.display().to_string());
        }
    }
    failed
}

#[test]
fn every_target_has_a_fuzz_target_file_and_a_corpus() {
    let targets = std::fs::read_to_string(fuzz_dir().join("Cargo.toml")).expect("fuzz/Cargo.toml");
    for (name, _) in writ_fuzz::TARGETS {
        assert!(
            targets.contains(&format!("name = \"{name}\"")),
            "fuzz/Cargo.toml has no [[bin]] {name}"
        );
        let source = std::fs::read_to_string(fuzz_dir().join(format!("fuzz_targets/{name}.rs")))
            .unwrap_or_else(|e| panic!("fuzz_targets/{name}.rs: {e}"));
        assert!(
            source.contains(&format!("writ_fuzz::{name}(data)")),
            "fuzz_targets/{name}.rs does not call writ_fuzz::{name}"
        );
        let corpus = fuzz_dir().join("corpus").join(name);
        assert!(
            !files(&corpus).is_empty(),
            "the corpus of {name} ({}) is missing or empty",
            corpus.display()
        );
    }
}

#[test]
fn every_corpus_and_regression_file_passes_its_target() {
    let mut failed = Vec::new();
    let mut replayed = 0;
    for (name, target) in writ_fuzz::TARGETS {
        for kind in ["corpus", "regressions"] {
            let dir = fuzz_dir().join(kind).join(name);
            replayed += files(&dir).len();
            failed.extend(replay(*target, &dir));
        }
    }
    assert!(replayed > 0, "no corpus file was replayed");
    assert!(
        failed.is_empty(),
        "inputs that break their target:\n{}",
        failed.join("\n")
    );
}

/// The corpora reach the paths past the parsers' first refusals: a replay of seeds that
/// all fail early would check little.
#[test]
fn the_seeds_reach_accepting_paths() {
    use base64::Engine;
    let corpus = |name: &str| {
        files(&fuzz_dir().join("corpus").join(name))
            .into_iter()
            .map(|f| std::fs::read(f).expect("a readable corpus file"))
            .collect::<Vec<_>>()
    };
    let keys = writ_fuzz::fixed_root_keys();
    let verified = corpus("writ_decode")
        .iter()
        .filter(|data| {
            let text = match data.starts_with(b"writ_") {
                true => String::from_utf8_lossy(data).into_owned(),
                false => format!(
                    "writ_{}",
                    base64::engine::general_purpose::URL_SAFE.encode(data)
                ),
            };
            writ_token::decode(&text)
                .and_then(|w| w.verify(&keys))
                .is_ok()
        })
        .count();
    assert!(verified >= 10, "only {verified} writ seeds verify");

    let grants = corpus("grant_datalog")
        .iter()
        .filter(|d| writ_token::parse_grants(&String::from_utf8_lossy(d)).is_ok())
        .count();
    assert!(grants >= 10, "only {grants} grant seeds parse");

    let now = std::time::UNIX_EPOCH + std::time::Duration::from_secs(writ_fuzz::FIXED_NOW);
    let proofs = corpus("dpop_proof")
        .iter()
        .filter(|d| {
            let expected = writ_token::dpop::Expected {
                method: "POST",
                url: "https://writ.test/v1/chat/completions",
                access_token: None,
                now,
            };
            writ_token::dpop::verify_proof(&String::from_utf8_lossy(d), &expected).is_ok()
        })
        .count();
    assert!(proofs >= 1, "no DPoP seed is a valid proof");

    let messages = corpus("mcp_inspect")
        .iter()
        .filter(|d| writ_providers::mcp::inspect(d).is_ok())
        .count();
    assert!(messages >= 5, "only {messages} MCP seeds are accepted");
}
