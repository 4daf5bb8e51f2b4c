//! The Streamable HTTP request headers that mirror the JSON-RPC body
//! (`MCP-Protocol-Version`, `Mcp-Method`, `Mcp-Name`), checked against it.
//!
//! An intermediary that routes or rate-limits on a header and a server that acts on the
//! body must see the same request (MCP 2026-07-28, "Server Validation"): a header that
//! disagrees with the body, is sent twice, or holds what no header may hold is a
//! `HeaderMismatch`; an unknown revision is an `UnsupportedProtocolVersion`. A
//! 2026-07-28 request must carry all three; a header an older client sends anyway must
//! still agree.

use base64::Engine;
use http::HeaderMap;

use super::{MODERN_VERSION, McpMessage, PROTOCOL_VERSIONS};

/// The protocol version header.
pub const PROTOCOL_VERSION: &str = "mcp-protocol-version";
/// The header mirroring `method`.
pub const METHOD: &str = "mcp-method";
/// The header mirroring `params.name` or `params.uri`.
pub const NAME: &str = "mcp-name";

/// Why a request's transport headers are refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TransportError {
    /// The request names a protocol revision the gateway does not pass on.
    #[error(
        "unsupported MCP protocol version `{requested}`: this gateway supports {}",
        PROTOCOL_VERSIONS.join(", ")
    )]
    UnsupportedVersion {
        /// The version asked for, cut to 64 characters.
        requested: String,
        /// The request states its version per request (in `params._meta`), the way of
        /// 2026-07-28: the versions that apply are those of that way only.
        per_request: bool,
    },
    /// A header disagrees with the body, is missing, repeated or malformed.
    #[error("header mismatch: {0}")]
    HeaderMismatch(String),
    /// A 2026-07-28 request without its version in `params._meta`: invalid params.
    #[error(
        "a {MODERN_VERSION} request states its protocol version in params._meta[\"{}\"]",
        super::META_VERSION_KEY
    )]
    MissingMetaVersion,
}

/// Which revision family a request belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Era {
    /// 2026-07-28: no sessions, metadata in headers.
    Modern,
    /// An `initialize`-handshake revision (2024-11-05 to 2025-11-25), or no version stated.
    Handshake,
}

/// The versions an unsupported-version refusal lists: those stated per request
/// (2026-07-28) when the request stated its own that way, else every one passed on.
pub fn supported_versions(per_request: bool) -> &'static [&'static str] {
    if per_request {
        &PROTOCOL_VERSIONS[PROTOCOL_VERSIONS.len() - 1..]
    } else {
        &PROTOCOL_VERSIONS
    }
}

/// Checks `headers` against `message`; returns the request's era.
pub fn check(headers: &HeaderMap, message: &McpMessage) -> Result<Era, TransportError> {
    let header_version = single(headers, PROTOCOL_VERSION)?;
    // Headers against the body first: a disagreement is a mismatch whichever is unknown.
    match (&header_version, &message.meta_version) {
        (Some(h), Some(m)) if h != m => {
            return Err(mismatch(format!(
                "MCP-Protocol-Version header `{}` does not match the body's `_meta` version `{}`",
                shown(h),
                shown(m)
            )));
        }
        (None, Some(_)) => {
            return Err(mismatch(
                "the MCP-Protocol-Version header is required: send the version the body's `_meta` states"
                    .to_string(),
            ));
        }
        _ => {}
    }
    for version in [header_version.as_deref(), message.meta_version.as_deref()]
        .into_iter()
        .flatten()
    {
        if !PROTOCOL_VERSIONS.contains(&version) {
            return Err(TransportError::UnsupportedVersion {
                requested: version.chars().take(64).collect(),
                per_request: message.meta_version.is_some(),
            });
        }
    }
    let modern = header_version.as_deref() == Some(MODERN_VERSION)
        || message.meta_version.as_deref() == Some(MODERN_VERSION);
    if modern && message.is_request() && message.meta_version.is_none() {
        return Err(TransportError::MissingMetaVersion);
    }
    let method_header = single(headers, METHOD)?;
    match (method_header.as_deref(), message.method.as_deref()) {
        (Some(h), Some(m)) if h != m => {
            return Err(mismatch(format!(
                "Mcp-Method header `{}` does not match the body's method `{m}`",
                shown(h)
            )));
        }
        (Some(_), None) => {
            return Err(mismatch(
                "Mcp-Method header on a message that has no method".to_string(),
            ));
        }
        (None, Some(_)) if modern && message.is_request() => {
            return Err(mismatch(
                "the Mcp-Method header is required on every request".to_string(),
            ));
        }
        _ => {}
    }
    let name_header = single(headers, NAME)?.map(|h| decode(&h)).transpose()?;
    match (name_header.as_deref(), message.name()) {
        (Some(h), Some(n)) if h != n => {
            return Err(mismatch(format!(
                "Mcp-Name header `{}` does not match the body's `{}`",
                shown(h),
                shown(n)
            )));
        }
        (Some(_), None) => {
            return Err(mismatch(
                "Mcp-Name header on a method that names nothing".to_string(),
            ));
        }
        (None, Some(_)) if modern => {
            return Err(mismatch(
                "the Mcp-Name header is required on tools/call, prompts/get and resources/read"
                    .to_string(),
            ));
        }
        _ => {}
    }
    Ok(if modern { Era::Modern } else { Era::Handshake })
}

fn mismatch(why: String) -> TransportError {
    TransportError::HeaderMismatch(why)
}

/// A value cut for an error message.
fn shown(value: &str) -> String {
    let mut cut: String = value.chars().take(64).collect();
    if cut.len() < value.len() {
        cut.push('…');
    }
    cut
}

/// The header's one value as text; two values, or a byte outside visible ASCII, space and
/// tab, is a mismatch (a proxy and the server could each read another).
fn single(headers: &HeaderMap, name: &'static str) -> Result<Option<String>, TransportError> {
    let mut values = headers.get_all(name).iter();
    let Some(value) = values.next() else {
        return Ok(None);
    };
    if values.next().is_some() {
        return Err(mismatch(format!(
            "the {name} header is sent more than once"
        )));
    }
    let text = value
        .to_str()
        .ok()
        .filter(|t| t.bytes().all(|b| b == b'\t' || (0x20..0x7f).contains(&b)))
        .ok_or_else(|| mismatch(format!("the {name} header holds characters no header may")))?;
    Ok(Some(text.to_string()))
}

/// A header value, Base64-decoded when in the sentinel form `=?base64?…?=`.
fn decode(value: &str) -> Result<String, TransportError> {
    let Some(encoded) = value
        .strip_prefix("=?base64?")
        .and_then(|v| v.strip_suffix("?="))
    else {
        return Ok(value.to_string());
    };
    base64::engine::general_purpose::STANDARD
        .decode(encoded)
        .ok()
        .and_then(|bytes| String::from_utf8(bytes).ok())
        .ok_or_else(|| {
            mismatch("the Mcp-Name header's Base64 value does not decode to UTF-8".to_string())
        })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mcp::inspect;

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.append(*k, v.parse().expect("header value"));
        }
        h
    }

    const MODERN_CALL: &[u8] = br#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"book_flight","arguments":{},"_meta":{"io.modelcontextprotocol/protocolVersion":"2026-07-28"}}}"#;

    fn modern_headers() -> Vec<(&'static str, &'static str)> {
        vec![
            (PROTOCOL_VERSION, "2026-07-28"),
            (METHOD, "tools/call"),
            (NAME, "book_flight"),
        ]
    }

    #[test]
    fn a_modern_request_with_agreeing_headers_passes() {
        let m = inspect(MODERN_CALL).expect("message");
        assert_eq!(check(&headers(&modern_headers()), &m), Ok(Era::Modern));
        // The name in the Base64 sentinel form.
        let mut h = modern_headers();
        h[2] = (NAME, "=?base64?Ym9va19mbGlnaHQ=?=");
        assert_eq!(check(&headers(&h), &m), Ok(Era::Modern));
    }

    #[test]
    fn each_disagreement_is_a_mismatch() {
        let m = inspect(MODERN_CALL).expect("message");
        let refused = |h: Vec<(&'static str, &str)>| {
            matches!(
                check(&headers(&h), &m),
                Err(TransportError::HeaderMismatch(_))
            )
        };
        for i in 0..3 {
            let mut missing = modern_headers();
            missing.remove(i);
            assert!(refused(missing), "header {i} missing");
        }
        let mut other_name = modern_headers();
        other_name[2] = (NAME, "cancel_flight");
        assert!(refused(other_name));
        let mut other_method = modern_headers();
        other_method[1] = (METHOD, "tools/list");
        assert!(refused(other_method));
        let mut other_version = modern_headers();
        other_version[0] = (PROTOCOL_VERSION, "2025-11-25");
        assert!(refused(other_version));
        let mut twice = modern_headers();
        twice.push((NAME, "book_flight"));
        assert!(refused(twice));
        let mut bad_b64 = modern_headers();
        bad_b64[2] = (NAME, "=?base64?!!!?=");
        assert!(refused(bad_b64));
    }

    #[test]
    fn a_modern_request_without_its_meta_version_is_invalid_params() {
        let m = inspect(br#"{"jsonrpc":"2.0","id":1,"method":"tools/list","params":{}}"#)
            .expect("message");
        let h = headers(&[(PROTOCOL_VERSION, "2026-07-28"), (METHOD, "tools/list")]);
        assert_eq!(check(&h, &m), Err(TransportError::MissingMetaVersion));
        // A disagreement is a mismatch even when one side names an unknown version.
        let meta = inspect(
            br#"{"jsonrpc":"2.0","id":1,"method":"tools/list","params":{"_meta":{"io.modelcontextprotocol/protocolVersion":"2026-07-28"}}}"#,
        )
        .expect("message");
        let h = headers(&[(PROTOCOL_VERSION, "2099-01-01"), (METHOD, "tools/list")]);
        assert!(matches!(
            check(&h, &meta),
            Err(TransportError::HeaderMismatch(_))
        ));
    }

    #[test]
    fn an_unknown_version_is_unsupported() {
        let m = inspect(br#"{"jsonrpc":"2.0","id":1,"method":"ping"}"#).expect("message");
        assert_eq!(
            check(&headers(&[(PROTOCOL_VERSION, "2099-01-01")]), &m),
            Err(TransportError::UnsupportedVersion {
                requested: "2099-01-01".into(),
                per_request: false,
            })
        );
        let in_meta = inspect(
            br#"{"jsonrpc":"2.0","id":1,"method":"ping","params":{"_meta":{"io.modelcontextprotocol/protocolVersion":"1999"}}}"#,
        )
        .expect("message");
        assert_eq!(
            check(&headers(&[(PROTOCOL_VERSION, "1999")]), &in_meta),
            Err(TransportError::UnsupportedVersion {
                requested: "1999".into(),
                per_request: true
            })
        );
        assert_eq!(supported_versions(true), [MODERN_VERSION]);
        assert_eq!(supported_versions(false), PROTOCOL_VERSIONS);
    }

    #[test]
    fn handshake_clients_need_no_headers_but_those_sent_must_agree() {
        let call = br#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"a"}}"#;
        let m = inspect(call).expect("message");
        assert_eq!(check(&HeaderMap::new(), &m), Ok(Era::Handshake));
        assert_eq!(
            check(&headers(&[(PROTOCOL_VERSION, "2025-06-18")]), &m),
            Ok(Era::Handshake)
        );
        assert!(check(&headers(&[(NAME, "b")]), &m).is_err());
        let init = inspect(br#"{"jsonrpc":"2.0","id":1,"method":"initialize","params":{}}"#)
            .expect("message");
        assert!(check(&headers(&[(NAME, "x")]), &init).is_err());
        let answer = inspect(br#"{"jsonrpc":"2.0","id":"s1","result":{}}"#).expect("message");
        assert_eq!(check(&HeaderMap::new(), &answer), Ok(Era::Handshake));
        assert!(check(&headers(&[(METHOD, "x")]), &answer).is_err());
    }
}
