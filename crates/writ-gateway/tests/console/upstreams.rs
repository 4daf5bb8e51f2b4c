//! The upstreams pages: each upstream a tenant can use (declared, shared, its own), how
//! its credential is injected, and the credential's versions by fingerprint — with known
//! secrets planted in the file and the vault, and none of them anywhere in any page.

use reqwest::{Method, StatusCode};
use serde_json::json;
use writ_providers::UpstreamSecret;

use super::{ACME_ADMIN, Browser, Setup};

const FILE_KEY: &str = "sk-file-PLANTED-0123456789abcdef";
const ACME_V1: &str = "sk-acme-PLANTED-v1-aaaaaaaaaaaaaaaa";
const ACME_V2: &str = "sk-acme-PLANTED-v2-bbbbbbbbbbbbbbbb";
const ACME_OWN: &str = "sk-acme-PLANTED-own-cccccccccccccc";
const GLOBEX_OWN: &str = "sk-globex-PLANTED-dddddddddddddddd";
const SECRETS: [&str; 5] = [FILE_KEY, ACME_V1, ACME_V2, ACME_OWN, GLOBEX_OWN];

fn fingerprint(secret: &str) -> String {
    UpstreamSecret::new(secret).fingerprint()
}

/// A gateway with a declared `openai` (its key in the file), a shared `claude` (no
/// credential anywhere), acme's own `acme-tools` and globex's own `globex-tools`; acme
/// holds two versions of its `openai` credential (the second active).
async fn setup() -> Setup {
    let config = format!(
        "[server]\nallow_private_upstreams = true\n\
         [upstreams.openai]\nkind = \"openai\"\nbase_url = \"http://127.0.0.1:9/v1\"\n\
         allow_private_network = true\napi_key = \"{FILE_KEY}\"\n"
    );
    let s = Setup::with_config(&config).await;
    let settings = |kind: &str| json!({"kind": kind, "base_url": "http://127.0.0.1:9", "allow_private_network": true});
    for (path, name, kind) in [
        ("/admin/v1/upstreams", "claude", "anthropic"),
        ("/admin/v1/tenants/acme/upstreams", "acme-tools", "mcp"),
        ("/admin/v1/tenants/globex/upstreams", "globex-tools", "mcp"),
    ] {
        let (status, body) = s
            .admin_api(
                Method::POST,
                path,
                json!({"name": name, "settings": settings(kind)}),
            )
            .await;
        assert_eq!(status, StatusCode::CREATED, "{name}: {body}");
    }
    for (tenant, upstream, secret) in [
        ("acme", "openai", ACME_V1),
        ("acme", "openai", ACME_V2),
        ("acme", "acme-tools", ACME_OWN),
        ("globex", "globex-tools", GLOBEX_OWN),
    ] {
        let (status, body) = s
            .admin_api(
                Method::POST,
                &format!("/admin/v1/tenants/{tenant}/credentials/{upstream}"),
                json!({"secret": secret}),
            )
            .await;
        assert_eq!(status, StatusCode::CREATED, "{body}");
    }
    s
}

/// The part of `html` about upstream `name` (its card).
fn card<'a>(html: &'a str, name: &str) -> &'a str {
    let start = html
        .find(&format!("data-upstream=\"{name}\""))
        .unwrap_or_else(|| panic!("no card for {name}"));
    let end = html[start..]
        .find("</article>")
        .map_or(html.len(), |e| start + e);
    &html[start..end]
}

#[tokio::test]
async fn upstreams_show_fingerprints_and_never_a_secret() {
    let s = setup().await;
    let mut b = Browser::new(&s.gw);
    b.sign_in(&[("writ", &s.admin)]).await;

    let index = b.get("/console/upstreams").await;
    assert_eq!(index.status, StatusCode::OK, "{}", index.body);
    index.assert_guarded("upstreams index");
    for tenant in ["acme", "globex"] {
        assert!(
            index
                .body
                .contains(&format!("/console/tenants/{tenant}/upstreams"))
        );
    }

    let acme = b.get("/console/tenants/acme/upstreams").await;
    assert_eq!(acme.status, StatusCode::OK, "{}", acme.body);
    acme.assert_guarded("acme's upstreams");
    let html = &acme.body;
    assert!(!html.contains("globex-tools"), "another tenant's upstream");

    let openai = card(html, "openai");
    assert!(openai.contains("writ.toml"), "{openai}");
    assert!(openai.contains("http://127.0.0.1:9/v1"), "{openai}");
    assert!(openai.contains("in the authorization header"), "{openai}");
    // Acme's own versions, newest first, the second active; not the file's key.
    let v1 = openai
        .find(&fingerprint(ACME_V1))
        .expect("v1's fingerprint");
    let v2 = openai
        .find(&fingerprint(ACME_V2))
        .expect("v2's fingerprint");
    assert!(v2 < v1, "newest first");
    assert!(
        openai.contains("<tr class=\"active\"><th scope=\"row\" data-label=\"Version\">2</th>")
    );
    assert!(openai.contains("<tr class=\"kept\"><th scope=\"row\" data-label=\"Version\">1</th>"));
    assert!(!openai.contains(&fingerprint(FILE_KEY)));

    let claude = card(html, "claude");
    assert!(claude.contains("shared"));
    assert!(
        claude.contains("writ secret set claude --tenant acme"),
        "says what to do: {claude}"
    );

    let own = card(html, "acme-tools");
    assert!(own.contains("this tenant&#39;s own"), "{own}");
    assert!(own.contains(&fingerprint(ACME_OWN)));

    // Globex holds no credential for openai: the file's is used, by fingerprint.
    let globex = b.get("/console/tenants/globex/upstreams").await;
    assert_eq!(globex.status, StatusCode::OK);
    let openai = card(&globex.body, "openai");
    assert!(
        openai.contains(&format!(
            "writ.toml's credential, fingerprint <code class=\"fingerprint\">{}",
            fingerprint(FILE_KEY)
        )),
        "{openai}"
    );
    assert!(globex.body.contains("globex-tools"));
    assert!(!globex.body.contains("acme-tools"));

    // No planted secret, nor a long piece of one, on any page.
    let mut pages = vec![index, acme, globex];
    for path in [
        "/console/tenants/default/upstreams",
        "/console/agents",
        "/console/tenants/acme/agents",
        "/console/approvals",
    ] {
        pages.push(b.get(path).await);
    }
    for page in &pages {
        for secret in SECRETS {
            for piece in [secret, &secret[secret.len() - 16..], &secret[..16]] {
                assert!(!page.body.contains(piece), "{piece} in a page");
            }
        }
    }
}

#[tokio::test]
async fn upstreams_are_for_a_tenants_admins_only() {
    let s = setup().await;
    let writ = s.gw.mint_as(ACME_ADMIN, ACME_ADMIN, 30);
    let mut admin = Browser::new(&s.gw);
    admin.sign_in(&[("writ", &writ), ("tenant", "acme")]).await;
    let page = admin.get("/console/upstreams").await;
    assert_eq!(page.status, StatusCode::SEE_OTHER);
    assert_eq!(page.location(), "/console/tenants/acme/upstreams");
    assert_eq!(
        admin.get("/console/tenants/acme/upstreams").await.status,
        StatusCode::OK
    );
    for tenant in [
        "globex",
        "nobody",
        "...",
        "a%2Fb",
        "%3Cscript%3E",
        &"x".repeat(300),
    ] {
        let page = admin
            .get(&format!("/console/tenants/{tenant}/upstreams"))
            .await;
        assert_eq!(page.status, StatusCode::NOT_FOUND, "{tenant}");
        assert!(!page.body.contains("globex-tools"));
    }
    let token = s.approver("acme", "carol").await;
    let mut approver = Browser::new(&s.gw);
    approver.sign_in(&[("approver_token", &token)]).await;
    for path in ["/console/upstreams", "/console/tenants/acme/upstreams"] {
        let page = approver.get(path).await;
        assert_eq!(page.status, StatusCode::FORBIDDEN, "{path}");
        assert!(page.body.contains("approvals only"), "{}", page.body);
    }
    let mut nobody = Browser::new(&s.gw);
    let page = nobody.get("/console/tenants/acme/upstreams").await;
    assert_eq!(page.status, StatusCode::SEE_OTHER);
    assert_eq!(page.location(), "/console/sign-in");
}
