//! The agents page's live writs: writs minted through the token endpoint (read from the
//! audit log), less the expired and the stopped; the log read at most every few seconds;
//! ceilings in words, not JSON.

use std::time::Duration;

use reqwest::StatusCode;
use serde_json::Value;
use writ_testkit::OAuthClient;

use super::{ADMIN, Browser, Setup};

const CEILING: &str = r#"{"type":"writ:tool","upstream":"pay","tool":"pay","arguments":{"amount":{"max":100},"to":{"one_of":["acme","globex"]}}}"#;
const ASK: &str = r#"[{"type":"writ:tool","upstream":"pay","tool":"pay","arguments":{"amount":{"max":50},"to":"acme"}}]"#;

/// Mints a writ for `agent` through the token endpoint.
async fn mint(s: &Setup, agent: &str, secret: &str) {
    let resp = reqwest::Client::new()
        .post(s.gw.url("/oauth2/token"))
        .form(&[
            ("grant_type", "client_credentials"),
            ("client_id", agent),
            ("client_secret", secret),
            ("authorization_details", ASK),
        ])
        .send()
        .await
        .unwrap();
    let status = resp.status();
    let body: Value = resp.json().await.unwrap_or(Value::Null);
    assert_eq!(status, StatusCode::OK, "{body}");
}

/// The live writs shown for `agent` on the page.
fn live(html: &str, agent: &str) -> String {
    let card = &html[html
        .find(&format!("data-agent=\"{agent}\""))
        .unwrap_or_else(|| panic!("no card for {agent}: {html}"))..];
    let marker = "<dd class=\"live-writs\">";
    let at = card.find(marker).unwrap() + marker.len();
    card[at..at + card[at..].find('<').unwrap()].to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn live_writs_are_counted_from_the_audit_log() {
    let s = Setup::with_config(
        "[upstreams.pay]\nkind = \"mcp\"\nbase_url = \"http://127.0.0.1:9/mcp\"\nallow_private_network = true\napi_key = \"pay-key-0123456789\"\n",
    )
    .await;
    let (_, bot) = OAuthClient::register(&s.gw, "bot", CEILING, false).await;
    let (_, _) = OAuthClient::register(&s.gw, "idle", CEILING, false).await;
    let mut b = Browser::new(&s.gw);
    b.sign_in(&[("writ", &s.admin)]).await;
    let page = b.get("/console/tenants/default/agents").await;
    assert_eq!(page.status, StatusCode::OK, "{}", page.body);
    assert_eq!(live(&page.body, "bot"), "0");
    // The ceiling in words.
    assert!(
        page.body.contains(
            "Tool pay on pay; amount at most 100; to one of &#34;acme&#34;, &#34;globex&#34;; no other arguments"
        ),
        "{}",
        page.body
    );
    assert!(!page.body.contains("writ:tool"), "not JSON");

    mint(&s, "bot", &bot).await;
    mint(&s, "bot", &bot).await;
    // Read again only when the last read is a few seconds old.
    let page = b.get("/console/tenants/default/agents").await;
    assert_eq!(live(&page.body, "bot"), "0", "the last read serves");
    s.gw.clock().advance(Duration::from_secs(5));
    let page = b.get("/console/tenants/default/agents").await;
    assert_eq!(live(&page.body, "bot"), "2");
    assert_eq!(live(&page.body, "idle"), "0");

    // Expired writs are not live (the agent's writs last 30 s at most).
    s.gw.clock().advance(Duration::from_secs(26));
    mint(&s, "bot", &bot).await;
    let admin = s.gw.mint_for("operator", ADMIN, ADMIN, 30);
    let mut b = Browser::new(&s.gw);
    b.sign_in(&[("writ", &admin)]).await;
    let page = b.get("/console/tenants/default/agents").await;
    assert_eq!(live(&page.body, "bot"), "1", "{}", page.body);

    // A stop shows at once: revocations apply to what was read.
    let csrf = page.csrf();
    let stopped = b
        .post(
            "/console/tenants/default/agents/bot/stop",
            &[("csrf", csrf.as_str())],
        )
        .await;
    assert_eq!(stopped.status, StatusCode::SEE_OTHER, "{}", stopped.body);
    let page = b.get("/console/tenants/default/agents").await;
    assert_eq!(live(&page.body, "bot"), "0");
}
