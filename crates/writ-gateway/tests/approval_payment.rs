//! Request-time approval end to end, on two gateways sharing PostgreSQL and Redis: an
//! agent asks to pay 250, a tenant policy holds it (403 `approval_required`), a person
//! approves, and the retry passes exactly once — whichever instance it reaches. Every
//! other retry is refused with its own code.
#![allow(clippy::unwrap_used)]

use std::time::Duration;

use base64::Engine;
use serde_json::{Value, json};
use writ_store::{RuleKind, RuleRecord};
use writ_testkit::{FreshDatabase, MockUpstream, OwnRedis, TestGateway};

const KEY: &str = "pay-key-0123456789";
const CEILING: &str =
    r#"{"type":"writ:tool","upstream":"pay","tool":"pay","additional_arguments":true}"#;
const POLICY: &str =
    r#"requires_approval("payments over 100") <- tool("pay"), arg("amount", $a), $a > 100;"#;

fn config(mock: &str, db: &FreshDatabase, redis: &OwnRedis) -> String {
    let master = base64::engine::general_purpose::STANDARD.encode([7u8; 32]);
    format!(
        "[store]\nurl = \"{}\"\nmaster_key = \"{master}\"\n\n\
         [limiter]\nbackend = \"redis\"\nredis_url = \"{}\"\n\n\
         [upstreams.pay]\nkind = \"mcp\"\nbase_url = \"{mock}/mcp\"\nallow_private_network = true\napi_key = \"{KEY}\"\n",
        db.url(),
        redis.url()
    )
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

/// The gateway's code of an MCP refusal.
fn code(v: &Value) -> &str {
    v["error"]["data"]["code"].as_str().unwrap_or("")
}

async fn with_policy(gws: &[&TestGateway]) {
    let now = writ_token::Clock::now(gws[0].clock())
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let rule = RuleRecord {
        tenant: "default".into(),
        name: "payments".into(),
        body: POLICY.into(),
        created_at: now,
        updated_at: now,
    };
    gws[0]
        .gateway()
        .store()
        .put_rule(RuleKind::Policy, &rule)
        .await
        .unwrap();
    for gw in gws {
        gw.gateway().reload().await.unwrap();
    }
}

/// A held payment: its approval id.
async fn held(gw: &TestGateway, writ: &str, amount: i64) -> String {
    let (status, v) = pay(gw, writ, amount, None).await;
    assert_eq!(status, 403, "{v}");
    assert_eq!(code(&v), "approval_required", "{v}");
    v["error"]["data"]["approval"]["id"]
        .as_str()
        .unwrap()
        .to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_payment_example_on_two_instances() {
    let db = FreshDatabase::create().await;
    let redis = OwnRedis::start();
    let mock = MockUpstream::start(KEY).await;
    let cfg = config(&mock.base_url(), &db, &redis);
    let a = TestGateway::start(&cfg).await;
    let b = TestGateway::start_beside(&cfg, &a).await;
    with_policy(&[&a, &b]).await;
    let grant = r#"{"type":"writ:tool","upstream":"pay","tool":"pay","additional_arguments":true}"#;
    let writ = a.mint_as(CEILING, grant, 30);

    // Small payments pass without anyone asked.
    assert_eq!(pay(&a, &writ, 50, None).await.0, 200);
    let forwarded = mock.requests().len();

    // 250 is held: a JSON-RPC error answering the call, naming the approval and its URL.
    let (status, v) = pay(&a, &writ, 250, None).await;
    assert_eq!(status, 403, "{v}");
    assert_eq!(v["id"], 9);
    assert_eq!(code(&v), "approval_required");
    let approval = &v["error"]["data"]["approval"];
    let id = approval["id"].as_str().unwrap().to_string();
    assert!(id.starts_with("apr_"));
    assert_eq!(
        approval["poll_url"].as_str().unwrap(),
        format!("{}/approvals/{id}", a.url("")).replace("//approvals", "/approvals")
    );
    assert_eq!(approval["reason"], "payments over 100");
    // The summary says exactly what will happen; markup stays text.
    assert_eq!(approval["summary"]["tool"], "pay");
    assert_eq!(approval["summary"]["arguments"]["amount"], 250);
    assert_eq!(
        approval["summary"]["arguments"]["to"],
        "ACME <script>x</script>"
    );
    assert_eq!(
        mock.requests().len(),
        forwarded,
        "nothing reached the payee"
    );

    // Before anyone decides: pending, on either instance.
    assert_eq!(
        code(&pay(&a, &writ, 250, Some(&id)).await.1),
        "approval_pending"
    );
    assert_eq!(
        code(&pay(&b, &writ, 250, Some(&id)).await.1),
        "approval_pending"
    );
    let polled: Value = reqwest::Client::new()
        .get(b.url(&format!("/approvals/{id}")))
        .bearer_auth(&writ)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(polled["status"], "pending");

    // A person approves (on instance B).
    let record = b
        .gateway()
        .decide_approval(&id, "alice", true, Some("invoice 42".into()))
        .await
        .unwrap();
    assert_eq!(record.decided_by.as_deref(), Some("alice"));

    // Any change to the request voids it; so does another writ.
    assert_eq!(
        code(&pay(&a, &writ, 251, Some(&id)).await.1),
        "approval_request_mismatch"
    );
    let other = a.mint_as(CEILING, grant, 30);
    assert_eq!(
        code(&pay(&a, &other, 250, Some(&id)).await.1),
        "approval_writ_mismatch"
    );
    // The exact request passes once…
    let (status, v) = pay(&a, &writ, 250, Some(&id)).await;
    assert_eq!(status, 200, "{v}");
    assert_eq!(mock.requests().len(), forwarded + 1);
    let sent = mock.requests().last().unwrap().clone();
    assert!(
        !sent.headers.contains_key("writ-approval"),
        "the approval stays at the gateway"
    );
    // …and never again, on this instance or the other.
    assert_eq!(
        code(&pay(&a, &writ, 250, Some(&id)).await.1),
        "approval_used"
    );
    assert_eq!(
        code(&pay(&b, &writ, 250, Some(&id)).await.1),
        "approval_used"
    );
    assert_eq!(mock.requests().len(), forwarded + 1);

    // Expiry: approved, but used too late.
    let late = held(&a, &writ, 300).await;
    a.gateway()
        .decide_approval(&late, "alice", true, None)
        .await
        .unwrap();
    a.clock().advance(Duration::from_secs(31));
    let fresh = a.mint_as(CEILING, grant, 30);
    assert_eq!(
        code(&pay(&a, &fresh, 300, Some(&late)).await.1),
        "approval_expired"
    );

    // Denied: the person's reason reaches the agent.
    let no = held(&a, &fresh, 400).await;
    a.gateway()
        .decide_approval(&no, "bob", false, Some("not this month".into()))
        .await
        .unwrap();
    let (status, v) = pay(&a, &fresh, 400, Some(&no)).await;
    assert_eq!((status, code(&v)), (403, "approval_denied"));
    assert!(
        v["error"]["message"]
            .as_str()
            .unwrap()
            .contains("not this month"),
        "{v}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_approval_block_appended_to_the_writ_passes_once_across_instances() {
    let db = FreshDatabase::create().await;
    let redis = OwnRedis::start();
    let mock = MockUpstream::start(KEY).await;
    let cfg = config(&mock.base_url(), &db, &redis);
    let a = TestGateway::start(&cfg).await;
    let b = TestGateway::start_beside(&cfg, &a).await;
    with_policy(&[&a, &b]).await;
    let grant = r#"{"type":"writ:tool","upstream":"pay","tool":"pay","additional_arguments":true}"#;
    let writ = a.mint_as(CEILING, grant, 30);
    let id = held(&a, &writ, 250).await;
    a.gateway()
        .decide_approval(&id, "alice", true, None)
        .await
        .unwrap();
    // The agent fetches the block and appends it to its writ, offline.
    let polled: Value = reqwest::Client::new()
        .get(b.url(&format!("/approvals/{id}")))
        .bearer_auth(&writ)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(polled["status"], "approved");
    assert_eq!(polled["decided_by"], "alice");
    let block = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(polled["approval_block"].as_str().unwrap())
        .unwrap();
    let approved = writ_token::append_approval(&writ, &block).unwrap();
    // The block names who approved, read with the published approval key alone.
    let keys = a.keys();
    let verified = writ_token::decode(&approved)
        .unwrap()
        .verify(&keys.trusted)
        .unwrap();
    let published: Value = reqwest::get(a.url("/.well-known/writ-keys"))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let approval_key =
        writ_token::public_key_from_hex(published["approval_key"]["public_key"].as_str().unwrap())
            .unwrap();
    let statements = verified.approvals(&approval_key).unwrap();
    assert_eq!(statements.len(), 1);
    assert_eq!(statements[0].approved_by, "alice");
    // The block is for one request: another amount is refused.
    assert_eq!(
        code(&pay(&a, &approved, 260, None).await.1),
        "approval_request_mismatch"
    );
    // It works without the header: on B, once; then on A it is used.
    assert_eq!(pay(&b, &approved, 250, None).await.0, 200);
    assert_eq!(
        code(&pay(&a, &approved, 250, None).await.1),
        "approval_used"
    );
}

#[tokio::test]
async fn approvals_are_private_to_their_agent() {
    let mock = MockUpstream::start(KEY).await;
    let cfg = format!(
        "[upstreams.pay]\nkind = \"mcp\"\nbase_url = \"{}/mcp\"\nallow_private_network = true\napi_key = \"{KEY}\"\n",
        mock.base_url()
    );
    let gw = TestGateway::start(&cfg).await;
    with_policy(&[&gw]).await;
    let grant = r#"{"type":"writ:tool","upstream":"pay","tool":"pay","additional_arguments":true}"#;
    let writ = gw.mint_as(CEILING, grant, 30);
    let id = held(&gw, &writ, 250).await;
    // Another agent of the tenant: the approval does not exist for it.
    let stranger = gw.mint_for("stranger", CEILING, grant, 30);
    let resp = reqwest::Client::new()
        .get(gw.url(&format!("/approvals/{id}")))
        .bearer_auth(&stranger)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 404);
    let v: Value = resp.json().await.unwrap();
    assert_eq!(v["error"]["code"], "approval_not_found");
    assert_eq!(
        code(&pay(&gw, &stranger, 250, Some(&id)).await.1),
        "approval_not_found"
    );
    // Guessed and malformed ids: the same answer, whatever the guess.
    for guess in [
        "apr_AAAAAAAAAAAAAAAAAAAAAA".to_string(),
        "apr_".to_string(),
        "../../admin".to_string(),
        format!("apr_{}", "A".repeat(4096)),
    ] {
        let (status, v) = pay(&gw, &writ, 250, Some(&guess)).await;
        assert_eq!(
            (status, code(&v)),
            (404, "approval_not_found"),
            "{guess:?}: {v}"
        );
    }
    // Without a writ, nothing is told.
    let resp = reqwest::get(gw.url(&format!("/approvals/{id}")))
        .await
        .unwrap();
    assert_eq!(resp.status(), 401);
}

/// `writ` with an ordinary (holder's) block appended stating approval facts.
fn with_forged_block(writ: &str, rid: &str) -> String {
    let token =
        biscuit_auth::UnverifiedBiscuit::from_base64(writ.strip_prefix("writ_").unwrap()).unwrap();
    let code = format!(
        r#"approval("apr_AAAAAAAAAAAAAAAAAAAAAA", "{}", "{rid}", 2099-01-01T00:00:00Z);
           approved_by("mallory", "passkey"); approved_at(2026-01-01T00:00:00Z);"#,
        "00".repeat(32)
    );
    let block = biscuit_auth::builder::BlockBuilder::new()
        .code(code)
        .unwrap();
    format!("writ_{}", token.append(block).unwrap().to_base64().unwrap())
}

#[tokio::test]
async fn approvals_verify_offline_and_forged_ones_grant_nothing() {
    let mock = MockUpstream::start(KEY).await;
    let cfg = format!(
        "[upstreams.pay]\nkind = \"mcp\"\nbase_url = \"{}/mcp\"\nallow_private_network = true\napi_key = \"{KEY}\"\n",
        mock.base_url()
    );
    let gw = TestGateway::start(&cfg).await;
    with_policy(&[&gw]).await;
    let grant = r#"{"type":"writ:tool","upstream":"pay","tool":"pay","additional_arguments":true}"#;
    let keys = gw.keys();
    let verify = |w: &str| {
        writ_token::decode(w)
            .unwrap()
            .verify(&keys.trusted)
            .unwrap()
    };

    // A real approval, fetched and appended by the agent.
    let writ = gw.mint_as(CEILING, grant, 30);
    let id = held(&gw, &writ, 250).await;
    gw.gateway()
        .decide_approval(&id, "alice", true, None)
        .await
        .unwrap();
    let polled: Value = reqwest::Client::new()
        .get(gw.url(&format!("/approvals/{id}")))
        .bearer_auth(&writ)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let block = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(polled["approval_block"].as_str().unwrap())
        .unwrap();
    let approved = writ_token::append_approval(&writ, &block).unwrap();

    // The same statement signed by another key, and one written into a holder's block.
    let other = gw.mint_as(CEILING, grant, 30);
    let held_other = held(&gw, &other, 250).await;
    let verified = verify(&other);
    let statement = writ_token::ApprovalStatement {
        scope: writ_token::ApprovalScope::Request,
        id: held_other.clone(),
        approved_by: "mallory".into(),
        method: "passkey".into(),
        approved_at: writ_token::Clock::now(gw.clock()),
        expires_at: verified.claims().expires_at,
        request_digest: gw
            .gateway()
            .store()
            .approval(&held_other)
            .await
            .unwrap()
            .unwrap()
            .request_digest,
        writ: verified.last_revocation_id(),
    };
    let impostor_key = writ_token::ApprovalKey::generate();
    let foreign = writ_token::sign_approval(
        &impostor_key,
        &verified.approval_ticket().unwrap(),
        &statement,
    )
    .unwrap();
    let impostor = writ_token::append_approval(&other, &foreign).unwrap();
    let forged = with_forged_block(&other, &verified.last_revocation_id());

    // Offline, with biscuit-python and the published keys alone.
    let writs = json!({"approved": approved, "impostor": impostor, "forged": forged});
    let script =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/python/approval_offline.py");
    let lines = writ_testkit::run_python_lines(
        &script,
        &[
            ("WRIT_KEYS_URL", &gw.url("/.well-known/writ-keys")),
            ("WRITS", &writs.to_string()),
        ],
    )
    .await;
    let of = |name: &str| {
        lines
            .iter()
            .find(|l| l["writ"] == name)
            .unwrap_or_else(|| panic!("no line for {name}: {lines:?}"))["approvals"]
            .clone()
    };
    let approvals = of("approved");
    assert_eq!(approvals.as_array().unwrap().len(), 1, "{approvals}");
    assert_eq!(approvals[0]["id"], id);
    assert_eq!(approvals[0]["by"], "alice");
    assert_eq!(approvals[0]["method"], "operator");
    assert_eq!(approvals[0]["bound"], true, "{approvals}");
    assert_eq!(
        of("impostor"),
        json!([]),
        "another key's block is no approval"
    );
    assert_eq!(of("forged"), json!([]), "a holder's block states nothing");

    // The gateway agrees: neither passes the payment; it is held again.
    let before = mock.requests().len();
    for writ in [&impostor, &forged] {
        let (status, v) = pay(&gw, writ, 250, None).await;
        assert_eq!((status, code(&v)), (403, "approval_required"), "{v}");
    }
    // Naming the pending approval does not help either.
    assert_eq!(
        code(&pay(&gw, &impostor, 250, Some(&held_other)).await.1),
        "approval_pending"
    );
    assert_eq!(mock.requests().len(), before);
    // A writ's own checks may ask who approved: `approved_by` is the gateway's fact.
    assert_eq!(pay(&gw, &approved, 250, None).await.0, 200);
}

#[tokio::test]
async fn a_policy_in_writ_toml_holds_payments_and_keeps_its_name() {
    let mock = MockUpstream::start(KEY).await;
    let cfg = format!(
        "[tenants.default.policies]\npayments = '{POLICY}'\n\n\
         [upstreams.pay]\nkind = \"mcp\"\nbase_url = \"{}/mcp\"\nallow_private_network = true\napi_key = \"{KEY}\"\n",
        mock.base_url()
    );
    let gw = TestGateway::start(&cfg).await;
    let grant = r#"{"type":"writ:tool","upstream":"pay","tool":"pay","additional_arguments":true}"#;
    let writ = gw.mint_as(CEILING, grant, 30);
    assert_eq!(pay(&gw, &writ, 50, None).await.0, 200);
    held(&gw, &writ, 250).await;
    // Its name is writ.toml's: the admin API cannot replace it.
    let admin = gw.mint_as(r#"{"type":"writ:admin"}"#, r#"{"type":"writ:admin"}"#, 30);
    let resp = reqwest::Client::new()
        .put(gw.url("/admin/v1/tenants/default/policies/payments"))
        .bearer_auth(&admin)
        .json(&json!({"datalog": "check if tool($t);"}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 409);
    let v: Value = resp.json().await.unwrap();
    assert!(
        v["error"]["message"]
            .as_str()
            .unwrap()
            .contains("writ.toml"),
        "{v}"
    );
    // Another name is added beside it; both apply.
    let resp = reqwest::Client::new()
        .put(gw.url("/admin/v1/tenants/default/policies/no-refunds"))
        .bearer_auth(&admin)
        .json(&json!({"datalog": "reject if tool(\"refund\");"}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 201);
    held(&gw, &writ, 250).await;
}

/// A held payment is announced to the tenant's approval webhook, signed, with the summary
/// and the link, never the writ.
#[tokio::test]
async fn a_held_payment_is_announced_to_the_approval_webhook() {
    const SECRET: &str = "whsec-approvals-0123456789";
    let certs = writ_testkit::TestCertificates::generate();
    let mut hook = writ_testkit::WebhookReceiver::start(&certs).await;
    let mock = MockUpstream::start(KEY).await;
    let cfg = format!(
        "[[approvals.webhooks]]\nurl = \"{}\"\nsecret = \"{SECRET}\"\nca_file = {:?}\nallow_private_network = true\ntenants = [\"default\"]\n\n\
         [upstreams.pay]\nkind = \"mcp\"\nbase_url = \"{}/mcp\"\nallow_private_network = true\napi_key = \"{KEY}\"\n",
        hook.url(),
        certs.ca,
        mock.base_url()
    );
    let gw = TestGateway::start(&cfg).await;
    with_policy(&[&gw]).await;
    let grant = r#"{"type":"writ:tool","upstream":"pay","tool":"pay","additional_arguments":true}"#;
    let writ = gw.mint_as(CEILING, grant, 30);
    let id = held(&gw, &writ, 250).await;
    let (headers, body) = hook.next().await;
    let header = |name: &str| headers[name].to_str().unwrap().to_string();
    assert!(writ_gateway::detect::webhook::verify_signature(
        SECRET.as_bytes(),
        &header("writ-webhook-id"),
        &header("writ-webhook-timestamp"),
        &body,
        &header("writ-webhook-signature"),
    ));
    let event: Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(event["event"], "approval_pending");
    assert_eq!(event["approval"]["id"], id);
    assert_eq!(event["approval"]["summary"]["arguments"]["amount"], 250);
    assert!(
        event["approval"]["link"]
            .as_str()
            .unwrap()
            .ends_with(&format!("/admin/v1/approvals/{id}")),
        "{event}"
    );
    let text = String::from_utf8_lossy(&body);
    assert!(!text.contains(&writ) && !text.contains("writ_"), "{text}");
}
