//! The audit log's verification state as the console shows it: every instance's log
//! verified against the deployment's verifier key (the same [`verify_export`] as
//! `writ audit verify`), and the verdict kept until the log's contents change.
//!
//! Verification reads and hashes the whole log, and parses every record. The verdict is
//! cached under a SHA-256 digest of the log's lines, so a page load over an unchanged log
//! costs one pass of hashing, never a second verification, while any changed byte (a
//! new record, a tampered one) is verified afresh on the next load. One verification
//! runs at a time; page loads that arrive meanwhile wait for it and reuse its verdict.

use std::sync::Arc;

use sha2::{Digest, Sha256};
use writ_audit::{ExportVerification, Position, Problem, VerifierKey, verify_export};

use super::view::inert;

/// The last verdict and the digest of the log it was reached on.
#[derive(Default)]
pub(crate) struct VerificationCache {
    last: tokio::sync::Mutex<Option<([u8; 32], Arc<ExportVerification>)>>,
}

impl VerificationCache {
    /// The verdict on `lines`: the cached one when `lines` are those it was reached on,
    /// otherwise `verify(lines)`, run off the async workers and then cached. `None` when
    /// the verifying thread failed.
    pub(crate) async fn verdict(
        &self,
        lines: Vec<String>,
        verify: impl FnOnce(&[String]) -> ExportVerification + Send + 'static,
    ) -> Option<Arc<ExportVerification>> {
        let mut last = self.last.lock().await;
        let cached = last.clone();
        let (digest, verdict) = tokio::task::spawn_blocking(move || {
            let digest = digest(&lines);
            match cached {
                Some((seen, verdict)) if seen == digest => (digest, verdict),
                _ => (digest, Arc::new(verify(&lines))),
            }
        })
        .await
        .ok()?;
        *last = Some((digest, verdict.clone()));
        Some(verdict)
    }
}

/// SHA-256 over every line, each preceded by its length (a stored line may hold a
/// newline, so a separator alone would let two different logs hash alike).
fn digest(lines: &[String]) -> [u8; 32] {
    let mut hash = Sha256::new();
    for line in lines {
        hash.update((line.len() as u64).to_le_bytes());
        hash.update(line.as_bytes());
    }
    hash.finalize().into()
}

/// Verifies `lines` with the gateway's verifier key and its instances' origins.
pub(crate) fn verify(lines: &[String], key: &VerifierKey) -> ExportVerification {
    verify_export(lines, key, crate::audit::origin, &[])
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

    fn counted(calls: &Arc<AtomicUsize>) -> impl FnOnce(&[String]) -> ExportVerification + use<> {
        let calls = calls.clone();
        move |_| {
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

    #[test]
    fn anchors_keep_to_safe_characters() {
        assert_eq!(anchor("01ABC", 7), "r-01ABC-7");
        assert_eq!(anchor("a\"><b", 0), "r-a___b-0");
    }
}
