//! Limits kept in Redis (the real one on 127.0.0.1:6379, and one this test starts and
//! stops itself): exact across gateway instances, fail closed when Redis is gone, local
//! fallback when configured, and recovery when it returns.
#![allow(clippy::unwrap_used)]

use reqwest::StatusCode;
use serde_json::{Value, json};
use writ_testkit::{MockUpstream, OwnRedis, TestGateway};

const KEY: &str = "sk-upstream-redis-limits-0123";
const REDIS: &str = "redis://127.0.0.1:6379";

/// An upstream name no earlier run used, so day budgets start empty.
fn fresh_name(prefix: &str) -> String {
    format!("{prefix}-{:016x}", rand::random::<u64>())
}

fn config(upstream: &MockUpstream, name: &str, redis: &str, extra: &str, limits: &str) -> String {
    format!(
        "[limiter]\nbackend = \"redis\"\nredis_url = \"{redis}\"\n{extra}\n{limits}\n[upstreams.{name}]\nkind = \"openai\"\nbase_url = \"{}\"\nallow_private_network = true\napi_key = \"{KEY}\"\n",
        upstream.base_url()
    )
}

fn chat() -> Value {
    json!({"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hello there"}], "max_tokens": 20})
}

async fn post(client: &reqwest::Client, gw: &TestGateway, name: &str) -> reqwest::Response {
    let grant = format!(r#"{{"type":"writ:llm","upstream":"{name}"}}"#);
    client
        .post(gw.url("/v1/chat/completions"))
        .bearer_auth(gw.mint(name, &grant, 30))
        .json(&chat())
        .send()
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_gateways_share_budgets_exactly() {
    let upstream = MockUpstream::start(KEY).await;
    let name = fresh_name("exact");
    // Each request reserves its input estimate plus its cap of 20 output tokens at
    // gpt-4o-mini prices; the cost budget is far above what 100 requests spend, so the
    // request budget is the one that binds and must bind exactly.
    let limits = "[[limit]]\nscope = \"upstream\"\ndimension = \"requests\"\nper = \"day\"\nlimit = 100\n\n\
                  [[limit]]\nscope = \"upstream\"\ndimension = \"cost\"\nper = \"day\"\nlimit = 2000\n";
    // Debug builds verifying 300 writs at once on two cores starve the Redis connection's
    // reader for seconds; the production default of 2s would time that out.
    let text = config(&upstream, &name, REDIS, "timeout = \"30s\"", limits);
    let gateways = [
        TestGateway::start(&text).await,
        TestGateway::start(&text).await,
        TestGateway::start(&text).await,
    ];
    let client = reqwest::Client::new();
    let mut tasks = Vec::new();
    for i in 0..300 {
        let gw_url = gateways[i % 3].url("/v1/chat/completions");
        let grant = format!(r#"{{"type":"writ:llm","upstream":"{name}"}}"#);
        let writ = gateways[i % 3].mint(&name, &grant, 30);
        let client = client.clone();
        tasks.push(tokio::spawn(async move {
            client
                .post(gw_url)
                .bearer_auth(writ)
                .json(&chat())
                .send()
                .await
                .unwrap()
                .status()
        }));
    }
    let mut ok = 0;
    let mut limited = 0;
    for t in tasks {
        match t.await.unwrap() {
            StatusCode::OK => ok += 1,
            StatusCode::TOO_MANY_REQUESTS => limited += 1,
            other => panic!("unexpected {other}"),
        }
    }
    assert_eq!((ok, limited), (100, 200));
    assert_eq!(upstream.requests().len(), 100);
    // Settled spend: every call's actual cost, all three gateways together. The bound: the
    // budget may be exceeded by at most one in-flight request's overrun of its estimate;
    // here output is capped and the estimate holds, so it may not be exceeded at all.
    let spent: u64 = gateways
        .iter()
        .flat_map(|g| g.gateway().recent_usage())
        .map(|r| r.cost_usd_micros.unwrap())
        .sum();
    assert!(spent <= 2000, "spent {spent}");
}

#[tokio::test]
async fn a_cost_budget_binds_across_gateways_within_one_overrun() {
    let upstream = MockUpstream::start(KEY).await;
    let name = fresh_name("cost");
    // 100 µ$ a day: gpt-4o-mini, ~10 input tokens and 20 output cap reserve ~15 µ$ each.
    let limits =
        "[[limit]]\nscope = \"upstream\"\ndimension = \"cost\"\nper = \"day\"\nlimit = 100\n";
    let text = config(&upstream, &name, REDIS, "", limits);
    let a = TestGateway::start(&text).await;
    let b = TestGateway::start(&text).await;
    let client = reqwest::Client::new();
    let mut admitted = 0;
    for i in 0..60 {
        let gw = if i % 2 == 0 { &a } else { &b };
        if post(&client, gw, &name).await.status() == StatusCode::OK {
            admitted += 1;
        }
    }
    assert!(admitted > 0);
    let spent: u64 = [&a, &b]
        .iter()
        .flat_map(|g| g.gateway().recent_usage())
        .map(|r| r.cost_usd_micros.unwrap())
        .sum();
    // Requests run one at a time here, so no estimate was overrun at admission: the
    // settled spend stays within the budget.
    assert!(spent <= 100, "spent {spent} of 100");
    // And the budget was used, not refused early: the next request's estimate no longer fits.
    let estimate = 15;
    assert!(spent + estimate > 100 - estimate, "spent only {spent}");
}

#[tokio::test]
async fn redis_gone_fails_closed_then_recovers() {
    let upstream = MockUpstream::start(KEY).await;
    let mut redis = OwnRedis::start();
    let name = fresh_name("down");
    let limits =
        "[[limit]]\nscope = \"agent\"\ndimension = \"requests\"\nper = \"minute\"\nlimit = 1000\n";
    let closed = TestGateway::start(&config(&upstream, &name, &redis.url(), "", limits)).await;
    let local = TestGateway::start(&config(
        &upstream,
        &name,
        &redis.url(),
        "on_backend_failure = \"local\"",
        limits,
    ))
    .await;
    let client = reqwest::Client::new();
    assert_eq!(post(&client, &closed, &name).await.status(), StatusCode::OK);
    redis.stop();
    let resp = post(&client, &closed, &name).await;
    assert_eq!(resp.status(), StatusCode::SERVICE_UNAVAILABLE);
    let v: Value = resp.json().await.unwrap();
    assert_eq!(v["error"]["code"], "limiter_unavailable");
    // Configured to fall back: served on per-instance limits meanwhile.
    assert_eq!(post(&client, &local, &name).await.status(), StatusCode::OK);
    redis.restart();
    // The connection manager reconnects by itself; the first attempts may still fail.
    let mut attempts = 0;
    loop {
        attempts += 1;
        let status = post(&client, &closed, &name).await.status();
        if status == StatusCode::OK {
            break;
        }
        assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
        assert!(attempts < 50, "never recovered");
    }
}

#[tokio::test]
async fn a_revocation_on_one_instance_reaches_the_others() {
    let upstream = MockUpstream::start(KEY).await;
    let name = fresh_name("revoke");
    let text = config(&upstream, &name, REDIS, "", "");
    let a = TestGateway::start(&text).await;
    let b = TestGateway::start(&text).await;
    let client = reqwest::Client::new();
    let grant = format!(r#"{{"type":"writ:llm","upstream":"{name}"}}"#);
    let writ = b.mint(&name, &grant, 30);
    let send = |writ: String| {
        let client = client.clone();
        let url = b.url("/v1/chat/completions");
        async move {
            client
                .post(url)
                .bearer_auth(writ)
                .json(&chat())
                .send()
                .await
                .unwrap()
                .status()
        }
    };
    assert_eq!(send(writ.clone()).await, StatusCode::OK);
    let token_id = writ_token::decode(&writ)
        .unwrap()
        .verify(&b.keys().trusted)
        .unwrap()
        .claims()
        .token_id
        .clone();
    // Revoked through the other instance's admin API.
    let admin = a.mint_as(r#"{"type":"writ:admin"}"#, r#"{"type":"writ:admin"}"#, 30);
    let resp = client
        .post(a.url("/admin/v1/revocations"))
        .bearer_auth(admin)
        .json(&json!({"kind": "token_id", "token_id": token_id}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::CREATED);
    let started = std::time::Instant::now();
    let mut attempts = 0;
    loop {
        attempts += 1;
        if send(writ.clone()).await == StatusCode::UNAUTHORIZED {
            break;
        }
        assert!(attempts < 1000, "instance b never heard of the revocation");
    }
    eprintln!(
        "revocation reached the other instance in {:?}",
        started.elapsed()
    );
    // Other writs of the same agent are untouched.
    assert_eq!(send(b.mint(&name, &grant, 30)).await, StatusCode::OK);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cost_budget_holds_under_300_concurrent_requests_on_three_gateways() {
    let upstream = MockUpstream::start(KEY).await;
    let name = fresh_name("spend");
    const BUDGET: u64 = 500;
    let limits = format!(
        "[[limit]]\nscope = \"upstream\"\ndimension = \"cost\"\nper = \"day\"\nlimit = {BUDGET}\n"
    );
    let text = config(&upstream, &name, REDIS, "timeout = \"30s\"", &limits);
    let gateways = [
        TestGateway::start(&text).await,
        TestGateway::start(&text).await,
        TestGateway::start(&text).await,
    ];
    // What the gateway reserves for this body: its bytes / 4 as input tokens, the cap of
    // 20 as output tokens, at gpt-4o-mini's 0.15 / 0.60 µ$ per token, rounded up.
    let bytes = serde_json::to_vec(&chat()).unwrap().len() as u64;
    let estimate = (bytes.div_ceil(4) * 15 + 20 * 60).div_ceil(100);
    let client = reqwest::Client::new();
    let mut tasks = Vec::new();
    for i in 0..300 {
        let url = gateways[i % 3].url("/v1/chat/completions");
        let grant = format!(r#"{{"type":"writ:llm","upstream":"{name}"}}"#);
        let writ = gateways[i % 3].mint(&name, &grant, 30);
        let client = client.clone();
        tasks.push(tokio::spawn(async move {
            client
                .post(url)
                .bearer_auth(writ)
                .json(&chat())
                .send()
                .await
                .unwrap()
                .status()
        }));
    }
    let mut admitted = 0;
    for t in tasks {
        match t.await.unwrap() {
            StatusCode::OK => admitted += 1,
            StatusCode::TOO_MANY_REQUESTS => {}
            other => panic!("unexpected {other}"),
        }
    }
    let records: Vec<_> = gateways
        .iter()
        .flat_map(|g| g.gateway().recent_usage())
        .collect();
    assert_eq!(records.len(), admitted);
    // The bound: spend ≤ budget + Σ over requests in flight together of (actual − estimate)⁺.
    // Every actual here is within its estimate (output is capped, input over-estimated),
    // so the overrun term is zero and the budget itself is the bound.
    let overrun: u64 = records
        .iter()
        .map(|r| r.cost_usd_micros.unwrap().saturating_sub(estimate))
        .sum();
    assert_eq!(overrun, 0, "estimate {estimate}");
    let spent: u64 = records.iter().map(|r| r.cost_usd_micros.unwrap()).sum();
    assert!(spent <= BUDGET, "spent {spent} of {BUDGET}");
    // And no request was refused while the budget could still hold its estimate.
    assert!(
        admitted as u64 >= BUDGET / estimate,
        "{admitted} admitted, estimate {estimate}"
    );
}

/// Strict audit with limits in Redis: a request's decision is committed while its
/// reservation is on its way. An admitted request is forwarded after both; one the limits
/// refuse is never forwarded, and the log holds its decision followed by the refusal as
/// that decision's outcome (429, `rate_limited`), so every decision has its outcome and
/// the log verifies.
#[tokio::test]
async fn a_decision_committed_beside_a_refused_reservation_is_closed_by_the_refusal() {
    let upstream = MockUpstream::start(KEY).await;
    let name = fresh_name("beside");
    let limits =
        "[[limit]]\nscope = \"upstream\"\ndimension = \"requests\"\nper = \"day\"\nlimit = 2\n";
    let gw = TestGateway::start(&config(&upstream, &name, REDIS, "", limits)).await;
    let client = reqwest::Client::new();
    let statuses = [
        post(&client, &gw, &name).await.status(),
        post(&client, &gw, &name).await.status(),
        post(&client, &gw, &name).await.status(),
    ];
    assert_eq!(
        statuses,
        [
            StatusCode::OK,
            StatusCode::OK,
            StatusCode::TOO_MANY_REQUESTS
        ]
    );
    assert_eq!(upstream.requests().len(), 2, "the refused request was sent");
    gw.gateway().audit_checkpoint().await;
    let export = gw.gateway().audit_export().await.unwrap();
    let logs = writ_audit::sink::split_export(&export);
    let (instance, lines, checkpoints) = &logs[0];
    let records: Vec<Value> = lines
        .iter()
        .map(|l| serde_json::from_str(l).unwrap())
        .filter(|r: &Value| r["kind"] == "request_allowed" || r["kind"] == "request_outcome")
        .collect();
    let kinds: Vec<&str> = records
        .iter()
        .map(|r| r["kind"].as_str().unwrap())
        .collect();
    assert_eq!(
        kinds.iter().filter(|k| **k == "request_allowed").count(),
        3,
        "{kinds:?}"
    );
    let refusal = records
        .iter()
        .find(|r| r["status"] == 429)
        .unwrap_or_else(|| panic!("the refusal is recorded: {records:?}"));
    assert_eq!(refusal["kind"], "request_outcome");
    let decision = refusal["decision_seq"].as_u64().unwrap();
    assert!(
        records
            .iter()
            .any(|r| r["kind"] == "request_allowed" && r["seq"].as_u64() == Some(decision)),
        "the refusal closes a decision of the log: {records:?}"
    );
    let lines: Vec<&str> = lines.iter().map(String::as_str).collect();
    let checkpoints: Vec<&str> = checkpoints.iter().map(String::as_str).collect();
    let summary = writ_audit::verify_log(
        &lines,
        &checkpoints,
        &gw.gateway().audit_verifier_key(),
        &writ_gateway::audit::origin(instance),
        None,
    )
    .unwrap();
    assert_eq!(summary.open_decisions, 0, "every decision has its outcome");
}
