//! What the gateway is built from at start, apart from the `Gateway` itself: why a start
//! fails, and the vault, webhooks and revocation fan-out read from the config (its
//! upstreams, tenants and limits are `tenancy::declared`'s, rebuilt on a reload).

use std::sync::Arc;

use writ_store::{DataDir, StoreError};
use writ_token::Clock;

use crate::config::Config;

/// Why the gateway could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// An upstream's TLS client could not be set up (the crypto provider refused the
    /// protocol versions asked of it).
    #[error("upstream `{name}`: TLS setup failed: {source}")]
    Upstream {
        /// Upstream name.
        name: String,
        /// What rustls refused.
        source: rustls::Error,
    },
    /// Keys or revocations could not be loaded.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The store's tenants and upstreams could not be loaded, or disagree with `writ.toml`.
    #[error(transparent)]
    Tenancy(#[from] crate::tenancy::TenancyError),
    /// The limit backend (or the revocation fan-out sharing its Redis) could not be
    /// reached.
    #[error("limits: {0}")]
    Limiter(writ_limits::BackendError),
    /// The audit log could not be opened.
    #[error("audit: {0}")]
    Audit(crate::audit::AuditStartError),
    /// The detection webhooks' HTTP client could not be built.
    #[error("detection.webhooks: {0}")]
    Webhooks(crate::detect::webhook::WebhookClientError),
    /// The approval webhooks' HTTP client could not be built.
    #[error("approvals.webhooks: {0}")]
    ApprovalWebhooks(crate::detect::webhook::WebhookClientError),
    /// The secret scanner could not be built with the upstream credentials.
    #[error("secret scanner: {0}")]
    Scanner(writ_detect::DetectError),
    /// The TLS certificate or key could not be used.
    #[error(transparent)]
    Tls(#[from] crate::serve::tls::TlsError),
    /// The trace exporter (`[traces]`) could not be set up.
    #[error("traces: {0}")]
    Traces(#[from] crate::traces::TracesError),
    /// The config was loaded with secrets deferred (see `config::Secrets::Defer`): the
    /// gateway needs them resolved.
    #[error("the config's secrets were not resolved: environment variable(s) {names} not set")]
    DeferredSecrets {
        /// The unset variables, comma-separated.
        names: String,
    },
}

/// The vault `config` says to seal credentials with: `[store] master_key` (and the keys
/// it replaced), else the data directory's master key.
pub(super) fn vault(config: &Config, data: &DataDir) -> Result<writ_store::Vault, StoreError> {
    let previous: Vec<[u8; 32]> = config
        .store
        .previous_master_keys
        .iter()
        .map(|k| *k.expose())
        .collect();
    Ok(match &config.store.master_key {
        crate::config::MasterKeySource::Configured(key) => {
            writ_store::Vault::new(key.expose(), &previous)
        }
        crate::config::MasterKeySource::DataDir => {
            writ_store::Vault::new(data.master_key()?.expose(), &previous)
        }
    })
}

/// Refuses a configuration whose `${env:…}` secrets were left unresolved (read for a
/// command that does not serve): a gateway never runs without its credentials.
pub(super) fn refuse_deferred_secrets(config: &Config) -> Result<(), StartError> {
    if config.deferred.is_empty() {
        return Ok(());
    }
    let names: Vec<&str> = config
        .deferred
        .iter()
        .map(|d| d.variable.as_str())
        .collect();
    Err(StartError::DeferredSecrets {
        names: names.join(", "),
    })
}

/// The webhooks told of detections, when any are configured.
pub(super) fn webhooks(
    config: &Config,
    clock: &Arc<dyn Clock>,
) -> Result<Option<crate::detect::webhook::Webhooks>, StartError> {
    if config.detection.webhooks.is_empty() {
        return Ok(None);
    }
    let client = crate::detect::webhook::Webhooks::client().map_err(StartError::Webhooks)?;
    Ok(Some(crate::detect::webhook::Webhooks::start(
        config.detection.webhooks.clone(),
        client,
        clock.clone(),
    )))
}

/// The revocation fan-out between instances, with the Redis limiter backend.
pub(super) async fn fanout(
    config: &Config,
) -> Result<Option<Arc<crate::control::fanout::Fanout>>, StartError> {
    match &config.limiter.backend {
        crate::config::LimiterBackend::Redis(url) => Ok(Some(Arc::new(
            crate::control::fanout::Fanout::connect(url.expose(), config.limiter.timeout)
                .await
                .map_err(StartError::Limiter)?,
        ))),
        crate::config::LimiterBackend::Memory => Ok(None),
    }
}
