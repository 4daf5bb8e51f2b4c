//! Revocation does what it says: revoking the delegate of a token exchange cuts off the
//! writs delegated to it and refuses it new ones; delegated requests are audited under the
//! acting agent; revocations of nothing are refused unless forced; the list says when, by
//! whom and why; agent and tenant revocations can be lifted, writ revocations cannot; and
//! all of it holds across instances sharing Redis.
#![allow(clippy::unwrap_used)]

use std::time::Duration;

use reqwest::StatusCode;
use serde_json::{Value, json};
use writ_testkit::{MockUpstream, OAuthClient, OwnRedis, TestGateway};

const KEY: &str = "sk-upstream-delegation-revocation";
const CEILING: &str = r#"[{"type":"writ:llm","upstream":"demo"}]"#;
const ASK: &str = r#"[{"type":"writ:llm","upstream":"demo","models":["gpt-4o-mini"]}]"#;
const ADMIN: &str = r#"{"type":"writ:admin"}"#;
const EXCHANGE: &str = "urn:ietf:params:oauth:grant-type:token-exchange";
const ACCESS: &str = "urn:ietf:params:oauth:token-type:access_token";
const JWT: &str = "urn:ietf:params:oauth:token-type:jwt";
const JWT_BEARER: &str = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer";

fn config(upstream: &MockUpstream, extra: &str) -> String {
    format!(
        "{extra}\n[upstreams.demo]\nkind = \"openai\"\nbase_url = \"{}\"\nallow_private_network = true\napi_key = \"{KEY}\"\n",
        upstream.base_url()
    )
}

async fn token(gw: &TestGateway, form: &[(&str, &str)]) -> (StatusCode, Value) {
    let resp = reqwest::Client::new()
        .post(gw.url("/oauth2/token"))
        .form(form)
        .send()
        .await
        .unwrap();
    let status = resp.status();
    (status, resp.json().await.unwrap())
}

async fn mint(gw: &TestGateway, client: &OAuthClient, jti: &str) -> (StatusCode, Value) {
    token(
        gw,
        &[
            ("grant_type", "client_credentials"),
            ("client_assertion_type", JWT_BEARER),
            ("client_assertion", &client.assertion(gw, jti)),
            ("authorization_details", ASK),
        ],
    )
    .await
}

async fn exchange(
    gw: &TestGateway,
    subject: &str,
    actor: &OAuthClient,
    jti: &str,
) -> (StatusCode, Value) {
    token(
        gw,
        &[
            ("grant_type", EXCHANGE),
            ("subject_token", subject),
            ("subject_token_type", ACCESS),
            ("actor_token", &actor.assertion(gw, jti)),
            ("actor_token_type", JWT),
            ("authorization_details", ASK),
        ],
    )
    .await
}

async fn chat(gw: &TestGateway, writ: &str) -> (StatusCode, Value) {
    let resp = reqwest::Client::new()
        .post(gw.url("/v1/chat/completions"))
        .bearer_auth(writ)
        .json(&json!({"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}]}))
        .send()
        .await
        .unwrap();
    let status = resp.status();
    (status, resp.json().await.unwrap())
}

async fn admin(
    gw: &TestGateway,
    writ: &str,
    path: &str,
    body: Option<Value>,
) -> (StatusCode, Value) {
    let client = reqwest::Client::new();
    let req = match body {
        Some(body) => client.post(gw.url(path)).json(&body),
        None => client.get(gw.url(path)),
    };
    let resp = req.bearer_auth(writ).send().await.unwrap();
    let status = resp.status();
    let text = resp.text().await.unwrap();
    (status, serde_json::from_str(&text).unwrap())
}

async fn records(gw: &TestGateway) -> Vec<Value> {
    gw.gateway().audit_checkpoint().await;
    gw.gateway()
        .audit_export()
        .await
        .unwrap()
        .iter()
        .filter(|l| !l.starts_with("{\"checkpoint\""))
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

fn token_id(gw: &TestGateway, writ: &str) -> String {
    writ_token::decode(writ)
        .unwrap()
        .verify(&gw.keys().trusted)
        .unwrap()
        .claims()
        .token_id
        .clone()
}

#[tokio::test]
async fn revoking_the_delegate_cuts_off_its_delegated_writs_until_lifted() {
    let upstream = MockUpstream::start(KEY).await;
    let gw = TestGateway::start(&config(&upstream, "")).await;
    let (planner, _) = OAuthClient::register(&gw, "planner", CEILING, false).await;
    let (researcher, _) = OAuthClient::register(&gw, "researcher", CEILING, true).await;
    let (status, v) = mint(&gw, &planner, "p1").await;
    assert_eq!(status, StatusCode::OK, "{v}");
    let subject = v["access_token"].as_str().unwrap().to_string();
    let (status, v) = exchange(&gw, &subject, &researcher, "r1").await;
    assert_eq!(status, StatusCode::OK, "{v}");
    let delegated = v["access_token"].as_str().unwrap().to_string();
    assert_eq!(chat(&gw, &delegated).await.0, StatusCode::OK);

    // Audited under the acting agent, with the chain.
    let pseudonym = {
        let all = records(&gw).await;
        let requests: Vec<&Value> = all
            .iter()
            .filter(|r| r["kind"].as_str().unwrap().starts_with("request"))
            .collect();
        assert!(!requests.is_empty());
        for r in &requests {
            assert_eq!(r["agent"], "researcher", "{r}");
            assert_eq!(
                r["detail"]["delegation"],
                json!(["planner", "researcher"]),
                "{r}"
            );
        }
        requests[0]["writ"].as_str().unwrap().to_string()
    };
    assert_eq!(chat(&gw, &subject).await.0, StatusCode::OK);
    let own = records(&gw).await;
    let own = own.last().unwrap();
    assert_eq!(own["agent"], "planner", "the delegator's own writ: {own}");
    assert!(own["detail"].get("delegation").is_none(), "{own}");

    // Revoke the delegate, saying why.
    let root = gw.mint_as(ADMIN, ADMIN, 30);
    let (status, v) = admin(
        &gw,
        &root,
        "/admin/v1/revocations",
        Some(json!({"kind": "agent", "tenant": "default", "agent": "researcher", "reason": "prompt-injected in run 42"})),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{v}");
    let id = v["revoked"]["id"].as_i64().unwrap();
    assert_eq!(v["revoked"]["reason"], "prompt-injected in run 42");
    assert_eq!(
        v["revoked"]["revoked_by"], "demo",
        "the admin writ's subject"
    );

    let (status, v) = chat(&gw, &delegated).await;
    assert_eq!(
        (status, v["error"]["code"].as_str()),
        (StatusCode::UNAUTHORIZED, Some("revoked_writ"))
    );
    assert_eq!(
        chat(&gw, &subject).await.0,
        StatusCode::OK,
        "the delegator keeps its own"
    );
    // No new writ for the revoked agent, by either grant type.
    for (status, v) in [
        mint(&gw, &researcher, "r2").await,
        exchange(&gw, &subject, &researcher, "r3").await,
    ] {
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{v}");
        assert_eq!(v["error"], "invalid_client");
        assert_eq!(v["error_description"], "agent revoked");
        assert!(v.get("access_token").is_none());
    }
    assert_eq!(mint(&gw, &planner, "p2").await.0, StatusCode::OK);
    let refusals: Vec<Value> = records(&gw)
        .await
        .into_iter()
        .filter(|r| r["kind"] == "request_denied" && r["decision"]["check"] == "agent_revoked")
        .collect();
    assert_eq!(refusals.len(), 2, "each refusal is recorded");
    assert_eq!(refusals[0]["agent"], "researcher");
    assert_eq!(refusals[1]["operation"], "token_exchange");

    // Listed with when, by whom and why.
    let (status, v) = admin(&gw, &root, "/admin/v1/revocations", None).await;
    assert_eq!(status, StatusCode::OK);
    let listed = &v["revocations"][0];
    assert_eq!(listed["id"], id);
    assert_eq!(listed["agent"], "researcher");
    assert_eq!(listed["revoked_by"], "demo");
    assert_eq!(listed["reason"], "prompt-injected in run 42");
    assert!(humantime::parse_rfc3339(listed["revoked_at"].as_str().unwrap()).is_ok());
    assert_eq!(
        (listed["in_force"].as_bool(), listed["liftable"].as_bool()),
        (Some(true), Some(true))
    );

    // Lifted: the unexpired delegated writ works again and the agent gets writs again.
    let path = format!("/admin/v1/revocations/{id}/lift");
    let (status, v) = admin(&gw, &root, &path, Some(json!({}))).await;
    assert_eq!(status, StatusCode::OK, "{v}");
    assert_eq!(v["lifted"]["in_force"], false);
    assert_eq!(v["lifted"]["lifted_by"], "demo");
    assert_eq!(chat(&gw, &delegated).await.0, StatusCode::OK);
    assert_eq!(mint(&gw, &researcher, "r4").await.0, StatusCode::OK);
    let (status, v) = admin(&gw, &root, &path, Some(json!({}))).await;
    assert_eq!(
        (status, v["error"]["code"].as_str()),
        (StatusCode::CONFLICT, Some("cannot_lift"))
    );
    // Both are in the audit log, under the operator.
    let all = records(&gw).await;
    let ops: Vec<(&str, &str)> = all
        .iter()
        .filter(|r| r["kind"] == "revocation")
        .map(|r| {
            (
                r["operation"].as_str().unwrap(),
                r["agent"].as_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(ops, [("revoke", "demo"), ("lift_revocation", "demo")]);
    assert!(all.iter().any(|r| r["writ"] == pseudonym));
}

#[tokio::test]
async fn a_revoked_tenant_gets_no_new_writs() {
    let upstream = MockUpstream::start(KEY).await;
    let gw = TestGateway::start(&config(&upstream, "")).await;
    let (planner, _) = OAuthClient::register(&gw, "planner", CEILING, false).await;
    let root = gw.mint_as(ADMIN, ADMIN, 30);
    let (status, _) = admin(
        &gw,
        &root,
        "/admin/v1/revocations",
        Some(json!({"kind": "tenant", "tenant": "default"})),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED);
    let (status, v) = mint(&gw, &planner, "p1").await;
    assert_eq!(
        (status, v["error_description"].as_str()),
        (StatusCode::UNAUTHORIZED, Some("agent revoked"))
    );
}

#[tokio::test]
async fn revocations_of_nothing_are_refused_unless_forced() {
    let upstream = MockUpstream::start(KEY).await;
    let gw = TestGateway::start(&config(&upstream, "")).await;
    let root = gw.mint_as(ADMIN, ADMIN, 30);
    let post = |body: Value| admin(&gw, &root, "/admin/v1/revocations", Some(body));
    let live = gw.mint("demo", CEILING, 30);
    let live_id = token_id(&gw, &live);
    // Issued an hour from now by the gateway's clock: no such writ exists yet.
    let future = writ_testkit::mint_with(
        &gw.keys().signing,
        &writ_token::parse_grants(CEILING).unwrap(),
        &writ_token::parse_grants(CEILING).unwrap(),
        30,
        writ_token::Clock::now(gw.clock()) + Duration::from_secs(3600),
    );
    let future_id = token_id(&gw, &future);
    for (body, says) in [
        (
            json!({"kind": "agent", "tenant": "default", "agent": "nosuchagent"}),
            "no agent nosuchagent in tenant default",
        ),
        (
            json!({"kind": "tenant", "tenant": "nosuchtenant"}),
            "no tenant nosuchtenant",
        ),
        (
            json!({"kind": "issued_before", "tenant": "nosuchtenant", "before": 1}),
            "no tenant nosuchtenant",
        ),
        (
            json!({"kind": "token_id", "token_id": "not-a-token-id"}),
            "not a token id",
        ),
        (
            json!({"kind": "token_id", "token_id": future_id}),
            "in the future",
        ),
    ] {
        let (status, v) = post(body.clone()).await;
        assert_eq!(status, StatusCode::NOT_FOUND, "{body}: {v}");
        assert_eq!(v["error"]["code"], "nothing_to_revoke");
        let message = v["error"]["message"].as_str().unwrap().to_lowercase();
        assert!(
            message.contains(says) && message.contains("\"force\": true"),
            "{message}"
        );
    }
    // A writ that has expired has nothing left to revoke.
    let expiring = gw.mint("demo", CEILING, 5);
    let expiring_id = token_id(&gw, &expiring);
    gw.clock().advance(Duration::from_secs(40));
    let root = gw.mint_as(ADMIN, ADMIN, 30);
    let post = |body: Value| admin(&gw, &root, "/admin/v1/revocations", Some(body));
    let (status, v) = post(json!({"kind": "token_id", "token_id": expiring_id})).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert!(
        v["error"]["message"].as_str().unwrap().contains("expired"),
        "{v}"
    );
    let (status, v) = admin(&gw, &root, "/admin/v1/revocations", None).await;
    assert_eq!(
        (status, v["revocations"].clone()),
        (StatusCode::OK, json!([])),
        "nothing recorded"
    );

    // Forced, it is recorded; a live writ's id needs no force.
    let (status, v) =
        post(json!({"kind": "agent", "tenant": "default", "agent": "nosuchagent", "force": true}))
            .await;
    assert_eq!(status, StatusCode::CREATED, "{v}");
    let live = gw.mint("demo", CEILING, 30);
    let live_id_now = token_id(&gw, &live);
    let (status, v) =
        post(json!({"kind": "token_id", "token_id": live_id_now, "reason": "leaked"})).await;
    assert_eq!(status, StatusCode::CREATED, "{v}");
    assert_eq!(chat(&gw, &live).await.0, StatusCode::UNAUTHORIZED);
    // Token ids are shown as their audit pseudonym, never raw.
    let token_revocation = v["revoked"].clone();
    assert!(
        token_revocation.get("token_id").is_none(),
        "{token_revocation}"
    );
    assert_eq!(token_revocation["writ"].as_str().unwrap().len(), 32);
    assert!(!v.to_string().contains(&live_id_now));
    let (_, list) = admin(&gw, &root, "/admin/v1/revocations", None).await;
    assert!(!list.to_string().contains(&live_id_now) && !list.to_string().contains(&live_id));
    // Writ revocations are permanent.
    let path = format!("/admin/v1/revocations/{}/lift", token_revocation["id"]);
    let (status, v) = admin(&gw, &root, &path, Some(json!({}))).await;
    assert_eq!(
        (status, v["error"]["code"].as_str()),
        (StatusCode::CONFLICT, Some("cannot_lift"))
    );
    assert!(
        v["error"]["message"]
            .as_str()
            .unwrap()
            .contains("permanent")
    );
    assert_eq!(chat(&gw, &live).await.0, StatusCode::UNAUTHORIZED);
    let (status, v) = admin(
        &gw,
        &root,
        "/admin/v1/revocations/999/lift",
        Some(json!({})),
    )
    .await;
    assert_eq!(
        (status, v["error"]["code"].as_str()),
        (StatusCode::NOT_FOUND, Some("unknown_revocation"))
    );
    // A tenant admin cannot learn which ids exist, nor lift another tenant's.
    let other = gw.mint_as(
        r#"{"type":"writ:admin","tenant":"other"}"#,
        r#"{"type":"writ:admin","tenant":"other"}"#,
        30,
    );
    let (status, _) = admin(
        &gw,
        &other,
        "/admin/v1/revocations/999/lift",
        Some(json!({})),
    )
    .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    // Bad extras are refused.
    for body in [
        json!({"kind": "tenant", "tenant": "default", "force": "yes"}),
        json!({"kind": "tenant", "tenant": "default", "reason": "two\nlines"}),
        json!({"kind": "tenant", "tenant": "default", "reason": "x".repeat(501)}),
    ] {
        assert_eq!(post(body).await.0, StatusCode::BAD_REQUEST);
    }
}

#[tokio::test]
async fn a_lift_on_one_instance_reaches_the_others() {
    let upstream = MockUpstream::start(KEY).await;
    let text = config(
        &upstream,
        "[limiter]\nbackend = \"redis\"\nredis_url = \"redis://127.0.0.1:6379\"\n",
    );
    let a = TestGateway::start(&text).await;
    let b = TestGateway::start(&text).await;
    // A tenant of this run only, so other runs' shared revocations do not touch it.
    let tenant = format!("t{:016x}", rand::random::<u64>());
    a.gateway()
        .store()
        .put_agent(&writ_store::Agent {
            tenant: tenant.clone(),
            name: "demo".into(),
            ceiling: writ_token::parse_grants(CEILING).unwrap(),
            max_ttl: Duration::from_secs(30),
            credentials: Default::default(),
        })
        .await
        .unwrap();
    let writ = b.mint_in(&tenant, CEILING, CEILING, 30);
    assert_eq!(chat(&b, &writ).await.0, StatusCode::OK);
    let root = a.mint_as(ADMIN, ADMIN, 30);
    let (status, v) = admin(
        &a,
        &root,
        "/admin/v1/revocations",
        Some(json!({"kind": "agent", "tenant": tenant, "agent": "demo"})),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{v}");
    assert_eq!(v["other_instances"], "shared");
    let id = v["revoked"]["id"].as_i64().unwrap();
    let until = |want: StatusCode| {
        let (b, writ) = (&b, &writ);
        async move {
            for _ in 0..1000 {
                if chat(b, writ).await.0 == want {
                    return;
                }
            }
            panic!("instance b never answered {want}");
        }
    };
    until(StatusCode::UNAUTHORIZED).await;
    let (status, v) = admin(
        &a,
        &root,
        &format!("/admin/v1/revocations/{id}/lift"),
        Some(json!({})),
    )
    .await;
    assert_eq!(
        (status, v["other_instances"].as_str()),
        (StatusCode::OK, Some("shared")),
        "{v}"
    );
    until(StatusCode::OK).await;
}

#[tokio::test]
async fn a_revocation_that_cannot_be_shared_says_so() {
    let upstream = MockUpstream::start(KEY).await;
    let redis = OwnRedis::start();
    let gw = TestGateway::start(&config(
        &upstream,
        &format!(
            "[limiter]\nbackend = \"redis\"\nredis_url = \"redis://127.0.0.1:{}\"\n",
            redis.port()
        ),
    ))
    .await;
    let (researcher, secret) = OAuthClient::register(&gw, "researcher", CEILING, false).await;
    drop(redis);
    let root = gw.mint_as(ADMIN, ADMIN, 30);
    let (status, v) = admin(
        &gw,
        &root,
        "/admin/v1/revocations",
        Some(json!({"kind": "agent", "tenant": "default", "agent": "researcher"})),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{v}");
    assert_eq!(v["other_instances"], "failed", "{v}");
    // In force here all the same. (Authenticated by secret: an assertion's `jti` cannot be
    // checked for replay while Redis is gone, and that refuses it first, fail closed.)
    let by_secret = [
        ("grant_type", "client_credentials"),
        ("client_id", "researcher"),
        ("client_secret", secret.as_str()),
        ("authorization_details", ASK),
    ];
    let (status, v) = token(&gw, &by_secret).await;
    assert_eq!(
        (status, v["error_description"].as_str()),
        (StatusCode::UNAUTHORIZED, Some("agent revoked"))
    );
    let (status, v) = mint(&gw, &researcher, "r1").await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{v}");
    assert_eq!(v["error"], "temporarily_unavailable");
}
