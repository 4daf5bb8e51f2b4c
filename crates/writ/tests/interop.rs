//! Interoperability with libraries written elsewhere: `authlib` (OAuth, private_key_jwt)
//! obtains a writ from the token endpoint and uses it; `biscuit-python` attenuates a writ
//! with the published root key and the gateway enforces it as it enforces the CLI's.
#![allow(clippy::unwrap_used)]

use std::path::Path;
use std::process::Command;

use writ_testkit::{ServeProcess, python};

const BIN: &str = env!("CARGO_BIN_EXE_writ");

#[test]
fn authlib_and_biscuit_python() {
    let python = python();
    let dir = tempfile::tempdir().unwrap();
    let server = ServeProcess::start(
        Path::new(BIN),
        dir.path(),
        &["--demo", "--listen", "127.0.0.1:0"],
    );
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/python/interop.py");
    let out = Command::new(python)
        .arg(script)
        .env("WRIT_BASE_URL", server.url(""))
        .env("WRIT_BIN", BIN)
        .env("WRIT_DIR", dir.path())
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "stdout:\n{stdout}\nstderr:\n{stderr}");
    assert!(stdout.contains("interop: ok"));
}
