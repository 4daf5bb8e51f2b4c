//! The audit writer: one task that appends records to the sink in batches, answers who
//! waits for them, and signs checkpoints (every N records, every T, and at shutdown).

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use tokio::sync::{mpsc, oneshot};
use writ_audit::sink::{Sink, SinkError};
use writ_audit::{AuditKey, AuditLog, AuditRecord};

use super::realign::{SinceCheckpoint, realign_logged};
use crate::metrics::AuditStats;

/// What the writer is asked to do.
pub(super) enum Job {
    Record(Box<AuditRecord>, Option<oneshot::Sender<Appended>>),
    Checkpoint(oneshot::Sender<()>),
    /// Records were written by a request's own thread: checkpoint if one is due.
    Written,
    /// Write what is pending, sign a last checkpoint and end.
    Stop,
}

/// What became of a record its caller waits for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Appended {
    /// Committed to the sink, at this `seq`.
    Durable(u64),
    /// In the log at this `seq`, but the sink failed: kept, and written when it recovers.
    Kept(u64),
    /// Not in the log: the writer has ended (shutdown).
    Lost,
}

/// The log and what of it is written: the writer's, shared with strict requests that
/// write their own record (which hold it while they do).
pub(super) struct Core {
    pub(super) log: AuditLog,
    /// Records durably written (the next line to write is `written`).
    pub(super) written: u64,
    /// Lines appended to the log but not yet written, from seq `written`.
    pub(super) unwritten: Vec<String>,
    /// Who waits for which seq to be durable.
    pub(super) waiting: Vec<(u64, oneshot::Sender<Appended>)>,
    pub(super) checkpointed: u64,
    /// The lines written since the last checkpoint, to write again if the sink loses them.
    pub(super) since_checkpoint: SinceCheckpoint,
    /// Lines taken out of `unwritten` are being written (by the writer, or by a request's
    /// task on its thread's PostgreSQL connection): no one else writes meanwhile.
    pub(super) flushing: bool,
    /// A checkpoint is being stored: a sink that lost records gives them back to the
    /// writer when it is (see `checkpoint_stored`), so no request writes meanwhile.
    pub(super) checkpointing: bool,
    /// The writer has been told to stop: records go to it (and are refused once it has).
    pub(super) stopping: bool,
    /// The writer found lines to write while someone else was writing the log: whoever
    /// ends that write tells it to write them (a group commit, see `group.rs`).
    pub(super) writer_waits: bool,
}

/// The writer task's state: the log it appends to and the sink it writes.
pub(super) struct Writer {
    pub(super) core: Arc<std::sync::Mutex<Core>>,
    pub(super) key: AuditKey,
    pub(super) sink: Sink,
    pub(super) instance: String,
    pub(super) every: u64,
    pub(super) healthy: Arc<AtomicBool>,
    pub(super) stats: Arc<AuditStats>,
    /// Force the sink to disk after each checkpoint (writes themselves are not synced):
    /// told here, done by the syncing task.
    pub(super) sync_at_checkpoints: Option<Arc<tokio::sync::Notify>>,
    /// Best effort: how long a batch may gather records before it is written.
    pub(super) linger: Option<Duration>,
    /// Told to stop: ends after the batch in hand.
    pub(super) stopping: bool,
    /// A checkpoint being stored while records go on being written (a sink that takes
    /// them so, [`Sink::stores_checkpoints_aside`]): its size and the store's result.
    pub(super) storing: Option<tokio::task::JoinHandle<(u64, Result<(), SinkError>)>>,
}

/// Ticks in a row with no record appended after which an idle log's sink is cut back
/// ([`Sink::shrink_idle`]): thirty seconds at the usual tick of half a second. Sooner buys
/// nothing (the WAL's blocks are still in memory: the test machine's kernel pages out file
/// pages idle for a minute) and costs the next load fresh blocks to allocate.
const QUIET_TICKS: u32 = 60;

/// How long the log has kept its size, counted in the writer's ticks.
#[derive(Debug, Default)]
struct Quiet {
    size: u64,
    ticks: u32,
    shrunk_at: Option<u64>,
}

impl Quiet {
    /// Counts a tick that found the log holding `size` records: true once, when it has held
    /// them for [`QUIET_TICKS`] ticks and the sink was not cut back at that size yet.
    fn due(&mut self, size: u64) -> bool {
        if size != self.size {
            self.size = size;
            self.ticks = 0;
            return false;
        }
        self.ticks = self.ticks.saturating_add(1);
        if self.ticks < QUIET_TICKS || self.shrunk_at == Some(size) {
            return false;
        }
        self.shrunk_at = Some(size);
        true
    }
}

/// In best-effort mode nobody waits for a record, so the writer lets a batch gather this
/// long before writing it: far fewer, larger writes, and one wake-up of the writer per
/// batch instead of one per record.
pub(super) const BEST_EFFORT_LINGER: Duration = Duration::from_millis(20);

impl Writer {
    pub(super) async fn run(
        mut self,
        mut rx: mpsc::UnboundedReceiver<Job>,
        interval: Duration,
        durability: writ_audit::sink::Durability,
    ) {
        if durability == writ_audit::sink::Durability::Committed {
            self.sync_at_checkpoints = Some(start_syncing(self.sink.clone()));
        }
        let mut tick = tokio::time::interval(interval.min(Duration::from_millis(500)));
        let mut last_checkpoint = tokio::time::Instant::now();
        let mut quiet = Quiet::default();
        loop {
            tokio::select! {
                job = rx.recv() => {
                    let Some(job) = job else { break };
                    let mut done = Vec::new();
                    self.take(job, &mut done);
                    // Batch whatever else is queued.
                    while let Ok(job) = rx.try_recv() {
                        self.take(job, &mut done);
                    }
                    if let Some(linger) = self.linger
                        && done.is_empty()
                        && !self.stopping
                    {
                        // Sleep rather than wait on the queue: a task waiting on the queue
                        // is woken by every record sent, a sleeping one once.
                        tokio::time::sleep(linger).await;
                        while let Ok(job) = rx.try_recv() {
                            self.take(job, &mut done);
                        }
                    }
                    self.flush().await;
                    if self.checkpoint_due() {
                        self.checkpoint(false).await;
                        last_checkpoint = tokio::time::Instant::now();
                    }
                    if !done.is_empty() {
                        self.checkpoint(true).await;
                        last_checkpoint = tokio::time::Instant::now();
                        for tx in done {
                            let _ = tx.send(());
                        }
                    }
                    if self.stopping {
                        break;
                    }
                }
                _ = tick.tick() => {
                    // Retry unwritten lines; probe a failed sink so the instance recovers.
                    if self.has_unwritten() {
                        self.flush().await;
                    } else if !self.healthy.load(Ordering::Acquire) {
                        self.healthy.store(self.sink.probe().await.is_ok(), Ordering::Release);
                    }
                    if last_checkpoint.elapsed() >= interval && self.uncheckpointed() > 0 {
                        self.checkpoint(false).await;
                        last_checkpoint = tokio::time::Instant::now();
                    }
                    let size = self.core().log.size();
                    if !self.has_unwritten() && quiet.due(size) {
                        let sink = self.sink.clone();
                        tokio::task::spawn_blocking(move || {
                            if let Err(e) = sink.shrink_idle() {
                                tracing::warn!(error = %e, "audit sink not cut back while idle");
                            }
                        });
                    }
                }
                (size, result) = stored(&mut self.storing) => {
                    self.storing = None;
                    self.checkpoint_stored(size, result);
                    if self.checkpoint_due() {
                        self.checkpoint(false).await;
                    }
                }
            }
        }
        // A request's task writing now tells the writer when it is done (`stopping`).
        while self.core().flushing {
            let mut done = Vec::new();
            match rx.recv().await {
                Some(job) => self.take(job, &mut done),
                None => break,
            }
            for tx in done {
                let _ = tx.send(());
            }
        }
        self.flush().await;
        self.checkpoint(true).await;
        // The last checkpoint is on disk before the writer ends.
        if self.sync_at_checkpoints.is_some()
            && let Err(e) = self.sink.sync().await
        {
            tracing::error!(error = %e, "audit sink sync failed");
        }
    }

    fn core(&self) -> std::sync::MutexGuard<'_, Core> {
        self.core.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn has_unwritten(&self) -> bool {
        !self.core().unwritten.is_empty()
    }

    /// Records appended since the last checkpoint.
    fn uncheckpointed(&self) -> u64 {
        let core = self.core();
        core.log.size() - core.checkpointed
    }

    fn checkpoint_due(&self) -> bool {
        self.uncheckpointed() >= self.every
    }

    fn take(&mut self, job: Job, done: &mut Vec<oneshot::Sender<()>>) {
        match job {
            Job::Record(record, waiter) => {
                let mut core = self.core();
                let (line, _) = core.log.append(*record);
                let seq = core.log.size() - 1;
                core.unwritten.push(line);
                if let Some(tx) = waiter {
                    core.waiting.push((seq, tx));
                }
            }
            Job::Checkpoint(tx) => done.push(tx),
            Job::Written => {}
            Job::Stop => {
                self.stopping = true;
                self.core().stopping = true;
            }
        }
    }

    async fn flush(&mut self) {
        // The lines are taken out while they are written (`flushing` keeps requests from
        // writing their own meanwhile): a sink other than SQLite writes asynchronously.
        let (first, lines) = {
            let mut core = self.core();
            // Lines a request's task is writing now come first: it tells the writer when
            // it is done, and these are written then.
            if core.flushing {
                core.writer_waits |= !core.unwritten.is_empty();
                return;
            }
            if core.unwritten.is_empty() {
                return;
            }
            core.flushing = true;
            (core.written, std::mem::take(&mut core.unwritten))
        };
        let mut lines = lines;
        let mut result = self.sink.append(&self.instance, first, &lines).await;
        if let Err(SinkError::NotContiguous { held, .. }) = result {
            // The sink's log ends elsewhere than this writer thought (see `realign`):
            // start again where it ends, at once.
            let first = {
                let mut guard = self.core();
                let core = &mut *guard;
                let before = core.written;
                lines = realign_logged(held, &mut core.written, lines, &mut core.since_checkpoint);
                self.stats.written(core.written.saturating_sub(before));
                core.written
            };
            if first == held {
                result = match lines.is_empty() {
                    true => Ok(()),
                    false => self.sink.append(&self.instance, first, &lines).await,
                };
            }
        }
        let mut core = self.core();
        core.flushing = false;
        match result {
            Ok(()) => {
                core.written += lines.len() as u64;
                self.stats.written(lines.len() as u64);
                core.since_checkpoint.written(lines);
                self.healthy.store(true, Ordering::Release);
                let written = core.written;
                for (seq, tx) in core.waiting.extract_if(.., |(seq, _)| *seq < written) {
                    let _ = tx.send(Appended::Durable(seq));
                }
            }
            Err(e) => {
                let pending = lines.len();
                tracing::error!(error = %e, sink = %self.sink.describe(), pending, "audit sink write failed; records kept for retry");
                self.healthy.store(false, Ordering::Release);
                self.stats.failed();
                // Lines appended while these were being written follow them.
                let mut lines = lines;
                lines.append(&mut core.unwritten);
                core.unwritten = lines;
                // Those waiting are told now; their records stay queued and are written
                // when the sink returns.
                for (seq, tx) in core.waiting.drain(..) {
                    let _ = tx.send(Appended::Kept(seq));
                }
            }
        }
    }

    /// Signs a checkpoint of what is durable and stores it. With `wait` (a caller waits
    /// for it, or the writer is ending) it is stored before this returns; otherwise, with a
    /// sink that stores checkpoints aside, it is stored on a task of its own while records
    /// go on being written: a PostgreSQL checkpoint commits synchronously (a WAL flush,
    /// milliseconds), and every strict request that came meanwhile waited it out. One at a
    /// time: the next is signed once it is stored.
    async fn checkpoint(&mut self, wait: bool) {
        if let Some(storing) = self.storing.take() {
            if !wait {
                self.storing = Some(storing);
                return;
            }
            match storing.await {
                Ok((size, result)) => self.checkpoint_stored(size, result),
                Err(e) => {
                    self.core().checkpointing = false;
                    tracing::error!(error = %e, "audit checkpoint store did not finish");
                }
            }
        }
        // Only what is durable is checkpointed. The tree head is taken under the lock and
        // signed after it is let go: a request that finds the log locked hands its record
        // to this writer instead of committing it itself, and would wait out the signature.
        let head = {
            let mut core = self.core();
            if core.written == 0
                || core.written == core.checkpointed
                || core.log.size() != core.written
            {
                return;
            }
            core.checkpointing = true;
            core.log.tree_head()
        };
        let (size, note) = (head.size(), self.key.sign(&head));
        if !wait && self.sink.stores_checkpoints_aside() {
            let (sink, instance) = (self.sink.clone(), self.instance.clone());
            self.storing = Some(tokio::spawn(async move {
                let result = sink.put_checkpoint(&instance, size, &note).await;
                (size, result)
            }));
            return;
        }
        let result = self.sink.put_checkpoint(&self.instance, size, &note).await;
        self.checkpoint_stored(size, result);
    }

    /// What became of the checkpoint at `size`.
    fn checkpoint_stored(&mut self, size: u64, result: Result<(), SinkError>) {
        match result {
            Ok(()) => {
                let mut core = self.core();
                core.checkpointed = core.checkpointed.max(size);
                core.since_checkpoint.checkpointed(size);
            }
            Err(SinkError::NotContiguous { held, .. }) => {
                // The sink lost records since the last checkpoint: they go back to be
                // written again, and a later checkpoint covers them.
                self.stats.failed();
                let mut guard = self.core();
                let core = &mut *guard;
                let pending = std::mem::take(&mut core.unwritten);
                core.unwritten =
                    realign_logged(held, &mut core.written, pending, &mut core.since_checkpoint);
            }
            Err(e) => {
                self.stats.failed();
                tracing::error!(error = %e, sink = %self.sink.describe(), "audit checkpoint write failed");
            }
        }
        // Cleared only now: records the sink lost are back with the writer first.
        self.core().checkpointing = false;
        if let Some(sync) = &self.sync_at_checkpoints {
            sync.notify_one();
        }
    }
}

/// The result of the checkpoint being stored aside, when there is one; never otherwise.
async fn stored(
    storing: &mut Option<tokio::task::JoinHandle<(u64, Result<(), SinkError>)>>,
) -> (u64, Result<(), SinkError>) {
    match storing {
        Some(task) => match task.await {
            Ok(stored) => stored,
            // The task cannot panic short of a bug; its checkpoint is signed again later.
            Err(e) => (0, Err(SinkError::Io(std::io::Error::other(e)))),
        },
        None => std::future::pending().await,
    }
}

/// Starts the task that syncs the sink to disk whenever told, on a blocking thread, so
/// the writer (and every strict request waiting on it) never waits for the disk. Told
/// again while syncing, it syncs once more afterwards: every checkpoint is synced soon
/// after it is written, and the log on disk is always a prefix ending in a checkpoint.
///
/// Syncs are not spaced out on purpose: tried with at most one a second, writ full's p99
/// latency at concurrency 1 doubled (fewer syncs, each with more to write, and writes to
/// the WAL file stalled behind them longer).
pub(super) fn start_syncing(sink: Sink) -> Arc<tokio::sync::Notify> {
    let told = Arc::new(tokio::sync::Notify::new());
    let wait = told.clone();
    tokio::spawn(async move {
        loop {
            wait.notified().await;
            let sink = sink.clone();
            match tokio::task::spawn_blocking(move || sink.sync_blocking()).await {
                Ok(Ok(())) => {}
                Ok(Err(e)) => tracing::error!(error = %e, "audit sink sync failed"),
                Err(e) => tracing::error!(error = %e, "audit sink sync did not finish"),
            }
        }
    });
    told
}
