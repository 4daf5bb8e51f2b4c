//! The browser tests' harness: runs lists of steps in a headless Debian `chromium` through
//! Playwright for Python (`browser/driver.py`) and hands back each step's JSON result, the
//! page's console and errors, and the screenshots taken.
//!
//! One driver process and one browser serve every test of a test binary (a browser takes a
//! second to start); each [`run_browser`] call gets its own browser context, so cookies and
//! storage never cross between tests. Steps are data ([`Step`]), not per-test Python: a test
//! reads as Rust, asserts with Rust, and the driver's few well-named steps are the only Python.
//!
//! A console test reads like this (the page's own script calls `navigator.credentials`;
//! the virtual authenticator answers it):
//!
//! ```no_run
//! # async fn sign_in(base_url: &str) -> Result<(), writ_testkit::BrowserError> {
//! use writ_testkit::{Step, run_browser};
//! let run = run_browser(base_url, "console_sign_in", &[
//!     Step::goto("/console"),
//!     Step::virtual_authenticator(),
//!     Step::click_and_navigate("#sign-in-with-passkey"),
//!     Step::text("h1"),
//!     Step::axe(),
//!     Step::screenshot("approvals"),
//! ])
//! .await?;
//! assert_eq!(run[3]["text"], "Pending approvals");
//! assert!(run.axe_violations(4).iter().all(|v| !v.is_serious()));
//! assert_eq!(run.problems(), Vec::<String>::new(), "no console errors");
//! # Ok(()) }
//! ```

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Write};
use std::ops::Index;
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use serde_json::{Value, json};
use tokio::sync::oneshot;

/// The Playwright driver the steps run in.
const DRIVER: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/browser/driver.py");
/// Where Debian's `chromium` package puts the browser when it is not on `PATH`.
const DEBIAN_CHROMIUM: &str = "/usr/bin/chromium";
/// How long one element or navigation wait may take before its step fails.
const STEP_TIMEOUT_MS: u64 = 5_000;
/// How long a whole run may take before the harness gives up on the driver.
const RUN_TIMEOUT: Duration = Duration::from_secs(60);
/// The largest request the driver reads; a bigger one is refused here, before sending.
const MAX_REQUEST_BYTES: usize = 1 << 20;

/// One thing the browser does; built with the constructors below, run in order by
/// [`run_browser`]. Selectors are Playwright selectors (CSS, or `text=…`).
#[derive(Debug, Clone, PartialEq)]
pub struct Step(Value);

impl Step {
    /// Opens `path` (relative to the run's base URL); results in `status`, `url` and the
    /// response's `headers` (lower-case names).
    pub fn goto(path: &str) -> Self {
        Self(json!({"do": "goto", "path": path}))
    }
    /// Sizes the page's viewport (CSS pixels, 100–4000): `viewport(390, 844)` is a phone.
    /// Applies to this run's later steps.
    pub fn viewport(width: u32, height: u32) -> Self {
        Self(json!({"do": "viewport", "width": width, "height": height}))
    }
    /// Makes `prefers-color-scheme` match `dark` (`dark: true`) or `light` for this run's
    /// later steps, so a test sees and axe-checks both themes.
    pub fn color_scheme(dark: bool) -> Self {
        let scheme = if dark { "dark" } else { "light" };
        Self(json!({"do": "color_scheme", "scheme": scheme}))
    }
    /// Types `value` into the input `selector` names, replacing what was there.
    pub fn fill(selector: &str, value: &str) -> Self {
        Self(json!({"do": "fill", "selector": selector, "value": value}))
    }
    /// Ticks the checkbox or radio `selector` names.
    pub fn check(selector: &str) -> Self {
        Self(json!({"do": "check", "selector": selector}))
    }
    /// Picks the option with `value` in the `<select>` `selector` names.
    pub fn select(selector: &str, value: &str) -> Self {
        Self(json!({"do": "select", "selector": selector, "value": value}))
    }
    /// Presses `key` (Playwright key names: `Enter`, `Tab`…) in the element `selector` names.
    pub fn press(selector: &str, key: &str) -> Self {
        Self(json!({"do": "press", "selector": selector, "key": key}))
    }
    /// Clicks the element; the page may change in place (scripts, htmx).
    pub fn click(selector: &str) -> Self {
        Self(json!({"do": "click", "selector": selector}))
    }
    /// Clicks the element and waits for the navigation it starts (a form submit, a link);
    /// results in the new `url`.
    pub fn click_and_navigate(selector: &str) -> Self {
        Self(json!({"do": "click", "selector": selector, "navigates": true}))
    }
    /// Waits until an element matching `selector` is visible (content a script adds).
    pub fn wait_for(selector: &str) -> Self {
        Self(json!({"do": "wait_for", "selector": selector}))
    }
    /// Waits until exactly one element matches `selector` and its rendered text, trimmed,
    /// is `text` (content a script changes in place), polling for at most `timeout_ms`
    /// (1–30 000); results in `text`. On timeout the error gives the last text read.
    pub fn wait_for_text(selector: &str, text: &str, timeout_ms: u32) -> Self {
        Self(
            json!({"do": "wait_for_text", "selector": selector, "text": text,
            "timeout_ms": timeout_ms}),
        )
    }
    /// Results in `text`: the element's rendered text, as a reader sees it. Fails unless
    /// exactly one element matches.
    pub fn text(selector: &str) -> Self {
        Self(json!({"do": "text", "selector": selector}))
    }
    /// Results in `count`: how many elements match `selector` in the live DOM (0 is a
    /// result, not a failure: use it to assert hostile markup made no element).
    pub fn count(selector: &str) -> Self {
        Self(json!({"do": "count", "selector": selector}))
    }
    /// Results in `value`: the attribute `name` of the one element `selector` matches, or
    /// `null` when the element lacks it.
    pub fn attribute(selector: &str, name: &str) -> Self {
        Self(json!({"do": "attribute", "selector": selector, "name": name}))
    }
    /// Results in `value`: what the JavaScript `expression` evaluates to in the page
    /// (awaited when a promise; called with `arg` when a function).
    pub fn evaluate(expression: &str, arg: Value) -> Self {
        Self(json!({"do": "evaluate", "expression": expression, "arg": arg}))
    }
    /// Saves the full page as `target/browser-screenshots/<test>/<name>.png`; results in
    /// `path`. `name`: letters, digits, `-`, `_`.
    pub fn screenshot(name: &str) -> Self {
        Self(json!({"do": "screenshot", "name": name}))
    }
    /// Runs axe-core on the page (injected through the DevTools protocol, so a strict CSP
    /// does not stop it); results in `violations` — read them with
    /// [`BrowserRun::axe_violations`].
    pub fn axe() -> Self {
        Self(json!({"do": "axe"}))
    }
    /// Results in `cookies`: the context's cookies with `name`, `value`, `domain`, `path`,
    /// `http_only`, `secure`, `same_site` and `expires`.
    pub fn cookies() -> Self {
        Self(json!({"do": "cookies"}))
    }
    /// Accepts every dialog the page opens from here on (`confirm`, `alert`, `prompt`),
    /// recording its type and message; without this step the browser dismisses them, so a
    /// `confirm` answers false and the form it guards is not sent.
    pub fn accept_dialogs() -> Self {
        Self(json!({"do": "accept_dialogs"}))
    }
    /// Results in `dialogs`: the dialogs accepted so far, each with `type` and `message`.
    pub fn dialogs() -> Self {
        Self(json!({"do": "dialogs"}))
    }
    /// Adds a virtual WebAuthn authenticator to the page (CTAP2, internal transport, resident
    /// keys, user verification that succeeds, presence given), so the page's
    /// `navigator.credentials.create/get` enrol and use a passkey without a person. The page
    /// must be on a domain (`http://localhost:<port>`), not an IP: WebAuthn refuses IPs as
    /// relying party ids. Results in `authenticator_id`.
    pub fn virtual_authenticator() -> Self {
        Self(json!({"do": "virtual_authenticator"}))
    }
    /// Results in `credentials`: the passkeys the virtual authenticator holds, with
    /// `credential_id`, `rp_id`, `resident`, `user_handle` and `sign_count` (never the
    /// private key).
    pub fn passkeys() -> Self {
        Self(json!({"do": "passkeys"}))
    }
    /// A step the driver does not know or whose arguments are wrong, as JSON: for testing
    /// that the driver refuses it clearly.
    pub fn raw(step: Value) -> Self {
        Self(step)
    }
}

/// A message the page wrote to the browser console.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConsoleMessage {
    /// `log`, `info`, `warning`, `error`, `debug`…
    pub kind: String,
    /// The message text.
    pub text: String,
    /// The script or resource it came from.
    pub url: String,
}

/// One axe-core rule the page breaks.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AxeViolation {
    /// The rule id (`image-alt`, `color-contrast`…).
    pub id: String,
    /// `minor`, `moderate`, `serious` or `critical`.
    pub impact: String,
    /// What the rule asks for.
    pub help: String,
    /// CSS selectors of the elements that break it.
    pub targets: Vec<String>,
}

impl AxeViolation {
    /// Whether the violation is `serious` or `critical`: what the console's pages must have
    /// none of.
    pub fn is_serious(&self) -> bool {
        matches!(self.impact.as_str(), "serious" | "critical")
    }
}

/// What a completed run produced. Index it by step position for that step's result.
#[derive(Debug, Clone)]
pub struct BrowserRun {
    /// Each step's JSON result, in order.
    pub results: Vec<Value>,
    /// Everything the page wrote to the console, including the browser's own errors
    /// (a failed resource load, a CSP violation).
    pub console: Vec<ConsoleMessage>,
    /// Uncaught exceptions in the page's scripts.
    pub page_errors: Vec<String>,
    /// The screenshots this run saved.
    pub screenshots: Vec<PathBuf>,
}

impl Index<usize> for BrowserRun {
    type Output = Value;
    fn index(&self, step: usize) -> &Value {
        &self.results[step]
    }
}

impl BrowserRun {
    /// The console errors and warnings and the page errors, as lines: a clean page has none.
    pub fn problems(&self) -> Vec<String> {
        let console = self
            .console
            .iter()
            .filter(|m| matches!(m.kind.as_str(), "error" | "warning"))
            .map(|m| format!("console {}: {} ({})", m.kind, m.text, m.url));
        let errors = self.page_errors.iter().map(|e| format!("page error: {e}"));
        console.chain(errors).collect()
    }

    /// The violations an [`Step::axe`] step at position `step` found.
    ///
    /// # Panics
    /// When that step is not an axe step.
    pub fn axe_violations(&self, step: usize) -> Vec<AxeViolation> {
        let list = self.results[step]["violations"]
            .as_array()
            .unwrap_or_else(|| panic!("step {step} is not an axe step: {}", self.results[step]));
        let field = |v: &Value, k: &str| v[k].as_str().unwrap_or_default().to_owned();
        list.iter()
            .map(|v| AxeViolation {
                id: field(v, "id"),
                impact: field(v, "impact"),
                help: field(v, "help"),
                targets: v["targets"]
                    .as_array()
                    .map(|t| {
                        t.iter()
                            .filter_map(|s| s.as_str().map(str::to_owned))
                            .collect()
                    })
                    .unwrap_or_default(),
            })
            .collect()
    }
}

/// Why a run did not complete.
#[derive(Debug, Clone)]
pub enum BrowserError {
    /// The browser could not be started: Chromium missing, Playwright not installed.
    Setup(String),
    /// The request was refused before any step ran (bad test name or base URL, too large).
    Request(String),
    /// A step failed; the steps before it ran. A screenshot of the page at that moment is
    /// saved as `failed-step-<index>.png` in the test's folder.
    Step {
        /// The failing step's position.
        index: usize,
        /// The failing step.
        step: Value,
        /// What went wrong (a selector that matched nothing in time, a bad argument…).
        message: String,
        /// What the run produced up to the failure, for diagnosis.
        partial: Box<BrowserRun>,
    },
    /// The driver did not answer in time or died; its log is `target/browser-driver.log`.
    Driver(String),
}

impl std::fmt::Display for BrowserError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Setup(m) => write!(f, "the browser could not start: {m}"),
            Self::Request(m) => write!(f, "the browser run was refused: {m}"),
            Self::Step {
                index,
                step,
                message,
                partial,
            } => write!(
                f,
                "step {index} {step} failed: {message}\nconsole and page errors: {:?}\nscreenshots: {:?}",
                partial.problems(),
                partial.screenshots
            ),
            Self::Driver(m) => write!(
                f,
                "the browser driver failed: {m} (see target/browser-driver.log)"
            ),
        }
    }
}

impl std::error::Error for BrowserError {}

/// `url` with its host `127.0.0.1` spelled `localhost`: a page using WebAuthn must be on a
/// domain, and Chromium resolves `localhost` to the loopback address the server bound.
pub fn on_localhost(url: &str) -> String {
    url.replacen("://127.0.0.1:", "://localhost:", 1)
}

/// Runs `steps` in a fresh browser context against `base_url` (`http://localhost:<port>`),
/// saving screenshots under `target/browser-screenshots/<test>/`. Starts the shared browser
/// on first use (installing Playwright and axe-core into `target/` if needed).
///
/// # Errors
/// [`BrowserError`] naming the failing step, or why the browser or request was refused.
pub async fn run_browser(
    base_url: &str,
    test: &str,
    steps: &[Step],
) -> Result<BrowserRun, BrowserError> {
    let driver = tokio::task::spawn_blocking(shared_driver)
        .await
        .map_err(|e| BrowserError::Setup(e.to_string()))??;
    let id = driver.next_id.fetch_add(1, Ordering::Relaxed);
    let request = json!({
        "id": id,
        "base_url": base_url,
        "test": test,
        "steps": steps.iter().map(|s| &s.0).collect::<Vec<_>>(),
    })
    .to_string();
    if request.len() > MAX_REQUEST_BYTES {
        return Err(BrowserError::Request(format!(
            "{} bytes of steps; the driver reads at most {MAX_REQUEST_BYTES}",
            request.len()
        )));
    }
    let (tx, rx) = oneshot::channel();
    {
        let mut pending = lock(&driver.pending);
        if driver.exited.load(Ordering::Acquire) {
            return Err(BrowserError::Driver("it exited".into()));
        }
        pending.insert(id, tx);
    }
    {
        let mut stdin = lock(&driver.stdin);
        if let Err(e) = writeln!(stdin, "{request}").and_then(|()| stdin.flush()) {
            lock(&driver.pending).remove(&id);
            return Err(BrowserError::Driver(format!("writing to the driver: {e}")));
        }
    }
    let reply = match tokio::time::timeout(RUN_TIMEOUT, rx).await {
        Ok(Ok(reply)) => reply,
        Ok(Err(_)) => return Err(BrowserError::Driver("it exited mid-run".into())),
        Err(_) => {
            lock(&driver.pending).remove(&id);
            return Err(BrowserError::Driver(format!(
                "no answer within {RUN_TIMEOUT:?}"
            )));
        }
    };
    parse_reply(&reply, steps)
}

/// Reads the driver's answer to one request.
fn parse_reply(reply: &Value, steps: &[Step]) -> Result<BrowserRun, BrowserError> {
    let strings = |v: &Value| -> Vec<String> {
        v.as_array()
            .map(|a| {
                a.iter()
                    .filter_map(|s| s.as_str().map(str::to_owned))
                    .collect()
            })
            .unwrap_or_default()
    };
    let run = BrowserRun {
        results: reply["results"].as_array().cloned().unwrap_or_default(),
        console: reply["console"]
            .as_array()
            .map(|a| {
                a.iter()
                    .map(|m| ConsoleMessage {
                        kind: m["type"].as_str().unwrap_or_default().to_owned(),
                        text: m["text"].as_str().unwrap_or_default().to_owned(),
                        url: m["url"].as_str().unwrap_or_default().to_owned(),
                    })
                    .collect()
            })
            .unwrap_or_default(),
        page_errors: strings(&reply["page_errors"]),
        screenshots: strings(&reply["screenshots"])
            .into_iter()
            .map(PathBuf::from)
            .collect(),
    };
    if reply["ok"] == true {
        return Ok(run);
    }
    let message = reply["error"]
        .as_str()
        .unwrap_or("no reason given")
        .to_owned();
    match reply["failed_step"]
        .as_u64()
        .and_then(|i| usize::try_from(i).ok())
    {
        Some(index) => Err(BrowserError::Step {
            index,
            step: steps.get(index).map(|s| s.0.clone()).unwrap_or(Value::Null),
            message,
            partial: Box::new(run),
        }),
        None => Err(BrowserError::Request(message)),
    }
}

/// The running driver process, shared by the test binary's tests.
struct Driver {
    stdin: Mutex<ChildStdin>,
    pending: Arc<Mutex<HashMap<u64, oneshot::Sender<Value>>>>,
    next_id: AtomicU64,
    /// Set (under the `pending` lock) when the driver's output ends: it has exited.
    exited: Arc<AtomicBool>,
    /// Kept so the process is owned; it exits when stdin closes with the test binary.
    _child: Mutex<Child>,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// The shared driver, started by the first caller; a failed start fails every caller the
/// same way.
fn shared_driver() -> Result<&'static Driver, BrowserError> {
    static DRIVER_PROCESS: OnceLock<Result<Driver, BrowserError>> = OnceLock::new();
    DRIVER_PROCESS
        .get_or_init(start_driver)
        .as_ref()
        .map_err(Clone::clone)
}

/// The Chromium executable: `chromium` on `PATH`, else Debian's path.
fn chromium() -> Result<PathBuf, BrowserError> {
    let on_path = std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|dir| dir.join("chromium"))
            .find(|candidate| candidate.is_file())
    });
    let found = on_path.unwrap_or_else(|| PathBuf::from(DEBIAN_CHROMIUM));
    if found.is_file() {
        Ok(found)
    } else {
        Err(BrowserError::Setup(
            "no `chromium` on PATH or at /usr/bin/chromium (apt-get install chromium)".into(),
        ))
    }
}

fn start_driver() -> Result<Driver, BrowserError> {
    let chromium = chromium()?;
    let python = crate::python();
    let axe = crate::npm::npm_env().join("node_modules/axe-core/axe.min.js");
    if !axe.is_file() {
        return Err(BrowserError::Setup(format!("{} missing", axe.display())));
    }
    let target = crate::npm::target_dir();
    let screenshots = target.join("browser-screenshots");
    let log = std::fs::File::create(target.join("browser-driver.log"))
        .map_err(|e| BrowserError::Setup(format!("driver log: {e}")))?;
    let mut child = Command::new(&python)
        .arg(DRIVER)
        .env("WRIT_CHROMIUM", &chromium)
        .env("WRIT_AXE_JS", &axe)
        .env("WRIT_SCREENSHOTS", &screenshots)
        .env("WRIT_STEP_TIMEOUT_MS", STEP_TIMEOUT_MS.to_string())
        .env("PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD", "1")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(log)
        .spawn()
        .map_err(|e| BrowserError::Setup(format!("{}: {e}", python.display())))?;
    let stdin = child
        .stdin
        .take()
        .ok_or_else(|| BrowserError::Setup("no stdin".into()))?;
    let stdout = child
        .stdout
        .take()
        .ok_or_else(|| BrowserError::Setup("no stdout".into()))?;
    let mut lines = BufReader::new(stdout).lines();
    let ready: Value = match lines.next() {
        Some(Ok(line)) => serde_json::from_str(&line)
            .map_err(|e| BrowserError::Setup(format!("driver said {line:?}: {e}")))?,
        _ => {
            return Err(BrowserError::Setup(
                "the driver exited before starting the browser (see target/browser-driver.log)"
                    .into(),
            ));
        }
    };
    if ready["ready"] != true {
        return Err(BrowserError::Setup(
            ready["error"]
                .as_str()
                .unwrap_or("no reason given")
                .to_owned(),
        ));
    }
    let pending: Arc<Mutex<HashMap<u64, oneshot::Sender<Value>>>> = Arc::default();
    let routes = Arc::clone(&pending);
    let exited = Arc::new(AtomicBool::new(false));
    let exit_seen = Arc::clone(&exited);
    // Answers come back in any order (runs are concurrent): route each by its id. When the
    // driver dies, dropping the senders tells every waiting run.
    std::thread::spawn(move || {
        for line in lines.map_while(Result::ok) {
            let Ok(reply) = serde_json::from_str::<Value>(&line) else {
                continue;
            };
            if let Some(tx) = reply["id"]
                .as_u64()
                .and_then(|id| lock(&routes).remove(&id))
            {
                let _ = tx.send(reply);
            }
        }
        let mut routes = lock(&routes);
        exit_seen.store(true, Ordering::Release);
        routes.clear();
    });
    Ok(Driver {
        stdin: Mutex::new(stdin),
        pending,
        next_id: AtomicU64::new(1),
        exited,
        _child: Mutex::new(child),
    })
}

/// Whether `path` is a PNG file (screenshots are checked by tests).
pub fn is_png(path: &Path) -> bool {
    std::fs::read(path).is_ok_and(|bytes| bytes.starts_with(b"\x89PNG\r\n\x1a\n"))
}
