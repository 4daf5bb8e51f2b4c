//! `OwnRedis`: a `redis-server` of one test's own, on a free port, that the test can stop
//! (SIGKILL) and restart to see what gateways do while Redis is away; optionally
//! persistent, so its state survives the restart as a deployed Redis's would.

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// How long a started `redis-server` may take to answer `PING` (loading its append-only
/// file included).
const READY_WITHIN: Duration = Duration::from_secs(20);

/// A `redis-server` process on a free loopback port; stopped (and its data directory, if
/// any, removed) when dropped.
pub struct OwnRedis {
    port: u16,
    child: Option<Child>,
    /// With persistence: the directory holding the append-only file.
    data: Option<tempfile::TempDir>,
}

impl OwnRedis {
    /// Starts one keeping nothing on disk and returns once it answers `PING`. Panics if
    /// `redis-server` is not installed or never answers.
    pub fn start() -> Self {
        Self::start_in(None)
    }

    /// Starts one that logs every write to an append-only file in a directory of its own,
    /// synced before each reply (`appendfsync always`): whatever it acknowledged survives
    /// [`OwnRedis::stop`] (a SIGKILL) and is loaded again by [`OwnRedis::restart`]. Panics
    /// as [`OwnRedis::start`] does, or if no temporary directory can be made.
    pub fn start_persistent() -> Self {
        let data = tempfile::Builder::new()
            .prefix("writ-redis-")
            .tempdir()
            .expect("a temporary directory for Redis' append-only file");
        Self::start_in(Some(data))
    }

    fn start_in(data: Option<tempfile::TempDir>) -> Self {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .expect("a free port")
            .local_addr()
            .expect("its address")
            .port();
        let mut r = Self {
            port,
            child: None,
            data,
        };
        r.restart();
        r
    }

    /// Starts it again on the same port (after [`OwnRedis::stop`]): empty, or, when
    /// persistent, with everything it had acknowledged before it was killed.
    pub fn restart(&mut self) {
        let port = self.port.to_string();
        let mut args: Vec<&str> = vec!["--port", &port, "--bind", "127.0.0.1", "--save", ""];
        match &self.data {
            Some(dir) => args.extend([
                "--dir",
                dir_str(dir.path()),
                "--appendonly",
                "yes",
                "--appendfsync",
                "always",
            ]),
            None => args.extend(["--appendonly", "no"]),
        }
        let child = Command::new("redis-server")
            .args(&args)
            .stdout(Stdio::null())
            .spawn()
            .expect("redis-server must be installed (apt-get install redis-server)");
        self.child = Some(child);
        // Ready when it answers PING (it answers LOADING while it reads its file).
        let deadline = Instant::now() + READY_WITHIN;
        while Instant::now() < deadline {
            if self.cli(&["PING"]).contains("PONG") {
                return;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        panic!("redis-server on port {} never answered", self.port);
    }

    /// Kills it with SIGKILL (no chance to write anything more); connections to it fail
    /// until [`OwnRedis::restart`].
    pub fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Runs `redis-cli` against it with `args` (one command): its output, trimmed. Panics
    /// if `redis-cli` is not installed.
    pub fn cli(&self, args: &[&str]) -> String {
        let out = Command::new("redis-cli")
            .args(["-p", &self.port.to_string()])
            .args(args)
            .output()
            .expect("redis-cli must be installed (apt-get install redis-tools)");
        String::from_utf8_lossy(&out.stdout).trim().to_string()
    }

    /// Its port.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// `redis://127.0.0.1:<port>`.
    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }
}

fn dir_str(path: &Path) -> &str {
    path.to_str()
        .expect("the temporary directory's path is UTF-8")
}

impl Drop for OwnRedis {
    fn drop(&mut self) {
        self.stop();
    }
}
