//! `Declared`: what `writ.toml` says of tenancy — its upstreams (built, with the file's
//! credentials), the default upstream of each dialect, its tenants and their policies, and
//! its limits — built from one config and swapped whole when the config is reloaded.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Arc;

use sha2::Digest;
use writ_limits::LimitSpec;
use writ_providers::Dialect;
use writ_store::RuleRecord;

use crate::config::{Config, UpstreamConfig};
use crate::upstream::client::Upstream;

/// An upstream of `writ.toml` could not be built.
#[derive(Debug, thiserror::Error)]
#[error("upstream `{name}`: TLS setup failed: {source}")]
pub struct UpstreamBuildError {
    /// Upstream name.
    pub name: String,
    /// What rustls refused.
    pub source: rustls::Error,
}

/// What one `writ.toml` declares of tenancy.
pub(crate) struct Declared {
    /// The upstreams as loaded (a tenant credential applies to them).
    pub(crate) configs: BTreeMap<String, UpstreamConfig>,
    /// The upstreams, built, with the file's credentials.
    pub(crate) upstreams: BTreeMap<String, Arc<Upstream>>,
    /// What each upstream was built from ([`fingerprint`]): an upstream whose fingerprint
    /// did not change is kept across reloads, with its connections (and a server the
    /// gateway started keeps running).
    pub(crate) fingerprints: BTreeMap<String, [u8; 32]>,
    /// For each dialect, the upstream requests go to when they name none, or why there is
    /// none (several serve it: the writ's grants choose).
    pub(crate) defaults: HashMap<Dialect, Result<String, &'static str>>,
    /// The tenants it declares (seeded into the store; not deletable through the API).
    pub(crate) tenants: BTreeSet<String>,
    /// Its tenants' policies, applied before the stored ones (their names cannot be set
    /// through the API).
    pub(crate) policies: Vec<RuleRecord>,
    /// Its `[[limit]]`s, which every snapshot's limits start with.
    pub(crate) limits: Vec<LimitSpec>,
}

impl Declared {
    /// What `config` declares, built now (`now` dates its policies). The upstreams of
    /// `previous` whose settings and credential are unchanged are reused, not rebuilt.
    pub(crate) fn from_config(
        config: &Config,
        now: u64,
        previous: Option<&Declared>,
    ) -> Result<Self, UpstreamBuildError> {
        let mut upstreams = BTreeMap::new();
        let mut fingerprints = BTreeMap::new();
        for (name, cfg) in &config.upstreams {
            let print = fingerprint(cfg);
            let kept = previous.and_then(|p| {
                (p.fingerprints.get(name) == Some(&print))
                    .then(|| p.upstreams.get(name).cloned())
                    .flatten()
            });
            let upstream = match kept {
                Some(upstream) => upstream,
                None => {
                    Arc::new(
                        Upstream::new(name, cfg).map_err(|source| UpstreamBuildError {
                            name: name.clone(),
                            source,
                        })?,
                    )
                }
            };
            upstreams.insert(name.clone(), upstream);
            fingerprints.insert(name.clone(), print);
        }
        Ok(Self {
            defaults: defaults(&upstreams),
            configs: config.upstreams.clone(),
            upstreams,
            fingerprints,
            tenants: config.tenants.keys().cloned().collect(),
            policies: policies(&config.tenants, now),
            limits: config.limits.clone(),
        })
    }

    /// The policies `writ.toml` declares for `tenant`, as `(name, datalog)`.
    pub(crate) fn policies_of(&self, tenant: &str) -> impl Iterator<Item = (&str, &str)> {
        self.policies
            .iter()
            .filter(move |p| p.tenant == tenant)
            .map(|p| (p.name.as_str(), p.body.as_str()))
    }
}

/// A digest of everything an upstream is built from, its credentials included (which its
/// `Debug` leaves out): equal digests build the same upstream. Never shown.
pub(crate) fn fingerprint(cfg: &UpstreamConfig) -> [u8; 32] {
    let mut digest = sha2::Sha256::new();
    let shown = format!("{cfg:?}");
    let secrets = cfg.provider.secrets().iter().map(|s| s.expose());
    for part in std::iter::once(shown.as_str()).chain(secrets) {
        digest.update((part.len() as u64).to_be_bytes());
        digest.update(part.as_bytes());
    }
    digest.finalize().into()
}

/// For each dialect with upstreams, the one a request goes to when it names none, or why
/// there is none (several serve it: the writ's grants or `x-writ-upstream` choose).
fn defaults(
    upstreams: &BTreeMap<String, Arc<Upstream>>,
) -> HashMap<Dialect, Result<String, &'static str>> {
    let mut by_dialect: HashMap<Dialect, Vec<&str>> = HashMap::new();
    for (name, u) in upstreams {
        by_dialect
            .entry(u.provider.dialect())
            .or_default()
            .push(name);
    }
    by_dialect
        .into_iter()
        .map(|(dialect, names)| {
            let choice = match names.as_slice() {
                [one] => Ok(one.to_string()),
                _ => Err("several are configured; name one in the x-writ-upstream header"),
            };
            (dialect, choice)
        })
        .collect()
}

/// The policies `writ.toml` declares, as records of their tenants.
fn policies(tenants: &BTreeMap<String, crate::config::TenantConfig>, now: u64) -> Vec<RuleRecord> {
    tenants
        .iter()
        .flat_map(|(tenant, t)| {
            t.policies.iter().map(move |(name, body)| RuleRecord {
                tenant: tenant.clone(),
                name: name.clone(),
                body: body.clone(),
                created_at: now,
                updated_at: now,
            })
        })
        .collect()
}
