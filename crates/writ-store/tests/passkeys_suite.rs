//! Console admins, enrolment links, passkeys and ceremony state on both databases: a link
//! is used once however many race, an expired or replaced link is refused, removing a
//! person removes their passkeys and links, and ceremony state is taken once and bounded.

use writ_store::{CeremonyKind, CeremonyRecord, Person, PersonRole, Store, StoreError};

#[macro_use]
#[path = "shared/database.rs"]
mod shared_database;

use shared_database::{Db, database};

on_both!(
    console_admins_are_added_listed_and_removed,
    an_enrolment_link_is_used_once,
    two_racing_uses_of_a_link_have_one_winner,
    expired_and_replaced_links_are_refused,
    removing_a_person_removes_their_passkeys_and_links,
    ceremony_state_is_taken_once_and_bounded,
);

const T: u64 = 1_800_000_000;
const DAY: u64 = 24 * 60 * 60;

async fn with_tenant(db: &Db) -> Store {
    let store = db.open().await;
    store.ensure_tenant("acme", T).await.expect("tenant");
    store
}

fn admin(tenant: Option<&str>, name: &str) -> Person {
    Person {
        role: PersonRole::Admin,
        tenant: tenant.map(str::to_string),
        name: name.to_string(),
    }
}

fn approver(name: &str) -> Person {
    Person {
        role: PersonRole::Approver,
        tenant: Some("acme".to_string()),
        name: name.to_string(),
    }
}

async fn console_admins_are_added_listed_and_removed(db: Db) {
    let store = with_tenant(&db).await;
    store.add_console_admin(None, "root", T).await.expect("op");
    store
        .add_console_admin(Some("acme"), "ann", T)
        .await
        .expect("tenant admin");
    assert!(matches!(
        store.add_console_admin(Some("acme"), "ann", T).await,
        Err(StoreError::Conflict { .. })
    ));
    assert!(matches!(
        store.add_console_admin(Some("nope"), "ann", T).await,
        Err(StoreError::NotFound { what: "tenant", .. })
    ));
    let all = store.console_admins(None).await.expect("all");
    let names: Vec<_> = all
        .iter()
        .map(|a| (a.tenant.clone(), a.name.as_str()))
        .collect();
    assert_eq!(names, [(None, "root"), (Some("acme".to_string()), "ann")]);
    let acme = store.console_admins(Some("acme")).await.expect("acme");
    assert_eq!(acme.len(), 1);
    assert!(store.person_exists(&admin(None, "root")).await.expect("q"));
    assert!(
        !store
            .person_exists(&admin(Some("acme"), "root"))
            .await
            .expect("q")
    );
    store.delete_console_admin(None, "root").await.expect("rm");
    assert!(matches!(
        store.delete_console_admin(None, "root").await,
        Err(StoreError::NotFound { .. })
    ));
    assert!(!store.person_exists(&admin(None, "root")).await.expect("q"));
}

async fn an_enrolment_link_is_used_once(db: Db) {
    let store = with_tenant(&db).await;
    store.add_console_admin(None, "root", T).await.expect("op");
    let who = admin(None, "root");
    assert!(matches!(
        store
            .create_enrolment(&admin(None, "ghost"), "h0", T, T + DAY)
            .await,
        Err(StoreError::NotFound { .. })
    ));
    store
        .create_enrolment(&who, "h1", T, T + DAY)
        .await
        .expect("link");
    assert_eq!(
        store.enrolment("h1", T + 1).await.expect("q"),
        Some(who.clone())
    );
    assert_eq!(store.enrolment("other", T + 1).await.expect("q"), None);
    let person = store
        .complete_enrolment("h1", "cred-1", r#"{"k":1}"#, T + 2)
        .await
        .expect("used");
    assert_eq!(person, who);
    assert!(matches!(
        store.complete_enrolment("h1", "cred-2", "{}", T + 3).await,
        Err(StoreError::Refused(_))
    ));
    assert_eq!(store.enrolment("h1", T + 3).await.expect("q"), None);
    let keys = store.passkeys_named(None, "root").await.expect("keys");
    assert_eq!(keys.len(), 1);
    assert_eq!(keys[0].credential_id, "cred-1");
    assert_eq!(keys[0].person, who);
    assert_eq!(keys[0].last_used_at, None);
    store
        .note_passkey_use("cred-1", r#"{"k":2}"#, T + 9)
        .await
        .expect("note");
    let key = store.passkey("cred-1").await.expect("q").expect("stored");
    assert_eq!(
        (key.passkey.as_str(), key.last_used_at),
        (r#"{"k":2}"#, Some(T + 9))
    );
    // Another tenant's person of the same name has none.
    assert!(
        store
            .passkeys_named(Some("acme"), "root")
            .await
            .expect("q")
            .is_empty()
    );
}

async fn two_racing_uses_of_a_link_have_one_winner(db: Db) {
    let store = with_tenant(&db).await;
    store
        .add_approver("acme", "bob", "tok", T)
        .await
        .expect("approver");
    store
        .create_enrolment(&approver("bob"), "race", T, T + DAY)
        .await
        .expect("link");
    let tries = (0..8).map(|i| {
        let store = store.clone();
        tokio::spawn(async move {
            store
                .complete_enrolment("race", &format!("cred-{i}"), "{}", T + 1)
                .await
        })
    });
    let tries: Vec<_> = tries.collect();
    let mut won = 0;
    for task in tries {
        match task.await.expect("task") {
            Ok(person) => {
                assert_eq!(person, approver("bob"));
                won += 1;
            }
            Err(StoreError::Refused(_)) => {}
            // SQLite may refuse a racing writer outright rather than wait.
            Err(StoreError::Database(_)) => {}
            Err(other) => panic!("unexpected: {other}"),
        }
    }
    assert_eq!(won, 1);
    let keys = store.passkeys_named(Some("acme"), "bob").await.expect("q");
    assert_eq!(keys.len(), 1);
}

async fn expired_and_replaced_links_are_refused(db: Db) {
    let store = with_tenant(&db).await;
    store
        .add_approver("acme", "bob", "tok", T)
        .await
        .expect("approver");
    let bob = approver("bob");
    store
        .create_enrolment(&bob, "old", T, T + DAY)
        .await
        .expect("link");
    assert_eq!(store.enrolment("old", T + DAY).await.expect("q"), None);
    assert!(matches!(
        store.complete_enrolment("old", "c", "{}", T + DAY).await,
        Err(StoreError::Refused(_))
    ));
    store
        .create_enrolment(&bob, "new", T, T + DAY)
        .await
        .expect("link");
    // The new link voids the old, even while the old has not expired.
    assert_eq!(store.enrolment("old", T + 1).await.expect("q"), None);
    assert!(matches!(
        store.complete_enrolment("old", "c", "{}", T + 1).await,
        Err(StoreError::Refused(_))
    ));
    assert_eq!(store.enrolment("new", T + 1).await.expect("q"), Some(bob));
}

async fn removing_a_person_removes_their_passkeys_and_links(db: Db) {
    let store = with_tenant(&db).await;
    store
        .add_approver("acme", "bob", "tok", T)
        .await
        .expect("approver");
    store
        .add_console_admin(Some("acme"), "bob", T)
        .await
        .expect("admin of the same name");
    let as_admin = admin(Some("acme"), "bob");
    for (who, link, cred) in [(&approver("bob"), "l1", "c1"), (&as_admin, "l2", "c2")] {
        store
            .create_enrolment(who, link, T, T + DAY)
            .await
            .expect("link");
        store
            .complete_enrolment(link, cred, "{}", T)
            .await
            .expect("use");
    }
    store
        .create_enrolment(&approver("bob"), "l3", T, T + DAY)
        .await
        .expect("link");
    assert_eq!(
        store
            .passkeys_named(Some("acme"), "bob")
            .await
            .expect("q")
            .len(),
        2
    );
    store.delete_approver("acme", "bob").await.expect("rm");
    // The approver's passkey and link are gone; the admin's of the same name stay.
    let left = store.passkeys_named(Some("acme"), "bob").await.expect("q");
    assert_eq!(left.len(), 1);
    assert_eq!(left[0].person, as_admin);
    assert_eq!(store.enrolment("l3", T).await.expect("q"), None);
    assert_eq!(store.passkey("c1").await.expect("q"), None);
    store
        .create_enrolment(&as_admin, "l4", T, T + DAY)
        .await
        .expect("link");
    store
        .delete_console_admin(Some("acme"), "bob")
        .await
        .expect("rm");
    assert_eq!(store.passkey("c2").await.expect("q"), None);
    assert_eq!(store.enrolment("l4", T).await.expect("q"), None);
}

fn ceremony(id: &str, expires_at: u64) -> CeremonyRecord {
    CeremonyRecord {
        id_hash: id.to_string(),
        kind: CeremonyKind::SignIn,
        subject: "acme/bob".to_string(),
        state: r#"{"challenge":"x"}"#.to_string(),
        expires_at,
    }
}

async fn ceremony_state_is_taken_once_and_bounded(db: Db) {
    let store = db.open().await;
    store
        .save_ceremony(&ceremony("a", T + 300), T, 2, 5)
        .await
        .expect("a");
    store
        .save_ceremony(&ceremony("b", T + 300), T, 2, 5)
        .await
        .expect("b");
    assert!(matches!(
        store.save_ceremony(&ceremony("c", T + 300), T, 2, 5).await,
        Err(StoreError::Refused(_))
    ));
    // Another kind's id does not take it.
    assert_eq!(
        store
            .take_ceremony("a", CeremonyKind::Enrol, T)
            .await
            .expect("q"),
        None
    );
    let taken = store
        .take_ceremony("a", CeremonyKind::SignIn, T)
        .await
        .expect("q");
    assert_eq!(taken, Some(ceremony("a", T + 300)));
    assert_eq!(
        store
            .take_ceremony("a", CeremonyKind::SignIn, T)
            .await
            .expect("q"),
        None
    );
    // An expired one is not taken, and makes room once expired.
    assert_eq!(
        store
            .take_ceremony("b", CeremonyKind::SignIn, T + 300)
            .await
            .expect("q"),
        None
    );
    store
        .save_ceremony(&ceremony("d", T + 900), T + 600, 1, 5)
        .await
        .expect("room");
    // One subject's ceremonies are bounded apart from the others'.
    let other = CeremonyRecord {
        subject: "acme/eve".to_string(),
        ..ceremony("e", T + 900)
    };
    assert!(matches!(
        store
            .save_ceremony(&ceremony("f", T + 900), T + 600, 10, 1)
            .await,
        Err(StoreError::Refused(_))
    ));
    store
        .save_ceremony(&other, T + 600, 10, 1)
        .await
        .expect("another's");
}
