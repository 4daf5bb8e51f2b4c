//! The token endpoint as MCP clients use it: `resource` (RFC 8707) binds a writ to one MCP
//! endpoint, which then refuses it everywhere else; without `authorization_details` a
//! resource implies the agent's ceiling grants for it; `scope=mcp` is accepted and echoed;
//! every other resource or scope is refused by name.

use reqwest::StatusCode;
use serde_json::{Value, json};
use writ_testkit::{MockUpstream, OAuthClient, TestGateway};

const KEY: &str = "tool-key-0123456789";
const JWT_BEARER: &str = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer";
const EXCHANGE: &str = "urn:ietf:params:oauth:grant-type:token-exchange";
const ACCESS: &str = "urn:ietf:params:oauth:token-type:access_token";
const JWT: &str = "urn:ietf:params:oauth:token-type:jwt";

/// Travel's tools, a hotel tool, a model and a budget.
const CEILING: &str = r#"[
    {"type":"writ:tool","upstream":"travel","tool":"book_flight","additional_arguments":true},
    {"type":"writ:tool","upstream":"hotels","tool":"book_room","additional_arguments":true},
    {"type":"writ:llm","upstream":"openai"},
    {"type":"writ:budget","usd_micros":50000},
    {"type":"writ:tool","upstream":"travel","tool":"list_flights"}
]"#;
const FLIGHT: &str = r#"[{"type":"writ:tool","upstream":"travel","tool":"book_flight","arguments":{"flight":"LH123"}}]"#;

async fn setup() -> (MockUpstream, TestGateway) {
    let upstream = MockUpstream::start(KEY).await;
    let config = format!(
        "[detection.brute_force]\nbackoff_after = 1000\nlockout_after = 1000\n\
         [upstreams.travel]\nkind = \"mcp\"\nbase_url = \"{base}/mcp\"\nallow_private_network = true\napi_key = \"{KEY}\"\n\n\
         [upstreams.hotels]\nkind = \"mcp\"\nbase_url = \"{base}/mcp\"\nallow_private_network = true\napi_key = \"{KEY}\"\n\n\
         [upstreams.crm]\nkind = \"http\"\nbase_url = \"{base}/api\"\nallow_private_network = true\napi_key = \"{KEY}\"\n\n\
         [upstreams.openai]\nkind = \"openai\"\nbase_url = \"{base}\"\nallow_private_network = true\napi_key = \"{KEY}\"\n",
        base = upstream.base_url()
    );
    (upstream, TestGateway::start(&config).await)
}

/// A client assertion as MCP's Python SDK signs it: `aud` is the issuer, not the token
/// endpoint.
fn sdk_assertion(client: &OAuthClient, gw: &TestGateway, jti: &str) -> String {
    let mut claims = client.claims(gw, jti);
    claims["aud"] = json!(gw.gateway().issuer());
    client.assertion_with(
        &jsonwebtoken::Header::new(jsonwebtoken::Algorithm::EdDSA),
        &claims,
    )
}

async fn token_raw(gw: &TestGateway, body: String) -> (StatusCode, Value) {
    let resp = reqwest::Client::new()
        .post(gw.url("/oauth2/token"))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(body)
        .send()
        .await
        .expect("token endpoint answers");
    let status = resp.status();
    assert_eq!(resp.headers()["cache-control"], "no-store");
    (status, resp.json().await.expect("a JSON answer"))
}

async fn token(gw: &TestGateway, form: &[(&str, &str)]) -> (StatusCode, Value) {
    token_raw(gw, serde_urlencoded::to_string(form).expect("a form")).await
}

/// `client_credentials` for `client` with `extra` parameters.
async fn ask(
    gw: &TestGateway,
    client: &OAuthClient,
    jti: &str,
    extra: &[(&str, &str)],
) -> (StatusCode, Value) {
    let assertion = sdk_assertion(client, gw, jti);
    let mut form = vec![
        ("grant_type", "client_credentials"),
        ("client_assertion_type", JWT_BEARER),
        ("client_assertion", assertion.as_str()),
    ];
    form.extend_from_slice(extra);
    token(gw, &form).await
}

fn issued(result: &(StatusCode, Value)) -> String {
    assert_eq!(result.0, StatusCode::OK, "{}", result.1);
    result.1["access_token"]
        .as_str()
        .expect("an access token")
        .to_string()
}

fn refused(result: (StatusCode, Value), error: &str) -> String {
    assert_eq!(result.0, StatusCode::BAD_REQUEST, "{}", result.1);
    assert_eq!(result.1["error"], error, "{}", result.1);
    assert!(result.1.get("access_token").is_none(), "nothing minted");
    result.1["error_description"]
        .as_str()
        .expect("a description")
        .to_string()
}

/// `tools/call` of `tool` with `{"flight": "LH123"}` on `/mcp/{upstream}`.
async fn call_tool(
    gw: &TestGateway,
    upstream: &str,
    writ: &str,
    tool: &str,
) -> (StatusCode, Value) {
    call_tool_with(gw, upstream, writ, tool, json!({"flight": "LH123"})).await
}

async fn call_tool_with(
    gw: &TestGateway,
    upstream: &str,
    writ: &str,
    tool: &str,
    arguments: Value,
) -> (StatusCode, Value) {
    let resp = reqwest::Client::new()
        .post(gw.url(&format!("/mcp/{upstream}")))
        .bearer_auth(writ)
        .json(&json!({
            "jsonrpc": "2.0", "id": 7, "method": "tools/call",
            "params": {"name": tool, "arguments": arguments}
        }))
        .send()
        .await
        .expect("gateway answers");
    let status = resp.status();
    (status, resp.json().await.expect("a JSON answer"))
}

async fn chat(gw: &TestGateway, writ: &str) -> (StatusCode, Value) {
    let resp = reqwest::Client::new()
        .post(gw.url("/v1/chat/completions"))
        .bearer_auth(writ)
        .json(&json!({"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}]}))
        .send()
        .await
        .expect("gateway answers");
    let status = resp.status();
    (status, resp.json().await.expect("a JSON answer"))
}

fn audience(gw: &TestGateway, writ: &str) -> Option<String> {
    writ_token::decode(writ)
        .expect("decodes")
        .verify(&gw.keys().trusted)
        .expect("verifies")
        .claims()
        .audience
        .clone()
}

fn assert_audience_denied(result: (StatusCode, Value), what: &str) {
    assert_eq!(result.0, StatusCode::FORBIDDEN, "{what}: {}", result.1);
    // MCP routes answer a JSON-RPC error; other routes OpenAI's shape: the code is in each.
    let code = result.1["error"]["data"]["code"]
        .as_str()
        .or(result.1["error"]["code"].as_str());
    assert_eq!(code, Some("grant_denied"), "{what}: {}", result.1);
    let message = result.1["error"]["message"].as_str().unwrap_or_default();
    assert!(
        message.contains("bound to another resource"),
        "{what}: {message}"
    );
}

#[tokio::test]
async fn a_writ_for_a_resource_is_good_there_and_nowhere_else() {
    let (upstream, gw) = setup().await;
    let (client, _) = OAuthClient::register(&gw, "planner", CEILING, false).await;
    let travel = gw.url("/mcp/travel");

    // What the MCP SDK sends: no authorization_details, a resource, scope=mcp.
    let answer = ask(
        &gw,
        &client,
        "a1",
        &[("resource", &travel), ("scope", "mcp")],
    )
    .await;
    let writ = issued(&answer);
    assert_eq!(answer.1["token_type"], "Bearer");
    assert_eq!(answer.1["scope"], "mcp");
    assert_eq!(audience(&gw, &writ), Some(travel.clone()));

    let (status, v) = call_tool(&gw, "travel", &writ, "book_flight").await;
    assert_eq!(status, StatusCode::OK, "{v}");
    assert_eq!(upstream.requests().len(), 1);

    // The ceiling allows each of these; the audience does not, and nothing leaves.
    assert_audience_denied(call_tool(&gw, "hotels", &writ, "book_room").await, "hotels");
    assert_audience_denied(chat(&gw, &writ).await, "chat");
    let resp = reqwest::Client::new()
        .get(gw.url("/u/crm/v1/bookings"))
        .bearer_auth(&writ)
        .send()
        .await
        .expect("gateway answers");
    let status = resp.status();
    assert_audience_denied((status, resp.json().await.expect("JSON")), "http");
    assert_eq!(upstream.requests().len(), 1);

    // A writ without audience keeps working everywhere its grants allow.
    let open = issued(
        &ask(
            &gw,
            &client,
            "a2",
            &[(
                "authorization_details",
                r#"[{"type":"writ:tool","upstream":"travel","tool":"book_flight","additional_arguments":true},{"type":"writ:llm","upstream":"openai"}]"#,
            )],
        )
        .await,
    );
    assert_eq!(audience(&gw, &open), None);
    assert_eq!(
        call_tool(&gw, "travel", &open, "book_flight").await.0,
        StatusCode::OK
    );
    assert_eq!(chat(&gw, &open).await.0, StatusCode::OK);
}

#[tokio::test]
async fn a_resource_alone_gets_exactly_the_ceilings_grants_for_its_upstream() {
    let (_upstream, gw) = setup().await;
    let (client, _) = OAuthClient::register(&gw, "planner", CEILING, false).await;
    let answer = ask(&gw, &client, "c1", &[("resource", &gw.url("/mcp/travel"))]).await;
    let writ = issued(&answer);
    let ceiling: Vec<Value> = serde_json::from_str(CEILING).expect("ceiling JSON");
    assert_eq!(
        answer.1["authorization_details"],
        json!([ceiling[0], ceiling[3], ceiling[4]])
    );
    // No scope asked, none answered.
    assert!(answer.1.get("scope").is_none(), "{}", answer.1);
    assert_eq!(
        call_tool_with(&gw, "travel", &writ, "list_flights", json!({}))
            .await
            .0,
        StatusCode::OK
    );
    // The ceiling's grant for it names no arguments, and allows none.
    assert_eq!(
        call_tool(&gw, "travel", &writ, "list_flights").await.0,
        StatusCode::FORBIDDEN
    );
    assert_eq!(
        call_tool(&gw, "travel", &writ, "cancel_flight").await.0,
        StatusCode::FORBIDDEN
    );
    assert_eq!(
        call_tool(&gw, "travel", &writ, "book_flight").await.0,
        StatusCode::OK
    );

    // A ceiling that names the upstream nowhere: refused, naming the agent and resource.
    let (travel_only, _) = OAuthClient::register(
        &gw,
        "traveller",
        r#"[{"type":"writ:tool","upstream":"travel","tool":"book_flight"},{"type":"writ:budget","tokens":5}]"#,
        false,
    )
    .await;
    let hotels = gw.url("/mcp/hotels");
    let why = refused(
        ask(&gw, &travel_only, "c2", &[("resource", &hotels)]).await,
        "invalid_target",
    );
    assert_eq!(why, format!("agent `traveller` may not use {hotels}"));
}

#[tokio::test]
async fn resource_must_be_byte_identical_to_an_advertised_mcp_resource() {
    let (_upstream, gw) = setup().await;
    let (client, _) = OAuthClient::register(&gw, "planner", CEILING, false).await;
    let issuer = gw.gateway().issuer();
    let other_host = gw.url("/mcp/travel").replace("127.0.0.1", "localhost");
    let long = format!("{issuer}/mcp/{}", "a".repeat(10 * 1024));
    let hostile = [
        format!("{issuer}/mcp/nowhere"),
        format!("{issuer}/mcp/crm"),
        format!("{issuer}/mcp/openai"),
        format!("{issuer}/u/crm"),
        format!("{issuer}/mcp/travel/"),
        format!("{issuer}/mcp/travel?x=1"),
        format!("{issuer}/mcp/travel#top"),
        format!("{issuer}/mcp/trav%65l"),
        format!("{issuer}/mcp/Travel"),
        issuer.replace("http://", "HTTP://") + "/mcp/travel",
        other_host,
        "/mcp/travel".to_string(),
        issuer.clone(),
        String::new(),
        long,
    ];
    for (i, resource) in hostile.iter().enumerate() {
        let why = refused(
            ask(&gw, &client, &format!("h{i}"), &[("resource", resource)]).await,
            "invalid_target",
        );
        let shown = &resource[..resource.len().min(60)];
        assert!(why.contains(&gw.url("/mcp/travel")), "{shown}: {why}");
        assert!(why.contains(&gw.url("/mcp/hotels")), "{shown}: {why}");
        assert!(
            !why.contains("crm") && !why.contains("nowhere"),
            "{shown}: {why}"
        );
        assert!(why.len() < 1024, "{shown}: the value is never echoed");
    }

    // Percent-encoding that is not UTF-8: decoded lossily, so no resource matches.
    let assertion = sdk_assertion(&client, &gw, "utf8");
    let form = serde_urlencoded::to_string([
        ("grant_type", "client_credentials"),
        ("client_assertion_type", JWT_BEARER),
        ("client_assertion", assertion.as_str()),
    ])
    .expect("a form");
    let body = format!("{form}&resource=http%3A%2F%2F%FF%FE");
    refused(token_raw(&gw, body).await, "invalid_target");

    // Sent twice, even with the same value: a malformed request.
    let travel = gw.url("/mcp/travel");
    let why = refused(
        ask(
            &gw,
            &client,
            "dup",
            &[("resource", &travel), ("resource", &travel)],
        )
        .await,
        "invalid_request",
    );
    assert!(why.contains("resource"), "{why}");
}

#[tokio::test]
async fn authorization_details_with_a_resource_must_all_be_for_it() {
    let (_upstream, gw) = setup().await;
    let (client, _) = OAuthClient::register(&gw, "planner", CEILING, false).await;
    let travel = gw.url("/mcp/travel");

    // Both: the details, bound to the resource.
    let writ = issued(
        &ask(
            &gw,
            &client,
            "d1",
            &[("resource", &travel), ("authorization_details", FLIGHT)],
        )
        .await,
    );
    assert_eq!(audience(&gw, &writ), Some(travel.clone()));
    assert_eq!(
        call_tool(&gw, "travel", &writ, "book_flight").await.0,
        StatusCode::OK
    );
    assert_eq!(
        call_tool(&gw, "travel", &writ, "list_flights").await.0,
        StatusCode::FORBIDDEN
    );

    // A grant for another upstream alongside: invalid_target, naming which one.
    let mixed = r#"[{"type":"writ:tool","upstream":"travel","tool":"book_flight"},{"type":"writ:llm","upstream":"openai"}]"#;
    let why = refused(
        ask(
            &gw,
            &client,
            "d2",
            &[("resource", &travel), ("authorization_details", mixed)],
        )
        .await,
        "invalid_target",
    );
    assert_eq!(why, format!("authorization_details[1] is not for {travel}"));

    // For the resource but beyond the ceiling: as without a resource.
    let beyond = r#"[{"type":"writ:tool","upstream":"travel","tool":"cancel_flight"}]"#;
    refused(
        ask(
            &gw,
            &client,
            "d3",
            &[("resource", &travel), ("authorization_details", beyond)],
        )
        .await,
        "invalid_authorization_details",
    );

    // Neither: the message names both ways of asking.
    let why = refused(ask(&gw, &client, "d4", &[]).await, "invalid_request");
    assert!(
        why.contains("authorization_details") && why.contains("resource"),
        "{why}"
    );
}

#[tokio::test]
async fn scope_mcp_is_echoed_and_any_other_refused() {
    let (_upstream, gw) = setup().await;
    let (client, _) = OAuthClient::register(&gw, "planner", CEILING, false).await;
    let travel = gw.url("/mcp/travel");
    let answer = ask(
        &gw,
        &client,
        "s1",
        &[("authorization_details", FLIGHT), ("scope", "mcp")],
    )
    .await;
    issued(&answer);
    assert_eq!(answer.1["scope"], "mcp");
    for (i, scope) in ["openid", "mcp admin", "", "MCP"].iter().enumerate() {
        let why = refused(
            ask(
                &gw,
                &client,
                &format!("s{}", i + 2),
                &[("resource", &travel), ("scope", scope)],
            )
            .await,
            "invalid_scope",
        );
        assert!(why.contains("`mcp`"), "{why}");
    }
}

#[tokio::test]
async fn delegation_keeps_the_audience_or_adds_one_never_another() {
    let (_upstream, gw) = setup().await;
    let (parent, _) = OAuthClient::register(&gw, "planner", CEILING, false).await;
    let (child, _) = OAuthClient::register(&gw, "researcher", CEILING, false).await;
    let travel = gw.url("/mcp/travel");
    let hotels = gw.url("/mcp/hotels");
    let exchange = |subject: String, jti: &'static str, extra: Vec<(&'static str, String)>| {
        let gw = &gw;
        let child = &child;
        async move {
            let actor = sdk_assertion(child, gw, jti);
            let mut form: Vec<(&str, String)> = vec![
                ("grant_type", EXCHANGE.into()),
                ("subject_token", subject),
                ("subject_token_type", ACCESS.into()),
                ("actor_token", actor),
                ("actor_token_type", JWT.into()),
            ];
            form.extend(extra);
            let form: Vec<(&str, &str)> = form.iter().map(|(k, v)| (*k, v.as_str())).collect();
            token(gw, &form).await
        }
    };

    // A bound subject: the same resource, or none, keeps it; another is refused.
    let bound = issued(&ask(&gw, &parent, "p1", &[("resource", &travel)]).await);
    let same = exchange(bound.clone(), "x1", vec![("resource", travel.clone())]).await;
    let same = issued(&same);
    assert_eq!(audience(&gw, &same), Some(travel.clone()));
    assert_eq!(
        call_tool(&gw, "travel", &same, "book_flight").await.0,
        StatusCode::OK
    );
    assert_audience_denied(
        call_tool(&gw, "hotels", &same, "book_room").await,
        "delegated at hotels",
    );

    let kept = exchange(
        bound.clone(),
        "x2",
        vec![
            ("authorization_details", FLIGHT.into()),
            ("scope", "mcp".into()),
        ],
    )
    .await;
    assert_eq!(kept.1["scope"], "mcp");
    let kept = issued(&kept);
    assert_eq!(audience(&gw, &kept), Some(travel.clone()));
    assert_audience_denied(chat(&gw, &kept).await, "kept, at chat");

    let why = refused(
        exchange(bound, "x3", vec![("resource", hotels.clone())]).await,
        "invalid_target",
    );
    assert!(why.contains(&travel), "{why}");

    // An unbound subject: the delegated writ may be bound, and is then refused elsewhere.
    let open = issued(&ask(&gw, &parent, "p2", &[("authorization_details", CEILING)]).await);
    let added = issued(&exchange(open.clone(), "x4", vec![("resource", hotels.clone())]).await);
    assert_eq!(audience(&gw, &added), Some(hotels.clone()));
    assert_eq!(
        call_tool(&gw, "hotels", &added, "book_room").await.0,
        StatusCode::OK
    );
    assert_audience_denied(
        call_tool(&gw, "travel", &added, "book_flight").await,
        "added, at travel",
    );
    assert_audience_denied(chat(&gw, &added).await, "added, at chat");
    assert_eq!(
        chat(&gw, &open).await.0,
        StatusCode::OK,
        "the subject is unchanged"
    );
}

#[tokio::test]
async fn the_mint_record_names_the_resource() {
    let (_upstream, gw) = setup().await;
    let (client, _) = OAuthClient::register(&gw, "planner", CEILING, false).await;
    let travel = gw.url("/mcp/travel");
    issued(&ask(&gw, &client, "r1", &[("resource", &travel)]).await);
    issued(&ask(&gw, &client, "r2", &[("authorization_details", FLIGHT)]).await);
    gw.gateway().audit_checkpoint().await;
    let minted: Vec<Value> = gw
        .gateway()
        .audit_export()
        .await
        .expect("audit export")
        .iter()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .filter(|r| r["kind"] == "writ_minted")
        .collect();
    assert_eq!(minted.len(), 2, "{minted:?}");
    assert_eq!(minted[0]["detail"]["resource"], json!(travel));
    assert_eq!(minted[1]["detail"]["resource"], Value::Null);
}

#[tokio::test(flavor = "multi_thread")]
async fn the_mcp_python_sdk_gets_a_writ_for_its_resource_with_its_own_code() {
    let (upstream, gw) = setup().await;
    // P-256: the key type Python's `cryptography` reads from the PEM the testkit writes.
    let (client, _) = OAuthClient::register(&gw, "sdk-agent", CEILING, true).await;
    let seen = writ_testkit::run_python_lines(
        &std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/python/mcp_token.py"),
        &[
            ("WRIT_BASE_URL", &gw.url("")),
            ("WRIT_CLIENT_ID", "sdk-agent"),
            ("WRIT_CLIENT_KEY", client.private_key_pem()),
        ],
    )
    .await;
    let run = &seen[0];
    // What the SDK sent: no authorization_details, its resource, the advertised scope, and
    // an assertion for the issuer.
    let sent = &run["token_requests"][0];
    assert_eq!(
        sent["form"]["grant_type"],
        json!(["client_credentials"]),
        "{run}"
    );
    assert_eq!(
        sent["form"]["resource"],
        json!([gw.url("/mcp/travel")]),
        "{run}"
    );
    assert_eq!(sent["form"]["scope"], json!(["mcp"]), "{run}");
    assert!(sent["form"].get("authorization_details").is_none(), "{run}");
    assert_eq!(sent["assertion_aud"], json!(gw.gateway().issuer()), "{run}");
    // What it was answered, and parsed: a Bearer writ for that resource.
    let answer = &run["token_answers"][0];
    assert_eq!(answer["status"], 200, "{run}");
    assert_eq!(answer["body"]["token_type"], "Bearer", "{run}");
    assert_eq!(answer["body"]["scope"], "mcp", "{run}");
    // The retried call went through with the upstream's key; the writ went nowhere else.
    assert_eq!(run["booked_status"], 200, "{run}");
    assert_eq!(
        run["booked"]["result"]["content"][0]["text"],
        "called book_flight"
    );
    assert_eq!(run["elsewhere_status"], 403, "{run}");
    assert_eq!(run["elsewhere_code"], "grant_denied", "{run}");
    let forwarded = upstream.requests();
    assert_eq!(forwarded.len(), 1);
    assert_eq!(
        forwarded[0].headers["authorization"],
        format!("Bearer {KEY}")
    );
}

#[tokio::test]
async fn a_401_before_the_body_is_read_says_the_connection_closes() {
    let (_upstream, gw) = setup().await;
    let resp = reqwest::Client::new()
        .post(gw.url("/mcp/travel"))
        .json(&json!({"jsonrpc": "2.0", "id": 1, "method": "tools/list"}))
        .send()
        .await
        .expect("gateway answers");
    assert_eq!(resp.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(resp.headers()["connection"], "close");
    // A refusal after the body was read keeps the connection.
    let (client, _) = OAuthClient::register(&gw, "planner", CEILING, false).await;
    let writ = issued(&ask(&gw, &client, "k1", &[("resource", &gw.url("/mcp/travel"))]).await);
    let resp = reqwest::Client::new()
        .post(gw.url("/mcp/travel"))
        .bearer_auth(&writ)
        .json(&json!({"jsonrpc": "2.0", "id": 1, "method": "tools/call", "params": {"name": "cancel_flight", "arguments": {}}}))
        .send()
        .await
        .expect("gateway answers");
    assert_eq!(resp.status(), StatusCode::FORBIDDEN);
    assert!(resp.headers().get("connection").is_none());
}
