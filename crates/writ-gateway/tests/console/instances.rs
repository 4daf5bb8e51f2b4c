//! The console on two gateways sharing PostgreSQL and Redis, as behind a load balancer: a
//! session opened on one is open on the other with the same CSRF token, signing out on
//! one ends it on both, and a stop that reaches the admin writ signed in with ends the
//! session on both.

use std::time::{Duration, Instant};

use reqwest::StatusCode;
use writ_store::RevocationNote;
use writ_testkit::{FreshDatabase, OwnRedis, TestGateway};
use writ_token::Revocation;

use super::{ADMIN, Browser};

fn config(db: &FreshDatabase, redis: &OwnRedis) -> String {
    format!(
        "[store]\nurl = \"{}\"\n\n[limiter]\nbackend = \"redis\"\nredis_url = \"{}\"\n",
        db.url(),
        redis.url()
    )
}

/// `b`'s browser, holding the cookie `a`'s holds.
fn same_person_on(gw: &TestGateway, a: &Browser) -> Browser {
    let mut b = Browser::new(gw);
    b.cookie = a.cookie.clone();
    b
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_session_holds_on_every_instance() {
    let db = FreshDatabase::create().await;
    let redis = OwnRedis::start();
    let cfg = config(&db, &redis);
    let one = TestGateway::start(&cfg).await;
    let two = TestGateway::start_beside(&cfg, &one).await;

    // Signed in on one: signed in on two, with the same CSRF token.
    let mut on_one = Browser::new(&one);
    on_one
        .sign_in(&[("writ", &one.mint_as(ADMIN, ADMIN, 30))])
        .await;
    let csrf = on_one.csrf().await;
    let mut on_two = same_person_on(&two, &on_one);
    assert_eq!(on_two.csrf().await, csrf, "one session, one token");

    // Signed out on two: signed out on one.
    let out = on_two.post("/console/sign-out", &[("csrf", &csrf)]).await;
    assert_eq!(out.status, StatusCode::SEE_OTHER, "{}", out.body);
    let page = on_one.get("/console/approvals").await;
    assert_eq!(page.status, StatusCode::SEE_OTHER);
    assert_eq!(page.location(), "/console/sign-in");

    // Signed in again on one; the kill switch pulled on one reaches the admin writ, and
    // the session ends on two as soon as two knows of the stop.
    let mut on_one = Browser::new(&one);
    on_one
        .sign_in(&[("writ", &one.mint_as(ADMIN, ADMIN, 30))])
        .await;
    let mut on_two = same_person_on(&two, &on_one);
    assert_eq!(
        on_two.get("/console/approvals").await.status,
        StatusCode::OK
    );
    let before = writ_token::Clock::now(one.clock())
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
        + 1;
    let note = RevocationNote {
        at: before,
        by: Some("test".into()),
        reason: None,
    };
    one.gateway()
        .revoke(
            &Revocation::IssuedBefore {
                tenant: None,
                before,
            },
            &note,
        )
        .await
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let page = on_two.get("/console/approvals").await;
        if page.status == StatusCode::SEE_OTHER {
            assert_eq!(page.location(), "/console/sign-in");
            break;
        }
        assert!(Instant::now() < deadline, "the stop never reached two");
        tokio::task::yield_now().await;
    }
    let page = on_one.get("/console/approvals").await;
    assert_eq!(page.location(), "/console/sign-in", "ended on one too");
}
