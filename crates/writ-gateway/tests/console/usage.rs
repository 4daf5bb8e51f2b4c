//! The usage pages over HTTP: admins of their own tenant only, queries read strictly, and
//! real metered calls through the gateway shown per agent, hostile agent names escaped
//! and unpriced models counted in tokens but not in cost, and two instances sharing the
//! PostgreSQL audit sink showing each other's calls.

use reqwest::StatusCode;
use serde_json::{Value, json};
use writ_testkit::{FreshDatabase, MockUpstream, TestGateway};

use super::{ACME_ADMIN, ADMIN, Browser, Setup, escaped};

const KEY: &str = "sk-upstream-usage-0123";
const CEILING: &str = r#"{"type":"writ:llm","upstream":"demo"}"#;
const HOSTILE: &str = "<img src=x onerror=alert(1)>\u{202E}bot";

#[tokio::test]
async fn usage_is_for_a_tenants_admins_only() {
    let s = Setup::start().await;
    let mut nobody = Browser::new(&s.gw);
    for path in ["/console/usage", "/console/tenants/acme/usage"] {
        let page = nobody.get(path).await;
        assert_eq!(page.status, StatusCode::SEE_OTHER, "{path}");
        assert_eq!(page.location(), "/console/sign-in", "{path}");
    }
    let page = nobody.get("/console/tenants/acme/usage/live").await;
    assert_eq!(
        page.status,
        StatusCode::UNAUTHORIZED,
        "the script is told, not redirected"
    );
    page.assert_guarded("live without a session");

    let token = s.approver("acme", "carol").await;
    let mut approver = Browser::new(&s.gw);
    approver.sign_in(&[("approver_token", &token)]).await;
    for path in [
        "/console/usage",
        "/console/tenants/acme/usage",
        "/console/tenants/acme/usage/live",
    ] {
        let page = approver.get(path).await;
        assert_eq!(page.status, StatusCode::FORBIDDEN, "{path}");
        assert!(page.body.contains("approver"), "{}", page.body);
    }

    let writ = s.gw.mint_as(ACME_ADMIN, ACME_ADMIN, 30);
    let mut admin = Browser::new(&s.gw);
    admin.sign_in(&[("writ", &writ), ("tenant", "acme")]).await;
    let page = admin.get("/console/usage").await;
    assert_eq!(page.status, StatusCode::SEE_OTHER);
    assert_eq!(page.location(), "/console/tenants/acme/usage");
    let missing = admin.get("/console/tenants/nosuch/usage").await;
    assert_eq!(missing.status, StatusCode::NOT_FOUND);
    let oversized = format!("/console/tenants/{}/usage", "a".repeat(5000));
    for path in [
        "/console/tenants/globex/usage",
        "/console/tenants/globex/usage/live",
        "/console/tenants/globex/usage?window=month",
        "/console/tenants/..%2Facme/usage",
        "/console/tenants/%3Cb%3E/usage",
        oversized.as_str(),
    ] {
        let page = admin.get(path).await;
        assert_eq!(page.status, StatusCode::NOT_FOUND, "{path}");
        assert_eq!(
            page.body, missing.body,
            "{path}: as a tenant that does not exist"
        );
    }
    let page = admin.get("/console/tenants/acme/usage").await;
    assert_eq!(page.status, StatusCode::OK, "{}", page.body);
    page.assert_guarded("usage");
    assert!(page.body.contains("<h1>Usage of acme</h1>"));
    assert!(
        page.body
            .contains(r#"data-live-src="/console/tenants/acme/usage/live?window=hour""#)
    );
    assert!(page.body.contains(r#"role="status" aria-live="polite""#));
    assert!(page.body.contains("No agent made a metered call"));
    assert!(!page.body.contains("style="), "no inline style (CSP)");

    let mut operator = Browser::new(&s.gw);
    operator.sign_in(&[("writ", &s.admin)]).await;
    let page = operator.get("/console/usage").await;
    assert_eq!(page.status, StatusCode::OK);
    for tenant in ["acme", "globex", "default"] {
        assert!(
            page.body
                .contains(&format!(r#"href="/console/tenants/{tenant}/usage""#)),
            "{tenant}: {}",
            page.body
        );
    }
    for tenant in ["acme", "globex"] {
        let page = operator
            .get(&format!("/console/tenants/{tenant}/usage"))
            .await;
        assert_eq!(page.status, StatusCode::OK, "{tenant}");
    }
}

#[tokio::test]
async fn bad_queries_are_refused_saying_what_is_accepted() {
    let s = Setup::start().await;
    let mut b = Browser::new(&s.gw);
    b.sign_in(&[("writ", &s.admin)]).await;
    let long_agent = format!("agent={}", "a".repeat(300));
    let huge = format!("window=hour&x={}", "y".repeat(5000));
    for query in [
        "window=week",
        "window=",
        "window=HOUR",
        "window=hour&window=day",
        "agent=a&agent=b",
        "agent=%0Aforged",
        "agent=a%00",
        "tenant=globex",
        "window=%FF%FE",
        "window[]=hour",
        long_agent.as_str(),
        huge.as_str(),
    ] {
        for path in [
            "/console/tenants/acme/usage",
            "/console/tenants/acme/usage/live",
        ] {
            let page = b.get(&format!("{path}?{query}")).await;
            assert_eq!(page.status, StatusCode::BAD_REQUEST, "{path}?{query}");
            assert!(
                page.body
                    .contains("window=hour, window=day or window=month"),
                "{query}: says what is accepted: {}",
                page.body
            );
            page.assert_guarded(query);
        }
    }
    for query in [
        "",
        "?window=hour",
        "?window=day",
        "?window=month&agent=bot",
        "?agent=",
    ] {
        let page = b.get(&format!("/console/tenants/acme/usage{query}")).await;
        assert_eq!(page.status, StatusCode::OK, "{query}");
    }
}

/// Calls chat completions on `gw` as `writ` with `model`: the usage the upstream reported.
async fn chat(gw: &TestGateway, writ: &str, model: &str) -> (u64, u64) {
    let (status, body) = gw
        .call_json(
            writ,
            reqwest::Method::POST,
            "/v1/chat/completions",
            Some(json!({"model": model, "messages": [{"role": "user", "content": "hello"}]})),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let n = |v: &Value| v.as_u64().unwrap();
    (
        n(&body["usage"]["prompt_tokens"]),
        n(&body["usage"]["completion_tokens"]),
    )
}

/// The text of the element with `id` in `html` (its content up to the next tag).
fn text_of<'a>(html: &'a str, id: &str) -> &'a str {
    let marker = format!(r#"id="{id}">"#);
    let at = html
        .find(&marker)
        .unwrap_or_else(|| panic!("no #{id} in {html}"))
        + marker.len();
    let end = html[at..].find('<').unwrap();
    &html[at..at + end]
}

#[tokio::test]
async fn metered_calls_show_per_agent_with_hostile_names_escaped() {
    let upstream = MockUpstream::start(KEY).await;
    let s = Setup::with_config(&format!(
        "[upstreams.demo]\nkind = \"openai\"\nbase_url = \"{}\"\nallow_private_network = true\napi_key = \"{KEY}\"\n",
        upstream.base_url()
    ))
    .await;
    let demo = s.gw.mint_for("demo", CEILING, CEILING, 30);
    let hostile = s.gw.mint_for(HOSTILE, CEILING, CEILING, 30);
    let (input, output) = chat(&s.gw, &demo, "gpt-4o-mini").await;
    let (h_input, h_output) = chat(&s.gw, &hostile, "no-such-priced-model").await;
    s.gw.gateway().audit_checkpoint().await;
    // gpt-4o-mini: 0.15 $/M input, 0.60 $/M output, rounded up to whole micros.
    let cost = (input * 150_000 + output * 600_000).div_ceil(1_000_000);
    let usd = |micros: u64| format!("${}.{:06}", micros / 1_000_000, micros % 1_000_000);

    let mut b = Browser::new(&s.gw);
    b.sign_in(&[("writ", &s.admin)]).await;
    let page = b.get("/console/tenants/default/usage").await;
    assert_eq!(page.status, StatusCode::OK, "{}", page.body);
    let html = &page.body;
    assert_eq!(text_of(html, "usage-requests"), "2");
    assert_eq!(text_of(html, "usage-input"), (input + h_input).to_string());
    assert_eq!(
        text_of(html, "usage-output"),
        (output + h_output).to_string()
    );
    assert_eq!(
        text_of(html, "usage-cost"),
        usd(cost),
        "the unpriced call costs nothing"
    );
    assert!(html.contains("1 of these calls used a model the pricing table does not price"));
    assert!(html.contains(r#"<svg class="chart" role="img""#));
    assert_eq!(html.matches("<svg").count(), 3, "requests, tokens, cost");
    // The hostile name: escaped in the table, its invisible character named, and its
    // link's query encoded.
    assert!(!html.contains("<img"), "no element from the agent's name");
    assert!(
        !html.contains("\u{202E}"),
        "the override is named, not written"
    );
    assert!(html.contains(&escaped("<img src=x onerror=alert(1)>[U+202E]bot")));
    let link = "agent=%3Cimg%20src%3Dx%20onerror%3Dalert%281%29%3E%E2%80%AEbot";
    assert!(html.contains(link), "{html}");

    // One agent alone: its charts, and still every agent in the table.
    let page = b
        .get(&format!("/console/tenants/default/usage?window=day&{link}"))
        .await;
    assert_eq!(page.status, StatusCode::OK);
    let html = &page.body;
    assert_eq!(text_of(html, "usage-requests"), "1");
    assert_eq!(text_of(html, "usage-input"), h_input.to_string());
    assert_eq!(text_of(html, "usage-cost"), usd(0));
    assert!(html.contains("unpriced"));
    assert!(html.contains(r#"href="/console/tenants/default/usage?window=day&#38;agent=demo""#));
    assert!(!html.contains("<img"));
    // Titles of the charts name the agent, escaped by the renderer.
    assert!(html.contains("&lt;img src=x onerror=alert(1)&gt;[U+202E]bot"));

    // The live part alone: the same numbers, no frame.
    let live = b
        .get("/console/tenants/default/usage/live?window=month&agent=demo")
        .await;
    assert_eq!(live.status, StatusCode::OK);
    live.assert_guarded("live");
    assert!(!live.body.contains("<html"), "a fragment");
    assert_eq!(text_of(&live.body, "usage-requests"), "1");
    assert_eq!(text_of(&live.body, "usage-output"), output.to_string());
    assert_eq!(text_of(&live.body, "usage-cost"), usd(cost));

    // Another tenant's page shows none of it.
    let page = b.get("/console/tenants/acme/usage").await;
    assert_eq!(text_of(&page.body, "usage-requests"), "0");
    assert!(!page.body.contains("onerror"));
}

/// Two instances sharing the PostgreSQL audit sink: a call through one shows on the other's
/// usage page, and a later call through either is added to what was read.
#[tokio::test]
async fn calls_through_another_instance_show_through_the_shared_audit_log() {
    let upstream = MockUpstream::start(KEY).await;
    let db = FreshDatabase::create().await;
    let config = format!(
        "[audit]\nsink = \"postgres\"\npostgres_url = \"{}\"\n\n\
         [upstreams.demo]\nkind = \"openai\"\nbase_url = \"{}\"\nallow_private_network = true\napi_key = \"{KEY}\"\n",
        db.url(),
        upstream.base_url()
    );
    let a = TestGateway::start(&config).await;
    let b = TestGateway::start_beside(&config, &a).await;
    let (input, output) = chat(&b, &b.mint_for("demo", CEILING, CEILING, 30), "gpt-4o-mini").await;
    b.gateway().audit_checkpoint().await;

    let mut browser = Browser::new(&a);
    browser
        .sign_in(&[("writ", &a.mint_as(ADMIN, ADMIN, 30))])
        .await;
    let page = browser.get("/console/tenants/default/usage").await;
    assert_eq!(page.status, StatusCode::OK, "{}", page.body);
    assert_eq!(
        text_of(&page.body, "usage-requests"),
        "1",
        "the call through b"
    );
    assert_eq!(text_of(&page.body, "usage-input"), input.to_string());
    assert_eq!(text_of(&page.body, "usage-output"), output.to_string());

    let (more_in, _) = chat(&a, &a.mint_for("demo", CEILING, CEILING, 30), "gpt-4o-mini").await;
    a.gateway().audit_checkpoint().await;
    // The last reading answers for two seconds; the page's script polls until it is stale.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    loop {
        let live = browser.get("/console/tenants/default/usage/live").await;
        if text_of(&live.body, "usage-requests") == "2" {
            assert_eq!(
                text_of(&live.body, "usage-input"),
                (input + more_in).to_string()
            );
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the second call never showed"
        );
        // The interval of a poll, not a wait for the reading to go stale.
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
}
