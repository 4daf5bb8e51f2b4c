//! Strict JSON: documents with a duplicate key at any depth are refused, nesting is
//! bounded, and the text an upstream decodes from a document can be had for scanning.
//!
//! Parsers disagree on a repeated key: serde_json and Python keep the last value, some
//! parsers and policy engines keep the first, some keep both. When the gateway authorizes
//! one reading and the upstream acts on another, the writ's grant is bypassed, so every
//! JSON the gateway reads to make a decision (request bodies, grants, admin bodies,
//! configuration values) goes through [`check`] or [`from_slice`] first.
//!
//! - [`check`] walks a document once with serde_json's parser and a visitor that builds
//!   nothing, comparing decoded keys (`"mo\u0064el"` repeats `"model"`), and ignoring
//!   case (`"MODEL"` repeats it too, for upstreams in Go), per object, in
//!   a list for the first few keys and a hash set after, so work stays linear in the
//!   document's size whatever its shape.
//! - [`value`] does the same check while building a `serde_json::Value`, for callers
//!   that parse the document anyway: one pass, not two.
//! - [`outline`] does the same check while building only what a request's inspection
//!   reads: named top-level members whole, the JSON types of the rest (a prompt's
//!   messages as `[{}, {}]`), so the text of a prompt is never copied.
//! - [`unescape`] gives the document's bytes with every string's escapes decoded: what
//!   an upstream reads, and [`scan_text`] that for bodies that look like JSON and the
//!   bytes as they are for others, for the secret scanner.

mod fold;
mod path;
mod strict;
mod unescape;
mod value;

pub use path::{KeyPath, PathStep};
pub use strict::check;
pub use unescape::{scan_text, unescape};
pub use value::{outline, value};

/// Deepest nesting of arrays and objects accepted. Below serde_json's own recursion
/// limit (128), so a too-deep document is always refused by this name, and low enough
/// that the walk's recursion stays far from the stack's end on any thread.
pub const MAX_DEPTH: usize = 100;

/// Why a document is not strict JSON.
#[derive(Debug, thiserror::Error)]
pub enum JsonError {
    /// An object holds the same key twice: compared after decoding escapes, and ignoring
    /// case, as Go's `encoding/json` matches keys (`"model"` and `"MODEL"` are one key).
    #[error("duplicate key `{path}`")]
    DuplicateKey {
        /// Where: the repeated key's path from the document's root.
        path: KeyPath,
    },
    /// Arrays and objects nest deeper than [`MAX_DEPTH`].
    #[error("JSON nests deeper than {MAX_DEPTH} levels")]
    TooDeep,
    /// Not one well-formed JSON value. serde_json's syntax errors name a line and column,
    /// never the document's content.
    #[error("not valid JSON: {0}")]
    Syntax(#[source] serde_json::Error),
    /// Well-formed and strict, but not the shape the caller's type wants. serde's message
    /// can quote a value from the document: do not show it where the document may hold a
    /// secret.
    #[error("{0}")]
    Shape(#[source] serde_json::Error),
}

/// Parses `bytes` as `T` after [`check`] has found them strict: no duplicate key at any
/// depth, nesting within [`MAX_DEPTH`].
pub fn from_slice<T: serde::de::DeserializeOwned>(bytes: &[u8]) -> Result<T, JsonError> {
    check(bytes)?;
    serde_json::from_slice(bytes).map_err(JsonError::Shape)
}

/// [`from_slice`] for text.
pub fn from_str<T: serde::de::DeserializeOwned>(text: &str) -> Result<T, JsonError> {
    from_slice(text.as_bytes())
}
