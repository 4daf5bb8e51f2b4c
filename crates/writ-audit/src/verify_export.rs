//! Verification of a whole export: each gateway instance's log verified on its own with
//! [`verify_log`], and each problem placed at the export line it concerns. The CLI's
//! `writ audit verify` and the console's audit page both read their verdicts from here.

use crate::key::VerifierKey;
use crate::sink::ExportLine;
use crate::verify::{Problem, Summary, verify_log};

/// What verifying an export found, instance by instance.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExportVerification {
    /// Each instance's verdict, in the order the instances first appear in the export.
    pub instances: Vec<InstanceVerification>,
    /// Export lines (0-based) that are neither a checkpoint nor a record naming its
    /// instance: unreadable JSON, or a record whose `instance` was removed.
    pub unreadable: Vec<usize>,
    /// Instances a checkpoint size was expected of that the export holds nothing of, with
    /// that size.
    pub absent: Vec<(String, u64)>,
}

impl ExportVerification {
    /// Whether everything verified: every instance, no unreadable line, none absent.
    pub fn is_ok(&self) -> bool {
        self.unreadable.is_empty()
            && self.absent.is_empty()
            && self.instances.iter().all(|i| i.outcome.is_ok())
    }
}

/// One instance's verdict.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InstanceVerification {
    /// The instance's id.
    pub instance: String,
    /// What [`verify_log`] established, or the first problem it found.
    pub outcome: Result<Summary, Problem>,
    /// The export line (0-based) of the record or checkpoint the problem names, when it
    /// names one that is in the export. For [`Problem::MissingRecord`] it is the line of
    /// the record found in the missing one's place.
    pub line: Option<usize>,
}

/// Verifies every instance's log in `lines` (an export, or a file sink's lines, each as
/// stored) against `key`. `origin` gives an instance's checkpoint origin line;
/// `expected` holds checkpoint sizes already seen per instance (the largest given for an
/// instance counts), so a log rolled back below one fails and an instance missing from
/// the export is reported in [`ExportVerification::absent`].
pub fn verify_export(
    lines: &[String],
    key: &VerifierKey,
    origin: impl Fn(&str) -> String,
    expected: &[(String, u64)],
) -> ExportVerification {
    // Each instance's record and checkpoint lines, by position in the export.
    struct Lines {
        instance: String,
        records: Vec<usize>,
        checkpoints: Vec<(usize, String)>,
    }
    fn slot(logs: &mut Vec<Lines>, instance: String) -> usize {
        match logs.iter().position(|l| l.instance == instance) {
            Some(p) => p,
            None => {
                logs.push(Lines {
                    instance,
                    records: Vec::new(),
                    checkpoints: Vec::new(),
                });
                logs.len() - 1
            }
        }
    }
    let mut logs: Vec<Lines> = Vec::new();
    let mut unreadable = Vec::new();
    for (n, line) in lines.iter().enumerate() {
        match ExportLine::read(line) {
            None => {}
            Some(ExportLine::Checkpoint(cp)) => {
                let i = slot(&mut logs, cp.instance);
                logs[i].checkpoints.push((n, cp.checkpoint));
            }
            Some(ExportLine::Record(instance)) if instance.is_empty() => unreadable.push(n),
            Some(ExportLine::Record(instance)) => {
                let i = slot(&mut logs, instance);
                logs[i].records.push(n);
            }
        }
    }
    let expected_of = |instance: &str| {
        expected
            .iter()
            .filter(|(i, _)| i == instance)
            .map(|(_, n)| *n)
            .max()
    };
    let instances = logs
        .iter()
        .map(|log| {
            let records: Vec<&str> = log.records.iter().map(|&n| lines[n].as_str()).collect();
            let notes: Vec<&str> = log.checkpoints.iter().map(|(_, c)| c.as_str()).collect();
            let outcome = verify_log(
                &records,
                &notes,
                key,
                &origin(&log.instance),
                expected_of(&log.instance),
            );
            let line = match outcome.as_ref().err().and_then(Problem::position) {
                Some(Position::Record(seq)) => usize::try_from(seq)
                    .ok()
                    .and_then(|s| log.records.get(s))
                    .copied(),
                Some(Position::Checkpoint(index)) => log.checkpoints.get(index).map(|(n, _)| *n),
                None => None,
            };
            InstanceVerification {
                instance: log.instance.clone(),
                outcome,
                line,
            }
        })
        .collect();
    let mut absent: Vec<(String, u64)> = Vec::new();
    for (instance, _) in expected {
        if !logs.iter().any(|l| &l.instance == instance)
            && !absent.iter().any(|(i, _)| i == instance)
        {
            absent.push((instance.clone(), expected_of(instance).unwrap_or_default()));
        }
    }
    ExportVerification {
        instances,
        unreadable,
        absent,
    }
}

/// What a [`Problem`] points at in its instance's log.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Position {
    /// The record at this position of the instance's log.
    Record(u64),
    /// The checkpoint at this index of the instance's checkpoints.
    Checkpoint(usize),
}

impl Problem {
    /// The record or checkpoint the problem names; `None` for a truncated or rolled-back
    /// log, where the evidence is what is no longer there.
    pub fn position(&self) -> Option<Position> {
        match *self {
            Problem::RecordAltered { seq }
            | Problem::MissingRecord { seq }
            | Problem::OutOfOrder { seq }
            | Problem::ForgedRecord { seq }
            | Problem::InstanceMismatch { seq }
            | Problem::OutcomeWithoutDecision { seq }
            | Problem::OutcomeMislinked { seq, .. } => Some(Position::Record(seq)),
            Problem::MalformedCheckpoint { index, .. }
            | Problem::BadCheckpointSignature { index }
            | Problem::OriginMismatch { index }
            | Problem::CheckpointMismatch { index, .. } => Some(Position::Checkpoint(index)),
            Problem::TruncatedAfterCheckpoint { .. } | Problem::Rollback { .. } => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::UNIX_EPOCH;

    use super::*;
    use crate::sink::CheckpointLine;
    use crate::{AuditKey, AuditLog, AuditRecord, Kind};

    fn origin(instance: &str) -> String {
        format!("writ-audit/{instance}")
    }

    /// Three records of `instance` and a checkpoint over them, as export lines.
    fn log(instance: &str, key: &AuditKey) -> (Vec<String>, String) {
        let mut log = AuditLog::new(instance, origin(instance)).unwrap_or_else(|e| panic!("{e}"));
        let lines = (0..3)
            .map(|_| {
                log.append(AuditRecord::new(Kind::AdminChange, UNIX_EPOCH))
                    .0
            })
            .collect();
        let checkpoint = serde_json::to_string(&CheckpointLine {
            checkpoint: log.checkpoint(key),
            instance: instance.to_string(),
            size: 3,
        })
        .unwrap_or_default();
        (lines, checkpoint)
    }

    #[test]
    fn each_instance_is_judged_alone_and_its_problem_placed_at_its_line() {
        let key = AuditKey::from_seed("writ-audit", &[3; 32]).unwrap_or_else(|e| panic!("{e}"));
        let (a, a_checkpoint) = log("a", &key);
        let (b, b_checkpoint) = log("b", &key);
        // Interleaved as an export of a shared sink could be; b's record 1 edited.
        let mut lines = vec![
            a[0].clone(),
            b[0].clone(),
            a[1].clone(),
            b[1].replacen("admin_change", "approval", 1),
            a[2].clone(),
            b[2].clone(),
            String::new(),
            "not json".to_string(),
            a_checkpoint,
            b_checkpoint,
        ];
        let expected = [("a".to_string(), 3), ("gone".to_string(), 5)];
        let report = verify_export(&lines, &key.verifier_key(), origin, &expected);
        assert_eq!(report.instances.len(), 2);
        let a = &report.instances[0];
        assert_eq!(a.instance, "a");
        assert_eq!(a.outcome.as_ref().map(|s| s.signed_size), Ok(3));
        assert_eq!(a.line, None);
        let b = &report.instances[1];
        assert_eq!(b.outcome, Err(Problem::RecordAltered { seq: 1 }));
        assert_eq!(b.line, Some(3), "the export line of b's record 1");
        assert_eq!(report.unreadable, vec![7]);
        assert_eq!(report.absent, vec![("gone".to_string(), 5)]);
        assert!(!report.is_ok());

        // Held to a larger size than its checkpoints: rolled back.
        lines.retain(|l| !l.is_empty() && l != "not json");
        let report = verify_export(
            &lines,
            &key.verifier_key(),
            origin,
            &[("a".to_string(), 2), ("a".to_string(), 4)],
        );
        assert_eq!(
            report.instances[0].outcome,
            Err(Problem::Rollback {
                size: 3,
                expected: 4
            }),
            "the largest size given counts"
        );
        assert_eq!(report.instances[0].line, None);
    }
}
