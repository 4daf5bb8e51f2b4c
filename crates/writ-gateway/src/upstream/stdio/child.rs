//! One run of a started server: the process (no shell, only its configured environment),
//! the task that writes its stdin, and the task that drains its stderr into the log.

use std::process::Stdio;

use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::process::{ChildStderr, ChildStdin, ChildStdout, Command};
use tokio::sync::mpsc;
use writ_providers::{Launch, UpstreamSecret};

/// Messages queued for the server's stdin before the gateway calls it not reading: far
/// more than a server that reads at all ever leaves waiting.
const STDIN_QUEUE: usize = 256;

/// Longest stderr line logged; the rest is cut (stderr is the server's to fill).
const STDERR_LINE: usize = 1024;

/// A running server process.
pub(super) struct Child {
    pub(super) process: tokio::process::Child,
    pub(super) stdout: ChildStdout,
    /// Lines for its stdin, each written whole with its newline by the writer task.
    pub(super) stdin: mpsc::Sender<Vec<u8>>,
}

/// Why a line was not queued for the server's stdin.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Unsent {
    /// The queue is full: the server is not reading.
    NotReading,
    /// Its stdin is closed: the server is gone.
    Closed,
}

impl Child {
    /// Starts the server of upstream `name`. Its environment is exactly the configured
    /// one: never the gateway's own, which holds every other upstream's keys.
    pub(super) fn spawn(name: &str, launch: &Launch) -> std::io::Result<Self> {
        let mut process = Command::new(launch.program())
            .args(launch.args())
            .env_clear()
            .envs(launch.env())
            .current_dir(launch.cwd())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()?;
        let (Some(stdin), Some(stdout), Some(stderr)) = (
            process.stdin.take(),
            process.stdout.take(),
            process.stderr.take(),
        ) else {
            return Err(std::io::Error::other("the child's pipes were not opened"));
        };
        let (lines, queue) = mpsc::channel(STDIN_QUEUE);
        tokio::spawn(write_stdin(stdin, queue));
        tokio::spawn(drain_stderr(
            name.to_string(),
            launch.secrets().to_vec(),
            stderr,
        ));
        Ok(Self {
            process,
            stdout,
            stdin: lines,
        })
    }

    /// Queues one message (a line without its newline) for the server's stdin.
    pub(super) fn send(&self, mut line: Vec<u8>) -> Result<(), Unsent> {
        line.push(b'\n');
        self.stdin.try_send(line).map_err(|e| match e {
            mpsc::error::TrySendError::Full(_) => Unsent::NotReading,
            mpsc::error::TrySendError::Closed(_) => Unsent::Closed,
        })
    }

    /// Ends the process: its stdin closed first (the polite way to ask a stdio server to
    /// stop), then killed if it has not exited within `grace`; reaped either way.
    pub(super) async fn stop(
        mut self,
        grace: std::time::Duration,
    ) -> Option<std::process::ExitStatus> {
        drop(self.stdin);
        drop(self.stdout);
        match tokio::time::timeout(grace, self.process.wait()).await {
            Ok(Ok(status)) => Some(status),
            _ => {
                let _ = self.process.start_kill();
                self.process.wait().await.ok()
            }
        }
    }
}

/// Writes queued lines to the server's stdin, one whole line at a time, until the queue
/// closes or the pipe breaks. A separate task, so a server that stops reading cannot stop
/// the gateway reading what it writes.
async fn write_stdin(mut stdin: ChildStdin, mut queue: mpsc::Receiver<Vec<u8>>) {
    while let Some(line) = queue.recv().await {
        if stdin.write_all(&line).await.is_err() || stdin.flush().await.is_err() {
            return;
        }
    }
}

/// Logs the server's stderr at debug, line by line, cut to [`STDERR_LINE`] bytes and with
/// its own credentials blanked (a server may well log its configuration).
async fn drain_stderr(name: String, secrets: Vec<UpstreamSecret>, stderr: ChildStderr) {
    let mut reader = BufReader::new(stderr);
    let mut line = Vec::new();
    loop {
        line.clear();
        // Read at most a little past the cap per line; the rest of a long line is read
        // and dropped on the next turns.
        let mut limited = (&mut reader).take(STDERR_LINE as u64 + 1);
        match limited.read_until(b'\n', &mut line).await {
            Ok(0) | Err(_) => return,
            Ok(_) => {}
        }
        let mut text = String::from_utf8_lossy(&line[..line.len().min(STDERR_LINE)])
            .trim_end()
            .to_string();
        for secret in &secrets {
            if !secret.expose().is_empty() {
                text = text.replace(secret.expose(), "[redacted]");
            }
        }
        tracing::debug!(upstream = %name, line = %text, "stdio server stderr");
    }
}
