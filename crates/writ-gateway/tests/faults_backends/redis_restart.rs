//! Redis killed (SIGKILL) and restarted under load, three gateways on it: two fail closed,
//! one falls back to local limits. Redis persists every write before replying (AOF,
//! `appendfsync always`), as a deployment that keeps limits across restarts does.
//!
//! What is checked, and how:
//! - while Redis is down, every call the fail-closed gateways took in and answered is
//!   503 `limiter_unavailable` in the OpenAI error shape, never 200; the local-fallback
//!   gateway serves (200) and never answers 503;
//! - after the restart each gateway admits again by itself, within a bound;
//! - the limiter state survived: each fail-closed gateway's agent's day counter of
//!   requests is at least the calls it served (before the kill included) and at most those
//!   plus its 503s that may have reached Redis just before the kill;
//! - no concurrency slot is leaked: a settlement that met the dead Redis has its leases
//!   released once Redis is back (`limits/lease_release.rs`), so once the load stops the
//!   leases still live in Redis are at most the reservations of unknown fate (a call in
//!   flight at the kill answered 503 or served by the local fallback: Redis may have
//!   applied its reservation as it died), which lapse after the lease TTL as the gateway
//!   documents (`Held::settle`); after the TTL (the gateways' clocks advanced past it) the whole
//!   concurrency limit is usable at once — N held calls admitted together and the N+1th
//!   refused 429;
//! - then Redis is killed again while those N calls are held, and their settlements meet
//!   it dead: once it is back their leases are gone from Redis within a bound, the
//!   gateways' clocks standing still (so not by lapsing), and the whole limit is usable at
//!   once again; when those calls end too, the lease set is empty (`ZCARD` 0).

use std::sync::Arc;
use std::time::{Duration, Instant};

use reqwest::StatusCode;
use serde_json::{Value, json};
use writ_testkit::{Behavior, MockUpstream, OwnRedis, TestGateway};
use writ_token::Clock;

use crate::load::{Call, Caller, Load};

const KEY: &str = "sk-upstream-faults-redis-0123";
/// Requests of the tenant in flight at once, on every gateway together.
const IN_FLIGHT: usize = 6;
const CALLERS: usize = 32;
/// Longer than any wait below: a lease still held after one has not lapsed, nor has the
/// key holding it expired in Redis (it lives as long past its last reservation).
const LEASE_TTL: Duration = Duration::from_secs(30);
/// The agent each gateway's callers call as: fail closed, fail closed, local fallback.
const AGENTS: [&str; 3] = ["closed-a", "closed-b", "local"];
const LOCAL: usize = 2;

fn config(fast: &MockUpstream, held: [&MockUpstream; 2], redis: &OwnRedis, extra: &str) -> String {
    let upstream = |name: &str, mock: &MockUpstream| {
        format!(
            "[upstreams.{name}]\nkind = \"openai\"\nbase_url = \"{}\"\nallow_private_network = true\napi_key = \"{KEY}\"\n",
            mock.base_url()
        )
    };
    format!(
        "[limiter]\nbackend = \"redis\"\nredis_url = \"{}\"\nlease_ttl = \"{}s\"\ntimeout = \"5s\"\n{extra}\n\
         [[limit]]\nscope = \"tenant\"\ndimension = \"concurrency\"\nlimit = {IN_FLIGHT}\n\n\
         [[limit]]\nscope = \"agent\"\ndimension = \"requests\"\nper = \"day\"\nlimit = 1000000\n\n{}{}",
        redis.url(),
        LEASE_TTL.as_secs(),
        upstream("fast", fast),
        upstream("held", held[0]) + &upstream("held2", held[1]),
    )
}

fn chat(marker: u64, stream: bool) -> Value {
    json!({"model": "gpt-4o-mini", "stream": stream, "max_tokens": 20,
           "messages": [{"role": "user", "content": format!("call {marker}")}]})
}

/// A writ of `agent` for `upstream` only (so the writ routes the call).
fn writ(gw: &TestGateway, agent: &str, upstream: &str) -> String {
    let grant = format!(r#"{{"type":"writ:llm","upstream":"{upstream}"}}"#);
    gw.mint_for(agent, &grant, &grant, 30)
}

/// A caller of `gw` as `agent` on the fast upstream: streams and plain calls in turn,
/// each answer read to its end.
fn caller(client: &reqwest::Client, gw: &TestGateway, agent: &str) -> Caller {
    let (client, url, writ) = (
        client.clone(),
        gw.url("/v1/chat/completions"),
        writ(gw, agent, "fast"),
    );
    Arc::new(move |marker| {
        let request = client
            .post(&url)
            .bearer_auth(&writ)
            .json(&chat(marker, marker % 2 == 0));
        Box::pin(async move {
            let resp = request.send().await.expect("the gateway answers");
            let status = resp.status().as_u16();
            (status, resp.text().await.unwrap_or_default())
        })
    })
}

/// Members of the tenant's lease set, as (lease id, expiry in µs).
fn leases(redis: &OwnRedis) -> Vec<(String, u64)> {
    let key = format!("writ:limit:concurrency:c:{IN_FLIGHT}:tenant=default");
    let out = redis.cli(&["ZRANGE", &key, "0", "-1", "WITHSCORES"]);
    let lines: Vec<&str> = out.lines().filter(|l| !l.is_empty()).collect();
    lines
        .chunks(2)
        .map(|pair| (pair[0].to_string(), pair[1].parse().unwrap()))
        .collect()
}

/// Leases that count at `now` (expiry after it), as the reserve script counts them.
fn live(leases: &[(String, u64)], now: std::time::SystemTime) -> usize {
    let now_us = now
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_micros() as u64;
    leases.iter().filter(|(_, expiry)| *expiry > now_us).count()
}

/// The day counter of requests of `agent`.
fn requests_counted(redis: &OwnRedis, agent: &str) -> u64 {
    let pattern = format!("writ:limit:requests:*agent={agent}");
    let keys = redis.cli(&["--scan", "--pattern", &pattern]);
    let key = keys
        .lines()
        .next()
        .unwrap_or_else(|| panic!("no counter for {agent}"));
    redis.cli(&["GET", key]).parse().unwrap()
}

/// Holds N streaming calls on the `upstream` (a mock holding its streams), spread over the
/// gateways, and checks they are all admitted and the next one is refused on any gateway;
/// returns the held answers, each past its first event.
async fn use_the_whole_limit(
    client: &reqwest::Client,
    gateways: &[TestGateway; 3],
    upstream: &str,
    redis: &OwnRedis,
) -> Vec<reqwest::Response> {
    let mut holding = Vec::new();
    for i in 0..IN_FLIGHT {
        let gw = &gateways[i % 3];
        let writ = writ(gw, AGENTS[i % 3], upstream);
        let resp = past_dead_connections(|| {
            client
                .post(gw.url("/v1/chat/completions"))
                .bearer_auth(&writ)
                .json(&chat(1_000_000 + i as u64, true))
                .send()
        })
        .await;
        assert_eq!(resp.status(), StatusCode::OK, "held call {i} on {upstream}");
        holding.push(resp);
    }
    for resp in &mut holding {
        let first = tokio::time::timeout(Duration::from_secs(20), resp.chunk()).await;
        assert!(
            matches!(first, Ok(Ok(Some(_)))),
            "a held call streams: {first:?}"
        );
    }
    assert_eq!(live(&leases(redis), gateways[0].clock().now()), IN_FLIGHT);
    for (g, gw) in gateways.iter().enumerate() {
        let writ = writ(gw, AGENTS[g], "fast");
        let send = || {
            client
                .post(gw.url("/v1/chat/completions"))
                .bearer_auth(&writ)
                .json(&chat(2_000_000 + g as u64, false))
                .send()
        };
        let mut resp = past_dead_connections(send).await;
        // The local-fallback gateway meets a connection that died with Redis as an error
        // too, and serves that call on its local limits (200); the next command reconnects.
        // A gateway that never asks Redis again stays at 200 and fails below.
        let mut fallbacks = 0;
        while g == LOCAL && resp.status() == StatusCode::OK && fallbacks < 5 {
            fallbacks += 1;
            resp = past_dead_connections(send).await;
        }
        assert_eq!(resp.status(), StatusCode::TOO_MANY_REQUESTS, "gateway {g}");
        let body: Value = resp.json().await.unwrap();
        assert_eq!(body["error"]["code"], "rate_limit_exceeded", "{body}");
        let message = body["error"]["message"].as_str().unwrap();
        assert!(message.contains("concurrency"), "{message}");
    }
    holding
}

/// Sends until the answer is not 503 `limiter_unavailable` (bounded): after Redis came
/// back, a gateway's connection that died with it fails its next command, and only then
/// reconnects (as `limits_redis.rs` notes). Any other answer is returned.
async fn past_dead_connections<F>(send: impl Fn() -> F) -> reqwest::Response
where
    F: std::future::Future<Output = reqwest::Result<reqwest::Response>>,
{
    for _ in 0..20 {
        let resp = send().await.unwrap();
        if resp.status() != StatusCode::SERVICE_UNAVAILABLE {
            return resp;
        }
        let body: Value = resp.json().await.unwrap();
        assert_eq!(body["error"]["code"], "limiter_unavailable", "{body}");
    }
    panic!("20 answers in a row were 503 limiter_unavailable with Redis up");
}

/// Reads each held answer to its end (once released), which comes after its settlement.
async fn read_to_the_end(holding: Vec<reqwest::Response>) {
    for resp in holding {
        let text = tokio::time::timeout(Duration::from_secs(20), resp.text())
            .await
            .unwrap()
            .unwrap();
        assert!(text.contains("[DONE]"), "{text}");
    }
}

/// Waits (bounded) until the tenant's lease set in Redis is empty: no lease entry at all,
/// live or lapsed.
async fn no_lease_left(redis: &OwnRedis) {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let left = leases(redis);
        if left.is_empty() {
            return;
        }
        assert!(Instant::now() < deadline, "leases left in Redis: {left:?}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_killed_under_load_fails_closed_recovers_and_leaks_no_slot() {
    let fast = MockUpstream::start(KEY).await;
    let held = MockUpstream::start_with(KEY, Behavior::HoldStreamAfterFirstEvent).await;
    let held2 = MockUpstream::start_with(KEY, Behavior::HoldStreamAfterFirstEvent).await;
    let mut redis = OwnRedis::start_persistent();
    let closed = config(&fast, [&held, &held2], &redis, "");
    let local = config(
        &fast,
        [&held, &held2],
        &redis,
        "on_backend_failure = \"local\"",
    );
    let gateways = [
        TestGateway::start(&closed).await,
        TestGateway::start(&closed).await,
        TestGateway::start(&local).await,
    ];
    // One time on every gateway, so leases expire alike whichever gateway reads them.
    let now = gateways[0].clock().now();
    for gw in &gateways {
        gw.clock().set(now);
    }
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(30))
        .build()
        .unwrap();
    let callers = (0..CALLERS)
        .map(|i| {
            let g = i % gateways.len();
            (g, caller(&client, &gateways[g], AGENTS[g]))
        })
        .collect();
    let load = Load::start(callers);
    let served_by = |calls: &[Call], g: usize, from: Instant| {
        calls
            .iter()
            .filter(|c| c.gateway == g && c.status == 200 && c.started >= from)
            .count()
    };
    let begun = Instant::now();
    load.until("every gateway serves", Duration::from_secs(30), |calls| {
        (0..3).all(|g| served_by(calls, g, begun) >= 3)
    })
    .await;

    // Down.
    let kill = Instant::now();
    redis.stop();
    let killed = Instant::now();
    load.until(
        "calls meet the dead Redis",
        Duration::from_secs(30),
        |calls| {
            let after = |g: usize| {
                calls
                    .iter()
                    .filter(move |c| c.gateway == g && c.started >= killed)
            };
            after(0).count() >= 5
                && after(1).count() >= 5
                && after(LOCAL).filter(|c| c.status == 200).count() >= 3
        },
    )
    .await;

    // Up again, with what it had acknowledged.
    let restart = Instant::now();
    tokio::task::block_in_place(|| redis.restart());
    let restarted = Instant::now();
    eprintln!(
        "killed {:?} after the load began; restarted {:?} later, in {:?}",
        kill - begun,
        restart - killed,
        restarted - restart
    );
    load.until(
        "every gateway admits again",
        Duration::from_secs(30),
        |calls| (0..3).all(|g| served_by(calls, g, restarted) >= 3),
    )
    .await;
    let calls = load.stop().await;

    // Answers: 200, 429 (the limits), or, from a fail-closed gateway only, 503
    // `limiter_unavailable`.
    for c in &calls {
        match (c.status, c.kind.as_deref(), c.code.as_deref()) {
            (200, None, None) | (429, Some("rate_limit_error"), Some("rate_limit_exceeded")) => {}
            (503, Some("server_error"), Some("limiter_unavailable")) if c.gateway != LOCAL => {}
            other => panic!("unexpected answer {other:?} from gateway {}", c.gateway),
        }
    }
    let down: Vec<&Call> = calls.iter().filter(|c| c.within(killed, restart)).collect();
    for g in 0..2 {
        let statuses: Vec<u16> = down
            .iter()
            .filter(|c| c.gateway == g)
            .map(|c| c.status)
            .collect();
        assert!(statuses.len() >= 5, "gateway {g}: {statuses:?}");
        assert!(
            statuses.iter().all(|s| *s == 503),
            "gateway {g} admitted while Redis was down: {statuses:?}"
        );
    }
    let local_down = down
        .iter()
        .filter(|c| c.gateway == LOCAL && c.status == 200)
        .count();
    assert!(
        local_down >= 3,
        "the local fallback served {local_down} while Redis was down"
    );
    let recovered: Vec<Duration> = (0..3)
        .map(|g| {
            calls
                .iter()
                .filter(|c| c.gateway == g && c.status == 200 && c.started >= restarted)
                .map(|c| c.ended - restarted)
                .min()
                .unwrap()
        })
        .collect();

    // The counters survived the crash: every request a fail-closed gateway served is
    // counted, and at most those plus its 503s that may have reached Redis before it died.
    for (g, agent) in AGENTS.iter().enumerate().take(2) {
        let served = calls
            .iter()
            .filter(|c| c.gateway == g && c.status == 200)
            .count() as u64;
        let uncertain = calls
            .iter()
            .filter(|c| c.gateway == g && c.status == 503 && c.started < killed)
            .count() as u64;
        let counted = requests_counted(&redis, agent);
        assert!(
            (served..=served + uncertain).contains(&counted),
            "gateway {g}: {counted} counted, {served} served, {uncertain} uncertain"
        );
    }

    // Leases: a settlement that met the dead Redis has its leases released once Redis is
    // back, without waiting for the lease TTL. Only a reservation whose answer was lost
    // (applied by Redis as it died, refused or served locally by the gateway) may hold one
    // until the TTL: a call in flight at the kill that got a 503, or went to the local
    // fallback. Wait (bounded) until no more than those remain.
    let in_flight_at_kill: Vec<&Call> = calls
        .iter()
        .filter(|c| c.started < killed && c.ended > kill)
        .collect();
    let unknown_fate = in_flight_at_kill
        .iter()
        .filter(|c| c.status == 503 || c.gateway == LOCAL)
        .count()
        .min(IN_FLIGHT);
    let deadline = Instant::now() + Duration::from_secs(15);
    let leaked = loop {
        let n = live(&leases(&redis), now);
        if n <= unknown_fate || Instant::now() > deadline {
            break n;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    assert!(
        leaked <= unknown_fate,
        "{leaked} leases live after the load; {} calls were in flight at the kill, \
         {unknown_fate} of them with a reservation of unknown fate",
        in_flight_at_kill.len()
    );
    // The lease TTL passes: an unsettled lease lapses.
    for gw in &gateways {
        gw.clock().advance(LEASE_TTL + Duration::from_secs(1));
    }
    assert_eq!(live(&leases(&redis), gateways[0].clock().now()), 0);

    // The whole limit at once: N held calls admitted together, the next refused.
    let holding = use_the_whole_limit(&client, &gateways, "held", &redis).await;

    // Redis dies while they are held, and their settlements meet it dead: their leases
    // are released once it is back, long before the lease TTL (the clocks stand still).
    redis.stop();
    held.release();
    read_to_the_end(holding).await;
    tokio::task::block_in_place(|| redis.restart());
    let restarted = Instant::now();
    no_lease_left(&redis).await;
    let released_after = restarted.elapsed();
    // So the whole limit is there at once again.
    let holding = use_the_whole_limit(&client, &gateways, "held2", &redis).await;
    held2.release();
    read_to_the_end(holding).await;
    no_lease_left(&redis).await;

    eprintln!(
        "{} calls; {} answered while Redis was down; recovered after {recovered:?}; \
         {} in flight at the kill, {unknown_fate} of unknown fate, {leaked} leases left to lapse; \
         leases of settlements that met a dead Redis released {released_after:?} after its restart",
        calls.len(),
        down.len(),
        in_flight_at_kill.len(),
    );
}
