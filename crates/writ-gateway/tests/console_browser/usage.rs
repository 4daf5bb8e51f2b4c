//! The usage page in Chromium: an agent's real calls through the gateway to a mock
//! OpenAI-style upstream that reports usage, priced by the pricing table, shown as that
//! agent's tokens and cost; another call made while the page is open shows up without a
//! reload; the hostile agent's name stays inert; axe-core clean light and dark, laptop and
//! phone; no console errors under the CSP; once the session ends, the page says so.

use reqwest::StatusCode;
use serde_json::{Value, json};
use writ_testkit::{MockUpstream, Step, TestGateway, on_localhost, run_browser};

use super::{ADMIN, HOSTILE_AGENT, assert_accessible};

const KEY: &str = "sk-upstream-usage-browser-0123";
const CEILING: &str = r#"{"type":"writ:llm","upstream":"demo"}"#;
const MODEL: &str = "gpt-4o-mini";

/// Tokens of one call, as the upstream reported them.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
struct Used {
    input: u64,
    output: u64,
}

impl Used {
    fn from_answer(body: &Value) -> Self {
        Used {
            input: body["usage"]["prompt_tokens"].as_u64().unwrap(),
            output: body["usage"]["completion_tokens"].as_u64().unwrap(),
        }
    }

    /// What the pricing table charges for it: gpt-4o-mini is 0.15 $/M input and
    /// 0.60 $/M output, rounded up to whole micros per call.
    fn cost_micros(self) -> u64 {
        (self.input * 150_000 + self.output * 600_000).div_ceil(1_000_000)
    }
}

fn usd(micros: u64) -> String {
    format!("${}.{:06}", micros / 1_000_000, micros % 1_000_000)
}

async fn chat(gw: &TestGateway, writ: &str) -> Used {
    let (status, body) = gw
        .call_json(
            writ,
            reqwest::Method::POST,
            "/v1/chat/completions",
            Some(json!({"model": MODEL, "messages": [{"role": "user", "content": "hello"}]})),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    Used::from_answer(&body)
}

/// A chat call made by the page itself, as agent `demo`: the data plane is on the same
/// origin, so this is a real call through the gateway while the usage page is open.
const CALL_FROM_THE_PAGE: &str = r#"async ([writ, model]) => {
  const response = await fetch("/v1/chat/completions", {
    method: "POST",
    headers: {"authorization": "Bearer " + writ, "content-type": "application/json"},
    body: JSON.stringify({model, messages: [{role: "user", content: "hello again"}]}),
  });
  return {status: response.status, body: await response.json()};
}"#;

/// Ends the page's session as its sign-out button would: the status of the answer.
const SIGN_OUT_FROM_THE_PAGE: &str = r#"async () => {
  const csrf = document.querySelector(".sign-out input[name=csrf]").value;
  const response = await fetch("/console/sign-out", {
    method: "POST",
    headers: {"content-type": "application/x-www-form-urlencoded"},
    body: "csrf=" + encodeURIComponent(csrf),
    redirect: "manual",
  });
  return response.type === "opaqueredirect" ? 303 : response.status;
}"#;

/// What the page says once its session has ended.
const SESSION_ENDED: &str =
    "Your session has ended: reload the page to sign in again. These numbers no longer update.";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn usage_shows_an_agents_tokens_and_cost_and_updates_without_reload() {
    let upstream = MockUpstream::start(KEY).await;
    let gw = TestGateway::start(&format!(
        "[upstreams.demo]\nkind = \"openai\"\nbase_url = \"{}\"\nallow_private_network = true\napi_key = \"{KEY}\"\n",
        upstream.base_url()
    ))
    .await;
    let first = chat(&gw, &gw.mint_for("demo", CEILING, CEILING, 30)).await;
    let hostile = chat(&gw, &gw.mint_for(HOSTILE_AGENT, CEILING, CEILING, 30)).await;
    gw.gateway().audit_checkpoint().await;
    let second_writ = gw.mint_for("demo", CEILING, CEILING, 30);
    let admin = gw.mint_as(ADMIN, ADMIN, 30);
    let base = on_localhost(gw.url("").trim_end_matches('/'));
    let run = run_browser(
        &base,
        "console_usage",
        &[
            Step::goto("/console/usage"),                                        // 0
            Step::fill("#writ", &admin),                                         // 1
            Step::click_and_navigate("section[aria-labelledby=by-writ] button"), // 2
            Step::goto("/console/usage"),                                        // 3
            Step::text("h1"),                                                    // 4
            Step::axe(),                                                         // 5
            Step::screenshot("tenants"),                                         // 6
            Step::goto("/console/tenants/default/usage?agent=demo"),             // 7
            Step::text("h1"),                                                    // 8
            Step::text("#usage-requests"),                                       // 9
            Step::text("#usage-input"),                                          // 10
            Step::text("#usage-output"),                                         // 11
            Step::text("#usage-cost"),                                           // 12
            Step::count("svg.chart[role=img] > title"),                          // 13
            Step::axe(),                                                         // 14
            Step::screenshot("usage-agent"),                                     // 15
            Step::evaluate(CALL_FROM_THE_PAGE, json!([second_writ, MODEL])),     // 16
            Step::wait_for_text("#usage-requests", "2", 20_000),                 // 17
            Step::text("#usage-input"),                                          // 18
            Step::text("#usage-output"),                                         // 19
            Step::text("#usage-cost"),                                           // 20
            Step::text("#usage-status"),                                         // 21
            Step::evaluate(
                "() => performance.getEntriesByType('navigation').length",
                Value::Null,
            ), // 22
            Step::screenshot("usage-updated"),                                   // 23
            Step::goto("/console/tenants/default/usage?window=day"),             // 24
            Step::text("#usage-requests"),                                       // 25
            Step::text("table.usage-agents"),                                    // 26
            Step::count("main script"),                                          // 27
            Step::count("[onerror]"),                                            // 28
            Step::evaluate("() => window.pwned === undefined", Value::Null),     // 29
            Step::axe(),                                                         // 30
            Step::screenshot("usage-day"),                                       // 31
            Step::color_scheme(true),                                            // 32
            Step::viewport(390, 844),                                            // 33
            Step::axe(),                                                         // 34
            Step::screenshot("usage-dark-phone"),                                // 35
            Step::click_and_navigate("a[href$='window=month']"),                 // 36
            Step::text("#usage-requests"),                                       // 37
            Step::axe(),                                                         // 38
            Step::screenshot("usage-month-dark-phone"),                          // 39
            Step::evaluate(SIGN_OUT_FROM_THE_PAGE, Value::Null),                 // 40
            Step::wait_for_text("#usage-status", SESSION_ENDED, 20_000),         // 41
        ],
    )
    .await
    .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(run[4]["text"], "Usage by tenant");
    assert_accessible(&run, 5, "usage by tenant");
    assert_eq!(run[8]["text"], "Usage of default");
    assert_eq!(run[9]["text"], "1", "the one call of demo so far");
    assert_eq!(run[10]["text"], first.input.to_string());
    assert_eq!(run[11]["text"], first.output.to_string());
    assert!(first.cost_micros() > 0, "priced");
    assert_eq!(run[12]["text"], usd(first.cost_micros()));
    assert_eq!(run[13]["count"], 3, "three charts, each with a title");
    assert_accessible(&run, 14, "usage of one agent");

    let from_page = &run[16]["value"];
    assert_eq!(from_page["status"], 200, "{from_page}");
    let second = Used::from_answer(&from_page["body"]);
    assert_eq!(run[18]["text"], (first.input + second.input).to_string());
    assert_eq!(run[19]["text"], (first.output + second.output).to_string());
    assert_eq!(
        run[20]["text"],
        usd(first.cost_micros() + second.cost_micros()),
        "cost is priced per call and added"
    );
    let status = run[21]["text"].as_str().unwrap();
    assert!(
        status.starts_with("Usage updated: numbers read at "),
        "{status}"
    );
    assert_eq!(run[22]["value"], 1, "one navigation: updated in place");

    assert_eq!(run[25]["text"], "3", "every agent of the tenant");
    let agents = run[26]["text"].as_str().unwrap();
    assert!(
        agents.contains("<script>window.pwned=1</script>[U+202E]evil"),
        "the hostile name shown literally: {agents}"
    );
    assert!(agents.contains(&usd(hostile.cost_micros())), "{agents}");
    assert_eq!(
        run[27]["count"], 0,
        "no script element from the agent's name"
    );
    assert_eq!(run[28]["count"], 0);
    assert_eq!(run[29]["value"], true, "no agent script ran");
    assert_accessible(&run, 30, "usage over a day");
    assert_accessible(&run, 34, "usage, dark, phone");
    assert_eq!(run[37]["text"], "3");
    assert_accessible(&run, 38, "usage over a month, dark, phone");
    assert_eq!(run[40]["value"], 303, "signed out: {}", run[40]);
    // The browser logs the fragment's 401 after the sign-out; nothing else.
    let problems: Vec<String> = run
        .problems()
        .into_iter()
        .filter(|p| !(p.contains("status of 401") && p.contains("/usage/live?")))
        .collect();
    assert_eq!(
        problems,
        Vec::<String>::new(),
        "no console errors under the CSP"
    );
    assert!(run.screenshots.len() >= 6);
}
