//! Label values with a bound: an open-ended label keeps at most a fixed number of
//! distinct values, and every value past them, or unfit for a label, becomes [`OTHER`].
//!
//! The values a label has seen are kept once each and handed out as shared strings, so
//! recording a request allocates nothing once its values are known.

use std::collections::HashSet;
use std::sync::{Arc, RwLock};

/// The most distinct values one label takes; later values are counted as [`OTHER`].
pub(crate) const MAX_LABEL_VALUES: usize = 100;

/// The value standing for every value past the cap, or unfit for a label.
pub(crate) const OTHER: &str = "_other";

/// The value of a label whose value is unknown or not shown (an agent when agents are not
/// named, the upstream of a request refused before it was routed).
pub(crate) const NONE: &str = "-";

/// Longest value kept as itself: names are at most 64 bytes, models a little longer; a
/// writ (hundreds of bytes) can never be a label value.
pub(crate) const MAX_VALUE_BYTES: usize = 128;

/// The values one label has taken, at most `cap` of them.
#[derive(Debug)]
pub(crate) struct CappedValues {
    cap: usize,
    seen: RwLock<HashSet<Arc<str>>>,
    other: Arc<str>,
    none: Arc<str>,
}

impl CappedValues {
    /// No value seen yet; at most `cap` will be.
    pub(crate) fn new(cap: usize) -> Self {
        Self {
            cap,
            seen: RwLock::new(HashSet::new()),
            other: Arc::from(OTHER),
            none: Arc::from(NONE),
        }
    }

    /// The label value for `value`: itself while fewer than `cap` values were seen (or it
    /// is one of them), [`OTHER`] past that or when it is unfit (longer than 128 bytes,
    /// or holding a control character), [`NONE`] when absent or empty.
    pub(crate) fn get_opt(&self, value: Option<&str>) -> Arc<str> {
        match value {
            None | Some("") => self.none.clone(),
            Some(v) => self.get(v),
        }
    }

    /// See [`CappedValues::get_opt`].
    pub(crate) fn get(&self, value: &str) -> Arc<str> {
        if value.is_empty() {
            return self.none.clone();
        }
        if value.len() > MAX_VALUE_BYTES || value.chars().any(char::is_control) {
            return self.other.clone();
        }
        if let Some(known) = self
            .seen
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .get(value)
        {
            return known.clone();
        }
        let mut seen = self.seen.write().unwrap_or_else(|p| p.into_inner());
        if let Some(known) = seen.get(value) {
            return known.clone();
        }
        if seen.len() >= self.cap {
            return self.other.clone();
        }
        let kept: Arc<str> = Arc::from(value);
        seen.insert(kept.clone());
        kept
    }

    /// How many distinct values are kept.
    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.seen.read().unwrap_or_else(|p| p.into_inner()).len()
    }
}
