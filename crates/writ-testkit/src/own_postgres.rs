//! `OwnPostgres`: a PostgreSQL server of one test's own (its own cluster in a temporary
//! directory, on a free loopback port), which the test can crash and start again to see
//! what gateways do while their database is away.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// A PostgreSQL cluster and server of one test's own: trust auth for user `postgres`,
/// database `postgres`, TCP on 127.0.0.1 only, its unix socket in its own directory.
/// Stopped (immediately) and removed when dropped, also on a test's panic.
///
/// PostgreSQL refuses to run as root: when the test runs as root, the cluster belongs
/// to, and the server runs as, the unprivileged user `nobody` (via `runuser`).
pub struct OwnPostgres {
    port: u16,
    dir: tempfile::TempDir,
    running: bool,
}

impl OwnPostgres {
    /// Creates the cluster (`initdb`) and starts the server; returns once it accepts
    /// connections. Panics, saying what is missing, when `initdb`, `pg_ctl` or (as
    /// root) `runuser` and the user `nobody` are not there, or the server does not start.
    pub fn start() -> Self {
        let dir = tempfile::Builder::new()
            .prefix("writ-pg-")
            .tempdir()
            .expect("a temporary directory for the PostgreSQL cluster");
        if running_as_root() {
            let (uid, gid) = nobody();
            std::os::unix::fs::chown(dir.path(), Some(uid), Some(gid))
                .expect("give the cluster's directory to `nobody`");
        }
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .expect("a free port")
            .local_addr()
            .expect("its address")
            .port();
        let mut pg = Self {
            port,
            dir,
            running: false,
        };
        let data = pg.data_dir();
        let out = pg.as_owner(
            "initdb",
            &[
                "-D",
                path_str(&data),
                "-U",
                "postgres",
                "--auth=trust",
                "-E",
                "UTF8",
                "--no-sync",
            ],
        );
        assert!(
            out.status.success(),
            "initdb failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        pg.start_again();
        pg
    }

    /// Starts the server (after [`OwnPostgres::stop_immediately`]) on the same port and
    /// data; returns once it accepts connections (crash recovery done). Panics with the
    /// server's log if it does not start.
    pub fn start_again(&mut self) {
        let data = self.data_dir();
        let log = self.dir.path().join("server.log");
        let socket_dir = self.dir.path().to_path_buf();
        let options = format!(
            "-p {} -c listen_addresses=127.0.0.1 -k {}",
            self.port,
            path_str(&socket_dir)
        );
        let out = self.as_owner(
            "pg_ctl",
            &[
                "-D",
                path_str(&data),
                "-l",
                path_str(&log),
                "-o",
                &options,
                "-w",
                "-t",
                "60",
                "start",
            ],
        );
        if !out.status.success() {
            panic!(
                "PostgreSQL did not start: {}\n{}",
                String::from_utf8_lossy(&out.stderr),
                std::fs::read_to_string(&log).unwrap_or_default()
            );
        }
        self.running = true;
    }

    /// Stops the server in `immediate` mode, as a crash would: no shutdown checkpoint,
    /// connections cut; the next start recovers from the WAL.
    pub fn stop_immediately(&mut self) {
        let data = self.data_dir();
        let out = self.as_owner(
            "pg_ctl",
            &["-D", path_str(&data), "-m", "immediate", "-w", "stop"],
        );
        assert!(
            out.status.success(),
            "pg_ctl stop failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        self.running = false;
    }

    /// Its port on 127.0.0.1.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// `postgres://postgres@127.0.0.1:<port>/postgres`.
    pub fn url(&self) -> String {
        format!("postgres://postgres@127.0.0.1:{}/postgres", self.port)
    }

    fn data_dir(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    /// Runs `program` with `args` as the cluster's owner.
    fn as_owner(&self, program: &str, args: &[&str]) -> Output {
        let mut command = if running_as_root() {
            let mut c = Command::new("runuser");
            c.args(["-u", "nobody", "--", program]);
            c
        } else {
            Command::new(program)
        };
        command
            .args(args)
            .current_dir(self.dir.path())
            .output()
            .unwrap_or_else(|e| {
                panic!(
                    "cannot run {program} (PostgreSQL's initdb and pg_ctl must be on PATH, and \
                     runuser when running as root): {e}"
                )
            })
    }
}

impl Drop for OwnPostgres {
    fn drop(&mut self) {
        if self.running {
            let data = self.data_dir();
            let _ = self.as_owner(
                "pg_ctl",
                &["-D", path_str(&data), "-m", "immediate", "-w", "stop"],
            );
        }
    }
}

fn running_as_root() -> bool {
    id(&["-u"]) == 0
}

/// The uid and gid of `nobody`.
fn nobody() -> (u32, u32) {
    (id(&["-u", "nobody"]), id(&["-g", "nobody"]))
}

fn id(args: &[&str]) -> u32 {
    let out = Command::new("id")
        .args(args)
        .output()
        .expect("`id` must be installed");
    String::from_utf8_lossy(&out.stdout)
        .trim()
        .parse()
        .unwrap_or_else(|_| {
            panic!(
                "`id {}` failed: PostgreSQL refuses to run as root, and tests running as root \
                 run it as the user `nobody`, which must exist",
                args.join(" ")
            )
        })
}

fn path_str(path: &Path) -> &str {
    path.to_str()
        .expect("the temporary directory's path is UTF-8")
}
