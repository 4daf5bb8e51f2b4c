//! A SQLite sink's checkpoint reads into memory the WAL blocks the writer will write over
//! next, so that a commit does not wait for the disk when those blocks have left memory
//! (hosts that reclaim page cache they see as cold take a WAL's blocks within seconds).
//!
//! The database lives under the target directory (`CARGO_TARGET_TMPDIR`), on a disk: on a
//! memory file system nothing is ever read back, and the first half would fail.
#![allow(clippy::unwrap_used)]

use std::path::Path;
use std::process::Command;

use writ_audit::sink::{Durability, Sink};

/// Bytes the calling thread has had read from disk (`/proc/thread-self/io`).
fn thread_read_bytes() -> u64 {
    let io = std::fs::read_to_string("/proc/thread-self/io").unwrap();
    io.lines()
        .find_map(|l| l.strip_prefix("read_bytes: "))
        .and_then(|n| n.trim().parse().ok())
        .unwrap()
}

/// Drops the file's blocks from the page cache (`posix_fadvise(POSIX_FADV_DONTNEED)`, as
/// GNU dd asks for it), as a host reclaiming memory does.
fn evict(path: &Path) {
    let status = Command::new("dd")
        .arg(format!("if={}", path.display()))
        .args(["iflag=nocache", "count=0", "status=none"])
        .status()
        .unwrap();
    assert!(status.success(), "dd could not drop {}", path.display());
}

#[tokio::test]
async fn a_checkpoint_reads_ahead_the_wal_blocks_the_writer_will_write_over() {
    let dir = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).unwrap();
    let path = dir.path().join("audit.db");
    let wal = dir.path().join("audit.db-wal");
    let sink = Sink::sqlite_with(&path, Durability::Committed)
        .await
        .unwrap();
    let Sink::Sqlite(_, writer) = &sink else {
        panic!("not SQLite")
    };
    // Records of about a page each, one commit each, as strict requests commit them.
    let line = "x".repeat(3_000);
    let mut seq = 0u64;
    let mut write = |n: u64| {
        for _ in 0..n {
            writer
                .append("inst", seq, std::slice::from_ref(&line))
                .unwrap();
            seq += 1;
        }
    };
    write(300);

    // The blocks leave memory after the checkpoint: the WAL starts over on the next
    // commit, and the writer reads back the blocks its frames cover in part.
    sink.sync_blocking().unwrap();
    evict(&wal);
    let before = thread_read_bytes();
    write(50);
    let unready = thread_read_bytes() - before;
    assert!(
        unready > 0,
        "writing over a WAL whose blocks left memory read nothing from disk: is {} on a \
         memory file system?",
        dir.path().display()
    );

    // They leave memory before the checkpoint: it reads them back, off the writer's path.
    sink.sync_blocking().unwrap();
    evict(&wal);
    sink.sync_blocking().unwrap();
    let before = thread_read_bytes();
    write(50);
    assert_eq!(
        thread_read_bytes() - before,
        0,
        "the writer read WAL blocks from disk the checkpoint should have read ahead \
         (without it: {unready} bytes)"
    );
}
