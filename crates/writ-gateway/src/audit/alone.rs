//! Strict records written by their request's own thread while it is the one request being
//! served: on the SQLite sink's writing connection (the thread blocks while SQLite
//! commits), or on a PostgreSQL connection of the thread's own (a lane: the thread awaits
//! the round trip). Handing a record to the writer thread and being woken with the answer
//! costs two thread wake-ups, more than a SQLite commit and a good part of a PostgreSQL
//! one. Records that arrive together are committed in groups by the serving threads
//! (`group.rs`, which shares [`Alone::commit_pending`] with a record written alone), or go
//! to the writer, which commits them in one batch.

use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use tokio::sync::{mpsc, oneshot};
use writ_audit::AuditRecord;
use writ_audit::sink::{HeldWriter, LaneConnection, PostgresLanes, SqliteWriter};

use super::writer::{Appended, Core, Job};
use crate::metrics::AuditStats;

/// The connection a request served alone writes its record on.
pub(super) enum AloneSink {
    /// The SQLite sink's writing connection, shared with the writer.
    Sqlite(SqliteWriter),
    /// PostgreSQL: one connection per serving thread.
    Postgres(Arc<PostgresLanes>),
}

/// What a strict request needs to write its record itself, and how many strict records
/// and data-plane requests are on their way now.
pub(super) struct Alone {
    pub(super) core: Arc<Mutex<Core>>,
    pub(super) sink: AloneSink,
    pub(super) jobs: mpsc::UnboundedSender<Job>,
    pub(super) healthy: Arc<AtomicBool>,
    pub(super) stats: Arc<AuditStats>,
    pub(super) instance: String,
    /// Records between checkpoints.
    pub(super) every: u64,
    pub(super) on_the_way: AtomicUsize,
    /// Requests being served now, data plane and token endpoint
    /// ([`super::Auditor::open_request`]).
    pub(super) open_requests: AtomicUsize,
    /// Records written by their requests' threads so far.
    pub(super) written: AtomicU64,
    /// Whether serving threads commit pending records in groups (see `group.rs`): only
    /// when a commit does not wait for the disk (`durability = "committed"`).
    pub(super) groups: bool,
    /// Group commits made by the serving threads so far.
    pub(super) written_in_groups: AtomicU64,
}

/// One of several things counted while they last: a strict record on its way (written or
/// waited for), a data-plane request being served.
pub(crate) struct OnTheWay<'a>(&'a AtomicUsize);

impl<'a> OnTheWay<'a> {
    /// Counts one more; returns how many others there were.
    pub(super) fn enter(count: &'a AtomicUsize) -> (Self, usize) {
        let others = count.fetch_add(1, Ordering::AcqRel);
        (Self(count), others)
    }
}

impl Drop for OnTheWay<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

impl Alone {
    /// Writes `record` on this thread if it is the one strict record on its way (`others`
    /// is how many others are), at most one request is being served (this one; none for a
    /// stream that ended after its request was answered) and the log is free to write;
    /// gives it back otherwise, to go to the writer.
    pub(super) async fn write(
        self: &Arc<Self>,
        others: usize,
        record: Box<AuditRecord>,
    ) -> Result<Appended, Box<AuditRecord>> {
        if others != 0 || self.open_requests.load(Ordering::Acquire) > 1 {
            return Err(record);
        }
        match &self.sink {
            AloneSink::Sqlite(writer) => self.write_sqlite(writer, record),
            AloneSink::Postgres(lanes) => self.write_on_lane(lanes, record).await,
        }
    }

    /// The log, if no one holds it and it is free for this thread to write: nobody is
    /// writing lines out of it, the writer is not stopping, and lines still to write are
    /// only pending ones (outcomes, see `Auditor::queue_outcome`), which go with the
    /// record; lines kept after a failed write are the writer's to retry.
    /// A lane's write also waits out a checkpoint being stored, which may find the
    /// sink lost records and give them back to the writer meanwhile.
    fn free_log(&self, lane: bool) -> Option<MutexGuard<'_, Core>> {
        self.core.try_lock().ok().filter(|core| {
            let busy = core.flushing || core.stopping || (lane && core.checkpointing);
            !busy && (core.unwritten.is_empty() || self.healthy.load(Ordering::Acquire))
        })
    }

    /// SQLite: the record and the pending lines committed on the writing connection, this
    /// thread blocking meanwhile.
    fn write_sqlite(
        &self,
        writer: &SqliteWriter,
        record: Box<AuditRecord>,
    ) -> Result<Appended, Box<AuditRecord>> {
        let Some(mut core) = self.free_log(false) else {
            return Err(record);
        };
        // A checkpoint holding writes still (or a write by the writer thread, between its
        // batches) is not waited for here: the record goes to the writer instead.
        let Some(connection) = writer.try_hold() else {
            return Err(record);
        };
        let (line, _) = core.log.append(*record);
        let seq = core.log.size() - 1;
        core.unwritten.push(line);
        if self.commit_pending(core, connection) {
            self.written.fetch_add(1, Ordering::Relaxed);
            Ok(Appended::Durable(seq))
        } else {
            // The writer retries it, as it does its own.
            Ok(Appended::Kept(seq))
        }
    }

    /// SQLite: takes every pending line out of the log (marked as being written, and let
    /// go of meanwhile, so that other threads go on appending), commits them on
    /// `connection`, this thread blocking while SQLite works, and books what became of
    /// them. True when they are durable; a failed write leaves them pending, for the writer
    /// to retry, and tells whoever waits for one that it is kept, not durable.
    pub(super) fn commit_pending(
        &self,
        mut core: MutexGuard<'_, Core>,
        mut connection: HeldWriter<'_>,
    ) -> bool {
        core.flushing = true;
        let first = core.written;
        let lines = std::mem::take(&mut core.unwritten);
        drop(core);
        let result = connection.append(&self.instance, first, &lines);
        drop(connection);
        let mut core = self.core.lock().unwrap_or_else(|p| p.into_inner());
        core.flushing = false;
        let durable = match result {
            Ok(()) => {
                self.written_out(&mut core, lines);
                true
            }
            Err(e) => {
                tracing::error!(error = %e, sink = "SQLite", "audit sink write failed; records kept for retry");
                self.healthy.store(false, Ordering::Release);
                self.stats.failed();
                let mut lines = lines;
                lines.append(&mut core.unwritten);
                core.unwritten = lines;
                for (seq, tx) in core.waiting.drain(..) {
                    let _ = tx.send(Appended::Kept(seq));
                }
                false
            }
        };
        // The writer skipped lines it was handed while this write went on; and one that
        // is stopping waits to be told that a write it found going on has ended.
        if core.writer_waits || core.stopping {
            core.writer_waits = false;
            let _ = self.jobs.send(Job::Written);
        }
        durable
    }

    /// PostgreSQL: the record and the pending lines sent on this thread's lane by a task
    /// of this thread's runtime, which finishes the write even if the request goes away
    /// meanwhile (the log is marked as being written until it has).
    async fn write_on_lane(
        self: &Arc<Self>,
        lanes: &Arc<PostgresLanes>,
        record: Box<AuditRecord>,
    ) -> Result<Appended, Box<AuditRecord>> {
        let slot = crate::serve::workers::current();
        // Off the serving threads (slot 0) there is no runtime of a thread's own.
        let runtime = tokio::runtime::Handle::try_current().ok();
        let Some(lane) = (slot != 0 && runtime.is_some())
            .then(|| lanes.borrow(slot))
            .flatten()
        else {
            return Err(record);
        };
        let (tx, rx) = oneshot::channel();
        let alone = self.clone();
        let task = async move {
            let _ = tx.send(alone.append_on_lane(lane, record).await);
        };
        // Never refused: this thread has a runtime (checked above).
        crate::serve::workers::spawn_to_finish(task);
        rx.await.unwrap_or(Ok(Appended::Lost))
    }

    /// The lane task's work: takes the record and the pending lines out of the log (marked
    /// as being written meanwhile), sends them, and settles what became of them. A write
    /// that fails gives its lines back to the writer, which writes them again (finding
    /// where the log ends if this write committed after all) and answers.
    async fn append_on_lane(
        self: Arc<Self>,
        lane: LaneConnection,
        record: Box<AuditRecord>,
    ) -> Result<Appended, Box<AuditRecord>> {
        let (seq, first, lines) = {
            let Some(mut core) = self.free_log(true) else {
                return Err(record);
            };
            let (line, _) = core.log.append(*record);
            core.unwritten.push(line);
            core.flushing = true;
            let lines = std::mem::take(&mut core.unwritten);
            (core.log.size() - 1, core.written, lines)
        };
        let result = lane.append(&self.instance, first, &lines).await;
        let handed_back = {
            let mut core = self.core.lock().unwrap_or_else(|p| p.into_inner());
            core.flushing = false;
            match result {
                Ok(()) => {
                    self.written_out(&mut core, lines);
                    self.written.fetch_add(1, Ordering::Relaxed);
                    // Lines the writer took in meanwhile waited for this write to end.
                    if !core.unwritten.is_empty() || core.stopping {
                        let _ = self.jobs.send(Job::Written);
                    }
                    return Ok(Appended::Durable(seq));
                }
                Err(e) => {
                    tracing::debug!(error = %e, "audit record not written on its thread's connection; handed to the writer");
                    let mut lines = lines;
                    lines.append(&mut core.unwritten);
                    core.unwritten = lines;
                    let (tx, rx) = oneshot::channel();
                    core.waiting.push((seq, tx));
                    rx
                }
            }
        };
        let _ = self.jobs.send(Job::Written);
        Ok(handed_back.await.unwrap_or(Appended::Lost))
    }

    /// Books `lines` (from `core.written` on) as durably written: those waiting for any of
    /// them are answered, and the writer is told when a checkpoint is due.
    pub(super) fn written_out(&self, core: &mut Core, lines: Vec<String>) {
        let count = lines.len() as u64;
        core.written += count;
        self.stats.written(count);
        core.since_checkpoint.written(lines);
        self.healthy.store(true, Ordering::Release);
        let written = core.written;
        for (seq, tx) in core.waiting.extract_if(.., |(seq, _)| *seq < written) {
            let _ = tx.send(Appended::Durable(seq));
        }
        if core.log.size() - core.checkpointed >= self.every {
            let _ = self.jobs.send(Job::Written);
        }
    }
}
