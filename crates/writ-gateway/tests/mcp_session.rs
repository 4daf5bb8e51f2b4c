//! MCP sessions and Origin on `/mcp/{upstream}` (Streamable HTTP, 2025-11-25 clients): a
//! session the upstream assigns is bound to the agent it was assigned to, and no other agent
//! (nor the same agent at another upstream) can speak in it — refused 404 before anything is
//! forwarded, on this gateway and on another sharing its Redis; DELETE ends it; a malformed
//! id is 400; with Redis gone, sessions fail closed or fall back to the instance's memory.
//! (`Origin` is `mcp_origin.rs`'s.)
//!
//! The upstream is a small MCP server that assigns a session on `initialize` and, as a real
//! one does, answers 404 for sessions it does not know and 400 without one; it counts every
//! request it receives, so "never forwarded" is asserted, not assumed.

use std::collections::HashSet;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::State;
use axum::response::{IntoResponse, Response};
use http::{HeaderMap, HeaderValue, Method, StatusCode};
use serde_json::{Value, json};
use writ_testkit::{OwnRedis, TestGateway};
use writ_token::{Delegation, MintRequest, decode, mint, parse_grants};

const KEY: &str = "mcp-session-key-0123456789";
const REDIS: &str = "redis://127.0.0.1:6379";

/// What the MCP server knows: the sessions it assigned, and how many requests it served.
#[derive(Default)]
struct Server {
    sessions: Mutex<HashSet<String>>,
    requests: Mutex<usize>,
}

impl Server {
    fn requests(&self) -> usize {
        *self.requests.lock().expect("request count")
    }
}

/// A JSON-RPC answer carrying `result`, or 202 for a notification.
fn answer(body: &Value, result: Value) -> Response {
    match body.get("id") {
        Some(id) => {
            axum::Json(json!({"jsonrpc": "2.0", "id": id, "result": result})).into_response()
        }
        None => StatusCode::ACCEPTED.into_response(),
    }
}

/// The MCP endpoint: the upstream's credential required; `initialize` assigns a session
/// (a fresh random id, or the client's name after `fixed:`, so a test can make the server
/// assign an id of its choosing); everything else needs a session it assigned.
async fn endpoint(
    State(server): State<Arc<Server>>,
    method: Method,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    if headers.get("authorization").and_then(|v| v.to_str().ok()) != Some(&format!("Bearer {KEY}"))
    {
        return StatusCode::UNAUTHORIZED.into_response();
    }
    *server.requests.lock().expect("request count") += 1;
    let session = headers
        .get("mcp-session-id")
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    let known = |id: &str| server.sessions.lock().expect("sessions").contains(id);
    if method == Method::DELETE {
        return match session {
            Some(id) if server.sessions.lock().expect("sessions").remove(&id) => {
                StatusCode::OK.into_response()
            }
            Some(_) => StatusCode::NOT_FOUND.into_response(),
            None => StatusCode::BAD_REQUEST.into_response(),
        };
    }
    if method == Method::GET {
        // The session's standalone stream: one message of the server's, then its end.
        return match session {
            Some(id) if known(&id) => (
                [(http::header::CONTENT_TYPE, "text/event-stream")],
                "event: message\ndata: {\"jsonrpc\":\"2.0\",\"method\":\"notifications/tools/list_changed\"}\n\n",
            )
                .into_response(),
            Some(_) => StatusCode::NOT_FOUND.into_response(),
            None => StatusCode::BAD_REQUEST.into_response(),
        };
    }
    let Ok(rpc) = serde_json::from_slice::<Value>(&body) else {
        return StatusCode::BAD_REQUEST.into_response();
    };
    if rpc["method"] == "initialize" {
        let name = rpc["params"]["clientInfo"]["name"].as_str().unwrap_or("");
        let id = match name.strip_prefix("fixed:") {
            Some(fixed) => fixed.to_string(),
            None => format!("{:032x}", rand::random::<u128>()),
        };
        server.sessions.lock().expect("sessions").insert(id.clone());
        let mut response = answer(
            &rpc,
            json!({"protocolVersion": "2025-11-25", "capabilities": {"tools": {}}, "serverInfo": {"name": "flights", "version": "1"}}),
        );
        if let Ok(value) = HeaderValue::from_str(&id) {
            response.headers_mut().insert("mcp-session-id", value);
        }
        return response;
    }
    match session {
        None => StatusCode::BAD_REQUEST.into_response(),
        Some(id) if !known(&id) => StatusCode::NOT_FOUND.into_response(),
        Some(_) => answer(
            &rpc,
            json!({"tools": [{"name": "book_flight", "inputSchema": {"type": "object"}}]}),
        ),
    }
}

/// The MCP server on a loopback port.
async fn start_server() -> (Arc<Server>, String) {
    let server = Arc::new(Server::default());
    let app = axum::Router::new()
        .route("/mcp", axum::routing::any(endpoint))
        .with_state(server.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind the MCP server");
    let addr = listener.local_addr().expect("its address");
    tokio::spawn(async move { axum::serve(listener, app).await });
    (server, format!("http://{addr}/mcp"))
}

/// Config with two MCP upstreams on the same server (`travel`, `hotel`).
fn config(mcp: &str, extra: &str) -> String {
    format!(
        "{extra}\n\
         [upstreams.travel]\nkind = \"mcp\"\nbase_url = \"{mcp}\"\nallow_private_network = true\napi_key = \"{KEY}\"\n\n\
         [upstreams.hotel]\nkind = \"mcp\"\nbase_url = \"{mcp}\"\nallow_private_network = true\napi_key = \"{KEY}\"\n"
    )
}

struct Setup {
    server: Arc<Server>,
    gw: TestGateway,
}

async fn setup() -> Setup {
    let (server, mcp) = start_server().await;
    let gw = TestGateway::start(&config(&mcp, "")).await;
    Setup { server, gw }
}

/// A writ for `agent` allowing `book_flight` on `upstream` (and so its session upkeep).
fn writ_for(gw: &TestGateway, agent: &str, upstream: &str) -> String {
    let grant = format!(
        r#"{{"type":"writ:tool","upstream":"{upstream}","tool":"book_flight","additional_arguments":true}}"#
    );
    let grants = parse_grants(&grant).expect("grants");
    let req = MintRequest {
        tenant: "default",
        agent,
        ceiling: &grants,
        grants: &grants,
        ttl: Duration::from_secs(30),
        max_ttl: Duration::from_secs(30),
        now: writ_token::Clock::now(gw.clock()),
        cnf_jkt: None,
        audience: None,
    };
    mint(&gw.keys().signing, &req).expect("mint").0
}

/// A POST of `rpc` to `/mcp/{upstream}`, with a session id and extra headers if given.
async fn post(
    gw: &TestGateway,
    upstream: &str,
    writ: &str,
    session: Option<&str>,
    rpc: Value,
) -> reqwest::Response {
    let mut req = reqwest::Client::new()
        .post(gw.url(&format!("/mcp/{upstream}")))
        .bearer_auth(writ)
        .json(&rpc);
    if let Some(id) = session {
        req = req.header("mcp-session-id", id);
    }
    req.send().await.expect("the gateway answers")
}

async fn initialize_as(
    gw: &TestGateway,
    upstream: &str,
    writ: &str,
    client: &str,
) -> reqwest::Response {
    let rpc = json!({"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
        "protocolVersion": "2025-11-25", "capabilities": {}, "clientInfo": {"name": client, "version": "1"}}});
    post(gw, upstream, writ, None, rpc).await
}

/// Starts a session at `upstream` and returns the id the server assigned.
async fn initialize(gw: &TestGateway, upstream: &str, writ: &str) -> String {
    let resp = initialize_as(gw, upstream, writ, "test-client").await;
    assert_eq!(resp.status(), StatusCode::OK);
    resp.headers()["mcp-session-id"]
        .to_str()
        .expect("a visible ASCII id")
        .to_string()
}

fn list() -> Value {
    json!({"jsonrpc": "2.0", "id": 2, "method": "tools/list"})
}

/// Status and body text of a refusal.
async fn refusal(resp: reqwest::Response) -> (StatusCode, String) {
    let status = resp.status();
    (status, resp.text().await.expect("a body"))
}

#[tokio::test]
async fn a_session_is_spoken_in_only_by_the_agent_it_was_assigned_to() {
    let s = setup().await;
    let (alice, bob) = (
        writ_for(&s.gw, "alice", "travel"),
        writ_for(&s.gw, "bob", "travel"),
    );
    let id = initialize(&s.gw, "travel", &alice).await;
    let resp = post(&s.gw, "travel", &alice, Some(&id), list()).await;
    assert_eq!(resp.status(), StatusCode::OK);
    let body: Value = resp.json().await.expect("JSON");
    assert_eq!(body["result"]["tools"][0]["name"], "book_flight");
    let served = s.server.requests();

    // Bob holds a valid writ for the same upstream and Alice's session id.
    let (status, body) = refusal(post(&s.gw, "travel", &bob, Some(&id), list()).await).await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{body}");
    // A JSON-RPC error answering the call, the gateway's code in its data.
    let v: Value = serde_json::from_str(&body).expect("JSON");
    assert_eq!(v["jsonrpc"], "2.0", "{body}");
    assert_eq!(v["id"], 2, "{body}");
    assert_eq!(v["error"]["data"]["code"], "unknown_session", "{body}");
    assert!(
        body.contains("initialize"),
        "says how to start again: {body}"
    );
    assert!(!body.contains(&id), "the id is not echoed: {body}");
    // Also when he sends it with an initialize of his own.
    let rpc = json!({"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {}});
    assert_eq!(
        post(&s.gw, "travel", &bob, Some(&id), rpc).await.status(),
        StatusCode::NOT_FOUND
    );
    // An id the upstream never assigned is refused the same way.
    let invented = format!("{:032x}", rand::random::<u128>());
    assert_eq!(
        post(&s.gw, "travel", &alice, Some(&invented), list())
            .await
            .status(),
        StatusCode::NOT_FOUND
    );
    // Alice's session at `travel` is no session at `hotel` (same server behind it).
    let alice_hotel = writ_for(&s.gw, "alice", "hotel");
    assert_eq!(
        post(&s.gw, "hotel", &alice_hotel, Some(&id), list())
            .await
            .status(),
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        s.server.requests(),
        served,
        "no refused request was forwarded"
    );

    // Alice's session still works; Bob gets one of his own.
    assert_eq!(
        post(&s.gw, "travel", &alice, Some(&id), list())
            .await
            .status(),
        StatusCode::OK
    );
    let bobs = initialize(&s.gw, "travel", &bob).await;
    assert_ne!(bobs, id);
    assert_eq!(
        post(&s.gw, "travel", &bob, Some(&bobs), list())
            .await
            .status(),
        StatusCode::OK
    );
    assert_eq!(
        post(&s.gw, "travel", &alice, Some(&bobs), list())
            .await
            .status(),
        StatusCode::NOT_FOUND
    );
}

/// `writ` delegated (as the token endpoint's exchange does) to `to` (`tenant/agent`).
fn delegated(gw: &TestGateway, writ: &str, to: &str) -> String {
    let keys = gw.keys();
    let parent = decode(writ)
        .expect("a writ")
        .verify(&keys.trusted)
        .expect("signed by the gateway");
    let grants = parse_grants(
        r#"{"type":"writ:tool","upstream":"travel","tool":"book_flight","additional_arguments":true}"#,
    )
    .expect("grants");
    parent
        .delegate(&Delegation {
            grants: &grants,
            actor_ceiling: &grants,
            delegated_to: to,
            expires_at: writ_token::Clock::now(gw.clock()) + Duration::from_secs(20),
            signer: &keys.signing,
            audience: None,
        })
        .expect("delegated")
}

#[tokio::test]
async fn a_delegated_writ_speaks_for_its_delegate_not_for_who_delegated() {
    let s = setup().await;
    let planner = writ_for(&s.gw, "planner", "travel");
    let researcher = delegated(&s.gw, &planner, "default/researcher");
    let planners = initialize(&s.gw, "travel", &planner).await;
    assert_eq!(
        post(&s.gw, "travel", &researcher, Some(&planners), list())
            .await
            .status(),
        StatusCode::NOT_FOUND,
        "the delegate does not ride the delegator's session"
    );
    let researchers = initialize(&s.gw, "travel", &researcher).await;
    assert_eq!(
        post(&s.gw, "travel", &researcher, Some(&researchers), list())
            .await
            .status(),
        StatusCode::OK
    );
    assert_eq!(
        post(&s.gw, "travel", &planner, Some(&researchers), list())
            .await
            .status(),
        StatusCode::NOT_FOUND,
        "nor the delegator the delegate's"
    );
    // Another writ delegated to the same agent acts for the same agent.
    let again = delegated(
        &s.gw,
        &writ_for(&s.gw, "planner", "travel"),
        "default/researcher",
    );
    assert_eq!(
        post(&s.gw, "travel", &again, Some(&researchers), list())
            .await
            .status(),
        StatusCode::OK
    );
}

#[tokio::test]
async fn a_malformed_session_id_is_400_and_never_forwarded() {
    let s = setup().await;
    let alice = writ_for(&s.gw, "alice", "travel");
    let send = |value: &'static [u8], twice: bool| {
        let mut headers = HeaderMap::new();
        let value = HeaderValue::from_bytes(value).expect("a header value");
        headers.append("mcp-session-id", value.clone());
        if twice {
            headers.append("mcp-session-id", value);
        }
        reqwest::Client::new()
            .post(s.gw.url("/mcp/travel"))
            .bearer_auth(&alice)
            .headers(headers)
            .json(&list())
            .send()
    };
    let overlong: &'static [u8] = Box::leak(vec![b'a'; 257].into_boxed_slice());
    for (value, twice) in [
        (overlong, false),
        ("caf\u{e9}".as_bytes(), false),
        (&b"two words"[..], false),
        (&b""[..], false),
        (&b"abc"[..], true),
    ] {
        let (status, body) = refusal(send(value, twice).await.expect("answered")).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{value:?}: {body}");
        assert!(body.contains("invalid_session_id"), "{body}");
    }
    assert_eq!(s.server.requests(), 0);
    // 256 visible characters are a well-formed id (of no session).
    let longest = "~".repeat(256);
    assert_eq!(
        post(&s.gw, "travel", &alice, Some(&longest), list())
            .await
            .status(),
        StatusCode::NOT_FOUND
    );
}

async fn delete(
    gw: &TestGateway,
    upstream: &str,
    writ: &str,
    session: Option<&str>,
) -> reqwest::Response {
    let mut req = reqwest::Client::new()
        .delete(gw.url(&format!("/mcp/{upstream}")))
        .bearer_auth(writ);
    if let Some(id) = session {
        req = req.header("mcp-session-id", id);
    }
    req.send().await.expect("the gateway answers")
}

#[tokio::test]
async fn delete_ends_the_session_for_its_agent_only() {
    let s = setup().await;
    let (alice, bob) = (
        writ_for(&s.gw, "alice", "travel"),
        writ_for(&s.gw, "bob", "travel"),
    );
    let id = initialize(&s.gw, "travel", &alice).await;
    let served = s.server.requests();
    // Bob cannot end Alice's session; a DELETE names a session; a writ for another
    // upstream is refused by its grants.
    assert_eq!(
        delete(&s.gw, "travel", &bob, Some(&id)).await.status(),
        StatusCode::NOT_FOUND
    );
    let (status, body) = refusal(delete(&s.gw, "travel", &alice, None).await).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert!(body.contains("invalid_session_id"), "{body}");
    let hotel = writ_for(&s.gw, "alice", "hotel");
    assert_eq!(
        delete(&s.gw, "travel", &hotel, Some(&id)).await.status(),
        StatusCode::FORBIDDEN
    );
    assert_eq!(s.server.requests(), served);

    assert_eq!(
        delete(&s.gw, "travel", &alice, Some(&id)).await.status(),
        StatusCode::OK
    );
    assert_eq!(
        s.server.requests(),
        served + 1,
        "the DELETE reached the server"
    );
    // The binding is gone: refused at the gateway, not forwarded.
    assert_eq!(
        post(&s.gw, "travel", &alice, Some(&id), list())
            .await
            .status(),
        StatusCode::NOT_FOUND
    );
    assert_eq!(s.server.requests(), served + 1);
}

#[tokio::test]
async fn a_session_the_upstream_ended_is_forgotten() {
    let s = setup().await;
    let alice = writ_for(&s.gw, "alice", "travel");
    let id = initialize(&s.gw, "travel", &alice).await;
    // The server forgets the session on its own (a restart); the gateway hears its 404.
    s.server.sessions.lock().expect("sessions").clear();
    assert_eq!(
        post(&s.gw, "travel", &alice, Some(&id), list())
            .await
            .status(),
        StatusCode::NOT_FOUND
    );
    let served = s.server.requests();
    assert_eq!(
        post(&s.gw, "travel", &alice, Some(&id), list())
            .await
            .status(),
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        s.server.requests(),
        served,
        "refused by the gateway this time"
    );
}

#[tokio::test]
async fn an_upstream_assigning_a_bad_or_taken_id_gets_no_binding() {
    let s = setup().await;
    let (alice, bob) = (
        writ_for(&s.gw, "alice", "travel"),
        writ_for(&s.gw, "bob", "travel"),
    );
    let fixed = format!("fixed:{:016x}", rand::random::<u64>());
    let resp = initialize_as(&s.gw, "travel", &alice, &fixed).await;
    assert_eq!(resp.status(), StatusCode::OK);
    let id = fixed.trim_start_matches("fixed:").to_string();
    // The server hands Bob the id it already gave Alice: not passed on.
    let (status, body) = refusal(initialize_as(&s.gw, "travel", &bob, &fixed).await).await;
    assert_eq!(status, StatusCode::BAD_GATEWAY, "{body}");
    assert!(!body.contains(&id), "{body}");
    assert_eq!(
        post(&s.gw, "travel", &bob, Some(&id), list())
            .await
            .status(),
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        post(&s.gw, "travel", &alice, Some(&id), list())
            .await
            .status(),
        StatusCode::OK
    );
    // An id no client could send back is not passed on either.
    let overlong = format!("fixed:{}", "x".repeat(300));
    assert_eq!(
        initialize_as(&s.gw, "travel", &alice, &overlong)
            .await
            .status(),
        StatusCode::BAD_GATEWAY
    );
}

#[tokio::test]
async fn the_standalone_stream_is_its_sessions_own() {
    let s = setup().await;
    let alice = writ_for(&s.gw, "alice", "travel");
    let bob = writ_for(&s.gw, "bob", "travel");
    let session = initialize(&s.gw, "travel", &alice).await;
    let served = s.server.requests();
    let listen = |writ: &str, id: Option<&str>| {
        let mut req = reqwest::Client::new()
            .get(s.gw.url("/mcp/travel"))
            .bearer_auth(writ)
            .header("accept", "text/event-stream");
        if let Some(id) = id {
            req = req.header("mcp-session-id", id);
        }
        req.send()
    };
    // The session's own agent hears the server's messages, streamed through.
    let resp = listen(&alice, Some(&session)).await.expect("answered");
    assert_eq!(resp.status(), StatusCode::OK);
    let text = resp.text().await.expect("the stream");
    assert!(text.contains("notifications/tools/list_changed"), "{text}");
    assert_eq!(s.server.requests(), served + 1);
    // Another agent, or no session at all, is refused before the server hears of it.
    let resp = listen(&bob, Some(&session)).await.expect("answered");
    assert_eq!(resp.status(), StatusCode::NOT_FOUND);
    let resp = listen(&alice, None).await.expect("answered");
    assert_eq!(resp.status(), StatusCode::BAD_REQUEST);
    assert_eq!(s.server.requests(), served + 1);
}

/// Gives `to` the root key of `from`, as an operator copies `keys/` to every instance.
fn share_root_key(from: &TestGateway, to: &TestGateway) {
    let file = |gw: &TestGateway| gw.gateway().data_dir().join("keys").join("root-1.key");
    std::fs::copy(file(from), file(to)).expect("copy the root key");
    to.gateway().reload_keys().expect("reload keys");
}

#[tokio::test]
async fn a_session_holds_across_gateways_sharing_redis() {
    let (server, mcp) = start_server().await;
    let text = config(
        &mcp,
        &format!("[limiter]\nbackend = \"redis\"\nredis_url = \"{REDIS}\"\n"),
    );
    let one = TestGateway::start(&text).await;
    let two = TestGateway::start(&text).await;
    share_root_key(&one, &two);
    let (alice, bob) = (
        writ_for(&one, "alice", "travel"),
        writ_for(&one, "bob", "travel"),
    );

    let id = initialize(&one, "travel", &alice).await;
    assert_eq!(
        post(&two, "travel", &alice, Some(&id), list())
            .await
            .status(),
        StatusCode::OK,
        "learned on one, honoured on two"
    );
    let served = server.requests();
    assert_eq!(
        post(&two, "travel", &bob, Some(&id), list()).await.status(),
        StatusCode::NOT_FOUND
    );
    assert_eq!(server.requests(), served, "refused on two, never forwarded");

    assert_eq!(
        delete(&two, "travel", &alice, Some(&id)).await.status(),
        StatusCode::OK
    );
    assert_eq!(
        post(&one, "travel", &alice, Some(&id), list())
            .await
            .status(),
        StatusCode::NOT_FOUND,
        "ended on two, gone on one"
    );
    assert_eq!(server.requests(), served + 1);
}

#[tokio::test]
async fn with_redis_gone_sessions_fail_closed_or_fall_back_to_local_memory() {
    let mut redis = OwnRedis::start();
    let (server, mcp) = start_server().await;
    let limiter = |extra: &str| {
        let redis = format!(
            "[limiter]\nbackend = \"redis\"\nredis_url = \"{}\"\n{extra}\n",
            redis.url()
        );
        config(&mcp, &redis)
    };
    let closed = TestGateway::start(&limiter("")).await;
    let local = TestGateway::start(&limiter("on_backend_failure = \"local\"")).await;
    let alice_closed = writ_for(&closed, "alice", "travel");
    let (alice, bob) = (
        writ_for(&local, "alice", "travel"),
        writ_for(&local, "bob", "travel"),
    );
    // Bound while Redis is up: in Redis and, with the fallback, in memory too.
    let on_closed = initialize(&closed, "travel", &alice_closed).await;
    let on_local = initialize(&local, "travel", &alice).await;

    redis.stop();

    // Fail closed: a session that cannot be checked is not forwarded, and one that cannot
    // be bound is not passed on.
    let served = server.requests();
    let (status, body) =
        refusal(post(&closed, "travel", &alice_closed, Some(&on_closed), list()).await).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{body}");
    assert!(body.contains("limiter_unavailable"), "{body}");
    assert_eq!(server.requests(), served);
    let resp = initialize_as(&closed, "travel", &alice_closed, "test-client").await;
    assert_eq!(resp.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert!(!resp.headers().contains_key("mcp-session-id"));

    // Local: this instance's memory decides, and knows what it bound while Redis was up.
    assert_eq!(
        post(&local, "travel", &alice, Some(&on_local), list())
            .await
            .status(),
        StatusCode::OK
    );
    assert_eq!(
        post(&local, "travel", &bob, Some(&on_local), list())
            .await
            .status(),
        StatusCode::NOT_FOUND
    );
    let during = initialize(&local, "travel", &bob).await;
    assert_eq!(
        post(&local, "travel", &bob, Some(&during), list())
            .await
            .status(),
        StatusCode::OK
    );
    assert_eq!(
        post(&local, "travel", &alice, Some(&during), list())
            .await
            .status(),
        StatusCode::NOT_FOUND
    );
}
