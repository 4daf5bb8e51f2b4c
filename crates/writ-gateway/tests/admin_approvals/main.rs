//! Deciding approvals through the admin API: approvers and their tokens (shown once,
//! never listed, dead once removed), approving and denying by approver token and by admin
//! writ, another tenant's approval answering exactly as an unknown id, and the refusals
//! of decisions that cannot be made (twice, expired, bad reasons, not JSON), and a held
//! request passing once after an approver approves it.
#![allow(clippy::unwrap_used)]

mod approvers;
mod decisions;
mod end_to_end;
mod refusals;

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
        self.gw.call_json(token, method, path, body).await
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
