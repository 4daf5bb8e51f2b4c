//! `writ-agent` (clients/python) drives the official `openai` and `anthropic` SDKs through
//! a running `writ serve` for longer than its writs live: minted, renewed and, when the
//! gateway refuses one as expired, replaced, with no key handling in the caller's code.
//! The package is installed (editable) into the test venv by the test kit.
#![allow(clippy::unwrap_used)]

use std::path::Path;
use std::time::Duration;

use serde_json::Value;
use writ_testkit::ServeProcess;

const BIN: &str = env!("CARGO_BIN_EXE_writ");
const KEY: &str = "sk-upstream-writ-agent-0123";
/// What one model call takes at the mock: 100 calls then take at least 5 s, while a writ
/// the scripts ask for lives 1 or 2 s and is replaced half way.
const MODEL_LATENCY: Duration = Duration::from_millis(50);

/// The mock upstreams (OpenAI and Anthropic routes among them), answering after
/// [`MODEL_LATENCY`] as a real model would; returns its base URL.
async fn slow_upstream() -> String {
    async fn think(
        request: axum::extract::Request,
        next: axum::middleware::Next,
    ) -> axum::response::Response {
        tokio::time::sleep(MODEL_LATENCY).await;
        next.run(request).await
    }
    let app =
        writ_mock::router(writ_mock::MockKey::new(KEY)).layer(axum::middleware::from_fn(think));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await });
    url
}

/// `writ serve` with upstreams `slow` (OpenAI) and `claude` (Anthropic) at the slow mock.
async fn serve(dir: &Path) -> ServeProcess {
    let upstream = slow_upstream().await;
    let mut config = String::new();
    for (name, kind) in [("slow", "openai"), ("claude", "anthropic")] {
        config.push_str(&format!(
            "[upstreams.{name}]\nkind = \"{kind}\"\nbase_url = \"{upstream}\"\nallow_private_network = true\napi_key = \"{KEY}\"\n"
        ));
    }
    std::fs::write(dir.join("writ.toml"), config).unwrap();
    ServeProcess::start(
        Path::new(BIN),
        dir,
        &["--listen", "127.0.0.1:0", "--config", "writ.toml"],
    )
}

/// Runs `agent_client.py <case>` against `server`; returns the JSON line it printed.
async fn run(server: &ServeProcess, dir: &Path, case: &str) -> Value {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/python/agent_client.py");
    let mut command = tokio::process::Command::new(writ_testkit::python());
    command
        .arg(&script)
        .arg(case)
        .env("WRIT_URL", server.url(""))
        .env("WRIT_BIN", BIN)
        .env("WRIT_DIR", dir);
    let out = command.output().await.unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{case} failed\nstdout:\n{stdout}\nstderr:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_str(stdout.lines().last().unwrap()).unwrap()
}

fn count(v: &Value, status: &str) -> u64 {
    v["statuses"][status].as_u64().unwrap_or(0)
}

#[tokio::test(flavor = "multi_thread")]
async fn openai_sdk_makes_100_calls_across_writ_expiries() {
    let dir = tempfile::tempdir().unwrap();
    let server = serve(dir.path()).await;
    let v = run(&server, dir.path(), "renewal").await;
    // Every call succeeded (the SDK raises on any error) over 5 s or more, each writ used
    // for at most its first second: five writs or more, four of them replaced.
    assert!(v["elapsed"].as_f64().unwrap() >= 5.0, "{v}");
    assert!(v["distinct_writs"].as_u64().unwrap() >= 5, "{v}");
    assert!(v["mints"].as_u64().unwrap() >= 5, "{v}");
    // Renewed before expiry: the gateway never refused a writ.
    assert_eq!(count(&v, "401"), 0, "{v}");
    assert_eq!(v["expired_retries"], 0, "{v}");
    assert_eq!(v["data_requests"], 100, "{v}");
}

#[tokio::test(flavor = "multi_thread")]
async fn an_expired_writ_is_sent_again_once_with_a_fresh_one() {
    let dir = tempfile::tempdir().unwrap();
    let server = serve(dir.path()).await;
    let v = run(&server, dir.path(), "retry").await;
    let retries = v["expired_retries"].as_u64().unwrap();
    assert!(retries >= 1, "{v}");
    // Each refusal was answered by exactly one more request, and none reached the SDK
    // (all 100 calls returned a completion).
    assert_eq!(count(&v, "401"), retries, "{v}");
    assert_eq!(v["data_requests"].as_u64().unwrap(), 100 + retries, "{v}");
    assert!(v["mints"].as_u64().unwrap() > retries, "{v}");
}

#[tokio::test(flavor = "multi_thread")]
async fn dpop_bound_writs_with_a_p256_key_and_the_async_sdk() {
    let dir = tempfile::tempdir().unwrap();
    let server = serve(dir.path()).await;
    let v = run(&server, dir.path(), "dpop").await;
    assert_eq!(v["schemes"], serde_json::json!(["DPoP"]), "{v}");
    // 20 calls that start together with no writ yet: one mint.
    assert_eq!(v["first_mints"], 1, "{v}");
    // Then 50 calls, 10 at a time, on 1 s writs: each writ minted once (the factory mints
    // the first before the calls, and it may go stale before they start).
    // (A writ may run out on the way on a loaded machine: then it is sent again, once.)
    let retries = v["expired_retries"].as_u64().unwrap();
    assert_eq!(v["data_requests"].as_u64().unwrap(), 50 + retries, "{v}");
    assert_eq!(count(&v, "401"), retries, "{v}");
    let (mints, used) = (
        v["mints_in_calls"].as_u64().unwrap(),
        v["distinct_writs"].as_u64().unwrap(),
    );
    assert!(mints == used || mints == used + 1, "{v}");
    // The writ alone, without a proof from the key, is refused.
    assert_eq!(v["stolen"], "invalid_dpop_proof", "{v}");
}

#[tokio::test(flavor = "multi_thread")]
async fn threads_sharing_a_client_share_one_mint() {
    let dir = tempfile::tempdir().unwrap();
    let server = serve(dir.path()).await;
    let v = run(&server, dir.path(), "threads").await;
    assert_eq!(v["data_requests"], 32, "{v}");
    assert_eq!(v["mints"], 1, "{v}");
    assert_eq!(v["token_requests"], 1, "{v}");
}

#[tokio::test(flavor = "multi_thread")]
async fn anthropic_sdk_through_writ_agent() {
    let dir = tempfile::tempdir().unwrap();
    let server = serve(dir.path()).await;
    let v = run(&server, dir.path(), "anthropic").await;
    let retries = v["expired_retries"].as_u64().unwrap();
    assert_eq!(v["data_requests"].as_u64().unwrap(), 10 + retries, "{v}");
    assert_eq!(
        count(&v, "200"),
        10 + v["token_requests"].as_u64().unwrap(),
        "{v}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn token_endpoint_refusals_reach_the_caller() {
    let dir = tempfile::tempdir().unwrap();
    let server = serve(dir.path()).await;
    let v = run(&server, dir.path(), "errors").await;
    let token_url = server.url("/oauth2/token");
    assert_eq!(v["wrong_key"]["error"], "invalid_client", "{v}");
    assert_eq!(v["wrong_key"]["status"], 401, "{v}");
    let message = v["wrong_key"]["message"].as_str().unwrap();
    assert!(
        message.contains(&token_url) && message.contains("writ agent show"),
        "{message}"
    );
    // Through the SDK, the token endpoint's refusal is the SDK's AuthenticationError.
    assert_eq!(v["wrong_key_sdk"]["status"], 401, "{v}");
    assert_eq!(v["wrong_key_sdk"]["body"], "invalid_client", "{v}");
    let unreachable = v["unreachable"].as_str().unwrap();
    assert!(
        unreachable.contains("http://127.0.0.1:9/oauth2/token")
            && unreachable.contains("unreachable"),
        "{unreachable}"
    );
    assert_eq!(
        v["beyond_ceiling"]["error"], "invalid_authorization_details",
        "{v}"
    );
    assert!(
        v["beyond_ceiling"]["description"]
            .as_str()
            .unwrap()
            .contains("beyond what agent `narrow` may be granted"),
        "{v}"
    );
    assert!(
        v["bad_key"].as_str().unwrap().contains("Ed25519 or P-256"),
        "{v}"
    );
}

/// The README's "Use writ from a long-running agent", run as written: its shell block
/// registers the agent (with this build's `writ` first on PATH), and its Python block runs
/// with only the gateway's address changed to the test server's.
#[tokio::test(flavor = "multi_thread")]
async fn the_readme_long_running_agent_section_runs() {
    let readme =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../../README.md")).unwrap();
    let section = readme
        .split("## Use writ from a long-running agent")
        .nth(1)
        .expect("the README has the section")
        .split("\n## ")
        .next()
        .unwrap();
    let block = |lang: &str| {
        section
            .split(&format!("```{lang}\n"))
            .nth(1)
            .unwrap_or_else(|| panic!("the section has a {lang} block"))
            .split("```")
            .next()
            .unwrap()
            .to_string()
    };
    let dir = tempfile::tempdir().unwrap();
    let server = ServeProcess::start(
        Path::new(BIN),
        dir.path(),
        &["--demo", "--listen", "127.0.0.1:0"],
    );
    let bin_dir = Path::new(BIN).parent().unwrap();
    let path = format!("{}:{}", bin_dir.display(), std::env::var("PATH").unwrap());
    let shell = tokio::process::Command::new("sh")
        .args(["-ec", &block("sh")])
        .current_dir(dir.path())
        .env("PATH", path)
        .env("WRIT_LOG", "warn")
        .output()
        .await
        .unwrap();
    assert!(
        shell.status.success(),
        "{}",
        String::from_utf8_lossy(&shell.stderr)
    );
    let python = block("python");
    assert!(python.contains("http://127.0.0.1:8787"), "{python}");
    let script = dir.path().join("agent.py");
    std::fs::write(
        &script,
        python.replace("http://127.0.0.1:8787", &server.url("")),
    )
    .unwrap();
    let out = tokio::process::Command::new(writ_testkit::python())
        .arg(&script)
        .current_dir(dir.path())
        .output()
        .await
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "stdout:\n{stdout}\nstderr:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("Hello!"), "{stdout}");
}
