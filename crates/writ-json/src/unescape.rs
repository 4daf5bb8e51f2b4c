//! A document's bytes with its strings' escapes decoded: the text an upstream reads.

use std::borrow::Cow;

/// The text an upstream reads from a request body, for a secret scanner: for a body that
/// looks like JSON (its first byte past blanks and a byte-order mark is `{`, `[` or
/// `"`), [`unescape`]d, so `sk\u002dproj…` is read as `sk-proj…`; other bytes as they
/// are, since their upstream decodes no JSON escapes. Borrowed, at no cost, when nothing
/// changes.
pub fn scan_text(bytes: &[u8]) -> Cow<'_, [u8]> {
    let body = bytes.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(bytes);
    match body
        .iter()
        .find(|b| !matches!(b, b' ' | b'\t' | b'\n' | b'\r'))
    {
        Some(b'{' | b'[' | b'"') => unescape(bytes),
        _ => Cow::Borrowed(bytes),
    }
}

/// `bytes` with every JSON string escape (`\"`, `\\`, `\/`, `\b`, `\f`, `\n`, `\r`,
/// `\t`, `\uXXXX`, surrogate pairs joined) replaced by the UTF-8 of what it stands for;
/// borrowed, at no cost, when there is no backslash.
///
/// For a well-formed JSON document (backslashes occur only inside strings) this is the
/// document with each string decoded in place, keys included, quotes, colons and commas
/// kept: a secret scanner finds in it what it would find in the unescaped document,
/// including `"api_key": "…"` pairs, and no two strings are glued together. For other
/// bytes it decodes what looks like an escape and keeps the rest: a lone surrogate
/// becomes U+FFFD, a backslash that starts no escape stays.
pub fn unescape(bytes: &[u8]) -> Cow<'_, [u8]> {
    let Some(first) = memchr::memchr(b'\\', bytes) else {
        return Cow::Borrowed(bytes);
    };
    let mut out = Vec::with_capacity(bytes.len());
    out.extend_from_slice(&bytes[..first]);
    let mut i = first;
    while i < bytes.len() {
        if bytes[i] != b'\\' {
            // Copy the run up to the next backslash in one go.
            let run = memchr::memchr(b'\\', &bytes[i..]).map_or(bytes.len(), |n| i + n);
            out.extend_from_slice(&bytes[i..run]);
            i = run;
            continue;
        }
        i += escape(&bytes[i..], &mut out);
    }
    Cow::Owned(out)
}

/// Decodes the escape at the start of `rest` (which starts with a backslash) into `out`;
/// returns how many bytes it took.
fn escape(rest: &[u8], out: &mut Vec<u8>) -> usize {
    let simple = match rest.get(1) {
        Some(b'"') => Some(b'"'),
        Some(b'\\') => Some(b'\\'),
        Some(b'/') => Some(b'/'),
        Some(b'b') => Some(0x08),
        Some(b'f') => Some(0x0c),
        Some(b'n') => Some(b'\n'),
        Some(b'r') => Some(b'\r'),
        Some(b't') => Some(b'\t'),
        _ => None,
    };
    if let Some(b) = simple {
        out.push(b);
        return 2;
    }
    let Some(unit) = hex4(rest) else {
        // Not an escape: the backslash stands for itself.
        out.push(b'\\');
        return 1;
    };
    let (c, taken) = match unit {
        0xD800..=0xDBFF => match hex4(&rest[6..]) {
            Some(low @ 0xDC00..=0xDFFF) => {
                let code = 0x10000 + ((u32::from(unit) - 0xD800) << 10) + (u32::from(low) - 0xDC00);
                (char::from_u32(code), 12)
            }
            _ => (None, 6),
        },
        _ => (char::from_u32(u32::from(unit)), 6),
    };
    let c = c.unwrap_or(char::REPLACEMENT_CHARACTER);
    let mut buf = [0; 4];
    out.extend_from_slice(c.encode_utf8(&mut buf).as_bytes());
    taken
}

/// The code unit of a `\uXXXX` escape at the start of `rest`.
fn hex4(rest: &[u8]) -> Option<u16> {
    if rest.len() < 6 || rest[0] != b'\\' || rest[1] != b'u' {
        return None;
    }
    let digits = std::str::from_utf8(&rest[2..6]).ok()?;
    if !digits.bytes().all(|b| b.is_ascii_hexdigit()) {
        return None;
    }
    u16::from_str_radix(digits, 16).ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn text(bytes: &[u8]) -> String {
        String::from_utf8(unescape(bytes).into_owned()).unwrap()
    }

    #[test]
    fn decodes_only_what_looks_like_json() {
        assert_eq!(&*scan_text(br#" {"a":"\u002d"}"#), br#" {"a":"-"}"#);
        assert_eq!(
            &*scan_text(b"\xEF\xBB\xBF[\"\\u002d\"]"),
            b"\xEF\xBB\xBF[\"-\"]"
        );
        assert_eq!(&*scan_text(br"key=sk\u002dproj"), br"key=sk\u002dproj");
    }

    #[test]
    fn borrows_bytes_without_escapes() {
        assert!(matches!(unescape(br#"{"a":"b"}"#), Cow::Borrowed(_)));
    }

    #[test]
    fn decodes_each_escape_in_place() {
        assert_eq!(
            text(br#"{"k":"sk\u002dproj\u002dx","\u0061pi_key":"a\"b\\c\/d\n"}"#),
            "{\"k\":\"sk-proj-x\",\"api_key\":\"a\"b\\c/d\n\"}"
        );
        assert_eq!(text(br#""\ud83d\ude00""#), "\"\u{1F600}\"");
        assert_eq!(text(br#""\u00e9\u20ac""#), "\"é€\"");
    }

    #[test]
    fn keeps_what_is_not_an_escape() {
        assert_eq!(text(br#"a\x\u12g4\"#), r"a\x\u12g4\");
        assert_eq!(text(br#""\ud800x\udc00""#), "\"\u{FFFD}x\u{FFFD}\"");
        assert_eq!(text(br#""\ud800\u0041""#), "\"\u{FFFD}A\"");
    }

    proptest! {
        /// What serde_json decodes from a document is what `unescape` puts in its place,
        /// whichever characters are escaped.
        #[test]
        fn matches_serde_json_on_escaped_strings(s in any::<String>(), escape_all in any::<bool>()) {
            let json = if escape_all {
                let mut j = String::from("\"");
                for unit in s.encode_utf16() {
                    j.push_str(&format!("\\u{unit:04x}"));
                }
                j.push('"');
                j
            } else {
                serde_json::to_string(&s).unwrap()
            };
            let decoded: String = serde_json::from_str(&json).unwrap();
            prop_assert_eq!(text(json.as_bytes()), format!("\"{decoded}\""));
        }
    }
}
