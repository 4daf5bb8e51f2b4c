//! Mint-time approval at `POST /oauth2/token`, CIBA poll mode (issue 23): a writ a tenant's
//! `requires_approval` rule matches is not minted but held (`authorization_pending` with an
//! `auth_req_id`); the agent polls with the CIBA grant type (`slow_down` when too fast) and
//! gets the writ, carrying the approval block, once a person approves; `access_denied`,
//! `expired_token` and `invalid_grant` otherwise. Driven over HTTP against a real gateway.
#![allow(clippy::unwrap_used)]

use std::time::Duration;

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use writ_testkit::{DpopKey, MockUpstream, OAuthClient, TestGateway};

const KEY: &str = "sk-upstream-approval-ciba";
const ADMIN: &str = r#"{"type":"writ:admin"}"#;
const CIBA: &str = "urn:openid:params:grant-type:ciba";
const CEILING: &str = r#"[{"type":"writ:llm","upstream":"demo","models":["gpt-4o-mini","gpt-4o"]},
    {"type":"writ:tool","upstream":"demo","tool":"pay","arguments":{"amount":{"max":1000}}}]"#;
const BIG_MODEL: &str = r#"[{"type":"writ:llm","upstream":"demo","models":["gpt-4o"]}]"#;
const SMALL_MODEL: &str = r#"[{"type":"writ:llm","upstream":"demo","models":["gpt-4o-mini"]}]"#;
const RULES: &str = r#"requires_approval("the large model needs a person") <- operation("mint"), model("gpt-4o");
requires_approval("payments over 100") <- operation("mint"), tool("pay"), arg("amount", $a), $a > 100;"#;

struct Setup {
    gw: TestGateway,
    _upstream: MockUpstream,
    client: OAuthClient,
    secret: String,
}

async fn setup(extra: &str) -> Setup {
    let upstream = MockUpstream::start(KEY).await;
    let config = format!(
        "{extra}\n[upstreams.demo]\nkind = \"openai\"\nbase_url = \"{}\"\nallow_private_network = true\napi_key = \"{KEY}\"\n",
        upstream.base_url()
    );
    let gw = TestGateway::start(&config).await;
    let admin = gw.mint_as(ADMIN, ADMIN, 30);
    let resp = reqwest::Client::new()
        .request(
            Method::PUT,
            gw.url("/admin/v1/tenants/default/policies/approvals"),
        )
        .bearer_auth(&admin)
        .json(&json!({ "datalog": RULES }))
        .send()
        .await
        .unwrap();
    assert!(resp.status().is_success(), "{}", resp.text().await.unwrap());
    let (client, secret) = OAuthClient::register(&gw, "buyer", CEILING, false).await;
    Setup {
        gw,
        _upstream: upstream,
        client,
        secret,
    }
}

async fn post(gw: &TestGateway, form: &[(&str, &str)]) -> (StatusCode, Value) {
    post_with_proof(gw, form, None).await
}

async fn post_with_proof(
    gw: &TestGateway,
    form: &[(&str, &str)],
    dpop: Option<String>,
) -> (StatusCode, Value) {
    let mut req = reqwest::Client::new()
        .post(gw.url("/oauth2/token"))
        .form(form);
    if let Some(proof) = dpop {
        req = req.header("dpop", proof);
    }
    let resp = req.send().await.unwrap();
    let status = resp.status();
    assert_eq!(resp.headers()["cache-control"], "no-store");
    (status, resp.json().await.unwrap())
}

impl Setup {
    async fn ask(&self, details: &str) -> (StatusCode, Value) {
        post(
            &self.gw,
            &[
                ("grant_type", "client_credentials"),
                ("client_id", &self.client.name),
                ("client_secret", &self.secret),
                ("authorization_details", details),
            ],
        )
        .await
    }

    /// Asks for a writ a rule holds: the `auth_req_id` of the pending answer.
    async fn held(&self, details: &str) -> String {
        let (status, v) = self.ask(details).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{v}");
        assert_eq!(v["error"], "authorization_pending", "{v}");
        v["auth_req_id"].as_str().unwrap().to_string()
    }

    async fn poll(&self, id: &str) -> (StatusCode, Value) {
        post(
            &self.gw,
            &[
                ("grant_type", CIBA),
                ("client_id", &self.client.name),
                ("client_secret", &self.secret),
                ("auth_req_id", id),
            ],
        )
        .await
    }

    async fn decide(&self, id: &str, approve: bool, reason: Option<&str>) {
        self.gw
            .gateway()
            .decide_approval(id, "alice", approve, reason.map(str::to_string))
            .await
            .expect("the operator decides");
    }

    /// A new approver of tenant `default` named `name`: their `wap_…` token.
    async fn approver(&self, name: &str) -> String {
        let admin = self.gw.mint_as(ADMIN, ADMIN, 30);
        let resp = reqwest::Client::new()
            .post(self.gw.url("/admin/v1/tenants/default/approvers"))
            .bearer_auth(&admin)
            .json(&json!({ "name": name }))
            .send()
            .await
            .unwrap();
        assert!(resp.status().is_success());
        let body: Value = resp.json().await.unwrap();
        body["token"].as_str().unwrap().to_string()
    }

    /// Decides `id` through the admin API as the approver holding `token`.
    async fn decide_as(&self, token: &str, id: &str, approve: bool, reason: Option<&str>) {
        let verb = if approve { "approve" } else { "deny" };
        let resp = reqwest::Client::new()
            .post(self.gw.url(&format!("/admin/v1/approvals/{id}/{verb}")))
            .bearer_auth(token)
            .json(&json!({ "reason": reason }))
            .send()
            .await
            .unwrap();
        let status = resp.status();
        assert!(
            status.is_success(),
            "{status}: {}",
            resp.text().await.unwrap()
        );
    }

    fn advance(&self, secs: u64) {
        self.gw.clock().advance(Duration::from_secs(secs));
    }
}

fn refused(result: &(StatusCode, Value), status: StatusCode, error: &str) {
    assert_eq!(result.0, status, "{}", result.1);
    assert_eq!(result.1["error"], error, "{}", result.1);
    assert!(result.1.get("access_token").is_none(), "{}", result.1);
    assert!(
        result.1["error_description"]
            .as_str()
            .is_some_and(|d| !d.is_empty())
    );
}

async fn chat(gw: &TestGateway, writ: &str, model: &str) -> StatusCode {
    let resp = reqwest::Client::new()
        .post(gw.url("/v1/chat/completions"))
        .bearer_auth(writ)
        .json(&json!({"model": model, "messages": [{"role": "user", "content": "hi"}]}))
        .send()
        .await
        .unwrap();
    let status = resp.status();
    eprintln!("chat {model}: {status} {}", resp.text().await.unwrap());
    status
}

async fn approval_key(gw: &TestGateway) -> writ_token::PublicKey {
    let keys: Value = reqwest::get(gw.url("/.well-known/writ-keys"))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    writ_token::public_key_from_hex(keys["approval_key"]["public_key"].as_str().unwrap())
        .expect("the published approval key")
}

/// The gateway's audit records of kind `approval`, as (operation, approval id).
async fn approval_records(gw: &TestGateway) -> Vec<(String, String)> {
    gw.gateway().audit_checkpoint().await;
    gw.gateway()
        .audit_export()
        .await
        .unwrap()
        .iter()
        .filter(|l| !l.starts_with("{\"checkpoint\""))
        .map(|l| serde_json::from_str::<Value>(l).unwrap())
        .filter(|r| r["kind"] == "approval")
        .map(|r| {
            (
                r["operation"].as_str().unwrap().to_string(),
                r["detail"]["approval"].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

#[tokio::test]
async fn a_grant_no_rule_matches_is_minted_at_once() {
    let s = setup("").await;
    let (status, v) = s.ask(SMALL_MODEL).await;
    assert_eq!(status, StatusCode::OK, "{v}");
    let writ = v["access_token"].as_str().unwrap();
    assert_eq!(chat(&s.gw, writ, "gpt-4o-mini").await, StatusCode::OK);
    // A payment grant capped below the rule's amount is not held either: only a fixed
    // amount is a mint fact.
    let (status, v) = s
        .ask(r#"{"type":"writ:tool","upstream":"demo","tool":"pay","arguments":{"amount":50}}"#)
        .await;
    assert_eq!(status, StatusCode::OK, "{v}");
    assert!(approval_records(&s.gw).await.is_empty());
}

#[tokio::test]
async fn a_held_mint_is_issued_once_approved_with_the_approval_block() {
    let s = setup("").await;
    let (status, pending) = s.ask(BIG_MODEL).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{pending}");
    assert_eq!(pending["error"], "authorization_pending");
    assert!(pending.get("access_token").is_none());
    let id = pending["auth_req_id"].as_str().unwrap().to_string();
    assert!(id.starts_with("apr_"), "{pending}");
    assert_eq!(pending["interval"], 5);
    assert_eq!(pending["expires_in"], 300);
    let description = pending["error_description"].as_str().unwrap();
    assert!(
        description.contains("the large model needs a person"),
        "{description}"
    );
    assert!(
        description.contains(CIBA),
        "says how to poll: {description}"
    );

    // Polled at once: too fast, and the interval grows by 5 seconds.
    let fast = s.poll(&id).await;
    refused(&fast, StatusCode::BAD_REQUEST, "slow_down");
    assert_eq!(fast.1["interval"], 10);
    s.advance(10);
    let waiting = s.poll(&id).await;
    refused(&waiting, StatusCode::BAD_REQUEST, "authorization_pending");
    assert_eq!(waiting.1["auth_req_id"], id.as_str());
    assert_eq!(waiting.1["interval"], 10);
    assert_eq!(waiting.1["expires_in"], 290);

    let carol = s.approver("carol").await;
    s.decide_as(&carol, &id, true, Some("fine for this task"))
        .await;
    s.advance(10);
    let (status, v) = s.poll(&id).await;
    assert_eq!(status, StatusCode::OK, "{v}");
    assert_eq!(v["token_type"], "Bearer");
    assert_eq!(v["expires_in"], 30, "the agent's maximum lifetime");
    assert_eq!(v["authorization_details"][0]["models"], json!(["gpt-4o"]));
    let writ = v["access_token"].as_str().unwrap();

    // The writ carries the approval block: who approved, how, for which mint, bound to it.
    let verified = writ_token::decode(writ)
        .unwrap()
        .verify(&s.gw.keys().trusted)
        .unwrap();
    let approvals = verified.approvals(&approval_key(&s.gw).await).unwrap();
    assert_eq!(approvals.len(), 1);
    let statement = &approvals[0];
    assert_eq!(statement.id, id);
    assert_eq!(
        (statement.approved_by.as_str(), statement.method.as_str()),
        ("carol", "approver_token")
    );
    assert_eq!(statement.request_digest.len(), 64);
    assert_eq!(statement.expires_at, verified.claims().expires_at);
    // Bound to the block it follows: the last block of the writ as minted.
    let ids = verified.revocation_ids();
    assert_eq!(
        statement.writ,
        hex::encode(&ids[ids.len() - 2]),
        "bound to the block it follows"
    );
    // The same facts under any other key state nothing.
    let other = writ_token::ApprovalKey::generate();
    assert!(verified.approvals(&other.public()).unwrap().is_empty());

    // It works on the data plane, and only for what was approved.
    assert_eq!(chat(&s.gw, writ, "gpt-4o").await, StatusCode::OK);
    assert_eq!(
        chat(&s.gw, writ, "gpt-4o-mini").await,
        StatusCode::FORBIDDEN
    );

    // Exactly once: the next poll is an invalid grant.
    s.advance(10);
    refused(&s.poll(&id).await, StatusCode::BAD_REQUEST, "invalid_grant");

    let records = approval_records(&s.gw).await;
    let ops: Vec<&str> = records
        .iter()
        .filter(|(_, a)| *a == id)
        .map(|(op, _)| op.as_str())
        .collect();
    assert_eq!(
        ops,
        ["approval_pending", "approval_approved", "approval_used"]
    );
}

#[tokio::test]
async fn a_fixed_tool_argument_the_rule_matches_is_held() {
    let s = setup("").await;
    let id = s
        .held(r#"{"type":"writ:tool","upstream":"demo","tool":"pay","arguments":{"amount":250}}"#)
        .await;
    let record = s.gw.gateway().store().approval(&id).await.unwrap().unwrap();
    assert_eq!(record.reason, "payments over 100");
    assert_eq!(record.kind, writ_store::ApprovalKind::Mint);
    let summary: Value = serde_json::from_str(&record.summary).unwrap();
    assert_eq!(summary["agent"], "buyer");
    assert_eq!(summary["tenant"], "default");
    assert_eq!(summary["grants"][0]["arguments"]["amount"], 250);
    let plan: Value = serde_json::from_str(record.mint_request.as_deref().unwrap()).unwrap();
    assert_eq!(plan["agent"], "buyer");
    assert!(
        !record.mint_request.unwrap().contains(&s.secret),
        "no secret is kept"
    );
}

#[tokio::test]
async fn a_denied_mint_is_access_denied_with_the_reason() {
    let s = setup("").await;
    let id = s.held(BIG_MODEL).await;
    let carol = s.approver("carol").await;
    s.decide_as(&carol, &id, false, Some("not this week")).await;
    s.advance(5);
    let denied = s.poll(&id).await;
    refused(&denied, StatusCode::BAD_REQUEST, "access_denied");
    assert!(
        denied.1["error_description"]
            .as_str()
            .unwrap()
            .contains("not this week"),
        "{}",
        denied.1
    );
    s.advance(5);
    refused(&s.poll(&id).await, StatusCode::BAD_REQUEST, "access_denied");
}

#[tokio::test]
async fn an_undecided_mint_expires() {
    let s = setup("[approvals]\nttl = \"60s\"\n").await;
    let id = s.held(BIG_MODEL).await;
    s.advance(61);
    refused(&s.poll(&id).await, StatusCode::BAD_REQUEST, "expired_token");
    // Approving it now is refused, and once swept it stays expired.
    assert!(
        s.gw.gateway()
            .decide_approval(&id, "alice", true, None)
            .await
            .is_err()
    );
    s.gw.gateway().sweep_approvals().await;
    s.advance(10);
    refused(&s.poll(&id).await, StatusCode::BAD_REQUEST, "expired_token");
}

#[tokio::test]
async fn an_approved_mint_past_its_expiry_is_not_issued() {
    let s = setup("[approvals]\nttl = \"60s\"\n").await;
    let id = s.held(BIG_MODEL).await;
    s.decide(&id, true, None).await;
    s.advance(60);
    refused(&s.poll(&id).await, StatusCode::BAD_REQUEST, "expired_token");
}

#[tokio::test]
async fn another_agent_polling_the_id_gets_what_an_unknown_id_gets() {
    let s = setup("").await;
    let id = s.held(BIG_MODEL).await;
    s.decide(&id, true, None).await;
    let (other, other_secret) = OAuthClient::register(&s.gw, "snoop", CEILING, false).await;
    let as_other = |id: String| {
        let gw = &s.gw;
        let name = other.name.clone();
        let secret = other_secret.clone();
        async move {
            post(
                gw,
                &[
                    ("grant_type", CIBA),
                    ("client_id", &name),
                    ("client_secret", &secret),
                    ("auth_req_id", &id),
                ],
            )
            .await
        }
    };
    let stolen = as_other(id.clone()).await;
    refused(&stolen, StatusCode::BAD_REQUEST, "invalid_grant");
    let unknown = as_other(writ_token::new_approval_id()).await;
    assert_eq!(stolen, unknown, "the same answer as an unknown id");
    // The owner still gets it.
    s.advance(5);
    assert_eq!(s.poll(&id).await.0, StatusCode::OK);
}

#[tokio::test]
async fn malformed_oversized_missing_and_unauthenticated_polls_are_refused() {
    let s = setup("").await;
    let id = s.held(BIG_MODEL).await;
    let long = format!("apr_{}", "A".repeat(20_000));
    for bad in [
        "",
        "apr_",
        "apr_short",
        long.as_str(),
        "apr_AAAAAAAAAAAAAAAAAAAA'--",
        "../../admin/v1/approvals",
    ] {
        refused(
            &s.poll(bad).await,
            StatusCode::BAD_REQUEST,
            "invalid_request",
        );
    }
    let missing = post(
        &s.gw,
        &[
            ("grant_type", CIBA),
            ("client_id", &s.client.name),
            ("client_secret", &s.secret),
        ],
    )
    .await;
    refused(&missing, StatusCode::BAD_REQUEST, "invalid_request");
    let repeated = post(
        &s.gw,
        &[
            ("grant_type", CIBA),
            ("client_id", &s.client.name),
            ("client_secret", &s.secret),
            ("auth_req_id", &id),
            ("auth_req_id", &id),
        ],
    )
    .await;
    refused(&repeated, StatusCode::BAD_REQUEST, "invalid_request");
    let unauthenticated = post(&s.gw, &[("grant_type", CIBA), ("auth_req_id", &id)]).await;
    refused(&unauthenticated, StatusCode::UNAUTHORIZED, "invalid_client");
    let wrong_secret = post(
        &s.gw,
        &[
            ("grant_type", CIBA),
            ("client_id", &s.client.name),
            ("client_secret", "wcs_wrong"),
            ("auth_req_id", &id),
        ],
    )
    .await;
    refused(&wrong_secret, StatusCode::UNAUTHORIZED, "invalid_client");
    // None of these counted as a poll: the first real one, in time, is pending.
    s.advance(5);
    refused(
        &s.poll(&id).await,
        StatusCode::BAD_REQUEST,
        "authorization_pending",
    );
}

#[tokio::test]
async fn the_ceiling_and_lifetime_are_those_of_the_agent_at_the_poll() {
    let s = setup("").await;
    let id = s.held(BIG_MODEL).await;
    s.decide(&id, true, None).await;
    let store = s.gw.gateway().store();
    let mut agent = store.agent("default", "buyer").await.unwrap().unwrap();
    agent.ceiling = writ_token::parse_grants(SMALL_MODEL).unwrap();
    store.put_agent(&agent).await.unwrap();
    // Applied as the change feed (or the admin API, at once) applies a change.
    s.gw.gateway().reload().await.unwrap();
    s.advance(5);
    let narrowed = s.poll(&id).await;
    refused(&narrowed, StatusCode::BAD_REQUEST, "invalid_grant");
    assert!(
        narrowed.1["error_description"]
            .as_str()
            .unwrap()
            .contains("no longer within"),
        "{}",
        narrowed.1
    );
    agent.ceiling = writ_token::parse_grants(CEILING).unwrap();
    agent.max_ttl = Duration::from_secs(7);
    store.put_agent(&agent).await.unwrap();
    s.gw.gateway().reload().await.unwrap();
    s.advance(5);
    let (status, v) = s.poll(&id).await;
    assert_eq!(status, StatusCode::OK, "{v}");
    assert_eq!(
        v["expires_in"], 7,
        "the agent's maximum lifetime as of the poll"
    );
}

#[tokio::test]
async fn a_revoked_agent_gets_no_writ_for_an_approved_mint() {
    let s = setup("").await;
    let id = s.held(BIG_MODEL).await;
    s.decide(&id, true, None).await;
    let admin = s.gw.mint_as(ADMIN, ADMIN, 30);
    let resp = reqwest::Client::new()
        .post(s.gw.url("/admin/v1/revocations"))
        .bearer_auth(&admin)
        .json(&json!({"kind": "agent", "tenant": "default", "agent": "buyer", "reason": "compromised"}))
        .send()
        .await
        .unwrap();
    assert!(resp.status().is_success(), "{}", resp.text().await.unwrap());
    s.advance(5);
    refused(
        &s.poll(&id).await,
        StatusCode::UNAUTHORIZED,
        "invalid_client",
    );
    let record = s.gw.gateway().store().approval(&id).await.unwrap().unwrap();
    assert_eq!(record.status, writ_store::ApprovalStatus::Voided);
}

#[tokio::test]
async fn too_many_pending_mints_are_refused_with_429() {
    let s = setup("[approvals]\nmax_pending_per_agent = 2\n").await;
    s.held(BIG_MODEL).await;
    s.held(BIG_MODEL).await;
    let third = s.ask(BIG_MODEL).await;
    refused(
        &third,
        StatusCode::TOO_MANY_REQUESTS,
        "too_many_pending_approvals",
    );
    // What no rule holds is still minted.
    assert_eq!(s.ask(SMALL_MODEL).await.0, StatusCode::OK);
}

#[tokio::test]
async fn a_held_token_exchange_is_delegated_once_approved_with_the_same_subject() {
    let s = setup("").await;
    // The parent writ, minted without approval.
    let parent = {
        let (status, v) = s
            .ask(r#"[{"type":"writ:llm","upstream":"demo","models":["gpt-4o-mini","gpt-4o"]}]"#)
            .await;
        assert_eq!(
            status,
            StatusCode::OK,
            "two models are no single model: {v}"
        );
        v["access_token"].as_str().unwrap().to_string()
    };
    let (child, child_secret) = OAuthClient::register(&s.gw, "helper", CEILING, false).await;
    let exchange = |subject: String| {
        let gw = &s.gw;
        let name = child.name.clone();
        let secret = child_secret.clone();
        async move {
            post(
                gw,
                &[
                    (
                        "grant_type",
                        "urn:ietf:params:oauth:grant-type:token-exchange",
                    ),
                    ("client_id", &name),
                    ("client_secret", &secret),
                    ("subject_token", &subject),
                    (
                        "subject_token_type",
                        "urn:ietf:params:oauth:token-type:access_token",
                    ),
                    ("authorization_details", BIG_MODEL),
                ],
            )
            .await
        }
    };
    let (status, v) = exchange(parent.clone()).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{v}");
    assert_eq!(v["error"], "authorization_pending");
    assert_eq!(v["expires_in"], 30, "never past the subject writ's expiry");
    let id = v["auth_req_id"].as_str().unwrap().to_string();
    s.decide(&id, true, None).await;
    s.advance(5);
    let poll = |subject: Option<String>| {
        let gw = &s.gw;
        let name = child.name.clone();
        let secret = child_secret.clone();
        let id = id.clone();
        async move {
            let mut form = vec![
                ("grant_type", CIBA.to_string()),
                ("client_id", name),
                ("client_secret", secret),
                ("auth_req_id", id),
            ];
            if let Some(subject) = subject {
                form.push(("subject_token", subject));
            }
            let form: Vec<(&str, &str)> = form.iter().map(|(k, v)| (*k, v.as_str())).collect();
            post(gw, &form).await
        }
    };
    refused(
        &poll(None).await,
        StatusCode::BAD_REQUEST,
        "invalid_request",
    );
    let other_subject = s.ask(SMALL_MODEL).await.1["access_token"]
        .as_str()
        .unwrap()
        .to_string();
    refused(
        &poll(Some(other_subject)).await,
        StatusCode::BAD_REQUEST,
        "invalid_grant",
    );
    let (status, v) = poll(Some(parent.clone())).await;
    assert_eq!(status, StatusCode::OK, "{v}");
    assert_eq!(
        v["issued_token_type"],
        "urn:ietf:params:oauth:token-type:access_token"
    );
    let writ = v["access_token"].as_str().unwrap();
    let verified = writ_token::decode(writ)
        .unwrap()
        .verify(&s.gw.keys().trusted)
        .unwrap();
    let approvals = verified.approvals(&approval_key(&s.gw).await).unwrap();
    assert_eq!(approvals.len(), 1);
    let ids = verified.revocation_ids();
    assert_eq!(
        approvals[0].writ,
        hex::encode(&ids[ids.len() - 2]),
        "bound to the delegation block it follows"
    );
    assert_eq!(
        verified.delegation_chain(),
        vec![("default/buyer".to_string(), "default/helper".to_string())]
    );
    assert_eq!(chat(&s.gw, writ, "gpt-4o").await, StatusCode::OK);
    refused(
        &poll(Some(parent)).await,
        StatusCode::BAD_REQUEST,
        "invalid_grant",
    );
}

#[tokio::test]
async fn a_held_dpop_bound_mint_is_issued_bound_to_the_same_key() {
    let s = setup("").await;
    let key = DpopKey::new();
    let url = s.gw.url("/oauth2/token");
    let ask = [
        ("grant_type", "client_credentials"),
        ("client_id", s.client.name.as_str()),
        ("client_secret", s.secret.as_str()),
        ("authorization_details", BIG_MODEL),
    ];
    let (status, v) = post_with_proof(
        &s.gw,
        &ask,
        Some(key.proof(&s.gw, "POST", &url, None, "m-1")),
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{v}");
    let id = v["auth_req_id"].as_str().unwrap().to_string();
    let record = s.gw.gateway().store().approval(&id).await.unwrap().unwrap();
    let summary: Value = serde_json::from_str(&record.summary).unwrap();
    assert_eq!(summary["dpop_bound"], true);
    s.decide(&id, true, None).await;
    s.advance(5);
    let poll = [
        ("grant_type", CIBA),
        ("client_id", s.client.name.as_str()),
        ("client_secret", s.secret.as_str()),
        ("auth_req_id", id.as_str()),
    ];
    let other = DpopKey::new().proof(&s.gw, "POST", &url, None, "p-1");
    refused(
        &post_with_proof(&s.gw, &poll, Some(other)).await,
        StatusCode::BAD_REQUEST,
        "invalid_grant",
    );
    let same = key.proof(&s.gw, "POST", &url, None, "p-2");
    let (status, v) = post_with_proof(&s.gw, &poll, Some(same)).await;
    assert_eq!(status, StatusCode::OK, "{v}");
    assert_eq!(v["token_type"], "DPoP");
    let writ = v["access_token"].as_str().unwrap();
    let verified = writ_token::decode(writ)
        .unwrap()
        .verify(&s.gw.keys().trusted)
        .unwrap();
    assert_eq!(verified.claims().cnf_jkt, Some(key.thumbprint()));
    // Without a proof of its key, the writ is refused on the data plane.
    assert_ne!(chat(&s.gw, writ, "gpt-4o").await, StatusCode::OK);
}

/// A held mint is announced to the tenant's approval webhook like a held request: signed,
/// with the summary, never a secret.
#[tokio::test]
async fn a_held_mint_is_announced_to_the_approval_webhook() {
    const SECRET: &str = "whsec-ciba-0123456789abcdef";
    let certs = writ_testkit::TestCertificates::generate();
    let mut hook = writ_testkit::WebhookReceiver::start(&certs).await;
    let s = setup(&format!(
        "[[approvals.webhooks]]\nurl = \"{}\"\nsecret = \"{SECRET}\"\nca_file = {:?}\nallow_private_network = true\ntenants = [\"default\"]\n",
        hook.url(),
        certs.ca
    ))
    .await;
    let id = s.held(BIG_MODEL).await;
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
    assert_eq!(event["approval"]["summary"]["agent"], "buyer");
    assert_eq!(
        event["approval"]["summary"]["grants"][0]["models"],
        json!(["gpt-4o"])
    );
    let text = String::from_utf8_lossy(&body);
    assert!(
        !text.contains(&s.secret) && !text.contains("writ_"),
        "{text}"
    );
}
