//! The PostgreSQL sink against a real PostgreSQL at 127.0.0.1:5432 (database `test`, user
//! `postgres`, trust auth): it stores and exports exactly what the SQLite and file sinks
//! do, its export verifies, and a database that cannot be reached fails fast without the
//! URL's password in the error.
//!
//! The database is shared and keeps its rows between runs, so every test writes under an
//! instance id of its own (random hex) and looks only at that instance's lines.
//!
//! Needs PostgreSQL (panics if it cannot be reached; never skips). Run with
//! `cargo test -p writ-audit --test postgres`.
#![allow(clippy::unwrap_used)] // test helpers outside #[test] fns

use std::net::{Ipv4Addr, SocketAddr, TcpStream};
use std::time::{Duration, Instant, UNIX_EPOCH};

use writ_audit::sink::{CheckpointLine, Sink, split_export};
use writ_audit::{AuditKey, AuditLog, AuditRecord, Decision, Kind, LimitHit, Usage, verify_log};

const PG_URL: &str = "postgres://postgres@127.0.0.1:5432/test";
const KEY_NAME: &str = "writ-audit-test";

/// A fresh instance id, unique to this run.
fn instance() -> String {
    format!("pgtest-{:016x}", rand::random::<u64>())
}

/// The sink on the real database, its tables created. Panics, saying what is needed, if
/// PostgreSQL cannot be reached.
async fn postgres() -> Sink {
    let addr: SocketAddr = "127.0.0.1:5432".parse().unwrap();
    if let Err(e) = TcpStream::connect_timeout(&addr, Duration::from_secs(3)) {
        panic!(
            "these tests need PostgreSQL at {PG_URL} (trust auth, database `test`); \
             nothing accepts connections on {addr}: {e}"
        );
    }
    let sink = Sink::postgres(PG_URL)
        .await
        .unwrap_or_else(|e| panic!("PostgreSQL at {PG_URL}: {e}"));
    // Tests run in parallel and `CREATE TABLE IF NOT EXISTS` can race with itself on a
    // fresh database; the loser's retry finds the tables there.
    let mut attempt = 0;
    while let Err(e) = sink.prepare().await {
        attempt += 1;
        assert!(
            attempt < 3,
            "PostgreSQL at {PG_URL} is reachable but the audit tables cannot be created: {e}"
        );
    }
    sink
}

/// A realistic record `i` (fields vary with `i`; some text outside ASCII and needing
/// JSON escapes, to catch any re-encoding by a sink).
fn record(i: u64) -> AuditRecord {
    let at = UNIX_EPOCH + Duration::from_millis(1_772_366_400_000 + i * 250);
    let mut r = AuditRecord::new(
        if i % 3 == 2 {
            Kind::RequestDenied
        } else {
            Kind::RequestAllowed
        },
        at,
    );
    r.tenant = Some("acme".into());
    r.agent = Some(format!("support-bot-{}", i % 2));
    r.writ = Some(format!("{:032x}", u128::from(i) * 0x9e37_79b9_7f4a_7c15));
    r.upstream = Some("openai".into());
    r.model = Some("gpt-4o-mini".into());
    r.operation = Some("chat.completions".into());
    if i % 3 == 2 {
        r.status = Some(429);
        r.decision = Some(Decision {
            check: None,
            limit: Some(LimitHit {
                scope: "tenant:acme".into(),
                dimension: "tokens".into(),
            }),
            code: Some("rate_limited".into()),
        });
    } else {
        r.status = Some(200);
        r.usage = Some(Usage {
            input_tokens: 100 + i,
            output_tokens: 20 + i,
            cached_tokens: i.is_multiple_of(2).then_some(64),
        });
        r.cost_usd_micros = Some(37 * (i + 1));
    }
    r.latency_ms = Some(40 + i);
    let mut detail = serde_json::Map::new();
    detail.insert(
        "note".into(),
        serde_json::json!("naïve “quotes” \"escaped\" \\ tab\t ✓ 日本"),
    );
    detail.insert("i".into(), serde_json::json!(i));
    r.detail = Some(detail);
    r
}

/// What one test writes: record batches, each followed by the checkpoint the log would
/// sign after it.
struct Written {
    instance: String,
    origin: String,
    key: AuditKey,
    /// Per batch: first seq, its lines, the checkpoint (size, note) after it.
    batches: Vec<(u64, Vec<String>, (u64, String))>,
}

/// Builds a log of `sizes.iter().sum()` records in batches of `sizes`.
fn build(sizes: &[u64]) -> Written {
    let instance = instance();
    let origin = format!("writ.test/audit/{instance}");
    let key = AuditKey::from_seed(KEY_NAME, &[7; 32]).unwrap();
    let mut log = AuditLog::new(instance.clone(), origin.clone()).unwrap();
    let mut batches = Vec::new();
    for &n in sizes {
        let first = log.size();
        let lines: Vec<String> = (first..first + n)
            .map(|i| log.append(record(i)).0)
            .collect();
        let note = log.checkpoint(&key);
        batches.push((first, lines, (log.size(), note)));
    }
    Written {
        instance,
        origin,
        key,
        batches,
    }
}

async fn write(sink: &Sink, w: &Written) {
    for (first, lines, (size, note)) in &w.batches {
        sink.append(&w.instance, *first, lines).await.unwrap();
        sink.put_checkpoint(&w.instance, *size, note).await.unwrap();
    }
}

/// The lines of `instance` in an export (record lines and checkpoint lines), in order.
fn lines_of(export: &[String], instance: &str) -> Vec<String> {
    export
        .iter()
        .filter(|line| {
            if let Ok(cp) = serde_json::from_str::<CheckpointLine>(line) {
                return cp.instance == instance;
            }
            let v: serde_json::Value = serde_json::from_str(line).unwrap();
            v["instance"] == instance
        })
        .cloned()
        .collect()
}

#[tokio::test]
async fn postgres_exports_exactly_what_sqlite_and_file_do_and_it_verifies() {
    let pg = postgres().await;
    let dir = tempfile::tempdir().unwrap();
    let sqlite = Sink::sqlite(&dir.path().join("audit.db")).await.unwrap();
    let file = Sink::file(dir.path().join("audit.jsonl"));
    let w = build(&[1, 3, 64, 2]);
    for sink in [&pg, &sqlite, &file] {
        write(sink, &w).await;
    }

    let from_sqlite = sqlite.export().await.unwrap();
    let from_file = file.export().await.unwrap();
    // The shared database holds other runs' instances too: compare ours.
    let from_pg = lines_of(&pg.export().await.unwrap(), &w.instance);
    assert_eq!(from_pg.len(), 70 + 4, "70 records and 4 checkpoints");
    assert_eq!(from_pg, from_sqlite, "PostgreSQL and SQLite exports differ");
    assert_eq!(from_pg, from_file, "PostgreSQL and file exports differ");

    // Byte for byte the lines appended, each checkpoint right after the records it covers.
    let mut expected = Vec::new();
    for (_, lines, (size, note)) in &w.batches {
        expected.extend(lines.iter().cloned());
        expected.push(
            serde_json::to_string(&CheckpointLine {
                checkpoint: note.clone(),
                instance: w.instance.clone(),
                size: *size,
            })
            .unwrap(),
        );
    }
    assert_eq!(from_pg, expected);

    // The export verifies offline.
    let logs = split_export(&from_pg);
    assert_eq!(logs.len(), 1);
    let (instance, records, checkpoints) = &logs[0];
    assert_eq!(instance, &w.instance);
    let records: Vec<&str> = records.iter().map(String::as_str).collect();
    let checkpoints: Vec<&str> = checkpoints.iter().map(String::as_str).collect();
    let summary = verify_log(
        &records,
        &checkpoints,
        &w.key.verifier_key(),
        &w.origin,
        Some(70),
    )
    .unwrap();
    assert_eq!(summary.records, 70);
    assert_eq!(summary.checkpoints, 4);
    assert_eq!(summary.unsigned_records(), 0);
    assert_eq!(summary.instance.as_deref(), Some(w.instance.as_str()));
}

#[tokio::test]
async fn a_batch_is_stored_all_or_none_in_postgres_as_in_sqlite() {
    let pg = postgres().await;
    let dir = tempfile::tempdir().unwrap();
    let sqlite = Sink::sqlite(&dir.path().join("audit.db")).await.unwrap();
    let w = build(&[4]);
    let (_, lines, _) = &w.batches[0];
    for sink in [&pg, &sqlite] {
        sink.append(&w.instance, 0, &lines[..2]).await.unwrap();
        // Seqs 1..4: seq 1 is taken, so none of 2 and 3 may be stored either.
        let err = sink.append(&w.instance, 1, &lines[1..]).await;
        assert!(err.is_err(), "a batch overlapping stored seqs is refused");
    }
    let from_sqlite = sqlite.export().await.unwrap();
    let from_pg = lines_of(&pg.export().await.unwrap(), &w.instance);
    assert_eq!(from_pg, lines[..2].to_vec());
    assert_eq!(from_pg, from_sqlite);
    // And once the rest is appended where it belongs, both hold the whole log.
    for sink in [&pg, &sqlite] {
        sink.append(&w.instance, 2, &lines[2..]).await.unwrap();
    }
    let from_pg = lines_of(&pg.export().await.unwrap(), &w.instance);
    assert_eq!(&from_pg, lines);
    assert_eq!(from_pg, sqlite.export().await.unwrap());
}

#[tokio::test]
async fn postgres_reads_only_what_was_appended_since_the_last_reading() {
    let pg = postgres().await;
    let w = build(&[3, 2]);
    let mut marks = writ_audit::sink::ReadMarks::new();
    // The shared database's other rows are read once, here.
    pg.records_since(&mut marks, 1_000_000).await.unwrap();
    let (_, first, _) = &w.batches[0];
    pg.append(&w.instance, 0, first).await.unwrap();
    let read = pg.records_since(&mut marks, 1_000_000).await.unwrap();
    assert_eq!(&lines_of(&read, &w.instance), first);
    assert_eq!(marks[&w.instance], 3);
    let (_, second, _) = &w.batches[1];
    pg.append(&w.instance, 3, second).await.unwrap();
    let read = pg.records_since(&mut marks, 1_000_000).await.unwrap();
    assert_eq!(&lines_of(&read, &w.instance), second, "only the new lines");
    assert_eq!(marks[&w.instance], 5);
    let again = pg.records_since(&mut marks, 1_000_000).await.unwrap();
    assert!(lines_of(&again, &w.instance).is_empty());
}

#[tokio::test]
async fn postgres_probes_ok_when_reachable() {
    let pg = postgres().await;
    let start = Instant::now();
    pg.probe().await.unwrap();
    assert!(start.elapsed() < Duration::from_secs(2));
}

#[tokio::test]
async fn an_unreachable_postgres_fails_fast_without_naming_the_password() {
    // A port nothing listens on: bound, then released.
    let port = std::net::TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let url = format!("postgres://postgres:sekrit-pw@127.0.0.1:{port}/test");
    // The pool connects lazily, so opening it succeeds (after a best-effort attempt to
    // create the tables, bounded by the 2 s acquire timeout).
    let start = Instant::now();
    let sink = Sink::postgres(&url).await.unwrap();
    assert!(
        start.elapsed() < Duration::from_secs(5),
        "opening took {:?}",
        start.elapsed()
    );

    let start = Instant::now();
    let probe = sink.probe().await;
    let took = start.elapsed();
    let err = probe.expect_err("probe of a closed port fails");
    assert!(took < Duration::from_secs(5), "probe took {took:?}");
    eprintln!("probe failed after {took:?}: {err}");

    let w = build(&[2]);
    let start = Instant::now();
    let append = sink.append(&w.instance, 0, &w.batches[0].1).await;
    let took = start.elapsed();
    let append_err = append.expect_err("append to a closed port fails");
    assert!(took < Duration::from_secs(5), "append took {took:?}");
    eprintln!("append failed after {took:?}: {append_err}");

    let checkpoint_err = sink
        .put_checkpoint(&w.instance, 2, &w.batches[0].2.1)
        .await
        .expect_err("checkpoint to a closed port fails");
    let export_err = sink
        .export()
        .await
        .expect_err("export from a closed port fails");

    for e in [&err, &append_err, &checkpoint_err, &export_err] {
        for text in [e.to_string(), format!("{e:?}")] {
            assert!(!text.contains("sekrit-pw"), "the password leaks: {text}");
            assert!(!text.contains(&url), "the URL leaks: {text}");
        }
    }
}

#[tokio::test]
async fn an_invalid_postgres_url_is_refused_without_quoting_it() {
    let err = Sink::postgres("postgres://postgres:sekrit-pw@127.0.0.1:notaport/test")
        .await
        .expect_err("not a valid URL");
    assert!(!err.to_string().contains("sekrit-pw"), "{err}");
}

/// `Committed` sessions commit records without waiting for the WAL flush; `Synced` ones
/// keep the server's setting (`on` here); both store and export the same lines, and a
/// checkpoint commits under `Committed` too.
#[tokio::test]
async fn durability_sets_the_sessions_synchronous_commit() {
    use writ_audit::sink::Durability;
    postgres().await; // tables there, or a clear panic
    for (durability, expected) in [(Durability::Committed, "off"), (Durability::Synced, "on")] {
        let sink = Sink::postgres_with(PG_URL, durability).await.unwrap();
        let Sink::Postgres(pool) = &sink else {
            panic!("not PostgreSQL")
        };
        let setting: String = sqlx::query_scalar("SHOW synchronous_commit")
            .fetch_one(pool)
            .await
            .unwrap();
        assert_eq!(setting, expected, "{durability:?}");
        let inst = instance();
        let lines: Vec<String> = (0..3).map(|i| format!("{{\"n\":{i}}}")).collect();
        sink.append(&inst, 0, &lines).await.unwrap();
        sink.put_checkpoint(&inst, 3, "note").await.unwrap();
        sink.sync().await.unwrap();
        let stored: Vec<String> =
            sqlx::query_scalar("SELECT line FROM audit_records WHERE instance = $1 ORDER BY seq")
                .bind(&inst)
                .fetch_all(pool)
                .await
                .unwrap();
        assert_eq!(stored, lines);
        let size: i64 =
            sqlx::query_scalar("SELECT size FROM audit_checkpoints WHERE instance = $1")
                .bind(&inst)
                .fetch_one(pool)
                .await
                .unwrap();
        assert_eq!(size, 3);
        sqlx::query("DELETE FROM audit_records WHERE instance = $1")
            .bind(&inst)
            .execute(pool)
            .await
            .unwrap();
        sqlx::query("DELETE FROM audit_checkpoints WHERE instance = $1")
            .bind(&inst)
            .execute(pool)
            .await
            .unwrap();
    }
}

/// A write that does not start where the instance's stored records end is refused whole,
/// saying where they end: a retry of a batch that was committed though its answer was lost,
/// or a write after the server lost acknowledged records (a gap). A checkpoint is stored
/// only over exactly the records held.
#[tokio::test]
async fn a_write_or_checkpoint_out_of_step_with_the_stored_log_says_where_it_ends() {
    use writ_audit::sink::SinkError;
    let sink = postgres().await;
    let w = build(&[4]);
    let (_, lines, (_, note)) = &w.batches[0];
    sink.append(&w.instance, 0, &lines[..2]).await.unwrap();
    let out_of_step = |r: Result<(), SinkError>| match r {
        Err(SinkError::NotContiguous { held, first }) => (held, first),
        other => panic!("expected NotContiguous, got {other:?}"),
    };
    // The same batch again (its first answer lost): nothing twice.
    assert_eq!(
        out_of_step(sink.append(&w.instance, 0, &lines[..2]).await),
        (2, 0)
    );
    // Past the end (records lost): no gap.
    assert_eq!(
        out_of_step(sink.append(&w.instance, 3, &lines[3..]).await),
        (2, 3)
    );
    assert_eq!(
        out_of_step(sink.put_checkpoint(&w.instance, 4, note).await),
        (2, 4)
    );
    assert_eq!(
        lines_of(&sink.export().await.unwrap(), &w.instance),
        lines[..2].to_vec()
    );
    // Where it ends: stored, and the checkpoint over all of it too.
    sink.append(&w.instance, 2, &lines[2..]).await.unwrap();
    sink.put_checkpoint(&w.instance, 4, note).await.unwrap();
    let stored = lines_of(&sink.export().await.unwrap(), &w.instance);
    assert_eq!(stored[..4], lines[..]);
    assert_eq!(
        stored.len(),
        5,
        "the records and one checkpoint: {stored:?}"
    );
}

/// A checkpoint stored after more records were appended (the writer goes on writing while
/// a checkpoint commits) is stored over the records it covers; one over more records than
/// are held is refused. The export places each checkpoint after its records and verifies.
#[tokio::test]
async fn a_checkpoint_is_stored_over_its_records_while_more_follow() {
    use writ_audit::sink::SinkError;
    let sink = postgres().await;
    let w = build(&[3, 2]);
    for (first, lines, _) in &w.batches {
        sink.append(&w.instance, *first, lines).await.unwrap();
    }
    for (_, _, (size, note)) in &w.batches {
        sink.put_checkpoint(&w.instance, *size, note).await.unwrap();
    }
    let (_, _, (_, last)) = &w.batches[1];
    match sink.put_checkpoint(&w.instance, 6, last).await {
        Err(SinkError::NotContiguous { held, first }) => assert_eq!((held, first), (5, 6)),
        other => panic!("expected NotContiguous, got {other:?}"),
    }
    let export = lines_of(&sink.export().await.unwrap(), &w.instance);
    let mut expected = Vec::new();
    for (_, lines, (size, note)) in &w.batches {
        expected.extend(lines.iter().cloned());
        expected.push(
            serde_json::to_string(&CheckpointLine {
                checkpoint: note.clone(),
                instance: w.instance.clone(),
                size: *size,
            })
            .unwrap(),
        );
    }
    assert_eq!(export, expected);
    let logs = split_export(&export);
    let (_, records, checkpoints) = &logs[0];
    let records: Vec<&str> = records.iter().map(String::as_str).collect();
    let checkpoints: Vec<&str> = checkpoints.iter().map(String::as_str).collect();
    let summary = verify_log(
        &records,
        &checkpoints,
        &w.key.verifier_key(),
        &w.origin,
        Some(5),
    )
    .unwrap();
    assert_eq!(summary.checkpoints, 2);
    assert_eq!(summary.unsigned_records(), 0);
}
