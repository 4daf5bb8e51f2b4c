//! How many writs each agent holds that still work: counted from the `writ_minted` records
//! of the audit log (shared by every instance when the sink is PostgreSQL, so a writ minted
//! on any instance counts), less the expired and the stopped. The log is read at most once
//! every [`REFRESH`] of the gateway clock per instance, however many pages are opened.

use std::collections::{BTreeMap, HashSet};
use std::time::{Duration, SystemTime};

use writ_audit::{AuditRecord, Kind};

use crate::gateway::Gateway;

/// How long one read of the audit log serves the agents pages. A writ minted or expired
/// since shows up this late at most; a stop shows at once (revocations are applied to the
/// cached mints at each view).
pub(crate) const REFRESH: Duration = Duration::from_secs(5);

/// One writ as its `writ_minted` record tells it.
#[derive(Debug, Clone)]
struct Mint {
    tenant: String,
    agent: String,
    /// The pseudonym of its token id.
    writ: Option<String>,
    issued_at: SystemTime,
    expires_at: SystemTime,
}

/// The mints of the last read that had not expired then, and when it was made.
struct Read {
    at: SystemTime,
    mints: Vec<Mint>,
}

/// This instance's cache of the audit log's live mints.
#[derive(Default)]
pub(crate) struct LiveWrits {
    /// One reader at a time: the others wait for its answer instead of reading too.
    last: tokio::sync::Mutex<Option<Read>>,
}

/// The audit log could not be read.
#[derive(Debug, thiserror::Error)]
#[error("the audit log could not be read: {0}")]
pub(crate) struct Unreadable(#[from] writ_audit::sink::SinkError);

impl LiveWrits {
    /// The live writs of each agent of `tenant` (agents without one are left out): minted
    /// on any instance writing to this log, not expired, not stopped by an agent, tenant,
    /// issued-before or token id revocation in force here.
    pub(crate) async fn by_agent(
        &self,
        gw: &Gateway,
        tenant: &str,
    ) -> Result<BTreeMap<String, usize>, Unreadable> {
        let now = gw.clock.now();
        let mut last = self.last.lock().await;
        let stale = last.as_ref().is_none_or(|read| {
            now.duration_since(read.at)
                .map_or(true, |age| age >= REFRESH)
        });
        if stale {
            let lines = gw.audit_export().await?;
            *last = Some(Read {
                at: now,
                mints: lines.iter().filter_map(|l| minted(l, now)).collect(),
            });
        }
        let revoked = gw.revocations_in_force();
        let stopped_writs: HashSet<String> = revoked
            .token_ids()
            .map(|id| gw.audit.pseudonym(id))
            .collect();
        let mut counts = BTreeMap::new();
        for mint in last.iter().flat_map(|read| &read.mints) {
            let live = mint.tenant == tenant
                && mint.expires_at > now
                && !revoked.revokes_issued(&mint.tenant, &mint.agent, mint.issued_at)
                && !mint
                    .writ
                    .as_ref()
                    .is_some_and(|w| stopped_writs.contains(w));
            if live {
                *counts.entry(mint.agent.clone()).or_insert(0) += 1;
            }
        }
        Ok(counts)
    }
}

/// The writ a `writ_minted` line records, if it had not expired at `now`.
fn minted(line: &str, now: SystemTime) -> Option<Mint> {
    // Most lines are other kinds: skip them before parsing.
    if !line.contains(r#""kind":"writ_minted""#) {
        return None;
    }
    let record = AuditRecord::from_line(line).ok()?;
    if record.kind != Kind::WritMinted {
        return None;
    }
    let issued_at = humantime::parse_rfc3339(&record.time).ok()?;
    let ttl = record.detail.as_ref()?.get("ttl_secs")?.as_u64()?;
    let expires_at = issued_at.checked_add(Duration::from_secs(ttl))?;
    if expires_at <= now {
        return None;
    }
    Some(Mint {
        tenant: record.tenant?,
        agent: record.agent?,
        writ: record.writ,
        issued_at,
        expires_at,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_unexpired_mints_with_a_lifetime_are_read() {
        let line = |kind: &str, time: &str, ttl: u64| {
            format!(
                r#"{{"v":1,"seq":0,"instance":"i","time":"{time}","kind":"{kind}","prev":"","tenant":"acme","agent":"bot","writ":"w1","detail":{{"ttl_secs":{ttl}}}}}"#
            )
        };
        let now =
            humantime::parse_rfc3339("2026-03-01T12:00:10Z").unwrap_or(SystemTime::UNIX_EPOCH);
        let live = minted(&line("writ_minted", "2026-03-01T12:00:00.250Z", 30), now);
        let live = live.as_ref().map(|m| (m.tenant.as_str(), m.agent.as_str()));
        assert_eq!(live, Some(("acme", "bot")));
        assert!(minted(&line("writ_minted", "2026-03-01T12:00:00Z", 10), now).is_none());
        assert!(minted(&line("request_allowed", "2026-03-01T12:00:00Z", 30), now).is_none());
        assert!(minted("not json \"kind\":\"writ_minted\"", now).is_none());
    }
}
