//! Delivery of queued events: a webhook's task, each event's attempts with back-off, and
//! what one signed `POST` and its response come to.

use std::sync::Arc;
use std::time::{Duration, UNIX_EPOCH};

use bytes::Bytes;
use http::header::{CONTENT_TYPE, HeaderValue, RETRY_AFTER};
use http_body_util::Full;
use tokio::sync::mpsc;
use tokio::task::JoinSet;

use super::{
    ID_HEADER, Job, MAX_BACKOFF, MAX_IN_FLIGHT, SIGNATURE_HEADER, TIMESTAMP_HEADER, Target, sign,
};

/// A webhook's task: takes events off its queue and delivers up to [`MAX_IN_FLIGHT`] at
/// once. Ends when the queue is closed and drained; aborting it aborts its deliveries.
pub(super) async fn run(target: Arc<Target>, mut rx: mpsc::Receiver<Job>) {
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
    /// Not worth another attempt.
    Fail(Failure),
}

/// Why an attempt failed for good; logged, never echoing the URL.
#[derive(Debug, thiserror::Error)]
enum Failure {
    /// The request could not be built from the webhook's URL and headers.
    #[error("request could not be built")]
    RequestNotBuilt,
    /// The receiver answered a status that is neither success nor worth a retry.
    #[error("{0}")]
    Status(http::StatusCode),
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
        return Attempt::Fail(Failure::RequestNotBuilt);
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
        Attempt::Fail(Failure::Status(status))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
}
