//! The admin API's tenants, agents, upstreams, credentials, policies and limits refuse bad
//! input with a clear 4xx JSON error and write nothing when they do: duplicate names,
//! unknown references, oversized fields, invalid and private upstream URLs, a tenant
//! admin on another tenant's path. Secrets never come back.
#![allow(clippy::unwrap_used)]

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use writ_testkit::{MockUpstream, TestGateway};

const KEY: &str = "sk-upstream-admin-resources";
const ADMIN: &str = r#"{"type":"writ:admin"}"#;
const ACME_ADMIN: &str = r#"{"type":"writ:admin","tenant":"acme"}"#;
const CEILING: &str = r#"[{"type":"writ:llm","upstream":"demo"}]"#;

struct Api {
    gw: TestGateway,
    upstream: MockUpstream,
    admin: String,
}

impl Api {
    async fn start() -> Self {
        let upstream = MockUpstream::start(KEY).await;
        let config = format!(
            "[upstreams.demo]\nkind = \"openai\"\nbase_url = \"{}\"\nallow_private_network = true\napi_key = \"{KEY}\"\n",
            upstream.base_url()
        );
        let gw = TestGateway::start(&config).await;
        let admin = gw.mint_as(ADMIN, ADMIN, 30);
        let api = Api {
            gw,
            upstream,
            admin,
        };
        for tenant in ["acme", "globex"] {
            let (status, body) = api
                .call(
                    Method::POST,
                    "/admin/v1/tenants",
                    Some(json!({"name": tenant})),
                )
                .await;
            assert_eq!(status, StatusCode::CREATED, "{body}");
        }
        api
    }

    async fn call_as(
        &self,
        writ: &str,
        method: Method,
        path: &str,
        body: Option<Value>,
    ) -> (StatusCode, Value) {
        self.gw.call_json(writ, method, path, body).await
    }

    async fn call(&self, method: Method, path: &str, body: Option<Value>) -> (StatusCode, Value) {
        self.call_as(&self.admin, method, path, body).await
    }

    /// `GET path` as the admin of every tenant, which must succeed.
    async fn list(&self, path: &str) -> Value {
        let (status, body) = self.call(Method::GET, path, None).await;
        assert_eq!(status, StatusCode::OK, "{path}: {body}");
        body
    }
}

/// A refusal: the status, an OpenAI-shaped body with `code`, and a message.
fn refused(answer: &(StatusCode, Value), status: StatusCode, code: &str) {
    let (got, body) = answer;
    assert_eq!(*got, status, "{body}");
    assert_eq!(body["error"]["code"], code, "{body}");
    assert!(
        body["error"]["message"]
            .as_str()
            .is_some_and(|m| m.len() > 10),
        "{body}"
    );
}

fn agent(name: &str) -> Value {
    json!({"name": name, "ceiling": serde_json::from_str::<Value>(CEILING).unwrap(), "generate_secret": true})
}

#[tokio::test]
async fn duplicate_names_conflict_and_change_nothing() {
    let api = Api::start().await;
    let before = api.list("/admin/v1/tenants").await;
    let again = api
        .call(
            Method::POST,
            "/admin/v1/tenants",
            Some(json!({"name": "acme", "display_name": "Another"})),
        )
        .await;
    refused(&again, StatusCode::CONFLICT, "conflict");
    assert_eq!(api.list("/admin/v1/tenants").await, before);

    let path = "/admin/v1/tenants/acme/agents";
    let (status, first) = api.call(Method::POST, path, Some(agent("planner"))).await;
    assert_eq!(status, StatusCode::CREATED, "{first}");
    let agents = api.list(path).await;
    refused(
        &api.call(Method::POST, path, Some(agent("planner"))).await,
        StatusCode::CONFLICT,
        "conflict",
    );
    assert_eq!(api.list(path).await, agents);

    // A tenant's upstream may not take a shared (here: declared) one's name.
    let upstreams = api.list("/admin/v1/tenants/acme/upstreams").await;
    let clash = api
        .call(
            Method::POST,
            "/admin/v1/tenants/acme/upstreams",
            Some(json!({"name": "demo", "settings": {"kind": "openai"}})),
        )
        .await;
    refused(&clash, StatusCode::CONFLICT, "conflict");
    assert_eq!(
        api.list("/admin/v1/tenants/acme/upstreams").await,
        upstreams
    );
}

#[tokio::test]
async fn unknown_references_are_not_found() {
    let api = Api::start().await;
    for (method, path, body) in [
        (Method::GET, "/admin/v1/tenants/nobody", None),
        (Method::GET, "/admin/v1/tenants/nobody/agents", None),
        (
            Method::POST,
            "/admin/v1/tenants/nobody/agents",
            Some(agent("a")),
        ),
        (Method::GET, "/admin/v1/tenants/acme/agents/ghost", None),
        (
            Method::PUT,
            "/admin/v1/tenants/acme/agents/ghost",
            Some(json!({"max_ttl_secs": 10})),
        ),
        (Method::DELETE, "/admin/v1/tenants/acme/agents/ghost", None),
        (Method::GET, "/admin/v1/tenants/acme/policies/ghost", None),
        (Method::DELETE, "/admin/v1/tenants/acme/limits/ghost", None),
        (Method::GET, "/admin/v1/tenants/acme/upstreams/ghost", None),
        (Method::GET, "/admin/v1/upstreams/ghost", None),
        (
            Method::POST,
            "/admin/v1/tenants/acme/credentials/ghost",
            Some(json!({"secret": "sk-never-stored"})),
        ),
        (
            Method::POST,
            "/admin/v1/tenants/acme/credentials/demo/7/activate",
            None,
        ),
    ] {
        let answer = api.call(method.clone(), path, body).await;
        refused(&answer, StatusCode::NOT_FOUND, "not_found");
    }
    // Nothing was created on the way.
    assert_eq!(
        api.list("/admin/v1/tenants/acme/credentials/demo").await["versions"],
        json!([])
    );
    let tenants = api.list("/admin/v1/tenants").await;
    let names: Vec<&str> = tenants["tenants"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|t| t["name"].as_str())
        .collect();
    assert!(!names.contains(&"nobody"), "{tenants}");
}

#[tokio::test]
async fn oversized_fields_are_refused() {
    let api = Api::start().await;
    let path = "/admin/v1/tenants/acme/agents";
    let huge = "x".repeat(70 * 1024);
    refused(
        &api.call(Method::POST, path, Some(json!({"name": huge})))
            .await,
        StatusCode::PAYLOAD_TOO_LARGE,
        "body_too_large",
    );
    refused(
        &api.call(Method::POST, path, Some(agent(&"a".repeat(65))))
            .await,
        StatusCode::BAD_REQUEST,
        "invalid_request",
    );
    refused(
        &api.call(
            Method::POST,
            "/admin/v1/tenants",
            Some(json!({"name": "initech", "display_name": "d".repeat(300)})),
        )
        .await,
        StatusCode::BAD_REQUEST,
        "invalid_request",
    );
    refused(
        &api.call(
            Method::POST,
            "/admin/v1/tenants/acme/credentials/demo",
            Some(json!({"secret": "s".repeat(17 * 1024)})),
        )
        .await,
        StatusCode::BAD_REQUEST,
        "invalid_request",
    );
    refused(
        &api.call(
            Method::PUT,
            "/admin/v1/tenants/acme/policies/big",
            Some(json!({"datalog": format!("check if {}", "true or ".repeat(3000))})),
        )
        .await,
        StatusCode::BAD_REQUEST,
        "invalid_request",
    );
    assert_eq!(api.list(path).await["agents"], json!([]));
    assert_eq!(
        api.list("/admin/v1/tenants/acme/credentials/demo").await["versions"],
        json!([])
    );
    assert_eq!(
        api.list("/admin/v1/tenants/acme/policies").await["policies"],
        json!([])
    );
}

#[tokio::test]
async fn invalid_and_private_upstream_urls_are_refused() {
    let api = Api::start().await;
    let path = "/admin/v1/tenants/acme/upstreams";
    let before = api.list(path).await;
    for base_url in [
        "not a url",
        "ftp://example.com/",
        "http://169.254.169.254/latest",
        "http://10.0.0.7/v1",
        "http://127.0.0.1:9/v1",
        "http://[::1]/v1",
        "http://0x7f000001/v1",
    ] {
        let answer = api
            .call(
                Method::POST,
                path,
                Some(json!({"name": "own", "settings": {"kind": "openai", "base_url": base_url}})),
            )
            .await;
        refused(&answer, StatusCode::BAD_REQUEST, "invalid_request");
        let message = answer.1["error"]["message"].as_str().unwrap();
        assert!(message.contains("base_url"), "{base_url}: {message}");
    }
    // A secret in settings is refused: credentials go to the vault.
    let answer = api
        .call(
            Method::POST,
            path,
            Some(
                json!({"name": "own", "settings": {"kind": "openai", "api_key": "sk-in-settings"}}),
            ),
        )
        .await;
    refused(&answer, StatusCode::BAD_REQUEST, "invalid_request");
    assert!(!answer.1.to_string().contains("sk-in-settings"));
    assert_eq!(api.list(path).await, before);
}

#[tokio::test]
async fn a_tenant_admin_cannot_touch_another_tenant() {
    let api = Api::start().await;
    let acme = api.gw.mint_as(ACME_ADMIN, ACME_ADMIN, 30);
    let globex_agents = api.list("/admin/v1/tenants/globex/agents").await;
    for (method, path, body) in [
        (Method::GET, "/admin/v1/tenants/globex", None),
        (Method::GET, "/admin/v1/tenants/globex/agents", None),
        (
            Method::POST,
            "/admin/v1/tenants/globex/agents",
            Some(agent("intruder")),
        ),
        (
            Method::POST,
            "/admin/v1/tenants/globex/credentials/demo",
            Some(json!({"secret": "sk-intruder"})),
        ),
        (
            Method::PUT,
            "/admin/v1/tenants/globex/policies/p",
            Some(json!({"datalog": "check if true"})),
        ),
        (Method::GET, "/admin/v1/tenants/globex/upstreams", None),
        // Routes of every tenant.
        (Method::GET, "/admin/v1/tenants", None),
        (
            Method::POST,
            "/admin/v1/tenants",
            Some(json!({"name": "mine"})),
        ),
        (Method::DELETE, "/admin/v1/tenants/globex", None),
        (Method::POST, "/admin/v1/vault/rewrap", None),
    ] {
        let (status, body) = api.call_as(&acme, method, path, body).await;
        assert_eq!(status, StatusCode::FORBIDDEN, "{path}: {body}");
    }
    assert_eq!(
        api.list("/admin/v1/tenants/globex/agents").await,
        globex_agents
    );
    assert_eq!(
        api.list("/admin/v1/tenants/globex/credentials/demo").await["versions"],
        json!([])
    );
    // Nor give an agent of its own a wider admin grant than its own.
    for wider in [
        json!({"type": "writ:admin"}),
        json!({"type": "writ:admin", "tenant": "globex"}),
    ] {
        let answer = api
            .call_as(
                &acme,
                Method::POST,
                "/admin/v1/tenants/acme/agents",
                Some(json!({"name": "escalate", "ceiling": [wider], "generate_secret": true})),
            )
            .await;
        refused(&answer, StatusCode::BAD_REQUEST, "invalid_request");
    }
    assert_eq!(
        api.list("/admin/v1/tenants/acme/agents").await["agents"],
        json!([])
    );
    // Its own tenant it may manage.
    let (status, body) = api
        .call_as(
            &acme,
            Method::POST,
            "/admin/v1/tenants/acme/agents",
            Some(agent("mine")),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
}

#[tokio::test]
async fn credentials_are_write_only_and_rotate() {
    let api = Api::start().await;
    let path = "/admin/v1/tenants/acme/credentials/demo";
    let (status, v1) = api
        .call(Method::POST, path, Some(json!({"secret": "sk-acme-one"})))
        .await;
    assert_eq!(status, StatusCode::CREATED, "{v1}");
    assert_eq!(v1["version"], 1);
    assert_eq!(v1["active"], true);
    assert_eq!(v1["fingerprint"].as_str().unwrap().len(), 8);
    let (_, v2) = api
        .call(Method::POST, path, Some(json!({"secret": "sk-acme-two"})))
        .await;
    assert_eq!(v2["version"], 2);
    // The active one cannot be retired; the older one can, after a roll back and forward.
    refused(
        &api.call(Method::POST, &format!("{path}/2/retire"), None)
            .await,
        StatusCode::CONFLICT,
        "conflict",
    );
    let (status, back) = api
        .call(Method::POST, &format!("{path}/1/activate"), None)
        .await;
    assert_eq!((status, &back["active"]), (StatusCode::OK, &json!(true)));
    api.call(Method::POST, &format!("{path}/2/activate"), None)
        .await;
    let (status, retired) = api
        .call(Method::POST, &format!("{path}/1/retire"), None)
        .await;
    assert_eq!(status, StatusCode::OK, "{retired}");
    assert!(retired["retired_at"].is_u64());
    let listed = api.list(path).await;
    assert_eq!(listed["versions"].as_array().unwrap().len(), 2);
    // A secret the declared upstream could not send (not a header value) is refused,
    // without being repeated, and no version is added.
    let (status, bad) = api
        .call(
            Method::POST,
            path,
            Some(json!({"secret": "sk-acme-\nInjected: 1"})),
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{bad}");
    assert!(!bad.to_string().contains("Injected"), "{bad}");
    assert_eq!(
        api.list(path).await["versions"].as_array().unwrap().len(),
        2
    );
    // No answer and no audit record holds a secret.
    let audit = api.list("/admin/v1/audit?kind=admin_change").await;
    for text in [
        v1.to_string(),
        v2.to_string(),
        listed.to_string(),
        audit.to_string(),
    ] {
        assert!(!text.contains("sk-acme-"), "{text}");
    }
    assert!(
        audit.to_string().contains("add_credential"),
        "each change is audited: {audit}"
    );
}

#[tokio::test]
async fn policies_and_limits_are_checked_before_they_are_stored() {
    let api = Api::start().await;
    let policies = "/admin/v1/tenants/acme/policies";
    for datalog in ["allow if true", "check if model($m", "right(\"forged\")"] {
        let answer = api
            .call(
                Method::PUT,
                &format!("{policies}/p"),
                Some(json!({"datalog": datalog})),
            )
            .await;
        refused(&answer, StatusCode::BAD_REQUEST, "invalid_request");
        let message = answer.1["error"]["message"].as_str().unwrap();
        assert!(message.contains("policy `p`"), "{datalog}: {message}");
    }
    assert_eq!(api.list(policies).await["policies"], json!([]));
    let check = json!({"datalog": "check if time($t), $t < 2100-01-01T00:00:00Z"});
    let (status, created) = api
        .call(Method::PUT, &format!("{policies}/p"), Some(check.clone()))
        .await;
    assert_eq!(status, StatusCode::CREATED, "{created}");
    let (status, replaced) = api
        .call(Method::PUT, &format!("{policies}/p"), Some(check))
        .await;
    assert_eq!(status, StatusCode::OK, "{replaced}");
    assert_eq!(replaced["created_at"], created["created_at"]);

    let limits = "/admin/v1/tenants/acme/limits";
    for spec in [
        json!({"scope": "agent", "dimension": "requests", "per": "fortnight", "limit": 5}),
        json!({"scope": "agent", "dimension": "requests", "per": "minute", "limit": 5, "extra": 1}),
        json!({"scope": "planet", "dimension": "requests", "per": "minute", "limit": 5}),
        json!(["not", "a", "table"]),
    ] {
        let answer = api
            .call(Method::PUT, &format!("{limits}/l"), Some(spec.clone()))
            .await;
        refused(&answer, StatusCode::BAD_REQUEST, "invalid_request");
    }
    assert_eq!(api.list(limits).await["limits"], json!([]));
    let spec = json!({"scope": "agent", "dimension": "requests", "per": "minute", "limit": 5});
    let (status, limit) = api
        .call(Method::PUT, &format!("{limits}/l"), Some(spec.clone()))
        .await;
    assert_eq!(status, StatusCode::CREATED, "{limit}");
    assert_eq!(limit["spec"], spec);
    let (status, _) = api.call(Method::DELETE, &format!("{limits}/l"), None).await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    assert_eq!(api.list(limits).await["limits"], json!([]));
}

/// The key the upstream saw on the last request an `acme` writ made through the gateway.
async fn key_seen_for_acme(api: &Api) -> String {
    let llm = r#"{"type":"writ:llm","upstream":"demo"}"#;
    let writ = api.gw.mint_in("acme", llm, llm, 30);
    reqwest::Client::new()
        .post(api.gw.url("/v1/chat/completions"))
        .bearer_auth(&writ)
        .json(&json!({"model": "m", "messages": [{"role": "user", "content": "hi"}]}))
        .send()
        .await
        .unwrap();
    let last = api
        .upstream
        .requests()
        .pop()
        .expect("the upstream was called");
    last.headers["authorization"].to_str().unwrap().to_string()
}

#[tokio::test]
async fn a_credential_added_or_rolled_back_applies_to_the_next_request() {
    let api = Api::start().await;
    assert_eq!(key_seen_for_acme(&api).await, format!("Bearer {KEY}"));
    let path = "/admin/v1/tenants/acme/credentials/demo";
    for secret in ["sk-acme-one", "sk-acme-two"] {
        let (status, body) = api
            .call(Method::POST, path, Some(json!({"secret": secret})))
            .await;
        assert_eq!(status, StatusCode::CREATED, "{body}");
        assert_eq!(key_seen_for_acme(&api).await, format!("Bearer {secret}"));
    }
    let (status, body) = api
        .call(Method::POST, &format!("{path}/1/activate"), None)
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(key_seen_for_acme(&api).await, "Bearer sk-acme-one");
}

#[tokio::test]
async fn a_private_upstream_needs_the_operator_to_allow_it() {
    let api = Api::start().await;
    let path = "/admin/v1/tenants/acme/upstreams";
    let own = json!({"name": "own", "settings": {
        "kind": "openai",
        "base_url": api.upstream.base_url(),
        "allow_private_network": true,
    }});
    // This gateway's config does not allow it.
    let answer = api.call(Method::POST, path, Some(own.clone())).await;
    refused(&answer, StatusCode::BAD_REQUEST, "invalid_request");
    assert!(
        answer.1["error"]["message"]
            .as_str()
            .unwrap()
            .contains("allow_private_upstreams"),
        "{}",
        answer.1
    );

    // One that allows it: the tenant's own upstream serves the tenant with its key.
    let upstream = MockUpstream::start(KEY).await;
    let config = format!(
        "[server]\nallow_private_upstreams = true\n\
         [upstreams.demo]\nkind = \"openai\"\nbase_url = \"{}\"\nallow_private_network = true\napi_key = \"{KEY}\"\n",
        upstream.base_url()
    );
    let gw = TestGateway::start(&config).await;
    let admin = gw.mint_as(ADMIN, ADMIN, 30);
    let api = Api {
        gw,
        upstream,
        admin,
    };
    let (status, body) = api
        .call(
            Method::POST,
            "/admin/v1/tenants",
            Some(json!({"name": "acme"})),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let own = json!({"name": "own", "settings": {
        "kind": "openai",
        "base_url": api.upstream.base_url(),
        "allow_private_network": true,
    }});
    let (status, created) = api.call(Method::POST, path, Some(own)).await;
    assert_eq!(status, StatusCode::CREATED, "{created}");
    assert_eq!(created["tenant"], "acme");
    assert_eq!(created["shared"], false);
    let (status, body) = api
        .call(
            Method::POST,
            "/admin/v1/tenants/acme/credentials/own",
            Some(json!({"secret": "sk-acme-own"})),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let llm = r#"{"type":"writ:llm","upstream":"own"}"#;
    let writ = api.gw.mint_in("acme", llm, llm, 30);
    let resp = reqwest::Client::new()
        .post(api.gw.url("/v1/chat/completions"))
        .bearer_auth(&writ)
        .header("x-writ-upstream", "own")
        .json(&json!({"model": "m", "messages": [{"role": "user", "content": "hi"}]}))
        .send()
        .await
        .unwrap();
    let status = resp.status();
    let last = api
        .upstream
        .requests()
        .pop()
        .unwrap_or_else(|| panic!("the tenant's upstream was not called ({status})"));
    assert_eq!(last.headers["authorization"], "Bearer sk-acme-own");
}

#[tokio::test]
async fn upstream_lists_include_writ_toml_upstreams_as_declared() {
    let api = Api::start().await;
    for path in ["/admin/v1/upstreams", "/admin/v1/tenants/acme/upstreams"] {
        let listed = api.list(path).await;
        let demo = listed["upstreams"]
            .as_array()
            .unwrap()
            .iter()
            .find(|u| u["name"] == "demo")
            .unwrap_or_else(|| panic!("{path}: {listed}"))
            .clone();
        assert_eq!(demo["declared"], true, "{demo}");
        assert_eq!(demo["shared"], true, "{demo}");
        assert_eq!(demo["settings"], json!({"kind": "openai"}), "{demo}");
        assert!(!listed.to_string().contains(KEY), "no secret listed");
    }
}
