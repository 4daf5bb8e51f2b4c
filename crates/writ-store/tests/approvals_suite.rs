//! Approvals and approvers on both databases: each approval is decided once, finished
//! once and expired once however many callers race; pending ones are bounded per agent and
//! per tenant; early polls slow down; every kind of stop voids exactly what it reaches;
//! approvers are found by their token's hash; and hostile text comes back byte for byte.

use writ_store::{
    ApprovalFilter, ApprovalKind, ApprovalRecord, ApprovalStatus, Decision, NewApproval,
    PendingBounds, PollPace, Store, StoreError, VoidMatch,
};

#[macro_use]
#[path = "shared/database.rs"]
mod shared_database;

use shared_database::{Db, database};

on_both!(
    an_approval_is_decided_once,
    two_deciders_at_once_have_one_winner,
    an_approval_is_finished_once,
    pending_approvals_are_bounded_per_agent_and_per_tenant,
    gateways_asking_at_once_do_not_pass_a_bound_together,
    polling_too_early_slows_down_by_five_seconds,
    each_stop_voids_what_it_reaches_and_nothing_else,
    expiry_is_recorded_once,
    approvers_are_added_found_listed_and_removed,
    hostile_text_is_stored_and_read_back_byte_for_byte,
);

/// The time the approvals of these tests are asked at (Unix seconds).
const T: u64 = 1_800_000_000;

const ROOMY: PendingBounds = PendingBounds {
    per_agent: 100,
    per_tenant: 100,
};

/// A pending request approval of `agent` in `tenant`, for a writ with `token_id`.
fn asked(tenant: &str, agent: &str, token_id: &str) -> NewApproval {
    NewApproval {
        id: writ_token::new_approval_id(),
        tenant: tenant.into(),
        agent: agent.into(),
        kind: ApprovalKind::Request,
        reason: "payments over 100".into(),
        summary: r#"{"tool":"pay","arguments":{"amount":250}}"#.into(),
        summary_digest: "ab".repeat(32),
        request_digest: "cd".repeat(32),
        writ_token_id: Some(token_id.into()),
        writ_revocation_ids: vec![format!("{token_id}00").to_ascii_lowercase()],
        writ_issued_at: Some(T),
        ticket: Some(vec![0, 1, 2, 255]),
        mint_request: None,
        created_at: T,
        expires_at: T + 300,
        poll_interval: 5,
    }
}

fn decision(approve: bool, by: &str, at: u64) -> Decision {
    Decision {
        approve,
        by: by.into(),
        method: "approver_token".into(),
        reason: Some(format!("{by} looked")),
        at,
        block: approve.then(|| vec![9, 8, 7]),
    }
}

async fn create(store: &Store, new: &NewApproval) -> ApprovalRecord {
    store.create_approval(new, ROOMY).await.expect("create")
}

fn status(record: &Option<ApprovalRecord>) -> ApprovalStatus {
    record.as_ref().expect("stored").status
}

fn ids(records: &[ApprovalRecord]) -> Vec<String> {
    let mut ids: Vec<String> = records.iter().map(|r| r.id.clone()).collect();
    ids.sort();
    ids
}

fn sorted(mut list: Vec<String>) -> Vec<String> {
    list.sort();
    list
}

async fn an_approval_is_decided_once(db: Db) {
    let store = db.open().await;
    let new = asked("acme", "planner", "tok1");
    let created = create(&store, &new).await;
    assert_eq!(created.status, ApprovalStatus::Pending);
    assert_eq!(
        (created.tenant.as_str(), created.agent.as_str()),
        ("acme", "planner")
    );
    assert_eq!(created.kind, ApprovalKind::Request);
    assert_eq!(created.writ_revocation_ids, new.writ_revocation_ids);
    assert_eq!(created.ticket, new.ticket);
    assert_eq!(created.writ_issued_at, Some(T));
    assert_eq!((created.poll_interval, created.next_poll_at), (5, T + 5));
    assert_eq!(
        (created.decided_by.clone(), created.block.clone()),
        (None, None)
    );
    assert_eq!(store.approval(&new.id).await.expect("read"), Some(created));
    assert_eq!(store.approval("apr_unknown").await.expect("read"), None);

    let approved = store
        .decide_approval(&new.id, &decision(true, "alice", T + 10))
        .await
        .expect("decide");
    assert_eq!(approved.status, ApprovalStatus::Approved);
    assert_eq!(approved.decided_by.as_deref(), Some("alice"));
    assert_eq!(approved.decided_method.as_deref(), Some("approver_token"));
    assert_eq!(approved.decided_at, Some(T + 10));
    assert_eq!(approved.decision_reason.as_deref(), Some("alice looked"));
    assert_eq!(approved.block, Some(vec![9, 8, 7]));
    // A second decision, either way, is refused and changes nothing.
    for approve in [true, false] {
        let again = store
            .decide_approval(&new.id, &decision(approve, "mallory", T + 11))
            .await;
        assert!(
            matches!(&again, Err(StoreError::Refused(m)) if m.contains("approved")),
            "{again:?}"
        );
    }
    assert_eq!(store.approval(&new.id).await.expect("read"), Some(approved));

    let other = asked("acme", "planner", "tok2");
    create(&store, &other).await;
    let denied = store
        .decide_approval(&other.id, &decision(false, "bob", T + 10))
        .await
        .expect("deny");
    assert_eq!(
        (denied.status, denied.block.clone()),
        (ApprovalStatus::Denied, None)
    );
    let again = store
        .decide_approval(&other.id, &decision(true, "alice", T + 12))
        .await;
    assert!(
        matches!(&again, Err(StoreError::Refused(m)) if m.contains("denied")),
        "{again:?}"
    );
    // Too late: at its expiry it can no longer be decided, though not yet marked.
    let late = asked("acme", "planner", "tok3");
    create(&store, &late).await;
    let too_late = store
        .decide_approval(&late.id, &decision(true, "alice", T + 300))
        .await;
    assert!(
        matches!(&too_late, Err(StoreError::Refused(m)) if m.contains("expired")),
        "{too_late:?}"
    );
    assert_eq!(
        status(&store.approval(&late.id).await.expect("read")),
        ApprovalStatus::Pending
    );
    let unknown = store
        .decide_approval("apr_nothing", &decision(true, "alice", T))
        .await;
    assert!(
        matches!(
            unknown,
            Err(StoreError::NotFound {
                what: "approval",
                ..
            })
        ),
        "{unknown:?}"
    );

    // Listings: newest first, filtered; `pending` leaves out those past expiry.
    let filter = |status: Option<ApprovalStatus>| ApprovalFilter {
        tenant: Some("acme".into()),
        agent: Some("planner".into()),
        status,
        limit: 10,
    };
    let all = store.approvals(&filter(None), T).await.expect("list");
    assert_eq!(all.len(), 3);
    let waiting = store
        .approvals(&filter(Some(ApprovalStatus::Pending)), T + 1)
        .await
        .expect("list");
    assert_eq!(ids(&waiting), vec![late.id.clone()]);
    let waiting = store
        .approvals(&filter(Some(ApprovalStatus::Pending)), T + 300)
        .await
        .expect("list");
    assert!(waiting.is_empty());
    let elsewhere = ApprovalFilter {
        tenant: Some("globex".into()),
        ..filter(None)
    };
    assert!(
        store
            .approvals(&elsewhere, T)
            .await
            .expect("list")
            .is_empty()
    );
}

async fn two_deciders_at_once_have_one_winner(db: Db) {
    // Two handles, as two gateways on one database.
    let (one, two) = (db.open().await, db.open().await);
    for round in 0..8 {
        let new = asked("acme", "planner", &format!("race{round}"));
        create(&one, &new).await;
        let (alice, bob) = (
            decision(true, "alice", T + 1),
            decision(round % 2 == 0, "bob", T + 1),
        );
        let (a, b) = tokio::join!(
            one.decide_approval(&new.id, &alice),
            two.decide_approval(&new.id, &bob),
        );
        let winners = [&a, &b].iter().filter(|r| r.is_ok()).count();
        assert_eq!(winners, 1, "round {round}: {a:?} {b:?}");
        let loser = if a.is_ok() { &b } else { &a };
        assert!(matches!(loser, Err(StoreError::Refused(_))), "{loser:?}");
        let winner = a.as_ref().or(b.as_ref()).expect("one won");
        // What is stored is the winner's decision, whole.
        let stored = one.approval(&new.id).await.expect("read").expect("stored");
        assert_eq!(&stored, winner);
    }
}

async fn gateways_asking_at_once_do_not_pass_a_bound_together(db: Db) {
    // Two handles, as two gateways on one database, asking 24 times at once for 5 places.
    let (one, two) = (db.open().await, db.open().await);
    let bounds = PendingBounds {
        per_agent: 5,
        per_tenant: 5,
    };
    let asks: Vec<_> = (0..24)
        .map(|i| {
            let store = if i % 2 == 0 { one.clone() } else { two.clone() };
            let new = asked("acme", "planner", &format!("burst{i}"));
            tokio::spawn(async move { store.create_approval(&new, bounds).await })
        })
        .collect();
    let mut created = 0;
    for ask in asks {
        match ask.await.expect("task") {
            Ok(_) => created += 1,
            Err(StoreError::Refused(_)) => {}
            Err(e) => panic!("neither created nor refused: {e}"),
        }
    }
    assert_eq!(created, 5);
}

async fn an_approval_is_finished_once(db: Db) {
    let (one, two) = (db.open().await, db.open().await);
    let new = asked("acme", "planner", "fin1");
    create(&one, &new).await;
    one.decide_approval(&new.id, &decision(true, "alice", T + 1))
        .await
        .expect("approve");
    let (a, b) = tokio::join!(
        one.finish_approval(&new.id, ApprovalStatus::Used, T + 2),
        two.finish_approval(&new.id, ApprovalStatus::Used, T + 2),
    );
    assert_eq!(
        [a.expect("finish"), b.expect("finish")]
            .iter()
            .filter(|w| **w)
            .count(),
        1
    );
    let used = one.approval(&new.id).await.expect("read").expect("stored");
    assert_eq!(
        (used.status, used.finished_at),
        (ApprovalStatus::Used, Some(T + 2))
    );
    for end in [
        ApprovalStatus::Used,
        ApprovalStatus::Voided,
        ApprovalStatus::Expired,
    ] {
        assert!(
            !one.finish_approval(&new.id, end, T + 3)
                .await
                .expect("finish")
        );
    }
    assert_eq!(
        one.approval(&new.id).await.expect("read").expect("stored"),
        used
    );
    // A denied approval cannot be finished; a pending one can (voided, say).
    let denied = asked("acme", "planner", "fin2");
    create(&one, &denied).await;
    one.decide_approval(&denied.id, &decision(false, "bob", T + 1))
        .await
        .expect("deny");
    assert!(
        !one.finish_approval(&denied.id, ApprovalStatus::Used, T + 2)
            .await
            .expect("finish")
    );
    let waiting = asked("acme", "planner", "fin3");
    create(&one, &waiting).await;
    assert!(
        one.finish_approval(&waiting.id, ApprovalStatus::Voided, T + 2)
            .await
            .expect("finish")
    );
    assert!(
        !one.finish_approval("apr_unknown", ApprovalStatus::Used, T)
            .await
            .expect("finish")
    );
}

async fn pending_approvals_are_bounded_per_agent_and_per_tenant(db: Db) {
    let store = db.open().await;
    let bounds = PendingBounds {
        per_agent: 2,
        per_tenant: 3,
    };
    let ask = |agent: &str, n: u32, at: u64| NewApproval {
        created_at: at,
        expires_at: at + 60,
        ..asked("acme", agent, &format!("{agent}{n}"))
    };
    for n in 0..2 {
        store
            .create_approval(&ask("planner", n, T), bounds)
            .await
            .expect("within the agent's bound");
    }
    let third = ask("planner", 2, T);
    let refused = store.create_approval(&third, bounds).await;
    assert!(
        matches!(&refused, Err(StoreError::Refused(m)) if m.contains("agent `planner`") && m.contains('2')),
        "{refused:?}"
    );
    assert_eq!(store.approval(&third.id).await.expect("read"), None);
    store
        .create_approval(&ask("researcher", 0, T), bounds)
        .await
        .expect("the tenant's third");
    let refused = store.create_approval(&ask("writer", 0, T), bounds).await;
    assert!(
        matches!(&refused, Err(StoreError::Refused(m)) if m.contains("tenant `acme`") && m.contains('3')),
        "{refused:?}"
    );
    // Another tenant has bounds of its own.
    store
        .create_approval(
            &NewApproval {
                tenant: "globex".into(),
                ..ask("planner", 9, T)
            },
            bounds,
        )
        .await
        .expect("another tenant");
    // A decided approval no longer waits.
    let first = store
        .approvals(
            &ApprovalFilter {
                tenant: Some("acme".into()),
                agent: Some("planner".into()),
                status: Some(ApprovalStatus::Pending),
                limit: 10,
            },
            T,
        )
        .await
        .expect("list");
    store
        .decide_approval(&first[0].id, &decision(false, "bob", T + 1))
        .await
        .expect("deny");
    store
        .create_approval(&ask("planner", 3, T + 1), bounds)
        .await
        .expect("a decided one frees its place");
    // Expired ones (even not yet marked) do not count: at T + 61 all before have.
    for n in 4..6 {
        store
            .create_approval(&ask("planner", n, T + 61), bounds)
            .await
            .expect("expired ones do not count");
    }
    let refused = store
        .create_approval(&ask("planner", 6, T + 61), bounds)
        .await;
    assert!(
        matches!(refused, Err(StoreError::Refused(_))),
        "{refused:?}"
    );
}

async fn polling_too_early_slows_down_by_five_seconds(db: Db) {
    let store = db.open().await;
    let new = NewApproval {
        kind: ApprovalKind::Mint,
        writ_token_id: None,
        writ_revocation_ids: Vec::new(),
        writ_issued_at: None,
        ticket: None,
        mint_request: Some(r#"{"grants":[]}"#.into()),
        ..asked("acme", "planner", "unused")
    };
    create(&store, &new).await;
    let poll = |at: u64| store.note_approval_poll(&new.id, at);
    // Asked to wait 5 s: at T + 1 that is too early, and the interval grows to 10.
    assert_eq!(poll(T + 1).await.expect("poll"), PollPace::SlowDown(10));
    let record = store
        .approval(&new.id)
        .await
        .expect("read")
        .expect("stored");
    assert_eq!((record.poll_interval, record.next_poll_at), (10, T + 11));
    assert_eq!(poll(T + 10).await.expect("poll"), PollPace::SlowDown(15));
    assert_eq!(poll(T + 25).await.expect("poll"), PollPace::InTime);
    let record = store
        .approval(&new.id)
        .await
        .expect("read")
        .expect("stored");
    assert_eq!((record.poll_interval, record.next_poll_at), (15, T + 40));
    assert_eq!(poll(T + 40).await.expect("poll"), PollPace::InTime);
    assert_eq!(poll(T + 41).await.expect("poll"), PollPace::SlowDown(20));
    assert_eq!(
        store
            .approval(&new.id)
            .await
            .expect("read")
            .expect("stored")
            .kind,
        ApprovalKind::Mint
    );
}

async fn each_stop_voids_what_it_reaches_and_nothing_else(db: Db) {
    let store = db.open().await;
    let make = |tenant: &str, agent: &str, token: &str, rids: &[&str], issued: u64| NewApproval {
        writ_revocation_ids: rids.iter().map(|r| r.to_string()).collect(),
        writ_issued_at: Some(issued),
        ..asked(tenant, agent, token)
    };
    // `c`'s writ was attenuated from `a`'s: it holds a's authority block `aa01`.
    let a = make("acme", "planner", "tokA", &["aa01", "ab01"], T - 100);
    let b = make("acme", "planner", "tokB", &["bb01"], T);
    let c = make("acme", "researcher", "tokC", &["aa01", "cc01"], T - 50);
    // `aa0` is a prefix of `aa01`, not the same block.
    let d = make("acme", "researcher", "tokD", &["aa0"], T);
    let e = make("globex", "planner", "tokE", &["ee01"], T - 100);
    let f = make("acme", "planner", "tokF", &["ff01"], T - 100);
    let g = NewApproval {
        kind: ApprovalKind::Mint,
        writ_token_id: None,
        writ_revocation_ids: Vec::new(),
        writ_issued_at: None,
        ticket: None,
        created_at: T - 200,
        ..asked("globex", "minter", "none")
    };
    let h = make("initech", "bot", "tokH", &["hh01"], T - 300);
    let i = make("acme", "writer", "tokI", &["ii01"], T);
    let u = make("acme", "planner", "tokU", &["uu01"], T - 100);
    for new in [&a, &b, &c, &d, &e, &f, &g, &h, &i, &u] {
        create(&store, new).await;
    }
    store
        .decide_approval(&d.id, &decision(true, "alice", T + 1))
        .await
        .expect("d approved (not yet used: voidable)");
    store
        .decide_approval(&f.id, &decision(false, "bob", T + 1))
        .await
        .expect("f denied");
    store
        .decide_approval(&u.id, &decision(true, "alice", T + 1))
        .await
        .expect("u approved");
    assert!(
        store
            .finish_approval(&u.id, ApprovalStatus::Used, T + 2)
            .await
            .expect("u used")
    );

    let at = T + 5;
    let void = |m: VoidMatch<'static>| {
        let store = store.clone();
        async move { ids(&store.void_approvals(&m, at).await.expect("void")) }
    };
    assert_eq!(void(VoidMatch::TokenId("tokB")).await, vec![b.id.clone()]);
    assert!(void(VoidMatch::TokenId("tokB")).await.is_empty(), "once");
    assert!(void(VoidMatch::TokenId("tokF")).await.is_empty(), "denied");
    assert!(void(VoidMatch::TokenId("tokU")).await.is_empty(), "used");
    assert!(void(VoidMatch::TokenId("tok")).await.is_empty(), "prefix");
    // A parent's block reaches every writ attenuated from it; hex in any case.
    assert_eq!(
        void(VoidMatch::RevocationId("AA01")).await,
        sorted(vec![a.id.clone(), c.id.clone()])
    );
    assert!(void(VoidMatch::RevocationId("a")).await.is_empty());
    assert_eq!(
        void(VoidMatch::Agent {
            tenant: "acme",
            agent: "researcher"
        })
        .await,
        vec![d.id.clone()]
    );
    assert!(
        void(VoidMatch::Agent {
            tenant: "globex",
            agent: "researcher"
        })
        .await
        .is_empty()
    );
    // One tenant, before a time: a mint approval counts from when it was asked.
    assert_eq!(
        void(VoidMatch::IssuedBefore {
            tenant: Some("globex"),
            before: T - 150
        })
        .await,
        vec![g.id.clone()]
    );
    // Every tenant: strictly before.
    assert_eq!(
        void(VoidMatch::IssuedBefore {
            tenant: None,
            before: T - 99
        })
        .await,
        sorted(vec![e.id.clone(), h.id.clone()])
    );
    assert_eq!(void(VoidMatch::Tenant("acme")).await, vec![i.id.clone()]);
    assert!(void(VoidMatch::Tenant("acme")).await.is_empty());

    for (new, expected) in [
        (&a, ApprovalStatus::Voided),
        (&b, ApprovalStatus::Voided),
        (&c, ApprovalStatus::Voided),
        (&d, ApprovalStatus::Voided),
        (&e, ApprovalStatus::Voided),
        (&f, ApprovalStatus::Denied),
        (&g, ApprovalStatus::Voided),
        (&h, ApprovalStatus::Voided),
        (&i, ApprovalStatus::Voided),
        (&u, ApprovalStatus::Used),
    ] {
        let record = store
            .approval(&new.id)
            .await
            .expect("read")
            .expect("stored");
        assert_eq!(
            record.status,
            expected,
            "{}",
            new.writ_token_id.as_deref().unwrap_or("mint")
        );
        if expected == ApprovalStatus::Voided {
            assert_eq!(record.finished_at, Some(at));
        }
    }
}

async fn expiry_is_recorded_once(db: Db) {
    let (one, two) = (db.open().await, db.open().await);
    let soon = |token: &str, ttl: u64| NewApproval {
        expires_at: T + ttl,
        ..asked("acme", "planner", token)
    };
    let p1 = soon("exp1", 10);
    let p2 = soon("exp2", 10);
    let p3 = soon("exp3", 100);
    let p4 = soon("exp4", 10);
    for new in [&p1, &p2, &p3, &p4] {
        create(&one, new).await;
    }
    one.decide_approval(&p2.id, &decision(true, "alice", T + 1))
        .await
        .expect("approved, never used");
    one.decide_approval(&p4.id, &decision(false, "bob", T + 1))
        .await
        .expect("denied stays denied");
    assert!(one.expire_approvals(T + 9).await.expect("sweep").is_empty());
    // Past expiry it reads as expired before anyone marks it.
    let unmarked = one.approval(&p1.id).await.expect("read").expect("stored");
    assert_eq!(unmarked.status, ApprovalStatus::Pending);
    assert_eq!(unmarked.status_at(T + 10), ApprovalStatus::Expired);
    assert_eq!(unmarked.status_at(T + 9), ApprovalStatus::Pending);

    let swept = one.expire_approvals(T + 10).await.expect("sweep");
    assert_eq!(ids(&swept), sorted(vec![p1.id.clone(), p2.id.clone()]));
    assert!(swept.iter().all(|r| r.status == ApprovalStatus::Expired));
    assert!(
        one.expire_approvals(T + 10)
            .await
            .expect("sweep")
            .is_empty()
    );
    // Two gateways sweeping at once: each expired approval is returned by exactly one.
    let (x, y) = tokio::join!(one.expire_approvals(T + 100), two.expire_approvals(T + 100));
    let (x, y) = (x.expect("sweep"), y.expect("sweep"));
    let mut both = ids(&x);
    both.extend(ids(&y));
    assert_eq!(both, vec![p3.id.clone()]);
    let denied = one.approval(&p4.id).await.expect("read").expect("stored");
    assert_eq!(denied.status, ApprovalStatus::Denied);
    let expired = one.approval(&p1.id).await.expect("read").expect("stored");
    assert_eq!(expired.finished_at, Some(T + 10));
}

async fn approvers_are_added_found_listed_and_removed(db: Db) {
    let store = db.open().await;
    store.ensure_tenant("acme", 1).await.expect("tenant");
    store.ensure_tenant("globex", 1).await.expect("tenant");
    let hash = |c: char| c.to_string().repeat(64);
    let alice = store
        .add_approver("acme", "alice", &hash('a'), T)
        .await
        .expect("add");
    assert_eq!(
        (alice.tenant.as_str(), alice.name.as_str(), alice.created_at),
        ("acme", "alice", T)
    );
    store
        .add_approver("acme", "bob", &hash('b'), T)
        .await
        .expect("add");
    store
        .add_approver("globex", "alice", &hash('c'), T)
        .await
        .expect("the same name in another tenant");
    let twice = store.add_approver("acme", "alice", &hash('d'), T).await;
    assert!(
        matches!(&twice, Err(StoreError::Conflict { what: "approver", name }) if name == "alice"),
        "{twice:?}"
    );
    let nowhere = store.add_approver("initech", "eve", &hash('e'), T).await;
    assert!(
        matches!(&nowhere, Err(StoreError::NotFound { what: "tenant", name }) if name == "initech"),
        "{nowhere:?}"
    );
    assert_eq!(
        store
            .approver_by_token_hash(&hash('a'))
            .await
            .expect("find"),
        Some(alice.clone())
    );
    assert_eq!(
        store
            .approver_by_token_hash(&hash('c'))
            .await
            .expect("find")
            .map(|a| a.tenant),
        Some("globex".to_string())
    );
    // The refused duplicate's token was not stored.
    assert_eq!(
        store
            .approver_by_token_hash(&hash('d'))
            .await
            .expect("find"),
        None
    );
    let names = |list: Vec<writ_store::ApproverRecord>| {
        list.into_iter()
            .map(|a| format!("{}/{}", a.tenant, a.name))
            .collect::<Vec<_>>()
    };
    assert_eq!(
        names(store.approvers(Some("acme")).await.expect("list")),
        ["acme/alice", "acme/bob"]
    );
    assert_eq!(
        names(store.approvers(None).await.expect("list")),
        ["acme/alice", "acme/bob", "globex/alice"]
    );
    store.delete_approver("acme", "bob").await.expect("delete");
    assert_eq!(
        store
            .approver_by_token_hash(&hash('b'))
            .await
            .expect("find"),
        None
    );
    let again = store.delete_approver("acme", "bob").await;
    assert!(
        matches!(
            &again,
            Err(StoreError::NotFound {
                what: "approver",
                ..
            })
        ),
        "{again:?}"
    );
    assert!(store.delete_approver("globex", "bob").await.is_err());
    assert_eq!(
        names(store.approvers(None).await.expect("list")),
        ["acme/alice", "globex/alice"]
    );
}

async fn hostile_text_is_stored_and_read_back_byte_for_byte(db: Db) {
    let store = db.open().await;
    let controls: String = (1u8..0x20)
        .chain([0x7f])
        .map(char::from)
        .chain(['\u{85}', '\u{2028}', '\u{202e}', '\u{feff}'])
        .collect();
    let html = "<script>alert('x')</script><img src=x onerror=alert(1)>\"'&;--";
    let mut summary = format!(r#"{{"html":"{html}","ctl":"{controls}","pad":""#);
    while summary.len() < 100 * 1024 {
        summary.push_str("é🦀'\\%_");
    }
    summary.push_str("\"}");
    let new = NewApproval {
        reason: format!("{html}{controls}"),
        summary: summary.clone(),
        mint_request: Some(format!("{controls}{html}")),
        ..asked("acme", "planner", "hostile")
    };
    create(&store, &new).await;
    store
        .decide_approval(
            &new.id,
            &Decision {
                reason: Some(format!("{controls} ok {html}")),
                by: format!("alice{controls}"),
                ..decision(true, "alice", T + 1)
            },
        )
        .await
        .expect("decide");
    let back = store
        .approval(&new.id)
        .await
        .expect("read")
        .expect("stored");
    assert_eq!(back.summary.as_bytes(), summary.as_bytes());
    assert!(back.summary.len() >= 100 * 1024);
    assert_eq!(back.reason, new.reason);
    assert_eq!(back.mint_request, new.mint_request);
    assert_eq!(back.decision_reason, Some(format!("{controls} ok {html}")));
    assert_eq!(back.decided_by, Some(format!("alice{controls}")));
    // A token id is matched exactly, wildcards and all.
    assert!(
        store
            .void_approvals(&VoidMatch::TokenId("%"), T + 2)
            .await
            .expect("void")
            .is_empty()
    );
    let listed = store
        .approvals(
            &ApprovalFilter {
                tenant: Some("acme".into()),
                limit: 1,
                ..ApprovalFilter::default()
            },
            T,
        )
        .await
        .expect("list");
    assert_eq!(listed[0].summary, summary);
}
