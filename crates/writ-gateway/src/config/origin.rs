//! Web origins as `Origin` headers and `[server] mcp_allowed_origins` spell them: what is
//! one (RFC 6454 §6.2) and its one canonical form, so two spellings of an origin compare
//! equal. Pure: the MCP routes' check is `pipeline/origin.rs`.

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
