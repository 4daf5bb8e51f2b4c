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
use std::time::Duration;

use bytes::Bytes;
use http_body_util::Full;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;

/// The HTTP(S) client webhooks are delivered with: rustls (ring), no redirects followed.
pub type WebhookClient = Client<
    hyper_rustls::HttpsConnector<HttpConnector<crate::upstream::egress::EgressResolver>>,
    Full<Bytes>,
>;
use serde::Serialize;
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;
use ulid::Ulid;
use writ_token::Clock;

mod delivery;
mod signature;

use crate::config::{Detector, WebhookConfig};
use delivery::run;
pub use signature::{sign, verify_signature};

/// Events waiting per webhook before [`Webhooks::send`] starts dropping them.
pub const QUEUE_CAPACITY: usize = 1024;
/// Deliveries (including their retries) in progress at once per webhook.
pub const MAX_IN_FLIGHT: usize = 4;
/// The longest wait between two attempts.
pub const MAX_BACKOFF: Duration = Duration::from_secs(30);

/// Header carrying the event's id.
pub const ID_HEADER: &str = "writ-webhook-id";
/// Header carrying the attempt's Unix timestamp in seconds.
pub const TIMESTAMP_HEADER: &str = "writ-webhook-timestamp";
/// Header carrying the `v1=` signature.
pub const SIGNATURE_HEADER: &str = "writ-webhook-signature";

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

/// Why a webhook client could not be built.
#[derive(Debug, thiserror::Error)]
pub enum WebhookClientError {
    /// A CA certificate given to trust cannot be a trust anchor.
    #[error("webhook: CA certificate refused: {0}")]
    CaRefused(rustls::Error),
    /// rustls has no safe protocol version with the ring provider.
    #[error("webhook: TLS setup failed: {0}")]
    Tls(rustls::Error),
}

impl Webhooks {
    /// A client fit for [`Webhooks::start`]: TLS by rustls (ring) trusting the public
    /// webpki roots, and no redirects followed. Fails only if rustls cannot be set up
    /// ([`WebhookClientError::Tls`]).
    pub fn client() -> Result<WebhookClient, WebhookClientError> {
        Self::client_with(&[], false)
    }

    /// Like [`Webhooks::client`], also trusting `extra_roots`, and reaching private
    /// addresses when `allow_private_network`. Fails with
    /// [`WebhookClientError::CaRefused`] on a certificate that cannot be a trust anchor
    /// (never for those of a validated [`WebhookConfig`]).
    pub fn client_with(
        extra_roots: &[rustls_pki_types::CertificateDer<'static>],
        allow_private_network: bool,
    ) -> Result<WebhookClient, WebhookClientError> {
        let mut roots = rustls::RootCertStore::empty();
        roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
        for cert in extra_roots {
            roots
                .add(cert.clone())
                .map_err(WebhookClientError::CaRefused)?;
        }
        let tls = rustls::ClientConfig::builder_with_provider(Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .map_err(WebhookClientError::Tls)?
        .with_root_certificates(roots)
        .with_no_client_auth();
        let mut http = HttpConnector::new_with_resolver(
            crate::upstream::egress::EgressResolver::new(allow_private_network),
        );
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
    pub fn send<E: Serialize + ?Sized>(&self, detector: Detector, event: &E) {
        self.queue(detector.as_str(), |c| c.wants(detector), event);
    }

    /// Queues `event`, an event of `kind` (named in logs only), for every webhook of this
    /// set whatever its `detectors`: for events that are not detections (a set of
    /// approval webhooks). Never blocks, and drops as [`Webhooks::send`] does. The event
    /// must not contain secret values.
    pub fn send_event<E: Serialize + ?Sized>(&self, kind: &str, event: &E) {
        self.queue(kind, |_| true, event);
    }

    fn queue<E: Serialize + ?Sized>(
        &self,
        kind: &str,
        wants: impl Fn(&WebhookConfig) -> bool,
        event: &E,
    ) {
        let mut wanted = self.queues.iter().filter(|(c, _)| wants(c));
        let Some(first) = wanted.next() else { return };
        let body = match serde_json::to_vec(event) {
            Ok(b) => Bytes::from(b),
            Err(_) => {
                tracing::warn!(kind, "webhook event could not be serialized; dropped");
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

#[cfg(test)]
mod tests {
    use super::*;
    use axum::Router;
    use axum::extract::State;
    use axum::http::{HeaderMap, StatusCode, Uri};
    use axum::response::{IntoResponse, Response};
    use reqwest::Url;
    use serde_json::json;
    use std::sync::atomic::AtomicUsize;
    use std::time::{Instant, SystemTime};
    use writ_providers::UpstreamSecret;
    use writ_token::ManualClock;

    pub(super) const SECRET: &str = "whsec-test-0123456789abcdef";
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

    #[tokio::test]
    async fn delivers_a_signed_event() {
        let mut rx = Receiver::start(|_| Reply::Status(204)).await;
        let hooks = start(vec![config(&format!("{}/hook", rx.base))]);
        let event = json!({"detector": "prompt_secret", "rules": ["openai-api-key"], "location": "request"});
        hooks.send(Detector::PromptSecret, &event);

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
        hooks.send(Detector::BruteForce, &json!({"detector": "brute_force"}));

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
        hooks.send(Detector::WeakJwt, &json!({}));
        let (first, second) = (rx.next().await, rx.next().await);
        assert_eq!(first.id, second.id);
        settled(&hooks, 1).await;
        assert_eq!(hooks.delivered(), 1);
    }

    #[tokio::test]
    async fn client_errors_fail_without_retry() {
        let mut rx = Receiver::start(|_| Reply::Status(400)).await;
        let hooks = start(vec![config(&rx.base)]);
        hooks.send(Detector::WeakJwt, &json!({"detector": "weak_jwt"}));
        rx.next().await;
        settled(&hooks, 1).await;
        assert_eq!((hooks.delivered(), hooks.failed()), (0, 1));
        rx.assert_idle();
    }

    #[tokio::test]
    async fn redirects_are_not_followed() {
        let mut rx = Receiver::start(|_| Reply::Redirect).await;
        let hooks = start(vec![config(&format!("{}/hook", rx.base))]);
        hooks.send(Detector::WeakJwt, &json!({}));
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
        hooks.send(Detector::BruteForce, &json!({}));
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
        hooks.send(Detector::PromptSecret, &json!({"n": 0}));
        rx.next().await; // the receiver now holds a request

        let began = Instant::now();
        for n in 1..=2000 {
            hooks.send(Detector::PromptSecret, &json!({"n": n}));
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
            hooks.send(Detector::WeakJwt, &json!({"n": n}));
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
        hooks.send(Detector::WeakJwt, &json!({}));
        stuck.next().await;
        tokio::time::timeout(Duration::from_secs(5), hooks.close(Duration::ZERO))
            .await
            .expect("close waited on a hung receiver");
    }

    #[tokio::test]
    async fn detectors_filter_which_events_a_webhook_gets() {
        let mut rx = Receiver::start(|_| Reply::Status(200)).await;
        let mut only_jwt = config(&format!("{}/jwt", rx.base));
        only_jwt.detectors = Some(vec![Detector::WeakJwt]);
        assert!(only_jwt.wants(Detector::WeakJwt) && !only_jwt.wants(Detector::PromptSecret));
        let all = config(&format!("{}/all", rx.base));
        let hooks = start(vec![only_jwt, all]);

        hooks.send(
            Detector::PromptSecret,
            &json!({"detector": "prompt_secret"}),
        );
        hooks.send(Detector::WeakJwt, &json!({"detector": "weak_jwt"}));
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
            ["/all prompt_secret", "/all weak_jwt", "/jwt weak_jwt"]
        );
        rx.assert_idle();
        assert_eq!(hooks.delivered(), 3);
    }
}
