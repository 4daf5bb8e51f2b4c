//! The `brute_force` detector: failed authentications counted in the limiter backend (so
//! the counts hold across instances sharing Redis) per (client id, address) and per
//! address at the token endpoint, and per address at the data plane; back-off, then
//! lock-out, then release (`[detection.brute_force]`), or an operator's unlock.
//!
//! A client id is counted together with the address that tried it: failures from one
//! address never lock the client out at another, so nobody can lock a victim out by
//! guessing at its name from elsewhere. Guessing one id from many addresses is bounded by
//! each address's own limit.
//!
//! An attempt made while backing off counts as a failure too, so a client that ignores
//! `Retry-After` is soon locked out; attempts during a lock-out are not counted.
//!
//! Counting is by the client id *claimed*, whether or not it exists, so a throttled
//! answer says nothing about which ids are real. If the backend cannot be reached the
//! attempt goes ahead — authentication itself still decides — and a warning is logged.

use std::net::IpAddr;
use std::time::Duration;

use writ_limits::{StrikePolicy, StrikeVerdict};

use crate::detect::detections::{Action, Detection, Detector, Mode};
use crate::gateway::Gateway;

/// Most addresses remembered as throttled at once (a distributed attack beyond this is
/// still counted in the backend, and refused from each address's next failure).
const MAX_BLOCKED_ADDRESSES: usize = 100_000;

/// What is counted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum StrikeKey {
    /// Failed client authentications for one claimed client id from one address (`None`:
    /// the address is unknown).
    Client {
        /// The claimed client id.
        id: String,
        /// The address it was tried from.
        from: Option<IpAddr>,
    },
    /// Failed client authentications at the token endpoint from one address.
    TokenAddress(IpAddr),
    /// Invalid writs at the data plane from one address.
    WritAddress(IpAddr),
}

impl StrikeKey {
    fn key(&self, namespace: &str) -> String {
        match self {
            StrikeKey::Client { id, from } => {
                let from = from.map_or_else(|| "-".to_string(), |ip| ip.to_string());
                format!("{}{from}", client_prefix(namespace, id))
            }
            StrikeKey::TokenAddress(ip) => format!("{namespace}/token-addr:{ip}"),
            StrikeKey::WritAddress(ip) => format!("{namespace}/writ-addr:{ip}"),
        }
    }

    /// What the failures were counted per, as a detection's `rules` name it (kebab-case,
    /// as every rule id is).
    fn rule(&self) -> &'static str {
        match self {
            StrikeKey::Client { .. } => "client-id",
            StrikeKey::TokenAddress(_) => "token-endpoint-address",
            StrikeKey::WritAddress(_) => "data-plane-address",
        }
    }
}

/// The start of every strike key of client `id`, and of no other client's: the id's length
/// goes first, so no id can be read as another id followed by an address.
fn client_prefix(namespace: &str, id: &str) -> String {
    format!("{namespace}/token-client:{}:{id}/", id.len())
}

/// Further attempts must wait.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Throttled {
    /// How long until the next attempt may be made (the `Retry-After`).
    pub(crate) retry_after: Duration,
    /// Locked out (rather than backing off).
    pub(crate) locked: bool,
}

impl Throttled {
    /// Whole seconds for `Retry-After`, at least 1.
    pub(crate) fn retry_after_secs(&self) -> u64 {
        (self.retry_after.as_secs() + u64::from(self.retry_after.subsec_nanos() > 0)).max(1)
    }
}

fn strike_key(gw: &Gateway, key: &StrikeKey) -> String {
    key.key(&gw.detections.config().strike_namespace)
}

fn strike_policy(gw: &Gateway, key: &StrikeKey) -> StrikePolicy {
    let config = gw.detections.config();
    match key {
        StrikeKey::WritAddress(_) => config.data_plane,
        _ => config.token_endpoint,
    }
}

/// Whether an attempt by these keys must wait; `None` lets it go ahead. In `monitor`
/// and `off` mode it always goes ahead.
pub(crate) async fn strikes_check(gw: &Gateway, keys: &[StrikeKey]) -> Option<Throttled> {
    if gw.detections.mode(Detector::BruteForce, None) != Mode::Block {
        return None;
    }
    let now = crate::limits::nanos(gw.clock.now());
    let mut worst: Option<Throttled> = None;
    for key in keys {
        let verdict = match gw
            .limits
            .limiter()
            .strike_check(&strike_key(gw, key), &strike_policy(gw, key), now)
            .await
        {
            Ok(v) => v,
            Err(e) => {
                tracing::warn!(error = %e, "limit backend unavailable; brute-force check skipped");
                continue;
            }
        };
        let throttled = match verdict {
            StrikeVerdict::Clear => continue,
            StrikeVerdict::Backoff { retry_after } => Throttled {
                retry_after,
                locked: false,
            },
            StrikeVerdict::Locked { retry_after } => Throttled {
                retry_after,
                locked: true,
            },
        };
        if worst.is_none_or(|w| throttled.retry_after > w.retry_after) {
            worst = Some(throttled);
        }
    }
    worst
}

/// Counts one failed authentication against each key; reports a detection when one
/// starts backing off or is locked out. Returns how long the keys must now wait (in
/// `block` mode).
pub(crate) async fn strikes_record(
    gw: &Gateway,
    keys: &[StrikeKey],
    location: &'static str,
    client: Option<IpAddr>,
) -> Option<Throttled> {
    let mode = gw.detections.mode(Detector::BruteForce, None);
    if mode == Mode::Off {
        return None;
    }
    let mut worst: Option<Throttled> = None;
    let now = crate::limits::nanos(gw.clock.now());
    for key in keys {
        let policy = strike_policy(gw, key);
        let outcome = match gw
            .limits
            .limiter()
            .strike(&strike_key(gw, key), &policy, now)
            .await
        {
            Ok(o) => o,
            Err(e) => {
                tracing::warn!(error = %e, "limit backend unavailable; failure not counted");
                continue;
            }
        };
        let throttled = match outcome.verdict {
            StrikeVerdict::Clear => None,
            StrikeVerdict::Backoff { retry_after } => Some(Throttled {
                retry_after,
                locked: false,
            }),
            StrikeVerdict::Locked { retry_after } => Some(Throttled {
                retry_after,
                locked: true,
            }),
        };
        if let Some(t) = throttled
            && mode == Mode::Block
            && worst.is_none_or(|w| t.retry_after > w.retry_after)
        {
            worst = Some(t);
        }
        let action = if outcome.locked_now {
            Action::LockedOut
        } else if outcome.failures == policy.backoff_after
            && matches!(outcome.verdict, StrikeVerdict::Backoff { .. })
        {
            Action::Throttled
        } else {
            continue;
        };
        let action = if mode == Mode::Block {
            action
        } else {
            Action::Monitored
        };
        let mut detection = Detection::new(Detector::BruteForce, action, location);
        detection.rules = vec![key.rule().to_string()];
        detection.count = outcome.failures as usize;
        detection.client = client;
        if let StrikeKey::Client { id, .. } = key {
            match id.split_once('/') {
                Some((tenant, agent)) => {
                    detection.tenant = Some(tenant.to_string());
                    detection.agent = Some(agent.to_string());
                }
                None => {
                    detection.tenant = Some(gw.tenant.clone());
                    detection.agent = Some(id.clone());
                }
            }
        }
        gw.detected(detection, true).await;
    }
    worst
}

/// Whether the data plane refuses `ip` for now, as this instance last learnt from the
/// backend. Checked on every request without a round trip: an address throttled by
/// another instance is refused here from its next failure on.
pub(crate) fn address_throttled(gw: &Gateway, ip: IpAddr) -> Option<Throttled> {
    let now = gw.clock.now();
    let mut blocked = gw
        .blocked_addresses
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    match blocked.get(&ip) {
        Some((until, locked)) if *until > now => Some(Throttled {
            retry_after: until.duration_since(now).unwrap_or_default(),
            locked: *locked,
        }),
        Some(_) => {
            blocked.remove(&ip);
            None
        }
        None => None,
    }
}

/// Counts an invalid writ (or an attempt while backing off) from `ip`, and remembers
/// a resulting back-off or block, which it returns.
pub(crate) async fn invalid_writ_from(gw: &Gateway, ip: IpAddr) -> Option<Throttled> {
    let keys = [StrikeKey::WritAddress(ip)];
    let throttled = strikes_record(gw, &keys, "data_plane", Some(ip)).await;
    if let Some(t) = throttled {
        let now = gw.clock.now();
        let mut blocked = gw
            .blocked_addresses
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if blocked.len() >= MAX_BLOCKED_ADDRESSES {
            blocked.retain(|_, (until, _)| *until > now);
        }
        if blocked.len() < MAX_BLOCKED_ADDRESSES {
            blocked.insert(ip, (now + t.retry_after, t.locked));
        }
    }
    throttled
}

/// An operator's unlock: forgets every failure and lock-out of client `id`, from every
/// address, and (with `addresses`) those addresses' own token-endpoint counts: an
/// address's count is at least its client's, so it would hold the client locked out
/// otherwise. In the limiter backend, so on every instance sharing it. Returns the
/// addresses the client was counted at. `also` is an address to clear as well, whether
/// or not the client is still counted there (its own count may have lapsed first).
pub(crate) async fn strikes_unlock_client(
    gw: &Gateway,
    id: &str,
    addresses: bool,
    also: Option<IpAddr>,
) -> Result<Vec<IpAddr>, writ_limits::BackendError> {
    let config = gw.detections.config();
    let namespace = &config.strike_namespace;
    let prefix = client_prefix(namespace, id);
    let limiter = gw.limits.limiter();
    let forgotten = limiter.strike_forget_prefix(&prefix).await?;
    let clear_addresses = addresses;
    let mut addresses: Vec<IpAddr> = forgotten
        .iter()
        .filter_map(|key| key.strip_prefix(&prefix)?.parse().ok())
        .chain(also)
        .collect();
    addresses.sort();
    addresses.dedup();
    for ip in addresses.iter().filter(|_| clear_addresses) {
        limiter
            .strike_forget(&StrikeKey::TokenAddress(*ip).key(namespace))
            .await?;
    }
    Ok(addresses)
}

/// Forgets a client id's failures after it authenticated (its lock-out, if any,
/// stands).
pub(crate) async fn strikes_clear(gw: &Gateway, key: &StrikeKey) {
    if gw.detections.mode(Detector::BruteForce, None) == Mode::Off {
        return;
    }
    if let Err(e) = gw.limits.limiter().strike_clear(&strike_key(gw, key)).await {
        tracing::warn!(error = %e, "limit backend unavailable; failures not cleared");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_do_not_collide_across_kinds() {
        let ip: IpAddr = "10.0.0.1".parse().unwrap_or(IpAddr::from([0, 0, 0, 0]));
        let keys = [
            StrikeKey::Client {
                id: "10.0.0.1".into(),
                from: None,
            }
            .key(""),
            StrikeKey::TokenAddress(ip).key(""),
            StrikeKey::WritAddress(ip).key(""),
        ];
        assert_eq!(
            keys.iter().collect::<std::collections::HashSet<_>>().len(),
            3
        );
    }

    #[test]
    fn a_client_prefix_covers_its_own_addresses_only() {
        let ip: IpAddr = "10.0.0.1".parse().unwrap_or(IpAddr::from([0, 0, 0, 0]));
        let key = |id: &str| {
            StrikeKey::Client {
                id: id.into(),
                from: Some(ip),
            }
            .key("ns")
        };
        let prefix = client_prefix("ns", "a");
        assert!(key("a").starts_with(&prefix));
        // An id that starts like another, or holds what looks like an address, is apart.
        assert!(!key("a/10.0.0.1").starts_with(&prefix));
        assert!(!key("ab").starts_with(&prefix));
        assert_ne!(key("a"), key("b"));
    }

    #[test]
    fn retry_after_rounds_up_to_whole_seconds() {
        let t = |ms| Throttled {
            retry_after: Duration::from_millis(ms),
            locked: false,
        };
        assert_eq!(t(1).retry_after_secs(), 1);
        assert_eq!(t(1000).retry_after_secs(), 1);
        assert_eq!(t(1001).retry_after_secs(), 2);
    }
}
