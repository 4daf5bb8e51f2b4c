//! Which keys of one object count as the same key: equal, or equal ignoring case as
//! Go's `encoding/json` and case-insensitive .NET readers match them, so a body cannot
//! carry `"model"` for the gateway and `"MODEL"` for an upstream that folds case.

use std::borrow::Cow;
use std::collections::HashSet;

/// Keys an object holds before its set moves from a list to a hash set: a list is faster
/// for the few keys most objects have, a set keeps an object with a million keys linear
/// instead of quadratic.
const LIST_KEYS: usize = 8;

/// `key` case-folded, or `None` when folding leaves it as it is (ASCII without capitals,
/// as nearly every key of a request is), so those keys cost no allocation.
///
/// Uppercasing then lowercasing folds what Go's `EqualFold` folds, the Kelvin sign to
/// `k` and the long s to `s` included; it also folds `ß` with `ss`, which Go does not, a
/// refusal too many rather than one too few.
pub(crate) fn fold(key: &str) -> Option<String> {
    if key.bytes().all(|b| b.is_ascii() && !b.is_ascii_uppercase()) {
        return None;
    }
    Some(
        key.chars()
            .flat_map(char::to_uppercase)
            .flat_map(char::to_lowercase)
            .collect(),
    )
}

/// A set of keys of one object: the first few inline (most objects allocate nothing),
/// then a hash set.
pub(crate) enum Keys<'de> {
    List([Cow<'de, str>; LIST_KEYS], usize),
    Set(HashSet<Cow<'de, str>>),
}

impl<'de> Keys<'de> {
    pub(crate) fn new() -> Self {
        Keys::List(Default::default(), 0)
    }

    /// Adds `key`; false if it was already there.
    pub(crate) fn insert(&mut self, key: Cow<'de, str>) -> bool {
        match self {
            Keys::List(list, len) => {
                if list[..*len].contains(&key) {
                    return false;
                }
                if *len < LIST_KEYS {
                    list[*len] = key;
                    *len += 1;
                } else {
                    // The std hasher is keyed per process, so keys chosen to collide
                    // cannot make the set quadratic.
                    let mut set: HashSet<Cow<'de, str>> =
                        list.iter_mut().map(std::mem::take).collect();
                    set.insert(key);
                    *self = Keys::Set(set);
                }
                true
            }
            Keys::Set(set) => set.insert(key),
        }
    }
}

impl Keys<'_> {
    /// Whether `key` is in the set.
    pub(crate) fn contains(&self, key: &str) -> bool {
        match self {
            Keys::List(list, len) => list[..*len].iter().any(|k| k == key),
            Keys::Set(set) => set.contains(key),
        }
    }
}

/// The folded keys of one object, for its keys that do not fold to themselves; nothing
/// is allocated or kept until such a key comes (most objects have none).
#[derive(Default)]
pub(crate) struct Folds(Option<Keys<'static>>);

impl Folds {
    /// Admits `key` (already found new among the keys as written) unless it folds to a
    /// key seen before. `seen_exactly` says whether a key is among the object's keys as
    /// written, which hold the keys that fold to themselves.
    pub(crate) fn admit(&mut self, key: &str, seen_exactly: impl Fn(&str) -> bool) -> bool {
        match fold(key) {
            None => self.0.as_ref().is_none_or(|folds| !folds.contains(key)),
            Some(folded) => {
                let folds = self.0.get_or_insert_with(Keys::new);
                // A key that folds to itself is among the exact keys already: itself.
                if folds.contains(&folded) || (folded != key && seen_exactly(&folded)) {
                    return false;
                }
                folds.insert(Cow::Owned(folded))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn folds_as_go_does_and_leaves_plain_keys_alone() {
        assert_eq!(fold("max_tokens"), None);
        assert_eq!(fold("MODEL").as_deref(), Some("model"));
        assert_eq!(fold("maxTokens").as_deref(), Some("maxtokens"));
        // Kelvin sign and long s fold to ASCII letters in Go's EqualFold.
        assert_eq!(fold("\u{212A}ey").as_deref(), Some("key"));
        assert_eq!(fold("\u{17F}eat").as_deref(), Some("seat"));
    }

    #[test]
    fn admits_each_folded_key_once_in_either_order() {
        let exact = ["model"];
        let mut folds = Folds::default();
        assert!(!folds.admit("Model", |k| exact.contains(&k)));
        let mut folds = Folds::default();
        assert!(folds.admit("Model", |_| false));
        assert!(
            !folds.admit("model", |_| false),
            "a plain key after its capitalised twin"
        );
        assert!(!folds.admit("MODEL", |_| false));
        assert!(folds.admit("models", |_| false));
    }
}
