//! Pending approvals are bounded per agent and per tenant: an agent cannot fill the store
//! (or a person's queue) with requests waiting for approval. The next one is refused, 429.
#![allow(clippy::unwrap_used)]

use serde_json::{Value, json};
use writ_store::{RuleKind, RuleRecord};
use writ_testkit::{MockUpstream, TestGateway};

const KEY: &str = "pay-key-0123456789";
const GRANT: &str =
    r#"{"type":"writ:tool","upstream":"pay","tool":"pay","additional_arguments":true}"#;

async fn gateway(per_agent: u64, per_tenant: u64) -> (MockUpstream, TestGateway) {
    let mock = MockUpstream::start(KEY).await;
    let cfg = format!(
        "[approvals]\nmax_pending_per_agent = {per_agent}\nmax_pending_per_tenant = {per_tenant}\n\n\
         [upstreams.pay]\nkind = \"mcp\"\nbase_url = \"{}/mcp\"\nallow_private_network = true\napi_key = \"{KEY}\"\n",
        mock.base_url()
    );
    let gw = TestGateway::start(&cfg).await;
    let now = now(&gw);
    let rule = RuleRecord {
        tenant: "default".into(),
        name: "payments".into(),
        body: r#"requires_approval("every payment") <- tool("pay");"#.into(),
        created_at: now,
        updated_at: now,
    };
    gw.gateway()
        .store()
        .put_rule(RuleKind::Policy, &rule)
        .await
        .unwrap();
    gw.gateway().reload().await.unwrap();
    (mock, gw)
}

fn now(gw: &TestGateway) -> u64 {
    writ_token::Clock::now(gw.clock())
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

async fn pay(gw: &TestGateway, writ: &str, amount: i64) -> (u16, Value) {
    let resp = reqwest::Client::new()
        .post(gw.url("/mcp/pay"))
        .bearer_auth(writ)
        .json(&json!({"jsonrpc": "2.0", "id": 1, "method": "tools/call",
            "params": {"name": "pay", "arguments": {"amount": amount}}}))
        .send()
        .await
        .unwrap();
    let status = resp.status().as_u16();
    (status, resp.json().await.unwrap())
}

fn code(v: &Value) -> &str {
    v["error"]["data"]["code"].as_str().unwrap_or("")
}

#[tokio::test]
async fn ten_thousand_pending_from_one_agent_and_the_next_is_refused() {
    let (mock, gw) = gateway(10_000, 10_000).await;
    let writ = gw.mint_as(GRANT, GRANT, 30);
    // 9 999 waiting already, written straight into the database in one transaction (the
    // bound is the store's count, however the approvals came; one by one through the API
    // this set-up alone took most of a minute).
    let now = now(&gw);
    let db = rusqlite::Connection::open(gw.gateway().data_dir().join("writ.db")).unwrap();
    db.busy_timeout(std::time::Duration::from_secs(5)).unwrap();
    db.execute_batch("BEGIN").unwrap();
    for _ in 0..9_999 {
        db.execute(
            "INSERT INTO approvals (id, tenant, agent, kind, status, reason, summary,
                 summary_digest, request_digest, writ_revocation_ids, created_at, expires_at,
                 poll_interval, next_poll_at)
             VALUES (?1, 'default', 'demo', 'request', 'pending', 'every payment', '{}', '',
                 '', '', ?2, ?3, 5, ?2)",
            rusqlite::params![writ_token::new_approval_id(), now as i64, now as i64 + 300],
        )
        .unwrap();
    }
    db.execute_batch("COMMIT").unwrap();
    // The store counts them as any other.
    let waiting = gw
        .gateway()
        .store()
        .approvals(
            &writ_store::ApprovalFilter {
                status: Some(writ_store::ApprovalStatus::Pending),
                limit: 1000,
                ..Default::default()
            },
            now,
        )
        .await
        .unwrap();
    assert_eq!(waiting.len(), 1000);
    // The 10 000th is held like any other…
    let (status, v) = pay(&gw, &writ, 1).await;
    assert_eq!((status, code(&v)), (403, "approval_required"), "{v}");
    // …the 10 001st is refused, and says what to do.
    let (status, v) = pay(&gw, &writ, 2).await;
    assert_eq!(
        (status, code(&v)),
        (429, "too_many_pending_approvals"),
        "{v}"
    );
    let message = v["error"]["message"].as_str().unwrap();
    assert!(message.contains("10000 approvals waiting"), "{message}");
    assert!(mock.requests().is_empty());
}

#[tokio::test]
async fn the_tenant_bound_holds_across_its_agents_and_expired_ones_free_room() {
    let (_mock, gw) = gateway(2, 3).await;
    let demo = gw.mint_as(GRANT, GRANT, 30);
    let other = gw.mint_for("other", GRANT, GRANT, 30);
    for amount in [1, 2] {
        assert_eq!(code(&pay(&gw, &demo, amount).await.1), "approval_required");
    }
    // The agent's bound.
    assert_eq!(pay(&gw, &demo, 3).await.0, 429);
    // The tenant's bound: one more from another agent, then none.
    assert_eq!(code(&pay(&gw, &other, 4).await.1), "approval_required");
    let (status, v) = pay(&gw, &other, 5).await;
    assert_eq!((status, code(&v)), (429, "too_many_pending_approvals"));
    assert!(
        v["error"]["message"]
            .as_str()
            .unwrap()
            .contains("Tenant `default`"),
        "{v}"
    );
    // Approvals expire with their writ (30 s here): then there is room again.
    gw.clock().advance(std::time::Duration::from_secs(31));
    let fresh = gw.mint_as(GRANT, GRANT, 30);
    assert_eq!(code(&pay(&gw, &fresh, 6).await.1), "approval_required");
}
