//! Every failed client authentication at the token endpoint is one audit record: who
//! claimed to be whom, from which address (pseudonym), and why it failed — never the
//! secret or assertion that was tried.
#![allow(clippy::unwrap_used)]

use reqwest::StatusCode;
use serde_json::Value;
use writ_testkit::{MockUpstream, OAuthClient, TestGateway};

const KEY: &str = "sk-upstream-failed-auth-audit";
const CEILING: &str = r#"[{"type":"writ:llm","upstream":"demo","models":["gpt-4o-mini"]}]"#;

#[tokio::test]
async fn each_failed_client_authentication_is_one_record() {
    let upstream = MockUpstream::start(KEY).await;
    let gw = TestGateway::start(&format!(
        "[upstreams.demo]\nkind = \"openai\"\nbase_url = \"{}\"\nallow_private_network = true\napi_key = \"{KEY}\"\n",
        upstream.base_url()
    ))
    .await;
    let (_, secret) = OAuthClient::register(&gw, "planner", CEILING, false).await;
    let tried = "wcs_not-the-right-secret-0123456789";
    let http = reqwest::Client::new();
    for (id, pw) in [
        ("planner", tried),
        ("nobody", tried),
        ("planner", secret.as_str()),
    ] {
        let resp = http
            .post(gw.url("/oauth2/token"))
            .basic_auth(id, Some(pw))
            .form(&[
                ("grant_type", "client_credentials"),
                ("authorization_details", CEILING),
            ])
            .send()
            .await
            .unwrap();
        let expect = if pw == secret {
            StatusCode::OK
        } else {
            StatusCode::UNAUTHORIZED
        };
        assert_eq!(resp.status(), expect);
    }
    gw.gateway().audit_checkpoint().await;
    let lines = gw.gateway().audit_export().await.unwrap();
    let denied: Vec<Value> = lines
        .iter()
        .filter(|l| l.contains("\"request_denied\""))
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(denied.len(), 2, "{denied:?}");
    let claimed: Vec<&str> = denied
        .iter()
        .map(|r| r["detail"]["claimed_client"].as_str().unwrap())
        .collect();
    assert_eq!(claimed, ["planner", "nobody"]);
    for r in &denied {
        assert_eq!(r["operation"], "token");
        assert_eq!(r["status"], 401);
        assert_eq!(r["decision"]["code"], "invalid_client");
        assert!(
            r.get("agent").is_none(),
            "an unverified id is not an agent: {r}"
        );
        assert!(r["client"].is_string(), "the address, as a pseudonym: {r}");
    }
    assert!(
        lines.iter().any(|l| l.contains("\"writ_minted\"")),
        "the success is the mint record"
    );
    for line in &lines {
        assert!(!line.contains(tried) && !line.contains(&secret), "{line}");
    }
}
