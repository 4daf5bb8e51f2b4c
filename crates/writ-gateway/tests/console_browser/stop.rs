//! The kill switch from the console, on two gateway instances sharing PostgreSQL (store
//! and audit log) and Redis (revocations): an agent's writ works on both; an operator
//! signs in on A in Chromium, sees the agent's live writ (minted on B), and presses its
//! stop button; the agent's next request on A and on B is refused (401) within one
//! second of the click.

use std::time::{Duration, Instant};

use base64::Engine;
use serde_json::{Value, json};
use writ_testkit::{
    FreshDatabase, MockUpstream, OAuthClient, OwnRedis, Step, TestGateway, on_localhost,
    run_browser,
};

use super::{ADMIN, assert_accessible};

const KEY: &str = "pay-key-0123456789";
const CEILING: &str =
    r#"{"type":"writ:tool","upstream":"pay","tool":"pay","additional_arguments":true}"#;
/// How long the stop may take to reach both instances.
const WITHIN: Duration = Duration::from_secs(1);

fn config(mock: &str, db: &FreshDatabase, redis: &OwnRedis) -> String {
    let master = base64::engine::general_purpose::STANDARD.encode([7u8; 32]);
    format!(
        "[store]\nurl = \"{db}\"\nmaster_key = \"{master}\"\n\n\
         [audit]\nsink = \"postgres\"\npostgres_url = \"{db}\"\n\n\
         [limiter]\nbackend = \"redis\"\nredis_url = \"{}\"\n\n\
         [upstreams.pay]\nkind = \"mcp\"\nbase_url = \"{mock}/mcp\"\nallow_private_network = true\napi_key = \"{KEY}\"\n",
        redis.url(),
        db = db.url(),
    )
}

/// The status of one payment by `writ` on `gw`.
async fn pay(client: &reqwest::Client, gw: &TestGateway, writ: &str) -> u16 {
    client
        .post(gw.url("/mcp/pay"))
        .bearer_auth(writ)
        .json(&json!({"jsonrpc": "2.0", "id": 1, "method": "tools/call",
            "params": {"name": "pay", "arguments": {"amount": 5, "to": "acme"}}}))
        .send()
        .await
        .map_or(0, |r| r.status().as_u16())
}

/// A writ for `agent` from `gw`'s token endpoint (so its mint is in the audit log).
async fn token(gw: &TestGateway, agent: &str, secret: &str) -> String {
    let body: Value = reqwest::Client::new()
        .post(gw.url("/oauth2/token"))
        .form(&[
            ("grant_type", "client_credentials"),
            ("client_id", agent),
            ("client_secret", secret),
            ("authorization_details", &format!("[{CEILING}]")),
        ])
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    body["access_token"]
        .as_str()
        .unwrap_or_else(|| panic!("a writ: {body}"))
        .to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn stop_an_agent_from_its_page_on_two_instances() {
    let db = FreshDatabase::create().await;
    let redis = OwnRedis::start();
    let mock = MockUpstream::start(KEY).await;
    let cfg = config(&mock.base_url(), &db, &redis);
    let a = TestGateway::start(&cfg).await;
    let b = TestGateway::start_beside(&cfg, &a).await;
    let (_, secret) = OAuthClient::register(&a, "bot", CEILING, false).await;
    // Minted on B: A's page counts it from the shared audit log.
    let writ = token(&b, "bot", &secret).await;
    let client = reqwest::Client::new();
    assert_eq!(pay(&client, &a, &writ).await, 200, "works on A");
    assert_eq!(pay(&client, &b, &writ).await, 200, "works on B");

    let operator = a.mint_for("operator", ADMIN, ADMIN, 30);
    let base = on_localhost(a.url("").trim_end_matches('/'));
    let card = "article[data-agent=bot]";
    let run = run_browser(
        &base,
        "console_stop",
        &[
            Step::goto("/console/sign-in"), // 0
            Step::fill("#writ", &operator), // 1
            Step::click_and_navigate("section[aria-labelledby=by-writ] button"), // 2
            Step::goto("/console/tenants/default/agents"), // 3
            Step::text(&format!("{card} .live-writs")), // 4
            Step::axe(),                    // 5
            Step::screenshot("agents-before-stop"), // 6
            Step::fill(&format!("{card} input[name=reason]"), "runaway loop"), // 7
            Step::accept_dialogs(),         // 8
            Step::click_and_navigate(&format!("{card} button")), // 9
        ],
    )
    .await
    .unwrap_or_else(|e| panic!("{e}"));
    let clicked = Instant::now();
    // Poll both instances (no sleeping between tries) until both refuse, or give up
    // well past the bound so a slow stop fails with its measured time.
    let deadline = clicked + Duration::from_secs(5);
    let (mut on_a, mut on_b) = (None, None);
    while (on_a.is_none() || on_b.is_none()) && Instant::now() < deadline {
        if on_a.is_none() && pay(&client, &a, &writ).await == 401 {
            on_a = Some(clicked.elapsed());
        }
        if on_b.is_none() && pay(&client, &b, &writ).await == 401 {
            on_b = Some(clicked.elapsed());
        }
        tokio::task::yield_now().await;
    }
    let on_a = on_a.expect("A refuses the stopped agent's writ");
    let on_b = on_b.expect("B refuses the stopped agent's writ");
    eprintln!("stop reached A after {on_a:?}, B after {on_b:?}");
    assert!(on_a < WITHIN, "A refused only after {on_a:?}");
    assert!(on_b < WITHIN, "B refused only after {on_b:?}");

    assert_eq!(run[4]["text"], "1", "the writ minted on B is live");
    assert_accessible(&run, 5, "agents");
    assert!(
        run[9]["url"]
            .as_str()
            .unwrap()
            .ends_with("/console/tenants/default/agents")
    );
    assert_eq!(run.problems(), Vec::<String>::new(), "no console errors");

    // After: the page says no live writ, in the dark and on a phone.
    let run = run_browser(
        &base,
        "console_stop_after",
        &[
            Step::goto("/console/sign-in"), // 0
            Step::fill("#writ", &operator), // 1
            Step::click_and_navigate("section[aria-labelledby=by-writ] button"), // 2
            Step::color_scheme(true),       // 3
            Step::viewport(390, 844),       // 4
            Step::goto("/console/tenants/default/agents"), // 5
            Step::text(&format!("{card} .live-writs")), // 6
            Step::axe(),                    // 7
            Step::screenshot("agents-after-stop-dark-phone"), // 8
        ],
    )
    .await
    .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(run[6]["text"], "0", "stopped: no live writ");
    assert_accessible(&run, 7, "agents, dark, phone");
    assert_eq!(run.problems(), Vec::<String>::new());
    let records = a.gateway().store().revocation_records().await.unwrap();
    assert_eq!(records.len(), 1);
    assert_eq!(records[0].revoked.reason.as_deref(), Some("runaway loop"));
    assert_eq!(records[0].revoked.by.as_deref(), Some("operator"));
}
