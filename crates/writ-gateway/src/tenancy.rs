//! Tenancy at run time: what the data plane reads of the store, held in memory and
//! swapped whole when the store changes — every tenant's upstreams with the credential in
//! use, its policies and limits, and the secret scanners that know every credential.
//!
//! The hot path reads no database: it takes the current [`Snapshot`] (an `Arc`, so a
//! request or stream keeps the upstream and credential it started with while a rotation
//! swaps in the next). Changes reach this instance at once when made here ([`Tenancy::
//! reload`]) and from other instances through the store's change feed
//! ([`Tenancy::follow`]), within one poll interval.
//!
//! Credentials are opened once per change and held decrypted in memory, zeroized when the
//! snapshot holding them is dropped; the store holds them only sealed.

mod agents;
pub(crate) mod declared;
mod snapshot;

use std::sync::{Arc, RwLock};
use std::time::Duration;

use writ_store::{Store, StoreError, Vault};

use crate::config::UpstreamConfig;

pub(crate) use declared::Declared;
pub(crate) use snapshot::{Resolved, Snapshot};

/// What a gateway holds of its tenants: the store, the vault, and the current snapshot
/// (which holds what `writ.toml` declares: a config reload swaps it with the rest).
pub(crate) struct Tenancy {
    store: Store,
    vault: Vault,
    snapshot: RwLock<Arc<Snapshot>>,
    /// One reload at a time: each reads everything, the last one wins.
    reloading: tokio::sync::Mutex<()>,
}

impl std::fmt::Debug for Tenancy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Tenancy")
            .field("seq", &self.snapshot().seq)
            .finish_non_exhaustive()
    }
}

/// Why the store's state cannot be served alongside `writ.toml`.
#[derive(Debug, thiserror::Error)]
pub enum TenancyError {
    /// The store could not be read.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// An upstream of the same name is declared in `writ.toml` and was created through
    /// the admin API: requests could not tell which is meant.
    #[error(
        "upstream `{name}` is declared in writ.toml and was also created through the admin API \
         ({owner}); remove one: take it out of writ.toml (or rename it there), start the \
         gateway, and `writ upstream delete {name}{flag}` before declaring it again"
    )]
    Disagree {
        /// The upstream.
        name: String,
        /// Whose the API's is (`shared`, `tenant acme`).
        owner: String,
        /// The CLI flag naming it.
        flag: String,
    },
}

impl Tenancy {
    /// Seeds the tenants `writ.toml` declares, refuses state that silently disagrees with
    /// it, and loads the first snapshot.
    pub(crate) async fn start(
        store: Store,
        vault: Vault,
        declared: Declared,
        now: u64,
    ) -> Result<Self, TenancyError> {
        seed(&store, &declared, now).await?;
        let empty = Snapshot::empty(Arc::new(declared)).map_err(|e| {
            StoreError::Refused(format!("the secret scanner could not be built: {e}"))
        })?;
        let tenancy = Self {
            store,
            vault,
            snapshot: RwLock::new(Arc::new(empty)),
            reloading: tokio::sync::Mutex::new(()),
        };
        tenancy.load(None).await?;
        Ok(tenancy)
    }

    /// The snapshot requests read now.
    pub(crate) fn snapshot(&self) -> Arc<Snapshot> {
        self.snapshot
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// What `writ.toml` declares, as of the current snapshot.
    pub(crate) fn declared(&self) -> Arc<Declared> {
        self.snapshot().declared.clone()
    }

    /// The store.
    pub(crate) fn store(&self) -> &Store {
        &self.store
    }

    /// The agent `name` of `tenant`, if registered: as the current snapshot holds it, else
    /// read from the store and held with that snapshot. A change to the store swaps in a
    /// snapshot holding none, so a removed agent or a rotated key takes effect when the
    /// snapshot does (at once here, within one poll interval on other instances).
    pub(crate) async fn agent(
        &self,
        tenant: &str,
        name: &str,
    ) -> Result<Option<Arc<writ_store::Agent>>, StoreError> {
        let snapshot = self.snapshot();
        if let Some(agent) = snapshot.agents.get(tenant, name) {
            return Ok(Some(agent));
        }
        let Some(agent) = self.store.agent(tenant, name).await? else {
            return Ok(None);
        };
        let agent = Arc::new(agent);
        snapshot.agents.hold(agent.clone());
        Ok(Some(agent))
    }

    /// The vault credentials are sealed with.
    pub(crate) fn vault(&self) -> &Vault {
        &self.vault
    }

    /// Whether `writ.toml` declares the upstream `name`.
    pub(crate) fn declared_upstream(&self, name: &str) -> bool {
        self.declared().upstreams.contains_key(name)
    }

    /// The upstream `name` as `writ.toml` declares it, if it does.
    pub(crate) fn declared_config(&self, name: &str) -> Option<UpstreamConfig> {
        self.declared().configs.get(name).cloned()
    }

    /// Whether `writ.toml` declares the tenant `name`.
    pub(crate) fn declared_tenant(&self, name: &str) -> bool {
        self.declared().tenants.contains(name)
    }

    /// The policies `writ.toml` declares for `tenant`, as `(name, datalog)`.
    pub(crate) fn declared_policies(&self, tenant: &str) -> Vec<(String, String)> {
        self.declared()
            .policies_of(tenant)
            .map(|(n, b)| (n.to_string(), b.to_string()))
            .collect()
    }

    /// Re-reads the store and swaps in a new snapshot. Upstreams whose settings and
    /// credential did not change are kept as they are (with their connections).
    pub(crate) async fn reload(&self) -> Result<(), StoreError> {
        self.load(None).await
    }

    /// Swaps in what a new `writ.toml` declares: its new tenants are seeded, and the
    /// store is read again with it. Refused, the snapshot unchanged, when it declares an
    /// upstream the admin API created. Requests that took the previous snapshot finish
    /// with it.
    pub(crate) async fn redeclare(&self, declared: Declared, now: u64) -> Result<(), TenancyError> {
        seed(&self.store, &declared, now).await?;
        self.load(Some(Arc::new(declared))).await?;
        Ok(())
    }

    /// Builds and swaps in the next snapshot from the store, with `declared` (else the
    /// current snapshot's). Without a new `declared`, nothing is done when the store did
    /// not change since the current snapshot.
    async fn load(&self, declared: Option<Arc<Declared>>) -> Result<(), StoreError> {
        let _one = self.reloading.lock().await;
        let started = std::time::Instant::now();
        let seq = self.store.change_seq().await?;
        let previous = self.snapshot();
        if seq <= previous.seq && declared.is_none() {
            // Loaded meanwhile (by the request that made the change, or the feed).
            return Ok(());
        }
        let declared = declared.unwrap_or_else(|| previous.declared.clone());
        let upstreams = self.store.all_upstreams().await?;
        let credentials = self.store.active_credentials(&self.vault).await?;
        // `writ.toml`'s first, then the stored ones (a denial names the first that fails).
        let mut policies = declared.policies.clone();
        policies.extend(
            self.store()
                .rules(writ_store::RuleKind::Policy, None)
                .await?,
        );
        let limits = self.store.rules(writ_store::RuleKind::Limit, None).await?;
        let next = snapshot::Inputs {
            seq,
            declared,
            upstreams,
            credentials,
            policies,
            limits,
        }
        .build(&previous)
        .map_err(|e| StoreError::Refused(format!("the secret scanner could not be built: {e}")))?;
        *self.snapshot.write().unwrap_or_else(|p| p.into_inner()) = Arc::new(next);
        tracing::debug!(
            seq,
            took_ms = started.elapsed().as_millis() as u64,
            "tenancy reloaded"
        );
        Ok(())
    }

    /// Follows the store's change feed, reloading on every change (and at least every
    /// `poll`), until the gateway is dropped. A failed reload keeps the last snapshot and
    /// is retried at the next change or poll.
    pub(crate) async fn follow(self: &Arc<Self>, poll: Duration) -> Result<(), StoreError> {
        let feed = self.store.watch_changes(poll).await?;
        let mut changes = feed.subscribe();
        let tenancy = Arc::downgrade(self);
        tokio::spawn(async move {
            let _feed = feed;
            loop {
                // Woken by a change, or by the poll: a reload that failed is retried.
                if let Ok(Err(_)) = tokio::time::timeout(poll, changes.changed()).await {
                    return;
                }
                let seen = *changes.borrow_and_update();
                let Some(tenancy) = tenancy.upgrade() else {
                    return;
                };
                if seen > tenancy.snapshot().seq
                    && let Err(e) = tenancy.reload().await
                {
                    tracing::error!(error = %e, "store changes could not be loaded; serving the last state");
                }
            }
        });
        Ok(())
    }
}

/// Seeds the tenants `declared` names into the store, and refuses an upstream it declares
/// that the admin API also created (requests could not tell which is meant).
async fn seed(store: &Store, declared: &Declared, now: u64) -> Result<(), TenancyError> {
    for record in store.all_upstreams().await? {
        if declared.upstreams.contains_key(&record.name) {
            let (owner, flag) = match &record.tenant {
                None => ("shared".to_string(), " --shared".to_string()),
                Some(t) => (format!("tenant {t}"), format!(" --tenant {t}")),
            };
            return Err(TenancyError::Disagree {
                name: record.name,
                owner,
                flag,
            });
        }
    }
    for tenant in &declared.tenants {
        store.ensure_tenant(tenant, now).await?;
    }
    Ok(())
}
