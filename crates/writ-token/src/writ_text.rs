//! A writ's text as a request holds it: a bearer credential, zeroed when let go.

use std::ops::Deref;

/// A writ's text, zeroed when dropped. Its `Debug` never shows it.
///
/// Zeroing is one `memset` over the whole buffer, not `zeroize`'s byte-at-a-time volatile
/// writes: a request holds a writ (about 1 KiB) twice, and those writes cost 1 600
/// instructions each on every request. [`std::hint::black_box`] keeps the compiler from
/// leaving out writes to memory that is freed right after.
pub struct WritText(String);

impl WritText {
    /// A copy of `text`.
    pub fn new(text: &str) -> Self {
        Self(text.to_string())
    }

    /// The text, prefix included.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl From<String> for WritText {
    fn from(text: String) -> Self {
        Self(text)
    }
}

impl Deref for WritText {
    type Target = str;
    fn deref(&self) -> &str {
        &self.0
    }
}

impl Drop for WritText {
    fn drop(&mut self) {
        let bytes = wiped(std::mem::take(&mut self.0));
        drop(std::hint::black_box(bytes));
    }
}

impl std::fmt::Debug for WritText {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("WritText(..)")
    }
}

/// `text`'s own buffer, every byte of it zero.
fn wiped(text: String) -> Vec<u8> {
    let mut bytes = text.into_bytes();
    bytes.fill(0);
    bytes
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_text_is_zeroed_in_its_own_buffer() {
        let text = "writ_EtABCgMYsAEKJwoEcHJvZB".repeat(40);
        let at = text.as_ptr();
        let len = text.len();
        let bytes = wiped(text);
        assert_eq!(bytes.as_ptr(), at, "the same allocation, not a copy");
        assert_eq!(bytes.len(), len);
        assert!(bytes.iter().all(|b| *b == 0));
    }

    #[test]
    fn debug_never_shows_the_text() {
        let text = WritText::new("writ_secret-material");
        assert_eq!(format!("{text:?}"), "WritText(..)");
        assert_eq!(text.as_str(), "writ_secret-material");
        assert_eq!(&*WritText::from("writ_x".to_string()), "writ_x");
    }
}
