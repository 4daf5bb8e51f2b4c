//! Tests of the SQLite sink's rowid-keyed schema: the migration of a database of the
//! first schema, the order records and instances are read in, and a log verified after
//! many checkpoints.
#![allow(clippy::unwrap_used)]

use std::path::Path;
use std::time::{Duration, UNIX_EPOCH};

use super::*;
use crate::sink::{Durability, Sink, SinkError, SqliteWriter};
use crate::verify_export::verify_export;
use crate::{AuditKey, AuditLog, AuditRecord, Kind};

const FIRST_SCHEMA: &[&str] = &[
    "PRAGMA journal_mode = WAL",
    "CREATE TABLE audit_records (instance TEXT NOT NULL, seq INTEGER NOT NULL, line TEXT NOT NULL, PRIMARY KEY (instance, seq))",
    "CREATE TABLE audit_checkpoints (id INTEGER PRIMARY KEY AUTOINCREMENT, instance TEXT NOT NULL, size INTEGER NOT NULL, note TEXT NOT NULL)",
    "CREATE TABLE audit_probe (id INTEGER PRIMARY KEY)",
];

fn origin(instance: &str) -> String {
    format!("writ.test/audit/{instance}")
}

fn key() -> AuditKey {
    AuditKey::from_seed("writ.test", &[7; 32]).unwrap()
}

/// An instance's log, signed as the gateway signs it.
struct Log {
    log: AuditLog,
    key: AuditKey,
}

impl Log {
    fn new(instance: &str) -> Self {
        Self {
            log: AuditLog::new(instance, origin(instance)).unwrap(),
            key: key(),
        }
    }

    /// `n` more record lines.
    fn lines(&mut self, n: u64) -> Vec<String> {
        (0..n)
            .map(|i| {
                let mut r = AuditRecord::new(
                    Kind::RequestAllowed,
                    UNIX_EPOCH + Duration::from_secs(1_772_366_400 + i),
                );
                r.agent = Some(format!("agent-{}", i % 3));
                self.log.append(r).0
            })
            .collect()
    }

    fn checkpoint(&self) -> (u64, String) {
        (self.log.size(), self.log.checkpoint(&self.key))
    }
}

async fn verified(sink: &Sink) -> Vec<String> {
    let lines = sink.export().await.unwrap();
    let verdict = verify_export(&lines, &key().verifier_key(), origin, &[]);
    assert!(verdict.is_ok(), "{verdict:?}");
    lines
}

/// A database of the first schema, as a gateway before this one left it: two instances'
/// records and checkpoints, `b` written first.
fn first_schema_database(path: &Path, a: &mut Log, b: &mut Log) -> Vec<(String, String)> {
    let conn = rusqlite::Connection::open(path).unwrap();
    for statement in FIRST_SCHEMA {
        conn.query_row(statement, [], |_| Ok(()))
            .or_else(|e| match e {
                rusqlite::Error::QueryReturnedNoRows => Ok(()),
                e => Err(e),
            })
            .unwrap();
    }
    let mut written = Vec::new();
    for (name, n) in [("b", 7), ("a", 5), ("b", 4)] {
        let log = if name == "a" { &mut *a } else { &mut *b };
        let first = log.log.size();
        for (i, line) in log.lines(n).into_iter().enumerate() {
            conn.execute(
                "INSERT INTO audit_records (instance, seq, line) VALUES (?1, ?2, ?3)",
                rusqlite::params![name, first + i as u64, line],
            )
            .unwrap();
            written.push((name.to_string(), line));
        }
        let (size, note) = log.checkpoint();
        conn.execute(
            "INSERT INTO audit_checkpoints (instance, size, note) VALUES (?1, ?2, ?3)",
            rusqlite::params![name, size, note],
        )
        .unwrap();
    }
    written
}

fn columns(path: &Path) -> (i64, Vec<String>) {
    let conn = rusqlite::Connection::open(path).unwrap();
    let version = conn
        .query_row("PRAGMA user_version", [], |r| r.get(0))
        .unwrap();
    let mut names = conn
        .prepare("SELECT name FROM pragma_table_info('audit_records')")
        .unwrap();
    let names = names
        .query_map([], |r| r.get(0))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    (version, names)
}

/// A database of the first schema opens migrated: every record kept, exported per
/// instance in order, it verifies, new records and checkpoints append to its instances
/// and a new instance's, and the whole verifies again; opening it again changes nothing.
#[tokio::test]
async fn an_old_database_is_migrated_verifies_and_takes_new_records() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("audit.db");
    let (mut a, mut b) = (Log::new("a"), Log::new("b"));
    let written = first_schema_database(&path, &mut a, &mut b);
    assert_eq!(columns(&path).0, 0);

    let sink = Sink::sqlite(&path).await.unwrap();
    assert_eq!(
        columns(&path),
        (
            2,
            vec!["id".into(), "instance".into(), "seq".into(), "line".into()]
        )
    );
    let lines = verified(&sink).await;
    // Per instance by name, each in order, each checkpoint after the record it covers.
    let records: Vec<&String> = lines.iter().filter(|l| !l.contains("checkpoint")).collect();
    let expected: Vec<&String> = ["a", "b"]
        .iter()
        .flat_map(|i| written.iter().filter(move |(n, _)| n == i).map(|(_, l)| l))
        .collect();
    assert_eq!(records, expected);
    assert_eq!(sink.instances().await.unwrap(), vec!["a", "b"]);
    let page = sink.records_before("b", None, 3).await.unwrap();
    assert_eq!(page.iter().map(|(n, _)| *n).collect::<Vec<_>>(), [10, 9, 8]);

    // New records of the old instances, and of a new one, go on from where they were.
    let mut c = Log::new("c");
    for (name, log) in [("a", &mut a), ("b", &mut b), ("c", &mut c)] {
        let first = log.log.size();
        sink.append(name, first, &log.lines(3)).await.unwrap();
        sink.append(name, first + 3, &log.lines(1)).await.unwrap();
        let (size, note) = log.checkpoint();
        sink.put_checkpoint(name, size, &note).await.unwrap();
    }
    // A record already there is refused, as the pair key refused it.
    let again = sink.append("a", 2, &["{}".to_string()]).await;
    assert!(
        matches!(
            again,
            Err(SinkError::Sqlite(rusqlite::Error::SqliteFailure(f, _)))
                if f.code == rusqlite::ErrorCode::ConstraintViolation
        ),
        "{again:?}"
    );
    let lines = verified(&sink).await;
    assert_eq!(sink.instances().await.unwrap(), vec!["a", "b", "c"]);
    let after = sink.records_after("a", Some(3), 100).await.unwrap();
    assert_eq!(
        after.iter().map(|(n, _)| *n).collect::<Vec<_>>(),
        [4, 5, 6, 7, 8]
    );
    drop(sink);

    // Opening it again migrates nothing: the same export.
    let sink = Sink::sqlite(&path).await.unwrap();
    assert_eq!(verified(&sink).await, lines);
}

/// Instances are numbered in the order they first write, and read back by name all the
/// same; a page never runs into the next instance's records, in either direction.
#[tokio::test]
async fn instances_are_read_by_name_whatever_their_numbers() {
    let dir = tempfile::tempdir().unwrap();
    let sink = Sink::sqlite_with(&dir.path().join("audit.db"), Durability::Committed)
        .await
        .unwrap();
    let mut logs = [Log::new("z"), Log::new("m"), Log::new("a")];
    for round in 0..3 {
        for (name, log) in ["z", "m", "a"].into_iter().zip(logs.iter_mut()) {
            let first = log.log.size();
            sink.append(name, first, &log.lines(round + 1))
                .await
                .unwrap();
        }
    }
    for (name, log) in ["z", "m", "a"].into_iter().zip(logs.iter()) {
        let (size, note) = log.checkpoint();
        sink.put_checkpoint(name, size, &note).await.unwrap();
    }
    assert_eq!(sink.instances().await.unwrap(), vec!["a", "m", "z"]);
    let lines = verified(&sink).await;
    let names: Vec<String> = lines
        .iter()
        .filter_map(|l| {
            let v: serde_json::Value = serde_json::from_str(l).ok()?;
            Some(v.get("instance")?.as_str()?.to_string())
        })
        .collect();
    let mut sorted = names.clone();
    sorted.sort();
    assert_eq!(names, sorted, "grouped by instance name");
    let seqs = |page: Vec<(u64, String)>| page.into_iter().map(|(n, _)| n).collect::<Vec<_>>();
    assert_eq!(
        seqs(sink.records_after("m", None, 100).await.unwrap()),
        [0, 1, 2, 3, 4, 5]
    );
    assert_eq!(
        seqs(sink.records_after("m", Some(5), 100).await.unwrap()),
        Vec::<u64>::new()
    );
    assert_eq!(
        seqs(sink.records_before("m", Some(0), 100).await.unwrap()),
        Vec::<u64>::new()
    );
    assert_eq!(
        seqs(sink.records_before("m", Some(2), 100).await.unwrap()),
        [1, 0]
    );
    assert_eq!(
        seqs(sink.records_after("m", Some(u64::MAX), 9).await.unwrap()),
        Vec::<u64>::new()
    );
    assert!(
        sink.records_after("none", None, 9)
            .await
            .unwrap()
            .is_empty()
    );
}

/// A long log written in small commits, checkpointed (and its WAL started over) every
/// hundred records as the writer does, verifies whole afterwards, every checkpoint in it.
#[tokio::test]
async fn a_log_verifies_after_many_checkpoints() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("audit.db");
    let Sink::Sqlite(pool, _) = Sink::sqlite_with(&path, Durability::Committed)
        .await
        .unwrap()
    else {
        panic!("not SQLite")
    };
    let writer = SqliteWriter::open_with(&path, Durability::Committed, 64).unwrap();
    let sink = Sink::Sqlite(pool, writer.clone());
    let mut log = Log::new("long");
    let mut checkpoints = 0;
    while log.log.size() < 3_000 {
        let first = log.log.size();
        sink.append("long", first, &log.lines(1 + first % 2))
            .await
            .unwrap();
        if log.log.size() / 100 > checkpoints {
            checkpoints = log.log.size() / 100;
            let (size, note) = log.checkpoint();
            sink.put_checkpoint("long", size, &note).await.unwrap();
            writer.checkpoint().unwrap();
        }
    }
    let lines = verified(&sink).await;
    assert_eq!(lines.len() as u64, log.log.size() + checkpoints);
    let verdict = verify_export(&lines, &key().verifier_key(), origin, &[]);
    assert_eq!(verdict.instances.len(), 1);
}

/// Two connections preparing one new database at once take turns: both succeed and the
/// tables are made once.
#[test]
fn two_openers_at_once_make_the_tables_once() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("audit.db");
    let openers: Vec<_> = (0..2)
        .map(|_| {
            let path = path.clone();
            std::thread::spawn(move || {
                let mut conn = rusqlite::Connection::open(&path).unwrap();
                conn.busy_timeout(Duration::from_secs(10)).unwrap();
                prepare(&mut conn)
            })
        })
        .collect();
    for opener in openers {
        opener.join().unwrap().unwrap();
    }
    assert_eq!(columns(&path).0, 2);
}

#[test]
fn a_rowid_holds_the_instance_number_above_the_seq() {
    assert_eq!(row_id(0, 5).unwrap(), 5);
    assert_eq!(row_id(3, 7).unwrap(), (3 << 40) + 7);
    assert_eq!(
        row_id((1 << 23) - 1, (1 << 40) - 1).unwrap(),
        i64::MAX,
        "the largest there is"
    );
    assert!(row_id(1, 1 << 40).is_err(), "a seq past 40 bits");
    assert!(
        row_id(1 << 23, 0).is_err(),
        "an instance number past 23 bits"
    );
    assert!(row_id(-1, 0).is_err());
}

/// Batches of every size, those inserted by one statement and those in a transaction of
/// statements, keep their numbering and are refused whole when one record clashes.
#[tokio::test]
async fn batches_of_every_size_are_all_or_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let sink = Sink::sqlite(&dir.path().join("audit.db")).await.unwrap();
    let mut log = Log::new("n");
    for n in 1..=6 {
        let first = log.log.size();
        sink.append("n", first, &log.lines(n)).await.unwrap();
        // The same count again, its last record clashing with the last one written.
        let clash: Vec<String> = (0..n).map(|i| format!("{{\"clash\":{i}}}")).collect();
        assert!(
            sink.append("n", first + n - 1, &clash).await.is_err(),
            "{n}"
        );
    }
    sink.append("n", log.log.size(), &[]).await.unwrap();
    let (size, note) = log.checkpoint();
    sink.put_checkpoint("n", size, &note).await.unwrap();
    let lines = verified(&sink).await;
    assert_eq!(
        lines.len(),
        21 + 1,
        "21 records and a checkpoint, nothing clashing"
    );
}

/// A migration that cannot finish (here: a `seq` past what a rowid holds, whose rowid
/// clashes with the next instance's) leaves the database as it was, every record in its
/// first-schema table: it is one transaction, all or nothing, and the open fails.
#[tokio::test]
async fn a_migration_that_fails_changes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("audit.db");
    let conn = rusqlite::Connection::open(&path).unwrap();
    for statement in &FIRST_SCHEMA[1..] {
        conn.execute(statement, []).unwrap();
    }
    for (instance, seq) in [("a", 0), ("a", (1i64 << 40) + 1), ("b", 1)] {
        conn.execute(
            "INSERT INTO audit_records (instance, seq, line) VALUES (?1, ?2, '{}')",
            rusqlite::params![instance, seq],
        )
        .unwrap();
    }
    drop(conn);
    let opened = Sink::sqlite(&path).await;
    assert!(
        matches!(
            opened,
            Err(SinkError::Sqlite(rusqlite::Error::SqliteFailure(ref f, _)))
                if f.code == rusqlite::ErrorCode::ConstraintViolation
        ),
        "{opened:?}"
    );
    let (version, names) = columns(&path);
    assert_eq!(version, 0);
    assert_eq!(names, ["instance", "seq", "line"]);
    let conn = rusqlite::Connection::open(&path).unwrap();
    let rows: i64 = conn
        .query_row("SELECT count(*) FROM audit_records", [], |r| r.get(0))
        .unwrap();
    assert_eq!(rows, 3);
    let tables: i64 = conn
        .query_row(
            "SELECT count(*) FROM sqlite_master WHERE name IN ('audit_instances', 'audit_records_keyed')",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(tables, 0, "nothing of the migration is left");
}
