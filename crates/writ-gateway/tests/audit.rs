//! The audit log: exactly one record per request on every path, durable before the
//! response in strict mode, no secret in any record, and a log that verifies offline.
#![allow(clippy::unwrap_used)]

use futures_util::StreamExt;
use reqwest::StatusCode;
use serde_json::{Value, json};
use writ_audit::sink::split_export;
use writ_testkit::{MockUpstream, TestGateway};

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

async fn records(gw: &TestGateway) -> Vec<Value> {
    gw.gateway()
        .audit_export()
        .await
        .unwrap()
        .iter()
        .filter(|l| !l.starts_with("{\"checkpoint\""))
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
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
    let r = client
        .post(&url)
        .bearer_auth(&writ)
        .json(&big)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::PAYLOAD_TOO_LARGE);
    // 403: a model outside the grant.
    let r = client
        .post(&url)
        .bearer_auth(&writ)
        .json(&chat("gpt-4o", false))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::FORBIDDEN);
    // 400: a detection blocks a secret in the prompt.
    let leaky = json!({"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "key AKIAIOSFODNN7EXAMPLE"}]});
    let r = client
        .post(&url)
        .bearer_auth(&writ)
        .json(&leaky)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
    // 200 twice (one streamed), then 429.
    let r = client
        .post(&url)
        .bearer_auth(&writ)
        .json(&chat("gpt-4o-mini", false))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    let r = client
        .post(&url)
        .bearer_auth(&writ)
        .json(&chat("gpt-4o-mini", true))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    let mut body = r.bytes_stream();
    while let Some(chunk) = body.next().await {
        chunk.unwrap();
    }
    let r = client
        .post(&url)
        .bearer_auth(&writ)
        .json(&chat("gpt-4o-mini", false))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::TOO_MANY_REQUESTS);

    let all = records(&gw).await;
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
    assert_eq!(all[3]["detail"]["rules"], json!(["aws_access_key_id"]));
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
    assert_log_verifies(&gw, 7).await;
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
        .json(&json!({"kind": "token_id", "token_id": "01JSOMETOKENIDTOREVOKE000"}))
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

async fn send_chat(client: &reqwest::Client, gw: &TestGateway) -> StatusCode {
    let r = client
        .post(gw.url("/v1/chat/completions"))
        .bearer_auth(gw.mint("demo", GRANT, 30))
        .json(&chat("gpt-4o-mini", false))
        .send()
        .await
        .unwrap();
    let status = r.status();
    r.bytes().await.unwrap();
    status
}

#[tokio::test]
async fn a_request_served_alone_writes_its_own_record_and_checkpoints_follow() {
    let upstream = MockUpstream::start(KEY).await;
    let gw = gateway(&upstream, "[audit]\ncheckpoint_every = 10\n").await;
    let client = reqwest::Client::new();
    for i in 1..=25 {
        assert_eq!(send_chat(&client, &gw).await, StatusCode::OK);
        // Strict: the record is durable before the response.
        assert_eq!(log_of(&gw).await.0.len(), i);
    }
    // Written by the requests' own threads: all of them but one whose thread found the
    // connection busy with the writer's checkpoint (at most one per ten records).
    let alone = gw.gateway().audit_records_written_alone();
    assert!((22..=25).contains(&alone), "{alone}");
    // The writer still signs a checkpoint every ten records, told by the requests.
    let mut attempts = 0;
    loop {
        let sizes = log_of(&gw).await.1;
        if sizes.contains(&10) && sizes.contains(&20) {
            break;
        }
        attempts += 1;
        assert!(attempts < 10_000, "checkpoints at 10 and 20: {sizes:?}");
        tokio::task::yield_now().await;
    }
    assert_log_verifies(&gw, 25).await;
}

#[tokio::test]
async fn records_written_alone_and_by_the_writer_form_one_log() {
    let upstream = MockUpstream::start(KEY).await;
    let gw = gateway(&upstream, "[audit]\ncheckpoint_every = 7\n").await;
    let client = reqwest::Client::new();
    let mut n = 0;
    for _ in 0..5 {
        assert_eq!(send_chat(&client, &gw).await, StatusCode::OK);
        let together = futures_util::future::join_all((0..16).map(|_| send_chat(&client, &gw)));
        assert!(together.await.iter().all(|s| *s == StatusCode::OK));
        n += 17;
    }
    let alone = gw.gateway().audit_records_written_alone();
    assert!(alone >= 1 && alone <= n as u64, "{alone}");
    assert_log_verifies(&gw, n).await;
}

#[tokio::test]
async fn a_record_its_request_could_not_write_is_kept_and_written_later() {
    let upstream = MockUpstream::start(KEY).await;
    let gw = gateway(&upstream, "").await;
    let client = reqwest::Client::new();
    assert_eq!(send_chat(&client, &gw).await, StatusCode::OK);
    assert_eq!(gw.gateway().audit_records_written_alone(), 1);
    // Another connection holds the database's write lock past the writer's patience.
    let db = rusqlite::Connection::open(gw.gateway().data_dir().join("audit.db")).unwrap();
    db.execute_batch("BEGIN EXCLUSIVE").unwrap();
    let status = send_chat(&client, &gw).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    // Refused while the sink fails.
    assert_eq!(
        send_chat(&client, &gw).await,
        StatusCode::SERVICE_UNAVAILABLE
    );
    db.execute_batch("COMMIT").unwrap();
    let mut attempts = 0;
    while send_chat(&client, &gw).await != StatusCode::OK {
        attempts += 1;
        assert!(attempts < 5000, "never recovered");
        tokio::task::yield_now().await;
    }
    // Nothing lost: the first, the one that failed, every refusal and the last.
    let (recs, _) = log_of(&gw).await;
    let statuses: Vec<u64> = recs
        .iter()
        .map(|l| {
            serde_json::from_str::<Value>(l).unwrap()["status"]
                .as_u64()
                .unwrap()
        })
        .collect();
    assert_eq!(statuses.first(), Some(&200));
    assert_eq!(statuses.last(), Some(&200));
    assert_eq!(statuses.len(), attempts + 4, "{statuses:?}");
    assert_log_verifies(&gw, attempts + 4).await;
}
