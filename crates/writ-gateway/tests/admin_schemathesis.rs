//! schemathesis (PyPI, pinned in writ-testkit's python-requirements.txt) against the admin
//! API's own OpenAPI document, with an admin writ of every tenant: no answer is a 5xx, and
//! every answer's status and body are ones the document states for its route.
#![allow(clippy::unwrap_used)]

use std::path::Path;
use std::time::Duration;

use writ_testkit::{MockUpstream, TestGateway};

const KEY: &str = "sk-upstream-schemathesis";
/// An admin of every tenant: no `tenant` in the grant.
const ADMIN: &str = r#"{"type":"writ:admin"}"#;

/// The routes whose generated requests can cut the run's own writ off (a revocation of its
/// tenant or the kill switch, the retirement of the key it is signed with): run last, on
/// their own, so the other routes are exercised with a working writ.
const WRIT_CUTTING: &str = "^/admin/v1/(revocations|keys/retire)$";

async fn setup() -> (MockUpstream, TestGateway) {
    let upstream = MockUpstream::start(KEY).await;
    let config = format!(
        "[upstreams.demo]\nkind = \"openai\"\nbase_url = \"{}\"\nallow_private_network = true\napi_key = \"{KEY}\"\n",
        upstream.base_url()
    );
    (upstream, TestGateway::start(&config).await)
}

/// Runs schemathesis against the gateway's document with `filter` arguments, and fails
/// the test with its report when it found any failure or could not run.
async fn schemathesis(gw: &TestGateway, writ: &str, filter: &[&str], work: &Path) {
    let python = writ_testkit::python();
    let cli = python.with_file_name("schemathesis");
    let mut command = tokio::process::Command::new(&cli);
    command
        .current_dir(work)
        .arg("run")
        .arg(gw.url("/admin/v1/openapi.json"))
        .args(["--url", &gw.url("")])
        .args([
            "--checks",
            "not_a_server_error,status_code_conformance,response_schema_conformance",
        ])
        .args(["--max-examples", "50", "--seed", "22", "--workers", "1"])
        .args(["--phases", "examples,coverage,fuzzing"])
        .args(["--request-timeout", "10"])
        .args(["--suppress-health-check", "all"])
        .args(["--output-truncate", "false"])
        .args(["-H", &format!("Authorization: Bearer {writ}")])
        .args(filter)
        .env("NO_COLOR", "1")
        .env("SCHEMATHESIS_HOOKS", "")
        .kill_on_drop(true);
    let out = tokio::time::timeout(Duration::from_secs(600), command.output())
        .await
        .expect("schemathesis finishes within 10 minutes")
        .expect("run schemathesis");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    // Shown with --nocapture: what was tested, and how.
    println!("{stdout}");
    assert!(
        out.status.success(),
        "schemathesis found failures ({:?}):\n{stdout}\n{stderr}",
        out.status.code()
    );
    // A run that tested nothing (no operation selected, schema unreadable) is no pass.
    assert!(
        stdout.contains("passed") && !stdout.contains("No operations"),
        "schemathesis ran no test:\n{stdout}\n{stderr}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_admin_api_answers_as_its_document_says() {
    let (_u, gw) = setup().await;
    let work = tempfile::tempdir().unwrap();

    // The document is served without a writ.
    let doc: serde_json::Value = reqwest::get(gw.url("/admin/v1/openapi.json"))
        .await
        .unwrap()
        .error_for_status()
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(doc["openapi"], "3.1.0");

    let admin = gw.mint_as(ADMIN, ADMIN, 30);
    // What the document's examples name, so the examples reach past 404s.
    let client = reqwest::Client::new();
    for (path, body) in [
        ("/admin/v1/tenants", serde_json::json!({"name": "acme"})),
        (
            "/admin/v1/tenants/acme/agents",
            serde_json::json!({"name": "planner", "generate_secret": true,
                "ceiling": [{"type": "writ:llm", "upstream": "demo"}]}),
        ),
        (
            "/admin/v1/tenants/acme/credentials/demo",
            serde_json::json!({"secret": "sk-acme-schemathesis"}),
        ),
    ] {
        let resp = client
            .post(gw.url(path))
            .bearer_auth(&admin)
            .json(&body)
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), reqwest::StatusCode::CREATED, "{path}");
    }
    schemathesis(
        &gw,
        &admin,
        &["--exclude-path-regex", WRIT_CUTTING],
        work.path(),
    )
    .await;
    // A fresh writ: the first run rotated the signing key.
    let admin = gw.mint_as(ADMIN, ADMIN, 30);
    schemathesis(
        &gw,
        &admin,
        &["--include-path-regex", WRIT_CUTTING],
        work.path(),
    )
    .await;
}
