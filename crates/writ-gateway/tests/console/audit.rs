//! The audit and detections pages over HTTP: admins only, a tenant's admin kept to their
//! tenant by URL, every filter checked (400 naming what is taken; hostile values shown
//! inert), newest first a page at a time, the verification state of the log, and the
//! detections feed without the secret it found.

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use writ_testkit::MockUpstream;

use super::{ACME_ADMIN, Browser, Setup, escaped};

const KEY: &str = "sk-proj-UpstreamKeyThatMustNeverLeak0123456789";
const AWS_KEY: &str = "AKIAIOSFODNN7EXAMPLE";
const GRANT: &str = r#"{"type":"writ:llm","upstream":"demo"}"#;

/// Sends one chat request with a writ of agent `demo` in `tenant`, which has no upstream
/// `demo`: refused, and recorded as a denial of that tenant. The status it got.
async fn denied_request(s: &Setup, tenant: &str) -> StatusCode {
    let writ = s.gw.mint_in(tenant, GRANT, GRANT, 30);
    reqwest::Client::new()
        .post(s.gw.url("/v1/chat/completions"))
        .bearer_auth(writ)
        .json(&json!({"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}]}))
        .send()
        .await
        .unwrap()
        .status()
}

/// The records of the log that `query` names, through the admin API.
async fn records(s: &Setup, query: &str) -> Vec<Value> {
    s.gw.gateway().audit_checkpoint().await;
    let (status, body) = s
        .admin_api(
            Method::GET,
            &format!("/admin/v1/audit?{query}"),
            Value::Null,
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    body["records"].as_array().unwrap().clone()
}

/// The ids of the record rows on a page, in order.
fn row_ids(body: &str) -> Vec<String> {
    body.split("<tr id=\"")
        .skip(1)
        .map(|rest| rest[..rest.find('"').unwrap()].to_string())
        .collect()
}

/// The seq of a row id `r-<instance>-<seq>`.
fn seq(id: &str) -> u64 {
    id.rsplit('-').next().unwrap().parse().unwrap()
}

#[tokio::test]
async fn audit_and_detections_are_for_admins_and_keep_a_tenant_to_its_own() {
    let s = Setup::start().await;
    denied_request(&s, "acme").await;
    denied_request(&s, "globex").await;
    let globex = records(&s, "tenant=globex&kind=request_denied").await;
    let globex_writ = globex[0]["writ"].as_str().unwrap().to_string();
    let acme = records(&s, "tenant=acme&kind=request_denied").await;
    let acme_writ = acme[0]["writ"].as_str().unwrap().to_string();
    let pages = [
        "/console/audit",
        "/console/tenants/acme/audit",
        "/console/detections",
        "/console/detections/feed",
        "/console/tenants/acme/detections",
        "/console/tenants/acme/detections/feed",
    ];

    // No session: the sign-in page, for every page, whatever its query; a feed the
    // page's script fetches answers 401, for the script to say so.
    let mut nobody = Browser::new(&s.gw);
    for path in pages {
        let page = nobody.get(&format!("{path}?colour=<b>")).await;
        if path.ends_with("/feed") {
            assert_eq!(page.status, StatusCode::UNAUTHORIZED, "{path}");
        } else {
            assert_eq!(page.status, StatusCode::SEE_OTHER, "{path}");
            assert_eq!(page.location(), "/console/sign-in", "{path}");
        }
        page.assert_guarded(path);
    }
    // An approver: 403.
    let token = s.approver("acme", "carol").await;
    let mut approver = Browser::new(&s.gw);
    approver.sign_in(&[("approver_token", &token)]).await;
    for path in pages {
        let page = approver.get(path).await;
        assert_eq!(page.status, StatusCode::FORBIDDEN, "{path}");
        assert!(!page.body.contains(&acme_writ), "{path}");
    }

    // A tenant's admin: sent to their tenant's pages; another tenant's answer 404.
    let writ = s.gw.mint_as(ACME_ADMIN, ACME_ADMIN, 30);
    let mut admin = Browser::new(&s.gw);
    admin.sign_in(&[("writ", &writ), ("tenant", "acme")]).await;
    let page = admin.get("/console/audit?tenant=globex").await;
    assert_eq!(page.status, StatusCode::SEE_OTHER);
    assert_eq!(page.location(), "/console/tenants/acme/audit");
    let page = admin.get("/console/detections").await;
    assert_eq!(page.location(), "/console/tenants/acme/detections");
    for path in [
        "/console/tenants/globex/audit",
        "/console/tenants/globex/detections",
        "/console/tenants/globex/detections/feed",
        "/console/tenants/..%2Fglobex/audit",
        "/console/tenants/nobody/audit",
        "/console/detections/feed",
    ] {
        let page = admin.get(path).await;
        assert_eq!(page.status, StatusCode::NOT_FOUND, "{path}");
        assert!(!page.body.contains(&globex_writ), "{path}");
    }
    let page = admin.get("/console/tenants/acme/audit").await;
    assert_eq!(page.status, StatusCode::OK, "{}", page.body);
    page.assert_guarded("audit");
    assert!(page.body.contains(&acme_writ), "its own record is listed");
    assert!(!page.body.contains(&globex_writ), "another tenant's is not");
    assert!(
        page.body.contains("This covers the whole log"),
        "says the verification is of the whole log"
    );
    assert!(
        page.body.contains("verified up to checkpoint"),
        "{}",
        page.body
    );
    // Filtering by the other tenant's writ shows nothing of it either.
    let page = admin
        .get(&format!("/console/tenants/acme/audit?writ={globex_writ}"))
        .await;
    assert_eq!(page.status, StatusCode::OK);
    assert!(row_ids(&page.body).is_empty());
    // A tenant filter on a tenant's page is refused, not obeyed.
    let page = admin.get("/console/tenants/acme/audit?tenant=globex").await;
    assert_eq!(page.status, StatusCode::BAD_REQUEST);

    // The operator sees every tenant's, and filters by tenant.
    let mut operator = Browser::new(&s.gw);
    operator.sign_in(&[("writ", &s.admin)]).await;
    let page = operator.get("/console/audit").await;
    assert_eq!(page.status, StatusCode::OK);
    assert!(page.body.contains(&acme_writ) && page.body.contains(&globex_writ));
    let page = operator.get("/console/audit?tenant=globex").await;
    assert!(!page.body.contains(&acme_writ) && page.body.contains(&globex_writ));
    assert!(
        !page.body.contains("This covers the whole log"),
        "the operator's page is the whole log"
    );
}

#[tokio::test]
async fn bad_filters_are_refused_naming_what_the_page_takes() {
    let s = Setup::start().await;
    denied_request(&s, "acme").await;
    let mut b = Browser::new(&s.gw);
    b.sign_in(&[("writ", &s.admin)]).await;
    let long = "a".repeat(3000);
    let cases: Vec<(String, &str)> = vec![
        ("colour=blue".into(), "filters are tenant"),
        ("agent=a&agent=b".into(), "each at most once"),
        ("decision=maybe".into(), "decision must be allowed, denied"),
        ("status=abc".into(), "status must be an HTTP status code"),
        ("status=700".into(), "status must be an HTTP status code"),
        ("since=yesterday".into(), "since must be an RFC 3339 time"),
        (
            "until=2026-13-40T99:00".into(),
            "until must be an RFC 3339 time",
        ),
        ("writ=not-a-pseudonym".into(), "32 hexadecimal characters"),
        ("agent=two%0Alines".into(), "one line of at most 128"),
        (
            format!("agent={}", "b".repeat(200)),
            "one line of at most 128",
        ),
        ("before=nonsense".into(), "cursor is not one this page gave"),
        (
            "before=someone%2F99".into(),
            "cursor is not one this page gave",
        ),
        (format!("agent={long}"), "longer than this page takes"),
        ("%ZZ=%ZZ".into(), "filters are tenant"),
    ];
    for (query, says) in &cases {
        let page = b.get(&format!("/console/audit?{query}")).await;
        assert_eq!(page.status, StatusCode::BAD_REQUEST, "{query}");
        assert!(page.body.contains(says), "{query}: {}", page.body);
        page.assert_guarded(query);
    }
    let page = b.get("/console/detections?detector=evil").await;
    assert_eq!(page.status, StatusCode::BAD_REQUEST);
    assert!(page.body.contains("prompt_secret"), "{}", page.body);
    for (path, says) in [
        (
            format!("/console/detections?agent={long}"),
            "longer than this page takes",
        ),
        (
            "/console/detections/feed?colour=1".to_string(),
            "filters are tenant",
        ),
        (
            "/console/detections/feed?agent=a%0Db".to_string(),
            "one line",
        ),
        (
            "/console/detections?before=x%2F1".to_string(),
            "cursor is not one",
        ),
        (
            "/console/tenants/acme/detections?tenant=globex".to_string(),
            "leave out the tenant",
        ),
        (
            "/console/tenants/acme/audit?tenant=acme".to_string(),
            "leave out the tenant",
        ),
    ] {
        let page = b.get(&path).await;
        assert_eq!(page.status, StatusCode::BAD_REQUEST, "{path}");
        assert!(page.body.contains(says), "{path}: {}", page.body);
    }
    // A hostile name echoed in the refusal is escaped.
    let page = b.get("/console/audit?%3Cscript%3E=1").await;
    assert_eq!(page.status, StatusCode::BAD_REQUEST);
    assert!(!page.body.contains("<script>"), "{}", page.body);

    // Hostile values that are valid filters are shown inert, and match nothing.
    let hostile = "\"><script>alert(1)</script>\u{202E}x";
    let query = serde_urlencoded::to_string([("agent", hostile)]).unwrap();
    let page = b.get(&format!("/console/audit?{query}")).await;
    assert_eq!(page.status, StatusCode::OK, "{}", page.body);
    assert!(!page.body.contains("<script>alert"));
    assert!(
        page.body
            .contains(&escaped("\"><script>alert(1)</script>[U+202E]x")),
        "shown inert in the form"
    );
    assert!(row_ids(&page.body).is_empty());
    // Blank fields (an empty form submitted) are no filters.
    let page = b
        .get("/console/audit?tenant=&agent=&writ=&decision=&status=&since=&until=")
        .await;
    assert_eq!(page.status, StatusCode::OK);
    assert!(!row_ids(&page.body).is_empty());
}

#[tokio::test]
async fn records_are_paged_newest_first_and_filtered() {
    let s = Setup::start().await;
    for _ in 0..55 {
        assert!(denied_request(&s, "acme").await.is_client_error());
    }
    let all = records(&s, "tenant=acme&kind=request_denied&limit=1000").await;
    assert_eq!(all.len(), 55);
    let mut b = Browser::new(&s.gw);
    b.sign_in(&[("writ", &s.admin)]).await;
    let first = b.get("/console/audit?decision=denied&tenant=acme").await;
    assert_eq!(first.status, StatusCode::OK);
    let ids = row_ids(&first.body);
    assert_eq!(ids.len(), 50, "a page holds 50 records");
    let seqs: Vec<u64> = ids.iter().map(|id| seq(id)).collect();
    assert!(
        seqs.windows(2).all(|w| w[0] > w[1]),
        "newest first: {seqs:?}"
    );
    assert_eq!(
        seqs[0],
        all.last().unwrap()["seq"].as_u64().unwrap(),
        "the newest first"
    );
    let marker = "href=\"";
    let older = first
        .body
        .split(marker)
        .find_map(|rest| {
            let url = &rest[..rest.find('"').unwrap()];
            url.contains("before=").then(|| url.replace("&#38;", "&"))
        })
        .expect("a link to older records");
    assert!(older.contains("decision=denied") && older.contains("tenant=acme"));
    let second = b.get(&older).await;
    assert_eq!(second.status, StatusCode::OK, "{older}");
    let rest: Vec<u64> = row_ids(&second.body).iter().map(|id| seq(id)).collect();
    assert_eq!(rest.len(), 5);
    assert!(
        rest[0] < *seqs.last().unwrap(),
        "continues where the first ended"
    );
    assert!(!second.body.contains("before="), "no page after the last");
    assert!(second.body.contains("Newest records"));

    // The writ filter finds one writ's record; status and time filters narrow.
    let one = all[7]["writ"].as_str().unwrap();
    let page = b
        .get(&format!("/console/audit?writ={}", one.to_uppercase()))
        .await;
    assert_eq!(row_ids(&page.body).len(), 1, "{}", page.body);
    let status = all[0]["status"].as_u64().unwrap();
    let page = b
        .get(&format!("/console/audit?status={status}&decision=denied"))
        .await;
    assert_eq!(row_ids(&page.body).len(), 50);
    let page = b.get("/console/audit?status=299").await;
    assert!(row_ids(&page.body).is_empty());
    let time = all[0]["time"].as_str().unwrap();
    let page = b.get("/console/audit?until=2000-01-01T00:00:00Z").await;
    assert!(row_ids(&page.body).is_empty());
    let page = b
        .get(&format!("/console/audit?until={time}&decision=denied"))
        .await;
    assert!(!row_ids(&page.body).is_empty(), "both ends are included");
    let page = b.get("/console/audit?since=2999-01-01T00:00").await;
    assert!(row_ids(&page.body).is_empty());
    let page = b
        .get(&format!(
            "/console/audit?since={}&decision=denied",
            &time[..16]
        ))
        .await;
    assert_eq!(row_ids(&page.body).len(), 50);
}

#[tokio::test]
async fn detections_are_listed_without_the_secret_and_kept_to_their_tenant() {
    let upstream = MockUpstream::start(KEY).await;
    let s = Setup::with_config(&format!(
        "[upstreams.demo]\nkind = \"openai\"\nbase_url = \"{}\"\nallow_private_network = true\napi_key = \"{KEY}\"\n",
        upstream.base_url()
    ))
    .await;
    let resp = reqwest::Client::new()
        .post(s.gw.url("/v1/chat/completions"))
        .bearer_auth(s.gw.mint("demo", GRANT, 30))
        .json(
            &json!({"model": "gpt-4o-mini", "messages": [{"role": "user",
            "content": format!("deploy with AWS_ACCESS_KEY_ID={AWS_KEY} please")}]}),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::BAD_REQUEST);
    s.gw.gateway().audit_checkpoint().await;
    let mut operator = Browser::new(&s.gw);
    operator.sign_in(&[("writ", &s.admin)]).await;
    for path in ["/console/detections", "/console/detections/feed"] {
        let page = operator.get(path).await;
        assert_eq!(page.status, StatusCode::OK, "{path}");
        assert!(page.body.contains("prompt_secret"), "{path}: {}", page.body);
        assert!(page.body.contains("aws-access-key-id"), "{path}");
        assert!(page.body.contains("blocked (status 400)"), "{path}");
        assert!(!page.body.contains(AWS_KEY), "{path}: never the secret");
    }
    let feed = operator.get("/console/detections/feed").await;
    assert!(!feed.body.contains("<html"), "the feed alone");
    let page = operator.get("/console/detections").await;
    assert!(page.body.contains(r#"aria-live="polite""#));
    assert!(
        page.body
            .contains(r#"data-feed="/console/detections/feed""#)
    );
    let page = operator
        .get("/console/detections?detector=brute_force")
        .await;
    assert!(!page.body.contains("aws-access-key-id"));
    // The audit page shows the same denial, and no secret either.
    let page = operator.get("/console/audit?decision=denied").await;
    assert!(page.body.contains("secret_in_request"));
    assert!(!page.body.contains(AWS_KEY));

    let writ = s.gw.mint_as(ACME_ADMIN, ACME_ADMIN, 30);
    let mut acme = Browser::new(&s.gw);
    acme.sign_in(&[("writ", &writ), ("tenant", "acme")]).await;
    for path in [
        "/console/tenants/acme/detections",
        "/console/tenants/acme/detections/feed",
    ] {
        let page = acme.get(path).await;
        assert_eq!(page.status, StatusCode::OK, "{path}");
        assert!(!page.body.contains("aws-access-key-id"), "{path}");
        assert!(page.body.contains("No detection yet"), "{path}");
    }
}

#[tokio::test]
async fn a_changed_record_breaks_the_log_for_every_admin_linking_it_where_shown() {
    let s = Setup::start().await;
    denied_request(&s, "acme").await;
    denied_request(&s, "acme").await;
    let acme = records(&s, "tenant=acme&kind=request_denied").await;
    let (instance, seq) = (
        acme[0]["instance"].as_str().unwrap().to_string(),
        acme[0]["seq"].as_u64().unwrap(),
    );
    let mut operator = Browser::new(&s.gw);
    operator.sign_in(&[("writ", &s.admin)]).await;
    let page = operator.get("/console/audit").await;
    assert!(page.body.contains("The log verifies"), "{}", page.body);

    let db = rusqlite::Connection::open(s.gw.gateway().data_dir().join("audit.db")).unwrap();
    let changed = db
        .execute(
            "UPDATE audit_records SET line = replace(line, '\"tenant\":\"acme\"', '\"tenant\":\"acmf\"') \
             WHERE instance = ?1 AND seq = ?2",
            rusqlite::params![instance, seq as i64],
        )
        .unwrap();
    assert_eq!(changed, 1);
    drop(db);
    let named = format!("broken at record {seq}: record {seq} was altered");
    let link = format!("href=\"#r-{instance}-{seq}\"");
    let page = operator.get("/console/audit").await;
    assert!(page.body.contains("The log is broken"), "{}", page.body);
    assert!(page.body.contains(&named), "{}", page.body);
    assert!(
        page.body.contains(&link),
        "linked: the record is on the page"
    );
    // Not on the page (filtered out): named, not linked.
    let page = operator.get("/console/audit?tenant=globex").await;
    assert!(page.body.contains(&named));
    assert!(!page.body.contains(&link));
    // A tenant's admin sees the whole log's state too.
    let writ = s.gw.mint_as(
        r#"{"type":"writ:admin","tenant":"globex"}"#,
        r#"{"type":"writ:admin","tenant":"globex"}"#,
        30,
    );
    let mut globex = Browser::new(&s.gw);
    globex
        .sign_in(&[("writ", &writ), ("tenant", "globex")])
        .await;
    let page = globex.get("/console/tenants/globex/audit").await;
    assert_eq!(page.status, StatusCode::OK);
    assert!(page.body.contains(&named) && !page.body.contains(&link));
}
