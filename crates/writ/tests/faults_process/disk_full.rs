//! The audit file's filesystem fills up (a small tmpfs, filled by the test, then grown):
//! strict mode refuses with 503 `audit_unavailable` and forwards nothing; best-effort mode
//! serves and counts the failed writes; both recover by themselves once there is room, and
//! the log verifies with no torn record and every served request on record.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use serde_json::Value;
use writ_testkit::{MockUpstream, ServeProcess};

use super::{
    GRANT, PATIENCE, assert_no_duplicate_seq, chat, count_by_kind_and_model, file_records, gateway,
    verify,
};

/// A tmpfs of its own, unmounted when dropped.
struct SmallDisk {
    dir: tempfile::TempDir,
}

impl SmallDisk {
    /// Mounts a tmpfs of `size` (as `mount -o size=` takes it) on a fresh directory.
    fn mount(size: &str) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let out = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "writ-faults"])
            .arg(dir.path())
            .output()
            .unwrap_or_else(|e| panic!("mount(8) is needed to make a small filesystem: {e}"));
        assert!(
            out.status.success(),
            "mounting a tmpfs failed ({}): run the test as root, or inside \
             `unshare --user --map-root-user --mount`",
            String::from_utf8_lossy(&out.stderr).trim()
        );
        Self { dir }
    }

    fn path(&self) -> &Path {
        self.dir.path()
    }

    /// Writes a file until the filesystem refuses more: it is full.
    fn fill(&self) {
        let mut filler = std::fs::File::create(self.path().join("filler")).unwrap();
        let chunk = [0u8; 4096];
        loop {
            match filler.write(&chunk) {
                Ok(0) => break,
                Ok(_) => {}
                Err(e) if e.raw_os_error() == Some(28) => break,
                Err(e) => panic!("filling the disk: {e}"),
            }
        }
        // The last bytes of a page, one at a time.
        while filler.write(&[0]).is_ok_and(|n| n == 1) {}
    }

    /// Grows the filesystem to `size`: there is room again.
    fn grow(&self, size: &str) {
        let out = Command::new("mount")
            .args(["-o", &format!("remount,size={size}")])
            .arg(self.path())
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

impl Drop for SmallDisk {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(self.path()).status();
    }
}

/// A gateway auditing to `log` in `mode`, with its admin surface (for `/metrics`) on
/// the data listener.
fn audited_gateway(
    dir: &Path,
    mock: &MockUpstream,
    key: &str,
    mode: &str,
    log: &Path,
) -> ServeProcess {
    gateway(
        dir,
        mock,
        key,
        &format!(
            "[audit]\nmode = \"{mode}\"\nsink = \"file\"\nfile = \"{}\"\n",
            log.display()
        ),
    )
}

/// A metric's value from the gateway's `/metrics`.
async fn metric(server: &ServeProcess, name: &str) -> f64 {
    let text = reqwest::get(server.url("/metrics"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    text.lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(' '))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or_else(|| panic!("no {name} in /metrics:\n{text}"))
}

/// Polls until `check` says yes, panicking with `what` after [`PATIENCE`].
async fn until<F: Future<Output = bool>>(what: &str, mut check: impl FnMut() -> F) {
    let deadline = Instant::now() + PATIENCE;
    while !check().await {
        assert!(Instant::now() < deadline, "{what}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn error_code(body: &Value) -> &str {
    body["error"]["code"].as_str().unwrap_or_default()
}

/// Strict: once the disk is full requests are refused 503 `audit_unavailable` and none
/// reaches the upstream; the log holds whole lines only; with room again the gateway serves
/// by itself and the log verifies with every served request's decision on record once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn strict_audit_on_a_full_disk_refuses_then_recovers_without_a_torn_record() {
    let disk = SmallDisk::mount("1m");
    let log: PathBuf = disk.path().join("audit.jsonl");
    let dir = tempfile::tempdir().unwrap();
    let key = writ_mock::random_key();
    let mock = MockUpstream::start(key.expose()).await;
    let server = audited_gateway(dir.path(), &mock, key.expose(), "strict", &log);
    let writ = server.mint(GRANT, "5m");
    let (client, url) = (reqwest::Client::new(), server.url(""));
    let mut served = Vec::new();
    for n in 0..3 {
        let model = format!("before-{n}");
        let (status, body) = chat(&client, &url, &writ, &model).await.unwrap();
        assert_eq!(status, 200, "{body}");
        served.push(model);
    }

    disk.fill();
    // What still fits in the file's last page may be written; then a refusal.
    let mut refused = false;
    for n in 0..100 {
        let model = format!("filling-{n}");
        let (status, body) = chat(&client, &url, &writ, &model).await.unwrap();
        if status == 200 {
            served.push(model);
            continue;
        }
        assert_eq!(
            (status, error_code(&body)),
            (503, "audit_unavailable"),
            "{body}"
        );
        refused = true;
        break;
    }
    assert!(refused, "a full disk never refused a strict request");
    for n in 0..5 {
        let forwarded = mock.requests().len();
        let (status, body) = chat(&client, &url, &writ, &format!("full-{n}"))
            .await
            .unwrap();
        assert_eq!(
            (status, error_code(&body)),
            (503, "audit_unavailable"),
            "{body}"
        );
        assert_eq!(
            mock.requests().len(),
            forwarded,
            "forwarded while unaudited"
        );
    }
    // Failed writes left no partial line behind.
    file_records(&log);

    disk.grow("8m");
    let deadline = Instant::now() + PATIENCE;
    for attempt in 0.. {
        let model = format!("recovered-{attempt}");
        let (status, _) = chat(&client, &url, &writ, &model).await.unwrap();
        if status == 200 {
            served.push(model);
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the gateway does not serve again once the disk has room"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    assert!(server.stop().success());
    let report = verify(dir.path());
    let records = file_records(&log);
    assert_no_duplicate_seq(&records);
    let counts = count_by_kind_and_model(&records);
    for model in &served {
        assert_eq!(
            counts.get(&("request_allowed".to_string(), model.clone())),
            Some(&1),
            "{model} was served; its decision is not on record once\n{report}"
        );
    }
    for ((kind, model), n) in &counts {
        assert_eq!(*n, 1, "{kind} of {model} is on record {n} times");
    }
}

/// Best effort: on a full disk requests are still served, the failed writes are counted
/// (`writ_audit_sink_failures_total`) and the records kept (`writ_audit_queue_depth`);
/// with room again every kept record is written, and the log verifies with each served
/// request on record once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn best_effort_audit_on_a_full_disk_serves_counts_and_catches_up() {
    let disk = SmallDisk::mount("1m");
    let log: PathBuf = disk.path().join("audit.jsonl");
    let dir = tempfile::tempdir().unwrap();
    let key = writ_mock::random_key();
    let mock = MockUpstream::start(key.expose()).await;
    let process = audited_gateway(dir.path(), &mock, key.expose(), "best_effort", &log);
    let server = &process;
    let writ = server.mint(GRANT, "5m");
    let (client, url) = (reqwest::Client::new(), server.url(""));
    let mut served = Vec::new();
    for n in 0..3 {
        let model = format!("before-{n}");
        assert_eq!(chat(&client, &url, &writ, &model).await.unwrap().0, 200);
        served.push(model);
    }
    until("the records before are written", move || async move {
        metric(server, "writ_audit_queue_depth").await == 0.0
    })
    .await;
    assert_eq!(metric(server, "writ_audit_sink_failures_total").await, 0.0);

    disk.fill();
    for n in 0..20 {
        let model = format!("full-{n}");
        let (status, body) = chat(&client, &url, &writ, &model).await.unwrap();
        assert_eq!(status, 200, "best effort refused on a full disk: {body}");
        served.push(model);
    }
    until(
        "failed writes are counted and their records kept",
        move || async move {
            metric(server, "writ_audit_sink_failures_total").await >= 1.0
                && metric(server, "writ_audit_queue_depth").await >= 1.0
        },
    )
    .await;
    file_records(&log);

    disk.grow("8m");
    until(
        "every kept record is written once there is room",
        move || async move { metric(server, "writ_audit_queue_depth").await == 0.0 },
    )
    .await;
    assert!(process.stop().success());
    let report = verify(dir.path());
    let records = file_records(&log);
    assert_no_duplicate_seq(&records);
    let counts = count_by_kind_and_model(&records);
    for model in &served {
        assert_eq!(
            counts.get(&("request_allowed".to_string(), model.clone())),
            Some(&1),
            "{model} was served; it is not on record once\n{report}"
        );
    }
}
