//! A request an approval rule holds, approved by an approver through the API, passes
//! once.

use super::*;

/// An MCP call of tool `pay` through `gw` with `writ`, retried with `approval` if given.
async fn pay(gw: &TestGateway, writ: &str, amount: i64, approval: Option<&str>) -> (u16, Value) {
    let mut req = reqwest::Client::new()
        .post(gw.url("/mcp/pay"))
        .bearer_auth(writ)
        .json(&json!({"jsonrpc": "2.0", "id": 1, "method": "tools/call",
            "params": {"name": "pay", "arguments": {"amount": amount, "memo": HOSTILE}}}));
    if let Some(id) = approval {
        req = req.header("writ-approval", id);
    }
    let resp = req.send().await.unwrap();
    let status = resp.status().as_u16();
    (status, resp.json().await.unwrap_or(Value::Null))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_held_request_passes_once_after_an_approver_approves_it_through_the_api() {
    const KEY: &str = "pay-key-admin-approvals";
    const TOOL: &str =
        r#"{"type":"writ:tool","upstream":"pay","tool":"pay","additional_arguments":true}"#;
    let mock = writ_testkit::MockUpstream::start(KEY).await;
    let gw = TestGateway::start(&format!(
        "[upstreams.pay]\nkind = \"mcp\"\nbase_url = \"{}/mcp\"\nallow_private_network = true\napi_key = \"{KEY}\"\n",
        mock.base_url()
    ))
    .await;
    let api = Api {
        admin: gw.mint_as(ADMIN, ADMIN, 30),
        gw,
    };
    let (status, body) = api
        .call(
            Method::PUT,
            "/admin/v1/tenants/default/policies/payments",
            Some(json!({"datalog": r#"requires_approval("payments over 100") <- tool("pay"), arg("amount", $a), $a > 100;"#})),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let alice = api.approver("default", "alice").await;
    let writ = api.gw.mint_as(TOOL, TOOL, 30);

    let (status, held) = pay(&api.gw, &writ, 250, None).await;
    assert_eq!(status, 403, "{held}");
    let id = held["error"]["data"]["approval"]["id"]
        .as_str()
        .unwrap_or_else(|| panic!("an approval id: {held}"))
        .to_string();
    let forwarded = mock.requests().len();

    // The approver sees what was asked, as the request path summarised it, and approves.
    let (status, shown) = api
        .call_as(
            &alice,
            Method::GET,
            &format!("/admin/v1/approvals/{id}"),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{shown}");
    assert_eq!(shown["status"], "pending");
    assert_eq!(shown["reason"], "payments over 100");
    assert_eq!(shown["summary"]["arguments"]["amount"], 250, "{shown}");
    let (status, body) = api
        .call_as(
            &alice,
            Method::POST,
            &format!("/admin/v1/approvals/{id}/approve"),
            Some(json!({"reason": "invoice 42"})),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");

    // The exact retry passes once; the next is refused as used.
    let (status, v) = pay(&api.gw, &writ, 250, Some(&id)).await;
    assert_eq!(status, 200, "{v}");
    assert_eq!(mock.requests().len(), forwarded + 1);
    let (status, v) = pay(&api.gw, &writ, 250, Some(&id)).await;
    assert_eq!(status, 403, "{v}");
    assert_eq!(v["error"]["data"]["code"], "approval_used", "{v}");
    let (_, shown) = api
        .call_as(
            &alice,
            Method::GET,
            &format!("/admin/v1/approvals/{id}"),
            None,
        )
        .await;
    assert_eq!(shown["status"], "used");
    assert_eq!(shown["decided_by"], "alice");
}
