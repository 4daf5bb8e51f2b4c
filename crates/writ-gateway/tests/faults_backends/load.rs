//! Load: concurrent callers that keep calling until told to stop, recording each call's
//! gateway, marker, timing and answer, so a test can sort calls by when they ran
//! against when it broke and mended a backend.

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::Value;

/// One call as its caller saw it.
#[derive(Debug, Clone)]
pub struct Call {
    /// Which gateway (the index the test gave the caller).
    pub gateway: usize,
    /// A number unique to the call, which its request carries.
    pub marker: u64,
    pub started: Instant,
    pub ended: Instant,
    pub status: u16,
    /// `error.code` of an error answer.
    pub code: Option<String>,
    /// `error.type` of an error answer.
    pub kind: Option<String>,
}

impl Call {
    /// Started at or after `from` and answered before `to`: ran wholly within.
    pub fn within(&self, from: Instant, to: Instant) -> bool {
        self.started >= from && self.ended <= to
    }
}

/// One call a caller makes: given the marker, the answer's status and body.
pub type Answer = Pin<Box<dyn Future<Output = (u16, String)> + Send>>;

/// What a caller does, over and over.
pub type Caller = Arc<dyn Fn(u64) -> Answer + Send + Sync>;

/// Callers running until [`Load::stop`].
pub struct Load {
    calls: Arc<Mutex<Vec<Call>>>,
    stop: Arc<AtomicBool>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl Load {
    /// Starts one caller per entry of `callers`: (gateway index, what it sends).
    pub fn start(callers: Vec<(usize, Caller)>) -> Self {
        let calls = Arc::new(Mutex::new(Vec::new()));
        let stop = Arc::new(AtomicBool::new(false));
        let next = Arc::new(AtomicU64::new(0));
        let tasks = callers
            .into_iter()
            .map(|(gateway, send)| {
                let (calls, stop, next) = (calls.clone(), stop.clone(), next.clone());
                tokio::spawn(async move {
                    while !stop.load(Ordering::Acquire) {
                        let marker = next.fetch_add(1, Ordering::Relaxed);
                        let started = Instant::now();
                        let (status, body) = send(marker).await;
                        let ended = Instant::now();
                        let error = serde_json::from_str::<Value>(&body)
                            .map(|v| v["error"].clone())
                            .unwrap_or_default();
                        let field = |name: &str| error[name].as_str().map(str::to_string);
                        let (code, kind) = (field("code"), field("type"));
                        calls.lock().unwrap().push(Call {
                            gateway,
                            marker,
                            started,
                            ended,
                            status,
                            code,
                            kind,
                        });
                    }
                })
            })
            .collect();
        Self { calls, stop, tasks }
    }

    /// Waits until `done` holds of the calls answered so far; panics naming `what` after
    /// `within`.
    pub async fn until(&self, what: &str, within: Duration, done: impl Fn(&[Call]) -> bool) {
        let deadline = Instant::now() + within;
        loop {
            if done(&self.calls.lock().unwrap()) {
                return;
            }
            assert!(Instant::now() < deadline, "not within {within:?}: {what}");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Stops the callers and waits for each one's call in hand; every call answered.
    pub async fn stop(self) -> Vec<Call> {
        self.stop.store(true, Ordering::Release);
        for task in self.tasks {
            task.await.expect("a caller panicked");
        }
        Arc::try_unwrap(self.calls)
            .expect("callers ended")
            .into_inner()
            .unwrap()
    }
}
