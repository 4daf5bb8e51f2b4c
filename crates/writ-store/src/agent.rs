//! `Agent`: a registered principal that may be issued writs.

use std::time::Duration;

use writ_token::Grant;

/// A registered agent: who it is and the most it may ever be granted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Agent {
    /// Tenant the agent belongs to.
    pub tenant: String,
    /// Agent name, unique within the tenant.
    pub name: String,
    /// The ceiling: every writ issued to this agent is bounded by these grants.
    pub ceiling: Vec<Grant>,
    /// Longest lifetime of a writ issued to this agent.
    pub max_ttl: Duration,
}
