//! The payment example decided through the console's forms: an approver approves → the
//! agent's retry passes once; an admin denies → the retry is refused with the reason; an
//! admin stops the agent → its next request is 401.

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use writ_store::{RuleKind, RuleRecord};
use writ_testkit::{MockUpstream, TestGateway};

use super::{Browser, Setup, escaped};

const KEY: &str = "pay-key-0123456789";
const CEILING: &str =
    r#"{"type":"writ:tool","upstream":"pay","tool":"pay","additional_arguments":true}"#;
const POLICY: &str =
    r#"requires_approval("payments over 100") <- tool("pay"), arg("amount", $a), $a > 100;"#;

/// A gateway with an MCP payment upstream and the payment policy in tenant `default`.
async fn payments(mock: &MockUpstream) -> Setup {
    let config = format!(
        "[upstreams.pay]\nkind = \"mcp\"\nbase_url = \"{}/mcp\"\nallow_private_network = true\napi_key = \"{KEY}\"\n",
        mock.base_url()
    );
    let s = Setup::with_config(&config).await;
    let now = s.now();
    let rule = RuleRecord {
        tenant: "default".into(),
        name: "payments".into(),
        body: POLICY.into(),
        created_at: now,
        updated_at: now,
    };
    let store = s.gw.gateway().store();
    store.put_rule(RuleKind::Policy, &rule).await.unwrap();
    s.gw.gateway().reload().await.unwrap();
    s
}

async fn pay(gw: &TestGateway, writ: &str, amount: i64, approval: Option<&str>) -> (u16, Value) {
    let mut req = reqwest::Client::new()
        .post(gw.url("/mcp/pay"))
        .bearer_auth(writ)
        .json(&json!({"jsonrpc": "2.0", "id": 9, "method": "tools/call",
            "params": {"name": "pay", "arguments": {"amount": amount, "to": "ACME <script>x</script>"}}}));
    if let Some(id) = approval {
        req = req.header("writ-approval", id);
    }
    let resp = req.send().await.unwrap();
    let status = resp.status().as_u16();
    (status, resp.json().await.unwrap_or(Value::Null))
}

fn code(v: &Value) -> &str {
    v["error"]["data"]["code"].as_str().unwrap_or("")
}

/// A held payment: its approval id.
async fn held(gw: &TestGateway, writ: &str, amount: i64) -> String {
    let (status, v) = pay(gw, writ, amount, None).await;
    assert_eq!((status, code(&v)), (403, "approval_required"), "{v}");
    v["error"]["data"]["approval"]["id"]
        .as_str()
        .unwrap()
        .to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn approve_in_the_console_and_the_retry_passes_once() {
    let mock = MockUpstream::start(KEY).await;
    let s = payments(&mock).await;
    let writ = s.gw.mint_as(CEILING, CEILING, 30);
    let id = held(&s.gw, &writ, 250).await;
    let forwarded = mock.requests().len();

    let token = s.approver("default", "alice").await;
    let mut b = Browser::new(&s.gw);
    b.sign_in(&[("approver_token", &token)]).await;
    let page = b.get("/console/approvals").await;
    assert!(page.body.contains(&id), "the held payment is listed");
    assert!(page.body.contains("payments over 100"));
    assert!(page.body.contains("<code>amount</code>"));
    assert!(page.body.contains("<code>250</code>"));
    assert!(page.body.contains(&escaped("ACME <script>x</script>")));
    assert!(!page.body.contains("<script>x"));
    let csrf = page.csrf();
    let page = b
        .post(
            &format!("/console/approvals/{id}/approve"),
            &[("csrf", csrf.as_str()), ("reason", "invoice 42")],
        )
        .await;
    assert_eq!(page.status, StatusCode::SEE_OTHER, "{}", page.body);
    let record = s.gw.gateway().store().approval(&id).await.unwrap().unwrap();
    assert_eq!(record.decided_by.as_deref(), Some("alice"));
    assert_eq!(record.decided_method.as_deref(), Some("approver_token"));
    // No longer waiting: not listed.
    assert!(!b.get("/console/approvals").await.body.contains(&id));

    let (status, v) = pay(&s.gw, &writ, 250, Some(&id)).await;
    assert_eq!(status, 200, "{v}");
    assert_eq!(mock.requests().len(), forwarded + 1);
    assert_eq!(
        code(&pay(&s.gw, &writ, 250, Some(&id)).await.1),
        "approval_used"
    );
    assert_eq!(mock.requests().len(), forwarded + 1, "once only");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn deny_in_the_console_and_the_agent_hears_why() {
    let mock = MockUpstream::start(KEY).await;
    let s = payments(&mock).await;
    let writ = s.gw.mint_as(CEILING, CEILING, 30);
    let id = held(&s.gw, &writ, 400).await;
    let mut b = Browser::new(&s.gw);
    b.sign_in(&[("writ", &s.admin)]).await;
    let csrf = b.csrf().await;
    let page = b
        .post(
            &format!("/console/approvals/{id}/deny"),
            &[("csrf", csrf.as_str()), ("reason", "not this month")],
        )
        .await;
    assert_eq!(page.status, StatusCode::SEE_OTHER, "{}", page.body);
    let (status, v) = pay(&s.gw, &writ, 400, Some(&id)).await;
    assert_eq!((status, code(&v)), (403, "approval_denied"), "{v}");
    assert!(
        v["error"]["message"]
            .as_str()
            .unwrap()
            .contains("not this month"),
        "{v}"
    );
    // The decided approval reads as decided, by whom and why.
    let page = b.get(&format!("/console/approvals/{id}")).await;
    assert!(page.body.contains("denied by"), "{}", page.body);
    assert!(page.body.contains("not this month"));
    assert!(
        !page.body.contains("/deny\""),
        "no decision forms on a decided approval"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn stopping_an_agent_in_the_console_revokes_its_writs() {
    let mock = MockUpstream::start(KEY).await;
    let s = payments(&mock).await;
    let ceiling: Value = serde_json::from_str(CEILING).unwrap();
    let (status, body) = s
        .admin_api(
            Method::POST,
            "/admin/v1/tenants/default/agents",
            json!({"name": "demo", "ceiling": [ceiling], "generate_secret": true}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let writ = s.gw.mint_as(CEILING, CEILING, 30);
    assert_eq!(pay(&s.gw, &writ, 50, None).await.0, 200);

    let mut b = Browser::new(&s.gw);
    b.sign_in(&[("writ", &s.admin)]).await;
    let page = b.get("/console/tenants/default/agents").await;
    assert_eq!(page.status, StatusCode::OK);
    assert!(
        page.body.contains("<h2 id=\"agent-1\">demo</h2>"),
        "{}",
        page.body
    );
    let csrf = page.csrf();
    // Without the token nothing is stopped.
    let stop = "/console/tenants/default/agents/demo/stop";
    assert_eq!(b.post(stop, &[]).await.status, StatusCode::FORBIDDEN);
    assert_eq!(pay(&s.gw, &writ, 50, None).await.0, 200);
    // An agent that does not exist: 404.
    let page = b
        .post(
            "/console/tenants/default/agents/ghost/stop",
            &[("csrf", &csrf)],
        )
        .await;
    assert_eq!(page.status, StatusCode::NOT_FOUND);

    let page = b
        .post(stop, &[("csrf", csrf.as_str()), ("reason", "runaway loop")])
        .await;
    assert_eq!(page.status, StatusCode::SEE_OTHER, "{}", page.body);
    assert_eq!(page.location(), "/console/tenants/default/agents");
    let (status, v) = pay(&s.gw, &writ, 50, None).await;
    assert_eq!(status, 401, "{v}");
    let records = s.gw.gateway().store().revocation_records().await.unwrap();
    assert_eq!(records.len(), 1);
    assert_eq!(records[0].revoked.reason.as_deref(), Some("runaway loop"));
    assert_eq!(
        records[0].revoked.by.as_deref(),
        Some("demo"),
        "the admin writ's agent"
    );
    // The audit log says who stopped it, from the console, and how they signed in.
    // (The setup's admin writ is agent `demo`'s too, so it is stopped: another reads.)
    let auditor = s.gw.mint_for("auditor", super::ADMIN, super::ADMIN, 30);
    let audit: Value = reqwest::Client::new()
        .get(s.gw.url("/admin/v1/audit?kind=revocation"))
        .bearer_auth(&auditor)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let record = &audit["records"][0];
    assert_eq!(record["detail"]["via"], "console", "{audit}");
    assert_eq!(record["detail"]["method"], "admin_writ");
    assert_eq!(record["detail"]["reason"], "runaway loop");
    assert_eq!(record["detail"]["revocation"]["kind"], "agent");

    // The session signed in with `demo`'s admin writ ended with it.
    assert_eq!(b.get("/console/agents").await.status, StatusCode::SEE_OTHER);

    // The operator's stop of everything issued before now reaches every writ, the
    // signed-in operator's own included.
    let other = s.gw.mint_for("other", CEILING, CEILING, 30);
    assert_eq!(pay(&s.gw, &other, 50, None).await.0, 200);
    let mut op = Browser::new(&s.gw);
    op.sign_in(&[("writ", &auditor)]).await;
    let csrf = op.get("/console/agents").await.csrf();
    let page = op
        .post(
            "/console/stop",
            &[("csrf", csrf.as_str()), ("reason", "incident")],
        )
        .await;
    assert_eq!(page.status, StatusCode::SEE_OTHER, "{}", page.body);
    assert_eq!(pay(&s.gw, &other, 50, None).await.0, 401);
    assert_eq!(
        op.get("/console/agents").await.status,
        StatusCode::SEE_OTHER
    );
}
