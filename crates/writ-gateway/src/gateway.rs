//! `Gateway`: everything the data plane reads, built once at start and shared by requests.
//!
//! The hot path reads no database and no file: keys, upstreams, credentials and
//! revocations are held here in memory. Changes (a revocation, a key rotation) are written
//! to the store first, then applied here.

use std::collections::HashSet;
use std::sync::{Arc, RwLock};

use writ_providers::ProviderKind;
use writ_store::{DataDir, RevocationNote, Store, StoreError};
use writ_token::{
    Clock, KeyId, Revocation, RevocationCheck, RevocationSet, RootKeyPair, RootKeys, VerifiedWrit,
    Verifier,
};

mod reload;
mod start;

pub use reload::{ConfigChanges, ReloadError};
pub use start::StartError;
use start::{fanout, refuse_deferred_secrets, vault, webhooks};

use crate::audit::usage_log::UsageLog;
use crate::config::Config;
use crate::detect::detections;

/// The root keys in use: every trusted key and the one that signs.
pub struct KeyState {
    /// Keys writs may be signed with.
    pub trusted: RootKeys,
    /// The key new writs are signed with.
    pub signing: RootKeyPair,
}

/// The revocations in force here: this instance's store's and those other instances
/// shared (Redis), and the set requests are checked against, built from both.
#[derive(Debug, Default)]
struct InForce {
    local: Vec<Revocation>,
    shared: HashSet<Revocation>,
    set: RevocationSet,
}

impl InForce {
    fn rebuild(&mut self) {
        self.set = RevocationSet::from_revocations(self.local.iter().chain(&self.shared));
    }
}

/// Whether a revocation or lift made here reached the other instances.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Shared {
    /// No Redis is configured: this instance is the only one.
    SingleInstance,
    /// Published to every instance.
    Shared,
    /// Publishing failed: in force here, not yet on the others (they read the shared set
    /// when they reconnect).
    Failed,
}

/// The shared state of a running gateway.
pub struct Gateway {
    pub(crate) clock: Arc<dyn Clock>,
    pub(crate) max_body_bytes: usize,
    /// Whether the admin API is served on this listener (see `Config::admin_api_allowed`).
    pub(crate) admin_api: bool,
    /// This instance's audit log.
    pub(crate) audit: crate::audit::Auditor,
    /// Detectors' modes and counters.
    pub(crate) detections: crate::detect::detections::Detections,
    /// The Prometheus series `/metrics` serves.
    pub(crate) metrics: crate::metrics::Metrics,
    /// Addresses the data plane refuses for a while (brute force).
    pub(crate) blocked_addresses: crate::detect::BlockedAddresses,
    /// Webhooks told about detections, when configured.
    pub(crate) webhooks: Option<crate::detect::webhook::Webhooks>,
    /// Webhooks told about approvals that wait for a person, when configured.
    pub(crate) approval_webhooks: Option<crate::approval::notify::webhooks::ApprovalWebhooks>,
    /// Revocations shared with other instances (with the Redis backend).
    pub(crate) fanout: Option<Arc<crate::control::fanout::Fanout>>,
    /// Declared limits and their backend.
    pub(crate) limits: crate::limits::Limits,
    /// Inbound TLS, when configured.
    pub(crate) tls: Option<Arc<rustls::ServerConfig>>,
    /// Tenants, their upstreams and credentials, policies and limits, held in memory
    /// (`writ.toml`'s upstreams, tenants, policies and limits among them).
    pub(crate) tenancy: Arc<crate::tenancy::Tenancy>,
    /// The configuration running now, which a reload compares the next one with; held
    /// for the whole reload, so reloads apply one at a time.
    running: tokio::sync::Mutex<Config>,
    /// Checks presented writs: the one definition of a valid writ, with the cache of
    /// verified ones.
    pub(crate) writs: Verifier,
    /// Model prices.
    pub(crate) pricing: writ_providers::Pricing,
    /// What the latest calls consumed and cost.
    pub(crate) usage: UsageLog,
    /// One-time ids seen (single-use writs, DPoP proofs, client assertions), in the
    /// limiter backend: across instances with Redis.
    pub(crate) replay: crate::limits::replay::Replay,
    /// MCP sessions and the agents they are bound to, in the limiter backend: across
    /// instances with Redis.
    pub(crate) mcp_sessions: crate::limits::sessions::Sessions,
    /// Web origins besides its own whose pages may call MCP endpoints (canonical form).
    pub(crate) mcp_allowed_origins: Vec<String>,
    /// Where authorizations that could be costly run, one at a time.
    pub(crate) costly_evaluations: crate::pipeline::authorize::costly::CostlyEvaluations,
    /// The approval key and how held requests and mints wait for a person.
    pub(crate) approvals: crate::approval::ledger::Approvals,
    /// Tenant of agents named without one.
    pub(crate) tenant: String,
    /// Where spans go (`[traces]`); `None` traces nothing, at no cost.
    pub(crate) traces: Option<crate::traces::Traces>,
    /// Whether API-created upstreams may reach private addresses.
    allow_private_upstreams: bool,
    /// Longest writ lifetime.
    pub(crate) max_ttl: std::time::Duration,
    /// This server's identity (`aud` of client assertions): `server.public_url`, or the
    /// address it listens on.
    issuer: std::sync::OnceLock<String>,
    /// Where operators reach the admin API and console when they have a listener of their
    /// own (`[admin]`): its `public_url`, or that listener's address. Unset otherwise.
    admin_url: std::sync::OnceLock<String>,
    keys: RwLock<Arc<KeyState>>,
    revocations: RwLock<InForce>,
    pub(crate) data: DataDir,
}

impl std::fmt::Debug for Gateway {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Gateway")
            .field(
                "upstreams",
                &self.tenancy.declared().upstreams.keys().collect::<Vec<_>>(),
            )
            .finish_non_exhaustive()
    }
}

impl Gateway {
    /// Builds the gateway from a validated config, its data directory and store, reading
    /// time from `clock`.
    pub async fn start(
        config: &Config,
        data: DataDir,
        store: Store,
        clock: Arc<dyn Clock>,
    ) -> Result<Self, StartError> {
        refuse_deferred_secrets(config)?;
        for warning in config.warnings() {
            tracing::warn!(%warning, "risky setting");
        }
        let tls = match &config.tls {
            Some(files) => Some(crate::serve::tls::load(&files.cert, &files.key)?),
            None => None,
        };
        let limits = crate::limits::Limits::start(&config.limiter)
            .await
            .map_err(StartError::Limiter)?;
        let replay = crate::limits::replay::Replay::new(&limits);
        let mcp_sessions = crate::limits::sessions::Sessions::new(&limits);
        let master = data.master_key()?;
        let audit = crate::audit::Auditor::start(&config.audit, &data, master.expose())
            .await
            .map_err(StartError::Audit)?
            .log_requests(config.log_requests);
        let webhooks = webhooks(config, &clock)?;
        let approval_webhooks = crate::approval::notify::webhooks::ApprovalWebhooks::start(
            &config.approvals.webhooks,
            &clock,
        )
        .map_err(StartError::ApprovalWebhooks)?;
        let fanout = fanout(config).await?;
        let vault = vault(config, &data)?;
        let now = clock
            .now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        let declared = crate::tenancy::Declared::from_config(config, now, None).map_err(|e| {
            StartError::Upstream {
                name: e.name,
                source: e.source,
            }
        })?;
        let tenancy =
            Arc::new(crate::tenancy::Tenancy::start(store.clone(), vault, declared, now).await?);
        tenancy.follow(config.store.poll_interval).await?;
        let files = data.root_keys()?;
        let approval_key = crate::approval::ledger::load_key(&data)?;
        let mut revocations = InForce {
            local: store.revocations().await?,
            ..InForce::default()
        };
        revocations.rebuild();
        Ok(Self {
            clock,
            max_body_bytes: config.max_body_bytes,
            admin_api: config.admin_api_allowed(),
            tls,
            limits,
            fanout,
            audit,
            detections: crate::detect::detections::Detections::new(config.detection.clone()),
            metrics: crate::metrics::Metrics::new(config.metrics),
            webhooks,
            approval_webhooks,
            blocked_addresses: Default::default(),
            tenancy,
            running: tokio::sync::Mutex::new(config.clone()),
            writs: Verifier::new(100_000),
            pricing: config.pricing.clone(),
            usage: UsageLog::new(10_000),
            replay,
            mcp_sessions,
            mcp_allowed_origins: config.mcp_allowed_origins.clone(),
            costly_evaluations: Default::default(),
            approvals: crate::approval::ledger::Approvals::new(
                approval_key,
                config.approvals.clone(),
            ),
            tenant: config.tenant.clone(),
            traces: config
                .traces
                .as_ref()
                .map(crate::traces::Traces::start)
                .transpose()?,
            allow_private_upstreams: config.allow_private_upstreams,
            max_ttl: config.max_ttl,
            issuer: config
                .public_url
                .clone()
                .map(std::sync::OnceLock::from)
                .unwrap_or_default(),
            admin_url: config
                .admin
                .as_ref()
                .and_then(|a| a.public_url.clone())
                .map(std::sync::OnceLock::from)
                .unwrap_or_default(),
            keys: RwLock::new(Arc::new(KeyState {
                trusted: files.trusted,
                signing: files.signing,
            })),
            revocations: RwLock::new(revocations),
            data,
        })
    }

    /// Exports the spans of the requests ended so far and waits until that is done or
    /// failed (at shutdown, and for tests); nothing without `[traces]`. Returns the spans
    /// lost so far because an export failed.
    pub async fn flush_traces(&self) -> u64 {
        match &self.traces {
            Some(traces) => {
                traces.flush().await;
                traces.lost()
            }
            None => 0,
        }
    }

    /// Names and kinds of the upstreams `writ.toml` declares (as of the latest reload).
    pub fn upstreams(&self) -> Vec<(String, ProviderKind)> {
        self.tenancy
            .declared()
            .upstreams
            .iter()
            .map(|(n, u)| (n.clone(), u.provider.kind()))
            .collect()
    }

    /// This server's identity URL, as client assertions must name it in `aud`.
    pub fn issuer(&self) -> String {
        self.issuer.get().cloned().unwrap_or_default()
    }

    /// Sets the identity URL from the listening address, unless configured: `https://`
    /// when this gateway serves TLS, as its clients then reach it.
    pub fn default_issuer(&self, addr: std::net::SocketAddr) {
        let scheme = if self.tls.is_some() { "https" } else { "http" };
        let _ = self.issuer.set(format!("{scheme}://{addr}"));
    }

    /// The URL operators reach the admin API and console at: the console's origin (its
    /// passkeys and enrolment links) and the base of admin links. The admin listener's
    /// (see [`Gateway::default_admin_url`]) when there is one, else [`Gateway::issuer`].
    pub fn admin_url(&self) -> String {
        self.admin_url
            .get()
            .cloned()
            .unwrap_or_else(|| self.issuer())
    }

    /// Sets the admin URL from the admin listener's address, unless `[admin] public_url`
    /// set it: `https://` when this gateway serves TLS (the admin listener does too).
    pub fn default_admin_url(&self, addr: std::net::SocketAddr) {
        let scheme = if self.tls.is_some() { "https" } else { "http" };
        let _ = self.admin_url.set(format!("{scheme}://{addr}"));
    }

    /// What the latest calls consumed and cost, oldest first.
    pub fn recent_usage(&self) -> Vec<crate::audit::usage_log::UsageRecord> {
        self.usage.recent()
    }

    /// The store: tenants, agents, upstreams, credentials, policies, limits, revocations.
    pub fn store(&self) -> &Store {
        self.tenancy.store()
    }

    /// The vault tenant credentials are sealed with.
    pub fn vault(&self) -> &writ_store::Vault {
        self.tenancy.vault()
    }

    /// Whether `writ.toml` declares the upstream `name` (the admin API may not change it).
    pub fn declared_upstream(&self, name: &str) -> bool {
        self.tenancy.declared_upstream(name)
    }

    /// Whether `writ.toml` declares the tenant `name` (the admin API may not delete it).
    pub fn declared_tenant(&self, name: &str) -> bool {
        self.tenancy.declared_tenant(name)
    }

    /// Whether `tenant` may hold a credential for the upstream `name`: declared in
    /// `writ.toml`, shared, or the tenant's own (as of the current snapshot).
    pub fn upstream_visible(&self, tenant: &str, name: &str) -> bool {
        !matches!(
            self.tenancy.snapshot().resolve(tenant, name),
            crate::tenancy::Resolved::Unknown
        )
    }

    /// Whether upstreams created through the admin API may set `allow_private_network`
    /// (`[server] allow_private_upstreams`).
    pub fn allow_private_upstreams(&self) -> bool {
        self.allow_private_upstreams
    }

    /// Reloads `config` (a validated `writ.toml`) into the running gateway: upstreams,
    /// declared tenants and their policies, limits and detection modes apply to every
    /// request that arrives after it returns; requests in flight finish with the snapshot
    /// they took. Settings only a restart applies are logged as a warning naming each and
    /// keep their running value. Refused whole, the running configuration kept, when an
    /// upstream cannot be built or the store disagrees with the new declarations.
    /// Reloads run one at a time; each writes an `admin_change` audit record
    /// (`config.reload`) naming what changed, and a log line at info.
    pub async fn reload_config(&self, config: &Config) -> Result<ConfigChanges, ReloadError> {
        reload::reload(self, config).await
    }

    /// Re-reads the store into memory now: a change made here applies to the next
    /// request. (Other instances follow within one poll interval.)
    pub async fn reload(&self) -> Result<(), StoreError> {
        self.tenancy.reload().await
    }

    /// The secret scanner (every credential held, writs, known key formats).
    pub(crate) fn scanner(&self) -> Arc<writ_detect::Scanner> {
        self.tenancy.snapshot().scanner.clone()
    }

    /// The scanner of what is redacted whatever the mode (credentials and writs).
    pub(crate) fn own_secrets(&self) -> Arc<writ_detect::Scanner> {
        self.tenancy.snapshot().own_secrets.clone()
    }

    /// The data directory.
    pub fn data_dir(&self) -> &std::path::Path {
        self.data.path()
    }

    /// The keys in use now.
    pub fn keys(&self) -> Arc<KeyState> {
        self.keys.read().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// Re-reads the root keys from the data directory (after a rotation or retirement).
    /// Cached writs are dropped so a retired key stops working at once.
    pub fn reload_keys(&self) -> Result<KeyId, StoreError> {
        let files = self.data.root_keys()?;
        let kid = files.signing.kid();
        *self.keys.write().unwrap_or_else(|p| p.into_inner()) = Arc::new(KeyState {
            trusted: files.trusted,
            signing: files.signing,
        });
        self.writs.clear();
        Ok(kid)
    }

    /// Records `revocation` durably, then applies it to the next request and shares it
    /// with other instances. Returns its id in this instance's store, and whether the
    /// other instances were told.
    pub async fn revoke(
        &self,
        revocation: &Revocation,
        note: &RevocationNote,
    ) -> Result<(i64, Shared), StoreError> {
        let id = self.store().put_revocation(revocation, note).await?;
        // A stopped writ's approvals cannot be used any more: say so where they are read.
        crate::approval::ledger::void(
            &self.approval_ledger(),
            crate::approval::ledger::stopped_by(revocation),
        )
        .await;
        {
            let mut in_force = self.revocations.write().unwrap_or_else(|p| p.into_inner());
            in_force.local.push(revocation.clone());
            in_force.set.insert(revocation);
        }
        self.writs.clear();
        let shared = match &self.fanout {
            None => Shared::SingleInstance,
            Some(fanout) => match fanout.publish(revocation).await {
                Ok(()) => Shared::Shared,
                Err(e) => {
                    // Applied here and stored; other instances read the shared set when
                    // they reconnect, but until then they do not know. Loud, not silent.
                    tracing::error!(error = %e, "revocation not shared with other instances");
                    Shared::Failed
                }
            },
        };
        Ok((id, shared))
    }

    /// The revocations in force on this instance, as one set (a copy: it does not follow
    /// later changes).
    pub fn revocations_in_force(&self) -> RevocationSet {
        self.revocations
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .set
            .clone()
    }

    /// Marks the approvals past their expiry as expired, each with its audit record (the
    /// server does this every few seconds; embedders and tests may call it at will).
    pub async fn sweep_approvals(&self) {
        crate::approval::ledger::sweep(&self.approval_ledger()).await;
    }

    /// What deciding, voiding and expiring approvals work with.
    pub(crate) fn approval_ledger(&self) -> crate::approval::ledger::Ledger<'_> {
        crate::approval::ledger::Ledger {
            store: self.store(),
            audit: &self.audit,
            clock: &*self.clock,
            approvals: &self.approvals,
        }
    }

    /// Decides the approval `id` as the operator (`person` names them in the records;
    /// authenticated by holding this gateway, method `operator`): for embedders and
    /// tests. People decide through the admin API or the CLI.
    pub async fn decide_approval(
        &self,
        id: &str,
        person: &str,
        approve: bool,
        reason: Option<String>,
    ) -> Result<writ_store::ApprovalRecord, crate::error::GatewayError> {
        let decider = crate::approval::ledger::Decider {
            tenant: None,
            person: person.to_string(),
            method: "operator",
        };
        crate::approval::ledger::decide(&self.approval_ledger(), id, &decider, approve, reason)
            .await
    }

    /// Takes every revocation saying the same as `revocation` out of force, here (store
    /// and memory) and, through the shared set, on every instance. Returns how many of this
    /// store's records were lifted, and whether the other instances were told.
    pub async fn lift(
        &self,
        revocation: &Revocation,
        note: &RevocationNote,
    ) -> Result<(u64, Shared), StoreError> {
        let lifted = self.store().lift_revocations(revocation, note).await?;
        self.forget(revocation);
        let shared = match &self.fanout {
            None => Shared::SingleInstance,
            Some(fanout) => match fanout.publish_lift(revocation).await {
                Ok(()) => Shared::Shared,
                Err(e) => {
                    tracing::error!(error = %e, "lifted revocation not shared with other instances");
                    Shared::Failed
                }
            },
        };
        Ok((lifted, shared))
    }

    /// Removes `revocation` from what is in force here (memory only).
    fn forget(&self, revocation: &Revocation) {
        let mut in_force = self.revocations.write().unwrap_or_else(|p| p.into_inner());
        in_force.local.retain(|r| r != revocation);
        in_force.shared.remove(revocation);
        in_force.rebuild();
    }

    /// Puts a revocation another instance shared in force here. The shared set in Redis
    /// is its durable record; it is not copied into this instance's store.
    pub(crate) fn apply_shared_revocation(&self, revocation: &Revocation) {
        let mut in_force = self.revocations.write().unwrap_or_else(|p| p.into_inner());
        if in_force.shared.insert(revocation.clone()) {
            in_force.set.insert(revocation);
        }
        drop(in_force);
        self.writs.clear();
    }

    /// Replaces the revocations shared by other instances with `all` (the whole shared
    /// set, read on every (re)subscription), so lifts missed while disconnected apply.
    pub(crate) fn replace_shared_revocations(&self, all: HashSet<Revocation>) {
        let mut in_force = self.revocations.write().unwrap_or_else(|p| p.into_inner());
        in_force.shared = all;
        in_force.rebuild();
        drop(in_force);
        self.writs.clear();
    }

    /// Applies a lift another instance shared: out of force here, and this instance's own
    /// records of the same revocation are marked lifted so a restart does not restore it.
    pub(crate) async fn apply_shared_lift(&self, revocation: &Revocation) {
        self.forget(revocation);
        let note = RevocationNote {
            at: self
                .clock
                .now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_secs()),
            by: Some("another gateway instance".to_string()),
            reason: None,
        };
        if let Err(e) = self.store().lift_revocations(revocation, &note).await {
            tracing::error!(error = %e, "a shared lift could not be recorded in this store");
        }
    }

    /// Whether new writs must not be issued to `agent` of `tenant` (it or its tenant is
    /// revoked).
    pub(crate) fn refuses_agent(&self, tenant: &str, agent: &str) -> bool {
        self.revocations
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .set
            .refuses_agent(tenant, agent)
    }

    /// The audit log in the JSON-lines export format; fails when the sink cannot be read.
    pub async fn audit_export(&self) -> Result<Vec<String>, writ_audit::sink::SinkError> {
        self.audit.export().await
    }

    /// At most `limit` of the audit record lines of every instance appended since
    /// `marks`, `marks` moved past them: what a reader that keeps up with the log reads,
    /// instead of the whole log. Call again while `limit` lines come back.
    pub async fn audit_records_after(
        &self,
        marks: &mut writ_audit::sink::ReadMarks,
        limit: usize,
    ) -> Result<Vec<String>, writ_audit::sink::SinkError> {
        self.audit.reader().records_since(marks, limit).await
    }

    /// The key audit checkpoints verify with.
    pub fn audit_verifier_key(&self) -> writ_audit::VerifierKey {
        self.audit.verifier().clone()
    }

    /// How many strict audit records were written by their requests' own threads (the
    /// SQLite sink, while a request was served alone) rather than by the audit writer.
    pub fn audit_records_written_alone(&self) -> u64 {
        self.audit.written_alone()
    }

    /// How many group commits of strict audit records the serving threads made (the SQLite
    /// sink, while several requests were served at once) rather than the audit writer.
    pub fn audit_group_commits(&self) -> u64 {
        self.audit.group_commits()
    }

    /// How many requests (data plane and token endpoint) the audit log counts as being
    /// served now; `None` when no record is written by its request's thread (best effort,
    /// or a sink without that path).
    pub fn audit_requests_open(&self) -> Option<usize> {
        self.audit.requests_open()
    }

    /// Writes pending audit records and signs a checkpoint now.
    pub async fn audit_checkpoint(&self) {
        self.audit.checkpoint_now().await;
    }
}

/// The revocations in force on this instance (its store's and those shared by others).
impl RevocationCheck for Gateway {
    fn is_revoked(&self, writ: &VerifiedWrit) -> bool {
        self.revocations
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .set
            .is_revoked(writ)
    }
}

impl Gateway {
    /// Whether the writ `subject` was read from is revoked by the revocations in force on
    /// this instance: the test of [`RevocationCheck::is_revoked`], for a writ no longer
    /// at hand (a console session's).
    pub(crate) fn revokes(&self, subject: &writ_token::RevocationSubject) -> bool {
        self.revocations
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .set
            .revokes(subject)
    }

    /// Reports a detection: counted, told to the webhooks, and — unless it travels in a
    /// denied request's record (`own_record` false) — written to the audit log.
    pub(crate) async fn detected(
        &self,
        detection: crate::detect::detections::Detection,
        own_record: bool,
    ) {
        self.detections.count(&detection);
        tracing::warn!(
            detector = detection.detector.as_str(),
            action = detection.action.as_str(),
            rules = ?detection.rules,
            count = detection.count,
            location = detection.location,
            tenant = detection.tenant.as_deref(),
            "detection"
        );
        if let Some(webhooks) = &self.webhooks {
            webhooks.send(
                detection.detector,
                &detections::event(&self.audit, &detection, self.clock.now()),
            );
        }
        if own_record {
            self.audit
                .record(detections::record(
                    &self.audit,
                    &detection,
                    self.clock.now(),
                ))
                .await;
        }
    }
}

impl crate::control::fanout::Listener for Gateway {
    fn replace_all(&self, all: HashSet<Revocation>) {
        self.replace_shared_revocations(all);
    }

    fn revoked(&self, revocation: &Revocation) {
        self.apply_shared_revocation(revocation);
    }

    async fn lifted(&self, revocation: &Revocation) {
        self.apply_shared_lift(revocation).await;
    }
}

/// Opens the store `config` names: PostgreSQL at `[store] url`, else SQLite in `data`.
pub async fn open_store(config: &Config, data: &DataDir) -> Result<Store, StoreError> {
    match &config.store.backend {
        crate::config::StoreBackend::Postgres(url) => Store::connect(url.expose()).await,
        crate::config::StoreBackend::Sqlite => Store::open(&data.database_path()).await,
    }
}
