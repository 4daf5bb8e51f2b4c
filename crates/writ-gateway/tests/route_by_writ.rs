//! Routing without a header when the writ decides: with two OpenAI-compatible upstreams,
//! a request without `x-writ-upstream` goes to the one its writ's grants name; a writ
//! naming both is refused with the choices named; and the header cannot take a writ to an
//! upstream its grants do not allow.
#![allow(clippy::unwrap_used)]

use reqwest::StatusCode;
use serde_json::{Value, json};
use writ_testkit::{MockUpstream, TestGateway};

const KEY_A: &str = "sk-upstream-route-a-0123456789";
const KEY_B: &str = "sk-upstream-route-b-0123456789";
const ONLY_B: &str = r#"{"type":"writ:llm","upstream":"beta"}"#;
const BOTH: &str =
    r#"[{"type":"writ:llm","upstream":"alpha"},{"type":"writ:llm","upstream":"beta"}]"#;

async fn two_upstreams() -> (MockUpstream, MockUpstream, TestGateway) {
    let a = MockUpstream::start(KEY_A).await;
    let b = MockUpstream::start(KEY_B).await;
    let gw = TestGateway::start(&format!(
        "[upstreams.alpha]\nkind = \"openai\"\nbase_url = \"{}\"\nallow_private_network = true\napi_key = \"{KEY_A}\"\n\
         [upstreams.beta]\nkind = \"openai\"\nbase_url = \"{}\"\nallow_private_network = true\napi_key = \"{KEY_B}\"\n",
        a.base_url(),
        b.base_url()
    ))
    .await;
    (a, b, gw)
}

async fn chat(gw: &TestGateway, writ: &str, header: Option<&str>) -> (StatusCode, Value) {
    let mut req = reqwest::Client::new()
        .post(gw.url("/v1/chat/completions"))
        .bearer_auth(writ)
        .json(&json!({"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}]}));
    if let Some(name) = header {
        req = req.header("x-writ-upstream", name);
    }
    let resp = req.send().await.unwrap();
    (resp.status(), resp.json().await.unwrap())
}

#[tokio::test]
async fn a_writ_naming_one_upstream_is_routed_there_without_a_header() {
    let (a, b, gw) = two_upstreams().await;
    let writ = gw.mint_as(BOTH, ONLY_B, 30);
    let (status, v) = chat(&gw, &writ, None).await;
    assert_eq!(status, StatusCode::OK, "{v}");
    assert_eq!(a.requests().len(), 0);
    assert_eq!(b.requests().len(), 1);
    assert_eq!(
        b.requests()[0].headers["authorization"],
        format!("Bearer {KEY_B}")
    );
}

#[tokio::test]
async fn a_writ_naming_both_must_say_which_and_is_told_the_choices() {
    let (a, b, gw) = two_upstreams().await;
    let writ = gw.mint_as(BOTH, BOTH, 30);
    let (status, v) = chat(&gw, &writ, None).await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{v}");
    assert_eq!(v["error"]["code"], "no_upstream");
    let message = v["error"]["message"].as_str().unwrap();
    assert!(
        message.contains("x-writ-upstream") && message.contains("(alpha, beta)"),
        "{message}"
    );
    // Naming one in the header works.
    let (status, v) = chat(&gw, &writ, Some("alpha")).await;
    assert_eq!(status, StatusCode::OK, "{v}");
    assert_eq!((a.requests().len(), b.requests().len()), (1, 0));
}

#[tokio::test]
async fn the_header_cannot_take_a_writ_where_its_grants_do_not_go() {
    let (a, b, gw) = two_upstreams().await;
    let writ = gw.mint_as(BOTH, ONLY_B, 30);
    let (status, v) = chat(&gw, &writ, Some("alpha")).await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{v}");
    assert_eq!(v["error"]["code"], "grant_denied");
    assert_eq!((a.requests().len(), b.requests().len()), (0, 0));
    // A writ whose grants name neither upstream is refused before anything is sent.
    let other = r#"{"type":"writ:llm","upstream":"gamma"}"#;
    let writ = gw.mint_as(other, other, 30);
    let (status, v) = chat(&gw, &writ, None).await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{v}");
    assert!(
        v["error"]["message"]
            .as_str()
            .unwrap()
            .contains("name none of them"),
        "{v}"
    );
    assert_eq!((a.requests().len(), b.requests().len()), (0, 0));
}
