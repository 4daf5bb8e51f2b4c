//! Verified writs, their claims, and authorization of a request against them.

use std::num::NonZeroU64;
use std::sync::{Arc, LazyLock};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE;
use biscuit_auth::error;

use biscuit_auth::builder::{Policy, Rule};
use biscuit_auth::{AuthorizerBuilder, AuthorizerLimits, Biscuit, PublicKey};

mod authorize;

pub(crate) use self::authorize::Remember;
use crate::encoding::WRIT_PREFIX;
use crate::error::WritError;
use crate::evaluation_cost::CheckShapes;
use crate::facts::RequestFacts;
use crate::keys::RootKeys;
use crate::parsed::Loaded;
use crate::revocation_ids::RevocationIds;
use crate::verification::{Delegations, Reads, Verification};

/// Bounds on one Datalog evaluation; hitting a bound is a denial. The work is bounded by
/// facts and iterations, which do not depend on load. Wall time is only a backstop: the
/// library's default of 1 ms (and even 50 ms) denied valid writs on a saturated machine,
/// so it is generous.
pub(crate) fn run_limits() -> AuthorizerLimits {
    AuthorizerLimits {
        max_facts: 1_000,
        max_iterations: 100,
        max_time: Duration::from_secs(1),
    }
}

/// The Datalog verifying and authorizing run for every writ, parsed once per process:
/// parsing a query costs more than running it.
struct Queries {
    claims: Rule,
    budget_usd_micros: Rule,
    budget_tokens: Rule,
    single_use: Rule,
    cnf_jkt: Rule,
    allow: Policy,
}

static QUERIES: LazyLock<Option<Queries>> = LazyLock::new(|| {
    Some(Queries {
        claims: "claims($v, $tenant, $agent, $id, $iat, $exp) <- writ_version($v), \
                 tenant($tenant), agent($agent), token_id($id), issued_at($iat), \
                 expires_at($exp)"
            .try_into()
            .ok()?,
        budget_usd_micros: "b($n) <- budget_usd_micros($n)".try_into().ok()?,
        budget_tokens: "b($n) <- budget_tokens($n)".try_into().ok()?,
        single_use: "s($b) <- single_use($b)".try_into().ok()?,
        cnf_jkt: "c($j) <- cnf_jkt($j)".try_into().ok()?,
        // Exactly one allow policy, scoped (by default) to the authority block: a writ
        // this gateway minted.
        allow: "allow if writ_version(1)".try_into().ok()?,
    })
});

/// The parsed queries (they parse: a test runs them all).
fn queries() -> Result<&'static Queries, WritError> {
    QUERIES.as_ref().ok_or(WritError::Malformed {
        reason: "verification queries",
    })
}

/// The claims every writ's authority block carries. Contains no secret.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WritClaims {
    /// Tenant of the agent.
    pub tenant: String,
    /// Agent the writ was issued to.
    pub agent: String,
    /// Unique id (ULID) of this writ.
    pub token_id: String,
    /// Root key id that signed it.
    pub key_id: Option<u32>,
    /// When it was minted.
    pub issued_at: SystemTime,
    /// When it stops being valid.
    pub expires_at: SystemTime,
    /// Number of blocks, authority included.
    pub block_count: usize,
    /// Smallest `budget_usd_micros` stated in any block.
    pub budget_usd_micros: Option<u64>,
    /// Smallest `budget_tokens` stated in any block.
    pub budget_tokens: Option<u64>,
    /// Whether any block says the writ may be used once.
    pub single_use: bool,
    /// The key thumbprint the writ is bound to (DPoP), if any.
    pub cnf_jkt: Option<String>,
    /// The one resource (RFC 8707 audience, a URI) the writ may be used at, if it is bound
    /// to one: stated by the issuer at mint or by a signed delegation, never by a holder.
    pub audience: Option<String>,
}

/// A writ whose signatures verify against a trusted root key and whose claims were read,
/// with its text as presented.
///
/// Holding one says nothing yet about what it allows: call [`VerifiedWrit::authorize`].
/// What verification established is shared by every request presenting the same text (the
/// [`crate::Verifier`]'s cache holds that part alone, never the text); the text is this
/// request's own.
pub struct VerifiedWrit {
    verification: Arc<Verification>,
    /// The writ's text, prefix included: the parsed token is read again from it (its
    /// signatures checked again) when the process's ring of parsed tokens no longer holds
    /// it. A bearer credential, so zeroed when the request lets it go.
    text: crate::WritText,
}

impl std::fmt::Debug for VerifiedWrit {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("VerifiedWrit")
            .field("claims", &self.verification.claims)
            .finish_non_exhaustive()
    }
}

/// Proof that a request was authorized by a writ. Only [`VerifiedWrit::authorize`] makes one,
/// and credential injection takes one, so the compiler keeps the order of the phases.
#[derive(Debug, Clone)]
pub struct Authorization {
    token_id: String,
    tenant: String,
    agent: String,
}

impl Authorization {
    /// The authorizing writ's id.
    pub fn token_id(&self) -> &str {
        &self.token_id
    }
    /// The authorizing writ's tenant.
    pub fn tenant(&self) -> &str {
        &self.tenant
    }
    /// The authorizing writ's agent.
    pub fn agent(&self) -> &str {
        &self.agent
    }
}

type ClaimsRow = (i64, String, String, String, SystemTime, SystemTime);

/// The token's bytes as verified.
fn serialized(biscuit: &Biscuit) -> Result<Box<[u8]>, WritError> {
    Ok(biscuit
        .to_vec()
        .map_err(|_| WritError::Malformed {
            reason: "cannot be serialized again",
        })?
        .into_boxed_slice())
}

impl VerifiedWrit {
    /// The writ `text` (prefix included) stands for, from its token as parsed and verified
    /// against `root`, one of the `trusted` keys.
    pub(crate) fn from_biscuit(
        text: &str,
        biscuit: Biscuit,
        root: PublicKey,
        trusted: &RootKeys,
    ) -> Result<Self, WritError> {
        // Before anything is evaluated (the claims below may run the authority's world): a
        // block that could make evaluation costly is refused here.
        let blocks = crate::blocks::Blocks::decode(&serialized(&biscuit)?)
            .map_err(|block| crate::evaluation_cost::DatalogError::Unreadable { block })?;
        let reads = Reads::of_blocks(&blocks)?;
        // A writ in the plain form (every writ a gateway mints) has its claims read from
        // its blocks; the queries read any other, and check the reading in debug builds.
        let (claims, delegation) = match crate::stated::read(&blocks, biscuit.root_key_id()) {
            Some(claims) => {
                if cfg!(debug_assertions) {
                    let queried = queried_claims(&biscuit, trusted);
                    assert!(
                        matches!(&queried, Ok((c, d)) if *c == claims && d.is_empty()),
                        "claims read from the blocks differ from the queries': {claims:?} vs {queried:?}"
                    );
                }
                (claims, Vec::new())
            }
            None => queried_claims(&biscuit, trusted)?,
        };
        let verification = Verification::new(biscuit, root, reads, claims, delegation, None)?;
        Ok(Self {
            verification: Arc::new(verification),
            text: crate::WritText::new(text),
        })
    }

    /// A writ this process has just minted, from its token and the claims it was minted
    /// with: what [`VerifiedWrit::from_biscuit`] reads from the same token (a test holds
    /// them equal), without running the queries. It states no delegation.
    /// `shape` is the one it was minted with (see `shape`).
    pub(crate) fn minted(
        biscuit: Biscuit,
        root: PublicKey,
        claims: WritClaims,
        shape: Option<crate::shape::Shape>,
    ) -> Result<Self, WritError> {
        let sealed = serialized(&biscuit)?;
        // Writs of one shape read alike (see `shape::read`): read once per shape.
        let reads = match shape {
            Some(shape) => crate::shape::read(shape, &claims, &sealed)?,
            None => Reads::of(&sealed)?,
        };
        // The text `encode` gives (biscuit-auth's padded base64url), from the bytes at hand.
        let text = format!("{WRIT_PREFIX}{}", URL_SAFE.encode(&sealed));
        let verification = Verification::new(biscuit, root, reads, claims, Vec::new(), shape)?;
        Ok(Self {
            verification: Arc::new(verification),
            text: crate::WritText::from(text),
        })
    }

    /// The same writ for a request presenting `text`: the caller (the verified-writ cache)
    /// knows it is the text `verification` was made from, by its SHA-256.
    pub(crate) fn presented(verification: Arc<Verification>, text: &str) -> Self {
        Self {
            verification,
            text: crate::WritText::new(text),
        }
    }

    /// What verification established, shared with every request presenting this text.
    pub(crate) fn verification(&self) -> &Arc<Verification> {
        &self.verification
    }

    /// The writ's text, prefix included.
    pub(crate) fn text(&self) -> &str {
        &self.text
    }

    /// Whether `self` and `other` share one verification: the second of two requests
    /// presenting the same text while it is cached does (the [`crate::Verifier`] served it
    /// without checking a signature), and they share the memo of the last allowed request.
    pub fn same_verification(&self, other: &VerifiedWrit) -> bool {
        Arc::ptr_eq(&self.verification, &other.verification)
    }

    /// How many times the Datalog authorizer has run for this writ. A request answered
    /// from the memo of the last allowed request does not count.
    pub fn evaluations(&self) -> u64 {
        self.verification
            .evaluations
            .load(std::sync::atomic::Ordering::Relaxed)
    }

    /// The last second (UNIX time) through which this writ's Datalog gives a request the
    /// same answer whatever the time, or `None` if it may change every second (the writ
    /// reads the time other than as an expiry).
    pub fn holds_through(&self) -> Option<u64> {
        self.verification.holds_through.map(NonZeroU64::get)
    }

    /// A bound on the units of work (about 10 ns each) that evaluating this writ's checks
    /// after its authority block could cost for `facts`, or the refusal [`authorize`]
    /// would give if it is over [`crate::MAX_WORK_PER_WRIT`]. Pure and cheap (a walk over
    /// the checks' shapes), so a caller can decide where to run a costly evaluation.
    ///
    /// [`authorize`]: Self::authorize
    pub fn evaluation_work(&self, facts: &RequestFacts) -> Result<u64, WritError> {
        Ok(self.biscuit()?.checks.work(facts)?)
    }

    /// The writ's claims.
    pub fn claims(&self) -> &WritClaims {
        &self.verification.claims
    }

    /// The last second (UNIX time) of the writ's life.
    fn expires_secs(&self) -> u64 {
        self.verification
            .claims
            .expires_at
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_secs())
    }

    /// Revocation ids of every block, authority first. Revoking any of them revokes the writ.
    pub fn revocation_ids(&self) -> &RevocationIds {
        &self.verification.revocation_ids
    }

    /// The parsed token: kept, or parsed again from the text (checking the signatures
    /// again against the root key that verified them, and that its blocks are the ones
    /// verified).
    pub(crate) fn biscuit(&self) -> Result<Arc<Loaded>, WritError> {
        let v = &self.verification;
        if let Some(loaded) = v.parsed.get() {
            return Ok(loaded);
        }
        let body = crate::encoding::decode(&self.text)?.body;
        let biscuit =
            Biscuit::from_base64(body, *v.root).map_err(crate::encoding::classify_parse_error)?;
        // Bound to this text by construction (the cache finds a verification by the
        // text's SHA-256); checked again here, as cheaply: the blocks' signatures.
        if !v.revocation_ids.matches(&biscuit.revocation_identifiers()) {
            return Err(WritError::Malformed {
                reason: "not the text that was verified",
            });
        }
        let checks = Arc::new(CheckShapes::read(&serialized(&biscuit)?)?);
        let loaded = Arc::new(Loaded { biscuit, checks });
        v.parsed.put(loaded.clone());
        Ok(loaded)
    }

    /// Whether some block is a third-party block signed by `key`: cheap, without parsing
    /// the token again.
    pub fn has_block_signed_by(&self, key: &PublicKey) -> bool {
        self.verification
            .third_party
            .as_ref()
            .is_some_and(|t| t.external_keys.contains(key))
    }

    /// Whether the parsed token is held now (not only what verification read of it).
    pub fn holds_parsed(&self) -> bool {
        self.verification.parsed.get().is_some()
    }

    /// The signed delegations, as `(block index, by, to)`, oldest first.
    fn delegation(&self) -> &[(i64, String, String)] {
        self.verification
            .third_party
            .as_ref()
            .map_or(&[], |t| t.delegation.as_slice())
    }

    /// The delegation chain, oldest first, as `(delegated_by, delegated_to)` with each
    /// party as `tenant/agent`. Only delegation blocks signed by a trusted root key (the
    /// gateway's token exchange) count: a holder can append a block stating such facts,
    /// but cannot sign it.
    pub fn delegation_chain(&self) -> Vec<(String, String)> {
        self.delegation()
            .iter()
            .map(|(_, by, to)| (by.clone(), to.clone()))
            .collect()
    }

    /// The agent (`tenant/agent`) block `index` delegates to, if it is a signed delegation
    /// block.
    pub fn delegated_by_block(&self, index: usize) -> Option<&str> {
        self.delegation()
            .iter()
            .find(|(i, _, _)| usize::try_from(*i).ok() == Some(index))
            .map(|(_, _, to)| to.as_str())
    }

    /// The agents this writ was delegated to, oldest first, as `(tenant, agent)`.
    pub fn delegates(&self) -> impl Iterator<Item = (&str, &str)> {
        self.delegation()
            .iter()
            .filter_map(|(_, _, to)| to.split_once('/'))
    }

    /// The agent acting with this writ: the last delegate, or the agent it was issued to.
    /// As `(tenant, agent)`.
    pub fn acting_agent(&self) -> (&str, &str) {
        self.delegates()
            .last()
            .unwrap_or((&self.claims().tenant, &self.claims().agent))
    }

    /// Every block as readable Datalog, authority first. Writs hold no secrets.
    pub fn blocks_source(&self) -> Vec<String> {
        let Ok(biscuit) = self.biscuit() else {
            return vec!["<unparsable writ>".to_string()];
        };
        (0..biscuit.block_count())
            .map(|i| {
                biscuit
                    .print_block_source(i)
                    .unwrap_or_else(|_| "<unprintable block>".to_string())
            })
            .collect()
    }
}

/// Reading claims failed: a block too costly to evaluate, or claims of the wrong shape.
pub(crate) fn evaluation_error(e: error::Token) -> WritError {
    match e {
        error::Token::RunLimit(_) => WritError::Malformed {
            reason: "exceeds the Datalog evaluation limits",
        },
        _ => WritError::MissingClaim {
            claim: "writ_version",
        },
    }
}

/// The claims of `biscuit` and its signed delegations, as the verification queries find
/// them in a Datalog authorizer loaded with the token: the reference for every token, and
/// the reading of those not in the plain form `stated` reads.
pub(crate) fn queried_claims(
    biscuit: &Biscuit,
    trusted: &RootKeys,
) -> Result<(WritClaims, Delegations), WritError> {
    let mut authorizer = AuthorizerBuilder::new()
        .set_limits(run_limits())
        .build(biscuit)
        .map_err(|_| WritError::Malformed {
            reason: "authority block cannot be loaded",
        })?;
    // Queries see only the authority block and the authorizer, so attenuation blocks
    // cannot forge claims.
    let q = queries()?;
    let rows: Vec<ClaimsRow> = authorizer
        .query(q.claims.clone())
        .map_err(evaluation_error)?;
    let [(version, tenant, agent, token_id, issued_at, expires_at)] =
        <[ClaimsRow; 1]>::try_from(rows).map_err(|_| WritError::MissingClaim {
            claim: "writ_version/tenant/agent/token_id/issued_at/expires_at (exactly one each)",
        })?;
    if version != 1 {
        return Err(WritError::Malformed {
            reason: "unsupported writ_version",
        });
    }
    // Budgets and single use may be stated by any block, attenuations included: a
    // holder can only lower a budget or add single use, so every block is read.
    let budget = |authorizer: &mut biscuit_auth::Authorizer,
                  query: &Rule|
     -> Result<Option<u64>, WritError> {
        let rows: Vec<(i64,)> = authorizer
            .query_all(query.clone())
            .map_err(evaluation_error)?;
        Ok(rows.into_iter().map(|(n,)| n.max(0) as u64).min())
    };
    let budget_usd_micros = budget(&mut authorizer, &q.budget_usd_micros)?;
    let budget_tokens = budget(&mut authorizer, &q.budget_tokens)?;
    let single: Vec<(bool,)> = authorizer
        .query_all(q.single_use.clone())
        .map_err(evaluation_error)?;
    let single_use = single.iter().any(|(b,)| *b);
    // Authority only: a binding is the issuer's statement.
    let bound: Vec<(String,)> = authorizer
        .query(q.cnf_jkt.clone())
        .map_err(evaluation_error)?;
    let cnf_jkt = bound.into_iter().next().map(|(j,)| j);
    let audience = crate::audience::stated(biscuit, &mut authorizer, trusted)?;
    let claims = WritClaims {
        tenant,
        agent,
        token_id,
        key_id: biscuit.root_key_id(),
        issued_at,
        expires_at,
        block_count: biscuit.block_count(),
        budget_usd_micros,
        budget_tokens,
        single_use,
        cnf_jkt,
        audience,
    };
    let delegation = signed_delegations(biscuit, &mut authorizer, trusted)?;
    Ok((claims, delegation))
}

/// The `delegation(index, by, to)` facts of third-party blocks signed by a trusted root
/// key, each taken only from the block its index names, ordered by index.
fn signed_delegations(
    biscuit: &Biscuit,
    authorizer: &mut biscuit_auth::Authorizer,
    trusted: &RootKeys,
) -> Result<Delegations, WritError> {
    let external = biscuit.external_public_keys();
    let mut chain: Delegations = Vec::new();
    for (_, key) in trusted.iter() {
        let signed_by_key: Vec<i64> = external
            .iter()
            .enumerate()
            .filter(|(_, k)| k.as_ref() == Some(key))
            .filter_map(|(i, _)| i64::try_from(i).ok())
            .collect();
        if signed_by_key.is_empty() {
            continue;
        }
        // Scoped to the authority and the blocks this key signed: facts an attenuation
        // block states are not seen.
        let mut rule: biscuit_auth::builder::Rule =
            "d($i, $by, $to) <- delegation($i, $by, $to) trusting {key}"
                .try_into()
                .map_err(|_| WritError::Malformed {
                    reason: "delegation query",
                })?;
        rule.set_scope("key", *key)
            .map_err(|_| WritError::Malformed {
                reason: "delegation query",
            })?;
        let rows: Vec<(i64, String, String)> = authorizer.query(rule).map_err(evaluation_error)?;
        chain.extend(
            rows.into_iter()
                .filter(|(i, _, _)| signed_by_key.contains(i)),
        );
    }
    chain.sort();
    chain.dedup_by_key(|(i, _, _)| *i);
    Ok(chain)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Api, KeyId, MintRequest, RootKeyPair, decode, mint, parse_grants};

    #[test]
    fn the_queries_parse() {
        assert!(super::queries().is_ok());
    }

    /// A verification is only ever paired with the text it was made from (the cache finds
    /// it by that text's digest); were it paired with another writ's text, parsing that
    /// text again would be refused, not evaluated in its place.
    #[test]
    fn a_verification_parses_again_only_its_own_text() {
        let key = RootKeyPair::generate(KeyId(1));
        let mut keys = RootKeys::new();
        keys.insert(key.kid(), key.public());
        let now = UNIX_EPOCH + Duration::from_secs(1_800_000_000);
        let narrow = parse_grants(r#"{"type":"writ:llm","upstream":"u","models":["a"]}"#);
        let wide = parse_grants(r#"{"type":"writ:llm","upstream":"u"}"#).unwrap();
        let text = |grants: &[crate::Grant]| {
            let req = MintRequest {
                tenant: "t",
                agent: "a",
                ceiling: &wide,
                grants,
                ttl: Duration::from_secs(30),
                max_ttl: Duration::from_secs(30),
                now,
                cnf_jkt: None,
                audience: None,
            };
            mint(&key, &req).unwrap().0
        };
        let (narrow, wide) = (text(&narrow.unwrap()), text(&wide));
        let verified = decode(&narrow).unwrap().verify(&keys).unwrap();
        let facts = RequestFacts {
            upstream: Some("u".into()),
            model: Some("b".into()),
            ..RequestFacts::new(Api::Llm, "chat", "POST", "/v1/chat/completions")
        };
        let mismatched = VerifiedWrit::presented(verified.verification().clone(), &wide);
        verified.verification().parsed.release();
        assert_eq!(
            mismatched.authorize(&facts, now).unwrap_err(),
            WritError::Malformed {
                reason: "not the text that was verified"
            }
        );
        // Its own text, parsed again, decides as the writ does.
        assert!(matches!(
            verified.authorize(&facts, now),
            Err(WritError::Denied(_))
        ));
        assert_eq!(verified.evaluations(), 1);
    }
}
