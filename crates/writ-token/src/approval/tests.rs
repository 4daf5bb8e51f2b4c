#![allow(clippy::unwrap_used)]

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use super::*;
use crate::facts::Api;
use crate::grant::parse_grants;
use crate::keys::{KeyId, RootKeyPair, RootKeys};
use crate::mint::{MintRequest, mint};

fn at(secs: u64) -> SystemTime {
    UNIX_EPOCH + Duration::from_secs(secs)
}

const NOW: u64 = 1_800_000_000;

fn root() -> (RootKeyPair, RootKeys) {
    let key = RootKeyPair::generate(KeyId(1));
    let mut keys = RootKeys::new();
    keys.insert(key.kid(), key.public());
    (key, keys)
}

fn writ(key: &RootKeyPair) -> String {
    let grants = parse_grants(r#"[{"type":"writ:tool","upstream":"pay","tool":"pay"}]"#).unwrap();
    mint(
        key,
        &MintRequest {
            tenant: "acme",
            agent: "bot",
            ceiling: &grants,
            grants: &grants,
            ttl: Duration::from_secs(300),
            max_ttl: Duration::from_secs(300),
            now: at(NOW),
            cnf_jkt: None,
            audience: None,
        },
    )
    .unwrap()
    .0
}

fn statement(writ: &VerifiedWrit) -> ApprovalStatement {
    ApprovalStatement {
        scope: ApprovalScope::Request,
        id: new_approval_id(),
        approved_by: "alice".into(),
        method: "approver_token".into(),
        approved_at: at(NOW + 10),
        expires_at: at(NOW + 100),
        request_digest: "ab".repeat(32),
        writ: writ.last_revocation_id(),
    }
}

#[test]
fn an_approval_block_is_read_back_from_the_writ_it_was_made_for() {
    let (key, keys) = root();
    let approver = ApprovalKey::generate();
    let plain = writ(&key);
    let verified = crate::decode(&plain).unwrap().verify(&keys).unwrap();
    let said = statement(&verified);
    let block = sign_approval(&approver, &verified.approval_ticket().unwrap(), &said).unwrap();
    let approved = append_approval(&plain, &block).unwrap();
    let verified = crate::decode(&approved).unwrap().verify(&keys).unwrap();
    assert_eq!(verified.approvals(&approver.public()).unwrap(), vec![said]);
    // Another key's view: nothing.
    let other = ApprovalKey::generate();
    assert!(verified.approvals(&other.public()).unwrap().is_empty());
    // The block grants nothing: the writ still allows only what it allowed.
    let mut facts = RequestFacts::new(Api::Tool, "tool_call", "POST", "/");
    facts.upstream = Some("pay".into());
    facts.tool = Some("refund".into());
    assert!(verified.authorize(&facts, at(NOW + 20)).is_err());
}

#[test]
fn a_block_made_for_one_writ_cannot_be_carried_by_another() {
    let (key, keys) = root();
    let approver = ApprovalKey::generate();
    let first = writ(&key);
    let second = writ(&key);
    let verified = crate::decode(&first).unwrap().verify(&keys).unwrap();
    let block = sign_approval(
        &approver,
        &verified.approval_ticket().unwrap(),
        &statement(&verified),
    )
    .unwrap();
    // Appended to another writ, the third-party signature does not verify.
    match append_approval(&second, &block) {
        Err(_) => {}
        Ok(moved) => assert!(crate::decode(&moved).unwrap().verify(&keys).is_err()),
    }
}

#[test]
fn approval_facts_in_a_holders_block_state_nothing() {
    let (key, keys) = root();
    let approver = ApprovalKey::generate();
    let plain = writ(&key);
    let verified = crate::decode(&plain).unwrap().verify(&keys).unwrap();
    let rid = verified.last_revocation_id();
    let code = format!(
        r#"approval("apr_AAAAAAAAAAAAAAAAAAAAAA", "{}", "{rid}", 2030-01-01T00:00:00Z);
           approved_by("mallory", "passkey"); approved_at(2026-01-01T00:00:00Z);"#,
        "ab".repeat(32)
    );
    let token = UnverifiedBiscuit::from_base64(plain.strip_prefix(WRIT_PREFIX).unwrap()).unwrap();
    let block = BlockBuilder::new().code(code).unwrap();
    let forged = format!(
        "{WRIT_PREFIX}{}",
        token.append(block).unwrap().to_base64().unwrap()
    );
    let verified = crate::decode(&forged).unwrap().verify(&keys).unwrap();
    assert!(verified.approvals(&approver.public()).unwrap().is_empty());
}

#[test]
fn a_block_signed_by_another_key_is_not_an_approval() {
    let (key, keys) = root();
    let approver = ApprovalKey::generate();
    let impostor = ApprovalKey::generate();
    let plain = writ(&key);
    let verified = crate::decode(&plain).unwrap().verify(&keys).unwrap();
    let block = sign_approval(
        &impostor,
        &verified.approval_ticket().unwrap(),
        &statement(&verified),
    )
    .unwrap();
    let carried = append_approval(&plain, &block).unwrap();
    let verified = crate::decode(&carried).unwrap().verify(&keys).unwrap();
    assert!(verified.approvals(&approver.public()).unwrap().is_empty());
    assert_eq!(verified.approvals(&impostor.public()).unwrap().len(), 1);
}

#[test]
fn approval_ids_are_unguessable_and_checked_for_shape() {
    let a = new_approval_id();
    let b = new_approval_id();
    assert_ne!(a, b);
    assert!(valid_approval_id(&a));
    for bad in [
        "",
        "apr_",
        "apr_short",
        "APR_AAAAAAAAAAAAAAAAAAAAAA",
        "apr_AAAAAAAAAAAAAAAAAAAA/A",
        "apr_AAAAAAAAAAAAAAAAAAAAAAA",
        "apr_AAAAAAAAAAAAAAAAAAAAA\u{e9}",
    ] {
        assert!(!valid_approval_id(bad), "{bad:?}");
    }
}

#[test]
fn the_request_digest_changes_with_anything_the_request_says() {
    let mut facts = RequestFacts::new(Api::Tool, "tool_call", "POST", "/mcp/pay");
    facts.upstream = Some("pay".into());
    facts.tool = Some("pay".into());
    facts.args = vec![("amount".into(), crate::ArgValue::Int(250))];
    let body = br#"{"b":1,"a":{"y":2,"x":[1,"z"]}}"#;
    let base = request_digest(&facts, "/mcp/pay", body);
    // Key order and spacing do not matter.
    let same = br#"{ "a" : {"x":[1,"z"], "y":2}, "b":1 }"#;
    assert_eq!(request_digest(&facts, "/mcp/pay", same), base);
    // Anything else does.
    assert_ne!(request_digest(&facts, "/mcp/pay?x=1", body), base);
    assert_ne!(
        request_digest(&facts, "/mcp/pay", br#"{"b":2,"a":{"y":2,"x":[1,"z"]}}"#),
        base
    );
    let mut more = facts.clone();
    more.args = vec![("amount".into(), crate::ArgValue::Int(251))];
    assert_ne!(request_digest(&more, "/mcp/pay", body), base);
    let mut other = facts.clone();
    other.upstream = Some("pay2".into());
    assert_ne!(request_digest(&other, "/mcp/pay", body), base);
    // Where canonical form could merge two readings, the bytes count: a repeated key
    // (first-wins and last-wins readers differ), a number past 64 bits or a fraction.
    let twice = request_digest(&facts, "/mcp/pay", br#"{"a":1,"a":2}"#);
    assert_ne!(twice, request_digest(&facts, "/mcp/pay", br#"{"a":2}"#));
    assert_ne!(
        request_digest(&facts, "/mcp/pay", br#"{"n":100000000000000000000}"#),
        request_digest(&facts, "/mcp/pay", br#"{"n":100000000000000000001}"#)
    );
    assert_ne!(
        request_digest(&facts, "/mcp/pay", br#"{"n":0.1}"#),
        request_digest(&facts, "/mcp/pay", br#"{"n":0.10000000000000000001}"#)
    );
    assert_ne!(
        request_digest(&facts, "/mcp/pay", br#"{"b":0.5, "a":1}"#),
        request_digest(&facts, "/mcp/pay", br#"{"a":1,"b":0.5}"#),
        "with a fraction, even key order counts"
    );
    // A body that is not JSON is digested as its bytes.
    assert_ne!(
        request_digest(&facts, "/mcp/pay", b"amount=250"),
        request_digest(&facts, "/mcp/pay", b"amount=251")
    );
}

#[test]
fn canonical_json_sorts_keys_at_every_depth() {
    let v: serde_json::Value =
        serde_json::from_str(r#"{"é":1,"b":[{"d":1,"c":2}],"a":null}"#).unwrap();
    let mut out = Vec::new();
    canonical_json(&v, &mut out);
    assert_eq!(
        String::from_utf8(out).unwrap(),
        r#"{"a":null,"b":[{"c":2,"d":1}],"é":1}"#
    );
}

#[test]
fn the_approval_key_round_trips_and_hides_its_private_half() {
    let key = ApprovalKey::generate();
    let again = ApprovalKey::from_private_hex(&key.private_hex()).unwrap();
    assert_eq!(key.public(), again.public());
    assert!(!format!("{key:?}").contains(key.private_hex().as_str()));
    assert!(ApprovalKey::from_private_hex("nothex").is_err());
}
