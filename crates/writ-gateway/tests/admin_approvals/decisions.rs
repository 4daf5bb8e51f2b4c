//! Decisions by approver token and by admin writ, and another tenant's approval
//! answering exactly as an unknown id.

use super::*;

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
