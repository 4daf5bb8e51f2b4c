//! The console (`/console`) driven over HTTP against a real gateway: sign-in by admin
//! writ and approver token, session expiry on the gateway clock, sign-out, CSRF and
//! cross-site refusals, the security headers of every response, tenant isolation by URL,
//! hostile text rendered inert, and the payment example decided and stopped through the
//! console's forms.
#![allow(clippy::unwrap_used)]

mod audit;
mod coverage;
mod decisions;
mod instances;
mod live_writs;
mod pages;
mod passkeys;
mod sessions;
mod stop_writ;
mod upstreams;
mod usage;

use std::time::UNIX_EPOCH;

use reqwest::header::HeaderMap;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use writ_store::{ApprovalKind, NewApproval, PendingBounds};
use writ_testkit::TestGateway;

const ADMIN: &str = r#"{"type":"writ:admin"}"#;
const ACME_ADMIN: &str = r#"{"type":"writ:admin","tenant":"acme"}"#;
const CSP: &str = "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; \
                   frame-ancestors 'none'; form-action 'self'; base-uri 'none'";

/// `text` as the console's templates escape it (askama: numeric entities).
fn escaped(text: &str) -> String {
    text.replace('&', "&#38;")
        .replace('<', "&#60;")
        .replace('>', "&#62;")
        .replace('"', "&#34;")
        .replace('\'', "&#39;")
}

/// One answer of the console.
struct Page {
    status: StatusCode,
    headers: HeaderMap,
    body: String,
}

impl Page {
    fn location(&self) -> &str {
        self.headers
            .get("location")
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
    }

    /// The CSRF token of the page's forms.
    fn csrf(&self) -> String {
        let marker = r#"name="csrf" value=""#;
        let at = self.body.find(marker).expect("a form with a CSRF token") + marker.len();
        let end = self.body[at..].find('"').unwrap();
        self.body[at..at + end].to_string()
    }

    /// Asserts the console's security headers.
    fn assert_guarded(&self, what: &str) {
        let h = |name: &str| {
            self.headers
                .get(name)
                .and_then(|v| v.to_str().ok())
                .unwrap_or_else(|| panic!("{what}: no {name} header"))
                .to_string()
        };
        assert_eq!(h("content-security-policy"), CSP, "{what}");
        assert!(!h("content-security-policy").contains("unsafe-inline"));
        assert_eq!(h("x-content-type-options"), "nosniff", "{what}");
        assert_eq!(h("referrer-policy"), "no-referrer", "{what}");
        assert_eq!(h("cache-control"), "no-store", "{what}");
    }
}

/// A browser of one person: their session cookie, if any, and no redirect following.
struct Browser {
    client: reqwest::Client,
    base: String,
    cookie: Option<String>,
}

impl Browser {
    fn new(gw: &TestGateway) -> Self {
        Browser {
            client: reqwest::Client::builder()
                .redirect(reqwest::redirect::Policy::none())
                .build()
                .unwrap(),
            base: gw.url(""),
            cookie: None,
        }
    }

    async fn send(&mut self, req: reqwest::RequestBuilder) -> Page {
        let req = match &self.cookie {
            Some(c) => req.header("cookie", format!("writ_console={c}")),
            None => req,
        };
        let resp = req.send().await.unwrap();
        let status = resp.status();
        let headers = resp.headers().clone();
        if let Some(set) = headers.get("set-cookie").and_then(|v| v.to_str().ok()) {
            let value = set
                .strip_prefix("writ_console=")
                .and_then(|s| s.split(';').next())
                .unwrap_or("");
            self.cookie = (!value.is_empty()).then(|| value.to_string());
        }
        let body = resp.text().await.unwrap();
        Page {
            status,
            headers,
            body,
        }
    }

    fn url(&self, path: &str) -> String {
        format!("{}{}", self.base.trim_end_matches('/'), path)
    }

    async fn get(&mut self, path: &str) -> Page {
        let req = self.client.get(self.url(path));
        self.send(req).await
    }

    async fn post(&mut self, path: &str, fields: &[(&str, &str)]) -> Page {
        let req = self.client.post(self.url(path)).form(fields);
        self.send(req).await
    }

    /// Signs in with the form's fields; asserts it worked.
    async fn sign_in(&mut self, fields: &[(&str, &str)]) -> Page {
        let page = self.post("/console/session", fields).await;
        assert_eq!(page.status, StatusCode::SEE_OTHER, "{}", page.body);
        assert_eq!(page.location(), "/console/approvals");
        assert!(self.cookie.is_some(), "a session cookie");
        page
    }

    /// The CSRF token of the approvals page (signed in).
    async fn csrf(&mut self) -> String {
        let page = self.get("/console/approvals").await;
        assert_eq!(page.status, StatusCode::OK, "{}", page.body);
        page.csrf()
    }
}

/// A gateway with tenants `acme` and `globex`, and an operator's admin writ.
struct Setup {
    gw: TestGateway,
    admin: String,
}

impl Setup {
    async fn start() -> Self {
        Self::with_config("").await
    }

    async fn with_config(config: &str) -> Self {
        let gw = TestGateway::start(config).await;
        let admin = gw.mint_as(ADMIN, ADMIN, 30);
        let setup = Setup { gw, admin };
        for tenant in ["acme", "globex"] {
            let (status, body) = setup
                .admin_api(Method::POST, "/admin/v1/tenants", json!({"name": tenant}))
                .await;
            assert_eq!(status, StatusCode::CREATED, "{body}");
        }
        setup
    }

    async fn admin_api(&self, method: Method, path: &str, body: Value) -> (StatusCode, Value) {
        let resp = reqwest::Client::new()
            .request(method, self.gw.url(path))
            .bearer_auth(&self.admin)
            .json(&body)
            .send()
            .await
            .unwrap();
        let status = resp.status();
        (status, resp.json().await.unwrap_or(Value::Null))
    }

    /// Adds approver `name` of `tenant`: their token.
    async fn approver(&self, tenant: &str, name: &str) -> String {
        let (status, body) = self
            .admin_api(
                Method::POST,
                &format!("/admin/v1/tenants/{tenant}/approvers"),
                json!({"name": name}),
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

    /// Stores a pending approval of `tenant` asked by `agent` with `summary`.
    async fn pending(&self, tenant: &str, agent: &str, summary: Value) -> String {
        let now = self.now();
        let new = NewApproval {
            id: writ_token::new_approval_id(),
            tenant: tenant.to_string(),
            agent: agent.to_string(),
            kind: ApprovalKind::Request,
            reason: "payments over 100".to_string(),
            summary: summary.to_string(),
            summary_digest: "a".repeat(64),
            request_digest: "b".repeat(64),
            writ_token_id: None,
            writ_revocation_ids: Vec::new(),
            writ_issued_at: Some(now),
            ticket: None,
            mint_request: None,
            created_at: now,
            expires_at: now + 300,
            poll_interval: 5,
        };
        let bounds = PendingBounds {
            per_agent: 100,
            per_tenant: 1000,
        };
        self.gw
            .gateway()
            .store()
            .create_approval(&new, bounds)
            .await
            .unwrap()
            .id
    }

    /// The stored status of approval `id`.
    async fn status(&self, id: &str) -> String {
        let record = self
            .gw
            .gateway()
            .store()
            .approval(id)
            .await
            .unwrap()
            .unwrap();
        record.status_at(self.now()).as_str().to_string()
    }
}
