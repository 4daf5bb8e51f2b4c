//! Console sessions on both databases: a session opened through one handle is found
//! through another (two gateways sharing the database), ends at its idle or absolute end,
//! ends everywhere when closed, is bounded in number, and keeps hostile text as given.
#![allow(clippy::unwrap_used)]

use writ_store::ConsoleSession;

#[macro_use]
#[path = "shared/database.rs"]
mod shared_database;

use shared_database::{Db, database};

on_both!(
    a_session_opened_on_one_handle_is_open_on_another,
    a_session_ends_when_idle_or_at_its_absolute_end,
    open_sessions_are_bounded_and_ended_ones_make_room,
);

const T: u64 = 1_800_000_000;

fn session(id_hash: &str, person: &str) -> ConsoleSession {
    ConsoleSession {
        id_hash: id_hash.into(),
        person: person.into(),
        tenant: Some("acme".into()),
        role: "admin".into(),
        method: "admin_writ".into(),
        proof: r#"{"writ":{"token_id":"x"}}"#.into(),
        started_at: T,
        ends_at: T + 12 * 3600,
        idle_until: T + 1800,
    }
}

async fn a_session_opened_on_one_handle_is_open_on_another(db: Db) {
    let a = db.open().await;
    let b = db.open().await;
    let hostile = "<script>\u{202E}\u{200B}'\"é";
    let mut s = session(&"ab".repeat(32), hostile);
    s.tenant = None;
    assert!(a.open_console_session(&s, 10, T).await.unwrap());
    let found = b
        .touch_console_session(&s.id_hash, T + 60, T + 60 + 1800)
        .await
        .unwrap()
        .expect("open on the other handle");
    assert_eq!(found.person, hostile);
    assert_eq!(found.tenant, None);
    assert_eq!(found.idle_until, T + 60 + 1800, "idle end moved");
    assert_eq!(
        (found.role.as_str(), found.method.as_str()),
        ("admin", "admin_writ")
    );
    assert_eq!(found.proof, s.proof);
    // The idle end never moves back.
    let again = a
        .touch_console_session(&s.id_hash, T + 61, T + 10)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(again.idle_until, T + 60 + 1800);
    // Closed on one handle: gone on both.
    b.close_console_session(&s.id_hash).await.unwrap();
    assert!(
        a.touch_console_session(&s.id_hash, T + 62, T + 62 + 1800)
            .await
            .unwrap()
            .is_none()
    );
    // An unknown id finds nothing; closing it is no error.
    assert!(a.touch_console_session("00", T, T).await.unwrap().is_none());
    a.close_console_session("00").await.unwrap();
}

async fn a_session_ends_when_idle_or_at_its_absolute_end(db: Db) {
    let store = db.open().await;
    let s = session(&"cd".repeat(32), "alice");
    assert!(store.open_console_session(&s, 10, T).await.unwrap());
    // Idle: nothing came before idle_until.
    assert!(
        store
            .touch_console_session(&s.id_hash, T + 1800, T + 3600)
            .await
            .unwrap()
            .is_none()
    );
    // Ended ones are deleted, not only hidden: a later touch before the end finds nothing.
    assert!(
        store
            .touch_console_session(&s.id_hash, T + 10, T + 1810)
            .await
            .unwrap()
            .is_none()
    );
    // Busy all along, it still ends at its absolute end.
    let s = session(&"ef".repeat(32), "bob");
    assert!(store.open_console_session(&s, 10, T).await.unwrap());
    let mut now = T;
    while now + 1200 < s.ends_at {
        now += 1200;
        assert!(
            store
                .touch_console_session(&s.id_hash, now, now + 1800)
                .await
                .unwrap()
                .is_some()
        );
    }
    assert!(
        store
            .touch_console_session(&s.id_hash, s.ends_at, s.ends_at + 1800)
            .await
            .unwrap()
            .is_none()
    );
}

async fn open_sessions_are_bounded_and_ended_ones_make_room(db: Db) {
    let store = db.open().await;
    for i in 0..3 {
        let s = session(&format!("{i:064x}"), "alice");
        assert!(store.open_console_session(&s, 3, T).await.unwrap());
    }
    let fourth = session(&format!("{:064x}", 4), "alice");
    assert!(!store.open_console_session(&fourth, 3, T).await.unwrap());
    assert!(
        store
            .touch_console_session(&fourth.id_hash, T, T + 1)
            .await
            .unwrap()
            .is_none(),
        "refused: not stored"
    );
    // Once the others are idle past their end, there is room again.
    assert!(
        store
            .open_console_session(&fourth, 3, T + 1800)
            .await
            .unwrap()
    );
}
