//! `Auditor`: this instance's audit log. Records are appended to the Merkle log in
//! memory, written to the sink in batches by one writer task (or, strict on SQLite, by the
//! thread of a request served alone), and checkpointed every N records, every T, and at
//! shutdown.
//!
//! In strict mode (the default) a request is forwarded only once its `request_allowed`
//! decision is committed to the sink ([`Auditor::commit_decision`]; synced to disk then too
//! with `durability = "synced"`, otherwise after every checkpoint, off the writer's path),
//! and its outcome follows as a second record linked to it, not waited for: the upstream
//! has acted by then, and withholding the response would only invite a retry that acts
//! twice. Refusals are committed before their response. A record that could not be written
//! is kept and retried, never dropped, and the instance refuses (503) until the sink takes
//! writes again. In best-effort mode each request has one record, written in batches.
//! Lines written since the last checkpoint are kept, so a sink that lost them (PostgreSQL
//! crashing with `durability = "committed"`) gets them again (see `realign.rs`).

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::time::SystemTime;

use sha2::{Digest, Sha256};
use tokio::sync::{Mutex, mpsc, oneshot};
use writ_audit::sink::{PostgresLanes, Sink, SinkError};
use writ_audit::{AuditLog, AuditRecord, Kind, Pseudonymizer};
use writ_store::DataDir;

use super::alone::{Alone, AloneSink, OnTheWay};
use super::open::{AuditKeyError, load_key, open_sink, origin};
use super::realign::SinceCheckpoint;
use super::writer::{Appended, BEST_EFFORT_LINGER, Core, Job, Writer};
use crate::config::{AuditConfig, AuditSinkConfig};
use crate::metrics::AuditStats;

/// Why an instance's audit log could not be started.
#[derive(Debug, thiserror::Error)]
pub enum AuditStartError {
    /// The audit key could not be loaded.
    #[error(transparent)]
    Key(#[from] AuditKeyError),
    /// The configured sink could not be opened.
    #[error(transparent)]
    Sink(#[from] SinkError),
    /// The log could not be created for this instance's origin line.
    #[error("audit log: {0}")]
    Log(writ_audit::CheckpointError),
    /// The writer's thread could not be spawned.
    #[error("audit writer thread: {0}")]
    WriterThread(std::io::Error),
}

/// Serving threads (the first ones) that keep a PostgreSQL connection of their own for
/// records written alone; threads past them hand theirs to the writer. Only one request
/// is served alone at a time, so a few suffice, and a gateway with many threads does not
/// hold a connection per thread against the server's `max_connections`.
const LANES: usize = 8;

/// This instance's audit log.
pub(crate) struct Auditor {
    strict: bool,
    /// Log a line per request (`[log] requests`).
    log_requests: bool,
    /// This instance's id (every record carries it).
    instance: String,
    /// Record the (pseudonymized) client address.
    client_addresses: bool,
    healthy: Arc<AtomicBool>,
    /// Records received and written, failed writes: for the metrics.
    pub(crate) stats: Arc<AuditStats>,
    jobs: mpsc::UnboundedSender<Job>,
    pseudonyms: Pseudonymizer,
    /// The sink, for reading back.
    sink: Sink,
    verifier: writ_audit::VerifierKey,
    /// Resolves when the writer thread has ended.
    writer: Mutex<Option<oneshot::Receiver<()>>>,
    /// Strict mode with the SQLite or PostgreSQL sink: a record that arrives while no
    /// other is on its way is written by the request's own thread (see `alone.rs`).
    alone: Option<Arc<Alone>>,
    /// The log and what of it is written, shared with the writer: strict mode's outcome
    /// records are appended to it here (see [`Auditor::queue_outcome`]).
    core: Arc<std::sync::Mutex<Core>>,
    /// Records between checkpoints.
    every: u64,
}

impl Auditor {
    /// Starts the writer task. Fails when the audit key cannot be loaded, the sink
    /// cannot be opened or the writer's thread cannot be spawned.
    pub(crate) async fn start(
        config: &AuditConfig,
        data: &DataDir,
        master: &[u8; 32],
    ) -> Result<Self, AuditStartError> {
        let key = load_key(data)?;
        // The writer's own PostgreSQL pool skips the ping before each write (see
        // `Sink::postgres_writing`); the reader's checks every connection it hands out.
        let sink = match &config.sink {
            AuditSinkConfig::Postgres(url) => {
                Sink::postgres_writing(url.expose(), config.durability).await?
            }
            AuditSinkConfig::Sqlite | AuditSinkConfig::File(_) => open_sink(config, data).await?,
        };
        let instance = ulid::Ulid::new().to_string();
        let log =
            AuditLog::new(instance.clone(), origin(&instance)).map_err(AuditStartError::Log)?;
        let healthy = Arc::new(AtomicBool::new(sink.probe().await.is_ok()));
        let stats = Arc::new(AuditStats::default());
        let verifier = key.verifier_key();
        // PostgreSQL connections belong to the runtime of the thread that opened them: the
        // writer gets a pool of its own, so none of its connections is opened by a serving
        // thread (whose runtime ends before the writer's last checkpoint at shutdown).
        let reader = match &config.sink {
            AuditSinkConfig::Postgres(_) => open_sink(config, data).await?,
            AuditSinkConfig::Sqlite | AuditSinkConfig::File(_) => sink.clone(),
        };
        let (jobs, rx) = mpsc::unbounded_channel();
        let core = Arc::new(std::sync::Mutex::new(Core {
            log,
            written: 0,
            unwritten: Vec::new(),
            waiting: Vec::new(),
            checkpointed: 0,
            since_checkpoint: SinceCheckpoint::default(),
            flushing: false,
            checkpointing: false,
            stopping: false,
            writer_waits: false,
        }));
        let alone_sink = match (&config.sink, sink.sqlite_writer()) {
            (_, Some(writer)) => Some(AloneSink::Sqlite(writer.clone())),
            (AuditSinkConfig::Postgres(url), None) => Some(AloneSink::Postgres(Arc::new(
                PostgresLanes::new(url.expose(), config.durability, LANES + 1)?,
            ))),
            (AuditSinkConfig::Sqlite | AuditSinkConfig::File(_), None) => None,
        };
        let alone = alone_sink.filter(|_| config.strict).map(|sink| {
            Arc::new(Alone {
                core: core.clone(),
                sink,
                jobs: jobs.clone(),
                healthy: healthy.clone(),
                stats: stats.clone(),
                instance: instance.clone(),
                every: config.checkpoint_every,
                on_the_way: AtomicUsize::new(0),
                open_requests: AtomicUsize::new(0),
                written: AtomicU64::new(0),
                groups: config.durability == writ_audit::sink::Durability::Committed,
                written_in_groups: AtomicU64::new(0),
            })
        });
        let writer = Writer {
            core: core.clone(),
            key,
            sink,
            instance: instance.clone(),
            every: config.checkpoint_every,
            healthy: healthy.clone(),
            stats: stats.clone(),
            sync_at_checkpoints: None,
            linger: (!config.strict).then_some(BEST_EFFORT_LINGER),
            stopping: false,
            storing: None,
        };
        tracing::info!(instance = %instance, "audit log started");
        // The writer has a thread (and runtime) of its own: the serving threads hand it
        // records without waking one another, and the SQLite sink writes on it directly.
        let interval = config.checkpoint_interval;
        let durability = config.durability;
        let (ended_tx, ended) = oneshot::channel();
        std::thread::Builder::new()
            .name("writ-audit".to_string())
            .spawn(move || {
                match tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                {
                    Ok(runtime) => runtime.block_on(writer.run(rx, interval, durability)),
                    Err(e) => tracing::error!(error = %e, "audit writer runtime failed to start"),
                }
                let _ = ended_tx.send(());
            })
            .map_err(AuditStartError::WriterThread)?;
        Ok(Self {
            strict: config.strict,
            log_requests: false,
            instance,
            client_addresses: config.client_addresses,
            healthy,
            stats,
            jobs,
            pseudonyms: pseudonymizer(master),
            sink: reader,
            verifier,
            writer: Mutex::new(Some(ended)),
            alone,
            core,
            every: config.checkpoint_every,
        })
    }

    /// Logs a line per request from now on when `on` (`[log] requests`).
    pub(crate) fn log_requests(mut self, on: bool) -> Self {
        self.log_requests = on;
        self
    }

    /// Whether a request may be forwarded: always in best-effort mode; in strict mode
    /// only while the sink takes writes.
    pub(crate) fn may_proceed(&self) -> bool {
        !self.strict || self.healthy.load(Ordering::Acquire)
    }

    /// The pseudonym of a writ id or client address.
    pub(crate) fn pseudonym(&self, value: &str) -> String {
        self.pseudonyms.pseudonym(value)
    }

    /// The pseudonym of a client address, or `None` when addresses are not recorded.
    pub(crate) fn client_pseudonym(&self, ip: std::net::IpAddr) -> Option<String> {
        self.client_addresses
            .then(|| self.pseudonyms.pseudonym(&address_text(ip)))
    }

    /// This instance's id.
    pub(crate) fn instance(&self) -> &str {
        &self.instance
    }

    /// Whether a forwarded request gets two records (strict mode): its decision, committed
    /// before it is forwarded ([`Auditor::commit_decision`]), and its outcome after.
    pub(crate) fn decides_first(&self) -> bool {
        self.strict
    }

    /// Appends a record. In strict mode, waits until it is durable and says whether it
    /// is; in best-effort mode returns at once (true). An outcome record
    /// ([`Kind::RequestOutcome`]) is never waited for (true): its request has already
    /// acted upstream, so a failed write can no longer refuse it; the record is kept and
    /// retried like any other. Neither is a refusal ([`Kind::RequestDenied`]) while the
    /// sink is known to be failing (false): waiting could not make it durable, only make
    /// its client wait out a write attempt or two (the sink's timeouts, seconds); it is
    /// kept and written when the sink returns.
    pub(crate) async fn record(&self, record: AuditRecord) -> bool {
        self.stats.received(1);
        if self.log_requests {
            super::request_log::log_request(&record);
        }
        if record.kind == Kind::RequestOutcome && self.strict {
            self.queue_outcome(record);
            return true;
        }
        if record.kind == Kind::RequestDenied && self.strict && !self.may_proceed() {
            let _ = self.jobs.send(Job::Record(Box::new(record), None));
            return false;
        }
        if !self.strict {
            let _ = self.jobs.send(Job::Record(Box::new(record), None));
            return true;
        }
        matches!(self.append_durably(record).await, Appended::Durable(_))
    }

    /// Strict mode's outcome record. It is appended to the log here and written with the
    /// next record committed: the next request's own commit (SQLite) or the writer's next
    /// batch, checkpoint or retry tick (at most `checkpoint_interval` or 500 ms later).
    /// Handing each to the writer cost a wake-up of its thread and a commit of its own per
    /// request, which at one request at a time also kept the sink busy when the next
    /// decision came (with PostgreSQL, the next request waited out that round trip before
    /// its own). Appended while a batch is being written, it goes with the next one. Once
    /// the writer is stopping it goes to the writer, which writes it before it ends.
    fn queue_outcome(&self, record: AuditRecord) {
        let mut core = self.core.lock().unwrap_or_else(|p| p.into_inner());
        if !core.stopping {
            let (line, _) = core.log.append(record);
            core.unwritten.push(line);
            if core.log.size() - core.checkpointed >= self.every {
                let _ = self.jobs.send(Job::Written);
            }
            return;
        }
        drop(core);
        let _ = self.jobs.send(Job::Record(Box::new(record), None));
    }

    /// Strict mode: appends a request's `request_allowed` decision and waits until it is
    /// durable. Only then may the request be forwarded; anything but
    /// [`Appended::Durable`] means it must not be. Concurrent decisions are committed
    /// together: by a serving thread (SQLite, see `group.rs`) or by the writer.
    pub(crate) async fn commit_decision(&self, record: AuditRecord) -> Appended {
        self.stats.received(1);
        self.append_durably(record).await
    }

    /// Appends `record` and waits until it is durable.
    ///
    /// A record that finds no other strict record on its way and the log free is written
    /// by the calling thread itself (see `alone.rs`); records that arrive together are
    /// committed in groups by the serving threads (SQLite with `committed` durability, see
    /// `group.rs`), or else go to the writer, which commits them in one batch.
    async fn append_durably(&self, record: AuditRecord) -> Appended {
        let record = Box::new(record);
        let (_on_the_way, record) = match &self.alone {
            Some(alone) => {
                let (on_the_way, others) = OnTheWay::enter(&alone.on_the_way);
                let record = match alone.write(others, record).await {
                    Ok(appended) => return appended,
                    Err(record) => record,
                };
                match alone.join_group(record) {
                    Ok(answer) => return answer.await.unwrap_or(Appended::Lost),
                    Err(record) => (Some(on_the_way), record),
                }
            }
            None => (None, record),
        };
        let (tx, rx) = oneshot::channel();
        if self.jobs.send(Job::Record(record, Some(tx))).is_err() {
            return Appended::Lost;
        }
        rx.await.unwrap_or(Appended::Lost)
    }

    /// Counts a request (data plane or token endpoint) as being served while the returned
    /// guard lives, when records may be written by their request's thread: they are only
    /// while it is the one request being served, so that under load records are written
    /// in batches.
    pub(crate) fn open_request(&self) -> Option<OnTheWay<'_>> {
        self.alone
            .as_ref()
            .map(|alone| OnTheWay::enter(&alone.open_requests).0)
    }

    /// How many requests [`Auditor::open_request`] counts as being served now.
    pub(crate) fn requests_open(&self) -> Option<usize> {
        self.alone
            .as_ref()
            .map(|alone| alone.open_requests.load(Ordering::Acquire))
    }

    /// How many records their requests' own threads have written.
    pub(crate) fn written_alone(&self) -> u64 {
        self.alone
            .as_ref()
            .map_or(0, |alone| alone.written.load(Ordering::Relaxed))
    }

    /// How many group commits the serving threads have made (see `group.rs`).
    pub(crate) fn group_commits(&self) -> u64 {
        self.alone
            .as_ref()
            .map_or(0, |alone| alone.written_in_groups.load(Ordering::Relaxed))
    }

    /// The whole log in the export format; fails when the sink cannot be read.
    pub(crate) async fn export(&self) -> Result<Vec<String>, SinkError> {
        self.sink.export().await
    }

    /// The sink, for reading records back in pages (see `writ_audit::sink`).
    pub(crate) fn reader(&self) -> &Sink {
        &self.sink
    }

    /// The verifier key of checkpoints.
    pub(crate) fn verifier(&self) -> &writ_audit::VerifierKey {
        &self.verifier
    }

    /// Writes what is pending and signs a checkpoint of it.
    pub(crate) async fn checkpoint_now(&self) {
        let (tx, rx) = oneshot::channel();
        if self.jobs.send(Job::Checkpoint(tx)).is_ok() {
            let _ = rx.await;
        }
    }

    /// Writes what is pending and signs a final checkpoint; for shutdown.
    pub(crate) async fn close(&self) {
        let (tx, rx) = oneshot::channel();
        if self.jobs.send(Job::Checkpoint(tx)).is_ok() {
            let _ = rx.await;
        }
        if let Some(ended) = self.writer.lock().await.take() {
            let _ = self.jobs.send(Job::Stop);
            let _ = ended.await;
        }
    }
}

/// The time now as the audit log writes it, from the gateway clock.
pub(crate) fn record_at(kind: writ_audit::Kind, now: SystemTime) -> AuditRecord {
    AuditRecord::new(kind, now)
}

/// The record of how a request ended: the outcome linked to its committed decision
/// `decision` when it has one (strict mode), otherwise a record of `kind`, its only one.
pub(crate) fn end_record(decision: Option<u64>, kind: Kind, now: SystemTime) -> AuditRecord {
    match decision {
        Some(seq) => {
            let mut record = AuditRecord::new(Kind::RequestOutcome, now);
            record.decision_seq = Some(seq);
            record
        }
        None => AuditRecord::new(kind, now),
    }
}

/// The pseudonymizer of a gateway whose master key is `master`: what its audit records,
/// logs and admin API show instead of token ids and client addresses.
pub fn pseudonymizer(master: &[u8]) -> Pseudonymizer {
    let key: [u8; 32] = Sha256::new()
        .chain_update(b"writ audit pseudonyms v1")
        .chain_update(master)
        .finalize()
        .into();
    Pseudonymizer::new(&key)
}

/// An address as the pseudonym reads it: its canonical form (an IPv4-mapped IPv6 address as
/// IPv4) in `Display`'s text. An IPv4 address is written out here, octet by octet: the
/// same text at a fraction of `Display`'s cost, which the request path paid per request.
fn address_text(ip: std::net::IpAddr) -> String {
    match ip.to_canonical() {
        std::net::IpAddr::V4(v4) => {
            let mut text = String::with_capacity(15);
            for (i, octet) in v4.octets().into_iter().enumerate() {
                if i > 0 {
                    text.push('.');
                }
                if octet >= 100 {
                    text.push(char::from(b'0' + octet / 100));
                }
                if octet >= 10 {
                    text.push(char::from(b'0' + octet / 10 % 10));
                }
                text.push(char::from(b'0' + octet % 10));
            }
            text
        }
        v6 => v6.to_string(),
    }
}

#[cfg(test)]
mod address_tests {
    use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

    use super::address_text;

    #[test]
    fn an_address_reads_as_its_canonical_display_text() {
        for octet in 0..=255u8 {
            for at in 0..4 {
                let mut octets = [1, 20, 255, 0];
                octets[at] = octet;
                let v4 = Ipv4Addr::from(octets);
                assert_eq!(address_text(IpAddr::V4(v4)), v4.to_string());
                // The same address reached over IPv6 is named as IPv4.
                assert_eq!(
                    address_text(IpAddr::V6(v4.to_ipv6_mapped())),
                    v4.to_string()
                );
            }
        }
        let v6: Ipv6Addr = "2001:db8::8a2e:370:7334"
            .parse()
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(address_text(IpAddr::V6(v6)), "2001:db8::8a2e:370:7334");
    }
}
