//! Registered agents as the token endpoint reads them: each read from the store once per
//! snapshot and held with it, so a mint reads no database while the store is unchanged.
//!
//! The holder is the [`super::Snapshot`]: any change to the store (an agent added, a key
//! rotated, an agent removed, here or on another instance) swaps in a snapshot with an
//! empty holder, so an agent is never served older than the snapshot's view of the store.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};

use writ_store::Agent;

/// At most this many agents held per snapshot; past it the holder starts again empty.
/// A miss costs one store read, so this only bounds what unknown names can make it hold.
const MAX_HELD: usize = 65_536;

/// Agents read from the store, by tenant and name. Unknown names are never held.
#[derive(Default)]
pub(crate) struct HeldAgents {
    held: RwLock<Held>,
}

#[derive(Default)]
struct Held {
    by_tenant: HashMap<String, HashMap<String, Arc<Agent>>>,
    count: usize,
}

impl HeldAgents {
    /// The agent `name` of `tenant`, if held.
    pub(crate) fn get(&self, tenant: &str, name: &str) -> Option<Arc<Agent>> {
        let held = self.held.read().unwrap_or_else(|p| p.into_inner());
        held.by_tenant.get(tenant)?.get(name).cloned()
    }

    /// Holds `agent` (as the store had it when this holder's snapshot was current).
    pub(crate) fn hold(&self, agent: Arc<Agent>) {
        let mut held = self.held.write().unwrap_or_else(|p| p.into_inner());
        if held.count >= MAX_HELD {
            *held = Held::default();
        }
        let names = held.by_tenant.entry(agent.tenant.clone()).or_default();
        if names.insert(agent.name.clone(), agent).is_none() {
            held.count += 1;
        }
    }

    /// Number of agents held.
    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.held.read().unwrap_or_else(|p| p.into_inner()).count
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn agent(tenant: &str, name: &str) -> Arc<Agent> {
        Arc::new(Agent {
            tenant: tenant.to_string(),
            name: name.to_string(),
            ceiling: Vec::new(),
            max_ttl: Duration::from_secs(30),
            credentials: Default::default(),
        })
    }

    #[test]
    fn held_agents_are_found_by_tenant_and_name_only() {
        let held = HeldAgents::default();
        assert!(held.get("acme", "bot").is_none());
        held.hold(agent("acme", "bot"));
        held.hold(agent("acme", "bot"));
        assert_eq!(held.len(), 1, "holding an agent again replaces it");
        assert_eq!(
            held.get("acme", "bot").map(|a| a.name.clone()).as_deref(),
            Some("bot")
        );
        assert!(held.get("other", "bot").is_none());
        assert!(held.get("acme", "bot2").is_none());
    }

    /// Past the bound the holder starts again instead of growing.
    #[test]
    fn held_agents_stay_within_the_bound() {
        let held = HeldAgents::default();
        for i in 0..MAX_HELD + 10 {
            held.hold(agent("t", &format!("agent-{i}")));
        }
        assert!(held.len() <= MAX_HELD, "{}", held.len());
        assert!(held.get("t", &format!("agent-{}", MAX_HELD + 9)).is_some());
    }
}
