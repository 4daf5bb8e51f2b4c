//! Target `stream_redactor`: a response body redacted as it streams, with the built-in
//! rules and two configured secrets.

use std::sync::{Arc, LazyLock};

use writ_detect::{BUILTIN, Scanner, StreamRedactor};

use crate::chunking::derived_chunks;

/// Configured secrets (an upstream key the gateway holds, say). Their `~` appears in no
/// redaction marker, so no marker next to a fragment can spell one again.
pub(crate) const CONFIGURED: [(&str, &str); 2] =
    [("fuzz-key", "fz~Secret~0001~Q7ab"), ("fuzz-short", "~pw~9")];

static SCANNER: LazyLock<Arc<Scanner>> =
    LazyLock::new(|| match Scanner::new(BUILTIN, &CONFIGURED) {
        Ok(scanner) => Arc::new(scanner),
        Err(e) => panic!("the fuzzing scanner builds: {e}"),
    });

/// Input: the response body.
///
/// Invariants: redacting the body streamed in chunks derived from it gives the same bytes
/// and findings as [`Scanner::redact`] of the whole body, and neither output contains a
/// configured secret.
pub fn stream_redactor(data: &[u8]) {
    let (whole, whole_findings) = SCANNER.redact(data);
    let mut redactor = StreamRedactor::new(SCANNER.clone());
    let mut streamed = Vec::new();
    for chunk in derived_chunks(data) {
        streamed.extend(redactor.push(chunk));
    }
    streamed.extend(redactor.finish());
    assert!(
        streamed == whole,
        "streamed redaction differs from whole redaction"
    );
    assert_eq!(
        redactor.findings(),
        whole_findings.as_slice(),
        "streamed findings differ from whole findings"
    );
    for (label, secret) in CONFIGURED {
        assert!(
            !contains(&whole, secret.as_bytes()),
            "configured secret {label} survived redaction"
        );
    }
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}
