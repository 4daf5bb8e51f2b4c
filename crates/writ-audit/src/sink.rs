//! Where audit lines are kept: SQLite (the default, a file of its own in the data
//! directory), PostgreSQL, or a JSON-lines file. Every sink stores the lines exactly as
//! written, so verification sees any changed byte, and can read them back per instance.
//!
//! The JSON-lines format is also the export format: record lines as they are, and each
//! checkpoint as `{"checkpoint":"<signed note>","instance":"…","size":N}`.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use sqlx::postgres::{PgConnectOptions, PgPool, PgPoolOptions};
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions};
use tokio::io::AsyncWriteExt;

/// A sink failed. The message names no secret (connection URLs are not quoted).
#[derive(Debug, thiserror::Error)]
#[error("audit sink: {0}")]
pub struct SinkError(String);

impl From<sqlx::Error> for SinkError {
    fn from(e: sqlx::Error) -> Self {
        // sqlx errors do not carry the connection URL; the database's message is kept.
        SinkError(match e {
            sqlx::Error::Database(d) => d.message().to_string(),
            sqlx::Error::Io(io) => io.to_string(),
            sqlx::Error::PoolTimedOut => "timed out waiting for a connection".to_string(),
            other => other.to_string(),
        })
    }
}

impl From<rusqlite::Error> for SinkError {
    fn from(e: rusqlite::Error) -> Self {
        SinkError(e.to_string())
    }
}

impl From<std::io::Error> for SinkError {
    fn from(e: std::io::Error) -> Self {
        SinkError(e.to_string())
    }
}

/// A checkpoint line of the JSON-lines format.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct CheckpointLine {
    /// The signed note.
    pub checkpoint: String,
    /// The instance whose log it signs.
    pub instance: String,
    /// The tree size it commits to.
    pub size: u64,
}

/// When a local sink (SQLite, file) forces what it wrote to disk.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Durability {
    /// Every write is synced before it returns (`fsync`): a record survives a power loss
    /// the moment its write completes. Costs a disk sync per batch.
    Synced,
    /// Every write is committed (in the operating system's hands) before it returns, so
    /// it survives the gateway crashing or being killed; the sink is synced after every
    /// signed checkpoint ([`Sink::sync`], which writing does not wait for), and the OS
    /// writes the rest within seconds.
    /// A power loss can lose what came after the last checkpoint.
    Committed,
}

/// The connection audit lines are written through, for the SQLite sink: SQLite called
/// directly on the writing thread. (A sqlx connection runs on a thread of its own, and
/// every statement is a round trip to it: two thread wake-ups per write.)
#[derive(Clone)]
pub struct SqliteWriter {
    conn: std::sync::Arc<std::sync::Mutex<rusqlite::Connection>>,
    /// A second connection that checkpoints the WAL (which syncs it to disk), so a sync
    /// does not hold up the writing connection (except to start a long WAL over).
    checkpointer: std::sync::Arc<std::sync::Mutex<rusqlite::Connection>>,
    /// WAL frames past which a checkpoint holds the writer still to catch up with it.
    restart_frames: i64,
}

/// How many WAL frames (pages of 4 KiB) may accumulate before a checkpoint makes sure
/// SQLite starts the WAL over: 64 MiB. SQLite restarts the WAL only when a write begins
/// after a checkpoint that left no frame behind, and a checkpoint made while records keep
/// coming always leaves the frames written during it: under a steady load the WAL grew
/// by every record (470 MB in five seconds of writ full at 25 000 requests a second).
const WAL_RESTART_FRAMES: i64 = 16 * 1024;

impl std::fmt::Debug for SqliteWriter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SqliteWriter")
    }
}

impl SqliteWriter {
    fn open(path: &Path, durability: Durability) -> Result<Self, SinkError> {
        Self::open_with(path, durability, WAL_RESTART_FRAMES)
    }

    fn open_with(
        path: &Path,
        durability: Durability,
        restart_frames: i64,
    ) -> Result<Self, SinkError> {
        let conn = rusqlite::Connection::open(path)?;
        conn.busy_timeout(std::time::Duration::from_secs(2))?;
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
        let shared = |c| std::sync::Arc::new(std::sync::Mutex::new(c));
        Ok(Self {
            conn: shared(conn),
            checkpointer: shared(checkpointer),
            restart_frames,
        })
    }

    /// Runs `f` on the connection (blocking the calling thread while SQLite works).
    fn with<T>(
        &self,
        f: impl FnOnce(&mut rusqlite::Connection) -> rusqlite::Result<T>,
    ) -> Result<T, SinkError> {
        let mut conn = self.conn.lock().unwrap_or_else(|p| p.into_inner());
        Ok(f(&mut conn)?)
    }

    /// Checkpoints the WAL into the database on the checkpointing connection: what was
    /// committed before the call is then on disk. Writes go on meanwhile, except when the
    /// WAL has grown past its restart size: then writes wait for a second pass over what
    /// they added during the first (about 10 ms on a disk, once every 64 MiB of WAL), so
    /// that the next write starts the WAL over.
    ///
    /// Returns the WAL's frames and how many of them are now in the database.
    fn checkpoint(&self) -> Result<(i64, i64), SinkError> {
        let conn = self.checkpointer.lock().unwrap_or_else(|p| p.into_inner());
        let pass = || {
            conn.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |r| {
                Ok((r.get::<_, i64>(1)?, r.get::<_, i64>(2)?))
            })
        };
        let (frames, copied) = pass()?;
        if frames > self.restart_frames {
            // Records written during the pass are still only in the WAL, and while that
            // is so SQLite never starts it over. Hold the writer still for one more pass
            // over just those: the next write then starts the WAL from its beginning.
            let _writer = self.conn.lock().unwrap_or_else(|p| p.into_inner());
            return Ok(pass()?);
        }
        Ok((frames, copied))
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
pub struct HeldWriter<'a>(std::sync::MutexGuard<'a, rusqlite::Connection>);

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

const INSERT_LINE: &str = "INSERT INTO audit_records (instance, seq, line) VALUES (?1, ?2, ?3)";

/// Inserts record lines of `instance`, `first_seq` onwards, in one transaction.
fn insert_lines(
    conn: &mut rusqlite::Connection,
    instance: &str,
    first_seq: u64,
    lines: &[String],
) -> rusqlite::Result<()> {
    let seq = |i: usize| i64::try_from(first_seq + i as u64).unwrap_or(i64::MAX);
    if let [line] = lines {
        // One statement is a transaction of its own: no BEGIN and COMMIT to parse and
        // run (a strict record written alone, the common case at low load).
        let mut insert = conn.prepare_cached(INSERT_LINE)?;
        insert.execute(rusqlite::params![instance, seq(0), line])?;
        return Ok(());
    }
    let tx = conn.transaction()?;
    {
        let mut insert = tx.prepare_cached(INSERT_LINE)?;
        for (i, line) in lines.iter().enumerate() {
            insert.execute(rusqlite::params![instance, seq(i), line])?;
        }
    }
    tx.commit()
}

/// Where audit lines are kept.
#[derive(Debug, Clone)]
pub enum Sink {
    /// SQLite database: a pool for reading, one connection for writing.
    Sqlite(SqlitePool, SqliteWriter),
    /// PostgreSQL database.
    Postgres(PgPool),
    /// JSON-lines file, appended (and synced after each write if [`Durability::Synced`]).
    File(PathBuf, Durability),
}

const SQLITE_SCHEMA: &[&str] = &[
    "CREATE TABLE IF NOT EXISTS audit_records (instance TEXT NOT NULL, seq INTEGER NOT NULL, line TEXT NOT NULL, PRIMARY KEY (instance, seq))",
    "CREATE TABLE IF NOT EXISTS audit_checkpoints (id INTEGER PRIMARY KEY AUTOINCREMENT, instance TEXT NOT NULL, size INTEGER NOT NULL, note TEXT NOT NULL)",
    "CREATE TABLE IF NOT EXISTS audit_probe (id INTEGER PRIMARY KEY)",
];

const POSTGRES_SCHEMA: &[&str] = &[
    "CREATE TABLE IF NOT EXISTS audit_records (instance TEXT NOT NULL, seq BIGINT NOT NULL, line TEXT NOT NULL, PRIMARY KEY (instance, seq))",
    "CREATE TABLE IF NOT EXISTS audit_checkpoints (id BIGSERIAL PRIMARY KEY, instance TEXT NOT NULL, size BIGINT NOT NULL, note TEXT NOT NULL)",
];

impl Sink {
    /// Opens (creating) the SQLite sink at `path`, synced on every write.
    pub async fn sqlite(path: &Path) -> Result<Self, SinkError> {
        Self::sqlite_with(path, Durability::Synced).await
    }

    /// Opens (creating) the SQLite sink at `path` (WAL; `synchronous = FULL` when
    /// [`Durability::Synced`], `NORMAL` when [`Durability::Committed`]).
    pub async fn sqlite_with(path: &Path, durability: Durability) -> Result<Self, SinkError> {
        let synchronous = match durability {
            Durability::Synced => sqlx::sqlite::SqliteSynchronous::Full,
            Durability::Committed => sqlx::sqlite::SqliteSynchronous::Normal,
        };
        let options = SqliteConnectOptions::new()
            .filename(path)
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(synchronous);
        let pool = SqlitePoolOptions::new()
            .max_connections(2)
            // A local file: no connection to test before each use (that is a round trip
            // to SQLite's worker thread per write).
            .test_before_acquire(false)
            .acquire_timeout(std::time::Duration::from_secs(2))
            .connect_with(options)
            .await?;
        for statement in SQLITE_SCHEMA {
            sqlx::query(statement).execute(&pool).await?;
        }
        let writer = SqliteWriter::open(path, durability)?;
        Ok(Sink::Sqlite(pool, writer))
    }

    /// Connects to PostgreSQL at `url`, every commit waiting for the server's WAL flush
    /// (as the server is configured). The pool connects lazily, so a database that is
    /// down now makes writes fail (and the gateway refuse in strict mode) until it is up.
    pub async fn postgres(url: &str) -> Result<Self, SinkError> {
        Self::postgres_with(url, Durability::Synced).await
    }

    /// As [`Sink::postgres`]; with [`Durability::Committed`] record commits do not wait
    /// for the server's WAL flush (`synchronous_commit = off` for this pool's sessions),
    /// and each checkpoint's commit does (`SET LOCAL synchronous_commit = on`), which
    /// flushes every record before it.
    pub async fn postgres_with(url: &str, durability: Durability) -> Result<Self, SinkError> {
        let mut options: PgConnectOptions = url
            .parse()
            .map_err(|_| SinkError("postgres_url is not a valid PostgreSQL URL".to_string()))?;
        if durability == Durability::Committed {
            options = options.options([("synchronous_commit", "off")]);
        }
        let pool = PgPoolOptions::new()
            .max_connections(4)
            .acquire_timeout(std::time::Duration::from_secs(2))
            .connect_lazy_with(options);
        let sink = Sink::Postgres(pool);
        // Best effort at start: the tables are created again before every write that
        // follows a failure, so a database that comes up later is set up then.
        let _ = sink.prepare().await;
        Ok(sink)
    }

    /// A JSON-lines file at `path`, synced on every write.
    pub fn file(path: PathBuf) -> Self {
        Sink::File(path, Durability::Synced)
    }

    /// A JSON-lines file at `path` with the given durability.
    pub fn file_with(path: PathBuf, durability: Durability) -> Self {
        Sink::File(path, durability)
    }

    /// Forces everything written so far to disk: SQLite's WAL is checkpointed (which
    /// syncs it), a file is synced; PostgreSQL's last checkpoint commit already did.
    /// Blocks the calling thread while the disk works, as [`Sink::sync_blocking`]: call it
    /// where blocking is fine (the audit writer's own thread, at shutdown).
    pub async fn sync(&self) -> Result<(), SinkError> {
        self.sync_blocking()
    }

    /// [`Sink::sync`], blocking the calling thread while the disk works (for a thread
    /// that may block). Appends on other threads go on meanwhile.
    pub fn sync_blocking(&self) -> Result<(), SinkError> {
        match self {
            Sink::Sqlite(_, writer) => {
                writer.checkpoint()?;
            }
            Sink::Postgres(_) => {}
            Sink::File(path, _) => {
                let file = std::fs::OpenOptions::new()
                    .create(true)
                    .append(true)
                    .open(path)?;
                file.sync_data()?;
            }
        }
        Ok(())
    }

    /// The SQLite sink's writing connection, which appends on the calling thread.
    pub fn sqlite_writer(&self) -> Option<&SqliteWriter> {
        match self {
            Sink::Sqlite(_, writer) => Some(writer),
            Sink::Postgres(_) | Sink::File(..) => None,
        }
    }

    /// Creates the tables if needed (PostgreSQL).
    pub async fn prepare(&self) -> Result<(), SinkError> {
        if let Sink::Postgres(pool) = self {
            for statement in POSTGRES_SCHEMA {
                sqlx::query(statement).execute(pool).await?;
            }
        }
        Ok(())
    }

    /// Appends record lines of `instance`, `first_seq` onwards, durably, all or none.
    pub async fn append(
        &self,
        instance: &str,
        first_seq: u64,
        lines: &[String],
    ) -> Result<(), SinkError> {
        let seq = |i: usize| i64::try_from(first_seq + i as u64).unwrap_or(i64::MAX);
        match self {
            Sink::Sqlite(_, writer) => writer.append(instance, first_seq, lines)?,
            Sink::Postgres(pool) => {
                // One statement, one round trip, for the whole batch (atomic on its own).
                let seqs: Vec<i64> = (0..lines.len()).map(seq).collect();
                sqlx::query(
                    "INSERT INTO audit_records (instance, seq, line) \
                     SELECT $1, s, l FROM UNNEST($2::BIGINT[], $3::TEXT[]) AS batch(s, l)",
                )
                .bind(instance)
                .bind(&seqs)
                .bind(lines)
                .execute(pool)
                .await?;
            }
            Sink::File(path, durability) => {
                let mut text = String::new();
                for line in lines {
                    text.push_str(line);
                    text.push('\n');
                }
                append_file(path, text.as_bytes(), *durability).await?;
            }
        }
        Ok(())
    }

    /// Stores a signed checkpoint of `instance` at `size`.
    pub async fn put_checkpoint(
        &self,
        instance: &str,
        size: u64,
        note: &str,
    ) -> Result<(), SinkError> {
        let size_i = i64::try_from(size).unwrap_or(i64::MAX);
        match self {
            Sink::Sqlite(_, writer) => {
                writer.with(|c| {
                    c.execute(
                        "INSERT INTO audit_checkpoints (instance, size, note) VALUES (?1, ?2, ?3)",
                        rusqlite::params![instance, size_i, note],
                    )
                })?;
            }
            Sink::Postgres(pool) => {
                // Synced whatever the session says: it makes every record before it durable.
                let mut tx = pool.begin().await?;
                sqlx::query("SET LOCAL synchronous_commit = on")
                    .execute(&mut *tx)
                    .await?;
                sqlx::query(
                    "INSERT INTO audit_checkpoints (instance, size, note) VALUES ($1, $2, $3)",
                )
                .bind(instance)
                .bind(size_i)
                .bind(note)
                .execute(&mut *tx)
                .await?;
                tx.commit().await?;
            }
            Sink::File(path, durability) => {
                let line = CheckpointLine {
                    checkpoint: note.to_string(),
                    instance: instance.to_string(),
                    size,
                };
                let mut text =
                    serde_json::to_string(&line).map_err(|e| SinkError(e.to_string()))?;
                text.push('\n');
                append_file(path, text.as_bytes(), *durability).await?;
            }
        }
        Ok(())
    }

    /// Whether a write would succeed now, without writing a record.
    pub async fn probe(&self) -> Result<(), SinkError> {
        match self {
            Sink::Sqlite(_, writer) => {
                writer.with(|c| {
                    let tx = c.transaction()?;
                    tx.execute("INSERT OR REPLACE INTO audit_probe (id) VALUES (1)", [])?;
                    tx.rollback()
                })?;
            }
            Sink::Postgres(pool) => {
                self.prepare().await?;
                sqlx::query("SELECT 1").execute(pool).await?;
            }
            Sink::File(path, durability) => {
                append_file(path, b"", *durability).await?;
            }
        }
        Ok(())
    }

    /// The whole log in the JSON-lines format: per instance, its records in order, each
    /// checkpoint after the record it covers up to.
    pub async fn export(&self) -> Result<Vec<String>, SinkError> {
        let (records, checkpoints): (Vec<Row>, Vec<Row>) = match self {
            Sink::Sqlite(pool, _) => (
                sqlx::query_as(
                    "SELECT instance, seq, line FROM audit_records ORDER BY instance, seq",
                )
                .fetch_all(pool)
                .await?,
                sqlx::query_as("SELECT instance, size, note FROM audit_checkpoints ORDER BY id")
                    .fetch_all(pool)
                    .await?,
            ),
            Sink::Postgres(pool) => (
                sqlx::query_as(
                    "SELECT instance, seq, line FROM audit_records ORDER BY instance, seq",
                )
                .fetch_all(pool)
                .await?,
                sqlx::query_as("SELECT instance, size, note FROM audit_checkpoints ORDER BY id")
                    .fetch_all(pool)
                    .await?,
            ),
            Sink::File(path, _) => {
                let text = tokio::fs::read_to_string(path).await?;
                return Ok(text.lines().map(str::to_string).collect());
            }
        };
        let mut out = Vec::with_capacity(records.len() + checkpoints.len());
        let mut pending: Vec<&Row> = checkpoints.iter().collect();
        for (instance, seq, line) in &records {
            out.push(line.clone());
            let covered = seq + 1;
            pending.retain(|(ci, size, note)| {
                if ci == instance && *size == covered {
                    let line = CheckpointLine {
                        checkpoint: note.clone(),
                        instance: ci.clone(),
                        size: u64::try_from(*size).unwrap_or(0),
                    };
                    out.push(serde_json::to_string(&line).unwrap_or_default());
                    false
                } else {
                    true
                }
            });
        }
        // Checkpoints of empty logs, or over records that are gone, still go out.
        for (instance, size, note) in pending {
            let line = CheckpointLine {
                checkpoint: note.clone(),
                instance: instance.clone(),
                size: u64::try_from(*size).unwrap_or(0),
            };
            out.push(serde_json::to_string(&line).unwrap_or_default());
        }
        Ok(out)
    }
}

/// An (instance, seq or size, line or note) row.
type Row = (String, i64, String);

async fn append_file(path: &Path, bytes: &[u8], durability: Durability) -> Result<(), SinkError> {
    let mut file = tokio::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .await?;
    if !bytes.is_empty() {
        file.write_all(bytes).await?;
        if durability == Durability::Synced {
            file.sync_data().await?;
        }
    }
    Ok(())
}

/// Splits JSON lines (an export or a file sink) into each instance's record lines and
/// checkpoint notes, in order.
pub fn split_export(lines: &[String]) -> Vec<(String, Vec<String>, Vec<String>)> {
    type Log = (String, Vec<String>, Vec<String>);
    let mut out: Vec<Log> = Vec::new();
    fn slot(out: &mut Vec<Log>, instance: &str) -> usize {
        match out.iter().position(|(i, _, _)| i == instance) {
            Some(p) => p,
            None => {
                out.push((instance.to_string(), Vec::new(), Vec::new()));
                out.len() - 1
            }
        }
    }
    for line in lines.iter().filter(|l| !l.trim().is_empty()) {
        if let Ok(cp) = serde_json::from_str::<CheckpointLine>(line) {
            let i = slot(&mut out, &cp.instance);
            out[i].2.push(cp.checkpoint);
            continue;
        }
        // A record line; its instance is read leniently so a damaged line still lands in
        // its log, where verification names it.
        let instance = serde_json::from_str::<serde_json::Value>(line)
            .ok()
            .and_then(|v| v.get("instance")?.as_str().map(str::to_string))
            .unwrap_or_default();
        let i = slot(&mut out, &instance);
        out[i].1.push(line.clone());
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A long batch keeps its order and numbering, and a batch that clashes with stored
    /// records is refused whole.
    #[tokio::test]
    async fn sqlite_batches_span_statements_all_or_nothing() {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let sink = Sink::sqlite(&dir.path().join("audit.db"))
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        sink.prepare().await.unwrap_or_else(|e| panic!("{e}"));
        let n = 519;
        let lines: Vec<String> = (0..n).map(|i| format!("{{\"line\":{i}}}")).collect();
        sink.append("inst", 0, &lines)
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(sink.export().await.unwrap_or_default(), lines);
        // Overlaps seq 10 onwards: nothing of it is kept.
        let clash: Vec<String> = (0..300).map(|i| format!("{{\"again\":{i}}}")).collect();
        assert!(sink.append("inst", (n - 10) as u64, &clash).await.is_err());
        assert_eq!(sink.export().await.unwrap_or_default(), lines);
        // A short one too.
        let short: Vec<String> = (0..5).map(|i| format!("{{\"short\":{i}}}")).collect();
        assert!(sink.append("inst", (n - 2) as u64, &short).await.is_err());
        assert_eq!(sink.export().await.unwrap_or_default(), lines);
    }

    async fn synchronous(sink: &Sink) -> i64 {
        let Sink::Sqlite(_, writer) = sink else {
            panic!("not SQLite")
        };
        writer.synchronous().unwrap_or_else(|e| panic!("{e}"))
    }

    /// `Synced` syncs every commit (`synchronous = FULL`); `Committed` leaves it to the
    /// checkpoints (`NORMAL`), and `sync` then forces what was written to disk.
    #[tokio::test]
    async fn durability_decides_when_sqlite_and_files_sync() {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let synced = Sink::sqlite_with(&dir.path().join("a.db"), Durability::Synced)
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(synchronous(&synced).await, 2);
        let committed = Sink::sqlite_with(&dir.path().join("b.db"), Durability::Committed)
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(synchronous(&committed).await, 1);
        // Only `Committed` keeps checkpoints (two disk syncs) out of commits.
        let autocheckpoint = |sink: &Sink| {
            let Sink::Sqlite(_, writer) = sink else {
                panic!("not SQLite")
            };
            writer
                .wal_autocheckpoint()
                .unwrap_or_else(|e| panic!("{e}"))
        };
        assert_eq!(autocheckpoint(&synced), 1000);
        assert_eq!(autocheckpoint(&committed), 0);
        let lines: Vec<String> = (0..3).map(|i| format!("{{\"line\":{i}}}")).collect();
        for sink in [
            committed,
            Sink::file_with(dir.path().join("c.jsonl"), Durability::Committed),
        ] {
            sink.append("inst", 0, &lines)
                .await
                .unwrap_or_else(|e| panic!("{e}"));
            sink.sync().await.unwrap_or_else(|e| panic!("{e}"));
            assert_eq!(sink.export().await.unwrap_or_default(), lines);
        }
        // After `sync` the records are in the database file itself, not only in its WAL:
        // a copy of the file alone holds them.
        let alone = dir.path().join("alone.db");
        std::fs::copy(dir.path().join("b.db"), &alone).unwrap_or_else(|e| panic!("{e}"));
        let copy = rusqlite::Connection::open(&alone).unwrap_or_else(|e| panic!("{e}"));
        let count: i64 = copy
            .query_row("SELECT count(*) FROM audit_records", [], |r| r.get(0))
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(count, 3);
        // Syncing a file sink that cannot be opened is an error, not a silent success.
        let gone = Sink::file_with(dir.path().join("no/such/dir.jsonl"), Durability::Committed);
        assert!(gone.sync().await.is_err());
    }

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
        // Each record is at least one frame (about 2.3 here), so without a restart the WAL
        // ends with 3 000 or more (measured: 7 009). With restarts it holds the restart
        // size plus what was written around one or two checkpoints (measured: 593–830).
        assert!(largest < 1_500, "the WAL reached {largest} frames");
        // And the file is cut back when the WAL starts over (without: 29.9 MB).
        let wal = std::fs::metadata(dir.path().join("audit.db-wal"))
            .unwrap_or_else(|e| panic!("{e}"))
            .len();
        assert!(wal <= 8 << 20, "WAL file of {wal} bytes");
    }
}
