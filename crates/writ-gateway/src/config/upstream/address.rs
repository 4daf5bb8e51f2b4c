//! Where a base URL points: its host read as the system resolver reads it (an IPv4
//! address in octal, hex, decimal or shortened form is an address, not a name), the
//! checks every base URL passes (no address outside the public internet unless allowed,
//! no plain HTTP off this host unless allowed), and the resolution check of a name.

use std::net::{IpAddr, Ipv4Addr};

use http::Uri;

use crate::config::ConfigError;
use crate::upstream::egress::is_forbidden;

/// The address `host` (as in a URI: IPv6 in brackets) denotes without a DNS lookup, read
/// as `getaddrinfo` reads it: an IPv6 literal, or an IPv4 address in dotted decimal or in
/// the `inet_aton` forms (`0177.0.0.1` octal, `0x7f000001` hex, `2130706433` decimal,
/// `127.1` with the last part filling the remaining bytes). `None` for a name.
pub(crate) fn literal_ip(host: &str) -> Option<IpAddr> {
    if let Some(inner) = host.strip_prefix('[').and_then(|h| h.strip_suffix(']')) {
        return inner.parse().ok();
    }
    if let Ok(ip) = host.parse::<IpAddr>() {
        return Some(ip);
    }
    inet_aton(host).map(IpAddr::V4)
}

/// glibc's `inet_aton`: 1 to 4 parts split by `.`, each decimal, octal (leading `0`) or
/// hex (`0x`), every part but the last one byte, the last filling the rest.
fn inet_aton(text: &str) -> Option<Ipv4Addr> {
    let parts: Vec<&str> = text.split('.').collect();
    if parts.len() > 4 {
        return None;
    }
    let mut values = Vec::with_capacity(parts.len());
    for part in &parts {
        if !part.as_bytes().first()?.is_ascii_digit() {
            return None;
        }
        let (digits, radix) =
            if let Some(hex) = part.strip_prefix("0x").or_else(|| part.strip_prefix("0X")) {
                (hex, 16)
            } else if part.len() > 1 && part.starts_with('0') {
                (&part[1..], 8)
            } else {
                (*part, 10)
            };
        if digits.is_empty() || !digits.chars().all(|c| c.is_digit(radix)) {
            return None;
        }
        values.push(u32::from_str_radix(digits, radix).ok()?);
    }
    let (last, leading) = values.split_last()?;
    if leading.iter().any(|v| *v > 0xff) {
        return None;
    }
    let room = 32 - 8 * leading.len() as u32;
    if room < 32 && *last >> room != 0 {
        return None;
    }
    let mut address = *last;
    for (i, v) in leading.iter().enumerate() {
        address |= v << (24 - 8 * i as u32);
    }
    Some(Ipv4Addr::from(address))
}

/// Whether `uri` points at this host: a loopback address (in any spelling the resolver
/// reads as one) or `localhost`.
pub(crate) fn is_loopback(uri: &Uri) -> bool {
    let Some(host) = uri.host() else {
        return false;
    };
    host.eq_ignore_ascii_case("localhost") || literal_ip(host).is_some_and(|ip| ip.is_loopback())
}

/// The checks every base URL passes, declared in `writ.toml` or created through the API:
/// a literal address outside the public internet (it never reaches the resolver, which
/// checks names) is refused unless `allow_private_network`; plain `http://` to another
/// host (which would send the credential unencrypted) unless `allow_plaintext`.
pub(crate) fn check_base_url(
    field: &str,
    base_url: &Uri,
    allow_private_network: bool,
    allow_plaintext: bool,
) -> Result<(), ConfigError> {
    let invalid = |reason: &str| ConfigError::Invalid {
        field: field.to_string(),
        reason: reason.to_string(),
    };
    if let Some(ip) = base_url.host().and_then(literal_ip)
        && is_forbidden(ip)
        && !allow_private_network
    {
        return Err(invalid(
            "points outside the public internet; set allow_private_network = true if that is intended",
        ));
    }
    if base_url.scheme_str() == Some("http") && !is_loopback(base_url) && !allow_plaintext {
        return Err(invalid(
            "plain http:// to another host would send the upstream credential unencrypted; \
             use https://, or set allow_plaintext = true on this upstream if the network is trusted",
        ));
    }
    Ok(())
}

/// The check of the token endpoint a provider exchanges assertions at (Vertex: the
/// key's `token_uri`, or the setting's), as `field`: a literal address outside the public
/// internet never reaches the egress resolver, so it is refused here unless
/// `allow_private_network`, as a base URL's is. A key given as a tenant's credential
/// names its own endpoint, so this runs on every build. Plain `http://` is left to the
/// operator (the assertion expires within the hour; the endpoint is the key issuer's).
pub(crate) fn check_token_endpoint(
    field: &str,
    provider: &writ_providers::Provider,
    allow_private_network: bool,
) -> Result<(), ConfigError> {
    let Some((_, token_uri)) = provider.access_token_account() else {
        return Ok(());
    };
    match token_uri.host().and_then(literal_ip) {
        Some(ip) if is_forbidden(ip) && !allow_private_network => Err(ConfigError::Invalid {
            field: field.to_string(),
            reason: "the token endpoint points outside the public internet; set allow_private_network = true if that is intended"
                .to_string(),
        }),
        _ => Ok(()),
    }
}

/// Resolves `uri`'s host as the gateway will when it sends, and refuses it (as
/// `field`) when it cannot be resolved or when any address it resolves to is outside the
/// public internet and `allow_private_network` is off. For the admin API to call when an
/// upstream is created or changed; the egress resolver still checks every connection
/// (a name may later resolve elsewhere). The addresses are not named in the error.
pub async fn resolve_check(
    field: &str,
    uri: &Uri,
    allow_private_network: bool,
) -> Result<(), ConfigError> {
    let invalid = |reason: String| ConfigError::Invalid {
        field: field.to_string(),
        reason,
    };
    let host = uri
        .host()
        .ok_or_else(|| invalid("has no host".to_string()))?;
    let outside = || {
        invalid(
            "resolves to an address outside the public internet (loopback, private, link-local or metadata); \
             set allow_private_network = true if that is intended"
                .to_string(),
        )
    };
    if let Some(ip) = literal_ip(host) {
        return if is_forbidden(ip) && !allow_private_network {
            Err(outside())
        } else {
            Ok(())
        };
    }
    let port = uri
        .port_u16()
        .unwrap_or(if uri.scheme_str() == Some("http") {
            80
        } else {
            443
        });
    let addresses: Vec<_> = tokio::net::lookup_host((host, port))
        .await
        .map_err(|e| {
            invalid(format!(
                "cannot resolve `{host}` ({e}); check the name: the gateway must resolve it to reach the upstream"
            ))
        })?
        .collect();
    if addresses.is_empty() {
        return Err(invalid(format!(
            "`{host}` resolves to no address; check the name"
        )));
    }
    if !allow_private_network && addresses.iter().any(|a| is_forbidden(a.ip())) {
        return Err(outside());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn uri(text: &str) -> Uri {
        text.parse().expect("a URI")
    }

    #[test]
    fn addresses_are_read_as_the_resolver_reads_them() {
        for (host, ip) in [
            ("0177.0.0.1", "127.0.0.1"),
            ("0x7f000001", "127.0.0.1"),
            ("0X7F.1", "127.0.0.1"),
            ("2130706433", "127.0.0.1"),
            ("127.1", "127.0.0.1"),
            ("169.254.43518", "169.254.169.254"),
            ("0251.0376.0251.0376", "169.254.169.254"),
            ("10.0x10.1", "10.16.0.1"),
            ("0", "0.0.0.0"),
            ("[::ffff:169.254.169.254]", "::ffff:169.254.169.254"),
            ("[::1]", "::1"),
            ("8.8.8.8", "8.8.8.8"),
        ] {
            assert_eq!(literal_ip(host), Some(ip.parse().expect("ip")), "{host}");
        }
        for name in [
            "example.com",
            "0x",
            "08.0.0.1",
            "1.2.3.4.5",
            "127.0.0.1.",
            "1..2",
            "256.0.0.1",
            "1.2.3.256",
            "1.16777216",
            "4294967296",
            "+1.2.3.4",
            "metadata.google.internal",
            "1e2",
        ] {
            assert_eq!(literal_ip(name), None, "{name}");
        }
    }

    #[test]
    fn literal_addresses_outside_the_public_internet_are_refused_unless_allowed() {
        for url in [
            "https://0177.0.0.1",
            "https://0x7f000001/v1",
            "https://2130706433",
            "https://169.254.169.254/latest",
            "https://[::ffff:169.254.169.254]",
            "https://[fd00::1]:8443",
            "https://10.0.0.1",
            "https://0251.0376.0251.0376",
        ] {
            let err = check_base_url("u", &uri(url), false, true).expect_err(url);
            assert!(err.to_string().contains("allow_private_network"), "{err}");
            check_base_url("u", &uri(url), true, true).expect(url);
        }
        check_base_url("u", &uri("https://8.8.8.8"), false, false).expect("public");
        check_base_url("u", &uri("https://api.example.com"), false, false).expect("a name");
    }

    #[test]
    fn plain_http_off_this_host_is_refused_unless_allowed() {
        let err = check_base_url("u", &uri("http://api.example.com"), false, false)
            .expect_err("plaintext");
        assert!(err.to_string().contains("allow_plaintext"), "{err}");
        check_base_url("u", &uri("http://api.example.com"), false, true).expect("allowed");
        for local in ["http://localhost:8080", "http://0177.0.0.1:8080"] {
            check_base_url("u", &uri(local), true, false).expect(local);
        }
    }

    #[tokio::test]
    async fn a_name_resolving_outside_the_public_internet_is_refused_unless_allowed() {
        let local = uri("http://localhost:9");
        let err = resolve_check("settings.base_url", &local, false)
            .await
            .expect_err("localhost is loopback");
        assert_eq!(err.field(), Some("settings.base_url"));
        assert!(
            err.to_string().contains("outside the public internet"),
            "{err}"
        );
        resolve_check("settings.base_url", &local, true)
            .await
            .expect("allowed");
        for literal in ["https://0177.0.0.1", "https://[::ffff:169.254.169.254]"] {
            resolve_check("b", &uri(literal), false)
                .await
                .expect_err(literal);
        }
    }

    #[tokio::test]
    async fn a_name_that_does_not_resolve_is_refused_clearly() {
        // Unresolvable here; where it resolves (inside GCP) it is the metadata server,
        // refused too.
        let err = resolve_check(
            "settings.base_url",
            &uri("http://metadata.google.internal"),
            false,
        )
        .await
        .expect_err("refused");
        let message = err.to_string();
        assert!(
            message.contains("cannot resolve `metadata.google.internal`")
                || message.contains("outside the public internet"),
            "{message}"
        );
        let err = resolve_check("b", &uri("https://no-such-host.invalid"), true)
            .await
            .expect_err("refused even when private networks are allowed");
        assert!(err.to_string().contains("cannot resolve"), "{err}");
    }
}
