//! Key paths: where in a document a key sits, written for an error message.

use std::fmt;

/// Longest key written out in a path, in bytes; a longer key is cut (at a character
/// boundary) and marked with `…`, so an error message stays short whatever the keys.
const MAX_KEY_SHOWN: usize = 64;

/// Most segments written out; deeper paths keep their last ones after a leading `…`.
const MAX_SEGMENTS_SHOWN: usize = 12;

/// One step from a container to a member.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Segment {
    /// An object member, by its decoded key.
    Key(String),
    /// An array element, by its index.
    Index(usize),
}

/// The path of a key from the document's root, as `messages[2].content` or
/// `params.arguments.flight`. Keys that are not plain names are quoted
/// (`headers["x-key"]`) and long keys are shortened, so the path is safe to show.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyPath(Vec<Segment>);

impl KeyPath {
    /// A path built leaf first (as an error unwinds), put in root-first order.
    pub(crate) fn from_leaf_first(mut segments: Vec<Segment>) -> Self {
        segments.reverse();
        Self(segments)
    }

    /// The keys and indexes from the root, for callers that match on them.
    pub fn segments(&self) -> impl Iterator<Item = PathStep<'_>> {
        self.0.iter().map(|s| match s {
            Segment::Key(k) => PathStep::Key(k),
            Segment::Index(i) => PathStep::Index(*i),
        })
    }
}

/// One step of a [`KeyPath`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PathStep<'a> {
    /// An object member's decoded key.
    Key(&'a str),
    /// An array element's index.
    Index(usize),
}

impl fmt::Display for KeyPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let skip = self.0.len().saturating_sub(MAX_SEGMENTS_SHOWN);
        if skip > 0 {
            f.write_str("…")?;
        }
        for (i, segment) in self.0.iter().enumerate().skip(skip) {
            match segment {
                Segment::Index(n) => write!(f, "[{n}]")?,
                Segment::Key(k) if is_plain(k) => {
                    if i > skip || skip > 0 {
                        f.write_str(".")?;
                    }
                    f.write_str(k)?;
                }
                Segment::Key(k) => {
                    let shown = shorten(k);
                    // Quoted the JSON way, so control characters and quotes stay visible.
                    let quoted = serde_json::to_string(shown).map_err(|_| fmt::Error)?;
                    let ellipsis = if shown.len() < k.len() { "…" } else { "" };
                    write!(f, "[{quoted}{ellipsis}]")?;
                }
            }
        }
        Ok(())
    }
}

/// A key written bare: a short, non-empty name of letters, digits, `_`, `-` and `$`.
fn is_plain(key: &str) -> bool {
    !key.is_empty()
        && key.len() <= MAX_KEY_SHOWN
        && key
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'$'))
}

/// At most [`MAX_KEY_SHOWN`] bytes of `key`, cut at a character boundary.
fn shorten(key: &str) -> &str {
    if key.len() <= MAX_KEY_SHOWN {
        return key;
    }
    let mut end = MAX_KEY_SHOWN;
    while !key.is_char_boundary(end) {
        end -= 1;
    }
    &key[..end]
}

#[cfg(test)]
mod tests {
    use super::*;

    fn path(segments: Vec<Segment>) -> String {
        KeyPath(segments).to_string()
    }

    #[test]
    fn names_keys_and_indexes_from_the_root() {
        use Segment::{Index, Key};
        assert_eq!(path(vec![Key("model".into())]), "model");
        assert_eq!(
            path(vec![
                Key("messages".into()),
                Index(2),
                Key("content".into())
            ]),
            "messages[2].content"
        );
        assert_eq!(path(vec![Index(0), Key("a".into())]), "[0].a");
        assert_eq!(
            path(vec![Key("h".into()), Key("x key\"".into())]),
            r#"h["x key\""]"#
        );
    }

    #[test]
    fn long_keys_and_deep_paths_are_shortened() {
        let long = "é".repeat(100);
        let shown = path(vec![Segment::Key(long)]);
        assert!(shown.len() < 80, "{shown}");
        assert!(shown.ends_with("…]"), "{shown}");
        let deep: Vec<Segment> = (0..50).map(Segment::Index).collect();
        let shown = path(deep);
        assert!(shown.starts_with("…[38]"), "{shown}");
        assert!(shown.ends_with("[49]"), "{shown}");
    }
}
