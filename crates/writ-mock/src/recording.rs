//! `MockUpstream`: the mocks behind a layer that records every request it receives, with
//! the failures tests need (hanging, holding a stream, playing back a script).

use std::convert::Infallible;
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::{Arc, Mutex};

use crate::MockKey;
use crate::reply::{Reply, chat_completion};
use crate::server::{gemini_path, respond, respond_anthropic, respond_azure, respond_gemini};
use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::{Request, State};
use axum::response::{IntoResponse, Response};
use axum::routing::any;
use futures_util::StreamExt;
use http::{HeaderMap, Method, StatusCode, Uri, header};

/// How the mock answers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Behavior {
    /// As [`crate::MockServer`] does.
    Normal,
    /// Never answers: for timeout tests.
    Hang,
    /// Streams the first event, then waits for [`MockUpstream::release`] before the rest:
    /// proves a gateway streams rather than buffers.
    HoldStreamAfterFirstEvent,
}

/// A response played back exactly: status, content type, body in the given chunks, then
/// what happens after the last chunk.
#[derive(Debug, Clone)]
pub struct Script {
    /// Status to answer with.
    pub status: u16,
    /// `Content-Type` to send.
    pub content_type: &'static str,
    /// Body chunks, each written separately.
    pub chunks: Vec<Vec<u8>>,
    /// After the last chunk.
    pub then: ScriptEnd,
}

/// What a scripted response does after its last chunk.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ScriptEnd {
    /// Ends the body normally.
    End,
    /// Keeps the connection open and sends nothing more.
    Hang,
    /// Breaks the body off with an error.
    Abort,
}

/// One request as the mock received it.
#[derive(Debug, Clone)]
pub struct RecordedRequest {
    /// Method.
    pub method: Method,
    /// Path and query.
    pub uri: Uri,
    /// Every header received.
    pub headers: HeaderMap,
    /// The whole body.
    pub body: Bytes,
}

#[derive(Clone)]
struct Shared {
    key: MockKey,
    /// Every key the mock accepts (`key` first): a provider account with several live
    /// keys, as during a rotation, or several tenants' accounts behind one URL.
    accepted: Arc<Mutex<Vec<MockKey>>>,
    behavior: Behavior,
    script: Option<Arc<Script>>,
    /// Headers added to every scripted response.
    headers: Arc<Vec<(String, String)>>,
    requests: Arc<Mutex<Vec<RecordedRequest>>>,
    release: Arc<tokio::sync::watch::Sender<bool>>,
}

/// The mocks on a loopback port, recording what they receive; stops when dropped. A test
/// fixture: its constructors panic if no loopback port can be bound.
pub struct MockUpstream {
    addr: SocketAddr,
    shared: Shared,
    task: tokio::task::JoinHandle<()>,
}

impl MockUpstream {
    /// Starts a normal mock requiring `Authorization: Bearer <key>`.
    pub async fn start(key: &str) -> Self {
        Self::start_with(key, Behavior::Normal).await
    }

    /// Starts a mock that answers every authorized request with `script`. A request is
    /// authorized when one of its headers holds `key` (a bearer, `x-api-key`,
    /// `x-goog-api-key`, or the access key id in a SigV4 `Authorization`).
    pub async fn start_scripted(key: &str, script: Script) -> Self {
        Self::start_scripted_with_headers(key, script, Vec::new()).await
    }

    /// As [`start_scripted`](Self::start_scripted), adding `headers` to every response: an
    /// upstream echoing what it should not.
    pub async fn start_scripted_with_headers(
        key: &str,
        script: Script,
        headers: Vec<(String, String)>,
    ) -> Self {
        Self::start_inner(key, Behavior::Normal, Some(Arc::new(script)), headers).await
    }

    /// Starts a mock with the given behavior.
    pub async fn start_with(key: &str, behavior: Behavior) -> Self {
        Self::start_inner(key, behavior, None, Vec::new()).await
    }

    async fn start_inner(
        key: &str,
        behavior: Behavior,
        script: Option<Arc<Script>>,
        headers: Vec<(String, String)>,
    ) -> Self {
        let shared = Shared {
            key: MockKey::new(key),
            accepted: Arc::new(Mutex::new(vec![MockKey::new(key)])),
            behavior,
            script,
            headers: Arc::new(headers),
            requests: Arc::default(),
            release: Arc::new(tokio::sync::watch::Sender::new(false)),
        };
        let app = Router::new()
            .fallback(any(handle))
            .with_state(shared.clone());
        let listener = tokio::net::TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
            .await
            .expect("bind mock upstream");
        let addr = listener.local_addr().expect("mock address");
        let task = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Self { addr, shared, task }
    }

    /// `http://127.0.0.1:<port>`.
    pub fn base_url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Every request received so far, in order.
    pub fn requests(&self) -> Vec<RecordedRequest> {
        self.shared
            .requests
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// Starts a normal mock accepting each of `keys` (at least one), as a provider does
    /// for several accounts or during a key rotation.
    pub async fn start_accepting(keys: &[&str]) -> Self {
        let mock = Self::start(keys.first().copied().unwrap_or_default()).await;
        for key in &keys[1..] {
            mock.accept(key);
        }
        mock
    }

    /// Accepts `key` too, from now on.
    pub fn accept(&self, key: &str) {
        let mut accepted = self
            .shared
            .accepted
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        accepted.push(MockKey::new(key));
    }

    /// Stops accepting `key` (a provider revoking it): requests carrying it get 401.
    pub fn revoke(&self, key: &str) {
        let mut accepted = self
            .shared
            .accepted
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        accepted.retain(|k| k.expose() != key);
    }

    /// Lets every held stream continue, those held now and any held later.
    pub fn release(&self) {
        self.shared.release.send_replace(true);
    }
}

impl Drop for MockUpstream {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn handle(State(mut shared): State<Shared>, req: Request) -> Response {
    let (parts, body) = req.into_parts();
    // The key this request is checked against: an accepted one it carries (in a header
    // or the query), else none that can match.
    shared.key = presented_key(&shared, &parts);
    let Ok(body) = axum::body::to_bytes(body, 64 * 1024 * 1024).await else {
        return StatusCode::BAD_REQUEST.into_response();
    };
    shared
        .requests
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .push(RecordedRequest {
            method: parts.method.clone(),
            uri: parts.uri.clone(),
            headers: parts.headers.clone(),
            body: body.clone(),
        });
    if let Some(script) = &shared.script {
        let key = shared.key.expose().as_bytes();
        let authorized = parts
            .headers
            .values()
            .any(|v| v.as_bytes().windows(key.len()).any(|w| w == key));
        if !authorized {
            return StatusCode::UNAUTHORIZED.into_response();
        }
        return play(script, &shared.headers);
    }
    if parts.uri.path().starts_with("/openai/deployments/") {
        return respond_azure(
            &shared.key,
            &parts.uri,
            &parts.headers,
            &body,
            1_700_000_000,
        );
    }
    if gemini_path(parts.uri.path()).is_some() {
        return respond_gemini(&shared.key, &parts.uri, &parts.headers, &body);
    }
    if parts.uri.path() == "/v1/messages" {
        return respond_anthropic(&shared.key, &parts.headers, &body, 1_700_000_000);
    }
    if parts.uri.path() != "/v1/chat/completions" {
        return echo(&shared.key, &parts, &body);
    }
    if parts.method != Method::POST {
        return StatusCode::METHOD_NOT_ALLOWED.into_response();
    }
    match shared.behavior {
        Behavior::Normal => respond(&shared.key, &parts.headers, &body, 1_700_000_000),
        Behavior::Hang => std::future::pending().await,
        Behavior::HoldStreamAfterFirstEvent => {
            let Ok(Reply::Stream(events)) = chat_completion(&body, 1_700_000_000) else {
                return respond(&shared.key, &parts.headers, &body, 1_700_000_000);
            };
            let mut release = shared.release.subscribe();
            let mut events = events.into_iter();
            let first = events.next().unwrap_or_default();
            let rest: Vec<String> = events.collect();
            let held = futures_util::stream::once(async move {
                let _ = release.wait_for(|released| *released).await;
                futures_util::stream::iter(rest)
            })
            .flatten();
            let stream = futures_util::stream::once(async move { first })
                .chain(held)
                .map(|e| Ok::<_, Infallible>(Bytes::from(e)));
            Response::builder()
                .header(header::CONTENT_TYPE, "text/event-stream")
                .body(Body::from_stream(stream))
                .unwrap_or_else(|_| StatusCode::INTERNAL_SERVER_ERROR.into_response())
        }
    }
}

/// Any other path: a tool server or plain HTTP API. Requires the key as
/// `Authorization: Bearer <key>`, alone in `x-tool-key`, as the password of HTTP Basic,
/// or as the `key` query parameter; then answers a JSON-RPC request with a result and
/// anything else with what it received.
/// The accepted key `parts` carries in clear (a header or the query), else the first
/// accepted one (encoded forms, such as HTTP Basic, are checked against it), else a key
/// nothing carries.
fn presented_key(shared: &Shared, parts: &http::request::Parts) -> MockKey {
    let accepted = shared.accepted.lock().unwrap_or_else(|p| p.into_inner());
    let query = parts.uri.query().unwrap_or_default().as_bytes();
    accepted
        .iter()
        .find(|k| {
            let key = k.expose().as_bytes();
            let carries = |v: &[u8]| !key.is_empty() && v.windows(key.len()).any(|w| w == key);
            parts.headers.values().any(|v| carries(v.as_bytes())) || carries(query)
        })
        .or_else(|| accepted.first())
        .cloned()
        .unwrap_or_else(|| MockKey::new("\u{0}no accepted key\u{0}"))
}

fn echo(key: &MockKey, parts: &http::request::Parts, body: &[u8]) -> Response {
    use base64::Engine;
    let bearer = format!("Bearer {}", key.expose());
    let authorization = parts
        .headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok());
    let basic_ok = authorization
        .and_then(|a| a.strip_prefix("Basic "))
        .and_then(|b| base64::engine::general_purpose::STANDARD.decode(b).ok())
        .and_then(|d| String::from_utf8(d).ok())
        .is_some_and(|pair| {
            pair.split_once(':')
                .is_some_and(|(_, pw)| pw == key.expose())
        });
    let query_ok = parts
        .uri
        .query()
        .is_some_and(|q| q.split('&').any(|p| p == format!("key={}", key.expose())));
    let authorized = authorization == Some(bearer.as_str())
        || parts.headers.get("x-tool-key").map(|v| v.as_bytes()) == Some(key.expose().as_bytes())
        || basic_ok
        || query_ok;
    if !authorized {
        return (
            StatusCode::UNAUTHORIZED,
            axum::Json(serde_json::json!({"error": "bad credential"})),
        )
            .into_response();
    }
    let json: Option<serde_json::Value> = serde_json::from_slice(body).ok();
    if let Some(rpc) = json.as_ref().filter(|v| v.get("jsonrpc").is_some()) {
        return mcp_answer(rpc);
    }
    axum::Json(serde_json::json!({
        "method": parts.method.as_str(),
        "path": parts.uri.path(),
        "query": parts.uri.query(),
        "body": String::from_utf8_lossy(body),
    }))
    .into_response()
}

/// An MCP server's answer to one JSON-RPC message: a notification is accepted with no
/// body; lists name the flight tools, a prompt and a resource; a tool call says what it
/// called; anything else succeeds empty.
fn mcp_answer(rpc: &serde_json::Value) -> Response {
    if rpc.get("id").is_none() {
        return StatusCode::ACCEPTED.into_response();
    }
    let tool = |name: &str| {
        serde_json::json!({"name": name, "inputSchema": {"type": "object", "properties": {
            "flight": {"type": "string"}, "date": {"type": "string"}}}})
    };
    let result = match rpc["method"].as_str().unwrap_or_default() {
        "tools/list" => serde_json::json!({"tools": [
            tool("book_flight"), tool("cancel_flight"), tool("list_flights")
        ]}),
        "prompts/list" => serde_json::json!({"prompts": [{"name": "trip_summary"}]}),
        "resources/list" => serde_json::json!({"resources": [
            {"uri": "flights://LH123", "name": "LH123"},
            {"uri": "flights://LH999", "name": "LH999"}
        ]}),
        "tools/call" => {
            let name = rpc["params"]["name"].as_str().unwrap_or_default();
            serde_json::json!({"content": [{"type": "text", "text": format!("called {name}")}], "isError": false})
        }
        _ => serde_json::json!({}),
    };
    axum::Json(serde_json::json!({"jsonrpc": "2.0", "id": rpc["id"], "result": result}))
        .into_response()
}

fn play(script: &Script, headers: &[(String, String)]) -> Response {
    let chunks: Vec<Result<Bytes, std::io::Error>> = script
        .chunks
        .iter()
        .map(|c| Ok(Bytes::from(c.clone())))
        .collect();
    let then = script.then;
    let tail = futures_util::stream::once(async move {
        match then {
            ScriptEnd::End => None,
            ScriptEnd::Hang => std::future::pending().await,
            ScriptEnd::Abort => Some(Err(std::io::Error::other("scripted abort"))),
        }
    })
    .filter_map(|x| async move { x });
    let body = Body::from_stream(futures_util::stream::iter(chunks).chain(tail));
    let mut response = Response::builder()
        .status(script.status)
        .header(header::CONTENT_TYPE, script.content_type);
    for (name, value) in headers {
        response = response.header(name.as_str(), value.as_str());
    }
    response
        .body(body)
        .unwrap_or_else(|_| StatusCode::INTERNAL_SERVER_ERROR.into_response())
}
