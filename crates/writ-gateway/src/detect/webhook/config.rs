//! A webhook's configuration: the `[[detection.webhooks]]` entry as written, and its
//! validation (URL policy, secret length, attempts and timeouts, trusted CAs).

use std::time::Duration;

use reqwest::Url;
use serde::Deserialize;
use writ_providers::UpstreamSecret;

use super::{
    DEFAULT_BACKOFF_BASE, DEFAULT_MAX_ATTEMPTS, DEFAULT_TIMEOUT, MAX_ATTEMPTS_LIMIT,
    MIN_SECRET_LEN, Webhooks,
};

/// One `[[detection.webhooks]]` entry as written in the config file.
///
/// `secret` is taken as is: expand `${env:…}` references before [`WebhookConfig::from_raw`].
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawWebhook {
    /// Receiver URL, `http` or `https`.
    pub url: Option<String>,
    /// HMAC key for the signature.
    pub secret: Option<String>,
    /// Detector names to send; absent means all.
    pub detectors: Option<Vec<String>>,
    /// Per-attempt timeout.
    #[serde(default, with = "humantime_serde")]
    pub timeout: Option<Duration>,
    /// Attempts, the first included.
    pub max_attempts: Option<u32>,
    /// Wait before the first retry, doubled on each further one.
    #[serde(default, with = "humantime_serde")]
    pub backoff_base: Option<Duration>,
    /// PEM file of CA certificates trusted for this receiver besides the public roots
    /// (a receiver behind a private CA).
    pub ca_file: Option<std::path::PathBuf>,
    /// Allow a receiver on a loopback, private or link-local address (as for upstreams).
    pub allow_private_network: Option<bool>,
}

impl std::fmt::Debug for RawWebhook {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RawWebhook")
            .field("url", &self.url.as_ref().map(|_| "<url>"))
            .field("secret", &self.secret.as_ref().map(|_| "<redacted>"))
            .field("detectors", &self.detectors)
            .field("timeout", &self.timeout)
            .field("max_attempts", &self.max_attempts)
            .field("backoff_base", &self.backoff_base)
            .field("ca_file", &self.ca_file)
            .field("allow_private_network", &self.allow_private_network)
            .finish()
    }
}

/// One `[[detection.webhooks]]` entry, validated.
#[derive(Clone, Debug)]
pub struct WebhookConfig {
    /// Receiver URL: `http` or `https`, with a host, no user info, fragment or credential
    /// in the query.
    pub url: Url,
    /// HMAC-SHA256 key; its `Debug` shows only a fingerprint.
    pub secret: UpstreamSecret,
    /// Only events of these detectors are sent; `None` sends all.
    pub detectors: Option<Vec<String>>,
    /// Per-attempt timeout.
    pub timeout: Duration,
    /// Attempts, the first included (at least 1).
    pub max_attempts: u32,
    /// Wait before the first retry, doubled per attempt up to [`MAX_BACKOFF`](super::MAX_BACKOFF).
    pub backoff_base: Duration,
    /// CA certificates trusted for this receiver besides the public (webpki) roots.
    pub extra_roots: Vec<rustls_pki_types::CertificateDer<'static>>,
    /// The receiver may be on a loopback, private or link-local address.
    pub allow_private_network: bool,
}

impl WebhookConfig {
    /// Validates a config entry; errors say what is wrong without echoing the URL or secret.
    pub fn from_raw(raw: RawWebhook) -> Result<WebhookConfig, String> {
        let url = validate_url(raw.url.as_deref().ok_or("webhook: `url` is required")?)?;
        let secret = raw.secret.ok_or("webhook: `secret` is required")?;
        if secret.len() < MIN_SECRET_LEN {
            return Err(format!(
                "webhook: `secret` must be at least {MIN_SECRET_LEN} bytes"
            ));
        }
        let detectors = match raw.detectors {
            None => None,
            Some(list) if list.is_empty() => {
                return Err(
                    "webhook: `detectors` is empty; omit it to receive every detector".into(),
                );
            }
            Some(list) if list.iter().any(|d| d.trim().is_empty()) => {
                return Err("webhook: `detectors` contains an empty name".into());
            }
            Some(list) => Some(list),
        };
        let timeout = raw.timeout.unwrap_or(DEFAULT_TIMEOUT);
        if timeout.is_zero() {
            return Err("webhook: `timeout` must be positive".into());
        }
        let max_attempts = raw.max_attempts.unwrap_or(DEFAULT_MAX_ATTEMPTS);
        if !(1..=MAX_ATTEMPTS_LIMIT).contains(&max_attempts) {
            return Err(format!(
                "webhook: `max_attempts` must be between 1 and {MAX_ATTEMPTS_LIMIT}"
            ));
        }
        let backoff_base = raw.backoff_base.unwrap_or(DEFAULT_BACKOFF_BASE);
        if backoff_base.is_zero() {
            return Err("webhook: `backoff_base` must be positive".into());
        }
        let extra_roots = match &raw.ca_file {
            None => Vec::new(),
            Some(path) => {
                use rustls_pki_types::pem::PemObject;
                let certs: Vec<_> = rustls_pki_types::CertificateDer::pem_file_iter(path)
                    .map_err(|e| format!("webhook: `ca_file` cannot be read: {e}"))?
                    .collect::<Result<_, _>>()
                    .map_err(|e| format!("webhook: `ca_file` is not PEM certificates: {e}"))?;
                if certs.is_empty() {
                    return Err("webhook: `ca_file` holds no certificate".into());
                }
                Webhooks::client_with(&certs, false)?;
                certs
            }
        };
        // The egress policy of upstreams (DESIGN §6): literal addresses are checked here,
        // names when they are resolved.
        let allow_private_network = raw.allow_private_network.unwrap_or(false);
        let literal = url
            .host_str()
            .map(|h| h.trim_start_matches('[').trim_end_matches(']'))
            .and_then(|h| h.parse::<std::net::IpAddr>().ok());
        if literal.is_some_and(crate::upstream::egress::is_forbidden) && !allow_private_network {
            return Err("webhook: `url` points outside the public internet; set allow_private_network = true if that is intended".into());
        }
        Ok(WebhookConfig {
            allow_private_network,
            url,
            secret: UpstreamSecret::new(secret),
            detectors,
            timeout,
            max_attempts,
            backoff_base,
            extra_roots,
        })
    }

    /// Whether events of `detector` go to this webhook.
    pub fn wants(&self, detector: &str) -> bool {
        self.detectors
            .as_ref()
            .is_none_or(|list| list.iter().any(|d| d == detector))
    }
}

fn validate_url(raw: &str) -> Result<Url, String> {
    let url = Url::parse(raw).map_err(|e| format!("webhook: `url` is not a valid URL: {e}"))?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err("webhook: `url` must be http or https".into());
    }
    if url.host_str().is_none_or(str::is_empty) {
        return Err("webhook: `url` has no host".into());
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err("webhook: `url` must not contain user info; sign with `secret` instead".into());
    }
    if url.fragment().is_some() {
        return Err("webhook: `url` must not have a fragment".into());
    }
    let scanner = writ_detect::Scanner::builtin()
        .map_err(|_| "webhook: could not build the credential scanner".to_string())?;
    let path_and_query = match url.query() {
        Some(q) => format!("{}?{q}", url.path()),
        None => url.path().to_string(),
    };
    if let Some(finding) = writ_detect::url::check_url(&path_and_query, &scanner) {
        let place = match finding.location {
            writ_detect::url::UrlLocation::QueryParam { name: Some(n), .. } => {
                format!("query parameter `{n}`")
            }
            writ_detect::url::UrlLocation::QueryParam { index, .. } => {
                format!("query parameter {index}")
            }
            writ_detect::url::UrlLocation::PathSegment { index } => {
                format!("path segment {index}")
            }
        };
        return Err(format!(
            "webhook: `url` carries a credential in {place} ({}); use `secret` instead",
            finding.rule.id()
        ));
    }
    Ok(url)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::detect::webhook::tests::{SECRET, config};

    fn parse(toml_text: &str) -> Result<WebhookConfig, String> {
        let raw: RawWebhook = toml::from_str(toml_text).map_err(|e| e.to_string())?;
        WebhookConfig::from_raw(raw)
    }

    fn err(toml_text: &str) -> String {
        parse(toml_text).expect_err(toml_text)
    }

    #[test]
    fn config_defaults_and_durations() {
        let c = parse(&format!(
            "url = \"https://hooks.example.com/writ\"\nsecret = \"{SECRET}\"\n"
        ))
        .unwrap();
        assert_eq!(c.url.as_str(), "https://hooks.example.com/writ");
        assert_eq!(c.secret.expose(), SECRET);
        assert_eq!(c.detectors, None);
        assert_eq!(c.timeout, DEFAULT_TIMEOUT);
        assert_eq!(c.max_attempts, DEFAULT_MAX_ATTEMPTS);
        assert_eq!(c.backoff_base, DEFAULT_BACKOFF_BASE);

        let c = parse(&format!(
            "url = \"http://10.0.0.1:9000/x?team=sec\"\nsecret = \"{SECRET}\"\n\
             detectors = [\"jwt_weak\"]\ntimeout = \"250ms\"\nmax_attempts = 1\nbackoff_base = \"1s\"\n\
             allow_private_network = true\n"
        ))
        .unwrap();
        assert_eq!(c.detectors, Some(vec!["jwt_weak".to_string()]));
        assert_eq!(c.timeout, Duration::from_millis(250));
        assert_eq!(c.max_attempts, 1);
        assert_eq!(c.backoff_base, Duration::from_secs(1));
    }

    #[test]
    fn config_errors_are_clear_and_never_echo_secrets() {
        let with =
            |url: &str, rest: &str| format!("url = \"{url}\"\nsecret = \"{SECRET}\"\n{rest}");
        assert!(err(&with("ftp://h/x", "")).contains("http or https"));
        assert!(err(&with("file:///etc/passwd", "")).contains("http or https"));
        assert!(err(&with("not a url", "")).contains("not a valid URL"));
        let e = err(&with("https://u:hunter2hunter2@h/x", ""));
        assert!(e.contains("user info") && !e.contains("hunter2"), "{e}");
        let e = err(&with("https://h/x?token=abcdef0123456789", ""));
        assert!(e.contains("`token`") && !e.contains("abcdef"), "{e}");
        assert!(err(&with("https://h/x#frag", "")).contains("fragment"));
        assert!(err("url = \"https://h/x\"\n").contains("`secret` is required"));
        assert!(err(&format!("secret = \"{SECRET}\"\n")).contains("`url` is required"));
        assert!(err("url = \"https://h/x\"\nsecret = \"short\"\n").contains("at least 16"));
        assert!(err(&with("https://h/x", "max_attempts = 0\n")).contains("max_attempts"));
        assert!(err(&with("https://h/x", "max_attempts = 99\n")).contains("max_attempts"));
        assert!(err(&with("https://h/x", "timeout = \"0s\"\n")).contains("timeout"));
        assert!(err(&with("https://h/x", "backoff_base = \"0s\"\n")).contains("backoff_base"));
        assert!(err(&with("https://h/x", "detectors = []\n")).contains("detectors"));
        assert!(err(&with("https://h/x", "detectors = [\"\"]\n")).contains("empty name"));
        assert!(err(&with("https://h/x", "retries = 3\n")).contains("unknown field"));
    }

    #[test]
    fn debug_never_shows_the_secret() {
        let c = config("https://hooks.example.com/x");
        let shown = format!("{c:?}");
        assert!(!shown.contains(SECRET) && shown.contains("fp:"), "{shown}");
        let raw: RawWebhook =
            toml::from_str(&format!("url = \"https://h/x\"\nsecret = \"{SECRET}\"\n")).unwrap();
        let shown = format!("{raw:?}");
        assert!(!shown.contains(SECRET), "{shown}");
    }
}
