//! `/metrics` as Prometheus reads it: parsed by the official Python parser
//! (`prometheus_client.parser`), every counter exact after a known sequence of requests,
//! agents named only when asked, no writ or token id anywhere, and an admin writ required
//! when `[metrics] require_admin` says so.
#![allow(clippy::unwrap_used)]

use std::path::Path;
use std::time::{Duration, Instant};

use reqwest::StatusCode;
use serde_json::{Value, json};
use writ_testkit::{MockUpstream, OAuthClient, TestGateway, run_python_lines};

const KEY: &str = "sk-upstream-metrics-0123";
const CEILING: &str = r#"[{"type":"writ:llm","upstream":"demo","models":["gpt-4o-mini"]}]"#;
const GRANT: &str = r#"{"type":"writ:llm","upstream":"demo"}"#;
const ADMIN: &str = r#"{"type":"writ:admin"}"#;

async fn gateway(upstream: &MockUpstream, extra: &str) -> TestGateway {
    TestGateway::start(&format!(
        "{extra}\n[pricing.\"gpt-4o-mini\"]\ninput = 1.0\noutput = 2.0\n\
         [upstreams.demo]\nkind = \"openai\"\nbase_url = \"{}\"\nallow_private_network = true\napi_key = \"{KEY}\"\n",
        upstream.base_url()
    ))
    .await
}

async fn chat(gw: &TestGateway, writ: &str, stream: bool) -> StatusCode {
    let resp = reqwest::Client::new()
        .post(gw.url("/v1/chat/completions"))
        .bearer_auth(writ)
        .json(&json!({
            "model": "gpt-4o-mini",
            "messages": [{"role": "user", "content": "hello there"}],
            "max_tokens": 20,
            "stream": stream,
        }))
        .send()
        .await
        .unwrap();
    let status = resp.status();
    // Read to its end: a stream's metrics are recorded when it ends.
    let _ = resp.text().await.unwrap();
    status
}

/// One sample as the Python parser read it.
#[derive(Debug)]
struct Sample {
    family: String,
    kind: String,
    name: String,
    labels: serde_json::Map<String, Value>,
    value: f64,
}

/// `/metrics` read and parsed by `prometheus_client.parser`: its samples and Content-Type.
async fn scrape(gw: &TestGateway, bearer: Option<&str>) -> (Vec<Sample>, String) {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/python/metrics_parse.py");
    let url = gw.url("/metrics");
    let mut env = vec![("METRICS_URL", url.as_str())];
    if let Some(bearer) = bearer {
        env.push(("METRICS_BEARER", bearer));
    }
    let mut lines = run_python_lines(&script, &env).await;
    let last = lines.pop().unwrap();
    let samples = lines
        .into_iter()
        .map(|l| Sample {
            family: l["family"].as_str().unwrap().to_string(),
            kind: l["type"].as_str().unwrap().to_string(),
            name: l["name"].as_str().unwrap().to_string(),
            labels: l["labels"].as_object().unwrap().clone(),
            value: l["value"].as_f64().unwrap(),
        })
        .collect();
    (samples, last["content_type"].as_str().unwrap().to_string())
}

/// The value of the sample `name` whose labels include `labels`, if there is one; panics
/// when several match.
fn value(samples: &[Sample], name: &str, labels: &[(&str, &str)]) -> Option<f64> {
    let found: Vec<&Sample> = samples
        .iter()
        .filter(|s| {
            s.name == name
                && labels
                    .iter()
                    .all(|(k, v)| s.labels.get(*k).and_then(Value::as_str) == Some(v))
        })
        .collect();
    assert!(found.len() <= 1, "{name} {labels:?} matches {found:?}");
    found.first().map(|s| s.value)
}

/// The sum of every sample `name`.
fn total(samples: &[Sample], name: &str) -> f64 {
    samples
        .iter()
        .filter(|s| s.name == name)
        .map(|s| s.value)
        .sum()
}

/// The family `name`'s type as the parser read it.
fn kind<'a>(samples: &'a [Sample], family: &str) -> &'a str {
    samples
        .iter()
        .find(|s| s.family == family)
        .map(|s| s.kind.as_str())
        .unwrap_or_else(|| panic!("no family {family}"))
}

#[tokio::test]
async fn after_a_known_sequence_every_series_has_its_exact_value() {
    let upstream = MockUpstream::start(KEY).await;
    let gw = gateway(
        &upstream,
        "[[limit]]\nscope = \"agent\"\ndimension = \"requests\"\nper = \"day\"\nlimit = 4\n",
    )
    .await;
    let http = reqwest::Client::new();
    // A mint refused, then one issued.
    let refused = http
        .post(gw.url("/oauth2/token"))
        .form(&[("grant_type", "password")])
        .send()
        .await
        .unwrap();
    assert_eq!(refused.status(), StatusCode::BAD_REQUEST);
    let (_, secret) = OAuthClient::register(&gw, "metrics-agent", CEILING, false).await;
    let minted: Value = http
        .post(gw.url("/oauth2/token"))
        .form(&[
            ("grant_type", "client_credentials"),
            ("client_id", "metrics-agent"),
            ("client_secret", &secret),
            ("authorization_details", CEILING),
        ])
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let writ = minted["access_token"].as_str().unwrap().to_string();
    let token_id = writ_token::decode(&writ)
        .unwrap()
        .verify(&gw.keys().trusted)
        .unwrap()
        .claims()
        .token_id
        .clone();
    // Three chat calls and a stream under a limit of four requests; the fifth is refused;
    // then a request with a credential that is no writ.
    for _ in 0..3 {
        assert_eq!(chat(&gw, &writ, false).await, StatusCode::OK);
    }
    assert_eq!(chat(&gw, &writ, true).await, StatusCode::OK);
    assert_eq!(chat(&gw, &writ, false).await, StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(
        chat(&gw, "not-a-writ-at-all", false).await,
        StatusCode::UNAUTHORIZED
    );

    // The audit queue drains: scraped until it reads 0.
    let deadline = Instant::now() + Duration::from_secs(10);
    let (samples, content_type) = loop {
        let (samples, content_type) = scrape(&gw, None).await;
        if value(&samples, "writ_audit_queue_depth", &[]) == Some(0.0) {
            break (samples, content_type);
        }
        assert!(Instant::now() < deadline, "the audit queue never drained");
        tokio::task::yield_now().await;
    };
    assert!(
        content_type.starts_with("text/plain; version=0.0.4"),
        "{content_type}"
    );
    for (family, expected) in [
        ("writ_requests", "counter"),
        ("writ_tokens", "counter"),
        ("writ_cost_usd", "counter"),
        ("writ_mints", "counter"),
        ("writ_limit_decisions", "counter"),
        ("writ_detections", "counter"),
        ("writ_audit_sink_failures", "counter"),
        ("writ_gateway_overhead_seconds", "histogram"),
        ("writ_upstream_duration_seconds", "histogram"),
        ("writ_audit_queue_depth", "gauge"),
        ("writ_writ_cache_entries", "gauge"),
    ] {
        assert_eq!(kind(&samples, family), expected, "{family}");
    }

    let chat_labels = |status: &'static str| {
        [
            ("upstream", "demo"),
            ("model", "gpt-4o-mini"),
            ("operation", "chat"),
            ("status", status),
        ]
    };
    let requests = "writ_requests_total";
    assert_eq!(value(&samples, requests, &chat_labels("200")), Some(4.0));
    assert_eq!(value(&samples, requests, &chat_labels("429")), Some(1.0));
    assert_eq!(
        value(
            &samples,
            requests,
            &[
                ("upstream", "-"),
                ("model", "-"),
                ("operation", "chat"),
                ("status", "401")
            ]
        ),
        Some(1.0)
    );
    assert_eq!(total(&samples, requests), 6.0);

    // Tokens and cost: what the gateway's own usage log holds for the four calls.
    let usage = gw.gateway().recent_usage();
    assert_eq!(usage.len(), 4);
    let input: u64 = usage.iter().map(|u| u.usage.input_tokens).sum();
    let output: u64 = usage.iter().map(|u| u.usage.output_tokens).sum();
    let micros: u64 = usage.iter().filter_map(|u| u.cost_usd_micros).sum();
    assert!(input > 0 && output > 0 && micros > 0);
    let by = |direction: &'static str| {
        [
            ("tenant", "default"),
            ("agent", "-"),
            ("model", "gpt-4o-mini"),
            ("direction", direction),
        ]
    };
    assert_eq!(
        value(&samples, "writ_tokens_total", &by("input")),
        Some(input as f64)
    );
    assert_eq!(
        value(&samples, "writ_tokens_total", &by("output")),
        Some(output as f64)
    );
    let cost = value(&samples, "writ_cost_usd_total", &[("agent", "-")]).unwrap();
    assert!((cost - micros as f64 / 1e6).abs() < 1e-9, "{cost} {micros}");

    // Histograms: four upstream calls; the gateway's own time of all six requests.
    let demo = [("upstream", "demo")];
    assert_eq!(
        value(&samples, "writ_upstream_duration_seconds_count", &demo),
        Some(4.0)
    );
    assert_eq!(
        value(
            &samples,
            "writ_upstream_duration_seconds_bucket",
            &[("upstream", "demo"), ("le", "+Inf")]
        ),
        Some(4.0)
    );
    assert_eq!(
        value(&samples, "writ_gateway_overhead_seconds_count", &demo),
        Some(5.0)
    );
    assert_eq!(
        value(
            &samples,
            "writ_gateway_overhead_seconds_count",
            &[("upstream", "-")]
        ),
        Some(1.0)
    );
    assert!(value(&samples, "writ_upstream_duration_seconds_sum", &demo).unwrap() > 0.0);

    // Limiter decisions, mints, and what is read when scraped.
    let decisions = "writ_limit_decisions_total";
    let decision = |outcome| [("dimension", "requests"), ("outcome", outcome)];
    assert_eq!(value(&samples, decisions, &decision("allowed")), Some(4.0));
    assert_eq!(value(&samples, decisions, &decision("refused")), Some(1.0));
    assert_eq!(total(&samples, decisions), 5.0);
    assert_eq!(
        value(&samples, "writ_mints_total", &[("outcome", "issued")]),
        Some(1.0)
    );
    assert_eq!(
        value(
            &samples,
            "writ_mints_total",
            &[("outcome", "unsupported_grant_type")]
        ),
        Some(1.0)
    );
    assert_eq!(total(&samples, "writ_mints_total"), 2.0);
    assert_eq!(
        value(
            &samples,
            "writ_detections_total",
            &[("detector", "prompt_secret"), ("action", "blocked")]
        ),
        Some(0.0)
    );
    assert_eq!(
        value(&samples, "writ_audit_sink_failures_total", &[]),
        Some(0.0)
    );
    assert_eq!(value(&samples, "writ_writ_cache_entries", &[]), Some(1.0));

    // No writ, token id or agent name in any label.
    let text = reqwest::get(gw.url("/metrics"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(!text.contains(&writ), "the writ is in /metrics");
    assert!(!text.contains(&token_id), "the token id is in /metrics");
    assert!(
        !text.contains("metrics-agent"),
        "agents are not named by default"
    );
    assert!(!text.contains("not-a-writ"), "{text}");
}

#[tokio::test]
async fn agents_are_named_when_asked() {
    let upstream = MockUpstream::start(KEY).await;
    let gw = gateway(&upstream, "[metrics]\nagent_labels = true\n").await;
    let writ = gw.mint_for("alice", &format!("[{GRANT}]"), &format!("[{GRANT}]"), 30);
    assert_eq!(chat(&gw, &writ, false).await, StatusCode::OK);
    let (samples, _) = scrape(&gw, None).await;
    let usage = gw.gateway().recent_usage();
    assert_eq!(
        value(
            &samples,
            "writ_tokens_total",
            &[("agent", "alice"), ("direction", "input")]
        ),
        Some(usage[0].usage.input_tokens as f64)
    );
    assert!(
        samples
            .iter()
            .all(|s| s.labels.get("agent").is_none_or(|a| a == "alice")),
        "{samples:?}"
    );
}

#[tokio::test]
async fn require_admin_refuses_without_an_admin_writ() {
    let upstream = MockUpstream::start(KEY).await;
    let gw = gateway(&upstream, "[metrics]\nrequire_admin = true\n").await;
    let http = reqwest::Client::new();
    let resp = http.get(gw.url("/metrics")).send().await.unwrap();
    assert_eq!(resp.status(), StatusCode::UNAUTHORIZED);
    let body: Value = resp.json().await.unwrap();
    assert!(body["error"]["code"].is_string(), "{body}");
    let agent = gw.mint("demo", GRANT, 30);
    let resp = http
        .get(gw.url("/metrics"))
        .bearer_auth(&agent)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::FORBIDDEN);
    let body: Value = resp.json().await.unwrap();
    assert!(body["error"]["code"].is_string(), "{body}");
    let resp = http
        .get(gw.url("/metrics"))
        .bearer_auth("not-a-writ-at-all")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::UNAUTHORIZED);
    // A tenant's admin sees one tenant; the metrics are every tenant's.
    let tenant_admin = gw.mint_as(
        r#"{"type":"writ:admin","tenant":"default"}"#,
        r#"{"type":"writ:admin","tenant":"default"}"#,
        30,
    );
    let resp = http
        .get(gw.url("/metrics"))
        .bearer_auth(&tenant_admin)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::FORBIDDEN);
    let admin = gw.mint_as(ADMIN, ADMIN, 30);
    let (samples, _) = scrape(&gw, Some(&admin)).await;
    assert_eq!(kind(&samples, "writ_detections"), "counter");
}
