//! The mocks served over HTTP, each with its provider's exact credential check: OpenAI
//! (chat completions, embeddings, Responses, models), Anthropic (Messages), the Gemini
//! API (generateContent) and Azure OpenAI (deployments), answering with [`crate::reply`].
//!
//! `writ serve --demo` runs one on a loopback port so the quickstart works offline; the
//! recording mock of tests wraps the same `respond*` functions.

use std::convert::Infallible;
use std::net::{Ipv4Addr, SocketAddr};
use std::time::{SystemTime, UNIX_EPOCH};

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use http::{HeaderMap, StatusCode, Uri, header};
use rand::RngCore;

use crate::MockKey;
use crate::reply::{self, Reply, chat_completion};

/// A random key (`sk-mock-` and 48 hex digits) for a mock nobody chose a key for.
pub fn random_key() -> MockKey {
    let mut bytes = [0u8; 24];
    rand::rngs::OsRng.fill_bytes(&mut bytes);
    MockKey::new(format!("sk-mock-{}", hex::encode(bytes)))
}

#[derive(Clone)]
struct MockState {
    key: MockKey,
}

/// The Unix time now, as the answers report it: the upstream's own wall clock, as a real
/// provider's is, not the gateway's (tests that need a fixed time use `MockUpstream`).
#[expect(
    clippy::disallowed_methods,
    reason = "an upstream's clock is not the gateway's"
)]
fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// Every mock's routes, each requiring `key` in its provider's credential header.
pub fn router(key: MockKey) -> Router {
    Router::new()
        .route("/v1/chat/completions", post(chat))
        .route("/v1/embeddings", post(embeddings))
        .route("/v1/responses", post(responses))
        .route("/v1/messages", post(messages))
        .route("/openai/deployments/{*rest}", post(azure))
        .route("/v1beta/models/{*model_action}", post(gemini))
        .route("/v1/models/{*model_action}", post(gemini))
        .route("/v1/models", axum::routing::get(models))
        .with_state(MockState { key })
}

/// OpenAI's error body.
fn openai_error(
    status: StatusCode,
    kind: &str,
    code: &str,
    message: &str,
    param: Option<&str>,
) -> Response {
    let body = serde_json::json!({"error": {"message": message, "type": kind, "code": code, "param": param}});
    (status, axum::Json(body)).into_response()
}

/// OpenAI's answer to a body it refuses.
fn openai_rejection(r: &crate::Rejection) -> Response {
    openai_error(
        StatusCode::BAD_REQUEST,
        "invalid_request_error",
        "invalid_request",
        &r.message,
        r.param.as_deref(),
    )
}

async fn chat(State(state): State<MockState>, headers: HeaderMap, body: Bytes) -> Response {
    let created = now();
    respond(&state.key, &headers, &body, created)
}

/// Whether `Authorization` is exactly `Bearer <key>`, as OpenAI requires.
fn authorized(key: &MockKey, headers: &HeaderMap) -> bool {
    let expected = format!("Bearer {}", key.expose());
    headers.get(header::AUTHORIZATION).map(|v| v.as_bytes()) == Some(expected.as_bytes())
}

/// OpenAI's answer to a wrong key.
fn unauthorized() -> Response {
    openai_error(
        StatusCode::UNAUTHORIZED,
        "invalid_request_error",
        "invalid_api_key",
        "Incorrect API key provided.",
        None,
    )
}

async fn embeddings(State(state): State<MockState>, headers: HeaderMap, body: Bytes) -> Response {
    if !authorized(&state.key, &headers) {
        return unauthorized();
    }
    match reply::embeddings(&body) {
        Ok(v) => axum::Json(v).into_response(),
        Err(r) => openai_rejection(&r),
    }
}

async fn messages(State(state): State<MockState>, headers: HeaderMap, body: Bytes) -> Response {
    let created = now();
    respond_anthropic(&state.key, &headers, &body, created)
}

/// Answers a Messages request as Anthropic would: 401 unless `x-api-key` is exactly the
/// key, 400 without `anthropic-version` or with a body Anthropic refuses.
pub fn respond_anthropic(
    key: &MockKey,
    headers: &HeaderMap,
    body: &[u8],
    created: u64,
) -> Response {
    let anthropic_error = |status: StatusCode, kind: &str, message: &str| {
        (
            status,
            axum::Json(
                serde_json::json!({"type": "error", "error": {"type": kind, "message": message}}),
            ),
        )
            .into_response()
    };
    if headers.get("x-api-key").map(|v| v.as_bytes()) != Some(key.expose().as_bytes()) {
        return anthropic_error(
            StatusCode::UNAUTHORIZED,
            "authentication_error",
            "invalid x-api-key",
        );
    }
    if headers.get("anthropic-version").is_none() {
        return anthropic_error(
            StatusCode::BAD_REQUEST,
            "invalid_request_error",
            "anthropic-version: header is required",
        );
    }
    match reply::messages(body, created) {
        Err(r) => anthropic_error(StatusCode::BAD_REQUEST, "invalid_request_error", &r.message),
        Ok(Reply::Json(v)) => axum::Json(v).into_response(),
        Ok(Reply::Stream(events)) => sse_response(events),
    }
}

async fn gemini(
    State(state): State<MockState>,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    respond_gemini(&state.key, &uri, &headers, &body)
}

/// Answers a generateContent request as the Gemini API would: 400 `API_KEY_INVALID`
/// unless `x-goog-api-key` is exactly the key; streaming only as SSE (`alt=sse`).
pub fn respond_gemini(key: &MockKey, uri: &Uri, headers: &HeaderMap, body: &[u8]) -> Response {
    let google_error = |status: StatusCode, message: &str, reason: &str| {
        (status, axum::Json(serde_json::json!({"error": {"code": status.as_u16(), "message": message, "status": reason}}))).into_response()
    };
    if headers.get("x-goog-api-key").map(|v| v.as_bytes()) != Some(key.expose().as_bytes()) {
        return google_error(
            StatusCode::BAD_REQUEST,
            "API key not valid. Please pass a valid API key.",
            "INVALID_ARGUMENT",
        );
    }
    let Some((model, stream)) = gemini_path(uri.path()) else {
        return google_error(StatusCode::NOT_FOUND, "method not found", "NOT_FOUND");
    };
    if stream
        && !uri
            .query()
            .is_some_and(|q| q.split('&').any(|p| p == "alt=sse"))
    {
        return google_error(
            StatusCode::BAD_REQUEST,
            "the mock streams only with alt=sse",
            "INVALID_ARGUMENT",
        );
    }
    match reply::generate_content(&model, stream, body) {
        Err(r) => google_error(StatusCode::BAD_REQUEST, &r.message, "INVALID_ARGUMENT"),
        Ok(Reply::Json(v)) => axum::Json(v).into_response(),
        Ok(Reply::Stream(events)) => sse_response(events),
    }
}

async fn azure(
    State(state): State<MockState>,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let created = now();
    respond_azure(&state.key, &uri, &headers, &body, created)
}

/// Answers as Azure OpenAI would: 401 unless `api-key` is exactly the key, 404 without an
/// `api-version` query parameter, then OpenAI's answer with the deployment as the model.
pub fn respond_azure(
    key: &MockKey,
    uri: &Uri,
    headers: &HeaderMap,
    body: &[u8],
    created: u64,
) -> Response {
    let azure_error = |status: StatusCode, code: &str, message: &str| {
        (
            status,
            axum::Json(serde_json::json!({"error": {"code": code, "message": message}})),
        )
            .into_response()
    };
    if headers.get("api-key").map(|v| v.as_bytes()) != Some(key.expose().as_bytes()) {
        return azure_error(
            StatusCode::UNAUTHORIZED,
            "401",
            "Access denied due to invalid subscription key.",
        );
    }
    if !uri
        .query()
        .is_some_and(|q| q.split('&').any(|p| p.starts_with("api-version=")))
    {
        return azure_error(
            StatusCode::NOT_FOUND,
            "404",
            "Resource not found: api-version is required",
        );
    }
    let Some((deployment, operation)) = azure_path(uri.path()) else {
        return azure_error(StatusCode::NOT_FOUND, "404", "Resource not found");
    };
    let Ok(serde_json::Value::Object(mut obj)) = serde_json::from_slice::<serde_json::Value>(body)
    else {
        return azure_error(StatusCode::BAD_REQUEST, "400", "body must be a JSON object");
    };
    obj.insert("model".into(), serde_json::Value::String(deployment));
    let body = serde_json::Value::Object(obj).to_string();
    let reply = match operation {
        AzureOperation::Embeddings => reply::embeddings(body.as_bytes()).map(Reply::Json),
        AzureOperation::Chat => chat_completion(body.as_bytes(), created),
    };
    match reply {
        Err(r) => azure_error(StatusCode::BAD_REQUEST, "400", &r.message),
        Ok(Reply::Json(v)) => axum::Json(v).into_response(),
        Ok(Reply::Stream(events)) => sse_response(events),
    }
}

fn sse_response(events: Vec<String>) -> Response {
    let frames = futures_util::stream::iter(
        events
            .into_iter()
            .map(|e| Ok::<_, Infallible>(Bytes::from(e))),
    );
    Response::builder()
        .header(header::CONTENT_TYPE, "text/event-stream")
        .header(header::CACHE_CONTROL, "no-cache")
        .body(Body::from_stream(frames))
        .unwrap_or_else(|_| StatusCode::INTERNAL_SERVER_ERROR.into_response())
}

async fn responses(State(state): State<MockState>, headers: HeaderMap, body: Bytes) -> Response {
    if !authorized(&state.key, &headers) {
        return unauthorized();
    }
    let created = now();
    match reply::responses(&body, created) {
        Ok(v) => axum::Json(v).into_response(),
        Err(r) => openai_rejection(&r),
    }
}

async fn models(State(state): State<MockState>, headers: HeaderMap) -> Response {
    if !authorized(&state.key, &headers) {
        return unauthorized();
    }
    axum::Json(reply::models()).into_response()
}

/// Answers a chat-completion request as OpenAI would: 401 unless `Authorization` is exactly
/// `Bearer <key>`, 400 for a body OpenAI refuses, else the completion (streamed if asked).
pub fn respond(key: &MockKey, headers: &HeaderMap, body: &[u8], created: u64) -> Response {
    if !authorized(key, headers) {
        return unauthorized();
    }
    match chat_completion(body, created) {
        Err(r) => openai_rejection(&r),
        Ok(Reply::Json(v)) => axum::Json(v).into_response(),
        Ok(Reply::Stream(events)) => sse_response(events),
    }
}

/// The model and whether the call streams, from a Gemini API path such as
/// `/v1beta/models/gemini-2.0-flash:streamGenerateContent`; `None` for other paths.
pub fn gemini_path(path: &str) -> Option<(String, bool)> {
    let rest = path
        .strip_prefix("/v1beta/models/")
        .or_else(|| path.strip_prefix("/v1/models/"))?;
    let (model, action) = rest.rsplit_once(':')?;
    if model.is_empty() || model.contains('/') {
        return None;
    }
    match action {
        "generateContent" => Some((model.to_string(), false)),
        "streamGenerateContent" => Some((model.to_string(), true)),
        _ => None,
    }
}

/// What an Azure OpenAI deployment path asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum AzureOperation {
    Chat,
    Embeddings,
}

/// The deployment and operation of `/openai/deployments/{deployment}/…`.
fn azure_path(path: &str) -> Option<(String, AzureOperation)> {
    let rest = path.strip_prefix("/openai/deployments/")?;
    let (deployment, action) = rest.split_once('/')?;
    if deployment.is_empty() {
        return None;
    }
    let operation = match action {
        "chat/completions" => AzureOperation::Chat,
        "embeddings" => AzureOperation::Embeddings,
        _ => return None,
    };
    Some((deployment.to_string(), operation))
}

/// A mock upstream serving [`router`] on a loopback port; stops when dropped.
pub struct MockServer {
    addr: SocketAddr,
    key: MockKey,
    task: tokio::task::JoinHandle<()>,
}

impl MockServer {
    /// Binds `127.0.0.1:0` and serves every mock there, requiring `key`. Fails only if no
    /// loopback port can be bound.
    pub async fn start(key: MockKey) -> std::io::Result<Self> {
        let listener = tokio::net::TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).await?;
        let addr = listener.local_addr()?;
        let app = router(key.clone());
        let task = tokio::spawn(async move {
            if let Err(e) = axum::serve(listener, app).await {
                tracing::error!(error = %e, "mock upstream stopped");
            }
        });
        Ok(Self { addr, key, task })
    }

    /// The key every request must carry.
    pub fn key(&self) -> &MockKey {
        &self.key
    }

    /// `http://127.0.0.1:<port>`, with no trailing slash.
    pub fn base_url(&self) -> String {
        format!("http://{}", self.addr)
    }
}

impl Drop for MockServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}
