//! A provider's raw API key presented where a writ belongs is refused as any invalid writ
//! is, and surfaces as a `raw_provider_key` detection: counted, in the denial's audit
//! record by rule name, and sent to the webhooks — never the key itself (issue 18, item 6).
#![allow(clippy::unwrap_used)]

use reqwest::StatusCode;
use serde_json::Value;
use writ_testkit::{MockUpstream, TestCertificates, TestGateway, WebhookReceiver};

const UPSTREAM_KEY: &str = "sk-proj-UpstreamKeyThatMustNeverLeak0123456789";
const HOOK_SECRET: &str = "whsec-test-0123456789abcdef";

/// Raw keys an agent might hold, the header an SDK would send them in, and the rule.
fn raw_keys() -> Vec<(&'static str, String, &'static str)> {
    vec![
        (
            "authorization",
            format!(
                "Bearer sk-proj-{}",
                "Ab3dE5gH7jK9mN1pQ3sT5vW7yZ9bC1dF3hJ5kL7nP9rS1tV3"
            ),
            "openai-api-key",
        ),
        (
            "x-api-key",
            format!("sk-ant-api03-{}-{}AA", "x".repeat(86), "Yz"),
            "anthropic-api-key",
        ),
        (
            "x-goog-api-key",
            "AIzaSyD-9tSrke72PouQMnMX-a7eZSW0jkFMBWY".to_string(),
            "google-api-key",
        ),
        // The gateway's own upstream credential, leaked to an agent.
        (
            "authorization",
            format!("Bearer {UPSTREAM_KEY}"),
            "configured-secret",
        ),
    ]
}

#[tokio::test]
async fn a_raw_provider_key_as_bearer_is_a_detection_and_still_401() {
    let certs = TestCertificates::generate();
    let mut hook = WebhookReceiver::start(&certs).await;
    let upstream = MockUpstream::start(UPSTREAM_KEY).await;
    let gw = TestGateway::start(&format!(
        "[upstreams.demo]\nkind = \"openai\"\nbase_url = \"{}\"\nallow_private_network = true\napi_key = \"{UPSTREAM_KEY}\"\n\
         [[detection.webhooks]]\nurl = \"{}\"\nsecret = \"{HOOK_SECRET}\"\nca_file = {:?}\nallow_private_network = true\n",
        upstream.base_url(),
        hook.url(),
        certs.ca
    ))
    .await;
    let keys = raw_keys();
    for (header, value, rule) in &keys {
        let resp = reqwest::Client::new()
            .post(gw.url("/v1/chat/completions"))
            .header(*header, value)
            .json(&serde_json::json!({"model":"gpt-4o-mini","messages":[]}))
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), StatusCode::UNAUTHORIZED, "{rule}");
        let body: Value = resp.json().await.unwrap();
        assert_eq!(body["error"]["code"], "invalid_writ", "{rule}: {body}");

        // A bound, not a wait: without the detection no delivery ever comes.
        let (_, delivery) = tokio::time::timeout(std::time::Duration::from_secs(30), hook.next())
            .await
            .expect("a webhook delivery for the raw key");
        let event: Value = serde_json::from_slice(&delivery).unwrap();
        assert_eq!(event["detector"], "raw_provider_key", "{event}");
        assert_eq!(event["rules"], serde_json::json!([rule]), "{event}");
        let text = String::from_utf8_lossy(&delivery);
        let secret = value.trim_start_matches("Bearer ");
        assert!(
            !text.contains(secret),
            "the webhook carries the key: {text}"
        );
    }
    assert!(upstream.requests().is_empty());

    // One denial record per request, naming the detector and the rule, never the key.
    let lines = gw.gateway().audit_export().await.unwrap();
    let denials: Vec<Value> = lines
        .iter()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .filter(|r| r["kind"] == "request_denied")
        .collect();
    assert_eq!(denials.len(), keys.len(), "{denials:?}");
    for (record, (_, _, rule)) in denials.iter().zip(&keys) {
        assert_eq!(record["decision"]["check"], "raw_provider_key", "{record}");
        assert!(record.to_string().contains(rule), "{record}");
    }
    let all = lines.join("\n");
    for (_, value, _) in &keys {
        assert!(!all.contains(value.trim_start_matches("Bearer ")));
    }
    let metrics = reqwest::get(gw.url("/metrics"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        metrics.contains(&format!(
            "writ_detections_total{{detector=\"raw_provider_key\",action=\"blocked\"}} {}\n",
            keys.len()
        )),
        "{metrics}"
    );
}

#[tokio::test]
async fn an_invalid_writ_or_a_random_bearer_is_no_provider_key_detection() {
    let upstream = MockUpstream::start(UPSTREAM_KEY).await;
    let gw = TestGateway::start(&format!(
        "[upstreams.demo]\nkind = \"openai\"\nbase_url = \"{}\"\nallow_private_network = true\napi_key = \"{UPSTREAM_KEY}\"\n",
        upstream.base_url()
    ))
    .await;
    for bearer in ["writ_notreallyawrit", "hello-world-not-a-key"] {
        let resp = reqwest::Client::new()
            .post(gw.url("/v1/chat/completions"))
            .bearer_auth(bearer)
            .json(&serde_json::json!({"model":"gpt-4o-mini","messages":[]}))
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), StatusCode::UNAUTHORIZED);
    }
    let metrics = reqwest::get(gw.url("/metrics"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        metrics.contains(
            "writ_detections_total{detector=\"raw_provider_key\",action=\"blocked\"} 0\n"
        ),
        "{metrics}"
    );
}
