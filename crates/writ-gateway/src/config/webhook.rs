//! `[[detection.webhooks]]`: one receiver of detection events as written, and its
//! validation (URL policy, secret length, detectors, attempts and timeouts, trusted CAs).
//! Delivery is `detect::webhook`'s; nothing here sends anything.

use std::path::PathBuf;
use std::time::Duration;

use reqwest::Url;
use serde::Deserialize;
use writ_detect::url::UrlLocation;
use writ_providers::UpstreamSecret;

use super::Detector;

/// Default per-attempt timeout.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(5);
/// Default number of attempts, the first included.
pub const DEFAULT_MAX_ATTEMPTS: u32 = 6;
/// Default wait before the first retry.
pub const DEFAULT_BACKOFF_BASE: Duration = Duration::from_millis(500);
/// Most attempts a webhook may be configured with.
pub const MAX_ATTEMPTS_LIMIT: u32 = 20;
/// Shortest accepted secret, in bytes.
pub const MIN_SECRET_LEN: usize = 16;

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
    /// Names of the detectors whose events are sent ([`Detector::as_str`]); absent means
    /// all.
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
    pub ca_file: Option<PathBuf>,
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
    pub detectors: Option<Vec<Detector>>,
    /// Per-attempt timeout.
    pub timeout: Duration,
    /// Attempts, the first included (at least 1).
    pub max_attempts: u32,
    /// Wait before the first retry, doubled per attempt up to the delivery's cap.
    pub backoff_base: Duration,
    /// CA certificates trusted for this receiver besides the public (webpki) roots; each
    /// was accepted into a root store when the config was read.
    pub extra_roots: Vec<rustls_pki_types::CertificateDer<'static>>,
    /// The receiver may be on a loopback, private or link-local address.
    pub allow_private_network: bool,
}

/// Why a `[[detection.webhooks]]` entry was refused. No variant holds the secret, and
/// none holds the URL: a URL may carry a credential.
#[derive(Debug, thiserror::Error)]
pub enum WebhookConfigError {
    /// No `url`.
    #[error("`url` is required")]
    MissingUrl,
    /// `url` does not parse.
    #[error("`url` is not a valid URL: {0}")]
    InvalidUrl(url::ParseError),
    /// `url`'s scheme is neither `http` nor `https`.
    #[error("`url` must be http or https")]
    UrlScheme,
    /// `url` has no host.
    #[error("`url` has no host")]
    UrlWithoutHost,
    /// `url` has a user name or password.
    #[error("`url` must not contain user info; sign with `secret` instead")]
    UrlUserInfo,
    /// `url` has a `#fragment`.
    #[error("`url` must not have a fragment")]
    UrlFragment,
    /// `url` carries a credential where `rule` found it.
    #[error("`url` carries a credential in {} ({rule}); use `secret` instead", place(.location))]
    UrlCredential {
        /// Where in the URL (a parameter's name only when safe to show).
        location: UrlLocation,
        /// The scanner rule that matched, such as `credential-param`.
        rule: &'static str,
    },
    /// `url` is a literal address outside the public internet and
    /// `allow_private_network` is not set.
    #[error(
        "`url` points outside the public internet; set allow_private_network = true if that is intended"
    )]
    PrivateNetwork,
    /// The built-in credential scanner `url` is checked with could not be built.
    #[error("could not build the credential scanner")]
    Scanner(#[source] writ_detect::DetectError),
    /// No `secret`.
    #[error("`secret` is required")]
    MissingSecret,
    /// `secret` is shorter than [`MIN_SECRET_LEN`] bytes.
    #[error("`secret` must be at least {MIN_SECRET_LEN} bytes")]
    ShortSecret,
    /// `detectors = []`, which would send nothing.
    #[error("`detectors` is empty; omit it to receive every detector")]
    NoDetectors,
    /// `detectors` names something that is no detector.
    #[error(
        "`detectors` names an unknown detector `{0}` (expected one of {known})",
        known = Detector::ALL.map(Detector::as_str).join(", ")
    )]
    UnknownDetector(String),
    /// `timeout` is zero.
    #[error("`timeout` must be positive")]
    ZeroTimeout,
    /// `max_attempts` is 0 or above [`MAX_ATTEMPTS_LIMIT`].
    #[error("`max_attempts` must be between 1 and {MAX_ATTEMPTS_LIMIT}")]
    MaxAttempts(u32),
    /// `backoff_base` is zero.
    #[error("`backoff_base` must be positive")]
    ZeroBackoff,
    /// `ca_file` could not be opened or read.
    #[error("`ca_file` cannot be read: {0}")]
    CaFileUnreadable(rustls_pki_types::pem::Error),
    /// `ca_file` is not a sequence of PEM certificates.
    #[error("`ca_file` is not PEM certificates: {0}")]
    CaFileNotPem(rustls_pki_types::pem::Error),
    /// `ca_file` holds no certificate.
    #[error("`ca_file` holds no certificate")]
    CaFileEmpty,
    /// A certificate of `ca_file` cannot be a trust anchor.
    #[error("`ca_file`: CA certificate refused: {0}")]
    CaRefused(rustls::Error),
}

/// `location` in words, for messages.
fn place(location: &UrlLocation) -> String {
    match location {
        UrlLocation::QueryParam { name: Some(n), .. } => format!("query parameter `{n}`"),
        UrlLocation::QueryParam { index, .. } => format!("query parameter {index}"),
        UrlLocation::PathSegment { index } => format!("path segment {index}"),
    }
}

impl WebhookConfig {
    /// Validates a config entry, defaults filled in. Fails with the first problem found,
    /// as a [`WebhookConfigError`] (never echoing the URL or secret).
    pub fn from_raw(raw: RawWebhook) -> Result<WebhookConfig, WebhookConfigError> {
        use WebhookConfigError as E;
        let url = validate_url(raw.url.as_deref().ok_or(E::MissingUrl)?)?;
        let secret = raw.secret.ok_or(E::MissingSecret)?;
        if secret.len() < MIN_SECRET_LEN {
            return Err(E::ShortSecret);
        }
        let detectors = match raw.detectors {
            None => None,
            Some(list) if list.is_empty() => return Err(E::NoDetectors),
            Some(list) => Some(
                list.into_iter()
                    .map(|name| Detector::from_name(&name).ok_or(E::UnknownDetector(name)))
                    .collect::<Result<Vec<_>, _>>()?,
            ),
        };
        let timeout = raw.timeout.unwrap_or(DEFAULT_TIMEOUT);
        if timeout.is_zero() {
            return Err(E::ZeroTimeout);
        }
        let max_attempts = raw.max_attempts.unwrap_or(DEFAULT_MAX_ATTEMPTS);
        if !(1..=MAX_ATTEMPTS_LIMIT).contains(&max_attempts) {
            return Err(E::MaxAttempts(max_attempts));
        }
        let backoff_base = raw.backoff_base.unwrap_or(DEFAULT_BACKOFF_BASE);
        if backoff_base.is_zero() {
            return Err(E::ZeroBackoff);
        }
        let extra_roots = match &raw.ca_file {
            None => Vec::new(),
            Some(path) => trusted_roots(path)?,
        };
        // The egress policy of upstreams (DESIGN §6): literal addresses are checked here,
        // names when they are resolved.
        let allow_private_network = raw.allow_private_network.unwrap_or(false);
        let literal = url
            .host_str()
            .map(|h| h.trim_start_matches('[').trim_end_matches(']'))
            .and_then(|h| h.parse::<std::net::IpAddr>().ok());
        if literal.is_some_and(crate::upstream::egress::is_forbidden) && !allow_private_network {
            return Err(E::PrivateNetwork);
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

    /// Whether events of `detector` go to this webhook: all do unless `detectors` is set.
    pub fn wants(&self, detector: Detector) -> bool {
        self.detectors
            .as_ref()
            .is_none_or(|list| list.contains(&detector))
    }
}

/// The certificates of the PEM file at `path`, each checked to be usable as a trust
/// anchor (so that delivery, which trusts them, cannot fail on them later).
fn trusted_roots(
    path: &std::path::Path,
) -> Result<Vec<rustls_pki_types::CertificateDer<'static>>, WebhookConfigError> {
    use rustls_pki_types::pem::PemObject;
    let certs: Vec<_> = rustls_pki_types::CertificateDer::pem_file_iter(path)
        .map_err(WebhookConfigError::CaFileUnreadable)?
        .collect::<Result<_, _>>()
        .map_err(WebhookConfigError::CaFileNotPem)?;
    if certs.is_empty() {
        return Err(WebhookConfigError::CaFileEmpty);
    }
    let mut roots = rustls::RootCertStore::empty();
    for cert in &certs {
        roots
            .add(cert.clone())
            .map_err(WebhookConfigError::CaRefused)?;
    }
    Ok(certs)
}

/// `raw` as a receiver URL: http(s), a host, no user info, fragment or credential.
fn validate_url(raw: &str) -> Result<Url, WebhookConfigError> {
    use WebhookConfigError as E;
    let url = Url::parse(raw).map_err(E::InvalidUrl)?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err(E::UrlScheme);
    }
    if url.host_str().is_none_or(str::is_empty) {
        return Err(E::UrlWithoutHost);
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err(E::UrlUserInfo);
    }
    if url.fragment().is_some() {
        return Err(E::UrlFragment);
    }
    let scanner = writ_detect::Scanner::builtin().map_err(E::Scanner)?;
    let path_and_query = match url.query() {
        Some(q) => format!("{}?{q}", url.path()),
        None => url.path().to_string(),
    };
    if let Some(finding) = writ_detect::url::check_url(&path_and_query, &scanner) {
        return Err(E::UrlCredential {
            location: finding.location,
            rule: finding.rule.id(),
        });
    }
    Ok(url)
}

#[cfg(test)]
mod tests {
    use super::*;
    use WebhookConfigError as E;

    const SECRET: &str = "whsec-test-0123456789abcdef";

    fn parse(toml_text: &str) -> Result<WebhookConfig, WebhookConfigError> {
        let raw: RawWebhook = toml::from_str(toml_text).expect(toml_text);
        WebhookConfig::from_raw(raw)
    }

    fn err(toml_text: &str) -> WebhookConfigError {
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
        assert!(c.wants(Detector::WeakJwt) && c.wants(Detector::PromptSecret));
        assert_eq!(c.timeout, DEFAULT_TIMEOUT);
        assert_eq!(c.max_attempts, DEFAULT_MAX_ATTEMPTS);
        assert_eq!(c.backoff_base, DEFAULT_BACKOFF_BASE);

        let c = parse(&format!(
            "url = \"http://10.0.0.1:9000/x?team=sec\"\nsecret = \"{SECRET}\"\n\
             detectors = [\"weak_jwt\"]\ntimeout = \"250ms\"\nmax_attempts = 1\nbackoff_base = \"1s\"\n\
             allow_private_network = true\n"
        ))
        .unwrap();
        assert_eq!(c.detectors, Some(vec![Detector::WeakJwt]));
        assert!(c.wants(Detector::WeakJwt) && !c.wants(Detector::PromptSecret));
        assert_eq!(c.timeout, Duration::from_millis(250));
        assert_eq!(c.max_attempts, 1);
        assert_eq!(c.backoff_base, Duration::from_secs(1));
    }

    #[test]
    fn config_errors_name_the_problem_and_never_echo_secrets() {
        let with =
            |url: &str, rest: &str| format!("url = \"{url}\"\nsecret = \"{SECRET}\"\n{rest}");
        assert!(matches!(err(&with("ftp://h/x", "")), E::UrlScheme));
        assert!(matches!(err(&with("file:///etc/passwd", "")), E::UrlScheme));
        assert!(matches!(err(&with("not a url", "")), E::InvalidUrl(_)));
        let e = err(&with("https://u:hunter2hunter2@h/x", ""));
        assert!(matches!(e, E::UrlUserInfo));
        assert!(!e.to_string().contains("hunter2"), "{e}");
        let e = err(&with("https://h/x?token=abcdef0123456789", ""));
        assert!(
            matches!(&e, E::UrlCredential { location: UrlLocation::QueryParam { name: Some(n), .. }, .. } if n == "token"),
            "{e:?}"
        );
        assert!(
            e.to_string().contains("`token`") && !e.to_string().contains("abcdef"),
            "{e}"
        );
        assert!(matches!(err(&with("https://h/x#frag", "")), E::UrlFragment));
        assert!(matches!(err("url = \"https://h/x\"\n"), E::MissingSecret));
        assert!(matches!(
            err(&format!("secret = \"{SECRET}\"\n")),
            E::MissingUrl
        ));
        let e = err("url = \"https://h/x\"\nsecret = \"short\"\n");
        assert!(matches!(e, E::ShortSecret) && e.to_string().contains("at least 16"));
        assert!(matches!(
            err(&with("https://h/x", "max_attempts = 0\n")),
            E::MaxAttempts(0)
        ));
        assert!(matches!(
            err(&with("https://h/x", "max_attempts = 99\n")),
            E::MaxAttempts(99)
        ));
        assert!(matches!(
            err(&with("https://h/x", "timeout = \"0s\"\n")),
            E::ZeroTimeout
        ));
        assert!(matches!(
            err(&with("https://h/x", "backoff_base = \"0s\"\n")),
            E::ZeroBackoff
        ));
        assert!(matches!(
            err(&with("https://h/x", "detectors = []\n")),
            E::NoDetectors
        ));
        assert!(matches!(
            err(&with("https://h/x", "detectors = [\"\"]\n")),
            E::UnknownDetector(name) if name.is_empty()
        ));
        // A detector's old or misspelt name, or a scanner rule id, is not a detector.
        for name in ["jwt_weak", "openai-api-key"] {
            assert!(matches!(
                err(&with("https://h/x", &format!("detectors = [\"{name}\"]\n"))),
                E::UnknownDetector(n) if n == name
            ));
        }
        assert!(matches!(
            err(&with("https://10.0.0.1/x", "")),
            E::PrivateNetwork
        ));
        let unknown = toml::from_str::<RawWebhook>(&with("https://h/x", "retries = 3\n"));
        assert!(unknown.is_err_and(|e| e.to_string().contains("unknown field")));
    }

    #[test]
    fn ca_files_must_hold_usable_certificates() {
        let dir = tempfile::tempdir().unwrap();
        let with_ca = |path: &std::path::Path| {
            format!("url = \"https://h/x\"\nsecret = \"{SECRET}\"\nca_file = {path:?}\n")
        };
        let missing = dir.path().join("missing.pem");
        assert!(matches!(err(&with_ca(&missing)), E::CaFileUnreadable(_)));
        let empty = dir.path().join("empty.pem");
        std::fs::write(&empty, "no certificate here\n").unwrap();
        assert!(matches!(err(&with_ca(&empty)), E::CaFileEmpty));
        let certs = writ_testkit::TestCertificates::generate();
        assert_eq!(parse(&with_ca(&certs.ca)).unwrap().extra_roots.len(), 1);
    }

    #[test]
    fn a_config_names_the_entry_and_expands_the_secret() {
        let text = format!(
            "[[detection.webhooks]]\nurl = \"https://h/a\"\nsecret = \"${{env:HOOK}}\"\n\
             [[detection.webhooks]]\nurl = \"https://h/b\"\nsecret = \"{SECRET}\"\ndetectors = [\"nope\"]\n"
        );
        let hook = |name: &str| (name == "HOOK").then(|| SECRET.to_string());
        let raw = crate::config::RawConfig::from_toml(&text).unwrap();
        let e = crate::config::Config::from_raw(raw, &hook).unwrap_err();
        assert!(
            matches!(&e, crate::config::ConfigError::Webhook { field, error: E::UnknownDetector(n) }
                if field == "detection.webhooks[1]" && n == "nope"),
            "{e:?}"
        );
        let raw = crate::config::RawConfig::from_toml(&text.replace("\"nope\"", "\"brute_force\""))
            .unwrap();
        let c = crate::config::Config::from_raw(raw, &hook).unwrap();
        assert_eq!(c.detection.webhooks[0].secret.expose(), SECRET);
        assert_eq!(
            c.detection.webhooks[1].detectors,
            Some(vec![Detector::BruteForce])
        );
    }

    #[test]
    fn debug_never_shows_the_secret() {
        let c = parse(&format!("url = \"https://h/x\"\nsecret = \"{SECRET}\"\n")).unwrap();
        let shown = format!("{c:?}");
        assert!(!shown.contains(SECRET) && shown.contains("fp:"), "{shown}");
        let raw: RawWebhook =
            toml::from_str(&format!("url = \"https://h/x\"\nsecret = \"{SECRET}\"\n")).unwrap();
        let shown = format!("{raw:?}");
        assert!(!shown.contains(SECRET), "{shown}");
    }
}
