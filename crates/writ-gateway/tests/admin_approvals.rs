//! Deciding approvals through the admin API: approvers and their tokens (shown once,
//! never listed, dead once removed), approving and denying by approver token and by admin
//! writ, another tenant's approval answering exactly as an unknown id, and the refusals
//! of decisions that cannot be made (twice, expired, bad reasons, not JSON).
#![allow(clippy::unwrap_used)]

use std::time::{Duration, UNIX_EPOCH};

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use writ_store::{ApprovalKind, NewApproval, PendingBounds};
use writ_testkit::TestGateway;

const ADMIN: &str = r#"{"type":"writ:admin"}"#;
const ACME_ADMIN: &str = r#"{"type":"writ:admin","tenant":"acme"}"#;
const GLOBEX_ADMIN: &str = r#"{"type":"writ:admin","tenant":"globex"}"#;
const LLM: &str = r#"[{"type":"writ:llm","upstream":"demo"}]"#;
const BOUNDS: PendingBounds = PendingBounds {
    per_agent: 100,
    per_tenant: 1000,
};
/// A tool argument meant to clear a terminal and run script in a web view.
const HOSTILE: &str = "\u{1b}[2J\u{7}<script>alert(1)</script>\r";

struct Api {
    gw: TestGateway,
    admin: String,
}

impl Api {
    async fn start() -> Self {
        let gw = TestGateway::start("").await;
        let admin = gw.mint_as(ADMIN, ADMIN, 30);
        let api = Api { gw, admin };
        for tenant in ["acme", "globex"] {
            let (status, body) = api
                .call(
                    Method::POST,
                    "/admin/v1/tenants",
                    Some(json!({"name": tenant})),
                )
                .await;
            assert_eq!(status, StatusCode::CREATED, "{body}");
        }
        api
    }

    async fn call_as(
        &self,
        token: &str,
        method: Method,
        path: &str,
        body: Option<Value>,
    ) -> (StatusCode, Value) {
        let mut req = reqwest::Client::new()
            .request(method, self.gw.url(path))
            .bearer_auth(token);
        if let Some(body) = body {
            req = req.json(&body);
        }
        let resp = req.send().await.unwrap();
        let status = resp.status();
        let text = resp.text().await.unwrap();
        let value = if text.is_empty() {
            Value::Null
        } else {
            serde_json::from_str(&text).unwrap_or_else(|_| panic!("JSON answer: {text}"))
        };
        (status, value)
    }

    async fn call(&self, method: Method, path: &str, body: Option<Value>) -> (StatusCode, Value) {
        self.call_as(&self.admin, method, path, body).await
    }

    /// Adds the approver `name` of `tenant` and returns their token.
    async fn approver(&self, tenant: &str, name: &str) -> String {
        let (status, body) = self
            .call(
                Method::POST,
                &format!("/admin/v1/tenants/{tenant}/approvers"),
                Some(json!({"name": name})),
            )
            .await;
        assert_eq!(status, StatusCode::CREATED, "{body}");
        body["token"].as_str().unwrap().to_string()
    }

    fn now(&self) -> u64 {
        writ_token::Clock::now(self.gw.clock())
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .as_secs()
    }

    /// Stores a pending approval of `tenant` (as the request path would), living `ttl`
    /// seconds; a request approval carries the ticket of `writ` when one is given.
    async fn pending(&self, tenant: &str, ttl: u64, writ: Option<&str>) -> String {
        let now = self.now();
        let verified = writ.map(|w| {
            writ_token::decode(w)
                .unwrap()
                .verify(&self.gw.keys().trusted)
                .unwrap()
        });
        let new = NewApproval {
            id: writ_token::new_approval_id(),
            tenant: tenant.to_string(),
            agent: "demo".to_string(),
            kind: ApprovalKind::Request,
            reason: "payments over 100".to_string(),
            summary: json!({"tool": "pay", "arguments": {"amount": 250, "memo": HOSTILE}})
                .to_string(),
            summary_digest: "a".repeat(64),
            request_digest: "b".repeat(64),
            writ_token_id: verified.as_ref().map(|v| v.claims().token_id.clone()),
            writ_revocation_ids: verified
                .as_ref()
                .map(|v| vec![v.last_revocation_id()])
                .unwrap_or_default(),
            writ_issued_at: Some(now),
            ticket: verified.as_ref().map(|v| v.approval_ticket().unwrap()),
            mint_request: None,
            created_at: now,
            expires_at: now + ttl,
            poll_interval: 5,
        };
        self.gw
            .gateway()
            .store()
            .create_approval(&new, BOUNDS)
            .await
            .unwrap()
            .id
    }
}

fn code(body: &Value) -> &str {
    body["error"]["code"].as_str().unwrap_or_default()
}

/// An error body with the approval id in its message replaced, to compare answers.
fn without_id(body: &Value, id: &str) -> String {
    body.to_string().replace(id, "<id>")
}

#[tokio::test]
async fn approvers_are_added_once_listed_without_tokens_and_removed_for_good() {
    let api = Api::start().await;
    let token = api.approver("acme", "alice@example.com").await;
    assert!(token.starts_with("wap_"), "{token}");
    assert_eq!(token.len(), 4 + 43);
    let id = api.pending("acme", 300, None).await;

    // Listed by name and time; never the token or anything derived from it.
    let (status, list) = api
        .call(Method::GET, "/admin/v1/tenants/acme/approvers", None)
        .await;
    assert_eq!(status, StatusCode::OK, "{list}");
    assert_eq!(list["approvers"][0]["name"], "alice@example.com");
    assert_eq!(list["approvers"][0]["tenant"], "acme");
    assert!(list["approvers"][0]["created_at"].as_u64().is_some());
    let listed = list.to_string();
    assert!(!listed.contains(&token) && !listed.contains(&token[4..]));
    assert!(
        !listed.contains("token") && !listed.contains("hash"),
        "{listed}"
    );

    // The same name twice, a bad name, a missing tenant, another tenant's admin.
    let add = |name: Value| json!({ "name": name });
    let (status, body) = api
        .call(
            Method::POST,
            "/admin/v1/tenants/acme/approvers",
            Some(add(json!("alice@example.com"))),
        )
        .await;
    assert_eq!(status, StatusCode::CONFLICT, "{body}");
    for bad in [
        json!(""),
        json!("a".repeat(65)),
        json!("al ice"),
        json!("a/b"),
        json!("bob\u{1b}[2J"),
        json!("bob\n"),
        json!(7),
    ] {
        let (status, body) = api
            .call(
                Method::POST,
                "/admin/v1/tenants/acme/approvers",
                Some(add(bad.clone())),
            )
            .await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{bad}: {body}");
    }
    let (status, body) = api
        .call(
            Method::POST,
            "/admin/v1/tenants/acme/approvers",
            Some(json!({"name": "bob", "token": "wap_mine"})),
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "chosen tokens: {body}");
    let (status, _) = api
        .call(
            Method::POST,
            "/admin/v1/tenants/nope/approvers",
            Some(add(json!("bob"))),
        )
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let globex_admin = api.gw.mint_as(GLOBEX_ADMIN, GLOBEX_ADMIN, 30);
    for (method, path) in [
        (Method::GET, "/admin/v1/tenants/acme/approvers"),
        (
            Method::DELETE,
            "/admin/v1/tenants/acme/approvers/alice@example.com",
        ),
    ] {
        let (status, body) = api.call_as(&globex_admin, method, path, None).await;
        assert_eq!(status, StatusCode::FORBIDDEN, "{path}: {body}");
    }
    let (status, body) = api
        .call_as(
            &globex_admin,
            Method::POST,
            "/admin/v1/tenants/acme/approvers",
            Some(add(json!("mallory"))),
        )
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{body}");

    // The token works, then stops at once when the approver is removed.
    let (status, _) = api
        .call_as(
            &token,
            Method::GET,
            &format!("/admin/v1/approvals/{id}"),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    let (status, body) = api
        .call(
            Method::DELETE,
            "/admin/v1/tenants/acme/approvers/alice@example.com",
            None,
        )
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT, "{body}");
    let (status, body) = api
        .call(
            Method::DELETE,
            "/admin/v1/tenants/acme/approvers/alice@example.com",
            None,
        )
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{body}");
    for (method, path, body) in [
        (Method::GET, format!("/admin/v1/approvals/{id}"), None),
        (Method::GET, "/admin/v1/approvals".to_string(), None),
        (
            Method::POST,
            format!("/admin/v1/approvals/{id}/approve"),
            Some(json!({})),
        ),
    ] {
        let (status, answer) = api.call_as(&token, method, &path, body).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{path}: {answer}");
        assert_eq!(answer["error"]["type"], "authentication_error", "{answer}");
        assert!(
            answer["error"]["message"]
                .as_str()
                .unwrap()
                .contains("approver")
        );
        assert!(!answer.to_string().contains(&token));
    }
    let record = api
        .gw
        .gateway()
        .store()
        .approval(&id)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        record.status.as_str(),
        "pending",
        "a dead token decides nothing"
    );

    // Both changes are in the audit log, by whom, without the token.
    let (_, audit) = api
        .call(Method::GET, "/admin/v1/audit?kind=admin_change", None)
        .await;
    let audit = audit.to_string();
    assert!(audit.contains("create_approver") && audit.contains("delete_approver"));
    assert!(!audit.contains(&token[4..]));
}

#[tokio::test]
async fn an_approver_approves_and_denies_their_tenants_requests() {
    let api = Api::start().await;
    let alice = api.approver("acme", "alice").await;
    let writ = api.gw.mint_in("acme", LLM, LLM, 30);
    let pay = api.pending("acme", 300, Some(&writ)).await;
    let other = api.pending("acme", 300, None).await;

    // The pending list shows both, newest first, with the summary as stored.
    let (status, list) = api
        .call_as(
            &alice,
            Method::GET,
            "/admin/v1/approvals?status=pending",
            None,
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{list}");
    let ids: Vec<&str> = list["approvals"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids.len(), 2, "{list}");
    assert!(ids.contains(&pay.as_str()) && ids.contains(&other.as_str()));
    let (status, shown) = api
        .call_as(
            &alice,
            Method::GET,
            &format!("/admin/v1/approvals/{pay}"),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{shown}");
    assert_eq!(shown["status"], "pending");
    assert_eq!(shown["tenant"], "acme");
    assert_eq!(shown["kind"], "request");
    assert_eq!(shown["reason"], "payments over 100");
    assert_eq!(shown["summary"]["arguments"]["memo"], HOSTILE);
    for hidden in ["ticket", "block", "writ_token_id", "writ_revocation_ids"] {
        assert!(shown.get(hidden).is_none(), "{hidden} shown: {shown}");
    }

    let (status, approved) = api
        .call_as(
            &alice,
            Method::POST,
            &format!("/admin/v1/approvals/{pay}/approve"),
            Some(json!({"reason": "invoice #42 checked"})),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{approved}");
    assert_eq!(approved["status"], "approved");
    assert_eq!(approved["decided_by"], "alice");
    assert_eq!(approved["decided_method"], "approver_token");
    assert_eq!(approved["decision_reason"], "invoice #42 checked");
    assert_eq!(approved["decided_at"].as_u64(), Some(api.now()));

    // The approval block signed for the writ reads back under the published approval key.
    let record = api
        .gw
        .gateway()
        .store()
        .approval(&pay)
        .await
        .unwrap()
        .unwrap();
    let block = record.block.expect("an approved request carries its block");
    let approved_writ = writ_token::append_approval(&writ, &block).unwrap();
    let (_, keys) = api.call(Method::GET, "/.well-known/writ-keys", None).await;
    let approval_key =
        writ_token::public_key_from_hex(keys["approval_key"]["public_key"].as_str().unwrap())
            .unwrap();
    let statements = writ_token::decode(&approved_writ)
        .unwrap()
        .verify(&api.gw.keys().trusted)
        .unwrap()
        .approvals(&approval_key)
        .unwrap();
    assert_eq!(statements.len(), 1);
    assert_eq!(statements[0].id, pay);
    assert_eq!(statements[0].approved_by, "alice");
    assert_eq!(statements[0].method, "approver_token");

    let (status, denied) = api
        .call_as(
            &alice,
            Method::POST,
            &format!("/admin/v1/approvals/{other}/deny"),
            Some(json!({"reason": "not this week"})),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{denied}");
    assert_eq!(denied["status"], "denied");
    assert_eq!(denied["decision_reason"], "not this week");
    let record = api
        .gw
        .gateway()
        .store()
        .approval(&other)
        .await
        .unwrap()
        .unwrap();
    assert!(record.block.is_none(), "a denial signs nothing");

    // Deciding again, either way, is refused: the first decision stands.
    for (id, verb) in [(&pay, "deny"), (&pay, "approve"), (&other, "approve")] {
        let (status, body) = api
            .call_as(
                &alice,
                Method::POST,
                &format!("/admin/v1/approvals/{id}/{verb}"),
                Some(json!({})),
            )
            .await;
        assert_eq!(status, StatusCode::CONFLICT, "{body}");
        assert_eq!(code(&body), "approval_not_pending");
    }
    let (_, list) = api
        .call_as(
            &alice,
            Method::GET,
            "/admin/v1/approvals?status=approved",
            None,
        )
        .await;
    assert_eq!(list["approvals"].as_array().unwrap().len(), 1, "{list}");
    assert_eq!(list["approvals"][0]["id"], pay.as_str());

    // Each decision has its audit record: who, how, why; never the token.
    let (_, audit) = api
        .call(Method::GET, "/admin/v1/audit?kind=approval", None)
        .await;
    let records = audit["records"].as_array().unwrap();
    let approved = records
        .iter()
        .find(|r| r["operation"] == "approval_approved")
        .unwrap_or_else(|| panic!("an approval record: {audit}"));
    assert_eq!(approved["detail"]["decided_by"], "alice");
    assert_eq!(approved["detail"]["authenticated_by"], "approver_token");
    assert!(records.iter().any(|r| r["operation"] == "approval_denied"));
    assert!(!audit.to_string().contains(&alice[4..]));
}

#[tokio::test]
async fn admin_writs_decide_as_the_operator_or_their_tenants_admin() {
    let api = Api::start().await;
    let first = api.pending("acme", 300, None).await;
    let second = api.pending("acme", 300, None).await;
    let third = api.pending("globex", 300, None).await;

    // The operator (every tenant) decides anywhere, named by the writ's subject.
    let (status, body) = api
        .call(
            Method::POST,
            &format!("/admin/v1/approvals/{first}/approve"),
            Some(json!({})),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["decided_method"], "admin_writ");
    assert_eq!(body["decided_by"], "demo");
    assert!(body["decision_reason"].is_null());

    // A tenant admin decides their tenant's; another tenant's answers as unknown.
    let acme_admin = api.gw.mint_as(ACME_ADMIN, ACME_ADMIN, 30);
    let (status, body) = api
        .call_as(
            &acme_admin,
            Method::POST,
            &format!("/admin/v1/approvals/{second}/deny"),
            Some(json!({"reason": "no"})),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["status"], "denied");
    let unknown = writ_token::new_approval_id();
    for verb in ["approve", "deny"] {
        let (status, theirs) = api
            .call_as(
                &acme_admin,
                Method::POST,
                &format!("/admin/v1/approvals/{third}/{verb}"),
                Some(json!({})),
            )
            .await;
        let (_, none) = api
            .call_as(
                &acme_admin,
                Method::POST,
                &format!("/admin/v1/approvals/{unknown}/{verb}"),
                Some(json!({})),
            )
            .await;
        assert_eq!(status, StatusCode::NOT_FOUND, "{theirs}");
        assert_eq!(without_id(&theirs, &third), without_id(&none, &unknown));
    }
    // Listing: a tenant admin names their tenant; the operator sees every tenant's.
    let (status, body) = api
        .call_as(&acme_admin, Method::GET, "/admin/v1/approvals", None)
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{body}");
    let (status, body) = api
        .call_as(
            &acme_admin,
            Method::GET,
            "/admin/v1/approvals?tenant=globex",
            None,
        )
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{body}");
    let (status, body) = api
        .call_as(
            &acme_admin,
            Method::GET,
            "/admin/v1/approvals?tenant=acme",
            None,
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["approvals"].as_array().unwrap().len(), 2);
    let (_, body) = api.call(Method::GET, "/admin/v1/approvals", None).await;
    assert_eq!(body["approvals"].as_array().unwrap().len(), 3);
    let (_, body) = api
        .call(Method::GET, "/admin/v1/approvals?status=pending", None)
        .await;
    assert_eq!(body["approvals"][0]["id"], third.as_str(), "{body}");

    // A writ with no admin grant reads nothing, known id or not, the same way.
    let agent = api.gw.mint_in("globex", LLM, LLM, 30);
    let (status, theirs) = api
        .call_as(
            &agent,
            Method::GET,
            &format!("/admin/v1/approvals/{third}"),
            None,
        )
        .await;
    let (_, none) = api
        .call_as(
            &agent,
            Method::GET,
            &format!("/admin/v1/approvals/{unknown}"),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{theirs}");
    assert_eq!(without_id(&theirs, &third), without_id(&none, &unknown));
    let (status, _) = api
        .call_as(&agent, Method::GET, "/admin/v1/approvals", None)
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
}

#[tokio::test]
async fn another_tenants_approval_answers_exactly_as_an_unknown_id() {
    let api = Api::start().await;
    let globex = api.approver("globex", "gary").await;
    let acme_id = api.pending("acme", 300, None).await;
    let globex_id = api.pending("globex", 300, None).await;
    let unknown = writ_token::new_approval_id();

    for (method, suffix, body) in [
        (Method::GET, "", None),
        (Method::POST, "/approve", Some(json!({"reason": "sure"}))),
        (Method::POST, "/deny", Some(json!({}))),
    ] {
        let (status, theirs) = api
            .call_as(
                &globex,
                method.clone(),
                &format!("/admin/v1/approvals/{acme_id}{suffix}"),
                body.clone(),
            )
            .await;
        let (unknown_status, none) = api
            .call_as(
                &globex,
                method,
                &format!("/admin/v1/approvals/{unknown}{suffix}"),
                body,
            )
            .await;
        assert_eq!(status, StatusCode::NOT_FOUND, "{theirs}");
        assert_eq!(unknown_status, StatusCode::NOT_FOUND, "{none}");
        assert_eq!(code(&theirs), "approval_not_found");
        assert_eq!(without_id(&theirs, &acme_id), without_id(&none, &unknown));
    }
    let record = api
        .gw
        .gateway()
        .store()
        .approval(&acme_id)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(record.status.as_str(), "pending");

    // Guessed and malformed ids: the same 404, the id not echoed when it is not one.
    for bad in [
        "x",
        "apr_",
        "apr_zzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzz",
        "%00",
        "..%2F..%2Fetc",
        "%1B%5B2J",
        &"a".repeat(5000),
    ] {
        let (status, body) = api
            .call_as(
                &globex,
                Method::GET,
                &format!("/admin/v1/approvals/{bad}"),
                None,
            )
            .await;
        assert_eq!(status, StatusCode::NOT_FOUND, "{bad}: {body}");
        assert_eq!(code(&body), "approval_not_found", "{bad}");
        let message = body["error"]["message"].as_str().unwrap();
        assert!(
            !message.contains('\u{1b}') && message.len() < 200,
            "{message}"
        );
    }

    // An approver lists their own tenant's approvals only.
    let (status, list) = api
        .call_as(&globex, Method::GET, "/admin/v1/approvals", None)
        .await;
    assert_eq!(status, StatusCode::OK, "{list}");
    assert_eq!(list["approvals"].as_array().unwrap().len(), 1);
    assert_eq!(list["approvals"][0]["id"], globex_id.as_str());
    let (status, body) = api
        .call_as(
            &globex,
            Method::GET,
            "/admin/v1/approvals?tenant=acme",
            None,
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    // Nor may an approver token act as an admin writ anywhere else.
    let (status, body) = api
        .call_as(
            &globex,
            Method::GET,
            "/admin/v1/tenants/globex/approvers",
            None,
        )
        .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "{body}");
}

#[tokio::test]
async fn unknown_tokens_expired_approvals_and_bad_bodies_are_refused() {
    let api = Api::start().await;
    let alice = api.approver("acme", "alice").await;
    let id = api.pending("acme", 60, None).await;
    let path = format!("/admin/v1/approvals/{id}/approve");

    // A token no approver holds: 401 in the OpenAI error shape, saying what to do.
    let forged = format!("wap_{}", "A".repeat(43));
    for token in [forged.as_str(), "wap_", "wap_../../x"] {
        let (status, body) = api
            .call_as(token, Method::GET, "/admin/v1/approvals", None)
            .await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{body}");
        let error = body["error"].as_object().unwrap();
        for field in ["message", "type", "code", "param"] {
            assert!(error.contains_key(field), "{field}: {body}");
        }
        assert!(
            body["error"]["message"]
                .as_str()
                .unwrap()
                .contains("writ approver add")
        );
    }
    let resp = reqwest::Client::new()
        .get(api.gw.url("/admin/v1/approvals"))
        .send()
        .await
        .unwrap();
    assert_eq!(
        resp.status(),
        StatusCode::UNAUTHORIZED,
        "no credential at all"
    );

    // Reasons: too long, control characters, empty; unknown fields; not JSON.
    for body in [
        json!({"reason": "x".repeat(501)}),
        json!({"reason": "ok\u{1b}[2J"}),
        json!({"reason": "line\nbreak"}),
        json!({"reason": ""}),
        json!({"reason": 5}),
        json!({"approve": false}),
        json!([]),
    ] {
        let (status, answer) = api
            .call_as(&alice, Method::POST, &path, Some(body.clone()))
            .await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{body}: {answer}");
    }
    let resp = reqwest::Client::new()
        .post(api.gw.url(&path))
        .bearer_auth(&alice)
        .header("content-type", "text/plain")
        .body("approve")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::UNSUPPORTED_MEDIA_TYPE);
    let resp = reqwest::Client::new()
        .post(api.gw.url(&path))
        .bearer_auth(&alice)
        .header("content-type", "application/json")
        .body(format!("{{\"reason\":\"{}\"}}", "x".repeat(70 * 1024)))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::PAYLOAD_TOO_LARGE);
    let record = api
        .gw
        .gateway()
        .store()
        .approval(&id)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(record.status.as_str(), "pending", "no bad body decided it");

    // Listing filters: unknown status, limits out of range, unknown filters.
    for query in [
        "status=maybe",
        "limit=0",
        "limit=1001",
        "limit=x",
        "colour=red",
        "agent=a/b",
    ] {
        let (status, body) = api
            .call_as(
                &alice,
                Method::GET,
                &format!("/admin/v1/approvals?{query}"),
                None,
            )
            .await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{query}: {body}");
    }

    // Past its expiry, it cannot be decided, and reads as expired before any sweep.
    api.gw.clock().advance(Duration::from_secs(61));
    let (status, body) = api
        .call_as(&alice, Method::POST, &path, Some(json!({})))
        .await;
    assert_eq!(status, StatusCode::CONFLICT, "{body}");
    assert_eq!(code(&body), "approval_not_pending");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("expired")
    );
    let (_, shown) = api
        .call_as(
            &alice,
            Method::GET,
            &format!("/admin/v1/approvals/{id}"),
            None,
        )
        .await;
    assert_eq!(shown["status"], "expired");
    let (_, list) = api
        .call_as(
            &alice,
            Method::GET,
            "/admin/v1/approvals?status=pending",
            None,
        )
        .await;
    assert!(list["approvals"].as_array().unwrap().is_empty(), "{list}");
    api.gw.gateway().sweep_approvals().await;
    let (_, list) = api
        .call_as(
            &alice,
            Method::GET,
            "/admin/v1/approvals?status=expired",
            None,
        )
        .await;
    assert_eq!(list["approvals"][0]["id"], id.as_str(), "{list}");
}

/// An MCP call of tool `pay` through `gw` with `writ`, retried with `approval` if given.
async fn pay(gw: &TestGateway, writ: &str, amount: i64, approval: Option<&str>) -> (u16, Value) {
    let mut req = reqwest::Client::new()
        .post(gw.url("/mcp/pay"))
        .bearer_auth(writ)
        .json(&json!({"jsonrpc": "2.0", "id": 1, "method": "tools/call",
            "params": {"name": "pay", "arguments": {"amount": amount, "memo": HOSTILE}}}));
    if let Some(id) = approval {
        req = req.header("writ-approval", id);
    }
    let resp = req.send().await.unwrap();
    let status = resp.status().as_u16();
    (status, resp.json().await.unwrap_or(Value::Null))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_held_request_passes_once_after_an_approver_approves_it_through_the_api() {
    const KEY: &str = "pay-key-admin-approvals";
    const TOOL: &str =
        r#"{"type":"writ:tool","upstream":"pay","tool":"pay","additional_arguments":true}"#;
    let mock = writ_testkit::MockUpstream::start(KEY).await;
    let gw = TestGateway::start(&format!(
        "[upstreams.pay]\nkind = \"mcp\"\nbase_url = \"{}/mcp\"\nallow_private_network = true\napi_key = \"{KEY}\"\n",
        mock.base_url()
    ))
    .await;
    let api = Api {
        admin: gw.mint_as(ADMIN, ADMIN, 30),
        gw,
    };
    let (status, body) = api
        .call(
            Method::PUT,
            "/admin/v1/tenants/default/policies/payments",
            Some(json!({"datalog": r#"requires_approval("payments over 100") <- tool("pay"), arg("amount", $a), $a > 100;"#})),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let alice = api.approver("default", "alice").await;
    let writ = api.gw.mint_as(TOOL, TOOL, 30);

    let (status, held) = pay(&api.gw, &writ, 250, None).await;
    assert_eq!(status, 403, "{held}");
    let id = held["error"]["data"]["approval"]["id"]
        .as_str()
        .unwrap_or_else(|| panic!("an approval id: {held}"))
        .to_string();
    let forwarded = mock.requests().len();

    // The approver sees what was asked, as the request path summarised it, and approves.
    let (status, shown) = api
        .call_as(
            &alice,
            Method::GET,
            &format!("/admin/v1/approvals/{id}"),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{shown}");
    assert_eq!(shown["status"], "pending");
    assert_eq!(shown["reason"], "payments over 100");
    assert_eq!(shown["summary"]["arguments"]["amount"], 250, "{shown}");
    let (status, body) = api
        .call_as(
            &alice,
            Method::POST,
            &format!("/admin/v1/approvals/{id}/approve"),
            Some(json!({"reason": "invoice 42"})),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");

    // The exact retry passes once; the next is refused as used.
    let (status, v) = pay(&api.gw, &writ, 250, Some(&id)).await;
    assert_eq!(status, 200, "{v}");
    assert_eq!(mock.requests().len(), forwarded + 1);
    let (status, v) = pay(&api.gw, &writ, 250, Some(&id)).await;
    assert_eq!(status, 403, "{v}");
    assert_eq!(v["error"]["data"]["code"], "approval_used", "{v}");
    let (_, shown) = api
        .call_as(
            &alice,
            Method::GET,
            &format!("/admin/v1/approvals/{id}"),
            None,
        )
        .await;
    assert_eq!(shown["status"], "used");
    assert_eq!(shown["decided_by"], "alice");
}
