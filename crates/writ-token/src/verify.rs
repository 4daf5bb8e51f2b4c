//! Verified writs, their claims, and authorization of a request against them.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use biscuit_auth::error::{self, FailedCheck, Logic};
use std::sync::{Arc, LazyLock};

use biscuit_auth::builder::{Policy, Rule};
use biscuit_auth::{AuthorizerBuilder, AuthorizerLimits, Biscuit, PublicKey};

use crate::error::{Denial, WritError};
use crate::evaluation_cost::CheckShapes;
use crate::facts::RequestFacts;
use crate::keys::RootKeys;
use crate::parsed::Loaded;

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

/// A writ whose signatures verify against a trusted root key and whose claims were read.
///
/// Holding one says nothing yet about what it allows: call [`VerifiedWrit::authorize`].
pub struct VerifiedWrit {
    /// The parsed token (about 14 KB for a writ minted here), held in the process's
    /// bounded ring of parsed tokens (see `parsed`) while it may be needed: let go once
    /// the memo below has answered a repeated request and holds to the writ's expiry, or
    /// when [`crate::PARSED_CAPACITY`] other tokens were parsed since; parsed again
    /// (signatures checked again) from `sealed` if a request with other facts comes after
    /// all.
    parsed: crate::parsed::Parsed,
    /// The token as verified (under 1 KB), and the root key that verified it.
    sealed: Box<[u8]>,
    root: Arc<PublicKey>,
    /// Revocation ids of every block, authority first.
    revocation_ids: Vec<Vec<u8>>,
    /// Delegations stated by blocks a trusted root key signed, oldest first, as
    /// `(block index, by, to)`.
    delegation: Vec<(i64, String, String)>,
    /// The keys that signed third-party blocks (delegations, approvals).
    external_keys: Vec<PublicKey>,
    claims: WritClaims,
    /// The last second through which this writ's Datalog answers alike whatever the time
    /// (see `time_bound`), or `None` if the answer may change every second.
    holds_through: Option<u64>,
    /// The last request this writ allowed, and the seconds that decision holds for.
    /// Datalog is deterministic and `time` is stated to the second, so the same facts get
    /// the same answer within those seconds: an agent repeating a call skips the authorizer.
    last_allowed: std::sync::Mutex<Option<Allowed>>,
    /// How many times the Datalog authorizer ran for this writ.
    evaluations: std::sync::atomic::AtomicU64,
}

/// A remembered allow: the facts encoded as `facts` were allowed, and the answer holds
/// from second `from` through second `through` (UNIX time).
struct Allowed {
    from: u64,
    through: u64,
    /// `RequestFacts::encode_into` of the allowed facts: one allocation to compare.
    facts: Box<[u8]>,
    /// Whether the memo has answered a request since it was made.
    repeated: bool,
}

impl std::fmt::Debug for VerifiedWrit {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("VerifiedWrit")
            .field("claims", &self.claims)
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

/// The token's bytes as verified, and the shapes of its checks (refused if costly).
fn sealed_with_checks(biscuit: &Biscuit) -> Result<(Box<[u8]>, CheckShapes), WritError> {
    let sealed = biscuit
        .to_vec()
        .map_err(|_| WritError::Malformed {
            reason: "cannot be serialized again",
        })?
        .into_boxed_slice();
    let checks = CheckShapes::read(&sealed)?;
    Ok((sealed, checks))
}

impl VerifiedWrit {
    pub(crate) fn from_biscuit(
        biscuit: Biscuit,
        root: PublicKey,
        trusted: &RootKeys,
    ) -> Result<Self, WritError> {
        // Before anything is evaluated (the claims below run the authority's world): a
        // block that could make evaluation costly is refused here.
        let (sealed, checks) = sealed_with_checks(&biscuit)?;
        let mut authorizer = AuthorizerBuilder::new()
            .set_limits(run_limits())
            .build(&biscuit)
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
        let audience = crate::audience::stated(&biscuit, &mut authorizer, trusted)?;
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
        let delegation = signed_delegations(&biscuit, &mut authorizer, trusted)?;
        Ok(Self::assemble(
            biscuit, root, sealed, checks, claims, delegation,
        ))
    }

    /// A writ this process has just minted, from its token and the claims it was minted
    /// with: what [`VerifiedWrit::from_biscuit`] reads from the same token (a test holds
    /// them equal), without running the queries. It states no delegation.
    pub(crate) fn minted(
        biscuit: Biscuit,
        root: PublicKey,
        claims: WritClaims,
    ) -> Result<Self, WritError> {
        let (sealed, checks) = sealed_with_checks(&biscuit)?;
        Ok(Self::assemble(
            biscuit,
            root,
            sealed,
            checks,
            claims,
            Vec::new(),
        ))
    }

    fn assemble(
        biscuit: Biscuit,
        root: PublicKey,
        sealed: Box<[u8]>,
        checks: CheckShapes,
        claims: WritClaims,
        delegation: Vec<(i64, String, String)>,
    ) -> Self {
        // Read from the blocks as evaluated; a token that cannot be read gets no bound
        // (decided again every second), never a wrong one.
        let holds_through = crate::time_bound::holds_through(&sealed);
        Self {
            revocation_ids: biscuit.revocation_identifiers(),
            external_keys: biscuit
                .external_public_keys()
                .into_iter()
                .flatten()
                .collect(),
            delegation,
            parsed: crate::parsed::Parsed::holding(Arc::new(Loaded { biscuit, checks })),
            sealed,
            root: crate::parsed::shared_root(root),
            claims,
            holds_through,
            last_allowed: std::sync::Mutex::new(None),
            evaluations: std::sync::atomic::AtomicU64::new(0),
        }
    }

    /// How many times the Datalog authorizer has run for this writ. A request answered
    /// from the memo of the last allowed request does not count.
    pub fn evaluations(&self) -> u64 {
        self.evaluations.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// The last second (UNIX time) through which this writ's Datalog gives a request the
    /// same answer whatever the time, or `None` if it may change every second (the writ
    /// reads the time other than as an expiry).
    pub fn holds_through(&self) -> Option<u64> {
        self.holds_through
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
        &self.claims
    }

    /// The last second (UNIX time) of the writ's life.
    fn expires_secs(&self) -> u64 {
        self.claims
            .expires_at
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_secs())
    }

    /// Revocation ids of every block, authority first. Revoking any of them revokes the writ.
    pub fn revocation_ids(&self) -> &[Vec<u8>] {
        &self.revocation_ids
    }

    /// The parsed token: kept, or parsed again from the verified bytes (checking the
    /// signatures again against the root key that verified them).
    pub(crate) fn biscuit(&self) -> Result<Arc<Loaded>, WritError> {
        if let Some(loaded) = self.parsed.get() {
            return Ok(loaded);
        }
        let biscuit = Biscuit::from(&self.sealed, *self.root)
            .map_err(crate::encoding::classify_parse_error)?;
        let checks = CheckShapes::read(&self.sealed)?;
        let loaded = Arc::new(Loaded { biscuit, checks });
        self.parsed.put(loaded.clone());
        Ok(loaded)
    }

    /// Whether some block is a third-party block signed by `key`: cheap, without parsing
    /// the token again.
    pub fn has_block_signed_by(&self, key: &PublicKey) -> bool {
        self.external_keys.contains(key)
    }

    /// Whether the parsed token is held now (not only its verified bytes).
    pub fn holds_parsed(&self) -> bool {
        self.parsed.get().is_some()
    }

    /// The delegation chain, oldest first, as `(delegated_by, delegated_to)` with each
    /// party as `tenant/agent`. Only delegation blocks signed by a trusted root key (the
    /// gateway's token exchange) count: a holder can append a block stating such facts,
    /// but cannot sign it.
    pub fn delegation_chain(&self) -> Vec<(String, String)> {
        self.delegation
            .iter()
            .map(|(_, by, to)| (by.clone(), to.clone()))
            .collect()
    }

    /// The agent (`tenant/agent`) block `index` delegates to, if it is a signed delegation
    /// block.
    pub fn delegated_by_block(&self, index: usize) -> Option<&str> {
        self.delegation
            .iter()
            .find(|(i, _, _)| usize::try_from(*i).ok() == Some(index))
            .map(|(_, _, to)| to.as_str())
    }

    /// The agents this writ was delegated to, oldest first, as `(tenant, agent)`.
    pub fn delegates(&self) -> impl Iterator<Item = (&str, &str)> {
        self.delegation
            .iter()
            .filter_map(|(_, _, to)| to.split_once('/'))
    }

    /// The agent acting with this writ: the last delegate, or the agent it was issued to.
    /// As `(tenant, agent)`.
    pub fn acting_agent(&self) -> (&str, &str) {
        self.delegates()
            .last()
            .unwrap_or((&self.claims.tenant, &self.claims.agent))
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

    /// Checks the request against every block of the writ at time `now`.
    pub fn authorize(
        &self,
        facts: &RequestFacts,
        now: SystemTime,
    ) -> Result<Authorization, WritError> {
        match self.authorize_within(facts, now, u64::MAX)? {
            Some(authorization) => Ok(authorization),
            // Unreachable: no bound exceeds `u64::MAX`, so every evaluation runs.
            None => Err(crate::DatalogError::TooCostly {
                block: 0,
                max: crate::MAX_WORK_PER_WRIT,
            }
            .into()),
        }
    }

    /// Like [`authorize`](Self::authorize), but answers `Ok(None)` without evaluating when
    /// the evaluation could cost more than `max_work` units (see
    /// [`evaluation_work`](Self::evaluation_work)): the caller then runs
    /// [`authorize`](Self::authorize) where a costly evaluation holds nobody up. A request
    /// the memo answers is answered whatever its bound.
    pub fn authorize_within(
        &self,
        facts: &RequestFacts,
        now: SystemTime,
        max_work: u64,
    ) -> Result<Option<Authorization>, WritError> {
        // Compare at the one-second resolution of Biscuit dates, as the Datalog check does.
        let now_secs = now.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
        let now = UNIX_EPOCH + Duration::from_secs(now_secs);
        if now > self.claims.expires_at {
            return Err(WritError::Expired {
                at: self.claims.expires_at,
            });
        }
        let allowed = || Authorization {
            token_id: self.claims.token_id.clone(),
            tenant: self.claims.tenant.clone(),
            agent: self.claims.agent.clone(),
        };
        let mut encoded = Vec::with_capacity(128);
        facts.encode_into(&mut encoded);
        if let Ok(mut last) = self.last_allowed.lock()
            && let Some(a) = last.as_mut()
            && (a.from..=a.through).contains(&now_secs)
            && *a.facts == *encoded
        {
            // Answered from the memo a second time: if it holds for the rest of the writ's
            // life, requests like this one never need the parsed token again.
            if !a.repeated && a.through >= self.expires_secs() {
                self.parsed.release();
            }
            a.repeated = true;
            return Ok(Some(allowed()));
        }
        let loaded = self.biscuit()?;
        // Bounded before it runs: the library's own limits do not stop a costly check.
        if loaded.checks.work(facts)? > max_work {
            return Ok(None);
        }
        self.evaluations
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let mut builder = AuthorizerBuilder::new().set_limits(run_limits());
        for fact in facts.to_facts(now) {
            builder = builder.fact(fact).map_err(denied_by)?;
        }
        // Exactly one allow policy (see `Queries`); every block's checks must also pass.
        let mut authorizer = builder
            .policy(queries()?.allow.clone())
            .map_err(denied_by)?
            .build(&loaded.biscuit)
            .map_err(denied_by)?;
        authorizer.authorize().map_err(denied_by)?;
        if let Ok(mut last) = self.last_allowed.lock() {
            // Past the bound (allowed by a branch that does not read the time) the
            // answer is only known for this second.
            let through = self
                .holds_through
                .filter(|&b| b >= now_secs)
                .unwrap_or(now_secs);
            *last = Some(Allowed {
                from: now_secs,
                through,
                facts: encoded.into_boxed_slice(),
                repeated: false,
            });
        }
        Ok(Some(allowed()))
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

fn denied_by(e: error::Token) -> WritError {
    let failed = |checks: Vec<FailedCheck>| {
        checks
            .into_iter()
            .map(|c| match c {
                FailedCheck::Block(b) => (b.block_id, b.rule),
                FailedCheck::Authorizer(a) => (u32::MAX, a.rule),
            })
            .collect()
    };
    let denial = match e {
        error::Token::FailedLogic(Logic::Unauthorized { checks, .. })
        | error::Token::FailedLogic(Logic::NoMatchingPolicy { checks }) => Denial {
            failed_checks: failed(checks),
            run_limit: false,
        },
        error::Token::RunLimit(_) => Denial {
            failed_checks: vec![],
            run_limit: true,
        },
        _ => Denial {
            failed_checks: vec![],
            run_limit: false,
        },
    };
    WritError::Denied(denial)
}

/// The `delegation(index, by, to)` facts of third-party blocks signed by a trusted root
/// key, each taken only from the block its index names, ordered by index.
fn signed_delegations(
    biscuit: &Biscuit,
    authorizer: &mut biscuit_auth::Authorizer,
    trusted: &RootKeys,
) -> Result<Vec<(i64, String, String)>, WritError> {
    let external = biscuit.external_public_keys();
    let mut chain: Vec<(i64, String, String)> = Vec::new();
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
    #[test]
    fn the_queries_parse() {
        assert!(super::queries().is_ok());
    }
}
