//! Strict records committed in groups by the serving threads themselves, on the SQLite
//! sink, when several requests are being served at once.
//!
//! A record handed to the writer's thread costs a wake-up of that thread, a commit of the
//! few records that arrived meanwhile, and a wake-up back: under load, the writer's
//! thread woke for every second request or so and preempted the serving threads (writ
//! full at 32 connections: one commit per 1.6 requests, the writer's thread 15 % of the
//! gateway's CPU). Here a decision is appended to the log on its request's thread, and
//! that thread commits everything pending once it has run the other requests that were
//! ready with it: one commit per turn of a serving thread, with no thread woken for it.
//! The request waits for its record as it would for the writer's answer; if the log is
//! busy for longer than a few turns, the writer is told to write what is pending.

use std::cell::Cell;
use std::sync::Arc;
use std::sync::atomic::Ordering;

use tokio::sync::oneshot;
use writ_audit::AuditRecord;
use writ_audit::sink::SqliteWriter;

use super::alone::{Alone, AloneSink};
use super::writer::{Appended, Job};

thread_local! {
    /// A group commit is due on this serving thread: a task to run it has been spawned and
    /// has not started yet, so a record appended now goes with it.
    static COMMIT_DUE: Cell<bool> = const { Cell::new(false) };
}

/// Turns of its thread a group commit waits for a log another thread is writing, before
/// it leaves the pending records to the writer. One commit takes less than a turn or two.
const TURNS: usize = 8;

/// What a try at committing the pending records came to.
enum Try {
    /// Committed, failed (the records are kept for the writer to retry), or nothing was
    /// pending: the try is over.
    Done,
    /// Another thread is writing the log now: try again on a later turn.
    Busy,
}

impl Alone {
    /// Appends `record` to the log on this serving thread and makes sure a group commit on
    /// this thread writes it; the answer says what became of it. Gives the record back
    /// (for the writer) when the sink is not SQLite or syncs every commit, this is not a
    /// serving thread, the writer is stopping, or the sink is failing.
    pub(super) fn join_group(
        self: &Arc<Self>,
        record: Box<AuditRecord>,
    ) -> Result<oneshot::Receiver<Appended>, Box<AuditRecord>> {
        let AloneSink::Sqlite(writer) = &self.sink else {
            return Err(record);
        };
        // A commit that waits for the disk (`synced`) stays off the serving threads.
        if !self.groups {
            return Err(record);
        }
        // A task spawned here must run on this thread (one runtime per serving thread),
        // where the flag that says it is due lives.
        if crate::serve::workers::current() == 0 || tokio::runtime::Handle::try_current().is_err() {
            return Err(record);
        }
        if !self.healthy.load(Ordering::Acquire) {
            return Err(record);
        }
        // Held briefly by whoever appends or takes lines out; waited for rather than
        // handing the record to the writer, whose wake-up costs more.
        let mut core = self.core.lock().unwrap_or_else(|p| p.into_inner());
        if core.stopping {
            return Err(record);
        }
        let (line, _) = core.log.append(*record);
        let seq = core.log.size() - 1;
        core.unwritten.push(line);
        let (tx, rx) = oneshot::channel();
        core.waiting.push((seq, tx));
        drop(core);
        if !COMMIT_DUE.replace(true) {
            let (alone, writer) = (self.clone(), writer.clone());
            // Never refused: this thread has a runtime (checked above).
            crate::serve::workers::spawn_to_finish(alone.commit_group(writer));
        }
        Ok(rx)
    }

    /// The group commit: runs once the requests that were ready on this thread have had
    /// their turn (a yield puts it after them), then commits every pending record, this
    /// thread's and others'.
    async fn commit_group(self: Arc<Self>, writer: SqliteWriter) {
        tokio::task::yield_now().await;
        // Records appended from now on need a commit after this one's.
        COMMIT_DUE.set(false);
        for _ in 0..TURNS {
            match self.try_commit(&writer) {
                Try::Done => return,
                Try::Busy => tokio::task::yield_now().await,
            }
        }
        let _ = self.jobs.send(Job::Written);
    }

    /// Commits the pending records on this thread (blocking while SQLite commits), unless
    /// another thread is writing the log.
    fn try_commit(&self, writer: &SqliteWriter) -> Try {
        let core = self.core.lock().unwrap_or_else(|p| p.into_inner());
        if core.unwritten.is_empty() {
            return Try::Done;
        }
        if core.stopping || !self.healthy.load(Ordering::Acquire) {
            // The writer writes what is pending as it stops, and retries a failing sink
            // on its own.
            let _ = self.jobs.send(Job::Written);
            return Try::Done;
        }
        if core.flushing {
            return Try::Busy;
        }
        let Some(connection) = writer.try_hold() else {
            return Try::Busy;
        };
        if self.commit_pending(core, connection) {
            self.written_in_groups.fetch_add(1, Ordering::Relaxed);
        }
        Try::Done
    }
}
