//! The Python environment the SDK and interop tests run in: a venv under `target/`,
//! created and filled by the tests themselves, so `cargo test` needs no set-up step.

use std::path::{Path, PathBuf};
use std::process::Command;

/// The Python packages the tests drive, pinned.
const REQUIREMENTS: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/python-requirements.txt");
/// This repository's own Python package, `writ-agent`, installed editable so the tests run
/// its current source.
const WRIT_AGENT: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../clients/python");

/// The test venv's python (see [`python_env`]) with the shared pinned packages.
pub fn python() -> PathBuf {
    python_env(Path::new(REQUIREMENTS))
}

/// Runs a Python script with `env` set, asserts it succeeded, and returns its stdout lines
/// parsed as JSON (scripts print one JSON object per call they make).
pub async fn run_python_lines(script: &Path, env: &[(&str, &str)]) -> Vec<serde_json::Value> {
    let python = python();
    let mut command = tokio::process::Command::new(python);
    command.arg(script);
    for (k, v) in env {
        command.env(k, v);
    }
    let out = command.output().await.expect("run python");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{} failed\nstdout:\n{stdout}\nstderr:\n{}",
        script.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
        .lines()
        .filter(|l| l.starts_with('{'))
        .map(|l| serde_json::from_str(l).expect("a JSON line"))
        .collect()
}

/// Returns the venv's python, creating `target/pyenv` and installing `requirements`
/// when they changed. Call it from a test: test binaries live in `target/<profile>/deps/`.
pub fn python_env(requirements: &Path) -> PathBuf {
    let exe = std::env::current_exe().expect("test executable");
    let target = exe
        .ancestors()
        .nth(3)
        .expect("test binary under target/<profile>/deps/");
    let venv = target.join("pyenv");
    let python = venv.join("bin/python");
    let ready = venv.join(".requirements");
    let writ_agent = Path::new(WRIT_AGENT);
    let mut wanted = std::fs::read_to_string(requirements).expect("requirements file");
    // Reinstalled when its metadata changes; its code is read from the source tree.
    wanted.push_str(
        &std::fs::read_to_string(writ_agent.join("pyproject.toml"))
            .expect("writ-agent's pyproject.toml"),
    );
    // Several test binaries may get here at once: one installs, the others wait on the lock.
    let lock_path = target.join("pyenv.lock");
    let lock = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&lock_path)
        .expect("lock file");
    lock.lock().expect("lock the venv");
    if std::fs::read_to_string(&ready).ok().as_deref() != Some(wanted.as_str()) {
        let status = Command::new("python3")
            .args(["-m", "venv"])
            .arg(&venv)
            .status()
            .expect("python3");
        assert!(status.success(), "python3 -m venv failed");
        let pip = |args: &[&std::ffi::OsStr], what: &str| {
            let out = Command::new(&python)
                // The browser tests drive Debian's chromium: Playwright must fetch none.
                .env("PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD", "1")
                .args([
                    "-m",
                    "pip",
                    "install",
                    "--quiet",
                    "--disable-pip-version-check",
                ])
                .args(args)
                .output()
                .expect("pip");
            assert!(
                out.status.success(),
                "pip install {what} failed (is PyPI reachable?):\n{}",
                String::from_utf8_lossy(&out.stderr)
            );
        };
        pip(
            &["-r".as_ref(), requirements.as_os_str()],
            "of the pinned SDKs",
        );
        pip(
            &["-e".as_ref(), writ_agent.as_os_str()],
            "-e clients/python",
        );
        std::fs::write(&ready, wanted).expect("mark the venv ready");
    }
    drop(lock);
    python
}
