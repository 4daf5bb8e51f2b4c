//! `[audit]`: strict or best effort, the sink, checkpoints and durability.

use std::path::PathBuf;
use std::time::Duration;

use serde::Deserialize;
use writ_providers::UpstreamSecret;

use super::ConfigError;

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawAudit {
    mode: Option<String>,
    sink: Option<String>,
    postgres_url: Option<String>,
    file: Option<PathBuf>,
    checkpoint_every: Option<u64>,
    #[serde(default, with = "humantime_serde")]
    checkpoint_interval: Option<Duration>,
    client_addresses: Option<bool>,
    durability: Option<String>,
}

/// Where audit records go.
#[derive(Debug, Clone)]
pub enum AuditSinkConfig {
    /// `audit.db` in the data directory.
    Sqlite,
    /// PostgreSQL; the URL may hold a password.
    Postgres(UpstreamSecret),
    /// A JSON-lines file.
    File(PathBuf),
}

/// The audit log's settings.
#[derive(Debug, Clone)]
pub struct AuditConfig {
    /// Refuse requests that cannot be audited (503) rather than serve them unaudited.
    pub strict: bool,
    /// The sink.
    pub sink: AuditSinkConfig,
    /// Sign a checkpoint after this many records…
    pub checkpoint_every: u64,
    /// …or this long after the last one, whichever comes first (and at shutdown).
    pub checkpoint_interval: Duration,
    /// Record each request's client address, as a keyed pseudonym (default on).
    pub client_addresses: bool,
    /// When the SQLite or file sink forces records to disk: after every signed checkpoint
    /// (`committed`, the default) or on every write (`synced`).
    pub durability: writ_audit::sink::Durability,
}

pub(super) fn audit_config(
    raw: RawAudit,
    env: &super::secrets::Env,
) -> Result<AuditConfig, ConfigError> {
    let invalid = |field: &str, reason: &str| ConfigError::Invalid {
        field: format!("audit.{field}"),
        reason: reason.to_string(),
    };
    let strict = match raw.mode.as_deref() {
        None | Some("strict") => true,
        Some("best_effort") => false,
        Some(_) => return Err(invalid("mode", "expected strict or best_effort")),
    };
    let sink = match (raw.sink.as_deref(), raw.postgres_url, raw.file) {
        (None | Some("sqlite"), None, None) => AuditSinkConfig::Sqlite,
        (Some("postgres"), Some(url), None) => {
            let url = env.expand("audit.postgres_url", &url)?;
            if !(url.starts_with("postgres://") || url.starts_with("postgresql://")) {
                return Err(invalid("postgres_url", "expected postgres://user@host/db"));
            }
            AuditSinkConfig::Postgres(UpstreamSecret::new(url))
        }
        (Some("postgres"), None, _) => {
            return Err(invalid("postgres_url", "required with sink = \"postgres\""));
        }
        (Some("file"), None, Some(path)) => AuditSinkConfig::File(path),
        (Some("file"), _, None) => return Err(invalid("file", "required with sink = \"file\"")),
        (None | Some("sqlite" | "postgres" | "file"), _, _) => {
            return Err(invalid(
                "sink",
                "postgres_url goes with sink = \"postgres\", file with sink = \"file\"",
            ));
        }
        (Some(_), _, _) => return Err(invalid("sink", "expected sqlite, postgres or file")),
    };
    let checkpoint_every = raw.checkpoint_every.unwrap_or(1000);
    if checkpoint_every == 0 {
        return Err(invalid("checkpoint_every", "must be positive"));
    }
    let checkpoint_interval = raw.checkpoint_interval.unwrap_or(Duration::from_secs(60));
    if checkpoint_interval.is_zero() {
        return Err(invalid("checkpoint_interval", "must be positive"));
    }
    let durability = match raw.durability.as_deref() {
        None | Some("committed") => writ_audit::sink::Durability::Committed,
        Some("synced") => writ_audit::sink::Durability::Synced,
        Some(_) => return Err(invalid("durability", "expected committed or synced")),
    };
    Ok(AuditConfig {
        durability,
        client_addresses: raw.client_addresses.unwrap_or(true),
        strict,
        sink,
        checkpoint_every,
        checkpoint_interval,
    })
}
