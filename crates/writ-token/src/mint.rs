//! Minting: the authority block (claims, expiry, binding, audience, agent ceiling) and
//! block 1 (requested grants).

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use biscuit_auth::builder::{BlockBuilder, Term};
use biscuit_auth::{Biscuit, BiscuitBuilder};
use rand::RngCore;

use crate::encoding::encode;
use crate::error::WritError;
use crate::grant::{BudgetGrant, Grant, GrantError, compile_block, validate};
use crate::keys::RootKeyPair;
use crate::shape::{Shape, ShapeParts, grants_digest};
use crate::verify::{VerifiedWrit, WritClaims};

/// Everything needed to mint one writ.
#[derive(Debug, Clone)]
pub struct MintRequest<'a> {
    /// Tenant the agent belongs to.
    pub tenant: &'a str,
    /// Agent the writ is issued to.
    pub agent: &'a str,
    /// The grants the agent's registration allows; compiled into the authority block.
    pub ceiling: &'a [Grant],
    /// The grants asked for now; compiled into block 1.
    pub grants: &'a [Grant],
    /// Requested lifetime; whole seconds.
    pub ttl: Duration,
    /// Largest lifetime policy allows.
    pub max_ttl: Duration,
    /// Issue time.
    pub now: SystemTime,
    /// Thumbprint (RFC 7638) of the key the writ is bound to: every use then needs a DPoP
    /// proof signed by that key.
    pub cnf_jkt: Option<&'a str>,
    /// The one resource (RFC 8707, a URI) the writ is for: every use must then be at a
    /// request the gateway states `resource(<audience>)` for. `None`: usable at any.
    pub audience: Option<&'a str>,
}

/// Mints a writ signed by `key`. Returns the writ text and its claims.
pub fn mint(key: &RootKeyPair, req: &MintRequest<'_>) -> Result<(String, WritClaims), WritError> {
    let (biscuit, claims, _) = build(key, req)?;
    Ok((encode(&biscuit)?, claims))
}

/// A writ just minted, with what verifying its text returns. Only [`mint_verified`]
/// makes one, so the two always belong together. `Debug` shows the claims, never the text.
pub struct MintedWrit {
    text: String,
    writ: Arc<VerifiedWrit>,
}

impl MintedWrit {
    /// The writ's text, as the holder presents it.
    pub fn text(&self) -> &str {
        &self.text
    }

    /// The verified writ.
    pub fn writ(&self) -> &Arc<VerifiedWrit> {
        &self.writ
    }

    /// The writ's text.
    pub fn into_text(self) -> String {
        self.text
    }
}

impl std::fmt::Debug for MintedWrit {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MintedWrit")
            .field("claims", self.writ.claims())
            .finish_non_exhaustive()
    }
}

/// Mints a writ as [`mint`] does, and returns it verified as well: what
/// [`crate::UnverifiedWrit::verify`] returns for its text against keys trusting `key`,
/// without parsing the text again or checking the signatures just made.
/// A gateway that mints a writ hands it to [`crate::Verifier::remember`], so that its
/// first use is served from the cache.
pub fn mint_verified(key: &RootKeyPair, req: &MintRequest<'_>) -> Result<MintedWrit, WritError> {
    // The claims are the ones the authority block was just built from; verification
    // reads the same (a test holds them equal), so its queries are not run again.
    let (biscuit, claims, shape) = build(key, req)?;
    // The verified writ serializes the token once and encodes its text as `encode` does
    // (a test holds the two texts equal); it is not serialized twice.
    let writ = Arc::new(VerifiedWrit::minted(biscuit, key.public(), claims, shape)?);
    let text = writ.text().to_string();
    Ok(MintedWrit { text, writ })
}

/// The minted token, its claims (see [`mint`]) and its shape (see `shape`; `None` when a
/// grant list cannot be written as JSON).
fn build(
    key: &RootKeyPair,
    req: &MintRequest<'_>,
) -> Result<(Biscuit, WritClaims, Option<Shape>), WritError> {
    for grants in [req.ceiling, req.grants] {
        validate(grants)?;
        if !grants.iter().any(Grant::is_access) {
            return Err(GrantError::NoAccessGrant.into());
        }
    }
    let ttl_secs = req.ttl.as_secs();
    let max_secs = req.max_ttl.as_secs();
    if ttl_secs == 0 || ttl_secs > max_secs || req.ttl.subsec_nanos() != 0 {
        return Err(WritError::TtlOutOfRange {
            requested_secs: ttl_secs,
            max_secs,
        });
    }
    // Biscuit dates have one-second resolution; truncate so the claims we return are the
    // claims the token carries.
    let now_secs = req
        .now
        .duration_since(UNIX_EPOCH)
        .map_err(|_| WritError::Build("clock before 1970".into()))?
        .as_secs();
    let issued_at = UNIX_EPOCH + Duration::from_secs(now_secs);
    let expires_at = issued_at + Duration::from_secs(ttl_secs);
    let token_id = new_token_id(now_secs);

    let build_err = |e: biscuit_auth::error::Token| WritError::Build(e.to_string());
    let authority =
        claims_block(req.tenant, req.agent, &token_id, issued_at, expires_at).map_err(build_err)?;
    let authority = match req.cnf_jkt {
        None => authority,
        Some(jkt) => authority
            .code_with_params(
                "cnf_jkt({jkt}); check if dpop_jkt({jkt});",
                HashMap::from([("jkt".to_string(), Term::from(jkt))]),
                HashMap::new(),
            )
            .map_err(build_err)?,
    };
    let authority = match req.audience {
        None => authority,
        Some(audience) => crate::audience::bind(authority, audience)?,
    };
    let (ceiling, ceiling_digest) = compiled(req.ceiling).map_err(build_err)?;
    let authority = authority.merge(ceiling);
    let biscuit: Biscuit = BiscuitBuilder::new()
        .merge(authority)
        .root_key_id(key.kid().0)
        .build(key.pair())
        .map_err(build_err)?;
    let (requested, requested_digest) = compiled(req.grants).map_err(build_err)?;
    let biscuit = biscuit.append(requested).map_err(build_err)?;
    let shape = match (ceiling_digest, requested_digest) {
        (Some(ceiling), Some(grants)) => Some(Shape::of(&ShapeParts {
            key_id: key.kid().0,
            root: &key.public().to_bytes(),
            tenant: req.tenant,
            agent: req.agent,
            cnf_jkt: req.cnf_jkt,
            audience: req.audience,
            ceiling: &ceiling,
            grants: &grants,
        })),
        _ => None,
    };

    let claims = WritClaims {
        tenant: req.tenant.to_string(),
        agent: req.agent.to_string(),
        token_id,
        key_id: Some(key.kid().0),
        issued_at,
        expires_at,
        block_count: biscuit.block_count(),
        budget_usd_micros: smallest_budget(req, |b| b.usd_micros),
        budget_tokens: smallest_budget(req, |b| b.tokens),
        single_use: req
            .ceiling
            .iter()
            .chain(req.grants)
            .any(Grant::is_single_use),
        cnf_jkt: req.cnf_jkt.map(str::to_string),
        audience: req.audience.map(str::to_string),
    };
    Ok((biscuit, claims, shape))
}

/// Grant lists compiled lately, per thread, newest first: an agent's ceiling is the same at
/// every mint, and a just-in-time agent asks for the same grants task after task.
const COMPILED_HELD: usize = 32;

/// A grant list compiled: its block, and the digest of its JSON for the writ's shape.
type Compiled = (BlockBuilder, Option<[u8; 32]>);

thread_local! {
    static COMPILED: std::cell::RefCell<Vec<(Vec<Grant>, Compiled)>> =
        const { std::cell::RefCell::new(Vec::new()) };
}

/// `grants` compiled to a block of their own ([`compile_block`] on an empty block, a pure
/// function of the grants) with their digest ([`grants_digest`]), from the per-thread memo
/// when the same list was compiled lately. Merged into another block the block adds what
/// `compile_block` would have added to it.
fn compiled(grants: &[Grant]) -> Result<Compiled, biscuit_auth::error::Token> {
    let held = COMPILED.with_borrow_mut(|memo| {
        let i = memo.iter().position(|(g, _)| g.as_slice() == grants)?;
        let entry = memo.remove(i);
        let compiled = entry.1.clone();
        memo.insert(0, entry);
        Some(compiled)
    });
    if let Some(compiled) = held {
        return Ok(compiled);
    }
    let compiled = (
        compile_block(BlockBuilder::new(), grants)?,
        grants_digest(grants),
    );
    COMPILED.with_borrow_mut(|memo| {
        memo.truncate(COMPILED_HELD - 1);
        memo.insert(0, (grants.to_vec(), compiled.clone()));
    });
    Ok(compiled)
}

/// The authority block's claims, built as terms rather than parsed from Datalog text at
/// every mint; the same block as
///
/// ```text
/// writ_version(1); tenant({tenant}); agent({agent}); token_id({token_id});
/// issued_at({issued_at}); expires_at({expires_at});
/// check if time($time), $time <= {expires_at};
/// ```
///
/// with every value bound as a parameter (a test holds the two equal).
fn claims_block(
    tenant: &str,
    agent: &str,
    token_id: &str,
    issued_at: SystemTime,
    expires_at: SystemTime,
) -> Result<BlockBuilder, biscuit_auth::error::Token> {
    use biscuit_auth::builder::{
        Binary, Check, CheckKind, Expression, Op, constrained_rule, date, fact, int, pred, string,
        var,
    };
    let expiry = date(&expires_at);
    let no_terms: &[Term] = &[];
    let before_expiry = constrained_rule(
        "query",
        no_terms,
        &[pred("time", &[var("time")])],
        &[Expression {
            ops: vec![
                Op::Value(var("time")),
                Op::Value(expiry.clone()),
                Op::Binary(Binary::LessOrEqual),
            ],
        }],
    );
    let time_check = Check {
        queries: vec![before_expiry],
        kind: CheckKind::One,
    };
    BlockBuilder::new()
        .fact(fact("writ_version", &[int(1)]))?
        .fact(fact("tenant", &[string(tenant)]))?
        .fact(fact("agent", &[string(agent)]))?
        .fact(fact("token_id", &[string(token_id)]))?
        .fact(fact("issued_at", &[date(&issued_at)]))?
        .fact(fact("expires_at", &[expiry]))?
        .check(time_check)
}

/// The smallest budget of one kind stated by the ceiling or the grants, as verification
/// reads it back from the blocks (stated as a Datalog integer, so at most `i64::MAX`).
fn smallest_budget(req: &MintRequest<'_>, amount: fn(&BudgetGrant) -> Option<u64>) -> Option<u64> {
    req.ceiling
        .iter()
        .chain(req.grants)
        .filter_map(|g| match g {
            Grant::Budget(b) => amount(b),
            _ => None,
        })
        .map(|n| n.min(i64::MAX as u64))
        .min()
}

/// A ULID: sortable by issue time, 80 random bits.
fn new_token_id(now_secs: u64) -> String {
    let mut random = [0u8; 16];
    rand::rngs::OsRng.fill_bytes(&mut random);
    let random = u128::from_be_bytes(random);
    ulid::Ulid::from_parts(now_secs.saturating_mul(1000), random).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The block as it was written before it was built from terms.
    fn claims_from_text(
        tenant: &str,
        agent: &str,
        token_id: &str,
        issued_at: SystemTime,
        expires_at: SystemTime,
    ) -> BlockBuilder {
        let params: HashMap<String, Term> = HashMap::from([
            ("tenant".to_string(), Term::from(tenant)),
            ("agent".to_string(), Term::from(agent)),
            ("token_id".to_string(), Term::from(token_id)),
            ("issued_at".to_string(), Term::from(issued_at)),
            ("expires_at".to_string(), Term::from(expires_at)),
        ]);
        BlockBuilder::new()
            .code_with_params(
                "writ_version(1);
                tenant({tenant});
                agent({agent});
                token_id({token_id});
                issued_at({issued_at});
                expires_at({expires_at});
                check if time($time), $time <= {expires_at};",
                params,
                HashMap::new(),
            )
            .unwrap()
    }

    /// `mint_verified` takes its text from the verified writ: the text `encode` gives.
    #[test]
    fn a_minted_writs_text_is_the_encoded_token() {
        let key = RootKeyPair::generate(crate::KeyId(1));
        let grants =
            crate::grant::parse_grants(r#"{"type":"writ:llm","upstream":"a","models":["m"]}"#)
                .unwrap();
        let req = MintRequest {
            tenant: "t",
            agent: "a",
            ceiling: &grants,
            grants: &grants,
            ttl: Duration::from_secs(30),
            max_ttl: Duration::from_secs(30),
            now: UNIX_EPOCH + Duration::from_secs(1_800_000_000),
            cnf_jkt: None,
            audience: None,
        };
        let (biscuit, claims, shape) = build(&key, &req).unwrap();
        let encoded = encode(&biscuit).unwrap();
        let writ = VerifiedWrit::minted(biscuit, key.public(), claims, shape).unwrap();
        assert_eq!(writ.text(), encoded);
        assert!(shape.is_some());
    }

    fn source(block: BlockBuilder) -> String {
        let key = biscuit_auth::KeyPair::new();
        let token = BiscuitBuilder::new().merge(block).build(&key).unwrap();
        token.print_block_source(0).unwrap()
    }

    #[test]
    fn the_claims_block_is_the_block_its_datalog_text_states() {
        let issued = UNIX_EPOCH + Duration::from_secs(1_780_000_000);
        let expires = issued + Duration::from_secs(30);
        // Values that would change the code around them if they were pasted into text.
        for (tenant, agent) in [("acme", "bot"), ("t\"); check if false; //", "a\\\"\n")] {
            let typed = claims_block(tenant, agent, "01J0ID", issued, expires).unwrap();
            let text = claims_from_text(tenant, agent, "01J0ID", issued, expires);
            assert_eq!(source(typed), source(text));
        }
    }

    #[test]
    fn a_memoized_grant_list_compiles_as_it_did_the_first_time() {
        let first = crate::grant::parse_grants(
            r#"[{"type":"writ:llm","upstream":"a","models":["m"]},{"type":"writ:budget","tokens":5}]"#,
        )
        .unwrap();
        let second =
            crate::grant::parse_grants(r#"{"type":"writ:http","upstream":"b","path":"/x/{id}"}"#)
                .unwrap();
        let fresh = |grants: &[Grant]| source(compile_block(BlockBuilder::new(), grants).unwrap());
        for _ in 0..3 {
            for grants in [&first, &second] {
                assert_eq!(source(compiled(grants).unwrap().0), fresh(grants));
            }
        }
        // More lists than the memo holds: the oldest goes, and still compiles the same.
        for n in 0..COMPILED_HELD + 2 {
            let grants =
                crate::grant::parse_grants(&format!(r#"{{"type":"writ:llm","upstream":"u{n}"}}"#))
                    .unwrap();
            assert_eq!(source(compiled(&grants).unwrap().0), fresh(&grants));
        }
        COMPILED.with_borrow(|memo| assert_eq!(memo.len(), COMPILED_HELD));
        assert_eq!(source(compiled(&first).unwrap().0), fresh(&first));
    }

    /// Writs of one shape and one expiry read alike (what `shape::read` shares), whatever
    /// their ids and issue times; another expiry gives another time bound.
    #[test]
    fn writs_of_one_shape_and_expiry_read_alike() {
        let key = RootKeyPair::generate(crate::KeyId(1));
        let ceiling = crate::grant::parse_grants(
            r#"[{"type":"writ:llm","upstream":"a"},{"type":"writ:budget","usd_micros":50}]"#,
        )
        .unwrap();
        let grants = crate::grant::parse_grants(
            r#"{"type":"writ:tool","upstream":"a","tool":"book","arguments":{"flight":"LH123"}}"#,
        )
        .unwrap();
        let t0 = UNIX_EPOCH + Duration::from_secs(1_800_000_000);
        let mint = |now: SystemTime, ttl: u64| {
            let req = MintRequest {
                tenant: "t",
                agent: "a",
                ceiling: &ceiling,
                grants: &grants,
                ttl: Duration::from_secs(ttl),
                max_ttl: Duration::from_secs(60),
                now,
                cnf_jkt: Some("jkt"),
                audience: None,
            };
            let (biscuit, claims, shape) = build(&key, &req).unwrap();
            (biscuit.to_vec().unwrap(), claims, shape.unwrap())
        };
        let read = |now: SystemTime, ttl: u64| {
            let (sealed, claims, shape) = mint(now, ttl);
            (
                crate::verification::Reads::of(&sealed).unwrap(),
                claims,
                shape,
            )
        };
        let (first, c1, s1) = read(t0, 30);
        let (second, c2, s2) = read(t0 + Duration::from_secs(10), 20);
        assert_eq!(s1, s2);
        assert_ne!(c1.token_id, c2.token_id);
        assert_ne!(c1.issued_at, c2.issued_at);
        assert_eq!(c1.expires_at, c2.expires_at);
        assert!(first.checks == second.checks);
        assert_eq!(first.holds_through, second.holds_through);
        let (later, _, s3) = read(t0, 40);
        assert_eq!(s1, s3);
        assert!(first.checks == later.checks);
        assert_ne!(first.holds_through, later.holds_through);
        // What is shared is what another writ of the shape and expiry reads from its bytes
        // (debug builds compare the two at every call as well).
        for (now, ttl) in [(t0, 30), (t0 + Duration::from_secs(10), 20), (t0, 40)] {
            let (fresh, _, _) = read(now, ttl);
            let (sealed, claims, shape) = mint(now, ttl);
            let shared = crate::shape::read(shape, &claims, &sealed).unwrap();
            assert!(shared.checks == fresh.checks);
            assert_eq!(shared.holds_through, fresh.holds_through);
        }
    }
}
