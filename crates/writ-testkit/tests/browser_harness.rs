//! The browser harness proven on a small fixture site served from the test: forms, axe-core
//! on an inaccessible and an accessible page, console errors, a passkey enrolled and used
//! with the virtual authenticator under a strict CSP, hostile markup inert in the DOM, and
//! the harness refusing bad steps clearly.

use std::collections::HashMap;
use std::path::Path;

use axum::Router;
use axum::http::header;
use axum::response::Html;
use axum::routing::{get, post};
use serde_json::{Value, json};
use writ_testkit::{BrowserError, BrowserRun, Step, is_png, on_localhost, run_browser};

/// What the inert page embeds: a script, an attribute break-out with an event handler, and
/// right-to-left override and zero-width characters.
const HOSTILE: &str = "<script>window.pwned=1</script>\"><img src=x onerror=\"window.pwned=2\">\u{202e}gpj.exe\u{200b}";

fn page(title: &str, body: &str) -> String {
    // An empty icon: Chromium would otherwise fetch /favicon.ico and log its 404 as an error.
    format!(
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>{title}</title>\
         <link rel=\"icon\" href=\"data:,\"></head><body><main>{body}</main></body></html>"
    )
}

fn escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
        .replace('\'', "&#x27;")
}

/// The passkey page's script: served as a file, so the page's CSP needs no `unsafe-inline`.
const PASSKEY_JS: &str = r#"
const b64 = (buf) => btoa(String.fromCharCode(...new Uint8Array(buf)));
const echo = async (what) => (await fetch("/echo", {
  method: "POST", headers: {"content-type": "application/json"}, body: JSON.stringify(what),
})).json();
const show = (id, value) => { document.getElementById(id).textContent = JSON.stringify(value); };
document.getElementById("register").addEventListener("click", async () => {
  const credential = await navigator.credentials.create({publicKey: {
    challenge: crypto.getRandomValues(new Uint8Array(32)),
    rp: {name: "Fixture", id: "localhost"},
    user: {id: new TextEncoder().encode("user-7"), name: "ada", displayName: "Ada"},
    pubKeyCredParams: [{type: "public-key", alg: -7}, {type: "public-key", alg: -257}],
    authenticatorSelection: {residentKey: "required", userVerification: "required"},
  }});
  show("registered", await echo({
    id: credential.id,
    type: credential.type,
    client_data: JSON.parse(new TextDecoder().decode(credential.response.clientDataJSON)),
    attestation_bytes: credential.response.attestationObject.byteLength,
  }));
});
document.getElementById("sign-in").addEventListener("click", async () => {
  const assertion = await navigator.credentials.get({publicKey: {
    challenge: crypto.getRandomValues(new Uint8Array(32)),
    rpId: "localhost",
    userVerification: "required",
  }});
  show("signed-in", await echo({
    id: assertion.id,
    client_data: JSON.parse(new TextDecoder().decode(assertion.response.clientDataJSON)),
    user_handle: new TextDecoder().decode(assertion.response.userHandle),
    signature_bytes: assertion.response.signature.byteLength,
    authenticator_data: b64(assertion.response.authenticatorData).length > 0,
  }));
});
"#;

/// Serves the fixture site on a loopback port; returns its base URL on `localhost` (WebAuthn
/// refuses IP addresses as relying party ids).
async fn fixture_site() -> String {
    let app = Router::new()
        .route(
            "/form",
            get(|| async {
                Html(page(
                    "Form",
                    "<h1>Greeting</h1><form method=\"post\" action=\"/form\">\
                     <label for=\"name\">Name</label><input id=\"name\" name=\"name\">\
                     <button type=\"submit\">Greet</button></form>",
                ))
            })
            .post(|body: String| async move {
                let fields: HashMap<String, String> =
                    serde_urlencoded::from_str(&body).unwrap_or_default();
                let name = fields.get("name").map_or("", String::as_str);
                Html(page(
                    "Greeted",
                    &format!(
                        "<h1>Greeted</h1><p id=\"greeting\">Hello, {}!</p>",
                        escape(name)
                    ),
                ))
            }),
        )
        .route(
            // A form that asks before it is sent, as the console's stop buttons do.
            "/confirm",
            get(|| async {
                Html(page(
                    "Confirm",
                    "<h1>Confirm</h1><form method=\"post\" action=\"/form\" \
                     onsubmit=\"return confirm('Send it?')\">\
                     <label for=\"name\">Name</label><input id=\"name\" name=\"name\">\
                     <button type=\"submit\">Greet</button></form>",
                ))
            }),
        )
        .route(
            "/inaccessible",
            get(|| async {
                Html(page(
                    "Inaccessible",
                    "<h1>Low contrast</h1>\
                     <p style=\"color:#eee;background:#fff\">Barely readable text</p>\
                     <a href=\"/form\"></a>",
                ))
            }),
        )
        .route(
            "/accessible",
            get(|| async {
                Html(page(
                    "Accessible",
                    "<h1>Readable</h1><p>Plain text on a plain page.</p>\
                     <a href=\"/form\">Go to the form</a>",
                ))
            }),
        )
        .route(
            "/console-error",
            get(|| async {
                Html(page(
                    "Noisy",
                    "<h1>Noisy</h1><script>console.error(\"fixture: deliberate error\");\
                     throw new Error(\"fixture: uncaught\");</script>",
                ))
            }),
        )
        .route(
            "/passkey",
            get(|| async {
                (
                    [(
                        header::CONTENT_SECURITY_POLICY,
                        "default-src 'self'; img-src 'self' data:",
                    )],
                    Html(page(
                        "Passkey",
                        "<h1>Passkey</h1><button id=\"register\">Register</button>\
                         <button id=\"sign-in\">Sign in</button>\
                         <pre id=\"registered\"></pre><pre id=\"signed-in\"></pre>\
                         <script src=\"/passkey.js\"></script>",
                    )),
                )
            }),
        )
        .route(
            // An inline script under a CSP without 'unsafe-inline': the browser blocks it.
            "/csp-inline",
            get(|| async {
                (
                    [(
                        header::CONTENT_SECURITY_POLICY,
                        "default-src 'self'; img-src data:",
                    )],
                    Html(page(
                        "Strict",
                        "<h1>Strict</h1><script>document.title = \"ran\";</script>",
                    )),
                )
            }),
        )
        .route(
            "/passkey.js",
            get(|| async { ([(header::CONTENT_TYPE, "text/javascript")], PASSKEY_JS) }),
        )
        .route(
            "/echo",
            post(|body: String| async move {
                let got: Value = serde_json::from_str(&body).unwrap_or(Value::Null);
                axum::Json(json!({ "received": got }))
            }),
        )
        .route(
            "/inert",
            get(|| async {
                Html(page(
                    "Inert",
                    &format!("<h1>Agent</h1><p id=\"agent\">{}</p>", escape(HOSTILE)),
                ))
            }),
        )
        .route(
            // The same page without escaping: proves the DOM checks see live markup.
            "/live",
            get(|| async {
                Html(page(
                    "Live",
                    &format!("<h1>Agent</h1><p id=\"agent\">{HOSTILE}</p>"),
                ))
            }),
        );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind the fixture site");
    let addr = listener.local_addr().expect("fixture address");
    tokio::spawn(async move { axum::serve(listener, app).await });
    let url = on_localhost(&format!("http://{addr}"));
    assert_eq!(url, format!("http://localhost:{}", addr.port()));
    url
}

async fn run(test: &str, steps: &[Step]) -> BrowserRun {
    let base = fixture_site().await;
    run_browser(&base, test, steps)
        .await
        .unwrap_or_else(|e| panic!("{e}"))
}

fn assert_screenshot(run: &BrowserRun, test: &str, page: &str) {
    let path = run
        .screenshots
        .iter()
        .find(|p| p.ends_with(Path::new(test).join(format!("{page}.png"))))
        .unwrap_or_else(|| panic!("no screenshot {test}/{page}.png in {:?}", run.screenshots));
    assert!(
        path.parent()
            .and_then(Path::parent)
            .is_some_and(|dir| dir.ends_with("target/browser-screenshots")),
        "{} is not under target/browser-screenshots/<test>/",
        path.display()
    );
    assert!(is_png(path), "{} is not a PNG", path.display());
}

#[tokio::test]
async fn a_form_is_filled_submitted_and_its_result_read() {
    let run = run(
        "form",
        &[
            Step::goto("/form"),
            Step::fill("#name", "Ada & <Grace>"),
            Step::click_and_navigate("button[type=submit]"),
            Step::text("#greeting"),
            Step::screenshot("result"),
        ],
    )
    .await;
    assert_eq!(run[0]["status"], 200);
    assert!(run[2]["url"].as_str().is_some_and(|u| u.ends_with("/form")));
    assert_eq!(run[3]["text"], "Hello, Ada & <Grace>!");
    assert_eq!(run.problems(), Vec::<String>::new());
    assert_screenshot(&run, "form", "result");
}

#[tokio::test]
async fn a_confirm_dialog_is_dismissed_unless_dialogs_are_accepted() {
    let dismissed = run(
        "confirm_dismissed",
        &[
            Step::goto("/confirm"),
            Step::fill("#name", "Ada"),
            Step::click("button[type=submit]"),
            Step::text("h1"),
        ],
    )
    .await;
    assert_eq!(
        dismissed[3]["text"], "Confirm",
        "not sent: the dialog answered no"
    );
    let accepted = run(
        "confirm_accepted",
        &[
            Step::goto("/confirm"),
            Step::accept_dialogs(),
            Step::fill("#name", "Ada"),
            Step::click_and_navigate("button[type=submit]"),
            Step::text("#greeting"),
            Step::dialogs(),
        ],
    )
    .await;
    assert_eq!(accepted[4]["text"], "Hello, Ada!");
    assert_eq!(
        accepted[5]["dialogs"],
        json!([{"type": "confirm", "message": "Send it?"}])
    );
    assert_eq!(accepted.problems(), Vec::<String>::new());
}

#[tokio::test]
async fn axe_reports_the_inaccessible_page_as_serious_and_passes_the_accessible_one() {
    let run = run(
        "axe",
        &[
            Step::goto("/inaccessible"),
            Step::axe(),
            Step::screenshot("inaccessible"),
            Step::goto("/accessible"),
            Step::axe(),
            Step::screenshot("accessible"),
        ],
    )
    .await;
    let bad = run.axe_violations(1);
    for rule in ["color-contrast", "link-name"] {
        let found = bad
            .iter()
            .find(|v| v.id == rule)
            .unwrap_or_else(|| panic!("axe missed {rule}: {bad:?}"));
        assert_eq!(found.impact, "serious", "{found:?}");
        assert!(found.is_serious());
        assert!(!found.targets.is_empty(), "{found:?} names no element");
    }
    let good: Vec<_> = run
        .axe_violations(4)
        .into_iter()
        .filter(|v| v.is_serious())
        .collect();
    assert!(good.is_empty(), "the accessible page: {good:?}");
    assert_screenshot(&run, "axe", "inaccessible");
    assert_screenshot(&run, "axe", "accessible");
}

#[tokio::test]
async fn console_errors_and_uncaught_exceptions_are_collected() {
    let run = run(
        "console",
        &[Step::goto("/console-error"), Step::screenshot("noisy")],
    )
    .await;
    assert!(
        run.console
            .iter()
            .any(|m| m.kind == "error" && m.text == "fixture: deliberate error"),
        "{:?}",
        run.console
    );
    assert!(
        run.page_errors
            .iter()
            .any(|e| e.contains("fixture: uncaught")),
        "{:?}",
        run.page_errors
    );
    assert_eq!(run.problems().len(), 2, "{:?}", run.problems());
    assert_screenshot(&run, "console", "noisy");
}

#[tokio::test]
async fn a_script_the_csp_blocks_shows_as_a_console_error() {
    let run = run(
        "csp",
        &[
            Step::goto("/csp-inline"),
            Step::evaluate("() => document.title", Value::Null),
        ],
    )
    .await;
    assert_eq!(run[1]["value"], "Strict", "the inline script did not run");
    let problems = run.problems();
    assert!(
        problems.len() == 1 && problems[0].contains("Content Security Policy"),
        "{problems:?}"
    );
}

#[tokio::test]
async fn a_passkey_is_enrolled_and_used_with_the_virtual_authenticator_under_a_strict_csp() {
    let run = run(
        "passkey",
        &[
            Step::goto("/passkey"),
            Step::virtual_authenticator(),
            Step::click("#register"),
            Step::wait_for("#registered:not(:empty)"),
            Step::text("#registered"),
            Step::passkeys(),
            Step::click("#sign-in"),
            Step::wait_for("#signed-in:not(:empty)"),
            Step::text("#signed-in"),
            Step::axe(),
            Step::screenshot("signed-in"),
        ],
    )
    .await;
    let csp = run[0]["headers"]["content-security-policy"].as_str();
    assert_eq!(csp, Some("default-src 'self'; img-src 'self' data:"));
    let registered: Value =
        serde_json::from_str(run[4]["text"].as_str().expect("text")).expect("echoed JSON");
    let registered = &registered["received"];
    assert_eq!(registered["type"], "public-key");
    assert_eq!(registered["client_data"]["type"], "webauthn.create");
    let origin = run[0]["url"]
        .as_str()
        .expect("url")
        .trim_end_matches("/passkey");
    assert_eq!(registered["client_data"]["origin"], origin);
    assert!(registered["attestation_bytes"].as_u64() > Some(0));

    let passkeys = run[5]["credentials"].as_array().expect("credentials");
    assert_eq!(passkeys.len(), 1, "{passkeys:?}");
    assert_eq!(passkeys[0]["rp_id"], "localhost");
    assert_eq!(passkeys[0]["resident"], true);
    assert!(passkeys[0].get("private_key").is_none());

    let signed: Value =
        serde_json::from_str(run[8]["text"].as_str().expect("text")).expect("echoed JSON");
    let signed = &signed["received"];
    assert_eq!(signed["client_data"]["type"], "webauthn.get");
    assert_eq!(
        signed["id"], registered["id"],
        "signed in with the enrolled passkey"
    );
    assert_eq!(signed["user_handle"], "user-7");
    assert!(signed["signature_bytes"].as_u64() > Some(0));

    let serious: Vec<_> = run
        .axe_violations(9)
        .into_iter()
        .filter(|v| v.is_serious())
        .collect();
    assert!(serious.is_empty(), "axe under CSP: {serious:?}");
    // A CSP violation would show as a console error: the harness added none.
    assert_eq!(run.problems(), Vec::<String>::new());
    assert_screenshot(&run, "passkey", "signed-in");
}

#[tokio::test]
async fn escaped_hostile_markup_is_inert_in_the_dom_and_shows_literally() {
    let dom_checks = |path: &str, shot: &str| {
        vec![
            Step::goto(path),
            Step::count("#agent script"),
            Step::count("#agent img"),
            Step::count("[onerror]"),
            Step::evaluate("() => window.pwned === undefined", Value::Null),
            Step::text("#agent"),
            Step::screenshot(shot),
        ]
    };
    let inert = run("inert", &dom_checks("/inert", "inert")).await;
    assert_eq!(inert[1]["count"], 0);
    assert_eq!(inert[2]["count"], 0);
    assert_eq!(inert[3]["count"], 0);
    assert_eq!(inert[4]["value"], true);
    assert_eq!(inert[5]["text"], HOSTILE, "the text shows literally");
    assert_eq!(inert.problems(), Vec::<String>::new());
    assert_screenshot(&inert, "inert", "inert");

    // The same checks on the unescaped page find the live markup: they can fail.
    let live = run("inert", &dom_checks("/live", "live")).await;
    assert_eq!(live[1]["count"], 1);
    assert_eq!(live[2]["count"], 1);
    assert_eq!(live[3]["count"], 1);
    assert_eq!(live[4]["value"], false);
}

#[tokio::test]
async fn a_page_is_seen_at_phone_size_in_the_dark_theme() {
    let media = "() => [innerWidth, matchMedia('(prefers-color-scheme: dark)').matches]";
    let run = run(
        "phone",
        &[
            Step::goto("/accessible"),
            Step::color_scheme(false),
            Step::evaluate(media, Value::Null),
            Step::viewport(390, 844),
            Step::color_scheme(true),
            Step::evaluate(media, Value::Null),
            Step::screenshot("dark-phone"),
        ],
    )
    .await;
    assert_eq!(run[2]["value"], json!([1280, false]));
    assert_eq!(run[5]["value"], json!([390, true]));
    assert_screenshot(&run, "phone", "dark-phone");
}

#[tokio::test]
async fn cookies_are_read_from_the_browser_context() {
    let base = fixture_site().await;
    let run = run_browser(
        &base,
        "cookies",
        &[
            Step::goto("/accessible"),
            Step::evaluate(
                "() => { document.cookie = 'theme=dark; SameSite=Strict'; }",
                Value::Null,
            ),
            Step::cookies(),
        ],
    )
    .await
    .unwrap_or_else(|e| panic!("{e}"));
    let cookies = run[2]["cookies"].as_array().expect("cookies");
    assert_eq!(cookies.len(), 1, "{cookies:?}");
    assert_eq!(cookies[0]["name"], "theme");
    assert_eq!(cookies[0]["value"], "dark");
    assert_eq!(cookies[0]["same_site"], "Strict");
    assert_eq!(cookies[0]["http_only"], false);
}

#[tokio::test]
async fn bad_steps_and_names_are_refused_naming_what_is_wrong() {
    let base = fixture_site().await;

    let unknown = run_browser(
        &base,
        "refusals",
        &[
            Step::goto("/accessible"),
            Step::raw(json!({"do": "teleport"})),
        ],
    )
    .await;
    match unknown {
        Err(BrowserError::Step {
            index,
            message,
            partial,
            ..
        }) => {
            assert_eq!(index, 1);
            assert!(
                message.contains("unknown step") && message.contains("goto"),
                "{message}"
            );
            assert_eq!(partial.results.len(), 1, "the step before it ran");
            assert_screenshot(&partial, "refusals", "failed-step-1");
        }
        other => panic!("unknown step: {other:?}"),
    }

    let missing_arg = run_browser(
        &base,
        "refusals",
        &[Step::raw(json!({"do": "fill", "selector": "#x"}))],
    )
    .await;
    match missing_arg {
        Err(BrowserError::Step {
            index: 0, message, ..
        }) => {
            assert!(message.contains("'value'"), "{message}");
        }
        other => panic!("missing argument: {other:?}"),
    }

    for (bad, what) in [
        (
            json!({"do": "viewport", "width": 5, "height": 800}),
            "100-4000",
        ),
        (
            json!({"do": "viewport", "width": "wide", "height": 800}),
            "'width'",
        ),
        (
            json!({"do": "color_scheme", "scheme": "sepia"}),
            "light or dark",
        ),
    ] {
        match run_browser(&base, "refusals", &[Step::raw(bad.clone())]).await {
            Err(BrowserError::Step {
                index: 0, message, ..
            }) => {
                assert!(message.contains(what), "{bad}: {message}");
            }
            other => panic!("{bad}: {other:?}"),
        }
    }

    let climbing = run_browser(
        &base,
        "refusals",
        &[Step::goto("/accessible"), Step::screenshot("../../escape")],
    )
    .await;
    match climbing {
        Err(BrowserError::Step {
            index: 1, message, ..
        }) => {
            assert!(message.contains("screenshot name"), "{message}");
        }
        other => panic!("climbing screenshot name: {other:?}"),
    }

    for test in ["../up", "", "a/b", &"x".repeat(65)] {
        match run_browser(&base, test, &[Step::goto("/accessible")]).await {
            Err(BrowserError::Request(message)) => {
                assert!(message.contains("test name"), "{message}");
            }
            other => panic!("test name {test:?}: {other:?}"),
        }
    }

    match run_browser("file:///etc/passwd", "refusals", &[Step::goto("/")]).await {
        Err(BrowserError::Request(message)) => assert!(message.contains("base_url"), "{message}"),
        other => panic!("file: base URL: {other:?}"),
    }

    let huge = vec![Step::fill("#name", &"x".repeat(1 << 20))];
    match run_browser(&base, "refusals", &huge).await {
        Err(BrowserError::Request(message)) => assert!(message.contains("at most"), "{message}"),
        other => panic!("oversized request: {other:?}"),
    }

    // A selector matching nothing fails its step in bounded time, naming the selector.
    let absent = run_browser(
        &base,
        "refusals",
        &[Step::goto("/accessible"), Step::text("#nowhere")],
    )
    .await;
    match absent {
        Err(BrowserError::Step {
            index: 1, message, ..
        }) => {
            assert!(message.contains("#nowhere"), "{message}");
        }
        other => panic!("absent element: {other:?}"),
    }

    // The shared browser still serves runs after all of that.
    let after = run_browser(
        &base,
        "refusals",
        &[Step::goto("/accessible"), Step::text("h1")],
    )
    .await
    .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(after[1]["text"], "Readable");
}

#[tokio::test]
async fn wait_for_text_sees_a_change_made_later_and_names_the_last_text_when_none_comes() {
    let steps = [
        Step::goto("/accessible"),
        Step::evaluate(
            "() => { setTimeout(() => { document.querySelector('h1').textContent = ' Changed '; }, 300); return true; }",
            Value::Null,
        ),
        Step::wait_for_text("h1", "Changed", 5_000),
    ];
    let done = run("harness_wait_for_text", &steps).await;
    assert_eq!(done[2]["text"], "Changed", "trimmed, as a reader sees it");

    let base = fixture_site().await;
    let never = run_browser(
        &base,
        "harness_wait_for_text_timeout",
        &[
            Step::goto("/accessible"),
            Step::wait_for_text("h1", "Never", 300),
        ],
    )
    .await;
    match never {
        Err(BrowserError::Step { index, message, .. }) => {
            assert_eq!(index, 1);
            assert!(message.contains("last: 'Readable'"), "{message}");
        }
        other => panic!("the wait times out: {other:?}"),
    }
    let refused = run_browser(
        &base,
        "harness_wait_for_text_bounds",
        &[
            Step::goto("/accessible"),
            Step::wait_for_text("h1", "x", 60_000),
        ],
    )
    .await;
    assert!(
        matches!(&refused, Err(BrowserError::Step { index: 1, message, .. }) if message.contains("1-30000")),
        "{refused:?}"
    );
}
