//! A gateway serving TLS, with no `public_url`, is its `https://` address: a client
//! assertion naming `https://<addr>/oauth2/token` (what an agent pointed at the gateway
//! writes) is accepted, and one naming the `http://` address is not.
#![allow(clippy::unwrap_used)]

use std::process::Command;

use serde_json::Value;
use writ_testkit::{OAuthClient, TestCertificates, TestGateway};

const CEILING: &str = r#"[{"type":"writ:llm","upstream":"demo","models":["gpt-4o-mini"]}]"#;

/// POSTs a client_credentials request with `assertion` over HTTPS, trusting the test CA.
fn token(gw: &TestGateway, certs: &TestCertificates, assertion: &str) -> Value {
    let out = Command::new("curl")
        .args(["-sS", "--cacert"])
        .arg(&certs.ca)
        .arg(gw.url("/oauth2/token"))
        .args(["--data-urlencode", "grant_type=client_credentials"])
        .args([
            "--data-urlencode",
            "client_assertion_type=urn:ietf:params:oauth:client-assertion-type:jwt-bearer",
        ])
        .arg("--data-urlencode")
        .arg(format!("client_assertion={assertion}"))
        .arg("--data-urlencode")
        .arg(format!("authorization_details={CEILING}"))
        .output()
        .unwrap();
    serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|_| panic!("{}", String::from_utf8_lossy(&out.stderr)))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn assertions_name_the_https_address_of_a_tls_gateway() {
    let certs = TestCertificates::generate();
    let gw = TestGateway::start_tls(
        "[upstreams.demo]\nkind = \"openai\"\nbase_url = \"https://api.openai.com\"\napi_key = \"sk-x\"\n",
        &certs,
    )
    .await;
    assert!(gw.url("").starts_with("https://"));
    let (client, _) = OAuthClient::register(&gw, "agent", CEILING, false).await;
    let minted = token(&gw, &certs, &client.assertion(&gw, "j1"));
    assert!(minted["access_token"].is_string(), "{minted}");

    let mut claims = client.claims(&gw, "j2");
    let http_aud = gw.url("/oauth2/token").replacen("https://", "http://", 1);
    claims["aud"] = serde_json::json!(http_aud);
    let header = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::EdDSA);
    let refused = token(&gw, &certs, &client.assertion_with(&header, &claims));
    assert_eq!(refused["error"], "invalid_client", "{refused}");
}
