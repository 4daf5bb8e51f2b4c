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

pub(crate) use crate::config::origin::{OriginError, canonical};
use crate::error::GatewayError;
use crate::gateway::Gateway;

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
///
/// A gateway whose own origin is on the loopback interface (a developer's machine) also
/// allows every loopback origin (`localhost`, `127.0.0.1`, `[::1]`, any port), as MCP's
/// SDKs do by default: a rebinding attack needs a name that resolves elsewhere first, and
/// pages on this machine are this machine's.
fn allowed(presented: &str, own: &str, allowed: &[String]) -> Result<bool, OriginError> {
    let origin = canonical(presented)?;
    let own = origin_of_url(own);
    let both_loopback = own.as_deref().is_some_and(is_loopback) && is_loopback(&origin);
    Ok(own.as_deref() == Some(origin.as_str()) || both_loopback || allowed.contains(&origin))
}

/// Whether a canonical origin's host is a loopback name or address.
fn is_loopback(origin: &str) -> bool {
    let Some((_, authority)) = origin.split_once("://") else {
        return false;
    };
    let host = match authority.strip_prefix('[') {
        Some(rest) => rest.split(']').next().unwrap_or_default(),
        None => authority.rsplit_once(':').map_or(authority, |(h, _)| h),
    };
    host == "localhost"
        || host
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
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
        // Loopback origins are one another's only when the gateway itself is on loopback.
        assert_eq!(allowed("http://localhost:5173", own, &extra), Ok(false));
        let local = "http://127.0.0.1:8080";
        for origin in [
            "http://localhost:5173",
            "http://127.0.0.1",
            "http://[::1]:9",
        ] {
            assert_eq!(allowed(origin, local, &extra), Ok(true), "{origin}");
        }
        for origin in [
            "http://localhost.evil.example",
            "http://127.0.0.1.nip.io:8080",
        ] {
            assert_eq!(allowed(origin, local, &extra), Ok(false), "{origin}");
        }
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
