//! One suite, two databases: every test runs on SQLite and on PostgreSQL
//! (127.0.0.1:5432, a fresh database per test), so the two implementations behind
//! `Store` cannot drift apart.

use std::time::{Duration, Instant};

use writ_store::{
    Agent, AgentCredentials, RevocationNote, RuleKind, RuleRecord, StoreError, Tenant,
    UpstreamRecord, Vault, VaultError,
};
use writ_token::{Revocation, parse_grants};

#[macro_use]
#[path = "shared/database.rs"]
mod shared_database;

use shared_database::{Db, database};

const SECRET_A: &str = "sk-tenant-a-PLAINTEXT-0123456789";
const SECRET_B: &str = "sk-tenant-b-PLAINTEXT-9876543210";

on_both!(
    tenants_are_unique_and_leave_nothing_behind,
    upstream_names_are_unique_across_shared_and_tenant,
    credentials_rotate_activate_and_retire,
    no_column_or_file_holds_a_plaintext_secret,
    master_key_rotation_rewraps_without_touching_ciphertexts,
    rules_are_created_replaced_listed_and_removed,
    every_write_grows_the_change_feed,
    a_second_handle_sees_changes_through_the_feed,
    agents_and_revocations_persist,
    a_refused_write_leaves_nothing_half_written,
    a_store_is_probed_and_described_without_its_password,
);

fn tenant(name: &str) -> Tenant {
    Tenant {
        name: name.into(),
        display_name: Some(format!("{name} Inc.")),
        created_at: 100,
    }
}

fn upstream(tenant: Option<&str>, name: &str) -> UpstreamRecord {
    UpstreamRecord {
        tenant: tenant.map(str::to_string),
        name: name.into(),
        kind: "openai".into(),
        settings: serde_json::json!({"kind": "openai", "base_url": "https://api.openai.com"}),
        created_at: 5,
        updated_at: 5,
    }
}

fn agent(tenant: &str, name: &str) -> Agent {
    Agent {
        tenant: tenant.into(),
        name: name.into(),
        ceiling: parse_grants(r#"{"type":"writ:llm","upstream":"openai"}"#).expect("grants"),
        max_ttl: Duration::from_secs(30),
        credentials: AgentCredentials::default(),
    }
}

fn vault() -> Vault {
    Vault::new(&[7; 32], &[])
}

async fn tenants_are_unique_and_leave_nothing_behind(db: Db) {
    let store = db.open().await;
    store.create_tenant(&tenant("acme")).await.expect("create");
    assert!(matches!(
        store.create_tenant(&tenant("acme")).await,
        Err(StoreError::Conflict { what: "tenant", .. })
    ));
    assert!(!store.ensure_tenant("acme", 1).await.expect("ensure"));
    assert!(store.ensure_tenant("globex", 1).await.expect("ensure"));
    let names: Vec<String> = store
        .tenants()
        .await
        .expect("list")
        .into_iter()
        .map(|t| t.name)
        .collect();
    assert_eq!(names, ["acme", "globex"]);
    assert_eq!(
        store.tenant("acme").await.expect("get"),
        Some(tenant("acme"))
    );
    store.put_agent(&agent("acme", "bot")).await.expect("agent");
    let refused = store.delete_tenant("acme").await;
    assert!(
        matches!(&refused, Err(StoreError::Refused(m)) if m.contains("1 agents")),
        "{refused:?}"
    );
    assert!(store.remove_agent("acme", "bot").await.expect("remove"));
    store.delete_tenant("acme").await.expect("delete");
    assert!(matches!(
        store.delete_tenant("acme").await,
        Err(StoreError::NotFound { what: "tenant", .. })
    ));
}

async fn upstream_names_are_unique_across_shared_and_tenant(db: Db) {
    let store = db.open().await;
    store.ensure_tenant("acme", 1).await.expect("tenant");
    store.ensure_tenant("globex", 1).await.expect("tenant");
    store
        .create_upstream(&upstream(None, "shared"))
        .await
        .expect("shared");
    store
        .create_upstream(&upstream(Some("acme"), "crm"))
        .await
        .expect("acme's");
    // Another tenant may use the same name for its own.
    store
        .create_upstream(&upstream(Some("globex"), "crm"))
        .await
        .expect("globex's");
    for clash in [
        upstream(Some("acme"), "shared"),
        upstream(None, "crm"),
        upstream(Some("acme"), "crm"),
        upstream(None, "shared"),
    ] {
        assert!(
            matches!(
                store.create_upstream(&clash).await,
                Err(StoreError::Conflict {
                    what: "upstream",
                    ..
                })
            ),
            "{clash:?}"
        );
    }
    assert!(matches!(
        store.create_upstream(&upstream(Some("nobody"), "x")).await,
        Err(StoreError::NotFound { what: "tenant", .. })
    ));
    let mut changed = upstream(Some("acme"), "crm");
    changed.settings = serde_json::json!({"kind": "http", "base_url": "https://crm.example"});
    changed.kind = "http".into();
    changed.updated_at = 9;
    store.update_upstream(&changed).await.expect("update");
    let read = store
        .upstream(Some("acme"), "crm")
        .await
        .expect("read")
        .expect("there");
    assert_eq!(
        (read.kind.as_str(), read.created_at, read.updated_at),
        ("http", 5, 9)
    );
    assert_eq!(store.upstreams(None).await.expect("shared").len(), 1);
    assert_eq!(store.upstreams(Some("acme")).await.expect("acme").len(), 1);
    assert_eq!(store.all_upstreams().await.expect("all").len(), 3);
    // Deleting an upstream deletes the credentials held for it, and only those.
    let v = vault();
    store
        .add_credential(&v, "acme", "crm", SECRET_A, "fp", None, 1)
        .await
        .expect("cred");
    store
        .add_credential(&v, "globex", "crm", SECRET_B, "fp", None, 1)
        .await
        .expect("cred");
    store
        .delete_upstream(Some("acme"), "crm")
        .await
        .expect("delete");
    assert!(
        store
            .credentials("acme", "crm")
            .await
            .expect("list")
            .is_empty()
    );
    assert_eq!(
        store
            .credentials("globex", "crm")
            .await
            .expect("list")
            .len(),
        1
    );
    assert!(matches!(
        store.delete_upstream(Some("acme"), "crm").await,
        Err(StoreError::NotFound { .. })
    ));
}

async fn credentials_rotate_activate_and_retire(db: Db) {
    let store = db.open().await;
    let v = vault();
    store.ensure_tenant("acme", 1).await.expect("tenant");
    let v1 = store
        .add_credential(&v, "acme", "openai", SECRET_A, "aaaa", Some("ops"), 10)
        .await
        .expect("v1");
    assert_eq!((v1.version, v1.active), (1, true));
    let v2 = store
        .add_credential(&v, "acme", "openai", SECRET_B, "bbbb", None, 20)
        .await
        .expect("v2");
    assert_eq!(v2.version, 2);
    let listed = store.credentials("acme", "openai").await.expect("list");
    assert_eq!(
        listed
            .iter()
            .map(|c| (c.version, c.active))
            .collect::<Vec<_>>(),
        [(1, false), (2, true)]
    );
    assert_eq!(listed[0].created_by.as_deref(), Some("ops"));
    let opened = store.active_credentials(&v).await.expect("active");
    assert_eq!(opened.len(), 1);
    assert_eq!(opened[0].meta.version, 2);
    assert_eq!(opened[0].secret.as_ref().expect("opens").as_str(), SECRET_B);
    // The active one cannot be retired; roll back, then retire the newer.
    assert!(matches!(
        store.retire_credential("acme", "openai", 2, 30).await,
        Err(StoreError::Refused(_))
    ));
    store
        .activate_credential("acme", "openai", 1, 30)
        .await
        .expect("roll back");
    let opened = store.active_credentials(&v).await.expect("active");
    assert_eq!(opened[0].secret.as_ref().expect("opens").as_str(), SECRET_A);
    let retired = store
        .retire_credential("acme", "openai", 2, 40)
        .await
        .expect("retire");
    assert_eq!(retired.retired_at, Some(40));
    assert!(matches!(
        store.activate_credential("acme", "openai", 2, 50).await,
        Err(StoreError::Refused(_))
    ));
    assert!(matches!(
        store.activate_credential("acme", "openai", 9, 50).await,
        Err(StoreError::NotFound { .. })
    ));
    // Versions are never reused.
    let v3 = store
        .add_credential(&v, "acme", "openai", SECRET_B, "bbbb", None, 60)
        .await
        .expect("v3");
    assert_eq!(v3.version, 3);
    for bad in ["", &"x".repeat(writ_store::MAX_SECRET_BYTES + 1)] {
        assert!(matches!(
            store
                .add_credential(&v, "acme", "openai", bad, "f", None, 1)
                .await,
            Err(StoreError::Refused(_))
        ));
    }
    assert!(matches!(
        store
            .add_credential(&v, "nobody", "openai", SECRET_A, "f", None, 1)
            .await,
        Err(StoreError::NotFound { what: "tenant", .. })
    ));
}

/// Every byte of every row, as text, for PostgreSQL; the file bytes for SQLite.
async fn raw_bytes(db: &Db) -> Vec<u8> {
    match db {
        Db::Sqlite(dir) => {
            let mut all = Vec::new();
            for entry in std::fs::read_dir(dir.path()).expect("dir") {
                all.extend(std::fs::read(entry.expect("entry").path()).expect("read"));
            }
            all
        }
        Db::Postgres(_) => {
            let pool = sqlx::PgPool::connect(&db.url()).await.expect("connect");
            let mut all = Vec::new();
            for table in [
                "credentials",
                "tenants",
                "upstreams",
                "changes",
                "agents",
                "policies",
                "limits",
            ] {
                let rows: Vec<(String,)> =
                    sqlx::query_as(&format!("SELECT CAST(t.* AS TEXT) FROM {table} t"))
                        .fetch_all(&pool)
                        .await
                        .expect("rows");
                for (row,) in rows {
                    all.extend(row.into_bytes());
                }
            }
            // And the raw bytea columns, undecoded.
            type Blobs = (Option<Vec<u8>>, Option<Vec<u8>>);
            let blobs: Vec<Blobs> =
                sqlx::query_as("SELECT wrapped_key, ciphertext FROM credentials")
                    .fetch_all(&pool)
                    .await
                    .expect("blobs");
            for (a, b) in blobs {
                all.extend(a.unwrap_or_default());
                all.extend(b.unwrap_or_default());
            }
            all
        }
    }
}

fn contains(hay: &[u8], needle: &str) -> bool {
    hay.windows(needle.len()).any(|w| w == needle.as_bytes())
}

async fn no_column_or_file_holds_a_plaintext_secret(db: Db) {
    let store = db.open().await;
    let v = vault();
    store.ensure_tenant("acme", 1).await.expect("tenant");
    store
        .add_credential(&v, "acme", "openai", SECRET_A, "aaaa", None, 1)
        .await
        .expect("v1");
    store
        .add_credential(&v, "acme", "openai", SECRET_B, "bbbb", None, 2)
        .await
        .expect("v2");
    store.close().await;
    let raw = raw_bytes(&db).await;
    assert!(contains(&raw, "bbbb"), "the test can find what is stored");
    for secret in [SECRET_A, SECRET_B, "PLAINTEXT"] {
        assert!(!contains(&raw, secret), "{secret} is stored in plaintext");
    }
}

async fn master_key_rotation_rewraps_without_touching_ciphertexts(db: Db) {
    let store = db.open().await;
    let old = Vault::new(&[1; 32], &[]);
    store.ensure_tenant("acme", 1).await.expect("tenant");
    store
        .add_credential(&old, "acme", "openai", SECRET_A, "aaaa", None, 1)
        .await
        .expect("v1");
    let new_only = Vault::new(&[2; 32], &[]);
    let opened = store.active_credentials(&new_only).await.expect("read");
    assert!(matches!(
        opened[0].secret,
        Err(VaultError::UnknownMasterKey { .. })
    ));
    let rotating = Vault::new(&[2; 32], &[[1; 32]]);
    assert_eq!(
        store.rewrap_credentials(&rotating).await.expect("rewrap"),
        1
    );
    assert_eq!(store.rewrap_credentials(&rotating).await.expect("again"), 0);
    let opened = store.active_credentials(&new_only).await.expect("read");
    assert_eq!(opened[0].secret.as_ref().expect("opens").as_str(), SECRET_A);
    // A vault missing the key a record needs rewraps nothing.
    store
        .add_credential(&old, "acme", "gemini", SECRET_B, "bbbb", None, 1)
        .await
        .expect("old key");
    assert!(matches!(
        store.rewrap_credentials(&new_only).await,
        Err(StoreError::Vault(VaultError::UnknownMasterKey { .. }))
    ));
}

async fn rules_are_created_replaced_listed_and_removed(db: Db) {
    let store = db.open().await;
    store.ensure_tenant("acme", 1).await.expect("tenant");
    store.ensure_tenant("globex", 1).await.expect("tenant");
    for kind in [RuleKind::Policy, RuleKind::Limit] {
        let mut rule = RuleRecord {
            tenant: "acme".into(),
            name: "no-gpt4".into(),
            body: "check if model($m), $m != \"gpt-4\"".into(),
            created_at: 1,
            updated_at: 1,
        };
        assert!(store.put_rule(kind, &rule).await.expect("create"));
        rule.body = "check if true".into();
        rule.updated_at = 2;
        rule.created_at = 2;
        assert!(!store.put_rule(kind, &rule).await.expect("replace"));
        let read = store
            .rule(kind, "acme", "no-gpt4")
            .await
            .expect("read")
            .expect("there");
        assert_eq!(
            (read.body.as_str(), read.created_at, read.updated_at),
            ("check if true", 1, 2)
        );
        let other = RuleRecord {
            tenant: "globex".into(),
            ..rule.clone()
        };
        store.put_rule(kind, &other).await.expect("other tenant");
        assert_eq!(
            store.rules(kind, Some("acme")).await.expect("acme").len(),
            1
        );
        assert_eq!(store.rules(kind, None).await.expect("all").len(), 2);
        store
            .delete_rule(kind, "acme", "no-gpt4")
            .await
            .expect("delete");
        assert!(matches!(
            store.delete_rule(kind, "acme", "no-gpt4").await,
            Err(StoreError::NotFound { .. })
        ));
        let ghost = RuleRecord {
            tenant: "nobody".into(),
            ..rule
        };
        assert!(matches!(
            store.put_rule(kind, &ghost).await,
            Err(StoreError::NotFound { what: "tenant", .. })
        ));
    }
    assert!(
        store
            .rule(RuleKind::Policy, "globex", "no-gpt4")
            .await
            .expect("read")
            .is_some()
    );
    assert!(
        store
            .rule(RuleKind::Limit, "globex", "no-gpt4")
            .await
            .expect("read")
            .is_some()
    );
}

async fn every_write_grows_the_change_feed(db: Db) {
    let store = db.open().await;
    let v = vault();
    let mut last = store.change_seq().await.expect("seq");
    let mut grew = |seq: i64, what: &str| {
        assert!(
            seq > last,
            "{what} did not grow the feed ({seq} after {last})"
        );
        last = seq;
    };
    store.ensure_tenant("acme", 1).await.expect("tenant");
    grew(store.change_seq().await.expect("seq"), "a tenant");
    store
        .create_upstream(&upstream(Some("acme"), "crm"))
        .await
        .expect("upstream");
    grew(store.change_seq().await.expect("seq"), "an upstream");
    store
        .add_credential(&v, "acme", "crm", SECRET_A, "f", None, 1)
        .await
        .expect("cred");
    grew(store.change_seq().await.expect("seq"), "a credential");
    store.put_agent(&agent("acme", "bot")).await.expect("agent");
    grew(store.change_seq().await.expect("seq"), "an agent");
    let rule = RuleRecord {
        tenant: "acme".into(),
        name: "p".into(),
        body: "check if true".into(),
        created_at: 1,
        updated_at: 1,
    };
    store
        .put_rule(RuleKind::Policy, &rule)
        .await
        .expect("policy");
    grew(store.change_seq().await.expect("seq"), "a policy");
    store
        .put_revocation(
            &Revocation::Tenant {
                tenant: "acme".into(),
            },
            &RevocationNote::default(),
        )
        .await
        .expect("revoke");
    grew(store.change_seq().await.expect("seq"), "a revocation");
    // A refused write adds nothing.
    let before = store.change_seq().await.expect("seq");
    assert!(store.create_tenant(&tenant("acme")).await.is_err());
    assert_eq!(store.change_seq().await.expect("seq"), before);
}

async fn a_second_handle_sees_changes_through_the_feed(db: Db) {
    let writer = db.open().await;
    let reader = db.open().await;
    let feed = reader
        .watch_changes(Duration::from_millis(100))
        .await
        .expect("watch");
    let mut seen = feed.subscribe();
    let start = *seen.borrow();
    writer.ensure_tenant("acme", 1).await.expect("write");
    let expected = writer.change_seq().await.expect("seq");
    assert!(expected > start);
    let deadline = Instant::now() + Duration::from_secs(5);
    while *seen.borrow() < expected {
        let left = deadline.saturating_duration_since(Instant::now());
        assert!(!left.is_zero(), "the change was not seen within 5 s");
        let _ = tokio::time::timeout(left, seen.changed()).await;
    }
}

async fn agents_and_revocations_persist(db: Db) {
    let store = db.open().await;
    let a = agent("acme", "bot");
    assert!(store.insert_agent(&a).await.expect("insert"));
    assert!(!store.insert_agent(&a).await.expect("again"));
    assert!(
        store.tenant("acme").await.expect("tenant").is_some(),
        "registering an agent creates its tenant"
    );
    assert!(store.tenant_has_agents("acme").await.expect("has"));
    assert_eq!(store.agents("acme").await.expect("list"), vec![a.clone()]);
    let revocation = Revocation::Agent {
        tenant: "acme".into(),
        agent: "bot".into(),
    };
    let note = RevocationNote {
        at: 3,
        by: Some("ops".into()),
        reason: Some("leaked".into()),
    };
    let id = store
        .put_revocation(&revocation, &note)
        .await
        .expect("revoke");
    let second = store
        .put_revocation(&revocation, &note)
        .await
        .expect("revoke again");
    assert!(second > id);
    assert_eq!(
        store.revocations().await.expect("list"),
        vec![revocation.clone(), revocation.clone()]
    );
    let lift = RevocationNote {
        at: 4,
        by: Some("ops".into()),
        reason: None,
    };
    assert_eq!(
        store
            .lift_revocations(&revocation, &lift)
            .await
            .expect("lift"),
        2
    );
    assert!(store.revocations().await.expect("list").is_empty());
    assert_eq!(
        store
            .revocation_record(id)
            .await
            .expect("read")
            .expect("there")
            .lifted,
        Some(lift)
    );
}

async fn a_refused_write_leaves_nothing_half_written(db: Db) {
    let store = db.open().await;
    let v = vault();
    store.ensure_tenant("acme", 1).await.expect("tenant");
    store
        .add_credential(&v, "acme", "openai", SECRET_A, "aaaa", None, 1)
        .await
        .expect("v1");
    // An oversized secret is refused before anything changes: v1 stays active.
    assert!(
        store
            .add_credential(&v, "acme", "openai", &"x".repeat(20_000), "f", None, 2)
            .await
            .is_err()
    );
    let listed = store.credentials("acme", "openai").await.expect("list");
    assert_eq!(
        listed
            .iter()
            .map(|c| (c.version, c.active))
            .collect::<Vec<_>>(),
        [(1, true)]
    );
    // A rewrap that fails midway (one record under a key the vault lacks) changes no row.
    let other = Vault::new(&[9; 32], &[]);
    store.ensure_tenant("globex", 1).await.expect("tenant");
    store
        .add_credential(&other, "globex", "openai", SECRET_B, "bbbb", None, 1)
        .await
        .expect("other key");
    let rotating = Vault::new(&[3; 32], &[[7; 32]]);
    assert!(store.rewrap_credentials(&rotating).await.is_err());
    let opened = store.active_credentials(&v).await.expect("read");
    let acme = opened
        .iter()
        .find(|c| c.meta.tenant == "acme")
        .expect("acme's");
    assert_eq!(
        acme.secret
            .as_ref()
            .expect("still under the old key")
            .as_str(),
        SECRET_A
    );
}

async fn a_store_is_probed_and_described_without_its_password(db: Db) {
    let store = match &db {
        // Trust authentication ignores the password; the store must not show it.
        Db::Postgres(name) => writ_store::Store::connect(&format!(
            "postgres://postgres:hunter2@127.0.0.1:5432/{name}"
        ))
        .await
        .expect("store"),
        Db::Sqlite(..) => db.open().await,
    };
    store.probe().await.expect("store");
    let described = store.describe().to_string();
    let debug = format!("{store:?}");
    for shown in [&described, &debug] {
        assert!(!shown.contains("hunter2"), "{shown}");
    }
    match &db {
        Db::Postgres(name) => {
            assert_eq!(described, format!("PostgreSQL at 127.0.0.1:5432/{name}"));
        }
        Db::Sqlite(..) => assert!(described.starts_with("SQLite at /"), "{described}"),
    }
    // The probe writes nothing (a write would race the store's own transactions).
    let before = store.change_seq().await.expect("store");
    store.probe().await.expect("store");
    assert_eq!(store.change_seq().await.expect("store"), before);
}
