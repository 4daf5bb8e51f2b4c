//! `WritSource`: holds the agent's current writ, mints a new one at the token endpoint
//! (`client_credentials`, RFC 9396 `authorization_details`) shortly before it expires, and
//! lets one mint run at a time however many requests need a writ at once.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use serde::Deserialize;
use zeroize::Zeroizing;

use crate::clock::{Clock, SystemClock};
use crate::credential::ClientCredential;
use crate::dpop::DpopKey;
use crate::error::Error;

/// How long before its expiry a writ is replaced, unless set.
pub const DEFAULT_RENEW_BEFORE: Duration = Duration::from_secs(5);

/// A writ the token endpoint issued. Prints no token.
pub struct Writ {
    token: Zeroizing<String>,
    dpop_bound: bool,
    minted_at: SystemTime,
    expires_at: SystemTime,
}

impl Writ {
    /// The writ text (`writ_…`): a bearer credential, never to be logged.
    pub fn token(&self) -> &str {
        &self.token
    }

    /// Whether the writ is bound to the source's DPoP key (sent as `Authorization: DPoP`).
    pub fn dpop_bound(&self) -> bool {
        self.dpop_bound
    }

    /// When it expires, by the client's clock at mint time plus `expires_in`: never later
    /// than the gateway's own expiry, which is truncated to whole seconds of its mint time
    /// and then counted inclusively.
    pub fn expires_at(&self) -> SystemTime {
        self.expires_at
    }

    /// Whether it should be replaced at `now`: `renew_before` before it expires, or half
    /// way through its life when that is sooner (so a writ shorter than `renew_before` is
    /// still reused).
    fn stale(&self, now: SystemTime, renew_before: Duration) -> bool {
        let life = self
            .expires_at
            .duration_since(self.minted_at)
            .unwrap_or_default();
        let margin = renew_before.min(life / 2);
        now + margin >= self.expires_at
    }
}

impl std::fmt::Debug for Writ {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Writ")
            .field("dpop_bound", &self.dpop_bound)
            .field("expires_at", &self.expires_at)
            .finish_non_exhaustive()
    }
}

/// Counters of what a source did, for telemetry and tests.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Stats {
    /// Writs minted.
    pub mints: u64,
    /// Requests sent again with a fresh writ after the gateway answered `expired_writ`.
    pub expired_retries: u64,
}

/// An agent's supply of writs. Cheap to clone; clones share the current writ.
#[derive(Clone)]
pub struct WritSource {
    pub(crate) inner: Arc<Inner>,
}

pub(crate) struct Inner {
    token_url: String,
    client_id: String,
    credential: ClientCredential,
    authorization_details: String,
    expires_in: Option<u64>,
    renew_before: Duration,
    pub(crate) dpop: Option<DpopKey>,
    pub(crate) clock: Arc<dyn Clock>,
    http: reqwest::Client,
    current: Mutex<Option<Arc<Writ>>>,
    /// Held while minting: one mint in flight, the others wait for its writ.
    minting: tokio::sync::Mutex<()>,
    mints: AtomicU64,
    pub(crate) expired_retries: AtomicU64,
}

impl std::fmt::Debug for WritSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WritSource")
            .field("token_url", &self.inner.token_url)
            .field("client_id", &self.inner.client_id)
            .field("credential", &self.inner.credential)
            .field("dpop", &self.inner.dpop)
            .finish_non_exhaustive()
    }
}

/// Builds a [`WritSource`].
pub struct WritSourceBuilder {
    token_url: String,
    client_id: String,
    credential: Option<ClientCredential>,
    authorization_details: Option<String>,
    expires_in: Option<u64>,
    renew_before: Duration,
    dpop: Option<DpopKey>,
    clock: Arc<dyn Clock>,
    http: Option<reqwest::Client>,
}

impl WritSource {
    /// A source for agent `client_id` (`agent` or `tenant/agent`) minting at `token_url`
    /// (`<gateway>/oauth2/token`).
    pub fn builder(
        token_url: impl Into<String>,
        client_id: impl Into<String>,
    ) -> WritSourceBuilder {
        WritSourceBuilder {
            token_url: token_url.into(),
            client_id: client_id.into(),
            credential: None,
            authorization_details: None,
            expires_in: None,
            renew_before: DEFAULT_RENEW_BEFORE,
            dpop: None,
            clock: Arc::new(SystemClock),
            http: None,
        }
    }

    /// The current writ, minting one when there is none or it is about to expire.
    pub async fn writ(&self) -> Result<Arc<Writ>, Error> {
        if let Some(w) = self.fresh() {
            return Ok(w);
        }
        let _minting = self.inner.minting.lock().await;
        // Whoever held the lock before may have minted what we need.
        if let Some(w) = self.fresh() {
            return Ok(w);
        }
        self.mint().await
    }

    /// A writ other than `rejected`, which the gateway refused as expired: the one another
    /// request minted meanwhile, or a new one.
    pub(crate) async fn replace(&self, rejected: &Arc<Writ>) -> Result<Arc<Writ>, Error> {
        let _minting = self.inner.minting.lock().await;
        if let Some(w) = self.fresh().filter(|w| !Arc::ptr_eq(w, rejected)) {
            return Ok(w);
        }
        self.mint().await
    }

    /// What this source has done so far.
    pub fn stats(&self) -> Stats {
        Stats {
            mints: self.inner.mints.load(Ordering::Relaxed),
            expired_retries: self.inner.expired_retries.load(Ordering::Relaxed),
        }
    }

    fn fresh(&self) -> Option<Arc<Writ>> {
        let current = self.inner.current.lock().unwrap_or_else(|p| p.into_inner());
        let now = self.inner.clock.now();
        current
            .as_ref()
            .filter(|w| !w.stale(now, self.inner.renew_before))
            .cloned()
    }

    /// Mints a writ and makes it current. Called with `minting` held.
    async fn mint(&self) -> Result<Arc<Writ>, Error> {
        let inner = &self.inner;
        let url = inner.token_url.as_str();
        let now = inner.clock.now();
        let mut form: Vec<(&str, Zeroizing<String>)> = vec![
            ("grant_type", Zeroizing::new("client_credentials".into())),
            ("client_id", Zeroizing::new(inner.client_id.clone())),
            (
                "authorization_details",
                Zeroizing::new(inner.authorization_details.clone()),
            ),
        ];
        if let Some(secs) = inner.expires_in {
            form.push(("expires_in", Zeroizing::new(secs.to_string())));
        }
        form.extend(inner.credential.form_fields(&inner.client_id, url, now)?);
        let pairs: Vec<(&str, &str)> = form.iter().map(|(k, v)| (*k, v.as_str())).collect();
        let mut request = inner.http.post(url).form(&pairs);
        if let Some(key) = &inner.dpop {
            request = request.header("DPoP", key.proof("POST", url, None, now)?);
        }
        let unreachable = |source| Error::Unreachable {
            url: url.to_string(),
            source,
        };
        let response = request.send().await.map_err(unreachable)?;
        let status = response.status().as_u16();
        let body = response.bytes().await.map_err(unreachable)?;
        if status != 200 {
            return Err(match serde_json::from_slice::<OAuthErrorBody>(&body) {
                Ok(e) => Error::Refused {
                    url: url.to_string(),
                    status,
                    error: e.error,
                    description: e.error_description,
                },
                Err(_) => Error::UnexpectedAnswer {
                    url: url.to_string(),
                    status,
                },
            });
        }
        let issued: Issued =
            serde_json::from_slice(&body).map_err(|_| Error::UnexpectedAnswer {
                url: url.to_string(),
                status,
            })?;
        let dpop_bound = issued.token_type.eq_ignore_ascii_case("dpop");
        if dpop_bound != inner.dpop.is_some() || !issued.access_token.starts_with("writ_") {
            return Err(Error::UnexpectedAnswer {
                url: url.to_string(),
                status,
            });
        }
        // Counted from before the gateway minted it: never later than its own expiry.
        let expires_at = now
            .checked_add(Duration::from_secs(issued.expires_in))
            .ok_or_else(|| Error::UnexpectedAnswer {
                url: url.to_string(),
                status,
            })?;
        let writ = Arc::new(Writ {
            token: Zeroizing::new(issued.access_token),
            dpop_bound,
            minted_at: now,
            expires_at,
        });
        *inner.current.lock().unwrap_or_else(|p| p.into_inner()) = Some(writ.clone());
        inner.mints.fetch_add(1, Ordering::Relaxed);
        Ok(writ)
    }
}

impl WritSourceBuilder {
    /// Authenticates with `private_key_jwt`: a PKCS#8 PEM Ed25519 or P-256 private key.
    pub fn private_key_pem(mut self, pem: &str) -> Result<Self, Error> {
        self.credential = Some(ClientCredential::private_key_pem(pem)?);
        Ok(self)
    }

    /// Authenticates with a client secret.
    pub fn client_secret(mut self, secret: impl Into<String>) -> Self {
        self.credential = Some(ClientCredential::secret(secret));
        self
    }

    /// The grants to ask for: RFC 9396 `authorization_details`, a JSON array of grant
    /// objects (`[{"type":"writ:llm","upstream":"openai","actions":["chat"]}]`).
    pub fn grants(mut self, grants: &serde_json::Value) -> Result<Self, Error> {
        match grants.as_array() {
            Some(list) if !list.is_empty() && list.iter().all(serde_json::Value::is_object) => {
                self.authorization_details = Some(grants.to_string());
                Ok(self)
            }
            _ => Err(Error::InvalidGrants),
        }
    }

    /// Asks for writs living `secs` seconds (the gateway caps it; unset, it gives its cap).
    pub fn expires_in(mut self, secs: u64) -> Self {
        self.expires_in = Some(secs);
        self
    }

    /// Replaces a writ this long before it expires (default 5 s; at most half its life).
    pub fn renew_before(mut self, margin: Duration) -> Self {
        self.renew_before = margin;
        self
    }

    /// Binds every writ to `key` (RFC 9449); each request then carries a proof.
    pub fn dpop(mut self, key: DpopKey) -> Self {
        self.dpop = Some(key);
        self
    }

    /// The clock assertions, proofs and expiry are computed with (the system's unless set).
    pub fn clock(mut self, clock: Arc<dyn Clock>) -> Self {
        self.clock = clock;
        self
    }

    /// The HTTP client the token endpoint is called with (for TLS settings, proxies,
    /// timeouts). Unset, a default `reqwest::Client`.
    pub fn http_client(mut self, client: reqwest::Client) -> Self {
        self.http = Some(client);
        self
    }

    /// The source. Mints nothing yet: the first request does.
    pub fn build(self) -> Result<WritSource, Error> {
        let credential = self.credential.ok_or(Error::Config(
            "a credential is required: call private_key_pem(..) or client_secret(..)",
        ))?;
        let authorization_details = self.authorization_details.ok_or(Error::Config(
            "grants are required: call grants(..) with what the agent needs (sent as authorization_details)",
        ))?;
        if self.expires_in == Some(0) {
            return Err(Error::Config("expires_in must be at least 1 second"));
        }
        if self.client_id.is_empty() {
            return Err(Error::Config("the client id is empty"));
        }
        Ok(WritSource {
            inner: Arc::new(Inner {
                token_url: self.token_url,
                client_id: self.client_id,
                credential,
                authorization_details,
                expires_in: self.expires_in,
                renew_before: self.renew_before,
                dpop: self.dpop,
                clock: self.clock,
                http: self.http.unwrap_or_default(),
                current: Mutex::new(None),
                minting: tokio::sync::Mutex::new(()),
                mints: AtomicU64::new(0),
                expired_retries: AtomicU64::new(0),
            }),
        })
    }
}

#[derive(Deserialize)]
struct OAuthErrorBody {
    error: String,
    error_description: Option<String>,
}

#[derive(Deserialize)]
struct Issued {
    access_token: String,
    token_type: String,
    expires_in: u64,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn writ(life_secs: u64) -> Writ {
        Writ {
            token: Zeroizing::new("writ_x".into()),
            dpop_bound: false,
            minted_at: SystemTime::UNIX_EPOCH,
            expires_at: SystemTime::UNIX_EPOCH + Duration::from_secs(life_secs),
        }
    }

    #[test]
    fn renewed_before_expiry_or_half_way_for_short_writs() {
        let at = |secs: u64| SystemTime::UNIX_EPOCH + Duration::from_millis(secs);
        let long = writ(30);
        assert!(!long.stale(at(24_999), DEFAULT_RENEW_BEFORE));
        assert!(long.stale(at(25_000), DEFAULT_RENEW_BEFORE));
        let short = writ(2);
        assert!(!short.stale(at(999), DEFAULT_RENEW_BEFORE));
        assert!(short.stale(at(1_000), DEFAULT_RENEW_BEFORE));
        assert!(!short.stale(at(1_000), Duration::ZERO));
        assert!(short.stale(at(2_000), Duration::ZERO));
    }

    #[test]
    fn debug_shows_no_token() {
        assert!(!format!("{:?}", writ(1)).contains("writ_x"));
    }
}
