//! The oversight trail of approvals (issue 23): every stop an operator makes through the
//! admin API — by writ, by a parent writ's block, by agent, by tenant, the kill switch —
//! voids the pending approvals it reaches, and the audit log says so, one `approval_voided`
//! record per approval beside the revocation's own record (who and why); an approval
//! nobody decided gets exactly one `approval_expired` record once swept. Approvals are put
//! in the store as the request path puts them; the gateway's clock is advanced, never
//! waited for.

use std::time::{Duration, UNIX_EPOCH};

use reqwest::StatusCode;
use serde_json::{Value, json};
use writ_store::{
    Agent, AgentCredentials, ApprovalKind, ApprovalRecord, ApprovalStatus, Decision, NewApproval,
    PendingBounds,
};
use writ_testkit::TestGateway;

const ADMIN: &str = r#"{"type":"writ:admin"}"#;
const CEILING: &str = r#"{"type":"writ:llm","upstream":"demo"}"#;
const SUMMARY_SECRET: &str = "summary-text-that-the-audit-log-never-holds";

fn now(gw: &TestGateway) -> u64 {
    writ_token::Clock::now(gw.clock())
        .duration_since(UNIX_EPOCH)
        .expect("after 1970")
        .as_secs()
}

/// Registers `agent` of `tenant`, so stops naming it need no `force`.
async fn register(gw: &TestGateway, tenant: &str, agent: &str) {
    gw.gateway()
        .store()
        .put_agent(&Agent {
            tenant: tenant.into(),
            name: agent.into(),
            ceiling: writ_token::parse_grants(CEILING).expect("ceiling"),
            max_ttl: Duration::from_secs(30),
            credentials: AgentCredentials::default(),
        })
        .await
        .expect("register agent");
}

/// What the request path stores when a request of `agent` with `writ` is held.
fn held(gw: &TestGateway, tenant: &str, agent: &str, writ: Option<&str>) -> NewApproval {
    let at = now(gw);
    let verified = writ.map(|w| {
        writ_token::decode(w)
            .expect("decode")
            .verify(&gw.keys().trusted)
            .expect("verify")
    });
    NewApproval {
        id: writ_token::new_approval_id(),
        tenant: tenant.into(),
        agent: agent.into(),
        kind: ApprovalKind::Request,
        reason: "payments over 100".into(),
        summary: json!({"tool": "pay", "note": SUMMARY_SECRET}).to_string(),
        summary_digest: "ab".repeat(32),
        request_digest: "cd".repeat(32),
        writ_token_id: Some(
            verified
                .as_ref()
                .map_or_else(|| format!("01J{agent}"), |v| v.claims().token_id.clone()),
        ),
        writ_revocation_ids: verified.as_ref().map_or_else(
            || vec![hex::encode(agent)],
            |v| v.revocation_ids().iter().map(hex::encode).collect(),
        ),
        writ_issued_at: Some(at - 1),
        ticket: None,
        mint_request: None,
        created_at: at,
        expires_at: at + 60,
        poll_interval: 5,
    }
}

async fn hold(gw: &TestGateway, new: &NewApproval) -> ApprovalRecord {
    let bounds = PendingBounds {
        per_agent: 10,
        per_tenant: 10,
    };
    gw.gateway()
        .store()
        .create_approval(new, bounds)
        .await
        .expect("create approval")
}

async fn status(gw: &TestGateway, id: &str) -> ApprovalStatus {
    gw.gateway()
        .store()
        .approval(id)
        .await
        .expect("read")
        .expect("stored")
        .status
}

async fn revoke(gw: &TestGateway, admin: &str, body: Value) {
    let resp = reqwest::Client::new()
        .post(gw.url("/admin/v1/revocations"))
        .bearer_auth(admin)
        .json(&body)
        .send()
        .await
        .expect("revoke");
    let status = resp.status();
    let text = resp.text().await.expect("body");
    assert_eq!(status, StatusCode::CREATED, "{body}: {text}");
}

/// Every audit record of `kind`, oldest first, through the admin API.
async fn audit(gw: &TestGateway, admin: &str, kind: &str) -> Vec<Value> {
    gw.gateway().audit_checkpoint().await;
    let resp = reqwest::Client::new()
        .get(gw.url(&format!("/admin/v1/audit?kind={kind}&limit=1000")))
        .bearer_auth(admin)
        .send()
        .await
        .expect("audit");
    assert_eq!(resp.status(), StatusCode::OK);
    let page: Value = resp.json().await.expect("json");
    page["records"].as_array().expect("records").clone()
}

/// The approval ids of the `approval` records with `operation`.
fn approvals_with(records: &[Value], operation: &str) -> Vec<String> {
    let mut ids: Vec<String> = records
        .iter()
        .filter(|r| r["operation"] == operation)
        .map(|r| r["detail"]["approval"].as_str().expect("id").to_string())
        .collect();
    ids.sort();
    ids
}

fn sorted(records: &[&ApprovalRecord]) -> Vec<String> {
    let mut ids: Vec<String> = records.iter().map(|r| r.id.clone()).collect();
    ids.sort();
    ids
}

#[tokio::test]
async fn every_stop_voids_the_approvals_it_reaches_and_the_trail_says_so() {
    let gw = TestGateway::start("").await;
    let admin = gw.mint_as(ADMIN, ADMIN, 30);
    for (tenant, agent) in [
        ("acme", "planner"),
        ("acme", "researcher"),
        ("globex", "bot"),
        ("initech", "crawler"),
    ] {
        register(&gw, tenant, agent).await;
    }
    let writ = gw.mint_in("acme", CEILING, CEILING, 30);
    let by_writ = hold(&gw, &held(&gw, "acme", "demo", Some(&writ))).await;
    // A parent writ and one attenuated from it, each with a request held.
    let parent = gw.mint_in("acme", CEILING, CEILING, 30);
    let narrower = writ_token::parse_grants(
        r#"{"type":"writ:llm","upstream":"demo","models":["gpt-4o-mini"]}"#,
    )
    .expect("grants");
    let child = writ_token::attenuate(&parent, &narrower).expect("attenuate");
    let by_parent = hold(&gw, &held(&gw, "acme", "demo", Some(&parent))).await;
    let by_child = hold(&gw, &held(&gw, "acme", "demo", Some(&child))).await;
    let parent_block = by_parent
        .bound_revocation_id()
        .expect("revocation id")
        .to_string();
    assert_eq!(by_child.writ_revocation_ids.len(), 3);
    let researcher = [
        hold(&gw, &held(&gw, "acme", "researcher", None)).await,
        hold(&gw, &held(&gw, "acme", "researcher", None)).await,
    ];
    let planner = hold(&gw, &held(&gw, "acme", "planner", None)).await;
    let globex = hold(&gw, &held(&gw, "globex", "bot", None)).await;
    let initech = hold(&gw, &held(&gw, "initech", "crawler", None)).await;
    // Decided already: a stop leaves a denial as it is.
    let denied = hold(&gw, &held(&gw, "initech", "crawler", None)).await;
    gw.gateway()
        .store()
        .decide_approval(
            &denied.id,
            &Decision {
                approve: false,
                by: "alice".into(),
                method: "approver_token".into(),
                reason: None,
                at: now(&gw),
                block: None,
            },
        )
        .await
        .expect("deny");
    let token_id = by_writ.writ_token_id.clone().expect("token id");

    let steps: [(Value, Vec<&ApprovalRecord>); 5] = [
        (
            json!({"kind": "token_id", "token_id": token_id, "reason": "leaked in a log"}),
            vec![&by_writ],
        ),
        (
            json!({"kind": "revocation_id", "revocation_id": parent_block, "reason": "parent handed out"}),
            vec![&by_parent, &by_child],
        ),
        (
            json!({"kind": "agent", "tenant": "acme", "agent": "researcher", "reason": "prompt injected"}),
            researcher.iter().collect(),
        ),
        (
            json!({"kind": "tenant", "tenant": "globex", "reason": "contract ended"}),
            vec![&globex],
        ),
        (
            json!({"kind": "issued_before", "before": now(&gw), "reason": "kill switch drill"}),
            vec![&planner, &initech],
        ),
    ];
    let mut voided_so_far = Vec::new();
    for (i, (body, reached)) in steps.iter().enumerate() {
        revoke(&gw, &admin, body.clone()).await;
        for record in reached {
            assert_eq!(
                status(&gw, &record.id).await,
                ApprovalStatus::Voided,
                "step {i}: {body}"
            );
        }
        voided_so_far.extend(reached.iter().copied());
        // Exactly the approvals stopped so far have their one voided record.
        let records = audit(&gw, &admin, "approval").await;
        assert_eq!(
            approvals_with(&records, "approval_voided"),
            sorted(&voided_so_far),
            "step {i}: {body}"
        );
        // The revocation's own record says who stopped what, and why.
        let revocations = audit(&gw, &admin, "revocation").await;
        assert_eq!(revocations.len(), i + 1);
        let last = revocations.last().expect("revocation record");
        assert_eq!(last["operation"], "revoke");
        assert_eq!(last["agent"], "demo", "the admin who stopped it");
        assert_eq!(last["detail"]["reason"], body["reason"]);
        assert_eq!(last["detail"]["revocation"]["kind"], body["kind"]);
    }
    assert_eq!(status(&gw, &denied.id).await, ApprovalStatus::Denied);

    let records = audit(&gw, &admin, "approval").await;
    for record in &records {
        let id = record["detail"]["approval"].as_str().expect("id");
        let asked = voided_so_far
            .iter()
            .find(|r| r.id == id)
            .expect("only stopped approvals have records");
        assert_eq!(record["kind"], "approval");
        assert_eq!(record["tenant"], asked.tenant.as_str());
        assert_eq!(record["agent"], asked.agent.as_str());
        assert_eq!(record["detail"]["reason"], "payments over 100");
        assert_eq!(record["detail"]["kind"], "request");
    }
    // The trail names what was held by digest and writ pseudonym, never the summary's
    // text, the writ or its raw token id.
    let export = gw
        .gateway()
        .audit_export()
        .await
        .expect("export")
        .join("\n");
    for never in [
        SUMMARY_SECRET,
        writ.as_str(),
        token_id.as_str(),
        parent.as_str(),
        child.as_str(),
    ] {
        assert!(!export.contains(never), "the audit log holds {never}");
    }
}

#[tokio::test]
async fn an_approval_nobody_decides_gets_one_expired_record() {
    let gw = TestGateway::start("").await;
    let admin = gw.mint_as(ADMIN, ADMIN, 30);
    let waiting = hold(&gw, &held(&gw, "acme", "planner", None)).await;
    let later = hold(
        &gw,
        &NewApproval {
            expires_at: now(&gw) + 600,
            ..held(&gw, "acme", "planner", None)
        },
    )
    .await;
    gw.gateway().sweep_approvals().await;
    assert!(approvals_with(&audit(&gw, &admin, "approval").await, "approval_expired").is_empty());

    gw.clock().advance(Duration::from_secs(60));
    let admin = gw.mint_as(ADMIN, ADMIN, 30);
    // Sweeping is what the server's sweeper does every few seconds; called here directly,
    // twice, as two gateways (or two ticks) would.
    gw.gateway().sweep_approvals().await;
    gw.gateway().sweep_approvals().await;
    let records = audit(&gw, &admin, "approval").await;
    assert_eq!(
        approvals_with(&records, "approval_expired"),
        vec![waiting.id.clone()]
    );
    assert_eq!(status(&gw, &waiting.id).await, ApprovalStatus::Expired);
    assert_eq!(status(&gw, &later.id).await, ApprovalStatus::Pending);
    let expired = records
        .iter()
        .find(|r| r["operation"] == "approval_expired")
        .expect("record");
    assert_eq!(expired["tenant"], "acme");
    assert_eq!(expired["agent"], "planner");
    assert_eq!(expired["detail"]["expires_at"], waiting.expires_at);
    assert!(expired["detail"].get("decided_by").is_none());

    // An expired approval is not voided by a later stop: it ended already.
    revoke(
        &gw,
        &admin,
        json!({"kind": "tenant", "tenant": "acme", "reason": "offboarding", "force": true}),
    )
    .await;
    let records = audit(&gw, &admin, "approval").await;
    assert_eq!(
        approvals_with(&records, "approval_voided"),
        vec![later.id.clone()]
    );
    assert_eq!(status(&gw, &waiting.id).await, ApprovalStatus::Expired);
}
