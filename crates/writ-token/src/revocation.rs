//! Revocation: what an operator can cut off, and the pure test of whether a writ is cut off.
//!
//! A writ is revoked when any of its blocks' revocation ids is, so revoking a parent writ
//! revokes every writ attenuated from it (they carry the parent's blocks). Revoking an
//! agent or a tenant also revokes the writs delegated to that agent (or into that tenant)
//! by token exchange: the delegate is named by the signed delegation block.

use std::collections::{HashMap, HashSet};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};

use crate::verify::VerifiedWrit;

/// One revocation, as stored and as sent to the admin API.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum Revocation {
    /// One writ by its token id, with every writ attenuated from it.
    TokenId {
        /// The `token_id` claim.
        token_id: String,
    },
    /// Every writ holding a block with this revocation id (hex).
    RevocationId {
        /// Hex revocation id of a block.
        revocation_id: String,
    },
    /// Every writ issued to an agent.
    Agent {
        /// The agent's tenant.
        tenant: String,
        /// The agent.
        agent: String,
    },
    /// Every writ of a tenant.
    Tenant {
        /// The tenant.
        tenant: String,
    },
    /// The kill switch: every writ issued before a time, in one tenant or in all.
    IssuedBefore {
        /// Limit to one tenant; all tenants when left out.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        tenant: Option<String>,
        /// Unix seconds: writs issued strictly before this are revoked.
        before: u64,
    },
}

impl Revocation {
    /// The tenant this revocation acts on; `None` for revocations that reach every tenant.
    pub fn tenant(&self) -> Option<&str> {
        match self {
            Revocation::Agent { tenant, .. } | Revocation::Tenant { tenant } => Some(tenant),
            Revocation::IssuedBefore { tenant, .. } => tenant.as_deref(),
            Revocation::TokenId { .. } | Revocation::RevocationId { .. } => None,
        }
    }

    /// Whether this revocation may be lifted: agent and tenant revocations may; a writ's
    /// (by token id or block) and the kill switch are permanent, since lifting them would
    /// bring back writs that were reported cut off.
    pub fn is_liftable(&self) -> bool {
        matches!(self, Revocation::Agent { .. } | Revocation::Tenant { .. })
    }
}

/// When the writ with token id `token_id` was issued, read from the id itself (a ULID
/// whose time part is the issue time), or `None` if it is not a token id writ makes.
pub fn token_id_issued_at(token_id: &str) -> Option<SystemTime> {
    let ulid = ulid::Ulid::from_string(token_id).ok()?;
    // Writ ids are minted upper-case; another spelling is another id to the matcher.
    if ulid.to_string() != token_id {
        return None;
    }
    Some(UNIX_EPOCH + Duration::from_millis(ulid.timestamp_ms()))
}

/// Every revocation in force, indexed for a constant-time test per request.
#[derive(Debug, Default, Clone)]
pub struct RevocationSet {
    token_ids: HashSet<String>,
    revocation_ids: HashSet<Vec<u8>>,
    /// Revoked agents, by tenant: looked up without building a key per request.
    agents: HashMap<String, HashSet<String>>,
    tenants: HashSet<String>,
    issued_before_all: Option<SystemTime>,
    issued_before: HashMap<String, SystemTime>,
}

impl RevocationSet {
    /// An empty set.
    pub fn new() -> Self {
        Self::default()
    }

    /// The set of every revocation in `all`.
    pub fn from_revocations<'a>(all: impl IntoIterator<Item = &'a Revocation>) -> Self {
        let mut set = Self::new();
        for r in all {
            set.insert(r);
        }
        set
    }

    /// Whether new writs must not be issued to `agent` of `tenant`: the agent or its
    /// tenant is revoked.
    pub fn refuses_agent(&self, tenant: &str, agent: &str) -> bool {
        self.tenants.contains(tenant)
            || self
                .agents
                .get(tenant)
                .is_some_and(|agents| agents.contains(agent))
    }

    /// Whether a writ of `agent` of `tenant` issued at `issued_at` is revoked by an agent,
    /// tenant or issued-before revocation: what can be told without the writ itself (a
    /// token id or a block's revocation id is not tested; see [`Self::token_ids`]).
    pub fn revokes_issued(&self, tenant: &str, agent: &str, issued_at: SystemTime) -> bool {
        // No token id is the empty string: only the agent, tenant and time are tested.
        self.reaches(
            "",
            (tenant, agent),
            issued_at,
            std::iter::empty,
            std::iter::empty,
        )
    }

    /// The token ids revoked one by one.
    pub fn token_ids(&self) -> impl Iterator<Item = &str> {
        self.token_ids.iter().map(String::as_str)
    }

    /// Adds a revocation. A revocation id that is not hex is ignored (it matches nothing).
    pub fn insert(&mut self, r: &Revocation) {
        match r {
            Revocation::TokenId { token_id } => {
                self.token_ids.insert(token_id.clone());
            }
            Revocation::RevocationId { revocation_id } => {
                if let Ok(id) = hex::decode(revocation_id) {
                    self.revocation_ids.insert(id);
                }
            }
            Revocation::Agent { tenant, agent } => {
                self.agents
                    .entry(tenant.clone())
                    .or_default()
                    .insert(agent.clone());
            }
            Revocation::Tenant { tenant } => {
                self.tenants.insert(tenant.clone());
            }
            Revocation::IssuedBefore { tenant, before } => {
                let at = UNIX_EPOCH + Duration::from_secs(*before);
                let current = match tenant {
                    None => self.issued_before_all.get_or_insert(UNIX_EPOCH),
                    Some(t) => self.issued_before.entry(t.clone()).or_insert(UNIX_EPOCH),
                };
                if at > *current {
                    *current = at;
                }
            }
        }
    }

    /// Whether `writ` is revoked.
    pub fn is_revoked(&self, writ: &VerifiedWrit) -> bool {
        let c = writ.claims();
        self.reaches(
            &c.token_id,
            (&c.tenant, &c.agent),
            c.issued_at,
            || writ.delegates(),
            || writ.revocation_ids().iter(),
        )
    }

    /// Whether the writ `subject` was read from is revoked: the same test as
    /// [`RevocationSet::is_revoked`], for a writ no longer at hand.
    pub fn revokes(&self, subject: &RevocationSubject) -> bool {
        self.reaches(
            &subject.token_id,
            (&subject.tenant, &subject.agent),
            UNIX_EPOCH + Duration::from_secs(subject.issued_at),
            || {
                subject
                    .delegates
                    .iter()
                    .map(|(t, a)| (t.as_str(), a.as_str()))
            },
            || subject.revocation_ids.iter().map(Vec::as_slice),
        )
    }

    fn reaches<'a, D, R>(
        &self,
        token_id: &str,
        (tenant, agent): (&str, &str),
        issued_at: SystemTime,
        delegates: impl FnOnce() -> D,
        revocation_ids: impl FnOnce() -> R,
    ) -> bool
    where
        D: Iterator<Item = (&'a str, &'a str)>,
        R: Iterator<Item = &'a [u8]>,
    {
        self.token_ids.contains(token_id)
            || self.refuses_agent(tenant, agent)
            || ((!self.agents.is_empty() || !self.tenants.is_empty())
                && delegates().any(|(tenant, agent)| self.refuses_agent(tenant, agent)))
            || self.issued_before_all.is_some_and(|t| issued_at < t)
            || self
                .issued_before
                .get(tenant)
                .is_some_and(|t| issued_at < *t)
            || (!self.revocation_ids.is_empty()
                && revocation_ids().any(|id| self.revocation_ids.contains(id)))
    }
}

/// What revocation reads of a writ, kept apart from it: enough to tell later whether the
/// writ is revoked, and nothing that would let anyone present it. A console session keeps
/// this of the admin writ it was opened with, so it ends when that writ is revoked, on
/// whichever instance serves it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RevocationSubject {
    /// The `token_id` claim.
    pub token_id: String,
    /// The tenant it was issued in.
    pub tenant: String,
    /// The agent it was issued to.
    pub agent: String,
    /// The agents it was delegated to by token exchange, as `(tenant, agent)`.
    pub delegates: Vec<(String, String)>,
    /// Unix seconds it was issued at (rounded down).
    pub issued_at: u64,
    /// Every block's revocation id.
    pub revocation_ids: Vec<Vec<u8>>,
}

impl RevocationSubject {
    /// What revocation reads of `writ`.
    pub fn of(writ: &VerifiedWrit) -> Self {
        let c = writ.claims();
        RevocationSubject {
            token_id: c.token_id.clone(),
            tenant: c.tenant.clone(),
            agent: c.agent.clone(),
            delegates: writ
                .delegates()
                .map(|(t, a)| (t.to_string(), a.to_string()))
                .collect(),
            issued_at: c
                .issued_at
                .duration_since(UNIX_EPOCH)
                .map_or(0, |d| d.as_secs()),
            revocation_ids: writ.revocation_ids().to_vec(),
        }
    }
}
