//! Reloading `writ.toml` while serving: on SIGHUP, and when the file's contents change.
//!
//! The file is read once a second (through any symlink, so a config manager's symlink
//! swap is seen) and compared with what was last read, rather than watched with inotify:
//! polling sees a file replaced by rename, a symlink swapped, a Kubernetes ConfigMap
//! update and a network filesystem alike, and one small read a second costs nothing. A
//! change is loaded once the contents have stayed the same for one more poll, so a file
//! caught mid-write is not loaded half-written; should it stay half-written, it is checked
//! and refused like any invalid file.
//!
//! Each file is checked as `writ config check` checks it. An invalid or oversized one is
//! refused: every problem is logged (never a line of the file: it may hold a key) and the
//! running configuration is kept. A valid one goes to [`Gateway::reload_config`].

use std::io::Read;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use writ_gateway::Gateway;
use writ_gateway::config::{Config, UpstreamConfig};

/// How often the file is read.
const POLL: Duration = Duration::from_secs(1);

/// The largest config file a reload reads; a larger one is refused unread.
pub(crate) const MAX_CONFIG_BYTES: u64 = 4 * 1024 * 1024;

/// Where the configuration comes from, and what the command line puts over it.
pub(super) struct Source {
    /// The config file; `None` when serving the embedded defaults (nothing to reload).
    pub(super) path: Option<PathBuf>,
    /// `--data-dir`.
    pub(super) data_dir: Option<PathBuf>,
    /// `--listen`.
    pub(super) listen: Option<SocketAddr>,
    /// `--demo`'s mock upstream, unless the file declares a `demo` upstream itself.
    pub(super) demo: Option<UpstreamConfig>,
    /// Whether a changed file is reloaded without a signal.
    pub(super) watch: bool,
}

/// What a read of the file found: its bytes, or why there are none to check.
type Seen = Result<Vec<u8>, String>;

/// Reloads on SIGHUP and, when `source.watch`, on a changed file, until the process ends.
/// The signal handler is in place when this returns (a SIGHUP no longer stops the
/// process).
pub(super) fn spawn(gateway: Arc<Gateway>, source: Source) -> anyhow::Result<()> {
    #[cfg(unix)]
    let mut hangups = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup())?;
    let Some(path) = source.path.clone() else {
        #[cfg(unix)]
        tokio::spawn(async move {
            while hangups.recv().await.is_some() {
                tracing::info!(
                    "SIGHUP: no config file in use (embedded defaults); nothing to reload"
                );
            }
        });
        return Ok(());
    };
    let mut last = read(&path);
    tokio::spawn(async move {
        let mut pending: Option<Seen> = None;
        let mut tick = tokio::time::interval(POLL);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            #[cfg(unix)]
            let signalled = tokio::select! {
                got = hangups.recv() => match got {
                    Some(()) => true,
                    None => return,
                },
                _ = tick.tick(), if source.watch => false,
            };
            #[cfg(not(unix))]
            let signalled = {
                tick.tick().await;
                false
            };
            let seen = read(&path);
            if signalled {
                tracing::info!(file = %path.display(), "SIGHUP: reloading the configuration");
                pending = None;
            } else if seen == last {
                pending = None;
                continue;
            } else if pending.as_ref() != Some(&seen) {
                // Changed since the last poll: loaded once it stays so for one more.
                pending = Some(seen);
                continue;
            } else {
                pending = None;
                tracing::info!(file = %path.display(), "writ.toml changed: reloading the configuration");
            }
            apply(&gateway, &source, &path, &seen).await;
            last = seen;
        }
    });
    Ok(())
}

/// Checks what was read and reloads it, or logs why it is refused.
async fn apply(gateway: &Gateway, source: &Source, path: &Path, seen: &Seen) {
    let config = match seen {
        Ok(bytes) => load(bytes, source),
        Err(problem) => Err(vec![problem.clone()]),
    };
    let config = match config {
        Ok(config) => config,
        Err(problems) => {
            for problem in &problems {
                tracing::error!(file = %path.display(), "error: {problem}");
            }
            tracing::error!(
                file = %path.display(),
                problems = problems.len(),
                "config reload refused; the running configuration is kept (`writ config check` lists the problems)"
            );
            return;
        }
    };
    if let Err(e) = gateway.reload_config(&config).await {
        tracing::error!(
            file = %path.display(),
            error = %e,
            "config reload refused; the running configuration is kept"
        );
    }
}

/// The file's bytes, or why they cannot be checked: unreadable, or larger than
/// [`MAX_CONFIG_BYTES`] (refused without reading it whole).
fn read(path: &Path) -> Seen {
    let unreadable = |e: std::io::Error| format!("cannot read config {}: {e}", path.display());
    let file = std::fs::File::open(path).map_err(unreadable)?;
    let too_large = |n: u64| {
        format!(
            "config {} is {n} bytes, larger than the {MAX_CONFIG_BYTES} bytes a reload reads",
            path.display()
        )
    };
    let len = file.metadata().map_err(unreadable)?.len();
    if len > MAX_CONFIG_BYTES {
        return Err(too_large(len));
    }
    let mut bytes = Vec::with_capacity(len as usize);
    // The file may grow between the length read and this read: never past the cap.
    file.take(MAX_CONFIG_BYTES + 1)
        .read_to_end(&mut bytes)
        .map_err(unreadable)?;
    if bytes.len() as u64 > MAX_CONFIG_BYTES {
        return Err(too_large(bytes.len() as u64));
    }
    Ok(bytes)
}

/// The configuration `bytes` hold, checked as `writ config check` checks it, with the
/// command line's settings over it; or every problem found.
fn load(bytes: &[u8], source: &Source) -> Result<Config, Vec<String>> {
    let text = std::str::from_utf8(bytes)
        .map_err(|e| vec![format!("the config is not UTF-8 text: {e}")])?;
    let checked = crate::config_check::check(text);
    let Some(mut config) = checked.config else {
        return Err(checked.errors.iter().map(|e| without_excerpt(e)).collect());
    };
    if let Some(dir) = &source.data_dir {
        config.data_dir = dir.clone();
    }
    if let Some(listen) = source.listen {
        config.listen = listen;
    }
    if let Some(demo) = &source.demo {
        config
            .upstreams
            .entry("demo".to_string())
            .or_insert_with(|| demo.clone());
    }
    Ok(config)
}

/// A parser's message without the excerpt of the file it quotes (`3 | api_key = "sk-…`):
/// the line may hold a credential, and log lines go where credentials must not.
fn without_excerpt(message: &str) -> String {
    message
        .lines()
        .filter(|line| {
            let rest = line
                .trim_start()
                .trim_start_matches(|c: char| c.is_ascii_digit());
            !rest.trim_start().starts_with('|')
        })
        .map(str::trim)
        .filter(|line| !line.is_empty())
        .collect::<Vec<_>>()
        .join(": ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_parse_error_is_logged_without_the_line_it_quotes() {
        let checked = crate::config_check::check(
            "[upstreams.a]\nkind = \"openai\"\napi_key = \"sk-secretsecretsecret\n",
        );
        assert!(checked.config.is_none());
        let shown: Vec<String> = checked.errors.iter().map(|e| without_excerpt(e)).collect();
        assert!(!shown.is_empty());
        for line in &shown {
            assert!(!line.contains("secretsecret"), "{line}");
            assert!(line.contains("line 3"), "{line}");
        }
    }

    #[test]
    fn a_file_over_the_cap_is_refused_unread_and_one_under_it_is_read() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("writ.toml");
        std::fs::write(&path, "# x\n").unwrap();
        assert_eq!(read(&path), Ok(b"# x\n".to_vec()));
        let file = std::fs::File::create(&path).unwrap();
        file.set_len(MAX_CONFIG_BYTES + 1).unwrap();
        let refused = read(&path).unwrap_err();
        assert!(refused.contains("larger than"), "{refused}");
        let missing = read(&dir.path().join("gone.toml")).unwrap_err();
        assert!(missing.contains("cannot read"), "{missing}");
    }

    #[test]
    fn the_command_line_settings_stay_over_a_reloaded_file() {
        let source = Source {
            path: None,
            data_dir: Some(PathBuf::from("/var/lib/writ")),
            listen: Some("127.0.0.1:1234".parse().unwrap()),
            demo: None,
            watch: true,
        };
        let config = load(b"[server]\nlisten = \"127.0.0.1:9\"\n", &source).unwrap();
        assert_eq!(config.listen, source.listen.unwrap());
        assert_eq!(config.data_dir, PathBuf::from("/var/lib/writ"));
        let refused = load(b"[server]\nlisten = 3\n", &source).unwrap_err();
        assert!(!refused.is_empty());
        let not_text = load(&[0xff, 0xfe], &source).unwrap_err();
        assert!(not_text[0].contains("UTF-8"), "{not_text:?}");
    }
}
