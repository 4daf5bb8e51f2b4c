//! `/readyz`: ready on the embedded default, naming each backend; not ready — naming the
//! backend and where — while the limiter's Redis is away, and ready again once it is
//! back; `/healthz` answers alive throughout. (The PostgreSQL audit sink going away is
//! in `audit_postgres.rs`.)
#![allow(clippy::unwrap_used)]

use std::time::{Duration, Instant};

use reqwest::StatusCode;
use serde_json::Value;
use writ_testkit::{OwnRedis, TestGateway};

async fn readiness(gw: &TestGateway) -> (StatusCode, Value) {
    let r = reqwest::get(gw.url("/readyz")).await.unwrap();
    (r.status(), r.json().await.unwrap())
}

#[tokio::test]
async fn the_embedded_default_is_ready_and_says_what_it_uses() {
    let gw = TestGateway::start("").await;
    let (status, ready) = readiness(&gw).await;
    assert_eq!(status, StatusCode::OK, "{ready}");
    assert_eq!(ready["status"], "ready");
    let checks = ready["checks"].as_object().unwrap();
    let names: Vec<&str> = checks.keys().map(String::as_str).collect();
    assert_eq!(names, ["audit_sink", "keys", "limiter", "store"]);
    for (name, check) in checks {
        assert_eq!(check["ok"], true, "{name}: {check}");
    }
    let detail = |name: &str| checks[name]["detail"].as_str().unwrap().to_string();
    assert!(
        detail("store").starts_with("SQLite at /"),
        "{}",
        detail("store")
    );
    assert!(detail("audit_sink").starts_with("SQLite at /"));
    assert_eq!(detail("limiter"), "memory (this instance)");
    assert!(detail("keys").starts_with("signing with key "));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_redis_that_went_away_makes_the_instance_not_ready_until_it_is_back() {
    let mut redis = OwnRedis::start();
    let gw = TestGateway::start(&format!(
        "[limiter]\nbackend = \"redis\"\nredis_url = \"{}\"\n",
        redis.url()
    ))
    .await;
    let (status, ready) = readiness(&gw).await;
    assert_eq!(status, StatusCode::OK, "{ready}");
    assert_eq!(ready["checks"]["limiter"]["detail"], "Redis");

    redis.stop();
    let (status, ready) = readiness(&gw).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{ready}");
    assert_eq!(ready["status"], "not_ready");
    assert_eq!(ready["checks"]["limiter"]["ok"], false);
    let detail = ready["checks"]["limiter"]["detail"].as_str().unwrap();
    assert!(detail.starts_with("Redis: "), "{detail}");
    assert_eq!(
        ready["checks"]["store"]["ok"], true,
        "only the limiter: {ready}"
    );
    let health = reqwest::get(gw.url("/healthz")).await.unwrap();
    assert_eq!(health.status(), StatusCode::OK, "alive all the same");

    redis.restart();
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let (status, ready) = readiness(&gw).await;
        if status == StatusCode::OK {
            assert_eq!(ready["checks"]["limiter"]["ok"], true);
            break;
        }
        assert!(Instant::now() < deadline, "never ready again: {ready}");
        tokio::task::yield_now().await;
    }
}
