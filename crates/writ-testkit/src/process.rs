//! `ServeProcess`: the real `writ` binary running `serve` in a directory, as a user runs it.

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::time::{Duration, Instant};

/// The operator name [`ServeProcess::writ`] runs commands as (`WRIT_OPERATOR`).
pub const OPERATOR: &str = "test-operator";

/// A `writ serve` child process; killed when dropped.
pub struct ServeProcess {
    child: Child,
    addr: SocketAddr,
    /// The admin listener's address, when it printed one (`[admin] listen`).
    admin: Option<SocketAddr>,
    scheme: &'static str,
    banner: String,
    bin: PathBuf,
    dir: PathBuf,
}

impl ServeProcess {
    /// Runs `<bin> serve <args…>` in `dir` and waits until it prints where it listens (its
    /// last start-up line).
    /// Readiness is the printed line, not a delay.
    pub fn start(bin: &Path, dir: &Path, args: &[&str]) -> Self {
        let mut child = Command::new(bin)
            .arg("serve")
            .args(args)
            .current_dir(dir)
            .env("WRIT_LOG", "warn")
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("spawn writ serve");
        let stdout = child.stdout.take().expect("stdout");
        let mut lines = BufReader::new(stdout).lines();
        let mut banner = String::new();
        let mut admin = None;
        let addr = loop {
            let Some(Ok(line)) = lines.next() else {
                let _ = child.kill();
                panic!("writ serve exited before listening; output so far:\n{banner}");
            };
            banner.push_str(&line);
            banner.push('\n');
            if let Some(rest) = ["admin: http://", "admin: https://"]
                .into_iter()
                .find_map(|marker| line.strip_prefix(marker))
            {
                let at = rest.split_whitespace().next().unwrap_or_default();
                admin = Some(at.parse().expect("admin listen address"));
            }
            let found = [
                ("http", "listening on http://"),
                ("https", "listening on https://"),
            ]
            .into_iter()
            .find_map(|(scheme, marker)| Some((scheme, line.split(marker).nth(1)?)));
            if let Some((scheme, rest)) = found {
                break (scheme, rest.trim().parse().expect("listen address"));
            }
        };
        let (scheme, addr) = addr;
        // Keep draining stdout so the child never blocks on a full pipe.
        std::thread::spawn(move || for _ in lines.map_while(Result::ok) {});
        Self {
            child,
            addr,
            admin,
            scheme,
            banner,
            bin: bin.to_path_buf(),
            dir: dir.to_path_buf(),
        }
    }

    /// Its process id, for reading `/proc/<pid>` (memory, open descriptors).
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Where it listens.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `http://<addr><path>`, or `https://…` when it serves TLS.
    pub fn url(&self, path: &str) -> String {
        format!("{}://{}{path}", self.scheme, self.addr)
    }

    /// `http(s)://<admin address><path>`; panics when it printed no admin listener.
    pub fn admin_url(&self, path: &str) -> String {
        let admin = self.admin.expect("writ serve printed no admin listener");
        format!("{}://{admin}{path}", self.scheme)
    }

    /// Sends it SIGTERM, as an operator stopping it does, without waiting.
    pub fn terminate(&self) {
        let sent = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()
            .expect("run kill");
        assert!(sent.success(), "kill -TERM failed");
    }

    /// Its exit status once it has exited, waiting at most `within`; `None` if it still
    /// runs then.
    pub fn exit_within(&mut self, within: Duration) -> Option<ExitStatus> {
        let deadline = Instant::now() + within;
        loop {
            if let Some(status) = self.child.try_wait().expect("wait for writ serve") {
                return Some(status);
            }
            if Instant::now() >= deadline {
                return None;
            }
            // Polling the child's state, not waiting for time to pass.
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// Everything it printed at start-up.
    pub fn banner(&self) -> &str {
        &self.banner
    }

    /// Runs another `writ` command in the same directory, as the operator
    /// [`OPERATOR`].
    pub fn writ(&self, args: &[&str]) -> Output {
        Command::new(&self.bin)
            .args(args)
            .current_dir(&self.dir)
            .env("WRIT_LOG", "warn")
            .env("WRIT_OPERATOR", OPERATOR)
            .output()
            .expect("run writ")
    }

    /// Stops it as an operator does (SIGTERM) and waits for it to exit.
    pub fn stop(mut self) -> std::process::ExitStatus {
        let sent = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()
            .expect("run kill");
        assert!(sent.success(), "kill -TERM failed");
        self.child.wait().expect("wait for writ serve")
    }

    /// Mints a writ for the demo agent with `grant`, panicking on failure.
    pub fn mint(&self, grant: &str, ttl: &str) -> String {
        let out = self.writ(&[
            "token", "mint", "--agent", "demo", "--grant", grant, "--ttl", ttl,
        ]);
        assert!(
            out.status.success(),
            "mint failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout)
            .expect("utf-8")
            .trim()
            .to_string()
    }
}

impl Drop for ServeProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
