//! Tests of the sinks: SQLite, the JSON-lines file, and the export format.

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
    assert!(
        matches!(
            sink.append("inst", (n - 10) as u64, &clash).await,
            Err(SinkError::Sqlite(rusqlite::Error::SqliteFailure(f, _)))
                if f.code == rusqlite::ErrorCode::ConstraintViolation
        ),
        "a clashing batch is a constraint violation"
    );
    assert_eq!(sink.export().await.unwrap_or_default(), lines);
    // A short one too.
    let short: Vec<String> = (0..5).map(|i| format!("{{\"short\":{i}}}")).collect();
    assert!(
        matches!(
            sink.append("inst", (n - 2) as u64, &short).await,
            Err(SinkError::Sqlite(rusqlite::Error::SqliteFailure(f, _)))
                if f.code == rusqlite::ErrorCode::ConstraintViolation
        ),
        "a clashing batch is a constraint violation"
    );
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
    assert!(matches!(
        gone.sync().await,
        Err(SinkError::Io(e)) if e.kind() == std::io::ErrorKind::NotFound
    ));
}

/// A PostgreSQL URL that does not parse is refused by name, without quoting it (it may
/// hold a password).
#[tokio::test]
async fn an_unparseable_postgres_url_is_refused_without_quoting_it() {
    let err = Sink::postgres("postgres://user:hunter2@db:not-a-port/audit")
        .await
        .err()
        .unwrap_or_else(|| panic!("a URL with a bad port was accepted"));
    assert!(matches!(err, SinkError::InvalidPostgresUrl), "{err:?}");
    assert!(!err.to_string().contains("hunter2"));
}

/// A sink says what and where it is, never a password.
#[tokio::test]
async fn a_sink_describes_itself_without_its_password() {
    let pg = Sink::postgres("postgres://user:hunter2@127.0.0.1:1/audit")
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(pg.describe(), "PostgreSQL at 127.0.0.1:1/audit");
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let path = dir.path().join("audit.db");
    let sqlite = Sink::sqlite(&path).await.unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(sqlite.describe(), format!("SQLite at {}", path.display()));
    let file = Sink::file(dir.path().join("audit.jsonl"));
    assert!(file.describe().starts_with("file "));
}

/// A write the device refuses is reported, for records and checkpoints alike. It was
/// lost before: the write ended on a background thread after `append` returned `Ok`.
#[tokio::test]
async fn a_file_sink_reports_a_full_device() {
    let sink = Sink::file_with(PathBuf::from("/dev/full"), Durability::Committed);
    let lines = vec![r#"{"v":1}"#.to_string()];
    let err = sink.append("i", 0, &lines).await.err();
    assert!(
        // 28: ENOSPC, no space left on device.
        matches!(&err, Some(SinkError::Io(io)) if io.raw_os_error() == Some(28)),
        "{err:?}"
    );
    let err = sink.put_checkpoint("i", 1, "note").await.err();
    assert!(matches!(&err, Some(SinkError::Io(_))), "{err:?}");
}

/// A last line left unfinished (its writer killed in the middle of a write) is cut off
/// before the next append, which starts a line of its own; whole lines are kept.
#[tokio::test]
async fn a_file_sink_cuts_off_an_unfinished_last_line_before_appending() {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let path = dir.path().join("audit.jsonl");
    let whole = format!("{}\n", "x".repeat(5000));
    let torn = format!("{whole}{{\"v\":1,\"seq\":7,\"inst");
    std::fs::write(&path, &torn).unwrap_or_else(|e| panic!("{e}"));
    let sink = Sink::file_with(path.clone(), Durability::Committed);
    sink.append("i", 0, &[r#"{"v":1}"#.to_string()])
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(text, format!("{whole}{{\"v\":1}}\n"));
    // A file of one unfinished line is emptied; a probe cuts it off too.
    std::fs::write(&path, "{\"v\":1,").unwrap_or_else(|e| panic!("{e}"));
    sink.probe().await.unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(std::fs::read_to_string(&path).unwrap_or_default(), "");
}

/// A file sink whose file cannot be read reports the I/O error as its source.
#[tokio::test]
async fn a_file_sink_reports_io_errors_as_such() {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let sink = Sink::file(dir.path().join("none.jsonl"));
    let err = sink
        .export()
        .await
        .err()
        .unwrap_or_else(|| panic!("a missing file exported"));
    let SinkError::Io(io) = &err else {
        panic!("not an I/O error: {err:?}")
    };
    assert_eq!(io.kind(), std::io::ErrorKind::NotFound);
    assert!(std::error::Error::source(&err).is_some());
}
