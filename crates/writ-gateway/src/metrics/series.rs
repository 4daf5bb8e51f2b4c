//! The series a request's label values were last resolved to, found again with one
//! lookup: recording a request resolved each of its labels through its [`CappedValues`]
//! and each series through its `Family` (a hash of the label set and a read lock each, up
//! to eleven a request); a request whose values were seen before finds them all at once.
//!
//! A label value resolves to the same value for good (a [`CappedValues`] never lets a
//! value go, nor takes one once full), so what was resolved once stays right. Entries are
//! keyed by the request's own values, which are open-ended (a model name is the client's):
//! at most [`MAX_ENTRIES`] are kept, none with a value longer than a label value may be
//! ([`MAX_VALUE_BYTES`]: such a value is counted as `_other` and never hashed or kept
//! here), and a request past them resolves its labels as before.
//!
//! [`CappedValues`]: super::CappedValues

use std::hash::{Hash, Hasher, RandomState};
use std::sync::RwLock;

use hashbrown::{Equivalent, HashMap};

use super::capped::MAX_VALUE_BYTES;

/// Most sets of values remembered per kind of series.
pub(super) const MAX_ENTRIES: usize = 4_096;

/// A request's label values: up to three strings and a number, as the record holds them.
#[derive(Debug, Clone, Copy, Hash)]
pub(super) struct Values<'a> {
    pub(super) names: [Option<&'a str>; 3],
    pub(super) number: u16,
}

/// [`Values`] kept as a map key.
#[derive(Debug, PartialEq, Eq)]
struct Key {
    names: [Option<Box<str>>; 3],
    number: u16,
}

// Hashes exactly as `Values` does (an `Option<Box<str>>` hashes as the `Option<&str>` it
// derefs to), so a `Values` finds its `Key`.
impl Hash for Key {
    fn hash<H: Hasher>(&self, state: &mut H) {
        Values {
            names: self.names.each_ref().map(Option::as_deref),
            number: self.number,
        }
        .hash(state);
    }
}

impl Equivalent<Key> for Values<'_> {
    fn equivalent(&self, key: &Key) -> bool {
        self.number == key.number
            && self
                .names
                .iter()
                .zip(&key.names)
                .all(|(a, b)| *a == b.as_deref())
    }
}

/// What one set of values resolved to, `S` being the series (and their labels) a kind of
/// record needs. Keyed with std's SipHash, as the label sets it replaces were: a model name
/// is the client's to choose.
#[derive(Debug)]
pub(super) struct Remembered<S> {
    map: RwLock<HashMap<Key, S, RandomState>>,
}

impl<S> Remembered<S> {
    pub(super) fn new() -> Self {
        Self {
            map: RwLock::new(HashMap::with_hasher(RandomState::new())),
        }
    }

    /// Calls `record` with the series `values` resolved to before, or with those
    /// `resolve` gives now (remembered while fewer than [`MAX_ENTRIES`] are).
    pub(super) fn with<R>(
        &self,
        values: Values<'_>,
        resolve: impl FnOnce() -> S,
        record: impl FnOnce(&S) -> R,
    ) -> R {
        // A long value (a hostile model name, say) would cost its length to hash and to
        // keep: it takes the way it took before, through the capped values, every time.
        if values
            .names
            .iter()
            .flatten()
            .any(|n| n.len() > MAX_VALUE_BYTES)
        {
            return record(&resolve());
        }
        if let Some(series) = self
            .map
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .get(&values)
        {
            return record(series);
        }
        let series = resolve();
        let mut map = self.map.write().unwrap_or_else(|p| p.into_inner());
        if map.len() >= MAX_ENTRIES {
            drop(map);
            return record(&series);
        }
        let key = Key {
            names: values.names.map(|n| n.map(Box::from)),
            number: values.number,
        };
        let series = map.entry(key).or_insert(series);
        record(series)
    }

    /// How many sets of values are remembered.
    #[cfg(test)]
    pub(super) fn len(&self) -> usize {
        self.map.read().unwrap_or_else(|p| p.into_inner()).len()
    }
}

#[cfg(test)]
mod tests {
    use std::hash::BuildHasher;

    use super::*;

    fn values<'a>(a: Option<&'a str>, b: &'a str, number: u16) -> Values<'a> {
        Values {
            names: [a, Some(b), None],
            number,
        }
    }

    #[test]
    fn values_hash_as_their_key_does_and_find_it() {
        let state = RandomState::new();
        let v = values(Some("openai"), "gpt-4o", 200);
        let key = Key {
            names: [Some("openai".into()), Some("gpt-4o".into()), None],
            number: 200,
        };
        assert_eq!(state.hash_one(v), state.hash_one(&key));
        assert!(v.equivalent(&key));
        // A value moved to another place is another set of values.
        assert!(!values(None, "openai", 200).equivalent(&Key {
            names: [Some("openai".into()), None, None],
            number: 200,
        }));
        assert!(!values(Some("openai"), "gpt-4o", 201).equivalent(&key));
    }

    #[test]
    fn a_set_of_values_is_resolved_once_and_at_most_max_entries_are_kept() {
        let r = Remembered::<u32>::new();
        let mut resolved = 0;
        for _ in 0..3 {
            let got = r.with(
                values(Some("a"), "b", 1),
                || {
                    resolved += 1;
                    7
                },
                |s| *s,
            );
            assert_eq!(got, 7);
        }
        assert_eq!(resolved, 1);
        // Different values are resolved on their own.
        assert_eq!(r.with(values(Some("a"), "c", 1), || 8, |s| *s), 8);
        let names: Vec<String> = (0..MAX_ENTRIES + 10).map(|i| i.to_string()).collect();
        for n in &names {
            r.with(values(None, n, 0), || 0, |_| ());
        }
        assert_eq!(r.len(), MAX_ENTRIES);
        // Past the bound every request still gets its series, resolved each time.
        let mut calls = 0;
        for _ in 0..2 {
            let got = r.with(
                values(None, "past", 0),
                || {
                    calls += 1;
                    9
                },
                |s| *s,
            );
            assert_eq!(got, 9);
        }
        assert_eq!(calls, 2);
    }

    #[test]
    fn a_value_longer_than_a_label_is_never_kept() {
        let r = Remembered::<u32>::new();
        let long = "m".repeat(MAX_VALUE_BYTES + 1);
        let mut resolved = 0;
        for _ in 0..2 {
            r.with(
                values(Some("openai"), &long, 403),
                || {
                    resolved += 1;
                    5
                },
                |s| assert_eq!(*s, 5),
            );
        }
        assert_eq!((resolved, r.len()), (2, 0));
        // One at the bound is kept.
        let at = "m".repeat(MAX_VALUE_BYTES);
        r.with(values(Some("openai"), &at, 403), || 6, |_| ());
        assert_eq!(r.len(), 1);
    }
}
