//! CSRF and cross-site refusals, the security headers of every console response, tenant
//! isolation by URL, and hostile text rendered inert.

use reqwest::StatusCode;
use serde_json::json;

use super::{ACME_ADMIN, Browser, Setup, escaped};

#[tokio::test]
async fn a_state_change_needs_the_sessions_csrf_token() {
    let s = Setup::start().await;
    let id = s.pending("acme", "demo", json!({"tool": "pay"})).await;
    let mut b = Browser::new(&s.gw);
    b.sign_in(&[("writ", &s.admin)]).await;
    let csrf = b.csrf().await;
    let mut other = Browser::new(&s.gw);
    other.sign_in(&[("writ", &s.admin)]).await;
    let others = other.csrf().await;
    assert_ne!(csrf, others, "each session has its own token");
    let deny = format!("/console/approvals/{id}/deny");
    // One character changed; never the one already there.
    let last = if csrf.ends_with('A') { 'B' } else { 'A' };
    let wrong = format!("{}{last}", &csrf[..csrf.len() - 1]);
    assert_ne!(wrong, csrf);
    for fields in [
        vec![("reason", "no")],
        vec![("csrf", ""), ("reason", "no")],
        vec![("csrf", wrong.as_str()), ("reason", "no")],
        vec![("csrf", others.as_str()), ("reason", "no")],
        vec![("csrf", &csrf[..10]), ("reason", "no")],
    ] {
        let page = b.post(&deny, &fields).await;
        assert_eq!(page.status, StatusCode::FORBIDDEN, "{fields:?}");
        assert!(page.body.contains("reload the page"), "{}", page.body);
        page.assert_guarded("csrf refusal");
        assert_eq!(
            s.status(&id).await,
            "pending",
            "nothing decided: {fields:?}"
        );
    }
    // The right token, sent from another site, is refused too.
    for (name, value) in [
        ("origin", "https://evil.example"),
        ("sec-fetch-site", "cross-site"),
        ("sec-fetch-site", "same-site"),
    ] {
        let req = b
            .client
            .post(b.url(&deny))
            .header(name, value)
            .form(&[("csrf", csrf.as_str())]);
        let page = b.send(req).await;
        assert_eq!(page.status, StatusCode::FORBIDDEN, "{name}");
        assert_eq!(s.status(&id).await, "pending");
    }
    // A reason that is not one line is refused, with what to send.
    let page = b
        .post(&deny, &[("csrf", &csrf), ("reason", "two\nlines")])
        .await;
    assert_eq!(page.status, StatusCode::BAD_REQUEST);
    assert!(page.body.contains("one line"));
    // The session's own token decides.
    let page = b
        .post(&deny, &[("csrf", &csrf), ("reason", "not today")])
        .await;
    assert_eq!(page.status, StatusCode::SEE_OTHER, "{}", page.body);
    assert_eq!(s.status(&id).await, "denied");
    let record = s.gw.gateway().store().approval(&id).await.unwrap().unwrap();
    assert_eq!(record.decided_method.as_deref(), Some("admin_writ"));
    assert_eq!(record.decision_reason.as_deref(), Some("not today"));
    // Deciding twice: 409, saying why.
    let page = b.post(&deny, &[("csrf", &csrf)]).await;
    assert_eq!(page.status, StatusCode::CONFLICT);
    assert!(page.body.contains("not pending"));
}

#[tokio::test]
async fn every_console_response_carries_the_security_headers() {
    let s = Setup::start().await;
    let mut b = Browser::new(&s.gw);
    let mut pages = vec![
        ("sign-in", b.get("/console/sign-in").await),
        ("redirect", b.get("/console").await),
        ("unknown", b.get("/console/nothing/here").await),
        ("401", b.post("/console/stop", &[]).await),
        ("css", b.get("/console/assets/console.css").await),
        ("js", b.get("/console/assets/console.js").await),
    ];
    pages.push(("sign-in post", b.sign_in(&[("writ", &s.admin)]).await));
    pages.push(("approvals", b.get("/console/approvals").await));
    pages.push(("tenants", b.get("/console/agents").await));
    pages.push(("agents", b.get("/console/tenants/acme/agents").await));
    pages.push(("403", b.post("/console/stop", &[("csrf", "x")]).await));
    pages.push(("405", b.get("/console/session").await));
    for (what, page) in &pages {
        page.assert_guarded(what);
    }
    let css = &pages[4].1;
    assert!(
        css.headers["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/css")
    );
    assert!(css.body.contains("prefers-color-scheme: dark"));
    assert_eq!(pages[2].1.status, StatusCode::NOT_FOUND);
    // No inline script or style anywhere the CSP would have to allow.
    for (what, page) in &pages {
        assert!(!page.body.contains("<script>"), "{what}");
        assert!(!page.body.contains("style="), "{what}");
        assert!(!page.body.contains(" onclick"), "{what}");
    }
}

#[tokio::test]
async fn a_tenant_session_cannot_reach_another_tenant_by_url() {
    let s = Setup::start().await;
    let ours = s.pending("acme", "demo", json!({"tool": "pay"})).await;
    let theirs = s.pending("globex", "spy", json!({"tool": "steal"})).await;
    let writ = s.gw.mint_as(ACME_ADMIN, ACME_ADMIN, 30);
    let token = s.approver("acme", "carol").await;
    let mut admin = Browser::new(&s.gw);
    admin.sign_in(&[("writ", &writ), ("tenant", "acme")]).await;
    let mut approver = Browser::new(&s.gw);
    approver.sign_in(&[("approver_token", &token)]).await;

    for b in [&mut admin, &mut approver] {
        let page = b.get("/console/approvals").await;
        assert!(page.body.contains(&ours));
        assert!(
            !page.body.contains(&theirs),
            "another tenant's approval is not listed"
        );
        assert!(!page.body.contains("steal"));
        let csrf = page.csrf();
        let page = b.get(&format!("/console/approvals/{theirs}")).await;
        assert_eq!(page.status, StatusCode::NOT_FOUND);
        // Answered exactly as an id that does not exist.
        let missing = b
            .get("/console/approvals/apr_01JAAAAAAAAAAAAAAAAAAAAAAA")
            .await;
        assert_eq!(missing.status, StatusCode::NOT_FOUND);
        assert_eq!(missing.body, page.body);
        for verb in ["approve", "deny"] {
            let page = b
                .post(
                    &format!("/console/approvals/{theirs}/{verb}"),
                    &[("csrf", &csrf)],
                )
                .await;
            assert_eq!(page.status, StatusCode::NOT_FOUND, "{verb}");
        }
        assert_eq!(s.status(&theirs).await, "pending");
    }
    let csrf = admin.csrf().await;
    assert_eq!(
        admin.get("/console/tenants/globex/agents").await.status,
        StatusCode::NOT_FOUND
    );
    for path in [
        "/console/tenants/globex/agents/spy/stop",
        "/console/tenants/globex/stop",
    ] {
        let page = admin.post(path, &[("csrf", &csrf)]).await;
        assert_eq!(page.status, StatusCode::NOT_FOUND, "{path}");
    }
    let page = admin.post("/console/stop", &[("csrf", &csrf)]).await;
    assert_eq!(
        page.status,
        StatusCode::FORBIDDEN,
        "the operator's stop only"
    );
    let revocations = s.gw.gateway().store().revocation_records().await.unwrap();
    assert!(
        revocations.is_empty(),
        "nothing was stopped: {revocations:?}"
    );
    // Its own tenant opens.
    assert_eq!(
        admin.get("/console/tenants/acme/agents").await.status,
        StatusCode::OK
    );
    assert_eq!(
        admin
            .get(&format!("/console/approvals/{ours}"))
            .await
            .status,
        StatusCode::OK
    );
}

#[tokio::test]
async fn hostile_agent_names_and_arguments_render_inert() {
    let s = Setup::start().await;
    let summary = json!({
        "upstream": "pay\u{202E}gpj.exe",
        "tool": "<script>alert(1)</script>",
        "operation": "tools/call",
        "arguments": {
            "to": "\"><img src=x onerror=alert(1)>",
            "memo": "ok\u{200B}ay\u{202E}txt.exe",
            "<b>name</b>": 250,
        },
        "path": "/mcp/<iframe>",
    });
    let id = s
        .pending("acme", "<script>alert('agent')</script>", summary)
        .await;
    let mut b = Browser::new(&s.gw);
    b.sign_in(&[("writ", &s.admin)]).await;
    for path in [
        "/console/approvals".to_string(),
        format!("/console/approvals/{id}"),
    ] {
        let page = b.get(&path).await;
        assert_eq!(page.status, StatusCode::OK);
        let html = &page.body;
        for raw in [
            "<script>alert",
            "<img src=x",
            "\"><img",
            "<b>name</b>",
            "<iframe>",
            "\u{202E}",
            "\u{200B}",
        ] {
            assert!(!html.contains(raw), "{path}: raw {raw:?} in the page");
        }
        for shown in [
            "<script>alert('agent')</script>",
            "\"><img src=x onerror=alert(1)>",
            "ok[U+200B]ay[U+202E]txt.exe",
            "pay[U+202E]gpj.exe",
            "<b>name</b>",
        ] {
            let shown = escaped(shown);
            assert!(html.contains(&shown), "{path}: {shown:?} not shown");
        }
    }
}
