use std::time::{Duration, UNIX_EPOCH};

use biscuit_auth::Biscuit;
use biscuit_auth::builder::{BiscuitBuilder, BlockBuilder};

use super::*;
use crate::keys::RootKeys;
use crate::{KeyId, MintRequest, RootKeyPair, decode, mint, parse_grants};

/// A root key and the set trusting it.
fn root() -> (RootKeyPair, RootKeys) {
    let key = RootKeyPair::generate(KeyId(1));
    let mut keys = RootKeys::new();
    keys.insert(key.kid(), key.public());
    (key, keys)
}

/// The claims the queries find in `biscuit`, and what `read` finds in its bytes.
fn both(biscuit: &Biscuit, keys: &RootKeys) -> (Option<WritClaims>, Option<WritClaims>) {
    let sealed = biscuit.to_vec().unwrap();
    let read = read(&Blocks::decode(&sealed).unwrap(), biscuit.root_key_id());
    let queried = crate::verify::queried_claims(biscuit, keys)
        .ok()
        .map(|(claims, delegation)| {
            assert!(delegation.is_empty());
            claims
        });
    (read, queried)
}

/// A token signed by `key` whose authority block is `authority` and whose later blocks
/// (first party) are `blocks`, in Datalog source.
fn token(key: &RootKeyPair, authority: &str, blocks: &[&str]) -> Biscuit {
    let mut biscuit = BiscuitBuilder::new()
        .code(authority)
        .unwrap()
        .root_key_id(key.kid().0)
        .build(key.pair())
        .unwrap();
    for block in blocks {
        biscuit = biscuit
            .append(BlockBuilder::new().code(block).unwrap())
            .unwrap();
    }
    biscuit
}

const CLAIMS: &str = r#"writ_version(1); tenant("t"); agent("a"); token_id("01J0000000000000000000000A");
    issued_at(2027-01-15T08:00:00Z); expires_at(2027-01-15T08:00:30Z);"#;

/// Every kind of writ a gateway mints (bound to a key, to an audience, with budgets and
/// single use, narrowed by its holder) reads as the queries find it.
#[test]
fn minted_writs_read_as_the_queries_find_them() {
    let (key, keys) = root();
    let ceiling = parse_grants(r#"[{"type":"writ:llm","upstream":"u"},{"type":"writ:budget","usd_micros":5000,"tokens":1000}]"#).unwrap();
    let grants = parse_grants(r#"[{"type":"writ:llm","upstream":"u","models":["m"],"single_use":true},{"type":"writ:budget","tokens":700}]"#).unwrap();
    let narrower = parse_grants(r#"[{"type":"writ:budget","usd_micros":1,"tokens":300}]"#).unwrap();
    let now = UNIX_EPOCH + Duration::from_secs(1_800_000_000);
    let thumbprint = "0ZcOCORZNYy-DWpqq30jZyJGHTN0d2HglBV3uiguA4I";
    for (cnf_jkt, audience) in [
        (None, None),
        (Some(thumbprint), None),
        (None, Some("https://gw.example/mcp/files")),
        (Some(thumbprint), Some("https://gw.example/mcp/files")),
    ] {
        let req = MintRequest {
            tenant: "tenant \"quoted\"",
            agent: "agent/ü",
            ceiling: &ceiling,
            grants: &grants,
            ttl: Duration::from_secs(30),
            max_ttl: Duration::from_secs(30),
            now,
            cnf_jkt,
            audience,
        };
        let (writ, minted) = mint(&key, &req).unwrap();
        let narrowed = crate::attenuate(&writ, &narrower).unwrap();
        for text in [writ, narrowed] {
            let body = decode(&text).unwrap();
            let biscuit = Biscuit::from_base64(body.body, key.public()).unwrap();
            let (read, queried) = both(&biscuit, &keys);
            assert!(read.is_some(), "{cnf_jkt:?} {audience:?}");
            assert_eq!(read, queried);
            let read = read.unwrap();
            assert_eq!(
                (read.cnf_jkt.as_deref(), read.audience.as_deref()),
                (cnf_jkt, audience)
            );
            assert_eq!(
                (read.tenant.as_str(), read.token_id.as_str()),
                (minted.tenant.as_str(), minted.token_id.as_str())
            );
            assert!(read.single_use);
        }
    }
}

/// Facts a holder's block states are read only where the queries see them: budgets and
/// single use from every block, the claims from the authority block alone.
#[test]
fn facts_a_holder_adds_count_only_where_the_queries_see_them() {
    let (key, keys) = root();
    let biscuit = token(
        &key,
        &format!("{CLAIMS} budget_tokens(900);"),
        &[
            r#"tenant("evil"); agent("evil"); writ_version(2); cnf_jkt("k"); audience("https://evil");
               budget_tokens(5); budget_usd_micros(-3); single_use(true); unrelated("x", 1);"#,
            "budget_tokens(7); single_use(false);",
        ],
    );
    let (read, queried) = both(&biscuit, &keys);
    assert_eq!(read, queried);
    let read = read.unwrap();
    assert_eq!((read.tenant.as_str(), read.agent.as_str()), ("t", "a"));
    assert_eq!((read.cnf_jkt, read.audience), (None, None));
    assert_eq!(
        (read.budget_tokens, read.budget_usd_micros),
        (Some(5), Some(0))
    );
    assert!(read.single_use);
    assert_eq!(read.block_count, 3);
}

/// Whatever is not in the plain form is left to the queries: rules anywhere, a claim
/// twice or of another type or arity, a missing claim, another version, a budget or single
/// use of another type, too many facts, a third-party block.
#[test]
fn tokens_not_in_the_plain_form_are_left_to_the_queries() {
    let (key, keys) = root();
    let many: String = (0..MOST_FACTS).map(|i| format!("n({i});")).collect();
    let cases: Vec<(String, Vec<&str>)> = vec![
        (format!("{CLAIMS} derived($x) <- tenant($x);"), vec![]),
        (format!("{CLAIMS} tenant(\"u\");"), vec![]),
        (CLAIMS.replace("tenant(\"t\")", "tenant(1)"), vec![]),
        (
            CLAIMS.replace("tenant(\"t\")", "tenant(\"t\", \"u\")"),
            vec![],
        ),
        (
            CLAIMS.replace("expires_at(2027-01-15T08:00:30Z);", ""),
            vec![],
        ),
        (CLAIMS.replace("writ_version(1)", "writ_version(2)"), vec![]),
        (
            CLAIMS.replace("issued_at(2027-01-15T08:00:00Z)", "issued_at(1)"),
            vec![],
        ),
        (format!("{CLAIMS} cnf_jkt(\"a\"); cnf_jkt(\"b\");"), vec![]),
        (format!("{CLAIMS} cnf_jkt(true);"), vec![]),
        (
            format!("{CLAIMS} audience(\"https://a\"); audience(\"https://b\");"),
            vec![],
        ),
        (CLAIMS.to_string(), vec!["budget_tokens(\"5\");"]),
        (CLAIMS.to_string(), vec!["budget_usd_micros(1, 2);"]),
        (CLAIMS.to_string(), vec!["single_use(1);"]),
        (format!("{CLAIMS} {many}"), vec![]),
    ];
    for (authority, blocks) in &cases {
        let biscuit = token(&key, authority, blocks);
        let sealed = biscuit.to_vec().unwrap();
        assert_eq!(
            read(&Blocks::decode(&sealed).unwrap(), Some(1)),
            None,
            "{authority} {blocks:?}"
        );
    }
    // The plain form itself is read (so the cases above are refused for what they change).
    let plain = token(&key, CLAIMS, &["budget_tokens(5);"]);
    let (read_plain, queried) = both(&plain, &keys);
    assert!(read_plain.is_some());
    assert_eq!(read_plain, queried);
    // A delegated writ carries a third-party block.
    let grants = parse_grants(r#"[{"type":"writ:llm","upstream":"u"}]"#).unwrap();
    let writ = format!("writ_{}", plain.to_base64().unwrap());
    let verified = decode(&writ).unwrap().verify(&keys).unwrap();
    let delegated = verified
        .delegate(&crate::Delegation {
            grants: &grants,
            actor_ceiling: &grants,
            delegated_to: "t/sub",
            expires_at: UNIX_EPOCH + Duration::from_secs(1_800_000_000),
            signer: &key,
            audience: None,
        })
        .unwrap();
    let body = decode(&delegated).unwrap();
    let biscuit = Biscuit::from_base64(body.body, key.public()).unwrap();
    assert_eq!(
        read(
            &Blocks::decode(&biscuit.to_vec().unwrap()).unwrap(),
            Some(1)
        ),
        None
    );
}

/// Bytes that are no token do not decode, and name the block that does not.
#[test]
fn bytes_that_are_no_token_do_not_decode() {
    for bytes in [&b"\x00"[..], b"\xff\xff\xff\xff", b"writ_"] {
        assert_eq!(Blocks::decode(bytes).err(), Some(0));
    }
}
