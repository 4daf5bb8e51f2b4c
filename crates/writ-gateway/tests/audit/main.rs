//! The audit log: one record per refused request and, in strict mode, a forwarded
//! request's decision committed before the upstream sees it and its outcome linked to it
//! after (one record in best-effort mode); no secret in any record, and a log that
//! verifies offline.
#![allow(clippy::unwrap_used)]

use futures_util::StreamExt;
use reqwest::StatusCode;
use serde_json::{Value, json};
use writ_audit::sink::split_export;
use writ_testkit::{MockUpstream, TestGateway};

mod commits;

const KEY: &str = "sk-upstream-audit-0123456789";
const GRANT: &str = r#"{"type":"writ:llm","upstream":"demo","models":["gpt-4o-mini"]}"#;

async fn gateway(upstream: &MockUpstream, extra: &str) -> TestGateway {
    TestGateway::start(&format!(
        "[server]\nmax_body_bytes = 4096\n{extra}\n[upstreams.demo]\nkind = \"openai\"\nbase_url = \"{}\"\nallow_private_network = true\napi_key = \"{KEY}\"\n",
        upstream.base_url()
    ))
    .await
}

fn chat(model: &str, stream: bool) -> Value {
    json!({"model": model, "messages": [{"role": "user", "content": "hi"}], "stream": stream, "max_tokens": 5})
}

/// Every record, after the writer has written what is pending (outcome records are not
/// waited for by their requests).
async fn records(gw: &TestGateway) -> Vec<Value> {
    gw.gateway().audit_checkpoint().await;
    gw.gateway()
        .audit_export()
        .await
        .unwrap()
        .iter()
        .filter(|l| !l.starts_with("{\"checkpoint\""))
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

/// One entry per request, in the order of their first records: a strict decision with
/// its outcome's fields (status, decision, usage, cost, latency, detail) merged in. Panics unless
/// every outcome names an earlier decision of the same writ that no other outcome names.
fn requests(records: &[Value]) -> Vec<Value> {
    let mut out: Vec<Value> = Vec::new();
    let mut by_seq = std::collections::HashMap::new();
    for r in records {
        if r["kind"] == "request_outcome" {
            let seq = r["decision_seq"]
                .as_u64()
                .expect("an outcome names its decision");
            let i: usize = by_seq.remove(&seq).expect("its decision comes first, once");
            let decision = out[i].as_object_mut().unwrap();
            assert_eq!(decision["kind"], "request_allowed", "{r}");
            assert!(decision.get("status").is_none(), "{r}");
            assert_eq!(decision["writ"], r["writ"]);
            for field in [
                "status",
                "decision",
                "usage",
                "cost_usd_micros",
                "latency_ms",
                "detail",
            ] {
                if let Some(v) = r.get(field) {
                    decision.insert(field.to_string(), v.clone());
                }
            }
            decision.insert("outcome_seq".to_string(), r["seq"].clone());
        } else {
            by_seq.insert(r["seq"].as_u64().unwrap(), out.len());
            out.push(r.clone());
        }
    }
    out
}

#[tokio::test]
async fn every_path_leaves_exactly_one_record() {
    let upstream = MockUpstream::start(KEY).await;
    let gw = gateway(
        &upstream,
        "[[limit]]\nscope = \"agent\"\ndimension = \"requests\"\nper = \"day\"\nlimit = 2\n",
    )
    .await;
    let client = reqwest::Client::new();
    let url = gw.url("/v1/chat/completions");
    let writ = gw.mint("demo", GRANT, 30);
    // 401: no writ.
    let r = client
        .post(&url)
        .json(&chat("gpt-4o-mini", false))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    // 413: body over the limit.
    let big = json!({"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "x".repeat(5000)}]});
    let r = post_json(&client, &url, &writ, &big).await;
    assert_eq!(r.status(), StatusCode::PAYLOAD_TOO_LARGE);
    // 403: a model outside the grant.
    let r = post_json(&client, &url, &writ, &chat("gpt-4o", false)).await;
    assert_eq!(r.status(), StatusCode::FORBIDDEN);
    // 400: a detection blocks a secret in the prompt.
    let leaky = json!({"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "key AKIAIOSFODNN7EXAMPLE"}]});
    let r = post_json(&client, &url, &writ, &leaky).await;
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
    // 200 twice (one streamed), then 429.
    let r = post_json(&client, &url, &writ, &chat("gpt-4o-mini", false)).await;
    assert_eq!(r.status(), StatusCode::OK);
    let r = post_json(&client, &url, &writ, &chat("gpt-4o-mini", true)).await;
    assert_eq!(r.status(), StatusCode::OK);
    let mut body = r.bytes_stream();
    while let Some(chunk) = body.next().await {
        chunk.unwrap();
    }
    let r = post_json(&client, &url, &writ, &chat("gpt-4o-mini", false)).await;
    assert_eq!(r.status(), StatusCode::TOO_MANY_REQUESTS);

    let records = records(&gw).await;
    // Strict: each of the two forwarded requests has a decision and an outcome.
    assert_eq!(records.len(), 9);
    let all = requests(&records);
    let summary: Vec<(String, u64)> = all
        .iter()
        .map(|r| {
            (
                r["kind"].as_str().unwrap().to_string(),
                r["status"].as_u64().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        summary,
        vec![
            ("request_denied".to_string(), 401),
            ("request_denied".to_string(), 413),
            ("request_denied".to_string(), 403),
            ("request_denied".to_string(), 400),
            ("request_allowed".to_string(), 200),
            ("request_allowed".to_string(), 200),
            ("request_denied".to_string(), 429),
        ]
    );
    assert_eq!(all[3]["decision"]["check"], "prompt_secret");
    assert_eq!(all[3]["detail"]["rules"], json!(["aws-access-key-id"]));
    let all: Vec<Value> = all
        .into_iter()
        .enumerate()
        .filter(|(i, _)| *i != 3)
        .map(|(_, r)| r)
        .collect();
    assert_eq!(all[2]["decision"]["code"], "grant_denied");
    assert!(
        all[2]["decision"]["check"]
            .as_str()
            .unwrap()
            .contains("model"),
        "{}",
        all[2]
    );
    assert_eq!(all[5]["decision"]["limit"]["dimension"], "requests");
    assert!(all[3]["usage"]["output_tokens"].as_u64().unwrap() > 0);
    assert!(all[3]["cost_usd_micros"].as_u64().is_some());
    // The writ is named only by its pseudonym, the same in every record of it.
    assert_eq!(all[2]["writ"], all[3]["writ"]);
    assert_eq!(all[2]["writ"].as_str().unwrap().len(), 32);

    // Nothing secret anywhere: no writ, no upstream key.
    let text = gw.gateway().audit_export().await.unwrap().join("\n");
    assert!(
        !text.contains("writ_") && !text.contains(KEY) && !text.contains("AKIAIOSFODNN7EXAMPLE"),
        "{text}"
    );

    // The log verifies offline against a fresh checkpoint.
    assert_log_verifies(&gw, 9).await;
}

#[tokio::test]
async fn strict_mode_refuses_while_the_sink_fails_and_recovers_by_itself() {
    let upstream = MockUpstream::start(KEY).await;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("audit.jsonl");
    // A directory where the file should be: every write fails, even as root.
    std::fs::create_dir(&path).unwrap();
    let gw = gateway(
        &upstream,
        &format!(
            "[audit]\nsink = \"file\"\nfile = {:?}\n",
            path.display().to_string()
        ),
    )
    .await;
    let client = reqwest::Client::new();
    let send = || {
        let client = client.clone();
        let url = gw.url("/v1/chat/completions");
        let writ = gw.mint("demo", GRANT, 30);
        async move {
            let r = client
                .post(url)
                .bearer_auth(writ)
                .json(&chat("gpt-4o-mini", false))
                .send()
                .await
                .unwrap();
            let status = r.status();
            (status, r.json::<Value>().await.unwrap())
        }
    };
    for _ in 0..3 {
        let (status, body) = send().await;
        assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(body["error"]["code"], "audit_unavailable");
    }
    assert!(
        upstream.requests().is_empty(),
        "nothing reaches the upstream"
    );
    // The sink comes back: the gateway notices by itself.
    std::fs::remove_dir(&path).unwrap();
    let mut attempts = 0;
    loop {
        attempts += 1;
        let (status, _) = send().await;
        if status == StatusCode::OK {
            break;
        }
        assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
        assert!(attempts < 5000, "never recovered");
        tokio::task::yield_now().await;
    }
    // The refusals were recorded too, once the sink took writes again; nothing was lost.
    let all = records(&gw).await;
    let refused = all.iter().filter(|r| r["status"] == 503).count();
    assert_eq!(refused, attempts - 1 + 3);
    assert_eq!(all.iter().filter(|r| r["status"] == 200).count(), 1);
}

#[tokio::test]
async fn best_effort_mode_serves_while_the_sink_fails() {
    let upstream = MockUpstream::start(KEY).await;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("audit.jsonl");
    std::fs::create_dir(&path).unwrap();
    let gw = gateway(
        &upstream,
        &format!(
            "[audit]\nmode = \"best_effort\"\nsink = \"file\"\nfile = {:?}\n",
            path.display().to_string()
        ),
    )
    .await;
    assert_eq!(
        send_chat(&reqwest::Client::new(), &gw).await,
        StatusCode::OK
    );
}

#[tokio::test]
async fn revocations_and_admin_changes_are_recorded_without_secrets() {
    let upstream = MockUpstream::start(KEY).await;
    let gw = gateway(&upstream, "").await;
    let admin = gw.mint_as(r#"{"type":"writ:admin"}"#, r#"{"type":"writ:admin"}"#, 30);
    let client = reqwest::Client::new();
    let r = client
        .post(gw.url("/admin/v1/revocations"))
        .bearer_auth(&admin)
        .json(&json!({"kind": "token_id", "token_id": "01JSOMETOKENIDTOREVOKE000", "force": true}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::CREATED);
    let r = client
        .post(gw.url("/admin/v1/keys/rotate"))
        .bearer_auth(&admin)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    let all = records(&gw).await;
    let kinds: Vec<&str> = all.iter().map(|r| r["kind"].as_str().unwrap()).collect();
    assert_eq!(kinds, ["revocation", "admin_change"]);
    let text = gw.gateway().audit_export().await.unwrap().join("\n");
    assert!(
        !text.contains("01JSOMETOKENIDTOREVOKE000"),
        "token ids are pseudonymized"
    );
    assert!(!all[1]["detail"]["signing_kid"].is_null(), "{}", all[1]);
}

#[tokio::test]
async fn operators_page_through_the_audit_log() {
    let upstream = MockUpstream::start(KEY).await;
    let gw = gateway(&upstream, "").await;
    let client = reqwest::Client::new();
    let url = gw.url("/v1/chat/completions");
    for _ in 0..3 {
        client
            .post(&url)
            .json(&chat("gpt-4o-mini", false))
            .send()
            .await
            .unwrap();
    }
    for _ in 0..2 {
        let writ = gw.mint("demo", GRANT, 30);
        client
            .post(&url)
            .bearer_auth(writ)
            .json(&chat("gpt-4o-mini", false))
            .send()
            .await
            .unwrap();
    }
    // Outcome records are written after their responses: let the writer catch up.
    gw.gateway().audit_checkpoint().await;
    let admin = gw.mint_as(r#"{"type":"writ:admin"}"#, r#"{"type":"writ:admin"}"#, 30);
    let get = |query: String| {
        let client = client.clone();
        let url = gw.url(&format!("/admin/v1/audit?{query}"));
        let admin = admin.clone();
        async move { client.get(url).bearer_auth(admin).send().await.unwrap() }
    };
    let v: Value = get("kind=request_denied&limit=2".into())
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(v["records"].as_array().unwrap().len(), 2);
    let cursor = v["next_cursor"].as_str().unwrap().to_string();
    let v: Value = get(format!("kind=request_denied&limit=2&cursor={cursor}"))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(v["records"].as_array().unwrap().len(), 1);
    assert!(v["next_cursor"].is_null());
    let v: Value = get("status=200&agent=demo".into())
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(v["records"].as_array().unwrap().len(), 2);
    for bad in [
        "limit=0",
        "since=yesterday",
        "cursor=nonsense",
        "colour=blue",
        "status=abc",
    ] {
        assert_eq!(
            get(bad.into()).await.status(),
            StatusCode::BAD_REQUEST,
            "{bad}"
        );
    }
    // A data-plane writ cannot read the log.
    let r = client
        .get(gw.url("/admin/v1/audit"))
        .bearer_auth(gw.mint("demo", GRANT, 30))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::FORBIDDEN);
}

/// The export's record lines and checkpoint sizes.
async fn log_of(gw: &TestGateway) -> (Vec<String>, Vec<u64>) {
    let lines = gw.gateway().audit_export().await.unwrap();
    let logs = split_export(&lines);
    assert_eq!(logs.len(), 1);
    let (_, recs, checkpoints) = &logs[0];
    let sizes = checkpoints
        .iter()
        .map(|c| {
            let note = c.lines().nth(1).unwrap();
            note.parse::<u64>().unwrap()
        })
        .collect();
    (recs.clone(), sizes)
}

/// Verifies the whole log offline against a fresh checkpoint; it must hold `n` records.
async fn assert_log_verifies(gw: &TestGateway, n: usize) {
    gw.gateway().audit_checkpoint().await;
    let lines = gw.gateway().audit_export().await.unwrap();
    let logs = split_export(&lines);
    assert_eq!(logs.len(), 1);
    let (instance, recs, checkpoints) = &logs[0];
    assert_eq!(recs.len(), n);
    let recs: Vec<&str> = recs.iter().map(String::as_str).collect();
    let cps: Vec<&str> = checkpoints.iter().map(String::as_str).collect();
    let summary = writ_audit::verify_log(
        &recs,
        &cps,
        &gw.gateway().audit_verifier_key(),
        &writ_gateway::audit::origin(instance),
        Some(n as u64),
    )
    .unwrap();
    assert_eq!(summary.unsigned_records(), 0);
}

/// POSTs `body` as JSON to `url` with `writ` as the bearer token.
async fn post_json(
    client: &reqwest::Client,
    url: &str,
    writ: &str,
    body: &Value,
) -> reqwest::Response {
    client
        .post(url)
        .bearer_auth(writ)
        .json(body)
        .send()
        .await
        .unwrap()
}

async fn send_chat(client: &reqwest::Client, gw: &TestGateway) -> StatusCode {
    let url = gw.url("/v1/chat/completions");
    let r = post_json(
        client,
        &url,
        &gw.mint("demo", GRANT, 30),
        &chat("gpt-4o-mini", false),
    )
    .await;
    let status = r.status();
    r.bytes().await.unwrap();
    status
}

/// Issue 18 item 5: the upstream, when it is called, finds the request's decision already
/// committed in the audit database (read with a connection of its own); the outcome is
/// written after, linked to it, and the pair verifies.
#[tokio::test]
async fn the_decision_is_committed_before_the_upstream_sees_the_request() {
    use axum::extract::State;
    use std::sync::{Arc, Mutex, OnceLock};

    #[derive(Clone, Default)]
    struct Peek {
        db: Arc<OnceLock<std::path::PathBuf>>,
        seen: Arc<Mutex<Vec<Vec<String>>>>,
    }
    async fn answer(State(peek): State<Peek>) -> axum::response::Response {
        let path = peek.db.get().expect("the gateway is up");
        let db = rusqlite::Connection::open(path).unwrap();
        let mut query = db
            .prepare("SELECT line FROM audit_records ORDER BY instance, seq")
            .unwrap();
        let lines: Vec<String> = query
            .query_map([], |row| row.get(0))
            .unwrap()
            .map(Result::unwrap)
            .collect();
        peek.seen.lock().unwrap().push(lines);
        axum::Json(json!({
            "id": "chatcmpl-1", "object": "chat.completion", "created": 0, "model": "gpt-4o-mini",
            "choices": [{"index": 0, "message": {"role": "assistant", "content": "ok"}, "finish_reason": "stop"}],
            "usage": {"prompt_tokens": 5, "completion_tokens": 1, "total_tokens": 6}
        }))
        .into_response()
    }
    use axum::response::IntoResponse;

    let peek = Peek::default();
    let app = axum::Router::new()
        .fallback(axum::routing::any(answer))
        .with_state(peek.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await });
    let gw = TestGateway::start(&format!(
        "[upstreams.demo]\nkind = \"openai\"\nbase_url = \"http://{addr}\"\nallow_private_network = true\napi_key = \"{KEY}\"\n"
    ))
    .await;
    peek.db
        .set(gw.gateway().data_dir().join("audit.db"))
        .unwrap();
    let client = reqwest::Client::new();
    assert_eq!(send_chat(&client, &gw).await, StatusCode::OK);

    let seen = peek.seen.lock().unwrap().clone();
    assert_eq!(seen.len(), 1, "the upstream was called once");
    assert_eq!(seen[0].len(), 1, "the upstream saw {:?}", seen[0]);
    let decision: Value = serde_json::from_str(&seen[0][0]).unwrap();
    assert_eq!(decision["kind"], "request_allowed");
    assert_eq!(decision["upstream"], "demo");
    assert_eq!(decision["model"], "gpt-4o-mini");
    assert!(decision.get("status").is_none(), "{decision}");

    let all = records(&gw).await;
    assert_eq!(all.len(), 2, "{all:?}");
    assert_eq!(all[0], decision);
    let outcome = &all[1];
    assert_eq!(outcome["kind"], "request_outcome");
    assert_eq!(outcome["decision_seq"], decision["seq"]);
    assert_eq!(outcome["status"], 200);
    assert_eq!(outcome["usage"]["input_tokens"], 5);
    assert_eq!(outcome["writ"], decision["writ"]);
    assert_log_verifies(&gw, 2).await;
}

/// Best-effort mode keeps one record per request, with its outcome, written after.
#[tokio::test]
async fn best_effort_mode_writes_one_record_per_request() {
    let upstream = MockUpstream::start(KEY).await;
    let gw = gateway(&upstream, "[audit]\nmode = \"best_effort\"\n").await;
    let client = reqwest::Client::new();
    for _ in 0..3 {
        assert_eq!(send_chat(&client, &gw).await, StatusCode::OK);
    }
    let r = client
        .post(gw.url("/v1/chat/completions"))
        .bearer_auth(gw.mint("demo", GRANT, 30))
        .json(&chat("gpt-4o-mini", true))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    r.bytes().await.unwrap();
    let all = records(&gw).await;
    assert_eq!(all.len(), 4, "{all:?}");
    for r in &all {
        assert_eq!(r["kind"], "request_allowed", "{r}");
        assert_eq!(r["status"], 200, "{r}");
        assert!(r.get("decision_seq").is_none(), "{r}");
    }
    assert_log_verifies(&gw, 4).await;
}

/// A client that goes away while the upstream works leaves no decision without an
/// outcome: its request's handler is dropped, and the outcome (499, client closed the
/// request) is recorded as it goes.
#[tokio::test]
async fn a_client_gone_while_the_upstream_works_leaves_an_outcome() {
    let (gw, _upstream, deadline) = abandon_a_call_the_upstream_holds("").await;
    let outcome = loop {
        let all = records(&gw).await;
        if let Some(o) = all.iter().find(|r| r["kind"] == "request_outcome") {
            break o.clone();
        }
        assert!(
            std::time::Instant::now() < deadline,
            "no outcome recorded: {all:?}"
        );
        tokio::task::yield_now().await;
    };
    assert_eq!(outcome["status"], 499, "{outcome}");
    assert_eq!(
        outcome["decision"]["code"], "client_closed_request",
        "{outcome}"
    );
    let all = records(&gw).await;
    assert_eq!(requests(&all).len(), 1, "{all:?}");
    assert_log_verifies(&gw, 2).await;
}

/// In best-effort mode too (no decision committed first) an abandoned request leaves its
/// one record: the audit phase runs whatever the outcome, here as its handler is dropped.
#[tokio::test]
async fn a_client_gone_in_best_effort_mode_leaves_its_one_record() {
    let (gw, _upstream, deadline) =
        abandon_a_call_the_upstream_holds("[audit]\nmode = \"best_effort\"\n").await;
    let record = loop {
        let all = records(&gw).await;
        if let Some(r) = all.iter().find(|r| r["kind"] == "request_allowed") {
            break r.clone();
        }
        assert!(
            std::time::Instant::now() < deadline,
            "no record of the abandoned request: {all:?}"
        );
        tokio::task::yield_now().await;
    };
    assert_eq!(record["status"], 499, "{record}");
    assert_eq!(
        record["decision"]["code"], "client_closed_request",
        "{record}"
    );
    assert!(record.get("decision_seq").is_none(), "{record}");
    assert_eq!(record["agent"], "demo", "{record}");
    let all = records(&gw).await;
    assert_eq!(requests(&all).len(), 1, "{all:?}");
}

/// Starts a gateway (with `extra` config) whose upstream holds every request, sends it a
/// chat call and abandons that call once the upstream holds it. Returns the gateway, the
/// upstream (still holding the call: dropping it would fail the call upstream instead) and
/// the deadline of the caller's bounded wait for the record.
async fn abandon_a_call_the_upstream_holds(
    extra: &str,
) -> (
    std::sync::Arc<TestGateway>,
    MockUpstream,
    std::time::Instant,
) {
    let upstream = MockUpstream::start_with(KEY, writ_testkit::Behavior::Hang).await;
    let gw = std::sync::Arc::new(gateway(&upstream, extra).await);
    let writ = gw.mint("demo", GRANT, 30);
    let request = {
        let gw = gw.clone();
        tokio::spawn(async move {
            reqwest::Client::new()
                .post(gw.url("/v1/chat/completions"))
                .bearer_auth(writ)
                .json(&chat("gpt-4o-mini", false))
                .send()
                .await
        })
    };
    // A bounded wait on a condition: the upstream holds the request.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    while upstream.requests().is_empty() {
        assert!(
            std::time::Instant::now() < deadline,
            "the request never reached the upstream"
        );
        tokio::task::yield_now().await;
    }
    request.abort();
    (gw, upstream, deadline)
}
