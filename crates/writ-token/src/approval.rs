//! Approvals: a person's yes to one exact request (or one mint), as a Biscuit third-party
//! block signed by the approval key (DESIGN §2 "Human approval").
//!
//! An approval block states `approval(id, request digest, writ, expiry)`,
//! `approval_of("request" | "mint")`, `approved_by(person, method)` and `approved_at(time)`. It is bound three ways: to the
//! writ by the third-party signature (made over the signature of the block it follows, so
//! it cannot be moved to another writ) and by `writ`, the revocation id of that block; to
//! the request by the digest of its canonical form ([`request_digest`]); and in time by its
//! expiry. Only blocks the approval key signed are read ([`VerifiedWrit::approvals`]): the
//! same facts in any other block, the holder's own attenuation blocks above all, state
//! nothing. Anyone with the approval key's public half can check who approved what,
//! offline.
//!
//! The block carries facts only: it grants nothing and its facts are invisible to the
//! writ's own checks, which trust the authority block alone.

use std::collections::HashMap;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::Engine;
use biscuit_auth::builder::{BlockBuilder, Rule, Term};
use biscuit_auth::{
    Algorithm, KeyPair, PrivateKey, PublicKey, ThirdPartyRequest, UnverifiedBiscuit,
};
use sha2::{Digest, Sha256};

use crate::encoding::{MAX_BLOCKS, WRIT_PREFIX};
use crate::error::WritError;
use crate::facts::RequestFacts;
use crate::grant::ArgValue;
use crate::keys::KeyError;
use crate::verify::{VerifiedWrit, evaluation_error};

/// Prefix of an approval id.
pub const APPROVAL_ID_PREFIX: &str = "apr_";

/// The key approval blocks are signed with. Its public half is published with the root
/// keys; `Debug` shows only a fingerprint.
pub struct ApprovalKey {
    pair: KeyPair,
}

impl std::fmt::Debug for ApprovalKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ApprovalKey")
            .field("public", &crate::keys::fingerprint(&self.pair.public()))
            .finish_non_exhaustive()
    }
}

impl ApprovalKey {
    /// A new random Ed25519 key.
    pub fn generate() -> Self {
        Self {
            pair: KeyPair::new_with_rng(Algorithm::Ed25519, &mut rand::rngs::OsRng),
        }
    }

    /// The key whose private half is `hex` (as [`private_hex`](Self::private_hex) wrote it).
    pub fn from_private_hex(hex: &str) -> Result<Self, KeyError> {
        let private = PrivateKey::from_bytes_hex(hex.trim(), Algorithm::Ed25519)
            .map_err(|_| KeyError::InvalidPrivateKey)?;
        Ok(Self {
            pair: KeyPair::from(&private),
        })
    }

    /// The private half, hex: for the key file only.
    pub fn private_hex(&self) -> zeroize::Zeroizing<String> {
        zeroize::Zeroizing::new(self.pair.private().to_bytes_hex())
    }

    /// The public half, which verifies approval blocks.
    pub fn public(&self) -> PublicKey {
        self.pair.public()
    }
}

/// A fresh approval id: [`APPROVAL_ID_PREFIX`] and 128 random bits (base64url), so ids
/// cannot be guessed.
pub fn new_approval_id() -> String {
    let bytes: [u8; 16] = rand::random();
    format!(
        "{APPROVAL_ID_PREFIX}{}",
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
    )
}

/// Whether `id` has the shape of an id [`new_approval_id`] makes (checked before any
/// lookup, so a malformed id is told apart from an unknown one).
pub fn valid_approval_id(id: &str) -> bool {
    id.strip_prefix(APPROVAL_ID_PREFIX).is_some_and(|rest| {
        rest.len() == 22
            && rest
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
    })
}

/// What an approval approves: one request, or the minting of the writ that carries it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ApprovalScope {
    /// One data-plane request (`approval_of("request")`).
    Request,
    /// The minting of this writ at the token endpoint (`approval_of("mint")`): it approves
    /// no request.
    Mint,
}

impl ApprovalScope {
    /// Its name in the block.
    pub fn as_str(self) -> &'static str {
        match self {
            ApprovalScope::Request => "request",
            ApprovalScope::Mint => "mint",
        }
    }
}

/// What an approval block states.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApprovalStatement {
    /// The approval's id.
    pub id: String,
    /// What it approves.
    pub scope: ApprovalScope,
    /// The person who approved (an approver's name, or the operator).
    pub approved_by: String,
    /// How they authenticated: `approver_token`, `admin_writ`, `passkey`.
    pub method: String,
    /// When they approved (to the second).
    pub approved_at: SystemTime,
    /// When the approval stops being usable (to the second).
    pub expires_at: SystemTime,
    /// What was approved: [`request_digest`] of the request, or the digest of the mint.
    pub request_digest: String,
    /// The revocation id (hex) of the writ block the approval follows.
    pub writ: String,
}

/// The part of a writ an approval block is made for: the signature of its last block
/// (no secret; the block can only be appended right after it). Stored with a pending
/// approval, so the gateway never keeps the writ itself.
impl VerifiedWrit {
    /// The bytes [`sign_approval`] needs to make a block only this writ can carry.
    pub fn approval_ticket(&self) -> Result<Vec<u8>, WritError> {
        self.biscuit()?
            .third_party_request()
            .and_then(|r| r.serialize())
            .map_err(|e| WritError::Build(e.to_string()))
    }

    /// The revocation id (hex) of the writ's last block: what a request-time approval is
    /// bound to.
    pub fn last_revocation_id(&self) -> String {
        self.revocation_ids()
            .last()
            .map(hex::encode)
            .unwrap_or_default()
    }

    /// The approvals this writ carries: the statements of blocks signed by `approval_key`
    /// whose `writ` is the revocation id of the block each follows. Statements anywhere
    /// else are not read.
    pub fn approvals(&self, approval_key: &PublicKey) -> Result<Vec<ApprovalStatement>, WritError> {
        let biscuit = self.biscuit()?;
        let external = biscuit.external_public_keys();
        if !external.iter().any(|k| k.as_ref() == Some(approval_key)) {
            return Ok(Vec::new());
        }
        let malformed = |_| WritError::Malformed {
            reason: "approval query",
        };
        let mut authorizer = biscuit_auth::AuthorizerBuilder::new()
            .set_limits(crate::verify::run_limits())
            .build(&biscuit)
            .map_err(|_| WritError::Malformed {
                reason: "writ cannot be loaded",
            })?;
        let mut rule: Rule = "a($id, $digest, $writ, $exp, $by, $method, $at, $of) <- \
             approval($id, $digest, $writ, $exp), approved_by($by, $method), approved_at($at), \
             approval_of($of) trusting {key}"
            .try_into()
            .map_err(malformed)?;
        rule.set_scope("key", *approval_key).map_err(malformed)?;
        type Row = (
            String,
            String,
            String,
            SystemTime,
            String,
            String,
            SystemTime,
            String,
        );
        let rows: Vec<Row> = authorizer.query(rule).map_err(evaluation_error)?;
        let revocation_ids = self.revocation_ids();
        // The revocation ids of the blocks an approval block follows.
        let followed: Vec<String> = external
            .iter()
            .enumerate()
            .filter(|(i, k)| *i > 0 && k.as_ref() == Some(approval_key))
            .filter_map(|(i, _)| revocation_ids.get(i - 1).map(hex::encode))
            .collect();
        Ok(rows
            .into_iter()
            .filter(|row| followed.contains(&row.2))
            .filter_map(
                |(id, request_digest, writ, expires_at, approved_by, method, approved_at, of)| {
                    let scope = match of.as_str() {
                        "request" => ApprovalScope::Request,
                        "mint" => ApprovalScope::Mint,
                        _ => return None,
                    };
                    Some(ApprovalStatement {
                        id,
                        scope,
                        approved_by,
                        method,
                        approved_at,
                        expires_at,
                        request_digest,
                        writ,
                    })
                },
            )
            .collect())
    }
}

/// Signs `statement` as a third-party block for the writ whose [`approval_ticket`] is
/// `ticket`; the block's bytes, for [`append_approval`].
///
/// [`approval_ticket`]: VerifiedWrit::approval_ticket
pub fn sign_approval(
    key: &ApprovalKey,
    ticket: &[u8],
    statement: &ApprovalStatement,
) -> Result<Vec<u8>, WritError> {
    let build = |e: biscuit_auth::error::Token| WritError::Build(e.to_string());
    let request = ThirdPartyRequest::deserialize(ticket).map_err(build)?;
    let second = |t: SystemTime| {
        UNIX_EPOCH + Duration::from_secs(t.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs()))
    };
    let params = HashMap::from([
        ("id".to_string(), Term::from(statement.id.as_str())),
        (
            "digest".to_string(),
            Term::from(statement.request_digest.as_str()),
        ),
        ("writ".to_string(), Term::from(statement.writ.as_str())),
        ("exp".to_string(), Term::from(second(statement.expires_at))),
        ("by".to_string(), Term::from(statement.approved_by.as_str())),
        ("method".to_string(), Term::from(statement.method.as_str())),
        ("at".to_string(), Term::from(second(statement.approved_at))),
        ("of".to_string(), Term::from(statement.scope.as_str())),
    ]);
    let block = BlockBuilder::new()
        .code_with_params(
            "approval({id}, {digest}, {writ}, {exp}); approval_of({of}); approved_by({by}, {method}); approved_at({at});",
            params,
            HashMap::new(),
        )
        .map_err(build)?;
    request
        .create_block(&key.pair.private(), block)
        .and_then(|b| b.serialize())
        .map_err(build)
}

/// Appends an approval block (from [`sign_approval`]) to `writ`: what a holder does with
/// the block the gateway hands out, offline. Refused when the writ already holds the most
/// blocks allowed, or when the block was made for another writ (its signature does not
/// follow this writ's last block: the gateway would refuse the result).
pub fn append_approval(writ: &str, block: &[u8]) -> Result<String, WritError> {
    let token = crate::encoding::decode(writ)?;
    let unverified = UnverifiedBiscuit::from_base64(token.body)
        .map_err(crate::encoding::classify_parse_error)?;
    if unverified.block_count() >= MAX_BLOCKS {
        return Err(WritError::TooManyBlocks {
            count: unverified.block_count() + 1,
            max: MAX_BLOCKS,
        });
    }
    let appended = unverified
        .append_third_party(block)
        .map_err(|e| WritError::Build(e.to_string()))?;
    let b64 = appended
        .to_base64()
        .map_err(|e| WritError::Build(e.to_string()))?;
    Ok(format!("{WRIT_PREFIX}{b64}"))
}

/// SHA-256 (hex) of the canonical form of a request: its method, path (and query), the
/// facts the gateway read from it (upstream, operation, model, tool, arguments, MCP method,
/// prompt, resource URI; never the time, the client or the writ) and its body — canonical
/// JSON (keys sorted, no insignificant space) when the body is strict JSON whose numbers
/// are all 64-bit integers, its bytes otherwise. Any change a reader of the request could
/// see changes the digest: two bodies share a digest only when every JSON reader reads
/// them alike.
pub fn request_digest(facts: &RequestFacts, path_and_query: &str, body: &[u8]) -> String {
    let mut h = Sha256::new();
    let mut part = |bytes: &[u8]| {
        h.update((bytes.len() as u64).to_le_bytes());
        h.update(bytes);
    };
    part(b"writ approval request v1");
    part(facts.method.as_bytes());
    part(path_and_query.as_bytes());
    part(facts.api.as_str().as_bytes());
    for v in [
        &facts.upstream,
        &facts.model,
        &facts.tool,
        &facts.mcp_method,
        &facts.prompt,
        &facts.uri,
    ] {
        part(v.as_deref().unwrap_or("\u{0}").as_bytes());
    }
    part(facts.operation.as_bytes());
    part(
        facts
            .max_output_tokens
            .map(|n| n.to_string())
            .unwrap_or_default()
            .as_bytes(),
    );
    part(&[u8::from(facts.stream)]);
    for (name, value) in &facts.args {
        part(name.as_bytes());
        match value {
            ArgValue::Null => part(b"n"),
            ArgValue::Bool(b) => part(if *b { b"t" } else { b"f" }),
            ArgValue::Int(n) => part(format!("i{n}").as_bytes()),
            ArgValue::Str(s) => part(format!("s{s}").as_bytes()),
        }
    }
    // Canonical only when canonical form cannot merge two readings: a document with a
    // repeated key, or a number a reader may hold more exactly than serde_json does (an
    // integer past 64 bits, any fraction or exponent), is digested as its bytes.
    match writ_json::value(body) {
        Ok(json) if exact_numbers(&json) => {
            part(b"json");
            let mut canonical = Vec::with_capacity(body.len());
            canonical_json(&json, &mut canonical);
            part(&canonical);
        }
        _ => {
            part(b"bytes");
            part(body);
        }
    }
    hex::encode(h.finalize())
}

/// Whether every number in `value` is an integer serde_json holds exactly (64 bits).
fn exact_numbers(value: &serde_json::Value) -> bool {
    use serde_json::Value;
    match value {
        Value::Number(n) => n.is_i64() || n.is_u64(),
        Value::Array(items) => items.iter().all(exact_numbers),
        Value::Object(map) => map.values().all(exact_numbers),
        _ => true,
    }
}

/// `value` as JSON with every object's keys sorted (by their UTF-8 bytes) and no
/// insignificant space, whatever order the parser kept them in.
pub fn canonical_json(value: &serde_json::Value, out: &mut Vec<u8>) {
    use serde_json::Value;
    match value {
        Value::Object(map) => {
            let mut entries: Vec<_> = map.iter().collect();
            entries.sort_by(|a, b| a.0.as_bytes().cmp(b.0.as_bytes()));
            out.push(b'{');
            for (i, (key, value)) in entries.into_iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                out.extend_from_slice(&serde_json::to_vec(key).unwrap_or_default());
                out.push(b':');
                canonical_json(value, out);
            }
            out.push(b'}');
        }
        Value::Array(items) => {
            out.push(b'[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                canonical_json(item, out);
            }
            out.push(b']');
        }
        scalar => out.extend_from_slice(&serde_json::to_vec(scalar).unwrap_or_default()),
    }
}

#[cfg(test)]
mod tests;
