//! `FaultGateway`: a gateway in front of a hostile upstream and a well-behaved one, with a
//! one-slot concurrency limit on the calling agent; its clients, and the one audit entry
//! and usage record each call leaves.

use std::time::{Duration, Instant};

use futures_util::StreamExt;
use reqwest::StatusCode;
use serde_json::{Value, json};
use writ_gateway::audit::usage_log::UsageRecord;
use writ_testkit::{MockUpstream, TestGateway};

use crate::hostile::Hostile;

/// The hostile upstream's key: it must never reach a client.
pub const KEY: &str = "sk-hostile-upstream-0123456789";
const GOOD_KEY: &str = "sk-good-upstream-0123456789";

/// The API the hostile upstream speaks.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Api {
    OpenAi,
    Anthropic,
    /// A plain HTTP upstream (`/u/hostile/echo`), its bytes passed on as they come.
    Http,
}

impl Api {
    fn kind(self) -> &'static str {
        match self {
            Api::OpenAi => "openai",
            Api::Anthropic => "anthropic",
            Api::Http => "http",
        }
    }

    fn path(self) -> &'static str {
        match self {
            Api::OpenAi => "/v1/chat/completions",
            Api::Anthropic => "/v1/messages",
            Api::Http => "/u/hostile/echo",
        }
    }

    fn body(self, stream: bool) -> Value {
        match self {
            Api::OpenAi => json!({
                "model": "gpt-4o-mini", "stream": stream,
                "messages": [{"role": "user", "content": "say something"}],
            }),
            Api::Anthropic => json!({
                "model": "claude-sonnet-4", "max_tokens": 64, "stream": stream,
                "messages": [{"role": "user", "content": "say something"}],
            }),
            Api::Http => json!({"say": "something"}),
        }
    }
}

/// A gateway whose upstream `hostile` speaks `api` and `good` is a well-behaved OpenAI
/// mock; agent `demo` may have one call in flight.
pub struct FaultGateway {
    pub gw: TestGateway,
    pub hostile: Hostile,
    pub api: Api,
    _good: MockUpstream,
}

/// A client's view of one call.
pub struct Answer {
    pub status: StatusCode,
    pub body: Vec<u8>,
    /// The body ended in an error (the connection was cut), not at its end.
    pub cut: bool,
    pub elapsed: Duration,
}

impl Answer {
    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|_| panic!("a JSON answer: {}", String::from_utf8_lossy(&self.body)))
    }

    /// The gateway's error code, read from the shape of `api`; panics on another shape.
    pub fn error_code(&self, api: Api) -> String {
        let v = self.json();
        let code = match api {
            Api::OpenAi | Api::Http => {
                assert!(v["error"]["type"].is_string(), "OpenAI's shape: {v}");
                &v["error"]["code"]
            }
            Api::Anthropic => {
                assert_eq!(v["type"], "error", "Anthropic's shape: {v}");
                assert!(v["error"]["type"].is_string(), "Anthropic's shape: {v}");
                &v["error"]["code"]
            }
        };
        assert!(
            v["error"]["message"]
                .as_str()
                .is_some_and(|m| !m.is_empty()),
            "a message: {v}"
        );
        code.as_str().unwrap_or_default().to_string()
    }

    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

impl FaultGateway {
    /// Starts the gateway; `extra` is added to the hostile upstream's table.
    pub async fn start(api: Api, hostile: Hostile, extra: &str) -> Self {
        let good = MockUpstream::start(GOOD_KEY).await;
        let gw = TestGateway::start(&format!(
            "[[limit]]\nscope = \"agent\"\ndimension = \"concurrency\"\nlimit = 1\n\n\
             [upstreams.hostile]\nkind = \"{}\"\nbase_url = \"{}\"\nallow_private_network = true\napi_key = \"{KEY}\"\n{extra}\n\
             [upstreams.good]\nkind = \"openai\"\nbase_url = \"{}\"\nallow_private_network = true\napi_key = \"{GOOD_KEY}\"\n",
            api.kind(),
            hostile.base_url(),
            good.base_url(),
        ))
        .await;
        Self {
            gw,
            hostile,
            api,
            _good: good,
        }
    }

    /// Agent `demo` calls the hostile upstream and reads the whole answer.
    pub async fn call(&self, stream: bool) -> Answer {
        let resp = self.send(stream).await;
        read_all(resp, Instant::now()).await
    }

    /// Agent `demo` calls the hostile upstream; the response as it arrives.
    pub async fn send(&self, stream: bool) -> reqwest::Response {
        self.try_send(stream).await.expect("the gateway answers")
    }

    /// As [`FaultGateway::send`], when the gateway may close the connection unanswered.
    pub async fn try_send(&self, stream: bool) -> reqwest::Result<reqwest::Response> {
        let grant = match self.api {
            Api::Http => r#"{"type":"writ:http","upstream":"hostile","path":"/echo"}"#,
            _ => r#"{"type":"writ:llm","upstream":"hostile"}"#,
        };
        let writ = self.gw.mint_as(grant, grant, 30);
        let req = reqwest::Client::new()
            .post(self.gw.url(self.api.path()))
            .json(&self.api.body(stream));
        let req = match self.api {
            Api::OpenAi | Api::Http => req.bearer_auth(writ),
            Api::Anthropic => req.header("x-api-key", writ),
        };
        req.send().await
    }

    /// `agent` calls the good upstream; its status. Agent `demo` is admitted only when
    /// its one concurrency slot is free.
    pub async fn call_good(&self, agent: &str) -> StatusCode {
        let grant = r#"{"type":"writ:llm","upstream":"good"}"#;
        let writ = self.gw.mint_for(agent, grant, grant, 30);
        let resp = reqwest::Client::new()
            .post(self.gw.url("/v1/chat/completions"))
            .bearer_auth(writ)
            .json(&Api::OpenAi.body(false))
            .send()
            .await
            .expect("the gateway answers");
        let status = resp.status();
        resp.bytes().await.expect("the good upstream's answer");
        status
    }

    /// Asserts that the agent's slot was freed: its next call is admitted at once.
    pub async fn assert_slot_freed(&self) {
        assert_eq!(
            self.call_good("demo").await,
            StatusCode::OK,
            "the call's concurrency slot was not freed"
        );
    }

    /// The one audit entry of every request to the hostile upstream, in order: its
    /// decision with its outcome's fields merged in. Panics when a decision has no
    /// outcome or more than one (a record lost or doubled).
    pub async fn hostile_calls(&self) -> Vec<Value> {
        self.gw.gateway().audit_checkpoint().await;
        let lines = self
            .gw
            .gateway()
            .audit_export()
            .await
            .expect("the audit log");
        let records: Vec<Value> = lines
            .iter()
            .filter(|l| !l.starts_with("{\"checkpoint\""))
            .map(|l| serde_json::from_str(l).expect("a JSON record"))
            .collect();
        let mut calls = Vec::new();
        for decision in records
            .iter()
            .filter(|r| r["kind"] == "request_allowed" && r["upstream"] == "hostile")
            .filter(|r| r["status"].is_null())
        {
            let outcomes: Vec<&Value> = records
                .iter()
                .filter(|r| r["kind"] == "request_outcome" && r["decision_seq"] == decision["seq"])
                .collect();
            assert_eq!(
                outcomes.len(),
                1,
                "one outcome for {decision}: {outcomes:?}"
            );
            let mut call = decision.clone();
            for (k, v) in outcomes[0].as_object().expect("an object") {
                if !["seq", "kind", "decision_seq", "prev", "hash"].contains(&k.as_str()) {
                    call[k] = v.clone();
                }
            }
            calls.push(call);
        }
        let text = lines.join("\n");
        assert!(!text.contains(KEY), "the upstream key is in the audit log");
        calls
    }

    /// The usage records of the calls to the hostile upstream, in order.
    pub fn hostile_usage(&self) -> Vec<UsageRecord> {
        self.gw
            .gateway()
            .recent_usage()
            .into_iter()
            .filter(|r| r.upstream == "hostile")
            .collect()
    }
}

/// Reads `resp` to its end or its error.
pub async fn read_all(resp: reqwest::Response, started: Instant) -> Answer {
    let status = resp.status();
    let mut body = Vec::new();
    let mut cut = false;
    let mut stream = resp.bytes_stream();
    while let Some(chunk) = stream.next().await {
        match chunk {
            Ok(bytes) => body.extend_from_slice(&bytes),
            Err(_) => {
                cut = true;
                break;
            }
        }
    }
    assert!(
        !String::from_utf8_lossy(&body).contains(KEY),
        "the upstream key reached the client"
    );
    Answer {
        status,
        body,
        cut,
        elapsed: started.elapsed(),
    }
}

/// What a client reads from an SSE body: the text of its deltas joined (OpenAI chat and
/// Anthropic deltas), and its other events' data.
pub fn sse_read(body: &[u8]) -> (String, Vec<Value>) {
    // CR, LF and CRLF all end a line.
    let body = String::from_utf8_lossy(body)
        .replace("\r\n", "\n")
        .replace('\r', "\n");
    let mut text = String::new();
    let mut others = Vec::new();
    for block in body.split("\n\n").filter(|b| !b.trim().is_empty()) {
        let data: String = block
            .lines()
            .filter_map(|l| l.strip_prefix("data: ").or_else(|| l.strip_prefix("data:")))
            .collect::<Vec<_>>()
            .join("\n");
        let data = serde_json::from_str(&data).unwrap_or(Value::String(data));
        let delta = data["choices"][0]["delta"]["content"]
            .as_str()
            .or_else(|| data["delta"]["text"].as_str());
        match delta {
            Some(piece) => text.push_str(piece),
            None => others.push(data),
        }
    }
    (text, others)
}

/// A streamed answer read by the client a piece at a time.
pub struct ClientStream {
    stream: futures_util::stream::BoxStream<'static, reqwest::Result<bytes::Bytes>>,
    /// What was read so far.
    pub body: Vec<u8>,
    /// The body ended in an error (the connection was cut), not at its end.
    pub cut: bool,
    /// The body ended, at its end or in an error.
    pub ended: bool,
}

impl ClientStream {
    pub fn new(resp: reqwest::Response) -> Self {
        Self {
            stream: resp.bytes_stream().boxed(),
            body: Vec::new(),
            cut: false,
            ended: false,
        }
    }

    /// Reads until `enough` says what was read is enough, or the body ends; panics when
    /// neither happens within [`crate::PATIENCE`].
    pub async fn read_until(&mut self, enough: impl Fn(&[u8]) -> bool) {
        let reading = async {
            while !self.ended && !enough(&self.body) {
                match self.stream.next().await {
                    Some(Ok(bytes)) => self.body.extend_from_slice(&bytes),
                    Some(Err(_)) => (self.cut, self.ended) = (true, true),
                    None => self.ended = true,
                }
            }
        };
        tokio::time::timeout(crate::PATIENCE, reading)
            .await
            .expect("the stream went on within the test's patience");
        assert!(
            !String::from_utf8_lossy(&self.body).contains(KEY),
            "the upstream key reached the client"
        );
    }

    /// Reads to the end of the body (or its error).
    pub async fn read_to_end(&mut self) {
        self.read_until(|_| false).await;
    }

    /// The delta text the client has read.
    pub fn text(&self) -> String {
        sse_read(&self.body).0
    }
}
