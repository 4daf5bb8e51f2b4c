//! Approvers: added with a token shown once, listed without it, removed for good.

use super::*;

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
