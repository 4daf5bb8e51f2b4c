//! The audit log's verification state as the console shows it: every instance's log
//! verified against the deployment's verifier key (the same [`verify_export`] as
//! `writ audit verify`), and the verdict kept until the log's contents change.
//!
//! Verification reads and hashes the whole log, and parses every record. The verdict is
//! cached under a SHA-256 digest of the log's lines, so a page load over an unchanged log
//! costs one pass of hashing, never a second verification, while any changed byte (a
//! new record, a tampered one) is verified afresh on the next load. One verification
//! runs at a time; page loads that arrive meanwhile wait for it and reuse its verdict.
//!
//! Each instance is held to the largest checkpoint size this gateway has seen it verify
//! with, so a log put back to an earlier, validly signed state (its tail and latest
//! checkpoints removed), or one that lost an instance, shows as broken. Those sizes live
//! in this process's memory: a restarted gateway starts from what it then finds.

use std::sync::Arc;

use sha2::{Digest, Sha256};
use writ_audit::{ExportVerification, Position, Problem, VerifierKey, verify_export};

use super::view::inert;

/// The last verdict, and the checkpoint sizes this gateway has shown verified.
#[derive(Default)]
pub(crate) struct VerificationCache {
    state: tokio::sync::Mutex<Seen>,
}

/// What the cache remembers.
#[derive(Default, Clone)]
struct Seen {
    /// The digest of the last log verified (with the sizes it was held to) and its verdict.
    last: Option<([u8; 32], Arc<ExportVerification>)>,
    /// The largest checkpoint size each instance's log has verified with: a later log
    /// whose checkpoints are smaller, or that lost the instance, was rolled back.
    signed: Vec<(String, u64)>,
}

impl VerificationCache {
    /// The verdict on `lines`: the cached one when `lines` are those it was reached on,
    /// otherwise `verify(lines, signed)`, run off the async workers and then cached, where
    /// `signed` holds the checkpoint sizes verified before on this gateway. `None` when the
    /// verifying thread failed.
    pub(crate) async fn verdict(
        &self,
        lines: Vec<String>,
        verify: impl FnOnce(&[String], &[(String, u64)]) -> ExportVerification + Send + 'static,
    ) -> Option<Arc<ExportVerification>> {
        let mut state = self.state.lock().await;
        let seen = state.clone();
        let (digest, verdict) = tokio::task::spawn_blocking(move || {
            let digest = digest(&lines, &seen.signed);
            match seen.last {
                Some((before, verdict)) if before == digest => (digest, verdict),
                _ => (digest, Arc::new(verify(&lines, &seen.signed))),
            }
        })
        .await
        .ok()?;
        for instance in &verdict.instances {
            let Ok(summary) = &instance.outcome else {
                continue;
            };
            match state
                .signed
                .iter_mut()
                .find(|(i, _)| *i == instance.instance)
            {
                Some((_, size)) => *size = (*size).max(summary.signed_size),
                None => state
                    .signed
                    .push((instance.instance.clone(), summary.signed_size)),
            }
        }
        state.last = Some((digest, verdict.clone()));
        Some(verdict)
    }
}

/// SHA-256 over every line, each preceded by its length (a stored line may hold a
/// newline, so a separator alone would let two different logs hash alike), and the
/// checkpoint sizes the log is held to.
fn digest(lines: &[String], signed: &[(String, u64)]) -> [u8; 32] {
    let mut hash = Sha256::new();
    for line in lines {
        hash.update((line.len() as u64).to_le_bytes());
        hash.update(line.as_bytes());
    }
    for (instance, size) in signed {
        hash.update((instance.len() as u64).to_le_bytes());
        hash.update(instance.as_bytes());
        hash.update(size.to_le_bytes());
    }
    hash.finalize().into()
}

/// Verifies `lines` with the gateway's verifier key and its instances' origins, holding
/// each instance to the checkpoint size in `signed`.
pub(crate) fn verify(
    lines: &[String],
    key: &VerifierKey,
    signed: &[(String, u64)],
) -> ExportVerification {
    verify_export(lines, key, crate::audit::origin, signed)
}

/// The id of a record's row on a page: `r-<instance>-<seq>`, the instance kept to
/// letters, digits, `_` and `-`.
pub(crate) fn anchor(instance: &str, seq: u64) -> String {
    let instance: String = instance
        .chars()
        .take(64)
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '_' || c == '-' {
                c
            } else {
                '_'
            }
        })
        .collect();
    format!("r-{instance}-{seq}")
}

/// Intact instances the panel lists by name; the others are counted.
const INTACT_LISTED: usize = 5;

/// The verification panel of the audit page.
pub(crate) struct Panel {
    /// The verifier key's short form, `name+id` (public).
    pub(crate) key: String,
    /// The whole verifier key string, for auditors (public).
    pub(crate) verifier: String,
    /// Whether everything verified.
    pub(crate) ok: bool,
    /// One line per instance, then any unreadable lines.
    pub(crate) lines: Vec<PanelLine>,
}

/// One statement of the panel.
pub(crate) struct PanelLine {
    /// Whether it says the log is intact.
    pub(crate) ok: bool,
    /// What it says (instance ids inert).
    pub(crate) text: String,
    /// The row id of the record it names, when that record is on the page.
    pub(crate) link: Option<String>,
}

impl Panel {
    /// The panel for `verdict`, reached with `key`; `shown` says whether a record (instance,
    /// seq) is on the page, to link to it.
    pub(crate) fn new(
        verdict: &ExportVerification,
        key: &VerifierKey,
        shown: impl Fn(&str, u64) -> bool,
    ) -> Self {
        let short = format!("{}+{}", key.name(), hex::encode(key.id()));
        let mut lines: Vec<PanelLine> = verdict
            .instances
            .iter()
            .map(|v| {
                let instance = inert(&v.instance);
                match &v.outcome {
                    Ok(s) if s.checkpoints == 0 => PanelLine {
                        ok: true,
                        text: format!(
                            "Instance {instance}: {} chained, no checkpoint signed yet.",
                            records(s.records)
                        ),
                        link: None,
                    },
                    Ok(s) => PanelLine {
                        ok: true,
                        text: format!(
                            "Instance {instance}: verified up to checkpoint {} ({}), signed by \
                             key {short}; {} after it {} not yet signed.",
                            s.checkpoints,
                            records(s.signed_size),
                            records(s.unsigned_records()),
                            if s.unsigned_records() == 1 {
                                "is"
                            } else {
                                "are"
                            }
                        ),
                        link: None,
                    },
                    Err(problem) => broken(&v.instance, &instance, problem, &shown),
                }
            })
            .collect();
        lines.extend(verdict.absent.iter().map(|(instance, size)| PanelLine {
            ok: false,
            text: format!(
                "Instance {}: broken: the log holds nothing of it, though this gateway has \
                 verified it up to a checkpoint of {}.",
                inert(instance),
                records(*size)
            ),
            link: None,
        }));
        if !verdict.unreadable.is_empty() {
            lines.push(PanelLine {
                ok: false,
                text: format!(
                    "Broken: {} lines of the log are neither records nor checkpoints \
                     (unreadable, or naming no instance).",
                    verdict.unreadable.len()
                ),
                link: None,
            });
        }
        // Every gateway process is an instance with a log of its own, so a deployment that
        // restarts often has many: each broken one is named, the intact ones only up to
        // a few (the last in the export: instance ids sort by when they started).
        let (mut lines, mut intact): (Vec<_>, Vec<_>) = lines.into_iter().partition(|l| !l.ok);
        let hidden = intact.len().saturating_sub(INTACT_LISTED);
        intact.drain(..hidden);
        lines.extend(intact);
        if hidden > 0 {
            lines.push(PanelLine {
                ok: true,
                text: format!(
                    "{hidden} more {} verified as well (not listed).",
                    if hidden == 1 { "instance" } else { "instances" }
                ),
                link: None,
            });
        }
        Panel {
            key: short,
            verifier: key.to_string(),
            ok: verdict.is_ok(),
            lines,
        }
    }
}

/// `1 record`, `2 records`.
fn records(n: u64) -> String {
    if n == 1 {
        "1 record".to_string()
    } else {
        format!("{n} records")
    }
}

/// The statement of a broken instance log, naming the record or checkpoint.
fn broken(
    instance: &str,
    shown_instance: &str,
    problem: &Problem,
    shown: &impl Fn(&str, u64) -> bool,
) -> PanelLine {
    match problem.position() {
        Some(Position::Record(seq)) => PanelLine {
            ok: false,
            text: format!("Instance {shown_instance}: broken at record {seq}: {problem}."),
            link: shown(instance, seq).then(|| anchor(instance, seq)),
        },
        Some(Position::Checkpoint(index)) => PanelLine {
            ok: false,
            text: format!("Instance {shown_instance}: broken at checkpoint {index}: {problem}."),
            link: None,
        },
        None => PanelLine {
            ok: false,
            text: format!("Instance {shown_instance}: broken: {problem}."),
            link: None,
        },
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};

    use super::*;

    fn counted(
        calls: &Arc<AtomicUsize>,
    ) -> impl FnOnce(&[String], &[(String, u64)]) -> ExportVerification + use<> {
        let calls = calls.clone();
        move |_, _| {
            calls.fetch_add(1, Ordering::SeqCst);
            ExportVerification {
                instances: Vec::new(),
                unreadable: Vec::new(),
                absent: Vec::new(),
            }
        }
    }

    #[tokio::test]
    async fn an_unchanged_log_is_verified_once_and_any_change_again() {
        let cache = VerificationCache::default();
        let calls = Arc::new(AtomicUsize::new(0));
        let log = vec!["{\"a\":1}".to_string(), "{\"b\":2}".to_string()];
        for _ in 0..3 {
            assert!(cache.verdict(log.clone(), counted(&calls)).await.is_some());
        }
        assert_eq!(calls.load(Ordering::SeqCst), 1, "verified once");
        let mut edited = log.clone();
        edited[0] = "{\"a\":2}".to_string();
        cache.verdict(edited, counted(&calls)).await;
        assert_eq!(calls.load(Ordering::SeqCst), 2, "a changed byte: again");
        // Lines moved across the separator are a different log, not the same bytes.
        let joined = vec!["{\"a\":1}\n{\"b\":2}".to_string()];
        cache.verdict(joined, counted(&calls)).await;
        cache.verdict(log, counted(&calls)).await;
        assert_eq!(calls.load(Ordering::SeqCst), 4);
    }

    /// A log, then the same log rolled back to an earlier, validly signed state: broken
    /// for a gateway that showed the later state, as a rollback; fine for one that never
    /// saw it.
    #[tokio::test]
    async fn a_log_rolled_back_below_a_checkpoint_shown_before_is_broken() {
        let key = writ_audit::AuditKey::from_seed(crate::audit::KEY_NAME, &[7; 32])
            .unwrap_or_else(|e| panic!("{e}"));
        let verifier = key.verifier_key();
        let instance = "inst";
        let mut log = writ_audit::AuditLog::new(instance, crate::audit::origin(instance))
            .unwrap_or_else(|e| panic!("{e}"));
        let record =
            || writ_audit::AuditRecord::new(writ_audit::Kind::AdminChange, std::time::UNIX_EPOCH);
        let checkpoint = |note: String, size: u64| {
            serde_json::to_string(&writ_audit::sink::CheckpointLine {
                checkpoint: note,
                instance: instance.to_string(),
                size,
            })
            .unwrap_or_default()
        };
        let r0 = log.append(record()).0;
        let r1 = log.append(record()).0;
        let at_two = checkpoint(log.checkpoint(&key), 2);
        let r2 = log.append(record()).0;
        let at_three = checkpoint(log.checkpoint(&key), 3);
        let later = vec![r0.clone(), r1.clone(), r2, at_two.clone(), at_three];
        let earlier = vec![r0, r1, at_two];
        let verify =
            |v: VerifierKey| move |l: &[String], s: &[(String, u64)]| super::verify(l, &v, s);

        let cache = VerificationCache::default();
        let verdict = cache
            .verdict(later, verify(verifier.clone()))
            .await
            .unwrap_or_else(|| panic!("a verdict"));
        assert!(verdict.is_ok(), "{verdict:?}");
        let verdict = cache
            .verdict(earlier.clone(), verify(verifier.clone()))
            .await
            .unwrap_or_else(|| panic!("a verdict"));
        assert_eq!(
            verdict.instances[0].outcome,
            Err(Problem::Rollback {
                size: 2,
                expected: 3
            })
        );
        let panel = Panel::new(&verdict, &verifier, |_, _| false);
        assert!(!panel.ok);
        assert!(
            panel.lines[0].text.contains("rolls back from 3"),
            "{}",
            panel.lines[0].text
        );
        // The whole instance gone.
        let verdict = cache
            .verdict(Vec::new(), verify(verifier.clone()))
            .await
            .unwrap_or_else(|| panic!("a verdict"));
        assert_eq!(verdict.absent, vec![(instance.to_string(), 3)]);
        let panel = Panel::new(&verdict, &verifier, |_, _| false);
        assert!(panel.lines[0].text.contains("holds nothing of it"));
        // A gateway that never saw the later state finds nothing wrong.
        let fresh = VerificationCache::default();
        let verdict = fresh
            .verdict(earlier, verify(verifier.clone()))
            .await
            .unwrap_or_else(|| panic!("a verdict"));
        assert!(verdict.is_ok());
        let panel = Panel::new(&verdict, &verifier, |_, _| false);
        assert!(
            panel.lines[0]
                .text
                .contains("verified up to checkpoint 1 (2 records), signed by key writ-audit+"),
            "{}",
            panel.lines[0].text
        );
    }

    #[test]
    fn every_broken_instance_is_named_and_only_the_last_intact_ones() {
        let key = writ_audit::AuditKey::from_seed(crate::audit::KEY_NAME, &[9; 32])
            .unwrap_or_else(|e| panic!("{e}"));
        let intact = |i: usize| writ_audit::InstanceVerification {
            instance: format!("i{i:02}"),
            outcome: Ok(writ_audit::Summary {
                instance: Some(format!("i{i:02}")),
                records: 4,
                checkpoints: 1,
                signed_size: 3,
                signed_root: [0; 32],
                head: [0; 32],
                open_decisions: 0,
            }),
            line: None,
        };
        let mut instances: Vec<_> = (0..9).map(intact).collect();
        instances.insert(
            2,
            writ_audit::InstanceVerification {
                instance: "bad".into(),
                outcome: Err(Problem::MissingRecord { seq: 4 }),
                line: Some(12),
            },
        );
        let verdict = ExportVerification {
            instances,
            unreadable: Vec::new(),
            absent: Vec::new(),
        };
        let panel = Panel::new(&verdict, &key.verifier_key(), |i, s| i == "bad" && s == 4);
        let texts: Vec<&str> = panel.lines.iter().map(|l| l.text.as_str()).collect();
        assert_eq!(texts.len(), 7, "{texts:#?}");
        assert_eq!(
            texts[0],
            "Instance bad: broken at record 4: record 4 is missing."
        );
        assert_eq!(panel.lines[0].link.as_deref(), Some("r-bad-4"));
        assert!(texts[1].starts_with("Instance i04: verified up to checkpoint 1 (3 records)"));
        assert!(texts[1].ends_with("; 1 record after it is not yet signed."));
        assert!(texts[5].starts_with("Instance i08:"));
        assert_eq!(texts[6], "4 more instances verified as well (not listed).");
        assert!(!panel.ok);
    }

    #[test]
    fn anchors_keep_to_safe_characters() {
        assert_eq!(anchor("01ABC", 7), "r-01ABC-7");
        assert_eq!(anchor("a\"><b", 0), "r-a___b-0");
    }
}
