//! `[store]`: where tenants, agents, upstreams and encrypted credentials live (SQLite in
//! the data directory, or PostgreSQL), the master key wrapping the credentials' data
//! keys and the keys it replaced, and how often an instance looks for changes. Secrets
//! (the URL's password, the keys) stay wrapped: zeroized on drop, never in `Debug` or an
//! error.

use std::time::Duration;

use base64::Engine;
use serde::Deserialize;
use zeroize::Zeroizing;

use super::ConfigError;
use super::secrets::Env;

/// How often an instance checks for changes unless configured.
pub const DEFAULT_POLL_INTERVAL: Duration = Duration::from_millis(250);
/// The shortest and longest `poll_interval` accepted.
const POLL_INTERVAL_RANGE: (Duration, Duration) =
    (Duration::from_millis(10), Duration::from_secs(60));
/// At most this many `previous_master_keys`.
const MAX_PREVIOUS_KEYS: usize = 16;

/// `[store]` as written.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawStore {
    url: Option<String>,
    master_key: Option<String>,
    #[serde(default)]
    previous_master_keys: Vec<String>,
    #[serde(default, with = "humantime_serde")]
    poll_interval: Option<Duration>,
}

/// The validated `[store]` section.
#[derive(Debug, Clone)]
pub struct StoreConfig {
    /// Where the state lives.
    pub backend: StoreBackend,
    /// The key that wraps every credential's data key.
    pub master_key: MasterKeySource,
    /// Keys the master key replaced: data keys wrapped by one of them are still read
    /// (and re-wrapped under the current key by a rewrap). Never the current key.
    pub previous_master_keys: Vec<MasterKeyBytes>,
    /// How often an instance checks the store for changes made by others.
    pub poll_interval: Duration,
}

impl Default for StoreConfig {
    fn default() -> Self {
        Self {
            backend: StoreBackend::Sqlite,
            master_key: MasterKeySource::DataDir,
            previous_master_keys: Vec::new(),
            poll_interval: DEFAULT_POLL_INTERVAL,
        }
    }
}

/// Where the state lives.
#[derive(Debug, Clone)]
pub enum StoreBackend {
    /// SQLite in the data directory (`writ.db`): one gateway.
    Sqlite,
    /// PostgreSQL at this URL: any number of gateways.
    Postgres(PostgresUrl),
}

/// A `postgres://` or `postgresql://` URL, which may carry a password: zeroized on drop,
/// shown by `Debug` without its user info.
#[derive(Clone)]
pub struct PostgresUrl {
    text: Zeroizing<String>,
    shown: String,
}

impl PostgresUrl {
    /// The URL itself, for the one place that connects.
    pub fn expose(&self) -> &str {
        &self.text
    }
}

impl std::fmt::Debug for PostgresUrl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "PostgresUrl({})", self.shown)
    }
}

/// Where the master key comes from.
#[derive(Debug, Clone)]
pub enum MasterKeySource {
    /// The data directory's `keys/master.key`, created on first start.
    DataDir,
    /// `store.master_key`, given in the config (through `${env:…}`).
    Configured(MasterKeyBytes),
}

/// A 32-byte master key: zeroized on drop, never printed.
#[derive(Clone, PartialEq, Eq)]
pub struct MasterKeyBytes(Zeroizing<[u8; 32]>);

impl MasterKeyBytes {
    /// The key bytes.
    pub fn expose(&self) -> &[u8; 32] {
        &self.0
    }
}

impl std::fmt::Debug for MasterKeyBytes {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("MasterKeyBytes(..)")
    }
}

/// The refusals of `[store]`'s values. The values themselves are never quoted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum StoreConfigError {
    /// `url` is not a PostgreSQL URL.
    #[error(
        "must be a postgres:// or postgresql:// URL with a host, such as postgres://writ@db.internal/writ; leave it out to use SQLite in the data directory"
    )]
    NotPostgres,
    /// A key is not the base64 of 32 bytes.
    #[error(
        "must be the base64 of 32 bytes (such as the output of `openssl rand -base64 32`), usually given as ${{env:NAME}}"
    )]
    NotAKey,
    /// A previous key is the current one.
    #[error("is the current master_key; list only keys it replaced")]
    CurrentKey,
    /// Too many previous keys.
    #[error(
        "at most {MAX_PREVIOUS_KEYS} keys; rewrap (POST /admin/v1/vault/rewrap) and drop the oldest"
    )]
    TooManyKeys,
    /// `poll_interval` is out of range.
    #[error("must be between 10ms and 60s")]
    PollInterval,
}

fn refused(field: impl Into<String>, error: StoreConfigError) -> ConfigError {
    ConfigError::Store {
        field: field.into(),
        error,
    }
}

/// Validates `[store]`, resolving `${env:…}` references through `env`.
pub(super) fn store_config(raw: RawStore, env: &Env) -> Result<StoreConfig, ConfigError> {
    let backend = match raw.url {
        None => StoreBackend::Sqlite,
        Some(url) => {
            let before = env.unset_count();
            let text = Zeroizing::new(env.expand("store.url", &url)?);
            if env.unset_count() > before {
                // A stand-in: the next fields' references are still to be met, and the
                // section is dropped for them all.
                StoreBackend::Sqlite
            } else {
                StoreBackend::Postgres(postgres_url(text)?)
            }
        }
    };
    let master_key = match raw.master_key {
        None => MasterKeySource::DataDir,
        Some(text) => {
            MasterKeySource::Configured(decode_master_key("store.master_key", &text, env)?)
        }
    };
    if raw.previous_master_keys.len() > MAX_PREVIOUS_KEYS {
        return Err(refused(
            "store.previous_master_keys",
            StoreConfigError::TooManyKeys,
        ));
    }
    let mut previous_master_keys = Vec::with_capacity(raw.previous_master_keys.len());
    for (i, text) in raw.previous_master_keys.iter().enumerate() {
        let field = format!("store.previous_master_keys[{i}]");
        let key = decode_master_key(&field, text, env)?;
        if matches!(&master_key, MasterKeySource::Configured(current) if *current == key) {
            return Err(refused(field, StoreConfigError::CurrentKey));
        }
        previous_master_keys.push(key);
    }
    let poll_interval = raw.poll_interval.unwrap_or(DEFAULT_POLL_INTERVAL);
    let (shortest, longest) = POLL_INTERVAL_RANGE;
    if !(shortest..=longest).contains(&poll_interval) {
        return Err(refused(
            "store.poll_interval",
            StoreConfigError::PollInterval,
        ));
    }
    Ok(StoreConfig {
        backend,
        master_key,
        previous_master_keys,
        poll_interval,
    })
}

fn postgres_url(text: Zeroizing<String>) -> Result<PostgresUrl, ConfigError> {
    let parsed = url::Url::parse(&text)
        .ok()
        .filter(|u| matches!(u.scheme(), "postgres" | "postgresql") && u.has_host())
        .ok_or_else(|| refused("store.url", StoreConfigError::NotPostgres))?;
    let shown = format!(
        "{}://{}{}{}",
        parsed.scheme(),
        parsed.host_str().unwrap_or_default(),
        parsed.port().map(|p| format!(":{p}")).unwrap_or_default(),
        parsed.path()
    );
    Ok(PostgresUrl { text, shown })
}

/// The key `text` (after expansion) encodes: standard base64, padded or not, of exactly
/// 32 bytes.
fn decode_master_key(field: &str, text: &str, env: &Env) -> Result<MasterKeyBytes, ConfigError> {
    let before = env.unset_count();
    let text = Zeroizing::new(env.expand(field, text)?);
    if env.unset_count() > before {
        // A stand-in: the section is dropped (deferred) or the variable reported.
        return Ok(MasterKeyBytes(Zeroizing::new([0; 32])));
    }
    let trimmed = text.trim_ascii();
    let decoded = Zeroizing::new(
        base64::engine::general_purpose::STANDARD
            .decode(trimmed)
            .or_else(|_| base64::engine::general_purpose::STANDARD_NO_PAD.decode(trimmed))
            .map_err(|_| refused(field, StoreConfigError::NotAKey))?,
    );
    if decoded.len() != 32 {
        return Err(refused(field, StoreConfigError::NotAKey));
    }
    let mut key = Zeroizing::new([0; 32]);
    key.copy_from_slice(&decoded);
    Ok(MasterKeyBytes(key))
}

#[cfg(test)]
mod tests;
