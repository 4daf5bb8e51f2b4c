//! Hot reload of `writ.toml` in a real `writ serve` process under a steady load: a limit
//! changed and an upstream added take effect, invalid, half-written and oversized files are
//! refused while the old configuration keeps serving, a symlink swap is seen, and not one
//! request fails along the way — by SIGHUP, and by the file watcher alone.
#![allow(clippy::unwrap_used)]

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use writ_mock::MockServer;

const BIN: &str = env!("CARGO_BIN_EXE_writ");
/// Longest wait for anything a test polls for.
const DEADLINE: Duration = Duration::from_secs(30);
/// Client tasks looping requests: the load is bounded by them.
const CLIENTS: usize = 4;

/// A `writ serve` child whose log (stderr) is kept to be read; killed when dropped.
struct Serve {
    child: Child,
    addr: SocketAddr,
    log: Arc<Mutex<String>>,
}

impl Serve {
    fn start(dir: &Path, args: &[&str]) -> Self {
        let mut child = Command::new(BIN)
            .arg("serve")
            .args(["--listen", "127.0.0.1:0"])
            .args(args)
            .current_dir(dir)
            .env("WRIT_LOG", "info")
            .env("NO_COLOR", "1")
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let log = Arc::new(Mutex::new(String::new()));
        let stderr = child.stderr.take().unwrap();
        let kept = log.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                let mut log = kept.lock().unwrap();
                log.push_str(&line);
                log.push('\n');
            }
        });
        let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
        let addr = loop {
            let line = lines.next().and_then(Result::ok).unwrap_or_else(|| {
                panic!(
                    "writ serve exited before listening:\n{}",
                    log.lock().unwrap()
                )
            });
            if let Some(rest) = line.split("listening on http://").nth(1) {
                break rest.trim().parse().unwrap();
            }
        };
        std::thread::spawn(move || for _ in lines.map_while(Result::ok) {});
        Self { child, addr, log }
    }

    fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    fn writ(&self, dir: &Path, args: &[&str]) -> String {
        let out = Command::new(BIN)
            .args(args)
            .current_dir(dir)
            .env("WRIT_LOG", "warn")
            .env("WRIT_OPERATOR", "test-operator")
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "writ {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap().trim().to_string()
    }

    fn hangup(&self) {
        let sent = Command::new("kill")
            .args(["-HUP", &self.child.id().to_string()])
            .status()
            .unwrap();
        assert!(sent.success());
    }

    /// How many log lines contain `needle`.
    fn logged(&self, needle: &str) -> usize {
        self.log.lock().unwrap().matches(needle).count()
    }

    /// Waits until `count` log lines contain `needle`.
    async fn wait_logged(&self, needle: &str, count: usize) {
        let started = Instant::now();
        while self.logged(needle) < count {
            assert!(
                started.elapsed() < DEADLINE,
                "no {count} × {needle:?} in the log:\n{}",
                self.log.lock().unwrap()
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

impl Drop for Serve {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// What the load saw.
#[derive(Default)]
struct Tally {
    ok: AtomicU64,
    limited: AtomicU64,
    failed: AtomicU64,
    failures: Mutex<Vec<String>>,
}

/// `CLIENTS` tasks looping chat requests to upstream `a` until `stop`.
fn load(
    url: String,
    writ: String,
    stop: Arc<AtomicBool>,
    tally: Arc<Tally>,
) -> Vec<tokio::task::JoinHandle<()>> {
    (0..CLIENTS)
        .map(|_| {
            let (url, writ, stop, tally) = (url.clone(), writ.clone(), stop.clone(), tally.clone());
            tokio::spawn(async move {
                let client = reqwest::Client::new();
                while !stop.load(Ordering::Relaxed) {
                    match chat(&client, &url, &writ, "a").await {
                        Ok((200, _)) => tally.ok.fetch_add(1, Ordering::Relaxed),
                        Ok((429, _)) => tally.limited.fetch_add(1, Ordering::Relaxed),
                        other => {
                            let seen = match other {
                                Ok((status, _)) => format!("status {status}"),
                                Err(e) => format!("error {e}"),
                            };
                            tally.failures.lock().unwrap().push(seen);
                            tally.failed.fetch_add(1, Ordering::Relaxed)
                        }
                    };
                }
            })
        })
        .collect()
}

/// One chat request to `upstream`: its status and `x-ratelimit-limit-requests`.
async fn chat(
    client: &reqwest::Client,
    url: &str,
    writ: &str,
    upstream: &str,
) -> reqwest::Result<(u16, Option<String>)> {
    let response = client
        .post(url)
        .bearer_auth(writ)
        .header("x-writ-upstream", upstream)
        .json(&serde_json::json!({
            "model": "gpt-4o-mini",
            "messages": [{"role": "user", "content": "hi"}]
        }))
        .send()
        .await?;
    let limit = response
        .headers()
        .get("x-ratelimit-limit-requests")
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    let status = response.status().as_u16();
    response.bytes().await?;
    Ok((status, limit))
}

/// Polls `upstream` until a call answers `status` with the request limit `limit`.
async fn wait_for(url: &str, writ: &str, upstream: &str, status: u16, limit: u64) {
    let client = reqwest::Client::new();
    let started = Instant::now();
    let want = (status, Some(limit.to_string()));
    loop {
        let seen = chat(&client, url, writ, upstream).await.unwrap();
        if seen == want {
            return;
        }
        assert!(
            started.elapsed() < DEADLINE,
            "upstream {upstream} still answers {seen:?}, not {want:?}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// The config: upstream `a` (and `b` when given), a tenant limit of `limit` requests an
/// hour.
fn config(a: &MockServer, b: Option<&MockServer>, limit: u64) -> String {
    let upstream = |name: &str, mock: &MockServer| {
        format!(
            "[upstreams.{name}]\nkind = \"openai\"\nbase_url = \"{}\"\napi_key = \"{}\"\nallow_private_network = true\n\n",
            mock.base_url(),
            mock.key().expose()
        )
    };
    let mut text = "[tokens]\nmax_ttl = \"10m\"\n\n".to_string();
    text.push_str(&upstream("a", a));
    if let Some(b) = b {
        text.push_str(&upstream("b", b));
    }
    text.push_str(&format!(
        "[[limit]]\nscope = \"tenant\"\ndimension = \"requests\"\nper = \"hour\"\nlimit = {limit}\n"
    ));
    text
}

/// A gateway serving `dir`'s config, an agent and its writ for upstreams `a` and `b`, and
/// the load running once the first calls went through.
struct Running {
    serve: Serve,
    url: String,
    writ: String,
    stop: Arc<AtomicBool>,
    tally: Arc<Tally>,
    clients: Vec<tokio::task::JoinHandle<()>>,
}

impl Running {
    async fn start(dir: &Path, args: &[&str]) -> Self {
        let serve = Serve::start(dir, args);
        serve.writ(
            dir,
            &[
                "agent",
                "add",
                "bot",
                "--ceiling",
                r#"{"type":"writ:llm","upstream":"a"}"#,
                "--ceiling",
                r#"{"type":"writ:llm","upstream":"b"}"#,
                "--max-ttl",
                "10m",
            ],
        );
        let writ = serve.writ(
            dir,
            &[
                "token",
                "mint",
                "--agent",
                "bot",
                "--grant",
                r#"[{"type":"writ:llm","upstream":"a"},{"type":"writ:llm","upstream":"b"}]"#,
                "--ttl",
                "10m",
            ],
        );
        let url = serve.url("/v1/chat/completions");
        let stop = Arc::new(AtomicBool::new(false));
        let tally = Arc::new(Tally::default());
        let clients = load(url.clone(), writ.clone(), stop.clone(), tally.clone());
        let started = Instant::now();
        while tally.ok.load(Ordering::Relaxed) < 20 {
            assert!(
                started.elapsed() < DEADLINE,
                "the load does not get through: {:?}",
                tally.failures.lock().unwrap()
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        Self {
            serve,
            url,
            writ,
            stop,
            tally,
            clients,
        }
    }

    /// Stops the load and checks that no request failed; returns (ok, limited).
    async fn finish(self) -> (u64, u64) {
        self.stop.store(true, Ordering::Relaxed);
        for client in self.clients {
            client.await.unwrap();
        }
        let failures = self.tally.failures.lock().unwrap().clone();
        assert_eq!(
            self.tally.failed.load(Ordering::Relaxed),
            0,
            "failed requests: {failures:?}\nlog:\n{}",
            self.serve.log.lock().unwrap()
        );
        (
            self.tally.ok.load(Ordering::Relaxed),
            self.tally.limited.load(Ordering::Relaxed),
        )
    }
}

/// Where a writer stopped mid-way through `text`: inside upstream `a`'s key, so what is
/// on disk is no valid TOML (and the log could quote the key, and must not).
fn cut(text: &str) -> usize {
    text.find("api_key = \"").unwrap() + "api_key = \"".len() + 30
}

/// Writes `text` to `path` in place (not atomically), as an editor without safe-write does.
fn write(path: &Path, text: &str) {
    std::fs::write(path, text).unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sighup_reloads_under_load_without_a_failed_request() {
    let (a, b) = (
        MockServer::start(writ_mock::random_key()).await.unwrap(),
        MockServer::start(writ_mock::random_key()).await.unwrap(),
    );
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("writ.toml");
    write(&file, &config(&a, None, 1_000_000));
    // SIGHUP only: what changes is the signal's doing.
    let run = Running::start(dir.path(), &["--no-watch"]).await;
    let (url, writ) = (run.url.clone(), run.writ.clone());
    wait_for(&url, &writ, "a", 200, 1_000_000).await;

    // An upstream added and the limit raised, on SIGHUP.
    write(&file, &config(&a, Some(&b), 2_000_000));
    let client = reqwest::Client::new();
    assert_eq!(
        chat(&client, &url, &writ, "b").await.unwrap().0,
        404,
        "b is unknown before the signal"
    );
    run.serve.hangup();
    run.serve.wait_logged("configuration reloaded", 1).await;
    wait_for(&url, &writ, "b", 200, 2_000_000).await;
    wait_for(&url, &writ, "a", 200, 2_000_000).await;

    // Half a file: refused, the old configuration serves on.
    let full = config(&a, Some(&b), 20);
    write(&file, &full[..cut(&full)]);
    run.serve.hangup();
    run.serve.wait_logged("config reload refused", 1).await;
    wait_for(&url, &writ, "b", 200, 2_000_000).await;
    assert_eq!(run.tally.limited.load(Ordering::Relaxed), 0);

    // The limit lowered: the load's next calls are refused with the new limit.
    write(&file, &full);
    run.serve.hangup();
    run.serve.wait_logged("configuration reloaded", 2).await;
    wait_for(&url, &writ, "a", 429, 20).await;
    let (ok, limited) = run.finish().await;
    assert!(ok > 20 && limited > 0, "ok {ok}, limited {limited}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_changed_file_reloads_under_load_without_a_failed_request() {
    let (a, b) = (
        MockServer::start(writ_mock::random_key()).await.unwrap(),
        MockServer::start(writ_mock::random_key()).await.unwrap(),
    );
    let dir = tempfile::tempdir().unwrap();
    // As config managers keep it: a symlink to the current version.
    let version = |n: u32, text: &str| -> PathBuf {
        let path = dir.path().join(format!("writ-v{n}.toml"));
        write(&path, text);
        path
    };
    let file = dir.path().join("writ.toml");
    std::os::unix::fs::symlink(version(1, &config(&a, None, 1_000_000)), &file).unwrap();
    let run = Running::start(dir.path(), &[]).await;
    let (url, writ) = (run.url.clone(), run.writ.clone());

    // The symlink swapped atomically to a version adding `b` and raising the limit.
    let swap = dir.path().join("writ.toml.next");
    std::os::unix::fs::symlink(version(2, &config(&a, Some(&b), 2_000_000)), &swap).unwrap();
    std::fs::rename(&swap, &file).unwrap();
    wait_for(&url, &writ, "b", 200, 2_000_000).await;
    assert_eq!(run.serve.logged("configuration reloaded"), 1);

    // A file replaced mid-write and left so: refused, the old configuration serves on.
    let lowered = config(&a, Some(&b), 20);
    let cut = cut(&lowered);
    write(&file, &lowered[..cut]);
    run.serve.wait_logged("config reload refused", 1).await;
    wait_for(&url, &writ, "b", 200, 2_000_000).await;
    // Never a line of the file in the log: it may hold a key.
    assert_eq!(
        run.serve.logged(&lowered[cut - 20..cut]),
        0,
        "{}",
        run.serve.log.lock().unwrap()
    );

    // An oversized file: refused unread.
    let mut huge = config(&a, Some(&b), 20);
    while huge.len() <= 5 * 1024 * 1024 {
        huge.push_str("# padding padding padding padding padding padding padding padding\n");
    }
    write(&file, &huge);
    run.serve.wait_logged("config reload refused", 2).await;
    assert!(run.serve.logged("larger than") >= 1);
    wait_for(&url, &writ, "a", 200, 2_000_000).await;

    // Written whole at last: the lowered limit applies.
    write(&file, &lowered);
    wait_for(&url, &writ, "a", 429, 20).await;
    assert_eq!(run.serve.logged("configuration reloaded"), 2);
    let (ok, limited) = run.finish().await;
    assert!(ok > 20 && limited > 0, "ok {ok}, limited {limited}");
}
