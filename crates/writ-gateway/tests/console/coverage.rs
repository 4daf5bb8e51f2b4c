//! Every console route, from one table, against the console's guarantees: no page
//! without a session (a redirect to sign-in) and no action without one (401); no action
//! without the session's CSRF token (403); no tenant page of another tenant for a
//! tenant's admin (404, as a missing one); no admin page or action for an approver (403);
//! a hostile query string never reflected; the CSP header on every answer. A route added to `console.rs` and not to [`ROUTES`]
//! fails [`every_console_route_is_in_the_table`], so no new page skips these checks.

use std::collections::BTreeSet;

use reqwest::StatusCode;

use super::{ACME_ADMIN, Browser, Page, Setup};

/// Who a route is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Access {
    /// Anyone: the sign-in page and form, the assets, the redirects, the fallback.
    Public,
    /// Approvers and admins.
    Session,
    /// Admins only.
    Admin,
}

/// One console route: its method, its path as `console.rs` writes it, and who it is for.
/// Tenant-scoped routes have `{tenant}` in their path.
struct Route {
    method: &'static str,
    path: &'static str,
    access: Access,
}

const fn route(method: &'static str, path: &'static str, access: Access) -> Route {
    Route {
        method,
        path,
        access,
    }
}

/// Every console route. Add yours here (the test below fails until you do).
const ROUTES: &[Route] = &[
    route("GET", "/console", Access::Public),
    route("GET", "/console/", Access::Public),
    route("GET", "/console/sign-in", Access::Public),
    route("POST", "/console/session", Access::Public),
    // Passkeys: before any session, guarded by the link's token or the ceremony.
    route("GET", "/console/enrol/{token}", Access::Public),
    route("POST", "/console/enrol/{token}/options", Access::Public),
    route("POST", "/console/enrol/{token}/finish", Access::Public),
    route("POST", "/console/passkey/options", Access::Public),
    route("POST", "/console/passkey/finish", Access::Public),
    route("POST", "/console/sign-out", Access::Session),
    route("GET", "/console/approvals", Access::Session),
    route("GET", "/console/approvals/{id}", Access::Session),
    route("POST", "/console/approvals/{id}/approve", Access::Session),
    route("POST", "/console/approvals/{id}/deny", Access::Session),
    route("GET", "/console/agents", Access::Admin),
    route("POST", "/console/stop", Access::Admin),
    route("POST", "/console/stop-writ", Access::Admin),
    route("GET", "/console/tenants/{tenant}/agents", Access::Admin),
    route(
        "POST",
        "/console/tenants/{tenant}/agents/{agent}/stop",
        Access::Admin,
    ),
    route("POST", "/console/tenants/{tenant}/stop", Access::Admin),
    route("GET", "/console/usage", Access::Admin),
    route("GET", "/console/tenants/{tenant}/usage", Access::Admin),
    route("GET", "/console/tenants/{tenant}/usage/live", Access::Admin),
    route("GET", "/console/audit", Access::Admin),
    route("GET", "/console/tenants/{tenant}/audit", Access::Admin),
    route("GET", "/console/detections", Access::Admin),
    route("GET", "/console/detections/feed", Access::Admin),
    route("GET", "/console/tenants/{tenant}/detections", Access::Admin),
    route(
        "GET",
        "/console/tenants/{tenant}/detections/feed",
        Access::Admin,
    ),
    route("GET", "/console/upstreams", Access::Admin),
    route("GET", "/console/tenants/{tenant}/upstreams", Access::Admin),
    route("GET", "/console/assets/console.css", Access::Public),
    route("GET", "/console/assets/console.js", Access::Public),
    route("GET", "/console/assets/favicon.svg", Access::Public),
    route("ANY", "/console/{*rest}", Access::Public),
];

impl Route {
    /// The path with its parameters filled in, for `tenant`.
    fn sample(&self, tenant: &str) -> String {
        self.path
            .replace("{tenant}", tenant)
            .replace("{agent}", "demo")
            .replace("{token}", "no-such-link")
            .replace("{id}", "apr_01JAAAAAAAAAAAAAAAAAAAAAAA")
            .replace("{*rest}", "no/such/page")
    }

    fn is_page(&self) -> bool {
        self.method == "GET"
    }

    /// A part of a page that the console's script fetches and swaps in.
    fn is_fragment(&self) -> bool {
        self.path.ends_with("/live") || self.path.ends_with("/feed")
    }

    async fn send(&self, b: &mut Browser, path: &str, csrf: Option<&str>) -> Page {
        if self.is_page() || self.method == "ANY" {
            b.get(path).await
        } else {
            match csrf {
                Some(token) => b.post(path, &[("csrf", token)]).await,
                None => b.post(path, &[]).await,
            }
        }
    }
}

/// The routes `console.rs` declares: each `.route(` with its path (a literal, or a
/// constant of `paths.rs`) and its method.
fn declared_routes() -> BTreeSet<(String, String)> {
    let src = |file: &str| {
        std::fs::read_to_string(format!("{}/src/{file}", env!("CARGO_MANIFEST_DIR")))
            .unwrap_or_else(|e| panic!("{file}: {e}"))
    };
    let constants: Vec<(String, String)> = src("console/paths.rs")
        .lines()
        .filter_map(|l| {
            let rest = l.trim().strip_prefix("pub(crate) const ")?;
            let (name, value) = rest.split_once(": &str = ")?;
            Some((
                name.to_string(),
                value.trim_end_matches(';').trim_matches('"').to_string(),
            ))
        })
        .collect();
    let console = src("console.rs");
    let mut routes = BTreeSet::new();
    for piece in console.split(".route(").skip(1) {
        let piece = piece.trim_start();
        let (path, rest) = if let Some(literal) = piece.strip_prefix('"') {
            let end = literal.find('"').unwrap();
            (literal[..end].to_string(), &literal[end + 1..])
        } else {
            let end = piece.find(',').unwrap();
            let name = piece[..end].trim();
            let alias = console
                .lines()
                .find_map(|l| {
                    let l = l.trim();
                    let inside = l.strip_prefix("use self::paths::{")?;
                    inside.split(',').find_map(|part| {
                        let (original, alias) =
                            part.trim().trim_end_matches("};").split_once(" as ")?;
                        (alias.trim().trim_end_matches('}') == name)
                            .then(|| original.trim().to_string())
                    })
                })
                .unwrap_or_else(|| name.to_string());
            let value = constants
                .iter()
                .find(|(n, _)| *n == alias)
                .unwrap_or_else(|| panic!("route path {name} is no constant of paths.rs"))
                .1
                .clone();
            (value, &piece[end..])
        };
        let method = if rest
            .trim_start_matches([',', ' ', '\n'])
            .starts_with("get(")
        {
            "GET"
        } else if rest
            .trim_start_matches([',', ' ', '\n'])
            .starts_with("post(")
        {
            "POST"
        } else {
            "ANY"
        };
        routes.insert((method.to_string(), path));
    }
    routes
}

#[test]
fn every_console_route_is_in_the_table() {
    let declared = declared_routes();
    assert!(
        declared.len() >= 19,
        "the parser found the routes: {declared:?}"
    );
    let listed: BTreeSet<(String, String)> = ROUTES
        .iter()
        .map(|r| (r.method.to_string(), r.path.to_string()))
        .collect();
    let missing: Vec<_> = declared.difference(&listed).collect();
    assert!(
        missing.is_empty(),
        "console routes missing from ROUTES in tests/console/coverage.rs (add them, with \
         who they are for): {missing:?}"
    );
    let stale: Vec<_> = listed.difference(&declared).collect();
    assert!(
        stale.is_empty(),
        "ROUTES lists routes console.rs does not: {stale:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_route_keeps_the_consoles_guarantees() {
    let s = Setup::start().await;
    let mut nobody = Browser::new(&s.gw);
    let mut operator = Browser::new(&s.gw);
    operator.sign_in(&[("writ", &s.admin)]).await;
    let acme_writ = s.gw.mint_for("acme-admin", ACME_ADMIN, ACME_ADMIN, 30);
    let mut acme = Browser::new(&s.gw);
    acme.sign_in(&[("writ", &acme_writ), ("tenant", "acme")])
        .await;
    let acme_csrf = acme.csrf().await;
    let token = s.approver("acme", "carol").await;
    let mut approver = Browser::new(&s.gw);
    approver.sign_in(&[("approver_token", &token)]).await;
    let approver_csrf = approver.csrf().await;

    for r in ROUTES {
        let what = format!("{} {}", r.method, r.path);
        let path = r.sample("acme");
        // Without a session.
        let page = r.send(&mut nobody, &path, None).await;
        page.assert_guarded(&what);
        match (r.access, r.is_page()) {
            (Access::Public, _) => {}
            // A part of a page its script fetches: 401, for the script to say so.
            (_, true) if r.is_fragment() => {
                assert_eq!(page.status, StatusCode::UNAUTHORIZED, "{what}");
            }
            (_, true) => {
                assert_eq!(page.status, StatusCode::SEE_OTHER, "{what}");
                assert_eq!(page.location(), "/console/sign-in", "{what}");
            }
            (_, false) => {
                assert_eq!(page.status, StatusCode::UNAUTHORIZED, "{what}");
                assert!(page.body.contains("sign in again"), "{what}: {}", page.body);
            }
        }
        if r.access == Access::Public {
            continue;
        }
        // A state change without the CSRF token, or with another session's.
        if !r.is_page() {
            for csrf in [None, Some(acme_csrf.as_str())] {
                let page = r.send(&mut operator, &path, csrf).await;
                page.assert_guarded(&what);
                assert_eq!(page.status, StatusCode::FORBIDDEN, "{what} {csrf:?}");
                assert!(page.body.contains("reload the page"), "{what}");
            }
        }
        // Another tenant's, by URL: answered as one that does not exist.
        if r.path.contains("{tenant}") {
            for tenant in ["globex", "other"] {
                let page = r.send(&mut acme, &r.sample(tenant), Some(&acme_csrf)).await;
                page.assert_guarded(&what);
                assert_eq!(page.status, StatusCode::NOT_FOUND, "{what} for {tenant}");
            }
        }
        // A hostile, oversized query is not reflected and breaks nothing.
        if r.is_page() {
            let long = "A".repeat(4000);
            let query = format!("{path}?%3Cscript%3Ealert(1)%3C%2Fscript%3E=1&x={long}");
            let page = r.send(&mut operator, &query, None).await;
            page.assert_guarded(&what);
            assert!(!page.status.is_server_error(), "{what}: {}", page.status);
            assert!(!page.body.contains("<script>alert"), "{what}: reflected");
            assert!(!page.body.contains(&long), "{what}: reflected");
        }
        // An approver on an admin's page or action.
        if r.access == Access::Admin {
            let page = r.send(&mut approver, &path, Some(&approver_csrf)).await;
            page.assert_guarded(&what);
            assert_eq!(page.status, StatusCode::FORBIDDEN, "{what}: an approver");
        }
    }
    // Nothing above stopped anything.
    let revocations = s.gw.gateway().store().revocation_records().await.unwrap();
    assert!(revocations.is_empty(), "{revocations:?}");
}
