//! Vertex AI through the gateway: the agent's writ is swapped for an OAuth access token the
//! gateway obtains by exchanging an RS256 service-account assertion at the token URI (a
//! mock that verifies the assertion), cached until shortly before it expires.
#![allow(clippy::unwrap_used)]

use std::path::Path;
use std::process::Stdio;
use std::time::Duration;

use reqwest::StatusCode;
use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};
use writ_testkit::{TestGateway, python, run_python_lines};

const PROJECT: &str = "writ-test-project";
const GRANT: &str = r#"{"type":"writ:llm","upstream":"vertex","models":["gemini-2.0-flash"]}"#;
const GENERATE: &str = "/v1/projects/writ-test-project/locations/us-central1/publishers/google/models/gemini-2.0-flash:generateContent";

/// The token endpoint and Vertex mock, running until dropped.
struct VertexMock {
    _child: Child,
    base_url: String,
    hello: Value,
    dir: tempfile::TempDir,
}

impl VertexMock {
    async fn start(ttl_secs: u64) -> Self {
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/python/vertex_mock.py");
        let mut child = Command::new(python())
            .arg(script)
            .env("MOCK_PROJECT", PROJECT)
            .env("MOCK_TOKEN_TTL", ttl_secs.to_string())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .unwrap();
        let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
        let hello: Value =
            serde_json::from_str(&lines.next_line().await.unwrap().unwrap()).unwrap();
        Self {
            _child: child,
            base_url: format!("http://127.0.0.1:{}", hello["port"]),
            hello,
            dir: tempfile::tempdir().unwrap(),
        }
    }

    /// Writes the service-account key file (`account` or `impostor`) and returns its path.
    fn key_file(&self, which: &str) -> String {
        let path = self.dir.path().join(format!("{which}.json"));
        std::fs::write(&path, self.hello[which].to_string()).unwrap();
        path.display().to_string()
    }

    async fn log(&self) -> Value {
        reqwest::get(format!("{}/log", self.base_url))
            .await
            .unwrap()
            .json()
            .await
            .unwrap()
    }

    fn private_key(&self) -> String {
        self.hello["service_account"]["private_key"]
            .as_str()
            .unwrap()
            .to_string()
    }
}

async fn gateway(mock: &VertexMock, which: &str) -> TestGateway {
    TestGateway::start(&format!(
        "[upstreams.vertex]\nkind = \"vertex\"\nlocation = \"us-central1\"\nbase_url = \"{}\"\nallow_private_network = true\nservice_account_file = \"{}\"\n",
        mock.base_url,
        mock.key_file(which)
    ))
    .await
}

fn body() -> Value {
    json!({"contents": [{"role": "user", "parts": [{"text": "two words"}]}]})
}

#[tokio::test]
async fn google_genai_in_vertex_mode_is_served_with_one_cached_token() {
    let mock = VertexMock::start(3599).await;
    let gw = gateway(&mock, "service_account").await;
    let writ = gw.mint_as(GRANT, GRANT, 30);
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/python/vertex_sdk.py");
    let base = gw.url("");
    let lines = run_python_lines(
        &script,
        &[
            ("WRIT_BASE_URL", base.as_str()),
            ("WRIT_TOKEN", writ.as_str()),
            ("VERTEX_PROJECT", PROJECT),
        ],
    )
    .await;
    assert_eq!(lines.len(), 2);
    let recorded = gw.gateway().recent_usage();
    assert_eq!(recorded.len(), 2);
    for (line, r) in lines.iter().zip(&recorded) {
        assert_eq!(r.usage.input_tokens, line["input"].as_u64().unwrap());
        assert_eq!(r.usage.output_tokens, line["output"].as_u64().unwrap());
        assert!(!r.estimated);
        assert!(r.cost_usd_micros.is_some_and(|c| c > 0), "{r:?}");
    }
    let log = mock.log().await;
    // Two calls, one token exchange.
    assert_eq!(log["token_requests"], 1, "{log}");
    for call in log["calls"].as_array().unwrap() {
        let auth = call["headers"]["authorization"].as_str().unwrap();
        assert!(auth.starts_with("Bearer ya29."), "{auth}");
        assert!(!call.to_string().contains(&writ));
    }
}

#[tokio::test]
async fn tokens_are_refreshed_before_they_expire() {
    // A ten-minute token is refreshed after five.
    let mock = VertexMock::start(600).await;
    let gw = gateway(&mock, "service_account").await;
    let client = reqwest::Client::new();
    let call = |writ: String| {
        let client = client.clone();
        let url = gw.url(GENERATE);
        async move {
            let resp = client
                .post(url)
                .bearer_auth(writ)
                .json(&body())
                .send()
                .await
                .unwrap();
            resp.status()
        }
    };
    assert_eq!(call(gw.mint_as(GRANT, GRANT, 30)).await, StatusCode::OK);
    gw.clock().advance(Duration::from_secs(240));
    assert_eq!(call(gw.mint_as(GRANT, GRANT, 30)).await, StatusCode::OK);
    assert_eq!(mock.log().await["token_requests"], 1);
    gw.clock().advance(Duration::from_secs(61));
    assert_eq!(call(gw.mint_as(GRANT, GRANT, 30)).await, StatusCode::OK);
    assert_eq!(mock.log().await["token_requests"], 2);
}

#[tokio::test]
async fn a_refused_exchange_is_a_502_that_names_no_secret() {
    let mock = VertexMock::start(3599).await;
    // Same account, another private key: the token endpoint's signature check fails.
    let gw = gateway(&mock, "impostor").await;
    let writ = gw.mint_as(GRANT, GRANT, 30);
    let resp = reqwest::Client::new()
        .post(gw.url(GENERATE))
        .bearer_auth(&writ)
        .json(&body())
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::BAD_GATEWAY);
    let v: Value = resp.json().await.unwrap();
    // Google's error shape: the status in `status`, the gateway's code in its ErrorInfo.
    assert_eq!(v["error"]["status"], "UNAVAILABLE", "{v}");
    assert_eq!(
        v["error"]["details"][0]["metadata"]["code"], "upstream_auth_failed",
        "{v}"
    );
    let text = v.to_string();
    let impostor = mock.hello["impostor"]["private_key"].as_str().unwrap();
    for secret in [impostor, &mock.private_key()] {
        let line = secret.lines().nth(1).unwrap();
        assert!(!text.contains(line));
    }
    let log = mock.log().await;
    assert_eq!(log["token_refusals"], 1);
    assert!(log["calls"].as_array().unwrap().is_empty());
}

#[tokio::test]
async fn requests_must_name_the_configured_project_and_location() {
    let mock = VertexMock::start(3599).await;
    let gw = gateway(&mock, "service_account").await;
    let writ = gw.mint_as(GRANT, GRANT, 30);
    let client = reqwest::Client::new();
    for (path, status) in [
        (
            GENERATE.replace("writ-test-project", "someone-elses-project"),
            StatusCode::BAD_REQUEST,
        ),
        (
            GENERATE.replace("us-central1", "europe-west4"),
            StatusCode::BAD_REQUEST,
        ),
        (
            GENERATE.replace("/google/", "/anthropic/"),
            StatusCode::NOT_FOUND,
        ),
        (
            GENERATE.replace("gemini-2.0-flash", "gemini-2.5-pro"),
            StatusCode::FORBIDDEN,
        ),
    ] {
        let resp = client
            .post(gw.url(&path))
            .bearer_auth(&writ)
            .json(&body())
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), status, "{path}");
    }
    // Nothing was refused upstream, and no token was fetched for a refused request.
    let log = mock.log().await;
    assert_eq!(log["token_requests"], 0);
}
