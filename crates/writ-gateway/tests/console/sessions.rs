//! Signing in and out, session expiry on the gateway clock, and the refusals of requests
//! without a session.

use std::time::Duration;

use reqwest::{Method, StatusCode};
use serde_json::json;

use super::{ACME_ADMIN, Browser, Setup};

#[tokio::test]
async fn no_page_or_action_without_a_session() {
    let s = Setup::start().await;
    let id = s.pending("acme", "demo", json!({"tool": "pay"})).await;
    let mut b = Browser::new(&s.gw);
    for path in [
        "/console/approvals",
        "/console/agents",
        "/console/tenants/acme/agents",
        &format!("/console/approvals/{id}"),
    ] {
        let page = b.get(path).await;
        assert_eq!(page.status, StatusCode::SEE_OTHER, "{path}");
        assert_eq!(page.location(), "/console/sign-in", "{path}");
        page.assert_guarded(path);
    }
    for path in [
        format!("/console/approvals/{id}/approve"),
        format!("/console/approvals/{id}/deny"),
        "/console/tenants/acme/agents/demo/stop".to_string(),
        "/console/tenants/acme/stop".to_string(),
        "/console/stop".to_string(),
        "/console/sign-out".to_string(),
    ] {
        let page = b.post(&path, &[("csrf", "x"), ("reason", "r")]).await;
        assert_eq!(page.status, StatusCode::UNAUTHORIZED, "{path}");
        assert!(page.body.contains("sign in again"), "{path}: {}", page.body);
        page.assert_guarded(&path);
    }
    // A made-up cookie is no session.
    b.cookie = Some("A".repeat(43));
    assert_eq!(
        b.get("/console/approvals").await.status,
        StatusCode::SEE_OTHER
    );
    assert_eq!(s.status(&id).await, "pending", "nothing was decided");
    // The sign-in page itself is open, with labelled fields.
    let page = Browser::new(&s.gw).get("/console/sign-in").await;
    assert_eq!(page.status, StatusCode::OK);
    assert!(page.body.contains(r#"<html lang="en">"#));
    assert!(page.body.contains(r#"<label for="writ">"#));
    assert!(page.body.contains(r#"<label for="approver_token">"#));
    assert!(page.body.contains("<main"));
}

#[tokio::test]
async fn sign_in_by_admin_writ_form_or_header() {
    let s = Setup::start().await;
    let mut b = Browser::new(&s.gw);
    let page = b.sign_in(&[("writ", &s.admin), ("tenant", "")]).await;
    let set = page.headers["set-cookie"].to_str().unwrap();
    assert!(set.contains("HttpOnly"), "{set}");
    assert!(set.contains("SameSite=Strict"), "{set}");
    assert!(set.contains("Path=/console"), "{set}");
    assert!(!set.contains("Secure"), "no TLS here: {set}");
    let page = b.get("/console/approvals").await;
    assert_eq!(page.status, StatusCode::OK);
    assert!(page.body.contains("every tenant"), "an operator's session");
    assert!(
        !page.body.contains(&s.admin),
        "the writ is never shown back"
    );
    // Signed in, the sign-in page leads to the console.
    assert_eq!(
        b.get("/console/sign-in").await.status,
        StatusCode::SEE_OTHER
    );

    // The writ in the Authorization header does the same.
    let mut h = Browser::new(&s.gw);
    let req = h
        .client
        .post(h.url("/console/session"))
        .bearer_auth(&s.admin);
    let page = h.send(req).await;
    assert_eq!(page.status, StatusCode::SEE_OTHER, "{}", page.body);
    assert_eq!(h.get("/console/agents").await.status, StatusCode::OK);
}

#[tokio::test]
async fn a_tenant_admin_writ_names_its_tenant() {
    let s = Setup::start().await;
    let writ = s.gw.mint_as(ACME_ADMIN, ACME_ADMIN, 30);
    let mut b = Browser::new(&s.gw);
    let page = b.post("/console/session", &[("writ", &writ)]).await;
    assert_eq!(page.status, StatusCode::UNAUTHORIZED);
    assert!(
        page.body.contains("name the tenant you administer"),
        "{}",
        page.body
    );
    assert!(!page.body.contains(&writ));
    let page = b
        .post("/console/session", &[("writ", &writ), ("tenant", "globex")])
        .await;
    assert_eq!(page.status, StatusCode::UNAUTHORIZED);
    assert!(page.body.contains("does not administer that tenant"));
    assert!(b.cookie.is_none());
    b.sign_in(&[("writ", &writ), ("tenant", "acme")]).await;
    let page = b.get("/console/agents").await;
    assert_eq!(page.status, StatusCode::SEE_OTHER);
    assert_eq!(page.location(), "/console/tenants/acme/agents");
    assert!(
        b.get("/console/approvals")
            .await
            .body
            .contains("tenant acme")
    );
}

#[tokio::test]
async fn bad_credentials_do_not_sign_in() {
    let s = Setup::start().await;
    let expired = s.gw.mint_as(super::ADMIN, super::ADMIN, 1);
    s.gw.clock().advance(Duration::from_secs(5));
    let admin = s.gw.mint_as(super::ADMIN, super::ADMIN, 30);
    let not_admin =
        s.gw.mint("demo", r#"[{"type":"writ:llm","upstream":"demo"}]"#, 30);
    let long = "w".repeat(20_000);
    let cases: Vec<(Vec<(&str, &str)>, &str)> = vec![
        (vec![], "Paste an admin writ"),
        (vec![("writ", "writ_garbage")], "not an admin writ"),
        (
            vec![("writ", "<script>alert(1)</script>")],
            "not an admin writ",
        ),
        (vec![("writ", &expired)], "has expired"),
        (
            vec![("writ", &not_admin)],
            "does not administer every tenant",
        ),
        (
            vec![("approver_token", "wap_nobody")],
            "No approver holds this token",
        ),
        (
            vec![("approver_token", "not-a-token")],
            "No approver holds this token",
        ),
        (
            vec![("writ", &admin), ("approver_token", "wap_x")],
            "not both",
        ),
    ];
    for (fields, says) in cases {
        let mut b = Browser::new(&s.gw);
        let page = b.post("/console/session", &fields).await;
        assert_eq!(page.status, StatusCode::UNAUTHORIZED, "{fields:?}");
        assert!(page.body.contains(says), "{fields:?}: {}", page.body);
        assert!(
            !page.body.contains("<script>alert"),
            "input is never echoed"
        );
        assert!(b.cookie.is_none());
        page.assert_guarded("failed sign-in");
    }
    let mut b = Browser::new(&s.gw);
    let page = b.post("/console/session", &[("writ", &long)]).await;
    assert_eq!(page.status, StatusCode::PAYLOAD_TOO_LARGE);
    // Not a form: refused with what to send.
    let req = b
        .client
        .post(b.url("/console/session"))
        .header("content-type", "application/json")
        .body("{}");
    let page = b.send(req).await;
    assert_eq!(page.status, StatusCode::UNSUPPORTED_MEDIA_TYPE);
    assert!(page.body.contains("application/x-www-form-urlencoded"));
    // Sent from another site: refused before anything is checked.
    let req = b
        .client
        .post(b.url("/console/session"))
        .header("origin", "https://evil.example")
        .form(&[("writ", admin.as_str())]);
    let page = b.send(req).await;
    assert_eq!(page.status, StatusCode::FORBIDDEN);
    assert!(b.cookie.is_none());
}

#[tokio::test]
async fn sign_in_by_approver_token_sees_approvals_only() {
    let s = Setup::start().await;
    let token = s.approver("acme", "carol").await;
    let mut b = Browser::new(&s.gw);
    b.sign_in(&[("approver_token", &token)]).await;
    let page = b.get("/console/approvals").await;
    assert_eq!(page.status, StatusCode::OK);
    assert!(page.body.contains("carol"));
    assert!(
        !page.body.contains(r#"href="/console/agents""#),
        "no agents link"
    );
    for path in ["/console/agents", "/console/tenants/acme/agents"] {
        let page = b.get(path).await;
        assert_eq!(page.status, StatusCode::FORBIDDEN, "{path}");
        assert!(page.body.contains("approver sees approvals only"));
    }
    let csrf = b.csrf().await;
    let page = b
        .post("/console/tenants/acme/stop", &[("csrf", &csrf)])
        .await;
    assert_eq!(page.status, StatusCode::FORBIDDEN);

    // Removing the approver ends their session at once.
    let (status, _) = s
        .admin_api(
            Method::DELETE,
            "/admin/v1/tenants/acme/approvers/carol",
            json!({}),
        )
        .await;
    assert!(status.is_success(), "{status}");
    let page = b.get("/console/approvals").await;
    assert_eq!(page.status, StatusCode::SEE_OTHER);
}

#[tokio::test]
async fn sessions_expire_when_idle_and_after_twelve_hours() {
    let s = Setup::start().await;
    let mut idle = Browser::new(&s.gw);
    idle.sign_in(&[("writ", &s.admin)]).await;
    let mut busy = Browser::new(&s.gw);
    busy.sign_in(&[("writ", &s.admin)]).await;

    s.gw.clock().advance(Duration::from_secs(29 * 60));
    assert_eq!(idle.get("/console/approvals").await.status, StatusCode::OK);
    assert_eq!(busy.get("/console/approvals").await.status, StatusCode::OK);
    s.gw.clock().advance(Duration::from_secs(20 * 60));
    assert_eq!(busy.get("/console/approvals").await.status, StatusCode::OK);
    s.gw.clock().advance(Duration::from_secs(10 * 60 + 1));
    // 30 minutes and a second since its last request: over.
    assert_eq!(
        idle.get("/console/approvals").await.status,
        StatusCode::SEE_OTHER
    );
    assert_eq!(busy.get("/console/approvals").await.status, StatusCode::OK);

    // Busy all day: a request every 20 minutes keeps it alive until 12 h after sign-in.
    let mut elapsed = Duration::from_secs(59 * 60 + 1);
    let twelve_hours = Duration::from_secs(12 * 3600);
    let step = Duration::from_secs(20 * 60);
    while elapsed + step < twelve_hours {
        s.gw.clock().advance(step);
        elapsed += step;
        let page = busy.get("/console/approvals").await;
        assert_eq!(page.status, StatusCode::OK, "at {elapsed:?}");
    }
    s.gw.clock().advance(twelve_hours - elapsed);
    let page = busy.get("/console/approvals").await;
    assert_eq!(page.status, StatusCode::SEE_OTHER);
    assert_eq!(page.location(), "/console/sign-in");
}

#[tokio::test]
async fn sign_out_ends_the_session() {
    let s = Setup::start().await;
    let mut b = Browser::new(&s.gw);
    b.sign_in(&[("writ", &s.admin)]).await;
    let old = b.cookie.clone();
    let csrf = b.csrf().await;
    // Without the CSRF token, sign-out is refused and the session stays.
    assert_eq!(
        b.post("/console/sign-out", &[]).await.status,
        StatusCode::FORBIDDEN
    );
    assert_eq!(b.get("/console/approvals").await.status, StatusCode::OK);
    let page = b.post("/console/sign-out", &[("csrf", &csrf)]).await;
    assert_eq!(page.status, StatusCode::SEE_OTHER);
    assert_eq!(page.location(), "/console/sign-in");
    let set = page.headers["set-cookie"].to_str().unwrap();
    assert!(set.contains("Max-Age=0"), "{set}");
    // The old cookie opens nothing any more.
    b.cookie = old;
    assert_eq!(
        b.get("/console/approvals").await.status,
        StatusCode::SEE_OTHER
    );
    // Opening and closing the session are on record: who, and how they signed in.
    let (status, log) =
        s.gw.call_json(
            &s.admin,
            Method::GET,
            "/admin/v1/audit?kind=admin_change",
            None,
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{log}");
    let text = log.to_string();
    for operation in ["console_sign_in", "console_sign_out"] {
        let record = log["records"]
            .as_array()
            .unwrap()
            .iter()
            .find(|r| r["operation"] == operation)
            .unwrap_or_else(|| panic!("no {operation} record: {log}"));
        assert_eq!(
            record["detail"]["authenticated_by"], "admin_writ",
            "{record}"
        );
        assert_eq!(record["detail"]["via"], "console");
    }
    assert!(!text.contains(&s.admin), "no credential in the log");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn over_tls_the_session_cookie_is_secure() {
    let certs = writ_testkit::TestCertificates::generate();
    let gw = writ_testkit::TestGateway::start_tls("", &certs).await;
    let admin = gw.mint_as(super::ADMIN, super::ADMIN, 30);
    let url = gw.url("/console/session");
    let ca = certs.ca.clone();
    let out = tokio::task::spawn_blocking(move || {
        std::process::Command::new("curl")
            .args(["-sS", "-i", "--cacert"])
            .arg(&ca)
            .args(["--data-urlencode", &format!("writ={admin}"), &url])
            .output()
            .expect("curl runs")
    })
    .await
    .unwrap();
    let head = String::from_utf8_lossy(&out.stdout).to_ascii_lowercase();
    assert!(
        head.starts_with("http/1.1 303") || head.starts_with("http/2 303"),
        "{head}"
    );
    let cookie = head
        .lines()
        .find(|l| l.starts_with("set-cookie: writ_console="))
        .unwrap_or_else(|| panic!("a session cookie: {head}"));
    assert!(cookie.contains("; secure"), "{cookie}");
    assert!(cookie.contains("; httponly"), "{cookie}");
    assert!(cookie.contains("samesite=strict"), "{cookie}");
}

#[tokio::test]
async fn no_console_where_the_admin_api_is_not_served() {
    // Listening on every address without TLS: the admin API is off, so is the console.
    let gw = writ_testkit::TestGateway::start("[server]\nlisten = \"0.0.0.0:8080\"\n").await;
    let admin = gw.mint_as(super::ADMIN, super::ADMIN, 30);
    let mut b = Browser::new(&gw);
    for page in [
        b.get("/console/sign-in").await,
        b.post("/console/session", &[("writ", &admin)]).await,
    ] {
        assert_eq!(page.status, StatusCode::FORBIDDEN);
        assert!(page.body.contains("tls_cert"), "{}", page.body);
        page.assert_guarded("disabled console");
    }
    assert!(b.cookie.is_none());
}
