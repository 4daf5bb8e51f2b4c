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

/// Why an `[audit]` value was refused (the key is in [`ConfigError::Audit`]).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AuditConfigError {
    /// A `mode` other than `strict` or `best_effort`.
    #[error("expected strict or best_effort")]
    UnknownMode(String),
    /// A `sink` other than `sqlite`, `postgres` or `file`.
    #[error("expected sqlite, postgres or file")]
    UnknownSink(String),
    /// `postgres_url` is not a `postgres://` or `postgresql://` URL (not quoted: it may
    /// hold a password).
    #[error("expected postgres://user@host/db")]
    PostgresUrlScheme,
    /// `sink = "postgres"` without `postgres_url`.
    #[error("required with sink = \"postgres\"")]
    PostgresUrlRequired,
    /// `sink = "file"` without `file`.
    #[error("required with sink = \"file\"")]
    FileRequired,
    /// `postgres_url` or `file` given with another sink than theirs.
    #[error("postgres_url goes with sink = \"postgres\", file with sink = \"file\"")]
    SinkMismatch,
    /// `checkpoint_every` or `checkpoint_interval` is zero.
    #[error("must be positive")]
    Zero,
    /// A `durability` other than `committed` or `synced`.
    #[error("expected committed or synced")]
    UnknownDurability(String),
}

pub(super) fn audit_config(
    raw: RawAudit,
    env: &super::secrets::Env,
) -> Result<AuditConfig, ConfigError> {
    use AuditConfigError as E;
    let invalid = |field: &str, error: AuditConfigError| ConfigError::Audit {
        field: format!("audit.{field}"),
        error,
    };
    let strict = match raw.mode.as_deref() {
        None | Some("strict") => true,
        Some("best_effort") => false,
        Some(other) => return Err(invalid("mode", E::UnknownMode(other.to_string()))),
    };
    let sink = match (raw.sink.as_deref(), raw.postgres_url, raw.file) {
        (None | Some("sqlite"), None, None) => AuditSinkConfig::Sqlite,
        (Some("postgres"), Some(url), None) => {
            let url = env.expand("audit.postgres_url", &url)?;
            if !(url.starts_with("postgres://") || url.starts_with("postgresql://")) {
                return Err(invalid("postgres_url", E::PostgresUrlScheme));
            }
            AuditSinkConfig::Postgres(UpstreamSecret::new(url))
        }
        (Some("postgres"), None, _) => {
            return Err(invalid("postgres_url", E::PostgresUrlRequired));
        }
        (Some("file"), None, Some(path)) => AuditSinkConfig::File(path),
        (Some("file"), _, None) => return Err(invalid("file", E::FileRequired)),
        (None | Some("sqlite" | "postgres" | "file"), _, _) => {
            return Err(invalid("sink", E::SinkMismatch));
        }
        (Some(other), _, _) => return Err(invalid("sink", E::UnknownSink(other.to_string()))),
    };
    let checkpoint_every = raw.checkpoint_every.unwrap_or(1000);
    if checkpoint_every == 0 {
        return Err(invalid("checkpoint_every", E::Zero));
    }
    let checkpoint_interval = raw.checkpoint_interval.unwrap_or(Duration::from_secs(60));
    if checkpoint_interval.is_zero() {
        return Err(invalid("checkpoint_interval", E::Zero));
    }
    let durability = match raw.durability.as_deref() {
        None | Some("committed") => writ_audit::sink::Durability::Committed,
        Some("synced") => writ_audit::sink::Durability::Synced,
        Some(other) => {
            return Err(invalid(
                "durability",
                E::UnknownDurability(other.to_string()),
            ));
        }
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

#[cfg(test)]
mod tests {
    use super::AuditConfigError as E;
    use crate::config::{Config, ConfigError, RawConfig};

    fn refused(text: &str) -> (String, E) {
        match RawConfig::from_toml(text).and_then(|raw| Config::from_raw(raw, &|_| None)) {
            Err(ConfigError::Audit { field, error }) => (field, error),
            other => panic!("{text}: {other:?}"),
        }
    }

    #[test]
    fn audit_refusals_name_key_and_cause() {
        let cases = [
            (
                "mode = \"loose\"",
                "audit.mode",
                E::UnknownMode("loose".into()),
            ),
            ("sink = \"s3\"", "audit.sink", E::UnknownSink("s3".into())),
            (
                "sink = \"postgres\"\npostgres_url = \"mysql://h/db\"",
                "audit.postgres_url",
                E::PostgresUrlScheme,
            ),
            (
                "sink = \"postgres\"",
                "audit.postgres_url",
                E::PostgresUrlRequired,
            ),
            ("sink = \"file\"", "audit.file", E::FileRequired),
            ("file = \"audit.jsonl\"", "audit.sink", E::SinkMismatch),
            ("checkpoint_every = 0", "audit.checkpoint_every", E::Zero),
            (
                "checkpoint_interval = \"0s\"",
                "audit.checkpoint_interval",
                E::Zero,
            ),
            (
                "durability = \"eventual\"",
                "audit.durability",
                E::UnknownDurability("eventual".into()),
            ),
        ];
        for (body, key, error) in cases {
            assert_eq!(
                refused(&format!("[audit]\n{body}\n")),
                (key.to_string(), error),
                "{body}"
            );
        }
        let (_, error) =
            refused("[audit]\nsink = \"postgres\"\npostgres_url = \"mysql://u:hunter2@h/db\"\n");
        assert!(!error.to_string().contains("hunter2"));
    }
}
