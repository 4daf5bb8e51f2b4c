//! A gateway process that dies while holding concurrency leases in Redis does not hold
//! them for ever: they lapse after the lease TTL, and another instance admits again.
#![allow(clippy::unwrap_used)]

use std::path::Path;
use std::time::Duration;

use futures_util::StreamExt;
use reqwest::StatusCode;
use serde_json::json;
use writ_testkit::{Behavior, MockUpstream, ServeProcess, TestGateway};

const BIN: &str = env!("CARGO_BIN_EXE_writ");
const KEY: &str = "sk-upstream-leases-0123";
const GRANT: &str = r#"{"type":"writ:llm","upstream":"demo"}"#;

fn body() -> serde_json::Value {
    json!({"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}], "stream": true})
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn leases_of_a_killed_gateway_lapse_after_their_ttl() {
    let upstream = MockUpstream::start_with(KEY, Behavior::HoldStreamAfterFirstEvent).await;
    // A tenant of its own, so the lease key is this test's alone.
    let tenant = format!("leases-{:016x}", rand::random::<u64>());
    let config = format!(
        "[tokens]\ntenant = \"{tenant}\"\n\n[limiter]\nbackend = \"redis\"\nredis_url = \"redis://127.0.0.1:6379\"\nlease_ttl = \"5s\"\n\n\
         [[limit]]\nscope = \"tenant\"\ndimension = \"concurrency\"\nlimit = 1\n\n\
         [upstreams.demo]\nkind = \"openai\"\nbase_url = \"{}\"\nallow_private_network = true\napi_key = \"{KEY}\"\n",
        upstream.base_url()
    );
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("writ.toml"), &config).unwrap();
    let server = ServeProcess::start(
        Path::new(BIN),
        dir.path(),
        &["--demo", "--listen", "127.0.0.1:0", "--config", "writ.toml"],
    );
    let mint = || {
        let out = server.writ(&[
            "token",
            "mint",
            "--config",
            "writ.toml",
            "--agent",
            "demo",
            "--grant",
            GRANT,
            "--ttl",
            "30s",
        ]);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap().trim().to_string()
    };
    let client = reqwest::Client::new();
    let held = client
        .post(server.url("/v1/chat/completions"))
        .bearer_auth(mint())
        .json(&body())
        .send()
        .await
        .unwrap();
    assert_eq!(held.status(), StatusCode::OK);
    let mut held = held.bytes_stream();
    held.next().await.unwrap().unwrap();
    // The one slot is taken.
    let refused = client
        .post(server.url("/v1/chat/completions"))
        .bearer_auth(mint())
        .json(&body())
        .send()
        .await
        .unwrap();
    assert_eq!(refused.status(), StatusCode::TOO_MANY_REQUESTS);
    // The process dies without releasing anything.
    drop(server);
    drop(held);

    // Another instance, same Redis and tenant: still refused while the lease lives …
    let other = TestGateway::start(&config).await;
    let send = || {
        let client = client.clone();
        let url = other.url("/v1/chat/completions");
        let writ = other.mint_in(&tenant, GRANT, GRANT, 30);
        async move {
            client
                .post(url)
                .bearer_auth(writ)
                .json(&json!({"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}]}))
                .send()
                .await
                .unwrap()
                .status()
        }
    };
    assert_eq!(send().await, StatusCode::TOO_MANY_REQUESTS);
    // … and admitted once it has lapsed (the instance's clock moved past the TTL).
    other.clock().advance(Duration::from_secs(6));
    assert_eq!(send().await, StatusCode::OK);
}
