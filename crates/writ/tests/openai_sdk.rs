//! The official `openai` Python SDK completes a chat and a streamed chat through the
//! gateway. The SDK is installed by this test into a venv under `target/`.
#![allow(clippy::unwrap_used)]

use std::path::Path;
use std::process::Command;

use writ_testkit::{ServeProcess, python};

const BIN: &str = env!("CARGO_BIN_EXE_writ");
const GRANT: &str =
    r#"{"type":"writ:llm","upstream":"demo","actions":["chat"],"models":["gpt-4o-mini"]}"#;

#[test]
fn openai_python_sdk_chat_and_stream() {
    let python = python();
    let dir = tempfile::tempdir().unwrap();
    let server = ServeProcess::start(
        Path::new(BIN),
        dir.path(),
        &["--demo", "--listen", "127.0.0.1:0"],
    );
    let writ = server.mint(GRANT, "30s");
    let wide = server.mint(
        r#"{"type":"writ:llm","upstream":"demo","actions":["chat","responses","embeddings","models"]}"#,
        "30s",
    );
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/python/openai_sdk.py");
    let out = Command::new(python)
        .arg(script)
        .env("WRIT_BASE_URL", server.url("/v1"))
        .env("WRIT_TOKEN", &writ)
        .env("WRIT_TOKEN_WIDE", &wide)
        .env("WRIT_BIN", BIN)
        .env("WRIT_DIR", dir.path())
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "stdout:\n{stdout}\nstderr:\n{stderr}");
    assert!(stdout.contains("openai sdk: ok"));
}

#[test]
fn openai_python_sdk_retries_a_429_after_the_gateways_retry_after() {
    let python = python();
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("writ.toml"),
        "[[limit]]\nscope = \"agent\"\ndimension = \"requests\"\nper = \"second\"\nlimit = 1\nburst = 1\n",
    )
    .unwrap();
    let server = ServeProcess::start(
        Path::new(BIN),
        dir.path(),
        &["--demo", "--listen", "127.0.0.1:0", "--config", "writ.toml"],
    );
    let writ = server.mint(GRANT, "30s");
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/python/openai_retry.py");
    let out = Command::new(python)
        .arg(script)
        .env("WRIT_BASE_URL", server.url("/v1"))
        .env("WRIT_TOKEN", &writ)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "stdout:\n{stdout}\nstderr:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: serde_json::Value = serde_json::from_str(stdout.trim()).unwrap();
    assert_eq!(v["statuses"], serde_json::json!([200, 429, 200]), "{v}");
    assert_eq!(v["retry_after"], "1");
    // The SDK's own first backoff is at most 0.5 s: a wait of about a second is the
    // gateway's Retry-After being honoured.
    let waited = v["waited"].as_f64().unwrap();
    assert!((0.9..5.0).contains(&waited), "{waited}");
}
