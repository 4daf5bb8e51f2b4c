//! How many writs each agent holds that still work: counted from the `writ_minted` records
//! of the audit log (shared by every instance when the sink is PostgreSQL, so a writ minted
//! on any instance counts), less the expired and the stopped.
//!
//! The cost is bounded twice. The log is read at most once every [`REFRESH`] of the
//! gateway clock per instance, however many pages are opened. And it is never read whole:
//! each instance's log is followed from the last record read (an index range of its
//! primary key); an instance seen for the first time is read newest first, back to the
//! oldest record that could still be a live writ (the gateway's longest writ lifetime
//! ago). What is kept between reads is the live mints only.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::time::{Duration, SystemTime};

use writ_audit::sink::Sink;
use writ_audit::{AuditRecord, Kind};

use crate::gateway::Gateway;

/// How long one read of the audit log serves the agents pages. A writ minted or expired
/// since shows up this late at most; a stop shows at once (revocations are applied to the
/// mints read, at each view).
pub(crate) const REFRESH: Duration = Duration::from_secs(5);
/// Records asked for at once.
const PAGE: u32 = 500;
/// How far before the longest writ lifetime a first read goes back: clocks of instances
/// differ, and records are numbered, not sorted by time.
const SLACK: Duration = Duration::from_secs(60);

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

/// What has been read of the log.
#[derive(Default)]
struct Followed {
    /// When it was last read (the gateway clock).
    read_at: Option<SystemTime>,
    /// Per instance, the number of the last record read.
    read_up_to: HashMap<String, u64>,
    /// The mints read that had not expired then.
    mints: Vec<Mint>,
}

/// This instance's follower of the audit log's mints.
#[derive(Default)]
pub(crate) struct LiveWrits {
    /// One reader at a time: the others wait for its answer instead of reading too.
    followed: tokio::sync::Mutex<Followed>,
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
        let mut followed = self.followed.lock().await;
        let stale = followed
            .read_at
            .is_none_or(|at| now.duration_since(at).map_or(true, |age| age >= REFRESH));
        if stale {
            followed.read(gw.audit.reader(), gw.max_ttl, now).await?;
        }
        let revoked = gw.revocations_in_force();
        let stopped_writs: HashSet<String> = revoked
            .token_ids()
            .map(|id| gw.audit.pseudonym(id))
            .collect();
        let mut counts = BTreeMap::new();
        for mint in &followed.mints {
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

impl Followed {
    /// Reads what each instance logged since the last read (for an instance not seen
    /// before: back to `max_ttl` ago).
    async fn read(
        &mut self,
        sink: &Sink,
        max_ttl: Duration,
        now: SystemTime,
    ) -> Result<(), Unreadable> {
        let oldest_live = now
            .checked_sub(max_ttl + SLACK)
            .unwrap_or(SystemTime::UNIX_EPOCH);
        for instance in sink.instances().await? {
            match self.read_up_to.get(&instance).copied() {
                Some(mut last) => loop {
                    let page = sink.records_after(&instance, Some(last), PAGE).await?;
                    for (n, line) in &page {
                        last = *n;
                        self.mints.extend(minted(line, now));
                    }
                    self.read_up_to.insert(instance.clone(), last);
                    if page.len() < PAGE as usize {
                        break;
                    }
                },
                None => {
                    let mut before = None;
                    loop {
                        let page = sink.records_before(&instance, before, PAGE).await?;
                        if before.is_none()
                            && let Some((newest, _)) = page.first()
                        {
                            self.read_up_to.insert(instance.clone(), *newest);
                        }
                        let mut reached_old = false;
                        for (n, line) in &page {
                            before = Some(*n);
                            reached_old |= time_of(line).is_some_and(|t| t < oldest_live);
                            self.mints.extend(minted(line, now));
                        }
                        if reached_old || page.len() < PAGE as usize {
                            break;
                        }
                    }
                }
            }
        }
        self.mints.retain(|m| m.expires_at > now);
        self.read_at = Some(now);
        Ok(())
    }
}

/// The time of a record line, read without parsing the whole line (the `time` field comes
/// before any text from outside).
fn time_of(line: &str) -> Option<SystemTime> {
    let start = line.find(r#""time":""#)? + r#""time":""#.len();
    let end = start + line[start..].find('"')?;
    humantime::parse_rfc3339(&line[start..end]).ok()
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

    fn record(seq: u64, instance: &str, kind: &str, at: SystemTime) -> String {
        let time = humantime::format_rfc3339_millis(at);
        format!(
            r#"{{"v":1,"seq":{seq},"instance":"{instance}","time":"{time}","kind":"{kind}","prev":"","tenant":"acme","agent":"bot","writ":"w{seq}","detail":{{"ttl_secs":30}}}}"#
        )
    }

    #[tokio::test]
    async fn the_log_is_followed_not_read_whole() {
        let dir = tempfile::tempdir().unwrap();
        let sink = Sink::sqlite(&dir.path().join("audit.db")).await.unwrap();
        let now = humantime::parse_rfc3339("2026-03-01T12:00:00Z").unwrap();
        let long_ago = now - Duration::from_secs(7200);
        let recently = now - Duration::from_secs(10);
        // Instance a: 600 old records, then 600 recent ones, a mint every 100.
        let lines: Vec<String> = (0..1200)
            .map(|n| {
                let kind = if n % 100 == 0 {
                    "writ_minted"
                } else {
                    "request_allowed"
                };
                // One old record carries a recent time (a skewed clock): reading back
                // stops before it, at the first records older than any live writ.
                let at = if n < 600 && n != 5 {
                    long_ago
                } else {
                    recently
                };
                let kind = if n == 5 { "writ_minted" } else { kind };
                record(n, "a", kind, at)
            })
            .collect();
        sink.append("a", 0, &lines).await.unwrap();
        let mut followed = Followed::default();
        let max_ttl = Duration::from_secs(300);
        followed.read(&sink, max_ttl, now).await.unwrap();
        assert_eq!(followed.mints.len(), 6, "the recent mints only");
        assert_eq!(followed.read_up_to.get("a"), Some(&1199));

        // Then only what came after is read: a's next records and a new instance's.
        let more: Vec<String> = (1200..1210)
            .map(|n| record(n, "a", if n < 1202 { "writ_minted" } else { "x" }, recently))
            .collect();
        sink.append("a", 1200, &more).await.unwrap();
        sink.append("b", 0, &[record(0, "b", "writ_minted", recently)])
            .await
            .unwrap();
        followed.read(&sink, max_ttl, now).await.unwrap();
        assert_eq!(followed.mints.len(), 9);
        assert_eq!(followed.read_up_to.get("a"), Some(&1209));
        assert_eq!(followed.read_up_to.get("b"), Some(&0));
        // Expired mints are dropped.
        followed
            .read(&sink, max_ttl, now + Duration::from_secs(25))
            .await
            .unwrap();
        assert!(followed.mints.is_empty());
    }

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
        assert_eq!(
            time_of(&line("request_allowed", "2026-03-01T12:00:00Z", 30)),
            humantime::parse_rfc3339("2026-03-01T12:00:00Z").ok()
        );
        assert_eq!(time_of("{}"), None);
    }
}
