//! `Snapshot`: one consistent view of every tenant's upstreams, credentials, policies and
//! limits, built from what the store holds and what `writ.toml` declares, and swapped
//! whole.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Arc;

use sha2::Digest;

use writ_limits::LimitSpec;
use writ_providers::UpstreamSecret;
use writ_store::{OpenedCredential, RuleRecord, UpstreamRecord};
use writ_token::OperatorPolicy;

use super::Declared;
use crate::config::{UpstreamConfig, UpstreamTemplate, api_upstream, build_with_credential};
use crate::error::Unavailable;
use crate::upstream::client::Upstream;

/// What serves an upstream name for one tenant.
pub(crate) enum Slot {
    /// Ready: the upstream with this tenant's credential (or the tenant's own upstream).
    Ready {
        upstream: Arc<Upstream>,
        /// What it was built from (settings, credential version and fingerprint): an
        /// unchanged key keeps the same upstream across snapshots.
        key: String,
    },
    /// Known, but it cannot serve this tenant now, and why (never a secret).
    Unavailable(Unavailable),
}

/// One tenant's view.
#[derive(Default)]
pub(crate) struct TenantView {
    /// Its own upstreams and its credentials for shared and declared ones.
    upstreams: BTreeMap<String, Slot>,
    /// Its policies, compiled; the reason when they could not be (requests are refused).
    policy: Option<Result<Arc<OperatorPolicy>, String>>,
}

/// Everything the data plane reads of tenancy, as of change `seq`.
pub(crate) struct Snapshot {
    /// The store's change sequence number this was built at.
    pub(crate) seq: i64,
    /// What `writ.toml` declares: its upstreams with the file's credentials, the default
    /// upstream of each dialect, its tenants, policies and limits.
    pub(crate) declared: Arc<Declared>,
    /// Shared upstreams created through the API (each tenant needs its own credential).
    shared: BTreeSet<String>,
    tenants: HashMap<String, TenantView>,
    /// Finds secrets (every credential held, writs, known key formats).
    pub(crate) scanner: Arc<writ_detect::Scanner>,
    /// Finds only what is redacted whatever the mode (credentials and writs).
    pub(crate) own_secrets: Arc<writ_detect::Scanner>,
    /// `writ.toml`'s limits followed by every tenant's.
    pub(crate) limits: Arc<Vec<LimitSpec>>,
    /// A digest of the credentials the scanners know: unchanged, they are reused.
    scanned: [u8; 32],
    /// Agents read from the store while this snapshot is current (none at first).
    pub(crate) agents: super::agents::HeldAgents,
}

impl std::fmt::Debug for Snapshot {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Snapshot")
            .field("seq", &self.seq)
            .finish_non_exhaustive()
    }
}

/// What a name resolves to for a tenant.
pub(crate) enum Resolved {
    /// This upstream serves it.
    Upstream(Arc<Upstream>),
    /// Known, but unavailable to this tenant.
    Unavailable(Unavailable),
    /// No upstream of that name.
    Unknown,
}

impl Snapshot {
    /// The snapshot before the store is read: `writ.toml`'s upstreams and limits only.
    pub(crate) fn empty(declared: Arc<Declared>) -> Result<Self, writ_detect::DetectError> {
        let (scanner, own_secrets, scanned) = scanners(&declared.upstreams, &HashMap::new(), None)?;
        Ok(Self {
            scanned,
            seq: -1,
            shared: BTreeSet::new(),
            tenants: HashMap::new(),
            scanner,
            own_secrets,
            limits: Arc::new(declared.limits.clone()),
            declared,
            agents: Default::default(),
        })
    }

    /// What `name` is for `tenant`: the tenant's own or its credential on a shared or
    /// declared upstream first, then the declared upstream with the file's credential.
    pub(crate) fn resolve(&self, tenant: &str, name: &str) -> Resolved {
        if let Some(slot) = self.tenants.get(tenant).and_then(|v| v.upstreams.get(name)) {
            return match slot {
                Slot::Ready { upstream, .. } => Resolved::Upstream(upstream.clone()),
                Slot::Unavailable(why) => Resolved::Unavailable(why.clone()),
            };
        }
        if let Some(upstream) = self.declared.upstreams.get(name) {
            return Resolved::Upstream(upstream.clone());
        }
        if self.shared.contains(name) {
            return Resolved::Unavailable(Unavailable::NoCredential);
        }
        Resolved::Unknown
    }

    /// Whether `tenant` sees upstreams beyond `writ.toml`'s (its own, or shared ones made
    /// through the API): then the upstream a request names none of is chosen among all.
    pub(crate) fn widens(&self, tenant: &str) -> bool {
        !self.shared.is_empty()
            || self
                .tenants
                .get(tenant)
                .is_some_and(|v| !v.upstreams.is_empty())
    }

    /// The upstreams ready to serve `tenant`, by name: declared ones (with the tenant's
    /// credential where it has one) and its own.
    pub(crate) fn ready_for<'s>(&'s self, tenant: &str) -> BTreeMap<&'s str, &'s Arc<Upstream>> {
        let mut out: BTreeMap<&str, &Arc<Upstream>> = self
            .declared
            .upstreams
            .iter()
            .map(|(n, u)| (n.as_str(), u))
            .collect();
        if let Some(view) = self.tenants.get(tenant) {
            for (name, slot) in &view.upstreams {
                match slot {
                    Slot::Ready { upstream, .. } => {
                        out.insert(name, upstream);
                    }
                    Slot::Unavailable(_) => {
                        out.remove(name.as_str());
                    }
                }
            }
        }
        out
    }

    /// `tenant`'s policies: `None` when it has none; the reason when they could not be
    /// compiled (requests are then refused).
    pub(crate) fn policy(&self, tenant: &str) -> Option<&Result<Arc<OperatorPolicy>, String>> {
        self.tenants.get(tenant).and_then(|v| v.policy.as_ref())
    }
}

/// What a snapshot is built from.
pub(crate) struct Inputs {
    pub(crate) seq: i64,
    pub(crate) declared: Arc<Declared>,
    pub(crate) upstreams: Vec<UpstreamRecord>,
    pub(crate) credentials: Vec<OpenedCredential>,
    pub(crate) policies: Vec<RuleRecord>,
    pub(crate) limits: Vec<RuleRecord>,
}

impl Inputs {
    /// The next snapshot, reusing `previous`'s upstreams whose key did not change.
    pub(crate) fn build(self, previous: &Snapshot) -> Result<Snapshot, writ_detect::DetectError> {
        let mut tenants: HashMap<String, TenantView> = HashMap::new();
        let mut shared = BTreeSet::new();
        let mut api = HashMap::new();
        for record in &self.upstreams {
            match &record.tenant {
                None => {
                    shared.insert(record.name.clone());
                }
                Some(tenant) => {
                    // Known to the tenant even before it has a credential.
                    tenants.entry(tenant.clone()).or_default().upstreams.insert(
                        record.name.clone(),
                        Slot::Unavailable(Unavailable::NoCredential),
                    );
                }
            }
            api.insert((record.tenant.clone(), record.name.clone()), record);
        }
        for credential in &self.credentials {
            let meta = &credential.meta;
            let own = api.get(&(Some(meta.tenant.clone()), meta.upstream.clone()));
            let shared_record = api.get(&(None, meta.upstream.clone()));
            let declared = self.declared.configs.get(&meta.upstream);
            // A declared upstream's settings are part of what a tenant's is built from.
            let declared_print = self
                .declared
                .fingerprints
                .get(&meta.upstream)
                .map(hex::encode)
                .unwrap_or_default();
            let slot = match (&credential.secret, own.or(shared_record), declared) {
                (_, None, None) => continue, // an orphan: its upstream is gone
                (Err(e), _, _) => Slot::Unavailable(Unavailable::Invalid(e.to_string())),
                (Ok(secret), record, declared) => {
                    let key = format!(
                        "{}|{declared_print}|{}|{}",
                        record.map(|r| r.settings.to_string()).unwrap_or_default(),
                        meta.version,
                        meta.fingerprint
                    );
                    match previous.reusable(&meta.tenant, &meta.upstream, &key) {
                        Some(upstream) => Slot::Ready { upstream, key },
                        None => build(&meta.upstream, record, declared, secret)
                            .map(|mut upstream| {
                                upstream.tenant_credential =
                                    Some((meta.tenant.clone(), meta.version));
                                Slot::Ready {
                                    upstream: Arc::new(upstream),
                                    key,
                                }
                            })
                            .unwrap_or_else(|why| Slot::Unavailable(Unavailable::Invalid(why))),
                    }
                }
            };
            tenants
                .entry(meta.tenant.clone())
                .or_default()
                .upstreams
                .insert(meta.upstream.clone(), slot);
        }
        let mut by_tenant: BTreeMap<&str, Vec<(&str, &str)>> = BTreeMap::new();
        for p in &self.policies {
            by_tenant
                .entry(p.tenant.as_str())
                .or_default()
                .push((p.name.as_str(), p.body.as_str()));
        }
        for (tenant, sources) in by_tenant {
            let compiled = OperatorPolicy::compile(&sources)
                .map(|p| Arc::new(p.with_tenant(tenant)))
                .map_err(|e| e.to_string());
            if let Err(e) = &compiled {
                tracing::error!(tenant, error = %e, "tenant policies do not compile; its requests are refused");
            }
            tenants.entry(tenant.to_string()).or_default().policy = Some(compiled);
        }
        let mut limits = self.declared.limits.clone();
        for l in &self.limits {
            let spec = serde_json::from_str(&l.body)
                .map_err(|e| crate::config::ConfigError::Invalid {
                    field: format!("limits.{}", l.name),
                    reason: e.to_string(),
                })
                .and_then(|v| crate::config::tenant_limit(&l.tenant, &l.name, &v));
            match spec {
                Ok(spec) => limits.push(spec),
                Err(e) => {
                    tracing::error!(tenant = %l.tenant, limit = %l.name, error = %e, "a stored limit is not valid; skipped");
                }
            }
        }
        let (scanner, own_secrets, scanned) =
            scanners(&self.declared.upstreams, &tenants, Some(previous))?;
        Ok(Snapshot {
            scanned,
            seq: self.seq,
            declared: self.declared,
            shared,
            tenants,
            scanner,
            own_secrets,
            limits: Arc::new(limits),
            agents: Default::default(),
        })
    }
}

impl Snapshot {
    /// The upstream this snapshot built from `key` for `tenant`, if any.
    fn reusable(&self, tenant: &str, name: &str, key: &str) -> Option<Arc<Upstream>> {
        match self.tenants.get(tenant)?.upstreams.get(name)? {
            Slot::Ready { upstream, key: k } if k == key => Some(upstream.clone()),
            _ => None,
        }
    }
}

/// The upstream `name` with one tenant's `secret`: on the tenant's own or a shared API
/// upstream's settings, or on the declared one's.
fn build(
    name: &str,
    record: Option<&&UpstreamRecord>,
    declared: Option<&UpstreamConfig>,
    secret: &str,
) -> Result<Upstream, String> {
    let config = match (record, declared) {
        (Some(record), _) => {
            let api = api_upstream(name, &record.settings).map_err(|e| e.to_string())?;
            build_with_credential(name, UpstreamTemplate::Api(&api), secret)
        }
        (None, Some(declared)) => {
            build_with_credential(name, UpstreamTemplate::Declared(declared), secret)
        }
        (None, None) => return Err("no such upstream".to_string()),
    }
    .map_err(|e| e.to_string())?;
    Upstream::new(name, &config).map_err(|e| format!("TLS setup failed: {e}"))
}

/// The scanner and the own-secrets scanner, knowing every credential held (the file's and
/// every tenant's) as exact secrets, with the digest of those credentials: `previous`'s
/// when it knew the same ones (building them is the costly part of a reload).
fn scanners(
    declared: &BTreeMap<String, Arc<Upstream>>,
    tenants: &HashMap<String, TenantView>,
    previous: Option<&Snapshot>,
) -> Result<Scanners, writ_detect::DetectError> {
    let tenant_upstreams = tenants.values().flat_map(|v| {
        v.upstreams.iter().filter_map(|(name, slot)| match slot {
            Slot::Ready { upstream, .. } => Some((name.as_str(), upstream)),
            Slot::Unavailable(_) => None,
        })
    });
    let exact: Vec<(&str, &str)> = declared
        .iter()
        .map(|(n, u)| (n.as_str(), u))
        .chain(tenant_upstreams)
        .flat_map(|(name, u)| {
            u.provider
                .secrets()
                .iter()
                .map(move |s: &UpstreamSecret| (name, s.expose()))
        })
        .filter(|(_, s)| s.len() >= 8 && s.len() <= 8 * 1024)
        .collect();
    let mut sorted: Vec<&(&str, &str)> = exact.iter().collect();
    sorted.sort();
    let mut digest = sha2::Sha256::new();
    for (label, secret) in sorted {
        for part in [label.as_bytes(), secret.as_bytes()] {
            digest.update((part.len() as u64).to_be_bytes());
            digest.update(part);
        }
    }
    let scanned: [u8; 32] = digest.finalize().into();
    if let Some(previous) = previous.filter(|p| p.scanned == scanned) {
        return Ok((
            previous.scanner.clone(),
            previous.own_secrets.clone(),
            scanned,
        ));
    }
    let scanner = writ_detect::Scanner::new(writ_detect::rules::BUILTIN.iter(), &exact)?;
    let writs = std::iter::once(writ_detect::rules::builtin(writ_detect::RuleId::Writ));
    let own_secrets = writ_detect::Scanner::new(writs, &exact)?;
    Ok((Arc::new(scanner), Arc::new(own_secrets), scanned))
}

/// The two scanners and the digest of the credentials they know.
type Scanners = (
    Arc<writ_detect::Scanner>,
    Arc<writ_detect::Scanner>,
    [u8; 32],
);
