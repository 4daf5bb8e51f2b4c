//! Origin: on MCP endpoints, a request whose `Origin` header is present must come from an
//! allowed web origin (MCP Streamable HTTP, "Security": servers MUST validate `Origin` to
//! stop DNS rebinding, and answer an invalid one 403).
//!
//! Allowed are the gateway's own origin (that of its issuer URL, `server.public_url`) and
//! those the operator lists in `[server] mcp_allowed_origins`. A request without `Origin`
//! passes: browsers send one on every cross-origin request and on every POST, so its absence
//! means a non-browser client, which DNS rebinding cannot drive. `null` (sandboxed frames,
//! `file:` pages, redirects across origins), several `Origin` headers, and anything that is
//! not one serialized origin are refused, as is every origin not allowed.
//!
//! Only MCP routes check: the MCP spec requires it there, and browser-based MCP clients
//! exist. The model API routes are called with a writ in a header, which a page can send
//! only after a CORS preflight the gateway never grants, so a hostile page gains nothing
//! there, and servers calling those routes sometimes send an `Origin` of their own.

use http::HeaderMap;
use writ_providers::RouteSpec;

use crate::error::GatewayError;
use crate::gateway::Gateway;

/// Why a text is not a serialized web origin (`scheme://host[:port]`, RFC 6454 §6.2).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(crate) enum OriginError {
    /// `null`: an opaque origin, which names no site.
    #[error("`null` is an opaque origin and names no site")]
    Opaque,
    /// No `scheme://`, or a scheme with characters a scheme cannot have.
    #[error("must start with a scheme and `://`, as `https://app.example.com`")]
    Scheme,
    /// A path, query, fragment or user name after the host.
    #[error("must be `scheme://host[:port]` only: no path (not even `/`), query or user")]
    Extra,
    /// The host is empty or has characters a host name or IP literal cannot have.
    #[error("the host is empty or not a valid host name or IP address")]
    Host,
    /// The port is not a number from 1 to 65535.
    #[error("the port must be a number from 1 to 65535")]
    Port,
}

/// `text`, a serialized origin, in its one canonical form: scheme and host lowercased, the
/// scheme's default port (80 for `http`, 443 for `https`) left out. Two texts name the same
/// origin exactly when their canonical forms are equal.
pub(crate) fn canonical(text: &str) -> Result<String, OriginError> {
    if text == "null" {
        return Err(OriginError::Opaque);
    }
    let (scheme, authority) = text.split_once("://").ok_or(OriginError::Scheme)?;
    let scheme_ok = scheme.starts_with(|c: char| c.is_ascii_alphabetic())
        && scheme
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '+' | '-' | '.'));
    if !scheme_ok {
        return Err(OriginError::Scheme);
    }
    if authority.contains(['/', '?', '#', '@', '\\']) {
        return Err(OriginError::Extra);
    }
    let (host, port) = split_port(authority)?;
    let scheme = scheme.to_ascii_lowercase();
    let host = host.to_ascii_lowercase();
    let default = match scheme.as_str() {
        "http" => Some(80),
        "https" => Some(443),
        _ => None,
    };
    Ok(match port {
        Some(p) if Some(p) != default => format!("{scheme}://{host}:{p}"),
        _ => format!("{scheme}://{host}"),
    })
}

/// The host and port of an origin's authority; the host checked for its characters.
fn split_port(authority: &str) -> Result<(&str, Option<u16>), OriginError> {
    let (host, port) = if let Some(rest) = authority.strip_prefix('[') {
        // An IPv6 literal: `[` hex digits, colons and dots `]`, then maybe `:port`.
        let end = rest.find(']').ok_or(OriginError::Host)?;
        let literal = &rest[..end];
        let ok = !literal.is_empty()
            && literal
                .chars()
                .all(|c| c.is_ascii_hexdigit() || matches!(c, ':' | '.'));
        if !ok {
            return Err(OriginError::Host);
        }
        let after = &rest[end + 1..];
        let port = match after {
            "" => None,
            p => Some(p.strip_prefix(':').ok_or(OriginError::Extra)?),
        };
        (&authority[..end + 2], port)
    } else {
        match authority.rsplit_once(':') {
            Some((h, p)) => (h, Some(p)),
            None => (authority, None),
        }
    };
    if !host.starts_with('[') {
        let ok = !host.is_empty()
            && host
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '.' | '_'));
        if !ok {
            return Err(OriginError::Host);
        }
    }
    let port = match port {
        None => None,
        Some(p) => {
            let ok = !p.is_empty() && p.len() <= 5 && p.bytes().all(|b| b.is_ascii_digit());
            match p.parse::<u16>() {
                Ok(n) if ok && n > 0 => Some(n),
                _ => return Err(OriginError::Port),
            }
        }
    };
    Ok((host, port))
}

/// The canonical origin of `url` (`scheme://authority/…`): its scheme and authority, the
/// user name dropped. `None` when it has none.
fn origin_of_url(url: &str) -> Option<String> {
    let (scheme, rest) = url.split_once("://")?;
    let end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let authority = &rest[..end];
    let authority = authority.rsplit_once('@').map_or(authority, |(_, h)| h);
    canonical(&format!("{scheme}://{authority}")).ok()
}

/// Whether `presented` (an `Origin` header's text) is `own` (the gateway's URL) or one of
/// `allowed` (canonical origins): refused as [`OriginError`] when it is no origin at all,
/// `Ok(false)` when it is another origin.
fn allowed(presented: &str, own: &str, allowed: &[String]) -> Result<bool, OriginError> {
    let origin = canonical(presented)?;
    Ok(origin_of_url(own).as_deref() == Some(origin.as_str()) || allowed.contains(&origin))
}

/// Refuses a request on an MCP route whose `Origin` is present and not allowed (see the
/// module's documentation), with [`GatewayError::OriginNotAllowed`] (403). Other routes,
/// and requests without `Origin`, pass.
pub(crate) fn check(
    gw: &Gateway,
    route: &RouteSpec,
    headers: &HeaderMap,
) -> Result<(), GatewayError> {
    if !route.is_mcp_transport() {
        return Ok(());
    }
    let mut values = headers.get_all(http::header::ORIGIN).iter();
    let Some(value) = values.next() else {
        return Ok(());
    };
    let verdict = match (values.next(), value.to_str()) {
        (None, Ok(text)) => allowed(text, &gw.issuer(), &gw.mcp_allowed_origins),
        // Several origins, or bytes no origin has: no one origin to allow.
        _ => Err(OriginError::Extra),
    };
    match verdict {
        Ok(true) => Ok(()),
        Ok(false) | Err(_) => Err(GatewayError::OriginNotAllowed),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn origins_have_one_canonical_form() {
        for (text, expected) in [
            ("https://App.Example.com", "https://app.example.com"),
            ("https://app.example.com:443", "https://app.example.com"),
            ("http://app.example.com:80", "http://app.example.com"),
            ("http://127.0.0.1:8787", "http://127.0.0.1:8787"),
            (
                "HTTPS://app.example.com:8443",
                "https://app.example.com:8443",
            ),
            ("http://[::1]:3000", "http://[::1]:3000"),
            ("http://[::1]", "http://[::1]"),
            ("chrome-extension://abcdef", "chrome-extension://abcdef"),
        ] {
            assert_eq!(canonical(text).as_deref(), Ok(expected), "{text}");
        }
    }

    #[test]
    fn what_is_not_one_origin_is_refused_by_cause() {
        for (text, cause) in [
            ("null", OriginError::Opaque),
            ("app.example.com", OriginError::Scheme),
            ("://app.example.com", OriginError::Scheme),
            ("1http://app.example.com", OriginError::Scheme),
            ("https://app.example.com/", OriginError::Extra),
            ("https://app.example.com/path", OriginError::Extra),
            ("https://app.example.com?x=1", OriginError::Extra),
            ("https://user@app.example.com", OriginError::Extra),
            ("https://", OriginError::Host),
            ("https://app example.com", OriginError::Host),
            ("https://app.exämple.com", OriginError::Host),
            ("https://[zz::1]", OriginError::Host),
            ("https://[::1]x", OriginError::Extra),
            ("https://app.example.com:", OriginError::Port),
            ("https://app.example.com:0", OriginError::Port),
            ("https://app.example.com:65536", OriginError::Port),
            ("https://app.example.com:+80", OriginError::Port),
            ("https://a:b:c", OriginError::Host),
        ] {
            assert_eq!(canonical(text), Err(cause), "{text}");
        }
    }

    #[test]
    fn the_gateways_own_origin_is_that_of_its_url() {
        let extra = vec!["https://app.example.com".to_string()];
        let own = "https://writ.example.com/base";
        assert_eq!(allowed("https://writ.example.com", own, &extra), Ok(true));
        assert_eq!(
            allowed("https://WRIT.example.com:443", own, &extra),
            Ok(true)
        );
        assert_eq!(allowed("https://app.example.com", own, &extra), Ok(true));
        assert_eq!(allowed("http://writ.example.com", own, &extra), Ok(false));
        assert_eq!(
            allowed("https://writ.example.com:8443", own, &extra),
            Ok(false)
        );
        assert_eq!(allowed("https://evil.example", own, &extra), Ok(false));
        assert_eq!(allowed("null", own, &extra), Err(OriginError::Opaque));
        assert_eq!(
            allowed("http://127.0.0.1:8787", "http://127.0.0.1:8787", &[]),
            Ok(true)
        );
        assert_eq!(
            origin_of_url("https://user:pw@writ.example.com:8443/x?y").as_deref(),
            Some("https://writ.example.com:8443")
        );
        assert_eq!(origin_of_url(""), None);
    }
}
