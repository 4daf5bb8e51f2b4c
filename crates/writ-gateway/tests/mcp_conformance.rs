//! MCP's own conformance suite (`@modelcontextprotocol/conformance`, pinned in
//! writ-testkit's `npm/package-lock.json`) run against the gateway: every server scenario at
//! the 2025-11-25 wire (initialize sessions) and the 2026-07-28 wire (self-contained
//! requests), through `/mcp/{upstream}` to a server built with MCP's Python SDK
//! (`tests/python/conformance_server.py`), and the authorization-server scenarios against
//! the gateway's issuer.
//!
//! Each server scenario is first run straight at the Python server, as a control: what it
//! passes there is what the server gives, and the gateway, standing between, must pass it
//! too. A scenario the server alone fails is a gap of the fixture or the SDK, listed in
//! `FIXTURE_GAPS` with the reason, and the test asserts it still fails there, so a fix
//! upstream shows up. A scenario that passes straight but fails through the gateway is a
//! gateway defect; the ones known today are listed in `KNOWN_GATEWAY_GAPS` with the cause,
//! and the test asserts they still fail, so fixing one breaks the test until the entry is
//! removed. A scenario a new suite version adds is run like every other.
//!
//! The suite cannot hold a token (it has no option to send one), so a `BearerShim` adds
//! `Authorization: Bearer <writ>` to each of its requests and changes nothing else: the
//! gateway sees the suite's own `Host`, `Origin` and MCP headers. The Python server
//! counts requests whose `Authorization` is not the upstream key the gateway injects, and
//! the test asserts it saw none: the writ never reaches the MCP server.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::Stdio;

use serde_json::Value;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};
use writ_testkit::{BearerShim, TestGateway, mcp_conformance, python};

/// The key the gateway injects toward the MCP server; the server refuses to count any other.
const UPSTREAM_KEY: &str = "conformance-upstream-key-0123456789";

/// The wire versions every server scenario runs at: the last revision with `initialize`
/// sessions, and the revision of self-contained requests.
const WIRES: [&str; 2] = ["2025-11-25", "2026-07-28"];

/// The tools the fixture serves, each granted by the writ the suite uses, with any
/// arguments.
const FIXTURE_TOOLS: &[&str] = &[
    "test_simple_text",
    "test_image_content",
    "test_audio_content",
    "test_embedded_resource",
    "test_multiple_content_types",
    "test_tool_with_logging",
    "test_tool_with_progress",
    "test_error_handling",
    "test_sampling",
    "test_elicitation",
    "test_elicitation_sep1034_defaults",
    "test_elicitation_sep1330_enums",
];

/// Scenarios the Python server fails by itself, at a wire (`*` for both), and why. The
/// gateway cannot be judged on these; the test asserts each still fails straight at the
/// server.
const FIXTURE_GAPS: &[(&str, &str, &str)] = &[];

/// Scenarios that pass straight at the Python server and fail through the gateway as it
/// is, at a wire, with the cause. The test asserts each still fails through the gateway.
const KNOWN_GATEWAY_GAPS: &[(&str, &str, &str)] = &[];

/// What one scenario's checks came to.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Outcome {
    passed: usize,
    /// `check id: message` of each failed check.
    failures: Vec<String>,
}

impl Outcome {
    fn ok(&self) -> bool {
        self.failures.is_empty()
    }
}

/// The Python conformance server, stopped when dropped (its stdin closes).
struct FixtureServer {
    _child: Child,
    port: u16,
}

impl FixtureServer {
    async fn start() -> Self {
        let script =
            Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/python/conformance_server.py");
        let mut child = Command::new(python())
            .arg(script)
            .env("CONFORMANCE_UPSTREAM_KEY", UPSTREAM_KEY)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .expect("start the conformance server");
        let stdout = child.stdout.take().expect("its stdout");
        let line = BufReader::new(stdout)
            .lines()
            .next_line()
            .await
            .expect("read its first line")
            .expect("it prints its port before serving");
        let hello: Value = serde_json::from_str(&line).expect("a JSON line");
        let port = hello["port"]
            .as_u64()
            .and_then(|p| u16::try_from(p).ok())
            .expect("a port");
        Self {
            _child: child,
            port,
        }
    }

    fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }

    /// What `Authorization` the server's MCP requests carried.
    async fn seen(&self) -> Seen {
        let seen: Value = reqwest::get(self.url("/seen"))
            .await
            .expect("GET /seen")
            .json()
            .await
            .expect("JSON");
        let count = |key: &str| seen[key].as_u64().expect("a count");
        Seen {
            upstream_key: count("upstream_key"),
            foreign: count("foreign"),
        }
    }
}

/// Requests the MCP server saw, by their `Authorization` header (the control runs send
/// none).
struct Seen {
    /// Bearing the upstream key the gateway injects.
    upstream_key: u64,
    /// Bearing anything else: a writ that reached the server.
    foreign: u64,
}

/// The writ's grants: every fixture tool on the `everything` upstream, any arguments.
fn grants() -> String {
    let grants: Vec<Value> = FIXTURE_TOOLS
        .iter()
        .map(|tool| {
            serde_json::json!({
                "type": "writ:tool", "upstream": "everything", "tool": tool,
                "additional_arguments": true
            })
        })
        .collect();
    Value::Array(grants).to_string()
}

/// Runs the suite (`args` after the subcommand) writing results under `out`, and returns
/// each scenario's outcome by name. The suite's exit code is not read: it is non-zero
/// whenever any scenario fails, and the outcomes say which.
async fn run_suite(args: &[&str], out: &Path) -> BTreeMap<String, Outcome> {
    let suite = mcp_conformance();
    let output = suite
        .command(out)
        .args(args)
        .arg("--output-dir")
        .arg(out)
        .stdin(Stdio::null())
        .output()
        .await
        .expect("run the conformance suite");
    let outcomes = read_outcomes(out);
    assert!(
        !outcomes.is_empty(),
        "the suite ran no scenario ({args:?}):\nstdout:\n{}\nstderr:\n{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    outcomes
}

/// Reads `<out>/<leg>-<scenario>-<timestamp>/checks.json` for every scenario run.
fn read_outcomes(out: &Path) -> BTreeMap<String, Outcome> {
    // `-2026-12-05T22-13-00-891Z`: the timestamp the suite appends to each directory.
    const STAMP: usize = "-2026-12-05T22-13-00-891Z".len();
    let mut outcomes = BTreeMap::new();
    for entry in std::fs::read_dir(out).expect("the output directory") {
        let dir: PathBuf = entry.expect("an entry").path();
        let name = dir
            .file_name()
            .and_then(|n| n.to_str())
            .expect("a UTF-8 name")
            .to_string();
        let Some(rest) = name.split_once('-').map(|(_, rest)| rest) else {
            continue;
        };
        let scenario = rest[..rest.len().saturating_sub(STAMP)].to_string();
        let text = std::fs::read_to_string(dir.join("checks.json")).expect("checks.json");
        let checks: Vec<Value> = serde_json::from_str(&text).expect("checks.json is JSON");
        let mut outcome = Outcome {
            passed: 0,
            failures: Vec::new(),
        };
        for check in &checks {
            match check["status"].as_str() {
                Some("SUCCESS") => outcome.passed += 1,
                Some("FAILURE") => outcome.failures.push(format!(
                    "{}: {}",
                    check["id"].as_str().unwrap_or("?"),
                    check["errorMessage"].as_str().unwrap_or("")
                )),
                _ => {}
            }
        }
        outcomes.insert(scenario, outcome);
    }
    outcomes
}

fn listed<'a>(list: &'a [(&str, &str, &str)], wire: &str, scenario: &str) -> Option<&'a str> {
    list.iter()
        .find(|(w, s, _)| (*w == "*" || *w == wire) && *s == scenario)
        .map(|(_, _, why)| *why)
}

#[tokio::test(flavor = "multi_thread")]
async fn every_server_scenario_the_mcp_server_passes_passes_through_the_gateway() {
    let server = FixtureServer::start().await;
    let config = format!(
        "[upstreams.everything]\nkind = \"mcp\"\nbase_url = \"{}\"\nallow_private_network = true\napi_key = \"{UPSTREAM_KEY}\"\n",
        server.url("/mcp")
    );
    let gw = TestGateway::start(&config).await;
    let writ = gw.mint_as(&grants(), &grants(), 30);
    let shim = BearerShim::start(gw.addr(), &writ).await;
    let results = tempfile::tempdir().expect("a results directory");

    let mut report = Vec::new();
    let mut wrong = Vec::new();
    let mut ran = BTreeSet::new();
    for wire in WIRES {
        let direct_dir = results.path().join(format!("direct-{wire}"));
        let gateway_dir = results.path().join(format!("gateway-{wire}"));
        std::fs::create_dir_all(&direct_dir).expect("mkdir");
        std::fs::create_dir_all(&gateway_dir).expect("mkdir");
        let common = ["--suite", "all", "--spec-version", wire];
        let direct_url = server.url("/mcp");
        let direct = run_suite(
            &[&["server", "--url", &direct_url][..], &common[..]].concat(),
            &direct_dir,
        )
        .await;
        let gateway_url = shim.url("/mcp/everything");
        let through = run_suite(
            &[&["server", "--url", &gateway_url][..], &common[..]].concat(),
            &gateway_dir,
        )
        .await;
        assert_eq!(
            direct.keys().collect::<BTreeSet<_>>(),
            through.keys().collect(),
            "the same scenarios run at {wire}"
        );
        for (scenario, straight) in &direct {
            ran.insert((wire.to_string(), scenario.clone()));
            let via = &through[scenario];
            let line = format!(
                "{wire} {scenario}: server {} / gateway {}",
                if straight.ok() { "pass" } else { "FAIL" },
                if via.ok() { "pass" } else { "FAIL" }
            );
            report.push(line.clone());
            match (listed(FIXTURE_GAPS, wire, scenario), straight.ok()) {
                (Some(why), true) => wrong.push(format!(
                    "{line}: listed in FIXTURE_GAPS ({why}) but the server passes it now: remove the entry"
                )),
                (None, false) => wrong.push(format!(
                    "{line}: the server alone fails it (a new scenario? classify it in FIXTURE_GAPS): {:?}",
                    straight.failures
                )),
                (Some(_), false) => continue,
                (None, true) => {}
            }
            match (listed(KNOWN_GATEWAY_GAPS, wire, scenario), via.ok()) {
                (Some(cause), true) => wrong.push(format!(
                    "{line}: listed in KNOWN_GATEWAY_GAPS ({cause}) but passes through the gateway now: remove the entry"
                )),
                (None, false) => wrong.push(format!(
                    "{line}: the gateway breaks what the server passes: {:?}",
                    via.failures
                )),
                _ => {}
            }
        }
    }
    for (wire, scenario, _) in FIXTURE_GAPS.iter().chain(KNOWN_GATEWAY_GAPS) {
        assert!(
            ran.iter()
                .any(|(w, s)| (*wire == "*" || w == wire) && s == scenario),
            "{wire} {scenario} is listed but the suite no longer runs it"
        );
    }

    let seen = server.seen().await;
    assert!(seen.upstream_key > 0, "no request came through the gateway");
    assert_eq!(
        seen.foreign, 0,
        "{} requests reached the MCP server with another Authorization than the upstream key",
        seen.foreign
    );
    assert!(
        wrong.is_empty(),
        "{}\n\nall scenarios:\n{}",
        wrong.join("\n"),
        report.join("\n")
    );
}
