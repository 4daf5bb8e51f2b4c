//! Passkeys in Chromium with a virtual authenticator: an approver enrols a passkey
//! through the one-time link `writ approver add` hands out, signs out, signs in with the
//! passkey, and decides the payment example's held calls and a held mint. The agent's
//! retry of the approved call passes; the denied call's retry gets `approval_denied` with
//! the reason; the agent polling for the denied mint gets OAuth `access_denied` with the
//! reason. Every decision records `passkey` as how its person signed in. The enrolment,
//! sign-in and refusal pages are axe-clean, light and dark, laptop and phone, with no
//! console errors.

use std::time::Duration;

use reqwest::StatusCode;
use serde_json::{Value, json};
use writ_testkit::{MockUpstream, OAuthClient, Step, TestGateway, on_localhost, run_browser};

use super::{ADMIN, assert_accessible};

const KEY: &str = "pay-key-0123456789";
const PAY_GRANT: &str =
    r#"{"type":"writ:tool","upstream":"pay","tool":"pay","additional_arguments":true}"#;
const PAYMENTS: &str =
    r#"requires_approval("payments over 100") <- tool("pay"), arg("amount", $a), $a > 100;"#;
const MINTS: &str =
    r#"requires_approval("the large model needs a person") <- operation("mint"), model("gpt-4o");"#;
const BUYER: &str = r#"[{"type":"writ:llm","upstream":"demo","models":["gpt-4o-mini","gpt-4o"]}]"#;
const BIG_MODEL: &str = r#"[{"type":"writ:llm","upstream":"demo","models":["gpt-4o"]}]"#;
const CIBA: &str = "urn:openid:params:grant-type:ciba";

async fn admin_call(gw: &TestGateway, method: reqwest::Method, path: &str, body: Value) -> Value {
    let admin = gw.mint_as(ADMIN, ADMIN, 30);
    let resp = reqwest::Client::new()
        .request(method, gw.url(path))
        .bearer_auth(&admin)
        .json(&body)
        .send()
        .await
        .unwrap();
    let status = resp.status();
    let text = resp.text().await.unwrap();
    assert!(status.is_success(), "{path}: {status} {text}");
    serde_json::from_str(&text).unwrap_or(Value::Null)
}

async fn pay(gw: &TestGateway, writ: &str, amount: i64, approval: Option<&str>) -> (u16, Value) {
    let mut req = reqwest::Client::new()
        .post(gw.url("/mcp/pay"))
        .bearer_auth(writ)
        .json(&json!({"jsonrpc": "2.0", "id": 9, "method": "tools/call",
            "params": {"name": "pay", "arguments": {"amount": amount, "to": "ACME"}}}));
    if let Some(id) = approval {
        req = req.header("writ-approval", id);
    }
    let resp = req.send().await.unwrap();
    let status = resp.status().as_u16();
    (status, resp.json().await.unwrap_or(Value::Null))
}

fn code(v: &Value) -> &str {
    v["error"]["data"]["code"].as_str().unwrap_or("")
}

/// A held payment: its approval id.
async fn held_payment(gw: &TestGateway, writ: &str, amount: i64) -> String {
    let (status, v) = pay(gw, writ, amount, None).await;
    assert_eq!((status, code(&v)), (403, "approval_required"), "{v}");
    v["error"]["data"]["approval"]["id"]
        .as_str()
        .unwrap()
        .to_string()
}

async fn token_endpoint(gw: &TestGateway, form: &[(&str, &str)]) -> (StatusCode, Value) {
    let resp = reqwest::Client::new()
        .post(gw.url("/oauth2/token"))
        .form(form)
        .send()
        .await
        .unwrap();
    (resp.status(), resp.json().await.unwrap())
}

/// The selector of a decision form's button.
fn decide_button(id: &str, verb: &str) -> String {
    format!("form[action=\"/console/approvals/{id}/{verb}\"] button")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn enrol_sign_in_and_decide_with_a_passkey_in_chromium() {
    let mock = MockUpstream::start(KEY).await;
    let gw = TestGateway::start(&format!(
        "[upstreams.pay]\nkind = \"mcp\"\nbase_url = \"{0}/mcp\"\nallow_private_network = true\n\
         api_key = \"{KEY}\"\n\n[upstreams.demo]\nkind = \"openai\"\nbase_url = \"{0}\"\n\
         allow_private_network = true\napi_key = \"{KEY}\"\n",
        mock.base_url()
    ))
    .await;
    let put = reqwest::Method::PUT;
    for (name, datalog) in [("payments", PAYMENTS), ("mints", MINTS)] {
        let path = format!("/admin/v1/tenants/default/policies/{name}");
        admin_call(&gw, put.clone(), &path, json!({ "datalog": datalog })).await;
    }
    let added = admin_call(
        &gw,
        reqwest::Method::POST,
        "/admin/v1/tenants/default/approvers",
        json!({"name": "carol"}),
    )
    .await;
    let base = on_localhost(gw.url("").trim_end_matches('/'));
    let link = added["enrol_url"].as_str().unwrap();
    let enrol_path = link
        .strip_prefix(&base)
        .unwrap_or_else(|| panic!("{link} is on {base}"));
    assert!(enrol_path.starts_with("/console/enrol/"), "{enrol_path}");

    // What waits for carol: two payments and a mint.
    let writ = gw.mint_as(PAY_GRANT, PAY_GRANT, 30);
    let approve_me = held_payment(&gw, &writ, 250).await;
    let deny_me = held_payment(&gw, &writ, 400).await;
    let (client, secret) = OAuthClient::register(&gw, "buyer", BUYER, false).await;
    let (status, asked) = token_endpoint(
        &gw,
        &[
            ("grant_type", "client_credentials"),
            ("client_id", &client.name),
            ("client_secret", &secret),
            ("authorization_details", BIG_MODEL),
        ],
    )
    .await;
    assert_eq!(asked["error"], "authorization_pending", "{status} {asked}");
    let mint = asked["auth_req_id"].as_str().unwrap().to_string();

    let run = run_browser(
        &base,
        "console_passkeys",
        &[
            Step::goto(enrol_path),                                           // 0
            Step::virtual_authenticator(),                                    // 1
            Step::text("h1"),                                                 // 2
            Step::text("#enrolling"),                                         // 3
            Step::axe(),                                                      // 4
            Step::screenshot("enrol"),                                        // 5
            Step::click_and_navigate("#create-passkey"),                      // 6
            Step::text("h1"),                                                 // 7
            Step::passkeys(),                                                 // 8
            Step::text(".sign-out p"),                                        // 9
            Step::click_and_navigate(".sign-out button"),                     // 10
            Step::fill("#passkey-name", "carol"),                             // 11
            Step::fill("#passkey-tenant", "default"),                         // 12
            Step::axe(),                                                      // 13
            Step::screenshot("sign-in"),                                      // 14
            Step::click_and_navigate("#sign-in-with-passkey"),                // 15
            Step::text("h1"),                                                 // 16
            Step::click_and_navigate(&decide_button(&approve_me, "approve")), // 17
            Step::fill(&format!("#deny-{deny_me}"), "not this month"),        // 18
            Step::click_and_navigate(&decide_button(&deny_me, "deny")),       // 19
            Step::fill(&format!("#deny-{mint}"), "not this week"),            // 20
            Step::click_and_navigate(&decide_button(&mint, "deny")),          // 21
            Step::text("main"),                                               // 22
        ],
    )
    .await
    .unwrap_or_else(|e| panic!("{e}"));

    assert_eq!(run[2]["text"], "Enrol a passkey");
    let whom = run[3]["text"].as_str().unwrap();
    assert!(
        whom.contains("carol, an approver of tenant default"),
        "{whom}"
    );
    assert_accessible(&run, 4, "enrol");
    assert_eq!(run[7]["text"], "Pending approvals", "enrolled: signed in");
    let held = run[8]["credentials"].as_array().unwrap();
    assert_eq!(held.len(), 1, "{held:?}");
    assert_eq!(held[0]["rp_id"], "localhost");
    assert!(run[9]["text"].as_str().unwrap().contains("carol"));
    assert_accessible(&run, 13, "sign-in");
    assert_eq!(run[16]["text"], "Pending approvals", "signed in by passkey");
    assert!(
        run[22]["text"]
            .as_str()
            .unwrap()
            .contains("Nothing is waiting"),
        "{}",
        run[22]["text"]
    );
    assert_eq!(run.problems(), Vec::<String>::new(), "no console errors");

    // The link is spent: a refusal that says what to do, not why; and a sign-in by
    // someone with no passkey says so on the page.
    let again = run_browser(
        &base,
        "console_passkeys_used_link",
        &[
            Step::color_scheme(true),                 // 0
            Step::viewport(390, 844),                 // 1
            Step::goto(enrol_path),                   // 2
            Step::text("h1"),                         // 3
            Step::text("main .notice"),               // 4
            Step::axe(),                              // 5
            Step::screenshot("used-link-dark-phone"), // 6
            Step::goto("/console/sign-in"),           // 7
            Step::axe(),                              // 8
            Step::screenshot("sign-in-dark-phone"),   // 9
            Step::fill("#passkey-name", "nobody"),    // 10
            Step::fill("#passkey-tenant", "default"), // 11
            Step::click("#sign-in-with-passkey"),     // 12
            Step::wait_for("#passkey-status.error"),  // 13
            Step::text("#passkey-status"),            // 14
            Step::axe(),                              // 15
        ],
    )
    .await
    .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(again[3]["text"], "Refused (404)", "a used link");
    let said = again[4]["text"].as_str().unwrap();
    assert!(said.contains("Ask an admin for a new link"), "{said}");
    assert_accessible(&again, 5, "used link, dark, phone");
    assert_accessible(&again, 8, "sign-in, dark, phone");
    let said = again[14]["text"].as_str().unwrap();
    assert!(said.contains("no passkey is enrolled"), "{said}");
    assert_accessible(&again, 15, "a refused passkey sign-in");
    let problems: Vec<String> = again
        .problems()
        .into_iter()
        .filter(|p| !p.contains("status of 404") && !p.contains("status of 401"))
        .collect();
    assert_eq!(
        problems,
        Vec::<String>::new(),
        "only the refusals' own statuses"
    );

    // Each decision was carol's, signed in by passkey.
    for id in [&approve_me, &deny_me, &mint] {
        let record = gw.gateway().store().approval(id).await.unwrap().unwrap();
        assert_eq!(record.decided_by.as_deref(), Some("carol"), "{id}");
        assert_eq!(record.decided_method.as_deref(), Some("passkey"), "{id}");
    }
    // The approval block states it too: `approved_by("carol", "passkey")`.
    let approved = gw.gateway().store().approval(&approve_me).await.unwrap();
    let block = approved.unwrap().block.unwrap();
    for word in [&b"carol"[..], b"passkey"] {
        assert!(block.windows(word.len()).any(|w| w == word), "{word:?}");
    }

    // The agent's retry of the approved payment passes; the denied one carries the reason.
    let (status, v) = pay(&gw, &writ, 250, Some(&approve_me)).await;
    assert_eq!(status, 200, "{v}");
    let (status, v) = pay(&gw, &writ, 400, Some(&deny_me)).await;
    assert_eq!((status, code(&v)), (403, "approval_denied"), "{v}");
    assert!(
        v["error"]["message"]
            .as_str()
            .unwrap()
            .contains("not this month"),
        "{v}"
    );

    // The agent polling for the denied mint is told `access_denied`, with the reason.
    gw.clock().advance(Duration::from_secs(5));
    let (status, polled) = token_endpoint(
        &gw,
        &[
            ("grant_type", CIBA),
            ("client_id", &client.name),
            ("client_secret", &secret),
            ("auth_req_id", &mint),
        ],
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{polled}");
    assert_eq!(polled["error"], "access_denied", "{polled}");
    assert!(
        polled["error_description"]
            .as_str()
            .unwrap()
            .contains("not this week"),
        "{polled}"
    );
}
