//! Detectors' modes end to end: a secret in a prompt is blocked (one denial record naming
//! the detection, nothing sent upstream) or, where a tenant chose `monitor`, let through
//! and recorded; responses in `monitor` mode keep third-party secrets but never the
//! gateway's own key; the detections API and the Prometheus counters show it all; client
//! addresses are recorded only as pseudonyms.
#![allow(clippy::unwrap_used)]

use reqwest::StatusCode;
use serde_json::{Value, json};
use writ_testkit::{MockUpstream, Script, ScriptEnd, TestGateway};

const KEY: &str = "sk-proj-UpstreamKeyThatMustNeverLeak0123456789";
const GRANT: &str = r#"{"type":"writ:llm","upstream":"demo"}"#;
const ADMIN: &str = r#"{"type":"writ:admin"}"#;
const AWS_KEY: &str = "AKIAIOSFODNN7EXAMPLE";

async fn gateway(extra: &str, script: Option<Script>) -> (MockUpstream, TestGateway) {
    let upstream = match script {
        Some(script) => MockUpstream::start_scripted(KEY, script).await,
        None => MockUpstream::start(KEY).await,
    };
    let gw = TestGateway::start(&format!(
        "[upstreams.demo]\nkind = \"openai\"\nbase_url = \"{}\"\nallow_private_network = true\napi_key = \"{KEY}\"\n{extra}",
        upstream.base_url()
    ))
    .await;
    (upstream, gw)
}

async fn records(gw: &TestGateway) -> Vec<Value> {
    // Outcome records are not waited for by their requests: let the writer write them.
    gw.gateway().audit_checkpoint().await;
    gw.gateway()
        .audit_export()
        .await
        .unwrap()
        .iter()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .filter(|r| r.get("kind").is_some())
        .collect()
}

fn prompt_with_secret() -> Value {
    json!({"model": "gpt-4o-mini", "messages": [{"role": "user", "content": format!("deploy with AWS_ACCESS_KEY_ID={AWS_KEY} please")}]})
}

#[tokio::test]
async fn a_secret_in_a_prompt_is_blocked_with_one_record_and_nothing_sent() {
    let (upstream, gw) = gateway("", None).await;
    let resp = reqwest::Client::new()
        .post(gw.url("/v1/chat/completions"))
        .bearer_auth(gw.mint("demo", GRANT, 30))
        .json(&prompt_with_secret())
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::BAD_REQUEST);
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["error"]["code"], "secret_in_request");
    assert_eq!(body["error"]["type"], "invalid_request_error");
    let message = body["error"]["message"].as_str().unwrap();
    assert!(message.contains("aws-access-key-id"), "{message}");
    assert!(!message.contains(AWS_KEY), "{message}");
    assert!(
        upstream.requests().is_empty(),
        "nothing reaches the upstream"
    );

    let all = records(&gw).await;
    assert_eq!(all.len(), 1, "exactly one record: {all:?}");
    let r = &all[0];
    assert_eq!(r["kind"], "request_denied");
    assert_eq!(r["status"], 400);
    assert_eq!(r["decision"]["check"], "prompt_secret");
    assert_eq!(r["decision"]["code"], "secret_in_request");
    assert_eq!(r["detail"]["detector"], "prompt_secret");
    assert_eq!(r["detail"]["action"], "blocked");
    assert_eq!(r["detail"]["rules"], json!(["aws-access-key-id"]));
    assert!(!r.to_string().contains(AWS_KEY));

    // The detections API lists it; the counters count it.
    let admin = gw.mint_as(ADMIN, ADMIN, 30);
    let listed: Value = reqwest::Client::new()
        .get(gw.url("/admin/v1/detections?detector=prompt_secret"))
        .bearer_auth(&admin)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(listed["records"].as_array().unwrap().len(), 1, "{listed}");
    let none: Value = reqwest::Client::new()
        .get(gw.url("/admin/v1/detections?detector=brute_force"))
        .bearer_auth(&admin)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(none["records"], json!([]));
    let metrics = reqwest::get(gw.url("/metrics"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        metrics
            .contains("writ_detections_total{detector=\"prompt_secret\",action=\"blocked\"} 1\n"),
        "{metrics}"
    );
}

#[tokio::test]
async fn a_tenant_in_monitor_mode_gets_through_and_is_recorded() {
    let (upstream, gw) = gateway(
        "[detection.tenants.acme]\nprompt_secret = \"monitor\"\n",
        None,
    )
    .await;
    let client = reqwest::Client::new();
    // acme monitors.
    let resp = client
        .post(gw.url("/v1/chat/completions"))
        .bearer_auth(gw.mint_in("acme", GRANT, GRANT, 30))
        .json(&prompt_with_secret())
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    assert_eq!(upstream.requests().len(), 1);
    // Everyone else still blocks.
    let resp = client
        .post(gw.url("/v1/chat/completions"))
        .bearer_auth(gw.mint("demo", GRANT, 30))
        .json(&prompt_with_secret())
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::BAD_REQUEST);
    assert_eq!(upstream.requests().len(), 1);

    let all = records(&gw).await;
    // (The mock echoes the prompt, so the response redaction fires too.)
    let monitored: Vec<&Value> = all
        .iter()
        .filter(|r| r["kind"] == "detection" && r["detail"]["location"] == "request")
        .collect();
    assert_eq!(monitored.len(), 1, "{all:?}");
    assert_eq!(monitored[0]["tenant"], "acme");
    assert_eq!(monitored[0]["detail"]["action"], "monitored");
    assert_eq!(monitored[0]["detail"]["location"], "request");
    assert_eq!(
        all.iter()
            .filter(|r| r["kind"] == "request_allowed" && r["tenant"] == "acme")
            .count(),
        1
    );
}

#[tokio::test]
async fn monitor_mode_on_responses_still_redacts_the_gateways_own_key() {
    let body = json!({
        "id": "chatcmpl-1", "object": "chat.completion", "model": "gpt-4o-mini",
        "choices": [{"index": 0, "message": {"role": "assistant", "content": format!("OPENAI_API_KEY={KEY} AWS={AWS_KEY}")}, "finish_reason": "stop"}],
        "usage": {"prompt_tokens": 5, "completion_tokens": 20, "total_tokens": 25}
    });
    let (_upstream, gw) = gateway(
        "[detection.modes]\nresponse_secret = \"monitor\"\n",
        Some(Script {
            status: 200,
            content_type: "application/json",
            chunks: vec![body.to_string().into_bytes()],
            then: ScriptEnd::End,
        }),
    )
    .await;
    let resp = reqwest::Client::new()
        .post(gw.url("/v1/chat/completions"))
        .bearer_auth(gw.mint("demo", GRANT, 30))
        .json(&json!({"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}]}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    let v: Value = resp.json().await.unwrap();
    let content = v["choices"][0]["message"]["content"].as_str().unwrap();
    assert!(!content.contains(KEY), "{content}");
    assert!(
        content.contains("[REDACTED:configured-secret]"),
        "{content}"
    );
    assert!(
        content.contains(AWS_KEY),
        "monitor lets it through: {content}"
    );
    let all = records(&gw).await;
    let actions: Vec<(String, Value)> = all
        .iter()
        .filter(|r| r["kind"] == "detection")
        .map(|r| {
            (
                r["detail"]["action"].as_str().unwrap().to_string(),
                r["detail"]["rules"].clone(),
            )
        })
        .collect();
    assert_eq!(
        actions,
        vec![
            ("redacted".to_string(), json!(["configured-secret"])),
            ("monitored".to_string(), json!(["aws-access-key-id"])),
        ]
    );
}

/// Something the built-in writ rule matches (a writ's shape), without a gateway to mint it.
fn writ_shaped() -> String {
    format!("writ_{}", "Ab3-x_9Z".repeat(10))
}

#[tokio::test]
async fn off_mode_on_responses_still_redacts_the_gateways_own_key_and_writs() {
    let content = format!("OPENAI_API_KEY={KEY} token={} AWS={AWS_KEY}", writ_shaped());
    let body = json!({
        "id": "chatcmpl-1", "object": "chat.completion", "model": "gpt-4o-mini",
        "choices": [{"index": 0, "message": {"role": "assistant", "content": content}, "finish_reason": "stop"}],
        "usage": {"prompt_tokens": 5, "completion_tokens": 20, "total_tokens": 25}
    });
    let chunk = json!({"id": "chatcmpl-2", "object": "chat.completion.chunk", "model": "gpt-4o-mini",
        "choices": [{"index": 0, "delta": {"content": content}, "finish_reason": null}]});
    let sse = format!("data: {chunk}\n\ndata: [DONE]\n\n");
    for (script, stream) in [
        (("application/json", body.to_string()), false),
        (("text/event-stream", sse), true),
    ] {
        let (_upstream, gw) = gateway(
            "[detection.modes]\nresponse_secret = \"off\"\n",
            Some(Script {
                status: 200,
                content_type: script.0,
                chunks: vec![script.1.into_bytes()],
                then: ScriptEnd::End,
            }),
        )
        .await;
        let resp = reqwest::Client::new()
            .post(gw.url("/v1/chat/completions"))
            .bearer_auth(gw.mint("demo", GRANT, 30))
            .json(&json!({"model": "gpt-4o-mini", "stream": stream, "messages": [{"role": "user", "content": "hi"}]}))
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), StatusCode::OK);
        let text = resp.text().await.unwrap();
        assert!(!text.contains(KEY), "{text}");
        assert!(!text.contains(&writ_shaped()), "{text}");
        assert!(text.contains("[REDACTED:configured-secret]"), "{text}");
        assert!(text.contains("[REDACTED:writ]"), "{text}");
        assert!(
            text.contains(AWS_KEY),
            "off lets third-party keys through: {text}"
        );
        let detections: Vec<(Value, Value)> = records(&gw)
            .await
            .iter()
            .filter(|r| r["kind"] == "detection")
            .map(|r| (r["detail"]["action"].clone(), r["detail"]["rules"].clone()))
            .collect();
        assert_eq!(
            detections,
            vec![(json!("redacted"), json!(["configured-secret", "writ"]))],
            "stream: {stream}"
        );
    }
}

#[tokio::test]
async fn records_carry_a_client_pseudonym_never_the_address() {
    let (_upstream, gw) = gateway("", None).await;
    let resp = reqwest::Client::new()
        .post(gw.url("/v1/chat/completions"))
        .bearer_auth(gw.mint("demo", GRANT, 30))
        .json(&json!({"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}]}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    let denied = reqwest::Client::new()
        .post(gw.url("/v1/chat/completions"))
        .json(&json!({}))
        .send()
        .await
        .unwrap();
    assert_eq!(denied.status(), StatusCode::UNAUTHORIZED);
    // The allowed request's decision and outcome, and the refusal.
    let all = records(&gw).await;
    assert_eq!(all.len(), 3);
    let first = all[0]["client"].as_str().unwrap();
    assert_eq!(first.len(), 32);
    assert!(first.chars().all(|c| c.is_ascii_hexdigit()));
    assert_eq!(
        all[1]["client"], all[0]["client"],
        "same address, same pseudonym"
    );
    for r in &all {
        assert!(!r.to_string().contains("127.0.0.1"), "{r}");
    }
}

#[tokio::test]
async fn client_addresses_can_be_left_out() {
    let (_upstream, gw) = gateway("[audit]\nclient_addresses = false\n", None).await;
    let denied = reqwest::Client::new()
        .post(gw.url("/v1/chat/completions"))
        .json(&json!({}))
        .send()
        .await
        .unwrap();
    assert_eq!(denied.status(), StatusCode::UNAUTHORIZED);
    let all = records(&gw).await;
    assert_eq!(all.len(), 1);
    assert!(all[0].get("client").is_none(), "{}", all[0]);
}

#[test]
fn detection_config_is_checked() {
    use writ_gateway::config::{Config, ConfigError, DetectionConfigError as E, RawConfig};
    let parse =
        |text: &str| RawConfig::from_toml(text).and_then(|raw| Config::from_raw(raw, &|_| None));
    let refused = |text: &str| match parse(text) {
        Err(ConfigError::Detection { field, error }) => (field, error),
        other => panic!("{text}: {other:?}"),
    };
    let cases: [(&str, &str, E); 9] = [
        (
            "[detection.modes]\nprompt_secret = \"loud\"\n",
            "detection.modes.prompt_secret",
            E::UnknownMode("loud".into()),
        ),
        (
            "[detection.modes]\nsecrets = \"block\"\n",
            "detection.modes.secrets",
            E::UnknownDetector("secrets".into()),
        ),
        (
            "[detection.modes]\nopenai-api-key = \"off\"\n",
            "detection.modes.openai-api-key",
            E::UnknownDetector("openai-api-key".into()),
        ),
        (
            "[detection.brute_force]\nbackoff_after = 30\n",
            "detection.brute_force.lockout_after",
            E::Thresholds {
                first: "backoff_after",
                second: "lockout_after",
            },
        ),
        (
            "[detection.brute_force]\ndata_plane_block_after = 0\n",
            "detection.brute_force.data_plane_block_after",
            E::Thresholds {
                first: "data_plane_backoff_after",
                second: "data_plane_block_after",
            },
        ),
        (
            "[detection.brute_force]\nlockout = \"0s\"\n",
            "detection.brute_force.lockout",
            E::DurationOutOfRange,
        ),
        (
            "[detection.brute_force]\nbackoff_base = \"2m\"\n",
            "detection.brute_force.backoff_max",
            E::BackoffMaxBelowBase,
        ),
        (
            "[detection.brute_force]\nnamespace = \"a/b\"\n",
            "detection.brute_force.namespace",
            E::Namespace,
        ),
        (
            "[detection.brute_force]\nwindow = \"30d\"\n",
            "detection.brute_force.window",
            E::DurationOutOfRange,
        ),
    ];
    for (text, key, error) in cases {
        assert_eq!(refused(text), (key.to_string(), error), "{text}");
    }
    // The messages say what is wrong, as before.
    let message = parse("[detection.brute_force]\nbackoff_after = 30\n")
        .unwrap_err()
        .to_string();
    assert!(
        message.contains("need 1 ≤ backoff_after ≤ lockout_after"),
        "{message}"
    );
    assert!(matches!(
        parse("[detection.tenants.\"bad tenant\"]\nprompt_secret = \"off\"\n"),
        Err(ConfigError::Invalid { field, .. }) if field.starts_with("detection.tenants")
    ));
    assert!(matches!(
        parse("[detection]\nmode = \"block\"\n"),
        Err(ConfigError::Parse(message)) if message.contains("unknown field")
    ));
    let ok = parse("[detection.modes]\nurl_credential = \"off\"\n[detection.tenants.acme]\nprompt_secret = \"monitor\"\n").unwrap();
    use writ_gateway::detect::detections::{Detector, Mode};
    assert_eq!(ok.detection.mode(Detector::UrlCredential, None), Mode::Off);
    assert_eq!(
        ok.detection.mode(Detector::PromptSecret, Some("acme")),
        Mode::Monitor
    );
    assert_eq!(
        ok.detection.mode(Detector::PromptSecret, Some("other")),
        Mode::Block
    );
    assert_eq!(
        ok.detection.mode(Detector::ResponseSecret, Some("acme")),
        Mode::Block
    );
}

/// A detection reaches a webhook over HTTPS (a receiver behind a private CA, trusted via
/// `ca_file`), signed, naming the detector and rules, never the secret; the request it
/// blocked was answered without waiting for the delivery.
#[tokio::test]
async fn detections_are_posted_to_a_signed_https_webhook() {
    const SECRET: &str = "whsec-test-0123456789abcdef";
    let certs = writ_testkit::TestCertificates::generate();
    let mut hook = writ_testkit::WebhookReceiver::start(&certs).await;

    let (upstream, gw) = gateway(
        &format!(
            "[[detection.webhooks]]\nurl = \"{}\"\nsecret = \"{SECRET}\"\nca_file = {:?}\nallow_private_network = true\ndetectors = [\"prompt_secret\"]\n",
            hook.url(),
            certs.ca
        ),
        None,
    )
    .await;
    let resp = reqwest::Client::new()
        .post(gw.url("/v1/chat/completions"))
        .bearer_auth(gw.mint("demo", GRANT, 30))
        .json(&prompt_with_secret())
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::BAD_REQUEST);
    assert!(upstream.requests().is_empty());

    let (headers, body) = hook.next().await;
    let header = |name: &str| headers[name].to_str().unwrap().to_string();
    assert!(writ_gateway::detect::webhook::verify_signature(
        SECRET.as_bytes(),
        &header("writ-webhook-id"),
        &header("writ-webhook-timestamp"),
        &body,
        &header("writ-webhook-signature"),
    ));
    let event: Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(event["type"], "detection");
    assert_eq!(event["detector"], "prompt_secret");
    assert_eq!(event["action"], "blocked");
    assert_eq!(event["rules"], json!(["aws-access-key-id"]));
    assert_eq!(event["tenant"], "default");
    let text = String::from_utf8_lossy(&body);
    assert!(!text.contains(AWS_KEY) && !text.contains("writ_"), "{text}");
    let metrics = reqwest::get(gw.url("/metrics"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        metrics.contains("writ_webhook_events_total{outcome=\"dropped\"} 0"),
        "{metrics}"
    );
}

#[test]
fn webhook_config_is_checked() {
    use writ_gateway::config::{Config, RawConfig};
    let parse = |text: &str| {
        RawConfig::from_toml(text).and_then(|raw| {
            Config::from_raw(raw, &|name| {
                (name == "HOOK_SECRET").then(|| "from-the-environment-123".to_string())
            })
        })
    };
    let ok = parse("[[detection.webhooks]]\nurl = \"https://hooks.example.com/writ\"\nsecret = \"${env:HOOK_SECRET}\"\n").unwrap();
    assert_eq!(ok.detection.webhooks.len(), 1);
    assert!(!format!("{:?}", ok.detection).contains("from-the-environment-123"));
    for (text, needle) in [
        (
            "[[detection.webhooks]]\nurl = \"ftp://x.example\"\nsecret = \"0123456789abcdef\"\n",
            "http or https",
        ),
        (
            "[[detection.webhooks]]\nurl = \"https://x.example\"\n",
            "secret",
        ),
        (
            "[[detection.webhooks]]\nurl = \"https://x.example\"\nsecret = \"${env:NOPE}\"\n",
            "NOPE",
        ),
        (
            "[[detection.webhooks]]\nurl = \"https://x.example\"\nsecret = \"0123456789abcdef\"\nca_file = \"/nonexistent.pem\"\n",
            "ca_file",
        ),
        (
            "[[detection.webhooks]]\nurl = \"https://x.example\"\nsecret = \"0123456789abcdef\"\nheaders = 1\n",
            "unknown field",
        ),
        (
            "[[detection.webhooks]]\nurl = \"http://127.0.0.1:9/hook\"\nsecret = \"0123456789abcdef\"\n",
            "allow_private_network",
        ),
        (
            "[[detection.webhooks]]\nurl = \"http://[::1]:9/hook\"\nsecret = \"0123456789abcdef\"\n",
            "allow_private_network",
        ),
    ] {
        let err = parse(text).unwrap_err().to_string();
        assert!(err.contains(needle), "{text}: {err}");
    }
}
