//! Detection webhooks: signed JSON POSTs to operator-configured URLs, queued and retried
//! in the background so that the request path never waits on them.
//!
//! # What a receiver gets
//!
//! One `POST` per event and webhook, with the event as compact JSON and these headers:
//!
//! | header                   | value                                                   |
//! |--------------------------|---------------------------------------------------------|
//! | `Content-Type`           | `application/json`                                      |
//! | `Writ-Webhook-Id`        | a ULID naming the event; the same on every retry        |
//! | `Writ-Webhook-Timestamp` | Unix seconds when this attempt was signed               |
//! | `Writ-Webhook-Signature` | `v1=` and the lowercase hex HMAC-SHA256, see below      |
//!
//! # Verifying the signature
//!
//! The signed content is the id, the timestamp and the raw body joined by `.`:
//! `"{id}.{timestamp}.{body}"`, with the id and timestamp exactly as sent in the headers
//! and the body as received, byte for byte (not re-serialized). The MAC is
//! HMAC-SHA256 keyed with the webhook's configured `secret` (its UTF-8 bytes). A receiver
//! should recompute it, compare in constant time ([`verify_signature`] does both), reject
//! timestamps more than a few minutes from its own clock (replay), and de-duplicate on the
//! id (a retry after a lost response delivers the same event again). The header may carry
//! several space-separated `v1=…` values (key rotation); one match is enough.
//!
//! # Delivery
//!
//! Each webhook has its own bounded queue ([`QUEUE_CAPACITY`]) and its own task, which
//! delivers up to [`MAX_IN_FLIGHT`] events concurrently: a receiver that is slow or down
//! delays only its own events, and one event being retried does not hold up the next.
//! [`Webhooks::send`] never waits: when a queue is full the event is dropped for that
//! webhook and counted. A connection error, a timeout, `408`, `429` or a `5xx` is retried
//! after `backoff_base × 2^(attempt−1)`, capped at [`MAX_BACKOFF`] (a `429`'s
//! `Retry-After` in seconds is honoured when not above the cap), until `max_attempts`;
//! `2xx` is delivered; any other status — redirects included, which are never followed —
//! is a failure that is not retried.
//!
//! # Secrets
//!
//! The webhook secret never appears in `Debug` output, logs or errors, and failures are
//! logged naming only the receiver's host and the status. The event body is sent as given:
//! callers must never put secret values (matched text, tokens, keys) in an event — name
//! the detector and the location instead.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, UNIX_EPOCH};

use bytes::Bytes;
use hmac::{Hmac, Mac};
use http::header::{CONTENT_TYPE, HeaderValue, RETRY_AFTER};
use http_body_util::Full;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use reqwest::Url;

/// The HTTP(S) client webhooks are delivered with: rustls (ring), no redirects followed.
pub type WebhookClient =
    Client<hyper_rustls::HttpsConnector<HttpConnector<crate::egress::EgressResolver>>, Full<Bytes>>;
use serde::{Deserialize, Serialize};
use sha2::Sha256;
use tokio::sync::{mpsc, watch};
use tokio::task::{JoinHandle, JoinSet};
use ulid::Ulid;
use writ_providers::UpstreamSecret;
use writ_token::Clock;

/// Events waiting per webhook before [`Webhooks::send`] starts dropping them.
pub const QUEUE_CAPACITY: usize = 1024;
/// Deliveries (including their retries) in progress at once per webhook.
pub const MAX_IN_FLIGHT: usize = 4;
/// The longest wait between two attempts.
pub const MAX_BACKOFF: Duration = Duration::from_secs(30);
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

/// Header carrying the event's id.
pub const ID_HEADER: &str = "writ-webhook-id";
/// Header carrying the attempt's Unix timestamp in seconds.
pub const TIMESTAMP_HEADER: &str = "writ-webhook-timestamp";
/// Header carrying the `v1=` signature.
pub const SIGNATURE_HEADER: &str = "writ-webhook-signature";

type HmacSha256 = Hmac<Sha256>;

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
    /// Wait before the first retry, doubled per attempt up to [`MAX_BACKOFF`].
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
        if literal.is_some_and(crate::egress::is_forbidden) && !allow_private_network {
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

/// The `Writ-Webhook-Signature` value for one attempt: `v1=` and the lowercase hex
/// HMAC-SHA256 of `"{id}.{timestamp}.{body}"` keyed with `secret`.
pub fn sign(secret: &[u8], id: &str, timestamp: &str, body: &[u8]) -> String {
    format!(
        "v1={}",
        hex::encode(mac(secret, id, timestamp, body).finalize().into_bytes())
    )
}

/// Whether `header` (a `Writ-Webhook-Signature` value, possibly several space-separated
/// `v1=…` entries) holds a valid signature of `id`, `timestamp` and `body` under `secret`.
/// Compares in constant time. Checking the timestamp's age is left to the caller.
pub fn verify_signature(
    secret: &[u8],
    id: &str,
    timestamp: &str,
    body: &[u8],
    header: &str,
) -> bool {
    header
        .split_ascii_whitespace()
        .filter_map(|entry| entry.strip_prefix("v1="))
        .filter_map(|h| hex::decode(h).ok())
        .any(|tag| mac(secret, id, timestamp, body).verify_slice(&tag).is_ok())
}

fn mac(secret: &[u8], id: &str, timestamp: &str, body: &[u8]) -> HmacSha256 {
    // HMAC takes keys of any length; `new_from_slice` only has a Result for MACs that
    // don't.
    let mut mac = <HmacSha256 as Mac>::new_from_slice(secret).expect("HMAC accepts any key length");
    mac.update(id.as_bytes());
    mac.update(b".");
    mac.update(timestamp.as_bytes());
    mac.update(b".");
    mac.update(body);
    mac
}

/// Delivery counters, per event and webhook.
#[derive(Debug, Default)]
struct Counters {
    delivered: AtomicU64,
    failed: AtomicU64,
    dropped: AtomicU64,
    /// Bumped on every delivered or failed outcome, so tests can wait for one.
    settled: SettledSignal,
}

#[derive(Debug)]
struct SettledSignal(watch::Sender<u64>);

impl Default for SettledSignal {
    fn default() -> Self {
        Self(watch::Sender::new(0))
    }
}

impl Counters {
    fn settle(&self, delivered: bool) {
        let counter = if delivered {
            &self.delivered
        } else {
            &self.failed
        };
        counter.fetch_add(1, Ordering::Relaxed);
        self.settled.0.send_modify(|n| *n += 1);
    }
}

/// One queued event for one webhook.
struct Job {
    id: Ulid,
    body: Bytes,
}

/// What a webhook's task needs.
struct Target {
    config: WebhookConfig,
    host: String,
    client: WebhookClient,
    clock: Arc<dyn Clock>,
    counters: Arc<Counters>,
}

/// The configured webhooks and their background tasks. Dropping it stops the tasks and
/// abandons queued and in-flight deliveries; [`Webhooks::close`] drains first.
pub struct Webhooks {
    queues: Vec<(WebhookConfig, mpsc::Sender<Job>)>,
    tasks: Vec<JoinHandle<()>>,
    counters: Arc<Counters>,
    clock: Arc<dyn Clock>,
}

impl std::fmt::Debug for Webhooks {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Webhooks")
            .field("webhooks", &self.queues.len())
            .field("counters", &self.counters)
            .finish_non_exhaustive()
    }
}

impl Webhooks {
    /// A client fit for [`Webhooks::start`]: TLS by rustls (ring) trusting the public
    /// webpki roots, and no redirects followed.
    pub fn client() -> Result<WebhookClient, String> {
        Self::client_with(&[], false)
    }

    /// Like [`Webhooks::client`], also trusting `extra_roots`, and reaching private
    /// addresses when `allow_private_network`.
    pub fn client_with(
        extra_roots: &[rustls_pki_types::CertificateDer<'static>],
        allow_private_network: bool,
    ) -> Result<WebhookClient, String> {
        let mut roots = rustls::RootCertStore::empty();
        roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
        for cert in extra_roots {
            roots
                .add(cert.clone())
                .map_err(|e| format!("webhook: CA certificate refused: {e}"))?;
        }
        let tls = rustls::ClientConfig::builder_with_provider(Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .map_err(|e| format!("webhook: TLS setup failed: {e}"))?
        .with_root_certificates(roots)
        .with_no_client_auth();
        let mut http = HttpConnector::new_with_resolver(crate::egress::EgressResolver::new(
            allow_private_network,
        ));
        http.enforce_http(false);
        http.set_connect_timeout(Some(Duration::from_secs(10)));
        let https = hyper_rustls::HttpsConnectorBuilder::new()
            .with_tls_config(tls)
            .https_or_http()
            .enable_http1()
            .wrap_connector(http);
        Ok(Client::builder(TokioExecutor::new()).build(https))
    }

    /// Spawns one task per webhook. `client` should not follow redirects (see
    /// [`Webhooks::client`]); a response from any other URL than the webhook's counts as
    /// failed regardless. Must be called within a Tokio runtime.
    pub fn start(
        configs: Vec<WebhookConfig>,
        client: WebhookClient,
        clock: Arc<dyn Clock>,
    ) -> Webhooks {
        let counters = Arc::new(Counters::default());
        let mut queues = Vec::with_capacity(configs.len());
        let mut tasks = Vec::with_capacity(configs.len());
        for config in configs {
            let (tx, rx) = mpsc::channel(QUEUE_CAPACITY);
            // A receiver with its own CA gets a client that trusts it (checked when the
            // config was read, so this does not fail in practice).
            let client = if config.extra_roots.is_empty() && !config.allow_private_network {
                client.clone()
            } else {
                Self::client_with(&config.extra_roots, config.allow_private_network).unwrap_or_else(
                    |e| {
                        tracing::warn!(error = %e, "webhook CA not usable; public roots only");
                        client.clone()
                    },
                )
            };
            let target = Arc::new(Target {
                host: config.url.host_str().unwrap_or_default().to_string(),
                config: config.clone(),
                client,
                clock: clock.clone(),
                counters: counters.clone(),
            });
            tasks.push(tokio::spawn(run(target, rx)));
            queues.push((config, tx));
        }
        Webhooks {
            queues,
            tasks,
            counters,
            clock,
        }
    }

    /// Queues `event` from `detector` for every webhook that wants it. Never blocks: an
    /// event that finds a queue full is dropped for that webhook and counted in
    /// [`Webhooks::dropped`]. The event must not contain secret values.
    pub fn send<E: Serialize + ?Sized>(&self, detector: &str, event: &E) {
        let mut wanted = self.queues.iter().filter(|(c, _)| c.wants(detector));
        let Some(first) = wanted.next() else { return };
        let body = match serde_json::to_vec(event) {
            Ok(b) => Bytes::from(b),
            Err(_) => {
                tracing::warn!(detector, "webhook event could not be serialized; dropped");
                self.counters.dropped.fetch_add(1, Ordering::Relaxed);
                return;
            }
        };
        let id = Ulid::from_datetime(self.clock.now());
        for (_, tx) in std::iter::once(first).chain(wanted) {
            let job = Job {
                id,
                body: body.clone(),
            };
            if tx.try_send(job).is_err() {
                self.counters.dropped.fetch_add(1, Ordering::Relaxed);
            }
        }
    }

    /// Deliveries a receiver acknowledged with `2xx`.
    pub fn delivered(&self) -> u64 {
        self.counters.delivered.load(Ordering::Relaxed)
    }

    /// Deliveries given up: a non-retryable answer or `max_attempts` exhausted.
    pub fn failed(&self) -> u64 {
        self.counters.failed.load(Ordering::Relaxed)
    }

    /// Deliveries never attempted because a queue was full.
    pub fn dropped(&self) -> u64 {
        self.counters.dropped.load(Ordering::Relaxed)
    }

    /// Stops accepting events, lets queued and in-flight deliveries finish for up to
    /// `grace`, then abandons the rest.
    pub async fn close(mut self, grace: Duration) {
        self.queues.clear();
        let deadline = tokio::time::Instant::now() + grace;
        for task in std::mem::take(&mut self.tasks) {
            let abort = task.abort_handle();
            if tokio::time::timeout_at(deadline, task).await.is_err() {
                abort.abort();
            }
        }
    }

    /// Waits until at least `n` deliveries have settled (delivered or failed).
    #[cfg(test)]
    async fn settled(&self, n: u64) {
        let mut rx = self.counters.settled.0.subscribe();
        let _ = rx.wait_for(|s| *s >= n).await;
    }
}

impl Drop for Webhooks {
    fn drop(&mut self) {
        for task in &self.tasks {
            task.abort();
        }
    }
}

/// A webhook's task: takes events off its queue and delivers up to [`MAX_IN_FLIGHT`] at
/// once. Ends when the queue is closed and drained; aborting it aborts its deliveries.
async fn run(target: Arc<Target>, mut rx: mpsc::Receiver<Job>) {
    let mut in_flight = JoinSet::new();
    loop {
        while in_flight.len() >= MAX_IN_FLIGHT {
            in_flight.join_next().await;
        }
        tokio::select! {
            job = rx.recv() => match job {
                Some(job) => {
                    in_flight.spawn(deliver(target.clone(), job));
                }
                None => break,
            },
            Some(_) = in_flight.join_next(), if !in_flight.is_empty() => {}
        }
    }
    while in_flight.join_next().await.is_some() {}
}

/// The result of one attempt.
enum Attempt {
    Delivered,
    /// Worth another attempt, after at least this long if the receiver said so.
    Retry(&'static str, Option<Duration>),
    Fail(String),
}

async fn deliver(target: Arc<Target>, job: Job) {
    let config = &target.config;
    let id = job.id.to_string();
    let mut attempt = 1;
    loop {
        match attempt_once(&target, &id, &job.body).await {
            Attempt::Delivered => {
                target.counters.settle(true);
                return;
            }
            Attempt::Fail(status) => {
                tracing::warn!(host = %target.host, %status, attempt, "webhook delivery failed");
                target.counters.settle(false);
                return;
            }
            Attempt::Retry(status, retry_after) => {
                if attempt >= config.max_attempts {
                    tracing::warn!(
                        host = %target.host,
                        status,
                        attempts = attempt,
                        "webhook delivery failed; giving up"
                    );
                    target.counters.settle(false);
                    return;
                }
                tracing::debug!(host = %target.host, status, attempt, "webhook delivery retrying");
                tokio::time::sleep(backoff(config.backoff_base, attempt, retry_after)).await;
                attempt += 1;
            }
        }
    }
}

/// The wait after failed attempt `attempt` (from 1): `base × 2^(attempt−1)` capped at
/// [`MAX_BACKOFF`], or the receiver's `Retry-After` when that is not above the cap.
fn backoff(base: Duration, attempt: u32, retry_after: Option<Duration>) -> Duration {
    if let Some(wait) = retry_after.filter(|w| *w <= MAX_BACKOFF) {
        return wait;
    }
    let factor = 1u32 << attempt.saturating_sub(1).min(20);
    base.saturating_mul(factor).min(MAX_BACKOFF)
}

async fn attempt_once(target: &Target, id: &str, body: &Bytes) -> Attempt {
    let config = &target.config;
    let timestamp = target
        .clock
        .now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
        .as_secs()
        .to_string();
    let signature = sign(
        config.secret.expose().as_bytes(),
        id,
        &timestamp,
        body.as_ref(),
    );
    let request = http::Request::post(config.url.as_str())
        .header(CONTENT_TYPE, HeaderValue::from_static("application/json"))
        .header(ID_HEADER, id)
        .header(TIMESTAMP_HEADER, timestamp)
        .header(SIGNATURE_HEADER, signature)
        .body(Full::new(body.clone()));
    let Ok(request) = request else {
        return Attempt::Fail("request could not be built".into());
    };
    // Errors name the URL: report only their kind. Redirects are not followed: a 3xx is
    // a failure like any other unexpected status.
    let response = match tokio::time::timeout(config.timeout, target.client.request(request)).await
    {
        Err(_) => return Attempt::Retry("timeout", None),
        Ok(Err(e)) if e.is_connect() => return Attempt::Retry("connection failed", None),
        Ok(Err(_)) => return Attempt::Retry("request failed", None),
        Ok(Ok(r)) => r,
    };
    let status = response.status();
    if status.is_success() {
        Attempt::Delivered
    } else if status == http::StatusCode::TOO_MANY_REQUESTS {
        let retry_after = response
            .headers()
            .get(RETRY_AFTER)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().parse::<u64>().ok())
            .map(Duration::from_secs);
        Attempt::Retry("429 Too Many Requests", retry_after)
    } else if status.is_server_error() {
        Attempt::Retry("5xx", None)
    } else if status == http::StatusCode::REQUEST_TIMEOUT {
        Attempt::Retry("408 Request Timeout", None)
    } else {
        Attempt::Fail(status.to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::Router;
    use axum::extract::State;
    use axum::http::{HeaderMap, StatusCode, Uri};
    use axum::response::{IntoResponse, Response};
    use serde_json::json;
    use std::sync::atomic::AtomicUsize;
    use std::time::{Instant, SystemTime};
    use writ_token::ManualClock;

    const SECRET: &str = "whsec-test-0123456789abcdef";
    const NOW: u64 = 1_700_000_000;

    #[derive(Debug)]
    struct Hit {
        path: String,
        id: String,
        timestamp: String,
        content_type: String,
        body: Bytes,
        verified: bool,
    }

    #[derive(Clone, Copy)]
    enum Reply {
        Status(u16),
        TooMany,
        Redirect,
        Hang,
    }

    type Script = Arc<dyn Fn(usize) -> Reply + Send + Sync>;

    #[derive(Clone)]
    struct Shared {
        n: Arc<AtomicUsize>,
        hits: mpsc::UnboundedSender<Hit>,
        script: Script,
    }

    /// A local webhook receiver: verifies and records each request, then answers as
    /// `script` says for the request's index.
    struct Receiver {
        base: String,
        hits: mpsc::UnboundedReceiver<Hit>,
        task: JoinHandle<()>,
    }

    impl Drop for Receiver {
        fn drop(&mut self) {
            self.task.abort();
        }
    }

    impl Receiver {
        async fn start(script: impl Fn(usize) -> Reply + Send + Sync + 'static) -> Receiver {
            let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
            let addr = listener.local_addr().unwrap();
            let (tx, hits) = mpsc::unbounded_channel();
            let shared = Shared {
                n: Arc::new(AtomicUsize::new(0)),
                hits: tx,
                script: Arc::new(script),
            };
            let app = Router::new().fallback(handle).with_state(shared);
            let task = tokio::spawn(async move {
                let _ = axum::serve(listener, app).await;
            });
            Receiver {
                base: format!("http://{addr}"),
                hits,
                task,
            }
        }

        /// The next request, waiting for it (bounded so a broken test fails, not hangs).
        async fn next(&mut self) -> Hit {
            tokio::time::timeout(Duration::from_secs(10), self.hits.recv())
                .await
                .expect("no request within 10s")
                .expect("receiver stopped")
        }

        fn assert_idle(&mut self) {
            assert!(self.hits.try_recv().is_err(), "unexpected extra request");
        }
    }

    async fn handle(
        State(shared): State<Shared>,
        uri: Uri,
        headers: HeaderMap,
        body: Bytes,
    ) -> Response {
        let n = shared.n.fetch_add(1, Ordering::SeqCst);
        let header = |name: &str| {
            headers
                .get(name)
                .and_then(|v| v.to_str().ok())
                .unwrap_or_default()
                .to_string()
        };
        let (id, timestamp) = (header(ID_HEADER), header(TIMESTAMP_HEADER));
        let verified = verify_signature(
            SECRET.as_bytes(),
            &id,
            &timestamp,
            &body,
            &header(SIGNATURE_HEADER),
        );
        let _ = shared.hits.send(Hit {
            path: uri.path().to_string(),
            id,
            timestamp,
            content_type: header("content-type"),
            body,
            verified,
        });
        match (shared.script)(n) {
            Reply::Status(s) => StatusCode::from_u16(s).unwrap().into_response(),
            Reply::TooMany => {
                (StatusCode::TOO_MANY_REQUESTS, [("retry-after", "0")]).into_response()
            }
            Reply::Redirect => {
                (StatusCode::TEMPORARY_REDIRECT, [("location", "/elsewhere")]).into_response()
            }
            Reply::Hang => std::future::pending().await,
        }
    }

    fn config(url: &str) -> WebhookConfig {
        WebhookConfig {
            url: Url::parse(url).unwrap(),
            secret: UpstreamSecret::new(SECRET),
            detectors: None,
            timeout: Duration::from_secs(10),
            max_attempts: 3,
            backoff_base: Duration::from_millis(2),
            extra_roots: Vec::new(),
            allow_private_network: true,
        }
    }

    fn start(configs: Vec<WebhookConfig>) -> Webhooks {
        let clock = ManualClock::new(SystemTime::UNIX_EPOCH + Duration::from_secs(NOW));
        Webhooks::start(configs, Webhooks::client().unwrap(), Arc::new(clock))
    }

    async fn settled(hooks: &Webhooks, n: u64) {
        tokio::time::timeout(Duration::from_secs(10), hooks.settled(n))
            .await
            .expect("deliveries did not settle within 10s");
    }

    #[test]
    fn signature_matches_an_independent_implementation() {
        // python3: hmac.new(key, b'01ARZ3NDEKTSV4RRFFQ69G5FAV.1700000000.{"a":1}', sha256)
        let expected = "v1=eb2bae140c7f00093742077a17f88196f5eb31e41fe573773807b5401cf7b8a2";
        let (id, ts, body) = ("01ARZ3NDEKTSV4RRFFQ69G5FAV", "1700000000", br#"{"a":1}"#);
        assert_eq!(sign(SECRET.as_bytes(), id, ts, body), expected);
        assert!(verify_signature(SECRET.as_bytes(), id, ts, body, expected));
        let rotated = format!("v1=00ff {expected}");
        assert!(verify_signature(SECRET.as_bytes(), id, ts, body, &rotated));
        assert!(!verify_signature(
            SECRET.as_bytes(),
            id,
            ts,
            br#"{"a":2}"#,
            expected
        ));
        assert!(!verify_signature(
            SECRET.as_bytes(),
            id,
            "1700000001",
            body,
            expected
        ));
        assert!(!verify_signature(
            b"another-secret-value",
            id,
            ts,
            body,
            expected
        ));
        assert!(!verify_signature(SECRET.as_bytes(), id, ts, body, "v1=zz"));
        assert!(!verify_signature(
            SECRET.as_bytes(),
            id,
            ts,
            body,
            &expected[3..]
        ));
    }

    #[test]
    fn backoff_doubles_caps_and_honours_retry_after() {
        let base = Duration::from_millis(500);
        assert_eq!(backoff(base, 1, None), base);
        assert_eq!(backoff(base, 2, None), Duration::from_secs(1));
        assert_eq!(backoff(base, 3, None), Duration::from_secs(2));
        assert_eq!(backoff(base, 10, None), MAX_BACKOFF);
        assert_eq!(backoff(base, u32::MAX, None), MAX_BACKOFF);
        let two = Some(Duration::from_secs(2));
        assert_eq!(backoff(base, 1, two), Duration::from_secs(2));
        assert_eq!(backoff(base, 1, Some(Duration::from_secs(3600))), base);
    }

    #[tokio::test]
    async fn delivers_a_signed_event() {
        let mut rx = Receiver::start(|_| Reply::Status(204)).await;
        let hooks = start(vec![config(&format!("{}/hook", rx.base))]);
        let event = json!({"detector": "secret_in_prompt", "rule": "openai_key", "at": "body"});
        hooks.send("secret_in_prompt", &event);

        let hit = rx.next().await;
        assert!(hit.verified);
        assert_eq!(hit.path, "/hook");
        assert_eq!(hit.content_type, "application/json");
        assert_eq!(hit.timestamp, NOW.to_string());
        assert_eq!(hit.body, serde_json::to_vec(&event).unwrap());
        assert!(hit.id.parse::<Ulid>().is_ok(), "{}", hit.id);
        let signature = sign(SECRET.as_bytes(), &hit.id, &hit.timestamp, &hit.body);
        let mut tampered = hit.body.to_vec();
        tampered[2] ^= 1;
        assert!(!verify_signature(
            SECRET.as_bytes(),
            &hit.id,
            &hit.timestamp,
            &tampered,
            &signature
        ));

        settled(&hooks, 1).await;
        assert_eq!(
            (hooks.delivered(), hooks.failed(), hooks.dropped()),
            (1, 0, 0)
        );
        rx.assert_idle();
    }

    #[tokio::test]
    async fn server_errors_are_retried_with_the_same_id() {
        let mut rx = Receiver::start(|n| Reply::Status(if n < 2 { 500 } else { 200 })).await;
        let hooks = start(vec![config(&rx.base)]);
        hooks.send("brute_force", &json!({"detector": "brute_force"}));

        let hits = [rx.next().await, rx.next().await, rx.next().await];
        assert!(hits.iter().all(|h| h.verified && h.id == hits[0].id));
        settled(&hooks, 1).await;
        assert_eq!((hooks.delivered(), hooks.failed()), (1, 0));
        rx.assert_idle();
    }

    #[tokio::test]
    async fn too_many_requests_is_retried() {
        let mut rx = Receiver::start(|n| {
            if n == 0 {
                Reply::TooMany
            } else {
                Reply::Status(200)
            }
        })
        .await;
        let hooks = start(vec![config(&rx.base)]);
        hooks.send("jwt_weak", &json!({}));
        let (first, second) = (rx.next().await, rx.next().await);
        assert_eq!(first.id, second.id);
        settled(&hooks, 1).await;
        assert_eq!(hooks.delivered(), 1);
    }

    #[tokio::test]
    async fn client_errors_fail_without_retry() {
        let mut rx = Receiver::start(|_| Reply::Status(400)).await;
        let hooks = start(vec![config(&rx.base)]);
        hooks.send("jwt_weak", &json!({"detector": "jwt_weak"}));
        rx.next().await;
        settled(&hooks, 1).await;
        assert_eq!((hooks.delivered(), hooks.failed()), (0, 1));
        rx.assert_idle();
    }

    #[tokio::test]
    async fn redirects_are_not_followed() {
        let mut rx = Receiver::start(|_| Reply::Redirect).await;
        let hooks = start(vec![config(&format!("{}/hook", rx.base))]);
        hooks.send("jwt_weak", &json!({}));
        assert_eq!(rx.next().await.path, "/hook");
        settled(&hooks, 1).await;
        assert_eq!((hooks.delivered(), hooks.failed()), (0, 1));
        rx.assert_idle();
    }

    #[tokio::test]
    async fn timeouts_are_retried_up_to_max_attempts() {
        let mut rx = Receiver::start(|_| Reply::Hang).await;
        let mut c = config(&rx.base);
        c.timeout = Duration::from_millis(300);
        c.max_attempts = 3;
        let hooks = start(vec![c]);
        hooks.send("brute_force", &json!({}));
        let hits = [rx.next().await, rx.next().await, rx.next().await];
        assert!(hits.iter().all(|h| h.id == hits[0].id));
        settled(&hooks, 1).await;
        assert_eq!((hooks.delivered(), hooks.failed()), (0, 1));
        rx.assert_idle();
    }

    #[tokio::test]
    async fn send_never_blocks_and_counts_overflow() {
        let mut rx = Receiver::start(|_| Reply::Hang).await;
        let mut c = config(&rx.base);
        c.timeout = Duration::from_secs(60);
        let hooks = start(vec![c]);
        hooks.send("secret_in_prompt", &json!({"n": 0}));
        rx.next().await; // the receiver now holds a request

        let began = Instant::now();
        for n in 1..=2000 {
            hooks.send("secret_in_prompt", &json!({"n": n}));
        }
        assert!(
            began.elapsed() < Duration::from_secs(2),
            "{:?}",
            began.elapsed()
        );
        let least = (2000 - QUEUE_CAPACITY - MAX_IN_FLIGHT) as u64;
        assert!(hooks.dropped() >= least, "dropped {}", hooks.dropped());
        assert!(hooks.dropped() <= 2000);
        assert_eq!(hooks.delivered(), 0);
        drop(hooks); // aborts the held request and the queue, without panicking
    }

    #[tokio::test]
    async fn close_drains_and_gives_up_after_grace() {
        let mut rx = Receiver::start(|_| Reply::Status(200)).await;
        let hooks = start(vec![config(&rx.base)]);
        let counters = hooks.counters.clone();
        for n in 0..3 {
            hooks.send("jwt_weak", &json!({"n": n}));
        }
        hooks.close(Duration::from_secs(10)).await;
        assert_eq!(counters.delivered.load(Ordering::Relaxed), 3);
        for _ in 0..3 {
            rx.next().await;
        }

        let mut stuck = Receiver::start(|_| Reply::Hang).await;
        let mut c = config(&stuck.base);
        c.timeout = Duration::from_secs(60);
        let hooks = start(vec![c]);
        hooks.send("jwt_weak", &json!({}));
        stuck.next().await;
        tokio::time::timeout(Duration::from_secs(5), hooks.close(Duration::ZERO))
            .await
            .expect("close waited on a hung receiver");
    }

    #[tokio::test]
    async fn detectors_filter_which_events_a_webhook_gets() {
        let mut rx = Receiver::start(|_| Reply::Status(200)).await;
        let mut only_jwt = config(&format!("{}/jwt", rx.base));
        only_jwt.detectors = Some(vec!["jwt_weak".into()]);
        assert!(only_jwt.wants("jwt_weak") && !only_jwt.wants("secret_in_prompt"));
        let all = config(&format!("{}/all", rx.base));
        let hooks = start(vec![only_jwt, all]);

        hooks.send("secret_in_prompt", &json!({"detector": "secret_in_prompt"}));
        hooks.send("jwt_weak", &json!({"detector": "jwt_weak"}));
        settled(&hooks, 3).await;
        let mut got = Vec::new();
        for _ in 0..3 {
            let hit = rx.next().await;
            let event: serde_json::Value = serde_json::from_slice(&hit.body).unwrap();
            got.push(format!(
                "{} {}",
                hit.path,
                event["detector"].as_str().unwrap()
            ));
        }
        got.sort();
        assert_eq!(
            got,
            ["/all jwt_weak", "/all secret_in_prompt", "/jwt jwt_weak"]
        );
        rx.assert_idle();
        assert_eq!(hooks.delivered(), 3);
    }

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
