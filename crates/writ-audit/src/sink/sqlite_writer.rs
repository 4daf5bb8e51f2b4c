//! The SQLite sink's writing connection: rusqlite called on the writing thread, with a
//! second connection that checkpoints the WAL and keeps it from growing without end.

use std::collections::HashMap;
use std::ops::Range;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use super::sqlite_schema::{instance_number, prepare, row_id};
use super::{Durability, SinkError};

/// The writing connection and the numbers of the instances it has written
/// ([`instance_number`]), which never change once given.
pub(super) struct Conn {
    conn: rusqlite::Connection,
    numbers: HashMap<String, i64>,
}

impl Conn {
    /// The number of `instance`, looked up (or given) on its first write only.
    fn number(&mut self, instance: &str) -> rusqlite::Result<i64> {
        if let Some(no) = self.numbers.get(instance) {
            return Ok(*no);
        }
        let no = instance_number(&self.conn, instance)?;
        self.numbers.insert(instance.to_string(), no);
        Ok(no)
    }
}

/// The connection audit lines are written through, for the SQLite sink: SQLite called
/// directly on the writing thread. (A sqlx connection runs on a thread of its own, and
/// every statement is a round trip to it: two thread wake-ups per write.)
#[derive(Clone)]
pub struct SqliteWriter {
    conn: std::sync::Arc<std::sync::Mutex<Conn>>,
    /// A second connection that checkpoints the WAL (which syncs it to disk), so a sync
    /// does not hold up the writing connection (except to start a long WAL over).
    checkpointer: std::sync::Arc<std::sync::Mutex<Checkpointer>>,
    /// WAL frames past which a checkpoint holds the writer still to catch up with it.
    restart_frames: i64,
}

/// How many WAL frames (pages of 4 KiB) may accumulate before a checkpoint makes sure
/// SQLite starts the WAL over: 64 MiB. SQLite restarts the WAL only when a write begins
/// after a checkpoint that left no frame behind, and a checkpoint made while records keep
/// coming always leaves the frames written during it: under a steady load the WAL grew
/// by every record (470 MB in five seconds of writ full at 25 000 requests a second).
const WAL_RESTART_FRAMES: i64 = 16 * 1024;

/// The checkpointing connection, and what it reads of the WAL ahead of the writer.
struct Checkpointer {
    conn: rusqlite::Connection,
    /// The WAL file's path.
    wal: PathBuf,
    /// The WAL's frames at the last checkpoint: how far the writer got since tells how
    /// far ahead of it to read.
    frames: i64,
    /// Buffer the WAL is read into (its bytes are not used).
    scratch: Vec<u8>,
}

/// Bytes of a WAL frame: a 24-byte header and a page (SQLite's default 4 KiB pages, which
/// the schema keeps).
const FRAME_BYTES: u64 = 24 + 4096;
/// Bytes of the WAL file's own header, before its first frame.
const WAL_HEADER_BYTES: u64 = 32;
/// Least and most of the WAL read ahead of the writer at a checkpoint.
const AHEAD_MIN: u64 = 1 << 20;
const AHEAD_MAX: u64 = 32 << 20;

/// The parts of the WAL file the writer will write over next, after a checkpoint found
/// `frames` frames in the WAL of which `copied` are in the database, `before` frames at
/// the checkpoint before: the bytes after the last frame, and the start of the file if
/// the WAL may start over (every frame copied). As far ahead as twice what was written
/// since the last checkpoint (the WAL had started over if it holds fewer frames now),
/// within [`AHEAD_MIN`] and [`AHEAD_MAX`].
fn ahead(frames: i64, copied: i64, before: i64) -> Vec<Range<u64>> {
    let frames = u64::try_from(frames).unwrap_or(0);
    let before = u64::try_from(before).unwrap_or(0);
    let written = if frames >= before {
        frames - before
    } else {
        frames
    };
    let span = (2 * written * FRAME_BYTES).clamp(AHEAD_MIN, AHEAD_MAX);
    let end = WAL_HEADER_BYTES + frames * FRAME_BYTES;
    let mut parts = Vec::with_capacity(2);
    if copied >= 0 && u64::try_from(copied).unwrap_or(0) >= frames {
        parts.push(0..span.min(end));
    }
    parts.push(end..end + span);
    parts.retain(|r| !r.is_empty());
    parts
}

/// Reads `parts` of the file at `path` into `scratch`, so the kernel holds them in memory
/// when the writer writes over them: a WAL frame covers parts of two 4 KiB blocks, and a
/// block written in part that is not in memory is read from disk first, while the
/// committing request waits. Blocks of a WAL written seconds ago do leave memory: hosts
/// that reclaim page cache they see as cold (DAMON's proactive reclaim, memory pressure)
/// take them. Reading them here, on the checkpointing thread, keeps that wait off the
/// request's path. Returns the bytes read; a file that cannot be read is left alone (the
/// writer reads what it needs itself).
fn read_ahead(path: &Path, parts: &[Range<u64>], scratch: &mut Vec<u8>) -> u64 {
    const CHUNK: usize = 256 << 10;
    let Ok(file) = std::fs::File::open(path) else {
        return 0;
    };
    scratch.resize(CHUNK, 0);
    let mut read = 0;
    for part in parts {
        let mut at = part.start;
        while at < part.end {
            let want = usize::try_from(part.end - at).map_or(CHUNK, |left| left.min(CHUNK));
            match file.read_at(&mut scratch[..want], at) {
                Ok(0) | Err(_) => break,
                Ok(n) => {
                    at += n as u64;
                    read += n as u64;
                }
            }
        }
    }
    read
}

impl std::fmt::Debug for SqliteWriter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SqliteWriter")
    }
}

impl SqliteWriter {
    pub(super) fn open(path: &Path, durability: Durability) -> Result<Self, SinkError> {
        Self::open_with(path, durability, WAL_RESTART_FRAMES)
    }

    pub(super) fn open_with(
        path: &Path,
        durability: Durability,
        restart_frames: i64,
    ) -> Result<Self, SinkError> {
        let mut conn = rusqlite::Connection::open(path)?;
        conn.busy_timeout(std::time::Duration::from_secs(2))?;
        prepare(&mut conn)?;
        // `synchronous` is a setting of each connection: this is the one that writes.
        let synchronous = match durability {
            Durability::Synced => "FULL",
            Durability::Committed => "NORMAL",
        };
        conn.pragma_update(None, "synchronous", synchronous)?;
        if durability == Durability::Committed {
            // No checkpoint (two disk syncs) inside a commit: the WAL is checkpointed on
            // the other connection at every signed checkpoint ([`Sink::sync`]).
            conn.pragma_update(None, "wal_autocheckpoint", 0)?;
        }
        // When the WAL starts over, its file is cut back to this size (it is otherwise
        // kept at its largest).
        conn.pragma_update(None, "journal_size_limit", restart_frames * 4096)?;
        let checkpointer = rusqlite::Connection::open(path)?;
        checkpointer.busy_timeout(std::time::Duration::from_secs(2))?;
        checkpointer.pragma_update(None, "synchronous", synchronous)?;
        let mut wal = path.as_os_str().to_owned();
        wal.push("-wal");
        let checkpointer = Checkpointer {
            conn: checkpointer,
            wal: PathBuf::from(wal),
            frames: 0,
            scratch: Vec::new(),
        };
        let conn = Conn {
            conn,
            numbers: HashMap::new(),
        };
        Ok(Self {
            conn: std::sync::Arc::new(std::sync::Mutex::new(conn)),
            checkpointer: std::sync::Arc::new(std::sync::Mutex::new(checkpointer)),
            restart_frames,
        })
    }

    /// Runs `f` on the connection (blocking the calling thread while SQLite works).
    pub(super) fn with<T>(
        &self,
        f: impl FnOnce(&mut rusqlite::Connection) -> rusqlite::Result<T>,
    ) -> Result<T, SinkError> {
        let mut conn = self.conn.lock().unwrap_or_else(|p| p.into_inner());
        Ok(f(&mut conn.conn)?)
    }

    /// Checkpoints the WAL into the database on the checkpointing connection: what was
    /// committed before the call is then on disk. Writes go on meanwhile, except when the
    /// WAL has grown past its restart size: then writes wait for a second pass over what
    /// they added during the first (about 10 ms on a disk, once every 64 MiB of WAL), so
    /// that the next write starts the WAL over. Then the part of the WAL file the writer
    /// will write over next is read into memory ([`read_ahead`]), writes going on.
    ///
    /// Returns the WAL's frames and how many of them are now in the database.
    pub(super) fn checkpoint(&self) -> Result<(i64, i64), SinkError> {
        let mut guard = self.checkpointer.lock().unwrap_or_else(|p| p.into_inner());
        let checkpointer = &mut *guard;
        let pass = || {
            checkpointer
                .conn
                .query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |r| {
                    Ok((r.get::<_, i64>(1)?, r.get::<_, i64>(2)?))
                })
        };
        let (mut frames, mut copied) = pass()?;
        if frames > self.restart_frames {
            // Records written during the pass are still only in the WAL, and while that
            // is so SQLite never starts it over. Hold the writer still for one more pass
            // over just those: the next write then starts the WAL from its beginning.
            let _writer = self.conn.lock().unwrap_or_else(|p| p.into_inner());
            (frames, copied) = pass()?;
        }
        let parts = ahead(frames, copied, checkpointer.frames);
        checkpointer.frames = frames;
        read_ahead(&checkpointer.wal, &parts, &mut checkpointer.scratch);
        Ok((frames, copied))
    }

    /// Cuts an idle WAL back to nothing: every frame is copied into the database and the
    /// WAL file truncated (`PRAGMA wal_checkpoint(TRUNCATE)`), so the next writes go to
    /// fresh blocks. Left as it is, a WAL is written over from its start, and a frame
    /// (24 bytes of header and a 4 KiB page) covers parts of two 4 KiB blocks: a block
    /// written in part that has left memory meanwhile (the kernel reclaims what an idle
    /// process does not touch) is read back from disk first, while the committing request
    /// waits. Under load the WAL's blocks stay in memory, and cutting it back at every
    /// restart cost more than it saved, so this is for a log that has gone quiet.
    ///
    /// Gives up at once (false) if a write is in progress or a reader holds the WAL.
    pub fn shrink(&self) -> Result<bool, SinkError> {
        let _writer = match self.conn.try_lock() {
            Ok(held) => held,
            Err(std::sync::TryLockError::Poisoned(p)) => p.into_inner(),
            Err(std::sync::TryLockError::WouldBlock) => return Ok(false),
        };
        // A checkpoint in progress may be waiting for the writer held here: never wait for
        // it (nor for a reader) while holding every writer still.
        let conn = match self.checkpointer.try_lock() {
            Ok(held) => held,
            Err(std::sync::TryLockError::Poisoned(p)) => p.into_inner(),
            Err(std::sync::TryLockError::WouldBlock) => return Ok(false),
        };
        let conn = &conn.conn;
        conn.busy_timeout(std::time::Duration::ZERO)?;
        let busy = conn.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |r| {
            r.get::<_, i64>(0)
        });
        conn.busy_timeout(std::time::Duration::from_secs(2))?;
        Ok(busy? == 0)
    }

    /// Appends record lines of `instance`, `first_seq` onwards, in one transaction, on
    /// the calling thread (which blocks while SQLite works): all or none.
    pub fn append(
        &self,
        instance: &str,
        first_seq: u64,
        lines: &[String],
    ) -> Result<(), SinkError> {
        let mut conn = self.conn.lock().unwrap_or_else(|p| p.into_inner());
        Ok(insert_lines(&mut conn, instance, first_seq, lines)?)
    }

    /// The writing connection, unless it is in use (by another write, or by a
    /// checkpoint holding writes still): then `None` at once.
    pub fn try_hold(&self) -> Option<HeldWriter<'_>> {
        match self.conn.try_lock() {
            Ok(conn) => Some(HeldWriter(conn)),
            Err(std::sync::TryLockError::Poisoned(p)) => Some(HeldWriter(p.into_inner())),
            Err(std::sync::TryLockError::WouldBlock) => None,
        }
    }

    /// The writing connection's `PRAGMA wal_autocheckpoint` (0: never inside a commit).
    pub fn wal_autocheckpoint(&self) -> Result<i64, SinkError> {
        self.with(|c| c.query_row("PRAGMA wal_autocheckpoint", [], |r| r.get(0)))
    }

    /// The connection's `PRAGMA synchronous` (1 NORMAL, 2 FULL).
    pub fn synchronous(&self) -> Result<i64, SinkError> {
        self.with(|c| c.query_row("PRAGMA synchronous", [], |r| r.get(0)))
    }
}

/// The SQLite sink's writing connection, held by one caller ([`SqliteWriter::try_hold`]).
pub struct HeldWriter<'a>(std::sync::MutexGuard<'a, Conn>);

impl HeldWriter<'_> {
    /// As [`SqliteWriter::append`], on the held connection.
    pub fn append(
        &mut self,
        instance: &str,
        first_seq: u64,
        lines: &[String],
    ) -> Result<(), SinkError> {
        Ok(insert_lines(&mut self.0, instance, first_seq, lines)?)
    }
}

/// Inserts of one to [`ROWS_IN_ONE`] records, by how many: one statement each.
const INSERT_ROWS: [&str; ROWS_IN_ONE] = [
    "INSERT INTO audit_records (id, instance, seq, line) VALUES (?, ?, ?, ?)",
    "INSERT INTO audit_records (id, instance, seq, line) VALUES (?, ?, ?, ?), (?, ?, ?, ?)",
    "INSERT INTO audit_records (id, instance, seq, line) VALUES (?, ?, ?, ?), (?, ?, ?, ?), \
     (?, ?, ?, ?)",
    "INSERT INTO audit_records (id, instance, seq, line) VALUES (?, ?, ?, ?), (?, ?, ?, ?), \
     (?, ?, ?, ?), (?, ?, ?, ?)",
];

/// Batches of up to this many records are inserted by one statement, a transaction of its
/// own: no BEGIN and COMMIT to parse and run. A strict record written by its request's
/// thread goes with the outcome before it: two, the common case at low load.
const ROWS_IN_ONE: usize = 4;

/// Inserts record lines of `instance`, `first_seq` onwards, in one transaction.
fn insert_lines(
    conn: &mut Conn,
    instance: &str,
    first_seq: u64,
    lines: &[String],
) -> rusqlite::Result<()> {
    let no = conn.number(instance)?;
    let seq = |i: usize| first_seq + i as u64;
    // The rowid says where the record is; `seq` is kept beside it, as a plain column.
    let row = |i: usize| -> rusqlite::Result<(i64, i64)> {
        Ok((
            row_id(no, seq(i))?,
            i64::try_from(seq(i)).unwrap_or(i64::MAX),
        ))
    };
    if lines.is_empty() {
        return Ok(());
    }
    if let Some(sql) = INSERT_ROWS.get(lines.len() - 1) {
        let rows = (0..lines.len())
            .map(row)
            .collect::<rusqlite::Result<Vec<_>>>()?;
        let mut params: Vec<&dyn rusqlite::ToSql> = Vec::with_capacity(4 * lines.len());
        for ((id, n), line) in rows.iter().zip(lines) {
            params.extend([id as &dyn rusqlite::ToSql, &instance, n, line]);
        }
        conn.conn
            .prepare_cached(sql)?
            .execute(rusqlite::params_from_iter(params))?;
        return Ok(());
    }
    let tx = conn.conn.transaction()?;
    {
        let mut insert = tx.prepare_cached(INSERT_ROWS[0])?;
        for (i, line) in lines.iter().enumerate() {
            let (id, n) = row(i)?;
            insert.execute(rusqlite::params![id, instance, n, line])?;
        }
    }
    tx.commit()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sink::Sink;

    /// Under a steady stream of writes, with a checkpoint every so many records made while
    /// the writes go on (as the audit writer does), the WAL starts over once it passes its
    /// restart size instead of growing with every record.
    #[tokio::test]
    async fn the_wal_starts_over_under_a_steady_stream_of_writes() {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let path = dir.path().join("audit.db");
        let Sink::Sqlite(pool, _) = Sink::sqlite_with(&path, Durability::Committed)
            .await
            .unwrap_or_else(|e| panic!("{e}"))
        else {
            panic!("not SQLite")
        };
        let restart = 256;
        let writer = SqliteWriter::open_with(&path, Durability::Committed, restart)
            .unwrap_or_else(|e| panic!("{e}"));
        let sink = Sink::Sqlite(pool, writer.clone());
        let (due, checkpoints) = std::sync::mpsc::channel::<()>();
        let (synced, wait) = std::sync::mpsc::channel::<(i64, i64)>();
        let syncing = std::thread::spawn(move || {
            for () in checkpoints {
                let done = writer.checkpoint().unwrap_or_else(|e| panic!("{e}"));
                if synced.send(done).is_err() {
                    break;
                }
            }
        });
        // Every 100 records a checkpoint is due; the writer goes on with up to 100 more
        // while it runs, then waits for it (so no run of writes outpaces a slow disk).
        let line = "x".repeat(600);
        let (records, every) = (3_000u64, 100u64);
        let mut largest = 0;
        let mut pending = false;
        for seq in 0..records {
            sink.append("inst", seq, std::slice::from_ref(&line))
                .await
                .unwrap_or_else(|e| panic!("{e}"));
            if seq % every == every / 2 && pending {
                let (frames, _) = wait.recv().unwrap_or_else(|e| panic!("{e}"));
                largest = largest.max(frames);
                pending = false;
            }
            if seq % every == 0 {
                due.send(()).unwrap_or_else(|e| panic!("{e}"));
                pending = true;
            }
        }
        drop(due);
        for (frames, _) in wait {
            largest = largest.max(frames);
        }
        syncing
            .join()
            .unwrap_or_else(|_| panic!("syncing panicked"));
        // Each record is at least one frame, so without a restart the WAL ends with 3 000
        // or more (measured with the first schema, whose index page made it 2.3 frames a
        // record: 7 009). With restarts it holds the restart size plus what was written
        // around one or two checkpoints (measured then: 593–830).
        assert!(largest < 1_500, "the WAL reached {largest} frames");
        // And the file is cut back when the WAL starts over (without: 29.9 MB).
        let wal = std::fs::metadata(dir.path().join("audit.db-wal"))
            .unwrap_or_else(|e| panic!("{e}"))
            .len();
        assert!(wal <= 8 << 20, "WAL file of {wal} bytes");
    }

    /// What is read ahead: after the last frame, as far as twice what was written since
    /// the last checkpoint, and the file's start too when the WAL may start over.
    #[test]
    fn the_wal_is_read_ahead_where_the_writer_goes_next() {
        let end = |frames: u64| WAL_HEADER_BYTES + frames * FRAME_BYTES;
        // 1 000 frames written since the last checkpoint at 500, 200 not yet copied: the
        // writer goes on after frame 1 500, about 2 000 frames' worth.
        assert_eq!(
            ahead(1_500, 1_300, 500),
            vec![end(1_500)..end(1_500) + 2_000 * FRAME_BYTES]
        );
        // Every frame copied: it may start over from the file's start instead (read once
        // where the two parts meet).
        assert_eq!(
            ahead(1_500, 1_500, 1_000),
            vec![
                0..1_000 * FRAME_BYTES,
                end(1_500)..end(1_500) + 1_000 * FRAME_BYTES
            ]
        );
        assert_eq!(
            ahead(1_500, 1_500, 500),
            vec![0..end(1_500), end(1_500)..end(1_500) + 2_000 * FRAME_BYTES]
        );
        // Fewer frames than at the last checkpoint: the WAL started over meanwhile, and
        // all of them were written since.
        assert_eq!(
            ahead(600, 0, 16_000),
            vec![end(600)..end(600) + 1_200 * FRAME_BYTES]
        );
        // Bounded both ways.
        assert_eq!(ahead(3, 0, 2), vec![end(3)..end(3) + AHEAD_MIN]);
        assert_eq!(
            ahead(20_000, 0, 0),
            vec![end(20_000)..end(20_000) + AHEAD_MAX]
        );
        // An empty WAL: from its start.
        assert_eq!(
            ahead(0, 0, 0),
            vec![
                0..WAL_HEADER_BYTES,
                WAL_HEADER_BYTES..WAL_HEADER_BYTES + AHEAD_MIN
            ]
        );
    }

    /// An idle WAL is cut back to nothing, every record kept; not while a write is in
    /// progress.
    #[tokio::test]
    async fn an_idle_wal_is_cut_back_to_nothing() {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let path = dir.path().join("audit.db");
        let sink = Sink::sqlite_with(&path, Durability::Committed)
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        let Sink::Sqlite(_, writer) = &sink else {
            panic!("not SQLite")
        };
        let wal_len = || {
            std::fs::metadata(dir.path().join("audit.db-wal"))
                .unwrap_or_else(|e| panic!("{e}"))
                .len()
        };
        let line = "x".repeat(3_000);
        for seq in 0..50u64 {
            sink.append("inst", seq, std::slice::from_ref(&line))
                .await
                .unwrap_or_else(|e| panic!("{e}"));
        }
        assert!(wal_len() > 50 * 4096, "the WAL holds {} bytes", wal_len());
        {
            // A write in progress: left alone.
            let _held = writer.try_hold().unwrap_or_else(|| panic!("writer busy"));
            assert!(!writer.shrink().unwrap_or_else(|e| panic!("{e}")));
            assert!(wal_len() > 50 * 4096);
        }
        assert!(writer.shrink().unwrap_or_else(|e| panic!("{e}")));
        assert_eq!(wal_len(), 0);
        // Every record is in the database, and writing goes on.
        sink.append("inst", 50, std::slice::from_ref(&line))
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        let conn = rusqlite::Connection::open(&path).unwrap_or_else(|e| panic!("{e}"));
        let rows: i64 = conn
            .query_row("SELECT count(*) FROM audit_records", [], |r| r.get(0))
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(rows, 51);
    }
}
