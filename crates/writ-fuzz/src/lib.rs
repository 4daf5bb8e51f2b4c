//! The bodies of writ's fuzz targets: one function per target, each feeding arbitrary
//! bytes to the real parser or checker a gateway runs on outside input, and panicking when
//! one of that target's invariants breaks.
//!
//! `fuzz/fuzz_targets/<name>.rs` (nightly, `cargo fuzz run <name>`) calls `<name>` here;
//! `tests/corpus_replay.rs` (stable, part of `cargo test`) replays every committed corpus
//! file through the same functions, so a regression is caught without nightly. Nothing
//! here reimplements what it checks: it only chooses inputs and compares answers.

mod chunking;
mod config_parse;
mod dpop_proof;
mod fixed_key;
mod grant_datalog;
mod jwt_lint;
mod mcp_inspect;
mod provider_facts;
mod stream_meter;
mod stream_redactor;
mod writ_decode;

pub use config_parse::config_parse;
pub use dpop_proof::dpop_proof;
pub use fixed_key::{FIXED_NOW, fixed_root_key, fixed_root_keys};
pub use grant_datalog::grant_datalog;
pub use jwt_lint::jwt_lint;
pub use mcp_inspect::mcp_inspect;
pub use provider_facts::provider_facts;
pub use stream_meter::{bedrock_eventstream_meter, sse_meter};
pub use stream_redactor::stream_redactor;
pub use writ_decode::writ_decode;

/// A target's body: takes the fuzzer's bytes, panics when an invariant breaks.
pub type Target = fn(&[u8]);

/// Every target, by the name of its `fuzz/fuzz_targets/<name>.rs` and corpus directory.
pub const TARGETS: &[(&str, Target)] = &[
    ("writ_decode", writ_decode),
    ("grant_datalog", grant_datalog),
    ("provider_facts", provider_facts),
    ("sse_meter", sse_meter),
    ("bedrock_eventstream_meter", bedrock_eventstream_meter),
    ("stream_redactor", stream_redactor),
    ("jwt_lint", jwt_lint),
    ("dpop_proof", dpop_proof),
    ("config_parse", config_parse),
    ("mcp_inspect", mcp_inspect),
];
