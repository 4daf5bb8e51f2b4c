//! Delegation blocks (token exchange): who acts, and revoking the actor. Only blocks a
//! root key signed name an actor; a holder stating a delegation in its own block does not.
#![allow(clippy::unwrap_used)]

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use biscuit_auth::builder::BlockBuilder;
use writ_token::{
    Delegation, Grant, KeyId, MintRequest, Revocation, RevocationSet, RootKeyPair, RootKeys,
    VerifiedWrit, WRIT_PREFIX, decode, mint, parse_grants, token_id_issued_at,
};

fn t0() -> SystemTime {
    UNIX_EPOCH + Duration::from_secs(1_800_000_000)
}

fn llm() -> Vec<Grant> {
    parse_grants(r#"{"type":"writ:llm","upstream":"demo"}"#).unwrap()
}

fn subject(key: &RootKeyPair) -> String {
    let req = MintRequest {
        tenant: "default",
        agent: "planner",
        ceiling: &llm(),
        grants: &llm(),
        ttl: Duration::from_secs(30),
        max_ttl: Duration::from_secs(30),
        now: t0(),
        cnf_jkt: None,
        audience: None,
    };
    mint(key, &req).unwrap().0
}

fn keys(of: &[&RootKeyPair]) -> RootKeys {
    let mut keys = RootKeys::new();
    for k in of {
        keys.insert(k.kid(), k.public());
    }
    keys
}

fn verify(writ: &str, keys: &RootKeys) -> VerifiedWrit {
    decode(writ).unwrap().verify(keys).unwrap()
}

fn delegate(writ: &VerifiedWrit, to: &str, signer: &RootKeyPair) -> String {
    writ.delegate(&Delegation {
        grants: &llm(),
        actor_ceiling: &llm(),
        delegated_to: to,
        expires_at: t0() + Duration::from_secs(20),
        signer,
        audience: None,
    })
    .unwrap()
}

fn agent(tenant: &str, agent: &str) -> Revocation {
    Revocation::Agent {
        tenant: tenant.into(),
        agent: agent.into(),
    }
}

#[test]
fn a_delegated_writ_names_its_actor_and_is_revoked_with_it() {
    let key = RootKeyPair::generate(KeyId(1));
    let keys = keys(&[&key]);
    let parent = verify(&subject(&key), &keys);
    let child = verify(&delegate(&parent, "default/researcher", &key), &keys);
    assert_eq!(
        child.delegation_chain(),
        vec![(
            "default/planner".to_string(),
            "default/researcher".to_string()
        )]
    );
    assert_eq!(child.acting_agent(), ("default", "researcher"));
    assert_eq!(parent.acting_agent(), ("default", "planner"));
    assert_eq!(child.delegated_by_block(2), Some("default/researcher"));
    assert_eq!(child.delegated_by_block(1), None);

    // Delegated once more, to an agent of another tenant: both actors are in the chain.
    let grandchild = verify(&delegate(&child, "lab/summarizer", &key), &keys);
    assert_eq!(grandchild.acting_agent(), ("lab", "summarizer"));
    assert_eq!(grandchild.delegation_chain().len(), 2);

    let revoked = |r: Revocation| RevocationSet::from_revocations(&[r]);
    let set = revoked(agent("default", "researcher"));
    assert!(
        set.is_revoked(&child),
        "revoking the actor revokes its writ"
    );
    assert!(set.is_revoked(&grandchild), "and what it delegated on");
    assert!(!set.is_revoked(&parent), "not the delegator's own writ");
    assert!(set.refuses_agent("default", "researcher"));
    assert!(!set.refuses_agent("default", "planner"));
    let set = revoked(Revocation::Tenant {
        tenant: "lab".into(),
    });
    assert!(set.is_revoked(&grandchild));
    assert!(!set.is_revoked(&child));
    assert!(set.refuses_agent("lab", "anyone"));
    assert!(!revoked(agent("lab", "researcher")).is_revoked(&child));
}

#[test]
fn a_delegation_signed_by_a_rotated_in_key_counts_and_a_foreign_one_does_not() {
    let old = RootKeyPair::generate(KeyId(1));
    let new = RootKeyPair::generate(KeyId(2));
    let trusted = keys(&[&old, &new]);
    let parent = verify(&subject(&old), &trusted);
    let child = verify(&delegate(&parent, "default/researcher", &new), &trusted);
    assert_eq!(child.acting_agent(), ("default", "researcher"));

    // A holder signing the block with a key of its own: the block still binds (its checks
    // apply) but names nobody.
    let stranger = RootKeyPair::generate(KeyId(1));
    let forged = verify(&delegate(&parent, "default/victim", &stranger), &trusted);
    assert!(forged.delegation_chain().is_empty());
    assert_eq!(forged.acting_agent(), ("default", "planner"));
    assert!(!RevocationSet::from_revocations(&[agent("default", "victim")]).is_revoked(&forged));
}

#[test]
fn a_delegation_stated_in_an_attenuation_block_names_nobody() {
    let key = RootKeyPair::generate(KeyId(1));
    let keys = keys(&[&key]);
    let writ = subject(&key);
    let body = writ.strip_prefix(WRIT_PREFIX).unwrap();
    let token = biscuit_auth::UnverifiedBiscuit::from_base64(body).unwrap();
    let block = BlockBuilder::new()
        .fact(r#"delegation(2, "default/planner", "default/victim")"#)
        .unwrap();
    let forged = format!(
        "{WRIT_PREFIX}{}",
        token.append(block).unwrap().to_base64().unwrap()
    );
    let forged = verify(&forged, &keys);
    assert!(forged.delegation_chain().is_empty());
    assert_eq!(forged.acting_agent(), ("default", "planner"));
    assert_eq!(forged.delegated_by_block(2), None);
}

#[test]
fn token_ids_tell_when_their_writ_was_issued() {
    let key = RootKeyPair::generate(KeyId(1));
    let writ = verify(&subject(&key), &keys(&[&key]));
    let id = &writ.claims().token_id;
    assert_eq!(token_id_issued_at(id), Some(t0()));
    assert_eq!(token_id_issued_at(&id.to_lowercase()), None);
    assert_eq!(token_id_issued_at("01JSOMETOKENIDTOREVOKE000"), None);
    assert_eq!(token_id_issued_at(""), None);
}
