//! The audit and detections pages in Chromium: a real request through the gateway is
//! listed under "verified up to checkpoint N"; after one stored record line is changed in
//! the SQLite sink, the page shows the log broken at that record and links to its row.
//! A detection of an agent with a hostile name is in the feed, inert, and a new one
//! appears without a reload. Axe-clean light and dark, laptop and phone; no console
//! errors.

use serde_json::{Value, json};
use writ_testkit::{MockUpstream, Step, TestGateway, on_localhost, run_browser};

use super::{ADMIN, HOSTILE_AGENT, assert_accessible};

const KEY: &str = "sk-proj-UpstreamKeyThatMustNeverLeak0123456789";
const AWS_KEY: &str = "AKIAIOSFODNN7EXAMPLE";
const GRANT: &str = r#"{"type":"writ:llm","upstream":"demo"}"#;

fn prompt(text: &str) -> Value {
    json!({"model": "gpt-4o-mini", "messages": [{"role": "user", "content": text}]})
}

/// Signs in with the admin writ (steps 0–2).
fn sign_in(admin: &str) -> Vec<Step> {
    vec![
        Step::goto("/console/sign-in"),
        Step::fill("#writ", admin),
        Step::click_and_navigate("section[aria-labelledby=by-writ] button"),
    ]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_audit_page_shows_a_verified_log_then_names_the_tampered_record() {
    let upstream = MockUpstream::start(KEY).await;
    let gw = TestGateway::start(&format!(
        "[upstreams.demo]\nkind = \"openai\"\nbase_url = \"{}\"\nallow_private_network = true\napi_key = \"{KEY}\"\n",
        upstream.base_url()
    ))
    .await;
    let client = reqwest::Client::new();
    let allowed = client
        .post(gw.url("/v1/chat/completions"))
        .bearer_auth(gw.mint("demo", GRANT, 30))
        .json(&prompt("hello"))
        .send()
        .await
        .unwrap();
    assert_eq!(allowed.status(), 200);
    let detected = client
        .post(gw.url("/v1/chat/completions"))
        .bearer_auth(gw.mint_for(HOSTILE_AGENT, GRANT, GRANT, 30))
        .json(&prompt(&format!("AWS_ACCESS_KEY_ID={AWS_KEY}")))
        .send()
        .await
        .unwrap();
    assert_eq!(detected.status(), 400);
    gw.gateway().audit_checkpoint().await;
    let record: Value = gw
        .gateway()
        .audit_export()
        .await
        .unwrap()
        .iter()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .find(|r| r["kind"] == "request_allowed")
        .expect("the allowed request's record");
    let instance = record["instance"].as_str().unwrap().to_string();
    let seq = record["seq"].as_u64().unwrap();
    let row = format!("r-{instance}-{seq}");

    let admin = gw.mint_as(ADMIN, ADMIN, 30);
    // A writ whose prompt the page itself sends, to see the feed refresh.
    let later = gw.mint("demo", GRANT, 30);
    let base = on_localhost(gw.url("").trim_end_matches('/'));
    let mut steps = sign_in(&admin);
    steps.extend([
        Step::goto("/console/audit"),                                    // 3
        Step::text(".verification .verdict"),                            // 4
        Step::text(".verdicts"),                                         // 5
        Step::text(&format!("#{row}")),                                  // 6
        Step::count("main script"),                                      // 7
        Step::evaluate("() => window.pwned === undefined", Value::Null), // 8
        Step::axe(),                                                     // 9
        Step::screenshot("audit"),                                       // 10
        Step::color_scheme(true),                                        // 11
        Step::viewport(390, 844),                                        // 12
        Step::axe(),                                                     // 13
        Step::screenshot("audit-dark-phone"),                            // 14
        Step::color_scheme(false),                                       // 15
        Step::viewport(1280, 900),                                       // 16
        Step::goto("/console/detections"),                               // 17
        Step::text("#detections-feed"),                                  // 18
        Step::count("#detections-feed tbody tr"),                        // 19
        Step::count("#detections-feed script, [onerror]"),               // 20
        Step::axe(),                                                     // 21
        Step::screenshot("detections"),                                  // 22
        Step::evaluate(
            "async ([writ, key]) => (await fetch('/v1/chat/completions', {method: 'POST', \
             headers: {authorization: 'Bearer ' + writ, 'content-type': 'application/json'}, \
             body: JSON.stringify({model: 'gpt-4o-mini', messages: [{role: 'user', \
             content: 'AWS_ACCESS_KEY_ID=' + key}]})})).status",
            json!([later, AWS_KEY]),
        ), // 23
        Step::wait_for("#detections-feed tbody tr:nth-child(2)"),        // 24
        Step::count("#detections-feed tbody tr"),                        // 25
        Step::color_scheme(true),                                        // 26
        Step::viewport(390, 844),                                        // 27
        Step::axe(),                                                     // 28
        Step::screenshot("detections-dark-phone"),                       // 29
    ]);
    let run = run_browser(&base, "console_audit", &steps)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(
        run[4]["text"], "The log verifies: it is as the gateway wrote it.",
        "{}",
        run[5]
    );
    let verdicts = run[5]["text"].as_str().unwrap();
    assert!(
        verdicts.contains(&format!("Instance {instance}: verified up to checkpoint ")),
        "{verdicts}"
    );
    assert!(verdicts.contains("signed by key writ-audit+"), "{verdicts}");
    let shown = run[6]["text"].as_str().unwrap();
    assert!(
        shown.contains("request_allowed") && shown.contains("demo"),
        "{shown}"
    );
    assert_eq!(run[7]["count"], 0);
    assert_eq!(run[8]["value"], true, "no agent script ran");
    assert_accessible(&run, 9, "audit");
    assert_accessible(&run, 13, "audit, dark, phone");
    let feed = run[18]["text"].as_str().unwrap();
    assert!(
        feed.contains("<script>window.pwned=1</script>[U+202E]evil"),
        "the hostile agent, inert: {feed}"
    );
    assert!(
        feed.contains("aws-access-key-id") && !feed.contains(AWS_KEY),
        "{feed}"
    );
    assert_eq!(run[19]["count"], 1);
    assert_eq!(run[20]["count"], 0);
    assert_accessible(&run, 21, "detections");
    assert_eq!(run[23]["value"], 400, "the page's own prompt was refused");
    assert_eq!(run[25]["count"], 2, "the new detection, without a reload");
    assert_accessible(&run, 28, "detections, dark, phone");
    // The one refusal the page provoked on purpose is logged by Chromium; nothing else.
    let problems: Vec<String> = run
        .problems()
        .into_iter()
        .filter(|p| !(p.contains("status of 400") && p.contains("/v1/chat/completions")))
        .collect();
    assert_eq!(problems, Vec::<String>::new(), "no console errors");

    // One stored record line changed, as someone with the database file could.
    let db = rusqlite::Connection::open(gw.gateway().data_dir().join("audit.db")).unwrap();
    let changed = db
        .execute(
            "UPDATE audit_records SET line = replace(line, '\"agent\":\"demo\"', '\"agent\":\"dem0\"') \
             WHERE instance = ?1 AND seq = ?2",
            rusqlite::params![instance, seq as i64],
        )
        .unwrap();
    assert_eq!(changed, 1);
    drop(db);
    let mut steps = sign_in(&admin);
    steps.extend([
        Step::goto("/console/audit"),                       // 3
        Step::text(".verification .verdict"),               // 4
        Step::text(".verdicts li.broken"),                  // 5
        Step::attribute(".verdicts li.broken a", "href"),   // 6
        Step::click(".verdicts li.broken a"),               // 7
        Step::evaluate("() => location.hash", Value::Null), // 8
        Step::text(&format!("#{row}")),                     // 9
        Step::axe(),                                        // 10
        Step::screenshot("audit-broken"),                   // 11
        Step::color_scheme(true),                           // 12
        Step::axe(),                                        // 13
        Step::screenshot("audit-broken-dark"),              // 14
    ]);
    let run = run_browser(&base, "console_audit_broken", &steps)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(
        run[4]["text"], "The log is broken: it is not as the gateway wrote it.",
        "{}",
        run[5]
    );
    let broken = run[5]["text"].as_str().unwrap();
    assert!(
        broken.contains(&format!(
            "Instance {instance}: broken at record {seq}: record {seq} was altered"
        )),
        "{broken}"
    );
    assert_eq!(run[6]["value"], format!("#{row}"), "links to the record");
    assert_eq!(run[8]["value"], format!("#{row}"));
    assert!(
        run[9]["text"].as_str().unwrap().contains("dem0"),
        "the row as stored"
    );
    assert_accessible(&run, 10, "audit, broken");
    assert_accessible(&run, 13, "audit, broken, dark");
    assert_eq!(run.problems(), Vec::<String>::new(), "no console errors");
}
