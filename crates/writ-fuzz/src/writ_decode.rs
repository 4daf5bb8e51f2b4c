//! Target `writ_decode`: a presented credential decoded and verified against the fixed
//! root key, as the gateway does with every `Authorization` header.

use std::sync::LazyLock;

use base64::Engine;
use writ_token::{
    Api, Grant, MAX_BLOCKS, RequestFacts, RootKeys, VerifiedWrit, WRIT_PREFIX, WritError,
    attenuate, decode, parse_grants,
};

use crate::fixed_key::{fixed_now, fixed_root_keys};

static KEYS: LazyLock<RootKeys> = LazyLock::new(fixed_root_keys);

/// The grant a holder appends to narrow a writ to one chat model on `demo`.
static NARROWING: LazyLock<Vec<Grant>> = LazyLock::new(|| {
    let grants = parse_grants(
        r#"{"type":"writ:llm","upstream":"demo","actions":["chat"],"models":["gpt-4o-mini"]}"#,
    );
    match grants {
        Ok(grants) => grants,
        Err(e) => panic!("the narrowing grant parses: {e}"),
    }
});

/// Input: writ text (starting `writ_`), or else the raw bytes of a serialized token,
/// which are base64url-encoded behind the prefix (so mutations reach the token format
/// instead of breaking its base64).
///
/// Invariants: decoding and verifying never panic; an accepted writ names the fixed key
/// and at most [`MAX_BLOCKS`] blocks, verifies again to the same claims, and a holder's
/// narrowing of it still verifies as the same writ and allows nothing the writ refuses.
pub fn writ_decode(data: &[u8]) {
    let text = if data.starts_with(WRIT_PREFIX.as_bytes()) {
        String::from_utf8_lossy(data).into_owned()
    } else {
        format!(
            "{WRIT_PREFIX}{}",
            base64::engine::general_purpose::URL_SAFE.encode(data)
        )
    };
    let Ok(writ) = verify(&text) else {
        return;
    };
    let claims = writ.claims();
    assert_eq!(
        claims.key_id,
        Some(1),
        "accepted under a key it does not name"
    );
    assert!(claims.block_count <= MAX_BLOCKS);
    assert_eq!(writ.revocation_ids().len(), claims.block_count);
    let _ = writ.blocks_source();
    let again = verify(&text).unwrap_or_else(|e| panic!("a writ verified once then not: {e}"));
    assert_eq!(again.claims(), claims, "verification is not deterministic");

    let requests = requests();
    let decisions: Vec<bool> = requests
        .iter()
        .map(|facts| {
            let _ = writ.evaluation_work(facts);
            writ.authorize(facts, fixed_now()).is_ok()
        })
        .collect();

    match attenuate(&text, &NARROWING) {
        Ok(narrowed) => {
            let narrowed = verify(&narrowed)
                .unwrap_or_else(|e| panic!("a verified writ, narrowed, fails to verify: {e}"));
            let n = narrowed.claims();
            assert_eq!(
                (&n.tenant, &n.agent, &n.token_id, n.issued_at, n.expires_at),
                (
                    &claims.tenant,
                    &claims.agent,
                    &claims.token_id,
                    claims.issued_at,
                    claims.expires_at
                ),
                "narrowing changed the writ's claims"
            );
            assert_eq!(n.block_count, claims.block_count + 1);
            for (facts, allowed_before) in requests.iter().zip(decisions) {
                if narrowed.authorize(facts, fixed_now()).is_ok() {
                    assert!(allowed_before, "narrowing widened what the writ allows");
                }
            }
        }
        Err(WritError::TooManyBlocks { .. }) => {
            assert_eq!(claims.block_count, MAX_BLOCKS);
        }
        Err(e) => panic!("a verified writ cannot be narrowed: {e}"),
    }
}

fn verify(text: &str) -> Result<VerifiedWrit, WritError> {
    decode(text)?.verify(&KEYS)
}

/// Requests the seeds' grants speak of: a chat on `demo`, a tool call, a plain HTTP call.
fn requests() -> Vec<RequestFacts> {
    vec![
        RequestFacts {
            upstream: Some("demo".into()),
            model: Some("gpt-4o-mini".into()),
            ..RequestFacts::new(Api::Llm, "chat", "POST", "/v1/chat/completions")
        },
        RequestFacts {
            upstream: Some("travel".into()),
            tool: Some("book_flight".into()),
            mcp_method: Some("tools/call".into()),
            ..RequestFacts::new(Api::Tool, "tool_call", "POST", "/mcp/travel")
        },
        RequestFacts {
            upstream: Some("crm".into()),
            ..RequestFacts::new(Api::Http, "http", "GET", "/v1/contacts/42")
        },
    ]
}
