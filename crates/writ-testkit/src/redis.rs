//! `OwnRedis`: a `redis-server` of one test's own, on a free port, that the test can stop
//! and restart to see what gateways do while Redis is away.

use std::process::{Child, Command, Stdio};

/// A `redis-server` process on a free loopback port, keeping nothing on disk; stopped when
/// dropped.
pub struct OwnRedis {
    port: u16,
    child: Option<Child>,
}

impl OwnRedis {
    /// Starts one and returns once it answers `PING`. Panics if `redis-server` is not
    /// installed or never answers.
    pub fn start() -> Self {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .expect("a free port")
            .local_addr()
            .expect("its address")
            .port();
        let mut r = Self { port, child: None };
        r.restart();
        r
    }

    /// Starts it again on the same port (after [`OwnRedis::stop`]), empty.
    pub fn restart(&mut self) {
        let child = Command::new("redis-server")
            .args([
                "--port",
                &self.port.to_string(),
                "--save",
                "",
                "--appendonly",
                "no",
            ])
            .stdout(Stdio::null())
            .spawn()
            .expect("redis-server must be installed");
        self.child = Some(child);
        // Ready when it answers PING.
        for _ in 0..500 {
            let out = Command::new("redis-cli")
                .args(["-p", &self.port.to_string(), "PING"])
                .output()
                .expect("redis-cli must be installed");
            if String::from_utf8_lossy(&out.stdout).contains("PONG") {
                return;
            }
        }
        panic!("redis-server on port {} never answered", self.port);
    }

    /// Kills it; connections to it fail until [`OwnRedis::restart`].
    pub fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
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

impl Drop for OwnRedis {
    fn drop(&mut self) {
        self.stop();
    }
}
