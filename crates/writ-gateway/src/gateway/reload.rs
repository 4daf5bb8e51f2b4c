//! Reloading `writ.toml` into a running gateway: what changed between the running
//! configuration and the next one, what a reload applies (upstreams, tenants and their
//! policies, limits, detection modes), what only a restart applies, and the audit record
//! and log line of each reload.
//!
//! A reload swaps the tenancy snapshot whole: a request takes one snapshot when it
//! arrives and finishes with it, so a request in flight keeps the upstreams, policies and
//! limits it started with while the next one sees the new ones. Settings that only a
//! restart can change (listen address, TLS, store, audit sink…) are named in a warning
//! and keep their running value; the rest of the reload applies.

use std::collections::BTreeSet;
use std::fmt::Debug;

use serde_json::{Map, Value, json};

use super::Gateway;
use crate::config::Config;
use crate::tenancy::declared::{Declared, fingerprint};

/// Why a configuration was not reloaded; the running one is kept whole.
#[derive(Debug, thiserror::Error)]
pub enum ReloadError {
    /// An upstream's TLS client could not be set up.
    #[error("upstream `{name}`: TLS setup failed: {source}")]
    Upstream {
        /// Upstream name.
        name: String,
        /// What rustls refused.
        source: rustls::Error,
    },
    /// The store could not be read, or it disagrees with the new `writ.toml` (an upstream
    /// declared there was created through the admin API).
    #[error(transparent)]
    Tenancy(#[from] crate::tenancy::TenancyError),
    /// The config was loaded with secrets deferred: a gateway needs them resolved.
    #[error("the config's secrets were not resolved: environment variable(s) {names} not set")]
    DeferredSecrets {
        /// The unset variables, comma-separated.
        names: String,
    },
}

/// What differs between the running configuration and the next one. Names only: never a
/// value (values may be secrets).
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct ConfigChanges {
    /// Upstreams the next config declares and the running one does not.
    pub upstreams_added: Vec<String>,
    /// Upstreams the running config declares and the next one does not.
    pub upstreams_removed: Vec<String>,
    /// Upstreams both declare, with other settings or credentials.
    pub upstreams_changed: Vec<String>,
    /// Tenants newly declared (seeded into the store).
    pub tenants_added: Vec<String>,
    /// Tenants no longer declared: they stay in the store, and can now be deleted
    /// through the admin API.
    pub tenants_removed: Vec<String>,
    /// Tenants whose declared policies changed.
    pub policies_changed: Vec<String>,
    /// Whether the `[[limit]]`s changed.
    pub limits_changed: bool,
    /// Whether the detectors' modes or the brute-force policy changed.
    pub detection_changed: bool,
    /// Settings that changed but only a restart applies: their running value is kept.
    pub needs_restart: Vec<&'static str>,
}

impl ConfigChanges {
    /// What differs from `running` to `next`.
    pub fn between(running: &Config, next: &Config) -> Self {
        let names = |c: &Config| c.upstreams.keys().cloned().collect::<BTreeSet<_>>();
        let (before, after) = (names(running), names(next));
        let upstreams_changed = before
            .intersection(&after)
            .filter(|n| fingerprint(&running.upstreams[*n]) != fingerprint(&next.upstreams[*n]))
            .cloned()
            .collect();
        let tenants = |c: &Config| c.tenants.keys().cloned().collect::<BTreeSet<_>>();
        let (tenants_before, tenants_after) = (tenants(running), tenants(next));
        let policies_changed = tenants_before
            .union(&tenants_after)
            .filter(|t| {
                running.tenants.get(*t).map(|c| &c.policies)
                    != next.tenants.get(*t).map(|c| &c.policies)
            })
            .cloned()
            .collect();
        Self {
            upstreams_added: after.difference(&before).cloned().collect(),
            upstreams_removed: before.difference(&after).cloned().collect(),
            upstreams_changed,
            tenants_added: tenants_after.difference(&tenants_before).cloned().collect(),
            tenants_removed: tenants_before.difference(&tenants_after).cloned().collect(),
            policies_changed,
            limits_changed: running.limits != next.limits,
            detection_changed: detection_modes(running) != detection_modes(next),
            needs_restart: RESTART_ONLY
                .iter()
                .filter(|s| !(s.same)(running, next))
                .map(|s| s.name)
                .collect(),
        }
    }

    /// Whether anything a reload applies changed: upstreams, tenants, policies, limits.
    fn tenancy_changed(&self) -> bool {
        !(self.upstreams_added.is_empty()
            && self.upstreams_removed.is_empty()
            && self.upstreams_changed.is_empty()
            && self.tenants_added.is_empty()
            && self.tenants_removed.is_empty()
            && self.policies_changed.is_empty()
            && !self.limits_changed)
    }

    /// Whether nothing at all changed.
    pub fn is_empty(&self) -> bool {
        !self.tenancy_changed() && !self.detection_changed && self.needs_restart.is_empty()
    }

    /// The changes as an audit record's `detail`: names, never values.
    fn detail(&self) -> Map<String, Value> {
        match serde_json::to_value(self) {
            Ok(Value::Object(mut detail)) => {
                // Lists left empty and flags left false say nothing: kept out.
                detail.retain(|_, v| !matches!(v, Value::Array(a) if a.is_empty()));
                detail.retain(|_, v| *v != Value::Bool(false));
                detail
            }
            _ => Map::new(),
        }
    }
}

impl std::fmt::Display for ConfigChanges {
    /// One line for the log: `upstreams added: b; limits changed`, or `nothing changed`.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut parts = Vec::new();
        for (what, names) in [
            ("upstreams added", &self.upstreams_added),
            ("upstreams removed", &self.upstreams_removed),
            ("upstreams changed", &self.upstreams_changed),
            ("tenants added", &self.tenants_added),
            ("tenants no longer declared", &self.tenants_removed),
            ("policies changed for tenants", &self.policies_changed),
        ] {
            if !names.is_empty() {
                parts.push(format!("{what}: {}", names.join(", ")));
            }
        }
        if self.limits_changed {
            parts.push("limits changed".to_string());
        }
        if self.detection_changed {
            parts.push("detection modes changed".to_string());
        }
        if !self.needs_restart.is_empty() {
            parts.push(format!(
                "needs a restart (not applied): {}",
                self.needs_restart.join(", ")
            ));
        }
        if parts.is_empty() {
            f.write_str("nothing changed")
        } else {
            f.write_str(&parts.join("; "))
        }
    }
}

/// A setting only a restart applies, and how to tell whether two configs agree on it.
struct RestartOnly {
    /// Its key (or section) in `writ.toml`.
    name: &'static str,
    same: fn(&Config, &Config) -> bool,
    /// Puts `running`'s value into `next`, which then runs with it.
    keep: fn(&mut Config, &Config),
}

/// Equal when their `Debug` forms are (for settings without `PartialEq`; none of these
/// holds a map whose order could vary).
fn same_shown<T: Debug>(a: &T, b: &T) -> bool {
    format!("{a:?}") == format!("{b:?}")
}

/// The store's settings with the secrets their `Debug` hides (a password in the URL, the
/// master keys), so a change of those alone is seen too. Compared, never shown.
fn store_secrets(c: &Config) -> Vec<Vec<u8>> {
    let mut out = Vec::new();
    if let crate::config::StoreBackend::Postgres(url) = &c.store.backend {
        out.push(url.expose().as_bytes().to_vec());
    }
    if let crate::config::MasterKeySource::Configured(key) = &c.store.master_key {
        out.push(key.expose().to_vec());
    }
    out.extend(
        c.store
            .previous_master_keys
            .iter()
            .map(|k| k.expose().to_vec()),
    );
    out
}

/// The `[detection]` settings a reload applies: everything but the webhooks (whose
/// senders run from the start).
fn detection_modes(c: &Config) -> String {
    let mut detection = c.detection.clone();
    detection.webhooks.clear();
    format!("{detection:?}")
}

/// Every setting only a restart applies: what it listens on and with which TLS, where its
/// state and audit log are, its limiter backend, the senders it started, and the values
/// read once at start.
const RESTART_ONLY: &[RestartOnly] = &[
    RestartOnly {
        name: "server.listen",
        same: |a, b| a.listen == b.listen,
        keep: |n, r| n.listen = r.listen,
    },
    RestartOnly {
        name: "server.public_url",
        same: |a, b| a.public_url == b.public_url,
        keep: |n, r| n.public_url.clone_from(&r.public_url),
    },
    RestartOnly {
        name: "server.data_dir",
        same: |a, b| a.data_dir == b.data_dir,
        keep: |n, r| n.data_dir.clone_from(&r.data_dir),
    },
    RestartOnly {
        name: "server.max_body_bytes",
        same: |a, b| a.max_body_bytes == b.max_body_bytes,
        keep: |n, r| n.max_body_bytes = r.max_body_bytes,
    },
    RestartOnly {
        name: "server.workers",
        same: |a, b| a.workers == b.workers,
        keep: |n, r| n.workers = r.workers,
    },
    RestartOnly {
        name: "server.drain_timeout",
        same: |a, b| a.drain_timeout == b.drain_timeout,
        keep: |n, r| n.drain_timeout = r.drain_timeout,
    },
    RestartOnly {
        name: "server.tls_cert/tls_key",
        same: |a, b| same_shown(&a.tls, &b.tls),
        keep: |n, r| n.tls.clone_from(&r.tls),
    },
    RestartOnly {
        name: "server.tls_ca",
        same: |a, b| a.tls_ca == b.tls_ca,
        keep: |n, r| n.tls_ca.clone_from(&r.tls_ca),
    },
    RestartOnly {
        name: "server.allow_plaintext_admin",
        same: |a, b| a.allow_plaintext_admin == b.allow_plaintext_admin,
        keep: |n, r| n.allow_plaintext_admin = r.allow_plaintext_admin,
    },
    RestartOnly {
        name: "server.allow_private_upstreams",
        same: |a, b| a.allow_private_upstreams == b.allow_private_upstreams,
        keep: |n, r| n.allow_private_upstreams = r.allow_private_upstreams,
    },
    RestartOnly {
        name: "server.mcp_allowed_origins",
        same: |a, b| a.mcp_allowed_origins == b.mcp_allowed_origins,
        keep: |n, r| n.mcp_allowed_origins.clone_from(&r.mcp_allowed_origins),
    },
    RestartOnly {
        name: "tokens.tenant",
        same: |a, b| a.tenant == b.tenant,
        keep: |n, r| n.tenant.clone_from(&r.tenant),
    },
    RestartOnly {
        name: "tokens.max_ttl",
        same: |a, b| a.max_ttl == b.max_ttl,
        keep: |n, r| n.max_ttl = r.max_ttl,
    },
    RestartOnly {
        name: "store",
        same: |a, b| same_shown(&a.store, &b.store) && store_secrets(a) == store_secrets(b),
        keep: |n, r| n.store.clone_from(&r.store),
    },
    RestartOnly {
        name: "limiter",
        same: |a, b| same_shown(&a.limiter, &b.limiter),
        keep: |n, r| n.limiter.clone_from(&r.limiter),
    },
    RestartOnly {
        name: "audit",
        same: |a, b| same_shown(&a.audit, &b.audit),
        keep: |n, r| n.audit.clone_from(&r.audit),
    },
    RestartOnly {
        name: "pricing",
        same: |a, b| a.pricing == b.pricing,
        keep: |n, r| n.pricing.clone_from(&r.pricing),
    },
    RestartOnly {
        name: "detection.webhooks",
        same: |a, b| same_shown(&a.detection.webhooks, &b.detection.webhooks),
        keep: |n, r| n.detection.webhooks.clone_from(&r.detection.webhooks),
    },
    RestartOnly {
        name: "approvals",
        same: |a, b| same_shown(&a.approvals, &b.approvals),
        keep: |n, r| n.approvals.clone_from(&r.approvals),
    },
    RestartOnly {
        name: "log.format",
        same: |a, b| a.log_format == b.log_format,
        keep: |n, r| n.log_format = r.log_format,
    },
    RestartOnly {
        name: "log.level",
        same: |a, b| a.log_level == b.log_level,
        keep: |n, r| n.log_level.clone_from(&r.log_level),
    },
    RestartOnly {
        name: "log.requests",
        same: |a, b| a.log_requests == b.log_requests,
        keep: |n, r| n.log_requests = r.log_requests,
    },
];

/// What [`Gateway::reload_config`] does.
pub(super) async fn reload(gw: &Gateway, config: &Config) -> Result<ConfigChanges, ReloadError> {
    if !config.deferred.is_empty() {
        let names: Vec<&str> = config
            .deferred
            .iter()
            .map(|d| d.variable.as_str())
            .collect();
        return Err(ReloadError::DeferredSecrets {
            names: names.join(", "),
        });
    }
    let mut running = gw.running.lock().await;
    for warning in config.warnings() {
        tracing::warn!(%warning, "risky setting");
    }
    let changes = ConfigChanges::between(&running, config);
    if changes.tenancy_changed() {
        let now = gw
            .clock
            .now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        let declared =
            Declared::from_config(config, now, Some(&*gw.tenancy.declared())).map_err(|e| {
                ReloadError::Upstream {
                    name: e.name,
                    source: e.source,
                }
            })?;
        gw.tenancy.redeclare(declared, now).await?;
    }
    if changes.detection_changed {
        let mut detection = config.detection.clone();
        detection.webhooks.clone_from(&running.detection.webhooks);
        gw.detections.replace(detection);
    }
    for setting in &changes.needs_restart {
        tracing::warn!(
            setting,
            "writ.toml: this setting changed but needs a restart to apply; the running value is kept"
        );
    }
    let mut next = config.clone();
    for setting in RESTART_ONLY {
        (setting.keep)(&mut next, &running);
    }
    *running = next;
    drop(running);
    tracing::info!(changes = %changes, "configuration reloaded");
    let mut record = crate::audit::record_at(writ_audit::Kind::AdminChange, gw.clock.now());
    record.operation = Some("config.reload".to_string());
    record.status = Some(200);
    let mut detail = changes.detail();
    detail.insert("source".into(), json!("writ.toml"));
    record.detail = Some(detail);
    gw.audit.record(record).await;
    Ok(changes)
}

#[cfg(test)]
mod tests;
