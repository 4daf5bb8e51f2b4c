//! Target `config_parse`: `writ.toml` parsed and validated, as `writ serve` and `writ
//! config check` load it.

use writ_gateway::config::{Config, RawConfig, Secrets};

/// Input: the config file's text.
///
/// Invariants: parsing and validating never panic; the strict parse and the parse that
/// lists every unknown key agree on whether the text is a config with no unknown key;
/// a config that validates with every variable set also validates when variables are
/// deferred.
///
/// A config naming a `service_account_file` is parsed but not validated: validation reads
/// that file, and a fuzzer's path (`/dev/zero`, a FIFO) would make the run hang on I/O,
/// not find a bug in the parser.
pub fn config_parse(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let strict = RawConfig::from_toml(text);
    let (all, problems) = RawConfig::from_toml_all(text);
    assert_eq!(
        strict.is_ok(),
        all.is_some() && problems.is_empty(),
        "the strict parse and the every-unknown-key parse disagree"
    );
    if text.contains("_file") || text.contains("\\u") || text.contains("\\U") {
        return;
    }
    let Ok(raw) = strict else {
        return;
    };
    let set = |_: &str| Some("fuzz-value-0123".to_string());
    let resolved = Config::from_raw(raw, &set);
    let Ok(raw) = RawConfig::from_toml(text) else {
        panic!("a config parsed once then not");
    };
    let deferred = Config::validate(raw, Secrets::Defer(&|_| None));
    if resolved.is_ok() {
        assert!(
            deferred.is_ok(),
            "a config valid with its variables set is refused with them deferred"
        );
    }
}
