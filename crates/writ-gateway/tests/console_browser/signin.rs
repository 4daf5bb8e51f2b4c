//! Signing in with an admin writ, the approvals page with hostile agent text inert in the
//! DOM, no console errors under the CSP, the session cookie's flags as the browser holds
//! them, and axe-core finding no serious or critical violations on the sign-in, approvals
//! and agents pages, light and dark, laptop and phone.

use serde_json::Value;
use writ_testkit::{Step, TestGateway, on_localhost, run_browser};

use super::{ADMIN, HOSTILE_ARG, assert_accessible, pending};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sign_in_and_see_approvals_in_chromium() {
    let gw = TestGateway::start("").await;
    let id = pending(&gw).await;
    let admin = gw.mint_as(ADMIN, ADMIN, 30);
    let base = on_localhost(gw.url("").trim_end_matches('/'));
    let run = run_browser(
        &base,
        "console_sign_in",
        &[
            Step::goto("/console/approvals"), // 0
            Step::text("h1"),                 // 1
            Step::axe(),                      // 2
            Step::screenshot("sign-in"),      // 3
            Step::fill("#writ", &admin),      // 4
            Step::click_and_navigate("section[aria-labelledby=by-writ] button"), // 5
            Step::text("h1"),                 // 6
            Step::count("main script"),       // 7
            Step::count("main img"),          // 8
            Step::count("[onerror]"),         // 9
            Step::evaluate("() => window.pwned === undefined", Value::Null), // 10
            Step::text(&format!("#h-{id}")),  // 11
            Step::text("table.args"),         // 12
            Step::axe(),                      // 13
            Step::screenshot("approvals"),    // 14
            Step::color_scheme(true),         // 15
            Step::viewport(390, 844),         // 16
            Step::axe(),                      // 17
            Step::screenshot("approvals-dark-phone"), // 18
            Step::goto("/console/agents"),    // 19
            Step::text("h1"),                 // 20
            Step::axe(),                      // 21
            Step::screenshot("agents"),       // 22
            Step::cookies(),                  // 23
        ],
    )
    .await
    .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(run[1]["text"], "Sign in", "no session: the sign-in page");
    assert_accessible(&run, 2, "sign-in");
    assert_eq!(run[6]["text"], "Pending approvals");
    for step in [7, 8, 9] {
        assert_eq!(
            run[step]["count"], 0,
            "step {step}: markup from the agent is inert"
        );
    }
    assert_eq!(run[10]["value"], true, "no agent script ran");
    let heading = run[11]["text"].as_str().unwrap();
    assert!(
        heading.contains("<script>window.pwned=1</script>[U+202E]evil"),
        "shown literally: {heading}"
    );
    assert!(run[12]["text"].as_str().unwrap().contains(HOSTILE_ARG));
    assert_accessible(&run, 13, "approvals");
    assert_accessible(&run, 17, "approvals, dark, phone");
    assert_eq!(run[20]["text"], "Agents by tenant");
    assert_accessible(&run, 21, "agents");
    let cookies = run[23]["cookies"].as_array().unwrap();
    let session = cookies
        .iter()
        .find(|c| c["name"] == "writ_console")
        .unwrap_or_else(|| panic!("a session cookie: {cookies:?}"));
    assert_eq!(session["http_only"], true, "{session}");
    assert_eq!(session["same_site"], "Strict", "{session}");
    assert_eq!(session["path"], "/console", "{session}");
    assert_eq!(
        run.problems(),
        Vec::<String>::new(),
        "no console errors under the CSP"
    );
    assert!(run.screenshots.len() >= 4);
}
