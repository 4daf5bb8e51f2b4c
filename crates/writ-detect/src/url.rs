//! Credentials in URLs: a query parameter named like a credential, or any path segment,
//! parameter name or value that the scanner recognises as a secret.
//!
//! URLs end up in access logs, proxies, browser history and `Referer` headers, so the
//! gateway refuses requests that carry a credential in them (DESIGN §4, extract). A
//! finding names where the credential is — the parameter's name or the segment's index —
//! and never contains the value.

use crate::scanner::{ScanRule, Scanner};

/// Query parameter names that carry credentials, compared after lower-casing and dropping
/// everything but letters and digits (so `API-Key`, `api_key` and `apiKey` are one name).
///
/// API keys (`key`, `api_key`, `x-api-key`, Gemini's `key`), bearer and OAuth tokens
/// (`token`, `access_token`, `id_token`, `refresh_token`, `auth`, `authorization`,
/// GitLab's `private_token`), passwords, client and other secrets, and the signatures and
/// credentials of pre-signed URLs (Azure SAS `sig`, AWS `X-Amz-Signature`/`-Credential`/
/// `-Security-Token`, Google `X-Goog-Signature`/`-Credential`): a pre-signed URL is a
/// bearer credential too. Deliberately absent: names that merely end in `token` such as
/// `pageToken` or `nextToken`, which are pagination cursors.
pub const CREDENTIAL_PARAMS: &[&str] = &[
    "key",
    "apikey",
    "xapikey",
    "token",
    "accesstoken",
    "idtoken",
    "refreshtoken",
    "authtoken",
    "sessiontoken",
    "privatetoken",
    "auth",
    "authorization",
    "bearer",
    "password",
    "passwd",
    "pwd",
    "secret",
    "clientsecret",
    "secretkey",
    "accesskey",
    "privatekey",
    "sig",
    "signature",
    "xamzsignature",
    "xamzcredential",
    "xamzsecuritytoken",
    "xgoogsignature",
    "xgoogcredential",
];

/// Values shorter than this under a credential name are not reported: `?auth=1` or
/// `?key=id` are flags and sort keys, not credentials.
pub const MIN_CREDENTIAL_VALUE_LEN: usize = 4;

/// Where in the URL the credential is.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum UrlLocation {
    /// A query parameter: its position among the parameters (from 0) and its decoded name,
    /// unless the name itself is a secret or unprintable, then `None`.
    QueryParam {
        /// Position among the `&`-separated parameters.
        index: usize,
        /// Decoded name, when safe to show.
        name: Option<String>,
    },
    /// A path segment, by position among the `/`-separated segments (from 0, the empty
    /// segment before the leading `/` not counted).
    PathSegment {
        /// Position of the segment.
        index: usize,
    },
}

/// Why the location was flagged.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum UrlRule {
    /// The parameter's name is one of [`CREDENTIAL_PARAMS`].
    CredentialParam,
    /// The scanner found a secret in the decoded name, value or segment.
    Secret(ScanRule),
}

impl UrlRule {
    /// Stable id: `credential-param`, or the id of the scan rule that matched.
    pub fn id(self) -> &'static str {
        match self {
            UrlRule::CredentialParam => "credential-param",
            UrlRule::Secret(d) => d.id(),
        }
    }
}

/// A credential in a URL.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UrlFinding {
    /// Where it is.
    pub location: UrlLocation,
    /// Why it was flagged.
    pub rule: UrlRule,
}

/// The first credential in `path_and_query` (as in an HTTP request line: `/v1/x?a=b`),
/// looking at path segments first, then query parameters in order.
pub fn check_url(path_and_query: &str, scanner: &Scanner) -> Option<UrlFinding> {
    let without_fragment = path_and_query.split('#').next().unwrap_or_default();
    let (path, query) = without_fragment
        .split_once('?')
        .unwrap_or((without_fragment, ""));
    let segments = path.strip_prefix('/').unwrap_or(path).split('/');
    for (index, segment) in segments.enumerate() {
        if let Some(f) = scanner.scan(&percent_decode(segment, false)).first() {
            return Some(UrlFinding {
                location: UrlLocation::PathSegment { index },
                rule: UrlRule::Secret(f.rule),
            });
        }
    }
    let params = query.split('&').filter(|p| !p.is_empty());
    for (index, param) in params.enumerate() {
        let (raw_name, raw_value) = param.split_once('=').unwrap_or((param, ""));
        let name = percent_decode(raw_name, true);
        let value = percent_decode(raw_value, true);
        let name_secret = scanner.scan(&name).first().map(|f| f.rule);
        let shown_name = match name_secret {
            None => String::from_utf8(name.clone())
                .ok()
                .filter(|n| n.len() <= 64 && n.chars().all(|c| c.is_ascii_graphic())),
            Some(_) => None,
        };
        let location = UrlLocation::QueryParam {
            index,
            name: shown_name,
        };
        let rule = if let Some(found) = name_secret {
            Some(UrlRule::Secret(found))
        } else if let Some(f) = scanner.scan(&value).first() {
            Some(UrlRule::Secret(f.rule))
        } else if is_credential_name(&name) && value.trim_ascii().len() >= MIN_CREDENTIAL_VALUE_LEN
        {
            Some(UrlRule::CredentialParam)
        } else {
            None
        };
        if let Some(rule) = rule {
            return Some(UrlFinding { location, rule });
        }
    }
    None
}

fn is_credential_name(name: &[u8]) -> bool {
    let normalized: Vec<u8> = name
        .iter()
        .filter(|b| b.is_ascii_alphanumeric())
        .map(u8::to_ascii_lowercase)
        .collect();
    CREDENTIAL_PARAMS
        .iter()
        .any(|p| p.as_bytes() == normalized.as_slice())
}

/// `%XX` decoding (invalid escapes kept as they are); in query components `+` is a space.
fn percent_decode(s: &str, plus_is_space: bool) -> Vec<u8> {
    fn hex(c: u8) -> Option<u8> {
        (c as char).to_digit(16).and_then(|d| u8::try_from(d).ok())
    }
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let escaped = match bytes[i..] {
            [b'%', h, l, ..] => hex(h).zip(hex(l)).map(|(h, l)| h << 4 | l),
            _ => None,
        };
        match (escaped, bytes[i]) {
            (Some(b), _) => {
                out.push(b);
                i += 3;
            }
            (None, b'+') if plus_is_space => {
                out.push(b' ');
                i += 1;
            }
            (None, b) => {
                out.push(b);
                i += 1;
            }
        }
    }
    out
}

#[cfg(test)]
mod tests;
