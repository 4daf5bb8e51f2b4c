//! `AccessTokenSource`: OAuth access tokens for upstreams that want them (Vertex AI),
//! obtained by exchanging a signed service-account assertion at the token URI and cached
//! until shortly before they expire. One refresh at a time; callers wait for it.

use std::time::{Duration, SystemTime};

use axum::body::Body;
use http::{HeaderValue, Request, Uri, header};
use http_body_util::BodyExt;
use tokio::sync::Mutex;
use writ_providers::vertex::{self, ServiceAccount};

use crate::error::GatewayError;
use crate::upstream::HttpClient;

/// Largest token response read.
const MAX_RESPONSE_BYTES: usize = 64 * 1024;

/// Tokens for one service account.
pub(crate) struct AccessTokenSource {
    account: ServiceAccount,
    token_uri: Uri,
    cached: Mutex<Option<Cached>>,
}

struct Cached {
    header: HeaderValue,
    refresh_at: SystemTime,
}

impl AccessTokenSource {
    pub(crate) fn new(account: ServiceAccount, token_uri: Uri) -> Self {
        Self {
            account,
            token_uri,
            cached: Mutex::new(None),
        }
    }

    /// `Bearer <token>`, from the cache or freshly exchanged.
    pub(crate) async fn authorization(
        &self,
        client: &HttpClient,
        timeout: Duration,
        now: SystemTime,
    ) -> Result<HeaderValue, GatewayError> {
        let mut cached = self.cached.lock().await;
        if let Some(c) = cached.as_ref()
            && now < c.refresh_at
        {
            return Ok(c.header.clone());
        }
        let token = match tokio::time::timeout(timeout, self.exchange(client, now)).await {
            Ok(result) => result?,
            Err(_) => {
                tracing::warn!(token_uri = %self.token_uri, "token endpoint timed out");
                return Err(GatewayError::UpstreamAuth);
            }
        };
        let mut header = HeaderValue::try_from(format!("Bearer {}", token.token.expose()))
            .map_err(|_| GatewayError::UpstreamAuth)?;
        header.set_sensitive(true);
        *cached = Some(Cached {
            header: header.clone(),
            refresh_at: now + vertex::refresh_after(token.expires_in),
        });
        Ok(header)
    }

    async fn exchange(
        &self,
        client: &HttpClient,
        now: SystemTime,
    ) -> Result<vertex::AccessToken, GatewayError> {
        let audience = self.token_uri.to_string();
        let assertion = self.account.assertion(&audience, now).map_err(|e| {
            tracing::error!(error = %e, "service-account assertion");
            GatewayError::UpstreamAuth
        })?;
        let form = serde_urlencoded::to_string([
            ("grant_type", vertex::JWT_BEARER),
            ("assertion", assertion.as_str()),
        ])
        .map_err(|_| GatewayError::UpstreamAuth)?;
        let request = Request::post(self.token_uri.clone())
            .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
            .header(header::ACCEPT, "application/json")
            .body(Body::from(form))
            .map_err(|_| GatewayError::UpstreamAuth)?;
        let response = client.request(request).await.map_err(|e| {
            tracing::warn!(token_uri = %self.token_uri, error = %e, "token endpoint unreachable");
            GatewayError::UpstreamAuth
        })?;
        let status = response.status();
        let body = http_body_util::Limited::new(response.into_body(), MAX_RESPONSE_BYTES)
            .collect()
            .await
            .map_err(|_| GatewayError::UpstreamAuth)?
            .to_bytes();
        if !status.is_success() {
            // The body may explain (invalid_grant…) but is not logged: it is the provider's.
            tracing::warn!(token_uri = %self.token_uri, status = status.as_u16(), "token exchange refused");
            return Err(GatewayError::UpstreamAuth);
        }
        vertex::parse_token_response(&body).map_err(|e| {
            tracing::warn!(token_uri = %self.token_uri, error = %e, "token response");
            GatewayError::UpstreamAuth
        })
    }
}
