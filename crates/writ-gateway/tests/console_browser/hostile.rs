//! Hostile text on every console page, checked in the live DOM of Chromium: markup
//! (`<script>`, an attribute break-out into `<img onerror>`), a right-to-left override and
//! a zero-width space, from an agent's ceiling, an approval's agent and arguments, and the
//! signed-in person's own name (shown on every page, and as who added a credential). No
//! element is made of it, no script of it runs, it reads literally with the invisible
//! characters named; axe finds nothing serious, light and dark, laptop and phone; the
//! browser logs no error. Add a page to [`PAGES`] and it is checked the same way.

use serde_json::{Value, json};
use writ_testkit::{BrowserRun, OAuthClient, Step, TestGateway, on_localhost, run_browser};

use super::{ADMIN, HOSTILE_ARG, assert_accessible, pending};

/// The signed-in person: markup, an attribute break-out, RTL override and zero-width
/// space.
const HOSTILE_PERSON: &str =
    "<script>window.pwned=1</script>\"><img src=x onerror=\"window.pwned=1\">\u{202E}ev\u{200B}il";
/// How the console shows it: literally, the invisible characters named.
const PERSON_SHOWN: &str =
    "<script>window.pwned=1</script>\"><img src=x onerror=\"window.pwned=1\">[U+202E]ev[U+200B]il";

/// Each page to check, with an element holding hostile text and what it must read.
const PAGES: &[(&str, &str, &str)] = &[
    ("/console/approvals", "table.args", HOSTILE_ARG),
    (
        "/console/tenants/default/agents",
        "article[data-agent=bot] ul.ceiling",
        "Tool <script>window.pwned=1</script>[U+202E]x on pay; to one of \"\"><img src=x onerror=\"window.pwned=1\">\", \"a[U+200B]b\"",
    ),
    (
        "/console/tenants/default/upstreams",
        "article[data-upstream=pay] table.versions tbody",
        PERSON_SHOWN,
    ),
    // The person's own sign-in, as the audit log recorded it.
    ("/console/audit", "table.records", PERSON_SHOWN),
];

/// Where the results of one page's checks are.
struct Checked {
    scripts: usize,
    images: usize,
    handlers: usize,
    pwned: usize,
    text: usize,
    person: usize,
    axe: usize,
    fits: usize,
}

/// Adds the steps checking one page: elements made of hostile text, scripts run, the
/// text shown, axe, no sideways scrolling, and a screenshot.
fn check(steps: &mut Vec<Step>, path: &str, selector: &str, shot: &str) -> Checked {
    let mut push = |step: Step| {
        steps.push(step);
        steps.len() - 1
    };
    push(Step::goto(path));
    // The console's one script is loaded from its own file; anything else is injected.
    let scripts = push(Step::count(
        "script:not([src=\"/console/assets/console.js\"])",
    ));
    let images = push(Step::count("img"));
    let handlers = push(Step::count("[onerror], [onload], [onclick]"));
    let pwned = push(Step::evaluate(
        "() => window.pwned === undefined",
        Value::Null,
    ));
    let text = push(Step::text(selector));
    let person = push(Step::text(".sign-out p"));
    let axe = push(Step::axe());
    let fits = push(Step::evaluate(
        // Inside a box that scrolls sideways (a wide table), wider is by design; the page
        // itself must not scroll sideways.
        "() => { \
           const scrolls = e => { for (let a = e.parentElement; a; a = a.parentElement) { \
             const o = getComputedStyle(a).overflowX; \
             if (o === 'auto' || o === 'scroll') return true; } return false; }; \
           const wide = [...document.querySelectorAll('body *')] \
             .filter(e => e.getBoundingClientRect().right > window.innerWidth + 1 && !scrolls(e)) \
             .map(e => e.tagName.toLowerCase() + (e.className ? '.' + e.className : '')); \
           if (document.documentElement.scrollWidth > window.innerWidth + 1) wide.push('the page'); \
           return wide; }",
        Value::Null,
    ));
    push(Step::screenshot(shot));
    Checked {
        scripts,
        images,
        handlers,
        pwned,
        text,
        person,
        axe,
        fits,
    }
}

impl Checked {
    fn assert(&self, run: &BrowserRun, what: &str, shown: &str) {
        for (step, name) in [
            (self.scripts, "script"),
            (self.images, "img"),
            (self.handlers, "event handler"),
        ] {
            assert_eq!(
                run[step]["count"], 0,
                "{what}: no {name} element from hostile text"
            );
        }
        assert_eq!(
            run[self.pwned]["value"], true,
            "{what}: no hostile script ran"
        );
        let text = run[self.text]["text"].as_str().unwrap_or_default();
        assert!(
            text.contains(shown),
            "{what}: {shown:?} not shown literally in {text:?}"
        );
        let person = run[self.person]["text"].as_str().unwrap_or_default();
        assert!(
            person.contains(PERSON_SHOWN),
            "{what}: the person reads {person:?}"
        );
        for c in ['\u{202E}', '\u{200B}'] {
            assert!(
                !text.contains(c) && !person.contains(c),
                "{what}: raw {c:?}"
            );
        }
        assert_accessible(run, self.axe, what);
        assert_eq!(
            run[self.fits]["value"],
            json!([]),
            "{what}: elements wider than the screen"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_text_is_inert_on_every_page() {
    let gw = TestGateway::start(
        "[upstreams.pay]\nkind = \"mcp\"\nbase_url = \"http://127.0.0.1:9/mcp\"\nallow_private_network = true\napi_key = \"pay-key-0123456789\"\n",
    )
    .await;
    pending(&gw).await;
    let ceiling = json!({"type": "writ:tool", "upstream": "pay",
        "tool": "<script>window.pwned=1</script>\u{202E}x",
        "arguments": {"to": {"one_of": [HOSTILE_ARG, "a\u{200B}b"]}}});
    OAuthClient::register(&gw, "bot", &ceiling.to_string(), false).await;
    let person = gw.mint_for(HOSTILE_PERSON, ADMIN, ADMIN, 30);
    // A credential version added by the hostile person: the upstreams page names them.
    let (status, body) = gw
        .call_json(
            &person,
            reqwest::Method::POST,
            "/admin/v1/tenants/default/credentials/pay",
            Some(json!({"secret": "pay-key-PLANTED-0123456789"})),
        )
        .await;
    assert_eq!(status, 201, "{body}");

    let mut steps = vec![
        Step::goto("/console/sign-in"),
        Step::fill("#writ", &person),
        Step::click_and_navigate("section[aria-labelledby=by-writ] button"),
    ];
    let mut checks = Vec::new();
    for (theme, dark, phone) in [("light", false, false), ("dark-phone", true, true)] {
        steps.push(Step::color_scheme(dark));
        if phone {
            steps.push(Step::viewport(390, 844));
        }
        for (i, (path, selector, shown)) in PAGES.iter().enumerate() {
            let shot = format!("page-{i}-{theme}");
            checks.push((
                format!("{path} ({theme})"),
                *shown,
                check(&mut steps, path, selector, &shot),
            ));
        }
    }
    let run = run_browser(
        &on_localhost(gw.url("").trim_end_matches('/')),
        "console_hostile",
        &steps,
    )
    .await
    .unwrap_or_else(|e| panic!("{e}"));
    for (what, shown, checked) in &checks {
        checked.assert(&run, what, shown);
    }
    assert_eq!(run.problems(), Vec::<String>::new(), "no console errors");
    assert_eq!(run.screenshots.len(), PAGES.len() * 2);
}
