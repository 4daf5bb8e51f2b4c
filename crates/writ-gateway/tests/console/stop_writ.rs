//! Stopping one writ from the console by its token id: the operator's only; malformed,
//! oversized, expired, future and hostile ids refused with what to do and nothing
//! stopped; the id never shown back nor written raw to the audit log.

use reqwest::{Method, StatusCode};
use serde_json::Value;
use writ_testkit::TestGateway;

use super::{ACME_ADMIN, ADMIN, Browser, Setup};

fn token_id(gw: &TestGateway, writ: &str) -> String {
    writ_token::decode(writ)
        .unwrap()
        .verify(&gw.keys().trusted)
        .unwrap()
        .claims()
        .token_id
        .clone()
}

/// A token id of a writ issued `secs` from the gateway's now (negative: ago).
fn id_at(s: &Setup, secs: i64) -> String {
    let now = s.now() * 1000;
    let at = now.saturating_add_signed(secs * 1000);
    ulid::Ulid::from_parts(at, 7).to_string()
}

async fn admin_api_status(s: &Setup, writ: &str) -> StatusCode {
    s.gw.call_json(writ, Method::GET, "/admin/v1/tenants", None)
        .await
        .0
}

#[tokio::test]
async fn one_writ_is_stopped_by_its_token_id() {
    let s = Setup::start().await;
    let victim = s.gw.mint_for("victim", ADMIN, ADMIN, 30);
    let id = token_id(&s.gw, &victim);
    assert_eq!(admin_api_status(&s, &victim).await, StatusCode::OK);
    let mut held = Browser::new(&s.gw);
    held.sign_in(&[("writ", &victim)]).await;

    let mut op = Browser::new(&s.gw);
    op.sign_in(&[("writ", &s.admin)]).await;
    let page = op.get("/console/agents").await;
    assert!(page.body.contains("action=\"/console/stop-writ\""));
    let csrf = page.csrf();

    let long = "A".repeat(10_000);
    let lower = id.to_lowercase();
    let expired = id_at(&s, -3600);
    let future = id_at(&s, 3600);
    for (token_id, says) in [
        ("", "not a token id"),
        ("not-a-token-id", "not a token id"),
        (lower.as_str(), "not a token id"),
        ("<script>alert(1)</script>", "not a token id"),
        ("01J\u{202E}AAAAAAAAAAAAAAAAAAAAAA", "not a token id"),
        (long.as_str(), "not a token id"),
        (expired.as_str(), "has expired"),
        (future.as_str(), "in the future"),
    ] {
        let page = op
            .post(
                "/console/stop-writ",
                &[("csrf", csrf.as_str()), ("token_id", token_id)],
            )
            .await;
        assert_eq!(page.status, StatusCode::BAD_REQUEST, "{token_id:.40}");
        assert!(page.body.contains(says), "{token_id:.40}: {}", page.body);
        assert!(
            token_id.is_empty() || !page.body.contains(token_id),
            "not echoed"
        );
        page.assert_guarded("stop-writ refusal");
    }
    let huge = "A".repeat(20_000);
    let page = op
        .post(
            "/console/stop-writ",
            &[("csrf", csrf.as_str()), ("token_id", &huge)],
        )
        .await;
    assert_eq!(page.status, StatusCode::PAYLOAD_TOO_LARGE);
    assert!(
        s.gw.gateway()
            .store()
            .revocation_records()
            .await
            .unwrap()
            .is_empty()
    );

    // A tenant's admin may not: a token id names no tenant.
    let acme = s.gw.mint_for("acme-admin", ACME_ADMIN, ACME_ADMIN, 30);
    let mut tenant_admin = Browser::new(&s.gw);
    tenant_admin
        .sign_in(&[("writ", &acme), ("tenant", "acme")])
        .await;
    let tenant_csrf = tenant_admin.csrf().await;
    let page = tenant_admin
        .post(
            "/console/stop-writ",
            &[("csrf", tenant_csrf.as_str()), ("token_id", id.as_str())],
        )
        .await;
    assert_eq!(page.status, StatusCode::FORBIDDEN);
    assert_eq!(admin_api_status(&s, &victim).await, StatusCode::OK);

    // The operator stops it: that writ only, at once.
    let page = op
        .post(
            "/console/stop-writ",
            &[
                ("csrf", csrf.as_str()),
                ("token_id", &format!(" {id} ")),
                ("reason", "leaked"),
            ],
        )
        .await;
    assert_eq!(page.status, StatusCode::SEE_OTHER, "{}", page.body);
    assert_eq!(page.location(), "/console/agents");
    assert_eq!(
        admin_api_status(&s, &victim).await,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(admin_api_status(&s, &s.admin).await, StatusCode::OK);
    assert_eq!(
        held.get("/console/approvals").await.status,
        StatusCode::SEE_OTHER,
        "the session signed in with it ended"
    );
    let records = s.gw.gateway().store().revocation_records().await.unwrap();
    assert_eq!(records.len(), 1);
    assert_eq!(records[0].revoked.reason.as_deref(), Some("leaked"));

    // The audit log names the writ by pseudonym only.
    let lines = s.gw.gateway().audit_export().await.unwrap();
    assert!(lines.iter().all(|l| !l.contains(&id)), "no raw token id");
    let record: Value = lines
        .iter()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .find(|r| r["kind"] == "revocation")
        .unwrap();
    assert_eq!(record["detail"]["revocation"]["kind"], "token_id");
    assert_eq!(record["detail"]["via"], "console");
    assert!(
        record["detail"]["revocation"]["writ"].is_string(),
        "{record}"
    );
}
