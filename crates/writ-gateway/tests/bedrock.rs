//! AWS Bedrock through the gateway: the agent holds a writ, never AWS keys; the gateway
//! signs each final request with SigV4, and a mock that recomputes the signature with
//! botocore accepts it (and refuses a wrong one). Usage from Converse bodies, `invoke`
//! headers and event-stream frames; boto3 works unchanged.
#![allow(clippy::unwrap_used)]

use std::path::Path;
use std::process::Stdio;

use reqwest::StatusCode;
use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};
use writ_gateway::audit::usage_log::Outcome;
use writ_testkit::{TestCertificates, TestGateway, python, run_python_lines};

const ACCESS_KEY: &str = "AKIDWRITTESTEXAMPLE";
const SECRET: &str = "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY";
const TOKEN: &str = "IQoJb3JpZ2luX2VjEXAMPLEsessiontoken";
const MODEL: &str = "anthropic.claude-3-haiku-20240307-v1:0";
const GRANT: &str = r#"{"type":"writ:llm","upstream":"bedrock","models":["anthropic.claude-3-haiku-20240307-v1:0","mock.echo-bytewise","mock.echo-cut","mock.echo-nousage"]}"#;

/// The botocore-checking mock, running until dropped.
struct BedrockMock {
    _child: Child,
    base_url: String,
}

impl BedrockMock {
    async fn start(session_token: Option<&str>) -> Self {
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/python/bedrock_mock.py");
        let mut command = Command::new(python());
        command
            .arg(script)
            .env("MOCK_AWS_ACCESS_KEY_ID", ACCESS_KEY)
            .env("MOCK_AWS_SECRET_ACCESS_KEY", SECRET)
            .env("MOCK_AWS_REGION", "us-east-1")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .kill_on_drop(true);
        if let Some(token) = session_token {
            command.env("MOCK_AWS_SESSION_TOKEN", token);
        }
        let mut child = command.spawn().unwrap();
        let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
        let first = lines.next_line().await.unwrap().expect("the mock's port");
        let port = serde_json::from_str::<Value>(&first).unwrap()["port"]
            .as_u64()
            .unwrap();
        Self {
            _child: child,
            base_url: format!("http://127.0.0.1:{port}"),
        }
    }

    async fn requests(&self) -> Vec<Value> {
        reqwest::get(format!("{}/__requests", self.base_url))
            .await
            .unwrap()
            .json()
            .await
            .unwrap()
    }
}

fn upstream_config(mock: &BedrockMock, secret: &str, token: Option<&str>) -> String {
    let token = token
        .map(|t| format!("aws_session_token = \"{t}\"\n"))
        .unwrap_or_default();
    format!(
        "[upstreams.bedrock]\nkind = \"bedrock\"\nregion = \"us-east-1\"\nbase_url = \"{}\"\nallow_private_network = true\naws_access_key_id = \"{ACCESS_KEY}\"\naws_secret_access_key = \"{secret}\"\n{token}",
        mock.base_url
    )
}

async fn gateway(mock: &BedrockMock, secret: &str, token: Option<&str>) -> TestGateway {
    TestGateway::start(&upstream_config(mock, secret, token)).await
}

fn converse_body(max_tokens: u64) -> Value {
    json!({
        "messages": [{"role": "user", "content": [{"text": "three words here"}]}],
        "inferenceConfig": {"maxTokens": max_tokens}
    })
}

#[tokio::test]
async fn boto3_converse_and_stream_are_signed_and_metered() {
    let mock = BedrockMock::start(None).await;
    // boto3 sends a bearer token only over HTTPS.
    let certs = TestCertificates::generate();
    let gw = TestGateway::start_tls(&upstream_config(&mock, SECRET, None), &certs).await;
    let writ = gw.mint_as(GRANT, GRANT, 30);
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/python/bedrock_sdk.py");
    let base = gw.url("");
    let lines = run_python_lines(
        &script,
        &[
            ("WRIT_BASE_URL", base.as_str()),
            ("AWS_BEARER_TOKEN_BEDROCK", writ.as_str()),
            ("AWS_CA_BUNDLE", certs.ca.to_str().unwrap()),
        ],
    )
    .await;
    assert_eq!(lines.len(), 3, "{lines:?}");
    // Two calls reached the model; the denied one never left the gateway.
    let recorded = gw.gateway().recent_usage();
    assert_eq!(recorded.len(), 2);
    for (line, record) in lines.iter().zip(&recorded) {
        assert_eq!(record.usage.input_tokens, line["input"].as_u64().unwrap());
        assert_eq!(record.usage.output_tokens, line["output"].as_u64().unwrap());
        assert!(!record.estimated);
        assert_eq!(record.model.as_deref(), Some(MODEL));
        // Claude 3 Haiku on Bedrock: $0.25 in, $1.25 out per million tokens.
        let expected =
            (record.usage.input_tokens * 25 + record.usage.output_tokens * 125).div_ceil(100);
        assert_eq!(record.cost_usd_micros, Some(expected), "{record:?}");
    }
    let seen = mock.requests().await;
    assert_eq!(seen.len(), 2);
    for r in &seen {
        let headers = r["headers"].as_object().unwrap();
        let auth = headers["authorization"].as_str().unwrap();
        assert!(
            auth.starts_with("AWS4-HMAC-SHA256 Credential=AKIDWRITTESTEXAMPLE/"),
            "{auth}"
        );
        assert!(
            !r.to_string().contains(&writ),
            "the writ reached the upstream"
        );
        // The model id's ':' stays percent-encoded on the wire, as boto3 sent it.
        assert!(r["path"].as_str().unwrap().contains("v1%3A0"), "{r}");
    }
}

#[tokio::test]
async fn a_wrong_secret_is_refused_by_the_signature_check_and_not_leaked() {
    let mock = BedrockMock::start(None).await;
    let wrong = "wJalrXUtnFEMI/K7MDENG+bPxRfiCYWRONGKEYX";
    let gw = gateway(&mock, wrong, None).await;
    let writ = gw.mint_as(GRANT, GRANT, 30);
    let resp = reqwest::Client::new()
        .post(gw.url(&format!("/model/{}/converse", MODEL.replace(':', "%3A"))))
        .bearer_auth(&writ)
        .json(&converse_body(8))
        .send()
        .await
        .unwrap();
    // AWS refused the gateway's credential: the operator's problem (502), said in AWS's
    // error shape, and AWS's own body is not passed on.
    assert_eq!(resp.status(), StatusCode::BAD_GATEWAY);
    let text = resp.text().await.unwrap();
    let v: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(v["code"], "upstream_auth_failed", "{v}");
    assert!(
        v["message"]
            .as_str()
            .unwrap()
            .contains("refused the gateway's credential (403)"),
        "{v}"
    );
    assert!(!text.contains("signature mismatch"), "{text}");
    assert!(!text.contains(wrong) && !text.contains(SECRET));
}

#[tokio::test]
async fn temporary_credentials_send_the_session_token() {
    let mock = BedrockMock::start(Some(TOKEN)).await;
    let writ_of = |gw: &TestGateway| gw.mint_as(GRANT, GRANT, 30);
    let url = format!("/model/{}/converse", MODEL.replace(':', "%3A"));
    // Without the token configured the mock refuses; with it, it accepts.
    let without = gateway(&mock, SECRET, None).await;
    let resp = reqwest::Client::new()
        .post(without.url(&url))
        .bearer_auth(writ_of(&without))
        .json(&converse_body(8))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::BAD_GATEWAY);
    let with = gateway(&mock, SECRET, Some(TOKEN)).await;
    let resp = reqwest::Client::new()
        .post(with.url(&url))
        .bearer_auth(writ_of(&with))
        // An agent's own signing headers are dropped, never forwarded or signed.
        .header("x-amz-security-token", "agent-chosen")
        .header("x-amz-date", "19990101T000000Z")
        .json(&converse_body(8))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    let last = mock.requests().await.pop().unwrap();
    assert_eq!(last["headers"]["x-amz-security-token"], TOKEN);
}

#[tokio::test]
async fn invoke_is_metered_from_the_token_count_headers() {
    let mock = BedrockMock::start(None).await;
    let gw = gateway(&mock, SECRET, None).await;
    let writ = gw.mint_as(GRANT, GRANT, 30);
    let resp = reqwest::Client::new()
        .post(gw.url(&format!("/model/{}/invoke", MODEL.replace(':', "%3A"))))
        .bearer_auth(&writ)
        .json(&json!({
            "anthropic_version": "bedrock-2023-05-31",
            "max_tokens": 3,
            "messages": [{"role": "user", "content": "one two"}]
        }))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    assert_eq!(resp.headers()["x-amzn-bedrock-output-token-count"], "3");
    let r = gw.gateway().recent_usage().pop().unwrap();
    assert_eq!((r.usage.input_tokens, r.usage.output_tokens), (2, 3));
    assert!(!r.estimated);
}

async fn stream(gw: &TestGateway, model: &str, action: &str) -> (StatusCode, Result<Vec<u8>, ()>) {
    let writ = gw.mint_as(GRANT, GRANT, 30);
    let body = if action == "converse-stream" {
        converse_body(4)
    } else {
        json!({"anthropic_version": "bedrock-2023-05-31", "max_tokens": 4, "messages": []})
    };
    let resp = reqwest::Client::new()
        .post(gw.url(&format!("/model/{model}/{action}")))
        .bearer_auth(&writ)
        .json(&body)
        .send()
        .await
        .unwrap();
    let status = resp.status();
    (
        status,
        resp.bytes().await.map(|b| b.to_vec()).map_err(|_| ()),
    )
}

#[tokio::test]
async fn event_streams_are_metered_however_they_arrive() {
    let mock = BedrockMock::start(None).await;
    let gw = gateway(&mock, SECRET, None).await;

    // One byte per chunk: every frame is still read, and the client gets every byte.
    let (status, body) = stream(&gw, "mock.echo-bytewise", "converse-stream").await;
    assert_eq!(status, StatusCode::OK);
    let body = body.unwrap();
    let mut reader = writ_providers::bedrock::FrameReader::new();
    assert_eq!(reader.push(&body).unwrap().len(), 8);
    let r = gw.gateway().recent_usage().pop().unwrap();
    assert_eq!((r.usage.input_tokens, r.usage.output_tokens), (3, 4));
    assert!(!r.estimated);

    // No usage frame: settled with an estimate, flagged as one.
    let (status, body) = stream(&gw, "mock.echo-nousage", "converse-stream").await;
    assert_eq!(status, StatusCode::OK);
    assert!(body.is_ok());
    let r = gw.gateway().recent_usage().pop().unwrap();
    assert!(r.estimated);
    assert!(
        r.usage.output_tokens > 0 && r.usage.input_tokens > 0,
        "{r:?}"
    );

    // Cut off inside the last frame: the client sees the cut, the call is still settled.
    let (status, body) = stream(&gw, "mock.echo-cut", "converse-stream").await;
    assert_eq!(status, StatusCode::OK);
    assert!(body.is_err(), "a cut stream must not look complete");
    let r = gw.gateway().recent_usage().pop().unwrap();
    assert_eq!(r.outcome, Outcome::UpstreamCut);
    assert!(r.estimated);

    // InvokeModelWithResponseStream: usage from the invocation metrics of the last chunk.
    let (status, body) = stream(&gw, MODEL, "invoke-with-response-stream").await;
    assert_eq!(status, StatusCode::OK);
    assert!(body.is_ok());
    let r = gw.gateway().recent_usage().pop().unwrap();
    assert_eq!((r.usage.input_tokens, r.usage.output_tokens), (1, 4));
    assert!(!r.estimated);
}

#[tokio::test]
async fn hostile_requests_are_refused_before_signing() {
    let mock = BedrockMock::start(None).await;
    let gw = gateway(&mock, SECRET, None).await;
    let writ = gw.mint_as(GRANT, GRANT, 30);
    let client = reqwest::Client::new();
    for (path, body, status) in [
        ("/model/m%zz/converse", "{}", StatusCode::NOT_FOUND),
        (
            &format!("/model/{MODEL}/converse") as &str,
            "not json",
            StatusCode::BAD_REQUEST,
        ),
        (
            &format!("/model/{MODEL}/converse"),
            r#"{"messages":"hi"}"#,
            StatusCode::BAD_REQUEST,
        ),
        (
            &format!("/model/{MODEL}/converse"),
            r#"{"messages":[],"inferenceConfig":{"maxTokens":"lots"}}"#,
            StatusCode::BAD_REQUEST,
        ),
        // Not in the grant.
        (
            "/model/amazon.nova-pro-v1%3A0/converse",
            r#"{"messages":[]}"#,
            StatusCode::FORBIDDEN,
        ),
    ] {
        let resp = client
            .post(gw.url(path))
            .bearer_auth(&writ)
            .header("content-type", "application/json")
            .body(body.to_string())
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), status, "{path} {body}");
        let v: Value = resp.json().await.unwrap();
        // Bedrock's routes answer in AWS's error shape.
        assert!(v["message"].is_string() && v["__type"].is_string(), "{v}");
    }
    assert!(mock.requests().await.is_empty());
}
