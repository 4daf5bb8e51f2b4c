//! Unknown tokens, expired approvals, bad reasons, bodies and filters.

use super::*;

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
        assert_eq!(body["error"]["code"], "invalid_approver_token", "{body}");
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
    let (_, list) = api
        .call_as(
            &alice,
            Method::GET,
            "/admin/v1/approvals?status=expired",
            None,
        )
        .await;
    assert_eq!(list["approvals"][0]["id"], id.as_str(), "{list}");
    // A fresh admin writ: the clock went past the first one's expiry.
    let admin = api.gw.mint_as(ADMIN, ADMIN, 30);
    let (_, audit) = api
        .call_as(&admin, Method::GET, "/admin/v1/audit?kind=approval", None)
        .await;
    let expired = audit["records"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r["operation"] == "approval_expired")
        .count();
    assert_eq!(expired, 1, "marked once, with its record: {audit}");
    let (_, again) = api
        .call_as(
            &alice,
            Method::GET,
            "/admin/v1/approvals?status=expired",
            None,
        )
        .await;
    assert_eq!(again["approvals"].as_array().unwrap().len(), 1);
}
