//! Where audit lines are kept: SQLite (the default, a file of its own in the data
//! directory), PostgreSQL, or a JSON-lines file. Every sink stores the lines exactly as
//! written, so verification sees any changed byte, and can read them back per instance.
//!
//! The JSON-lines format is also the export format: record lines as they are, and each
//! checkpoint as `{"checkpoint":"<signed note>","instance":"…","size":N}`.

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Serialize};
use sqlx::postgres::{PgPool, PgPoolOptions};
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions};

mod new_records;
mod pages;
mod postgres_lanes;
mod sqlite_schema;
mod sqlite_writer;

pub use new_records::ReadMarks;
pub use pages::Numbered;
pub use postgres_lanes::{LANE_APPLICATION_NAME, LaneConnection, PostgresLanes};
pub use sqlite_writer::{HeldWriter, SqliteWriter};

/// A sink failed, by backend, with the backend's error as its source. The message names
/// no secret (connection URLs are never quoted; sqlx errors do not carry them).
#[derive(Debug, thiserror::Error)]
pub enum SinkError {
    /// The SQLite sink's writing connection failed (append, checkpoint, probe).
    #[error("audit sink: {0}")]
    Sqlite(#[from] rusqlite::Error),
    /// The SQLite sink's pool failed (open, schema, export).
    #[error("audit sink: {}", sqlx_message(.0))]
    SqlitePool(#[source] sqlx::Error),
    /// The PostgreSQL sink failed (schema, write, read).
    #[error("audit sink: {}", sqlx_message(.0))]
    Postgres(#[source] sqlx::Error),
    /// `postgres_url` does not parse as a PostgreSQL URL (the URL is not quoted).
    #[error("audit sink: postgres_url is not a valid PostgreSQL URL")]
    InvalidPostgresUrl,
    /// The JSON-lines file could not be opened, written, synced or read.
    #[error("audit sink: {0}")]
    Io(#[from] std::io::Error),
    /// A checkpoint line could not be encoded as JSON.
    #[error("audit sink: {0}")]
    Encode(#[from] serde_json::Error),
    /// PostgreSQL holds `held` records of the instance, not the `first` the write was
    /// to follow, and wrote nothing: a crash lost records committed without waiting for
    /// the WAL flush (`held` below), or a write committed though its answer was lost
    /// (`held` above). The writer must start again from `held`.
    #[error("audit sink: the database holds {held} records of this instance, not {first}")]
    NotContiguous {
        /// Records of the instance the database holds (its next `seq`).
        held: u64,
        /// The `seq` the refused write began with.
        first: u64,
    },
}

/// An sqlx error in words: the database's own message, not the driver's wrapping.
fn sqlx_message(e: &sqlx::Error) -> String {
    match e {
        sqlx::Error::Database(d) => d.message().to_string(),
        sqlx::Error::Io(io) => io.to_string(),
        sqlx::Error::PoolTimedOut => "timed out waiting for a connection".to_string(),
        other => other.to_string(),
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
    /// [`Durability::Synced`], `NORMAL` when [`Durability::Committed`]). A database
    /// written before records were keyed by rowid is migrated first (see `sqlite_schema`).
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
            .await
            .map_err(SinkError::SqlitePool)?;
        // The tables are made (or migrated) on the writing connection.
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
    /// flushes every record before it. Each connection is checked (pinged) before use.
    pub async fn postgres_with(url: &str, durability: Durability) -> Result<Self, SinkError> {
        Self::postgres_pool(url, durability, Duration::ZERO).await
    }

    /// As [`Sink::postgres_with`], for one writer in steady use (the audit writer): a
    /// connection is checked before use only after it has been idle for a second, not
    /// before every write, which cost each write a round trip more. One that died in the
    /// meantime fails its write (kept and retried, as any failed write) and is closed.
    pub async fn postgres_writing(url: &str, durability: Durability) -> Result<Self, SinkError> {
        Self::postgres_pool(url, durability, Duration::from_secs(1)).await
    }

    /// A pool whose connections are pinged before use once idle for `check_after`.
    async fn postgres_pool(
        url: &str,
        durability: Durability,
        check_after: Duration,
    ) -> Result<Self, SinkError> {
        let options = postgres_lanes::append_options(url, durability)?;
        let pool = PgPoolOptions::new()
            .max_connections(4)
            .acquire_timeout(Duration::from_secs(2))
            .test_before_acquire(false)
            .before_acquire(move |conn, meta| {
                Box::pin(async move {
                    if meta.idle_for >= check_after {
                        sqlx::Connection::ping(conn).await?;
                    }
                    Ok(true)
                })
            })
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

    /// Cuts back what the sink keeps beside its records once writing has gone quiet:
    /// SQLite's WAL ([`SqliteWriter::shrink`]), so a burst after a quiet spell writes fresh
    /// blocks instead of reading old ones back from disk. Nothing for the other sinks.
    /// Blocks the calling thread; false when it could not be done now (a write in progress).
    pub fn shrink_idle(&self) -> Result<bool, SinkError> {
        match self {
            Sink::Sqlite(_, writer) => writer.shrink(),
            Sink::Postgres(_) | Sink::File(..) => Ok(true),
        }
    }

    /// Whether a checkpoint may be stored while appends go on, on a connection of its own
    /// (PostgreSQL, whose checkpoint commit waits for a WAL flush): a checkpoint over fewer
    /// records than the sink holds by then is stored all the same.
    pub fn stores_checkpoints_aside(&self) -> bool {
        matches!(self, Sink::Postgres(_))
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
                sqlx::query(statement)
                    .execute(pool)
                    .await
                    .map_err(SinkError::Postgres)?;
            }
        }
        Ok(())
    }

    /// Appends record lines of `instance`, `first_seq` onwards, durably, all or none.
    /// PostgreSQL writes them only right after the instance's last record, and otherwise
    /// fails with [`SinkError::NotContiguous`] saying where that is.
    pub async fn append(
        &self,
        instance: &str,
        first_seq: u64,
        lines: &[String],
    ) -> Result<(), SinkError> {
        match self {
            Sink::Sqlite(_, writer) => writer.append(instance, first_seq, lines)?,
            Sink::Postgres(pool) => {
                postgres_lanes::append(pool, instance, first_seq, lines).await?
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

    /// Stores a signed checkpoint of `instance` at `size`. PostgreSQL stores it only when
    /// it holds at least `size` records of the instance (all of them: records are stored
    /// only contiguously), and otherwise fails with [`SinkError::NotContiguous`] saying how
    /// many it holds; its commit waits for the WAL flush whatever the durability.
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
                // One statement, one round trip (it was four: BEGIN, SET LOCAL, the insert,
                // COMMIT), committed synchronously whatever the session says:
                // `set_config(.., true)` sets `synchronous_commit` for this statement's own
                // transaction, whose commit reads it, and waiting for that commit's WAL flush
                // makes every record before it durable too. Stored only over records the
                // database holds: a crash may have lost records acknowledged without waiting
                // for the flush. More than `size` is fine (records appended meanwhile, as the
                // writer goes on writing while a checkpoint commits).
                let (held,): (i64,) = sqlx::query_as(
                    "WITH synced AS (SELECT set_config('synchronous_commit', 'on', true)), \
                     held AS (SELECT COALESCE(MAX(seq) + 1, 0) AS n \
                              FROM audit_records WHERE instance = $1), \
                     ins AS (INSERT INTO audit_checkpoints (instance, size, note) \
                             SELECT $1, $2, $3 FROM held, synced WHERE held.n >= $2) \
                     SELECT n FROM held",
                )
                .bind(instance)
                .bind(size_i)
                .bind(note)
                .fetch_one(pool)
                .await
                .map_err(SinkError::Postgres)?;
                let held = u64::try_from(held).unwrap_or(0);
                if held < size {
                    return Err(SinkError::NotContiguous { held, first: size });
                }
            }
            Sink::File(path, durability) => {
                let line = CheckpointLine {
                    checkpoint: note.to_string(),
                    instance: instance.to_string(),
                    size,
                };
                let mut text = serde_json::to_string(&line)?;
                text.push('\n');
                append_file(path, text.as_bytes(), *durability).await?;
            }
        }
        Ok(())
    }

    /// What and where the sink is, for an operator: `SQLite at PATH`, `PostgreSQL at
    /// HOST:PORT/DATABASE` (never a password), `file PATH`.
    pub fn describe(&self) -> String {
        match self {
            Sink::Sqlite(pool, _) => format!(
                "SQLite at {}",
                pool.connect_options().get_filename().display()
            ),
            Sink::Postgres(pool) => {
                let o = pool.connect_options();
                format!(
                    "PostgreSQL at {}:{}/{}",
                    o.get_host(),
                    o.get_port(),
                    o.get_database().unwrap_or("")
                )
            }
            Sink::File(path, _) => format!("file {}", path.display()),
        }
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
                sqlx::query("SELECT 1")
                    .execute(pool)
                    .await
                    .map_err(SinkError::Postgres)?;
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
        // Checkpoints are read before records: an instance writes a checkpoint only after
        // the records it covers, so a log written to while it is read is never exported
        // with a checkpoint over records it lacks (which verification would call a
        // truncated log); records written meanwhile are exported as not yet signed.
        let (checkpoints, records): (Vec<Row>, Vec<Row>) = match self {
            Sink::Sqlite(pool, _) => (
                sqlx::query_as("SELECT instance, size, note FROM audit_checkpoints ORDER BY id")
                    .fetch_all(pool)
                    .await
                    .map_err(SinkError::SqlitePool)?,
                sqlx::query_as(sqlite_schema::EXPORT)
                    .fetch_all(pool)
                    .await
                    .map_err(SinkError::SqlitePool)?,
            ),
            Sink::Postgres(pool) => (
                sqlx::query_as("SELECT instance, size, note FROM audit_checkpoints ORDER BY id")
                    .fetch_all(pool)
                    .await
                    .map_err(SinkError::Postgres)?,
                sqlx::query_as(
                    "SELECT instance, seq, line FROM audit_records ORDER BY instance, seq",
                )
                .fetch_all(pool)
                .await
                .map_err(SinkError::Postgres)?,
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
    // Written on a blocking thread and waited for: `tokio::fs::File` reports a write done
    // once it has handed it to a background thread, so a file dropped after `write_all`
    // lost the write's error (a full disk) and let the next append overtake it.
    let (path, bytes) = (path.to_path_buf(), bytes.to_vec());
    tokio::task::spawn_blocking(move || append_file_blocking(&path, &bytes, durability))
        .await
        .map_err(|e| SinkError::Io(std::io::Error::other(e)))?
}

/// Appends `bytes` to the file at `path`, all or none: a write cut short (the disk full)
/// is cut off again, so the file holds whole lines only and the retry starts a line.
///
/// Appenders take the file's lock in turn (the gateway and `writ` commands share the file),
/// so an unfinished last line is never one being written: its writer died in the middle
/// of the write (SIGKILL), before anything was acknowledged. It is cut off before the next
/// line is written, which would otherwise be glued to it and unreadable too.
fn append_file_blocking(
    path: &Path,
    bytes: &[u8],
    durability: Durability,
) -> Result<(), SinkError> {
    use std::io::Write;
    let mut file = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .read(true)
        .open(path)?;
    file.lock()?;
    let length = file.metadata()?.len();
    let before = whole_lines_end(&file, length)?;
    if before < length {
        file.set_len(before)?;
    }
    if bytes.is_empty() {
        return Ok(());
    }
    let written = file.write_all(bytes).and_then(|()| match durability {
        Durability::Synced => file.sync_data(),
        Durability::Committed => Ok(()),
    });
    if let Err(e) = written {
        // Should even this fail, the fragment is cut off by the next append.
        let _ = file.set_len(before);
        return Err(e.into());
    }
    Ok(())
}

/// Where the last whole line of the first `length` bytes of `file` ends (after its `\n`),
/// 0 when there is none.
fn whole_lines_end(file: &std::fs::File, length: u64) -> std::io::Result<u64> {
    use std::os::unix::fs::FileExt;
    let mut end = length;
    let mut chunk = [0u8; 4096];
    while end > 0 {
        let start = end.saturating_sub(chunk.len() as u64);
        let part = &mut chunk[..usize::try_from(end - start).unwrap_or(0)];
        file.read_exact_at(part, start)?;
        if let Some(at) = part.iter().rposition(|b| *b == b'\n') {
            return Ok(start + at as u64 + 1);
        }
        end = start;
    }
    Ok(0)
}

/// One non-blank line of an export, as [`split_export`] classifies it.
pub(crate) enum ExportLine {
    /// A checkpoint line.
    Checkpoint(CheckpointLine),
    /// A record line of this instance; read leniently, so a damaged line still lands in
    /// its log, where verification names it. Empty when the line names no instance.
    Record(String),
}

impl ExportLine {
    /// Classifies `line`; `None` when it is blank.
    pub(crate) fn read(line: &str) -> Option<Self> {
        if line.trim().is_empty() {
            return None;
        }
        if let Ok(cp) = serde_json::from_str::<CheckpointLine>(line) {
            return Some(Self::Checkpoint(cp));
        }
        let instance = serde_json::from_str::<serde_json::Value>(line)
            .ok()
            .and_then(|v| v.get("instance")?.as_str().map(str::to_string))
            .unwrap_or_default();
        Some(Self::Record(instance))
    }
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
    for line in lines {
        match ExportLine::read(line) {
            None => {}
            Some(ExportLine::Checkpoint(cp)) => {
                let i = slot(&mut out, &cp.instance);
                out[i].2.push(cp.checkpoint);
            }
            Some(ExportLine::Record(instance)) => {
                let i = slot(&mut out, &instance);
                out[i].1.push(line.clone());
            }
        }
    }
    out
}

#[cfg(test)]
mod tests;
