//! The acceptance tests of the tamper-evident log: every kind of tampering is detected and
//! named by `verify_log`, and an untouched log verifies clean.
#![allow(clippy::unwrap_used)] // test helpers outside #[test] fns

use std::sync::OnceLock;
use std::time::{Duration, UNIX_EPOCH};

use proptest::prelude::*;
use writ_audit::merkle::leaf_hash;
use writ_audit::{
    AuditKey, AuditLog, AuditRecord, Checkpoint, Decision, Kind, LimitHit, Problem, Summary, Usage,
    VerifierKey, verify_log,
};

const ORIGIN: &str = "gw.example/audit/i-1";
const RECORDS: usize = 20;
/// Checkpoints are signed after these many records.
const SIGNED_AT: [usize; 3] = [5, 12, 20];

struct Fixture {
    key: AuditKey,
    log: AuditLog,
    lines: Vec<String>,
    checkpoints: Vec<String>,
}

fn key() -> AuditKey {
    AuditKey::from_seed(ORIGIN, &[42; 32]).unwrap()
}

/// A record of every kind in turn, with the fields a gateway fills for that kind.
fn record(i: usize, flavour: &str) -> AuditRecord {
    let kinds = [
        Kind::WritMinted,
        Kind::RequestAllowed,
        Kind::RequestDenied,
        Kind::Approval,
        Kind::Revocation,
        Kind::AdminChange,
        Kind::Detection,
    ];
    let kind = kinds[i % kinds.len()];
    let mut r = AuditRecord::new(
        kind,
        UNIX_EPOCH + Duration::from_millis(1_772_366_400_000 + i as u64 * 250),
    );
    r.tenant = Some("acme".into());
    r.agent = Some(format!("agent-{flavour}-{}", i % 3));
    r.writ = Some(format!("{:032x}", i * 7919));
    match kind {
        Kind::RequestAllowed => {
            r.upstream = Some("openai".into());
            r.model = Some("gpt-4o".into());
            r.operation = Some("chat.completions".into());
            r.status = Some(200);
            r.usage = Some(Usage {
                input_tokens: 100 + i as u64,
                output_tokens: 20,
                cached_tokens: None,
            });
            r.cost_usd_micros = Some(1_500);
            r.latency_ms = Some(840);
        }
        Kind::RequestDenied => {
            r.status = Some(429);
            r.decision = Some(Decision {
                check: None,
                limit: Some(LimitHit {
                    scope: "tenant:acme".into(),
                    dimension: "tokens".into(),
                }),
                code: Some("rate_limited".into()),
            });
        }
        Kind::AdminChange | Kind::Detection => {
            let detail = serde_json::json!({"by": "admin@acme", "what": "grant", "n": i});
            r.detail = detail.as_object().cloned();
        }
        _ => {}
    }
    r
}

/// The fixture, built once: Ed25519 in a debug build is slow enough to matter across
/// hundreds of property test cases.
fn fixture() -> Fixture {
    static BUILT: OnceLock<(AuditLog, Vec<String>, Vec<String>)> = OnceLock::new();
    let (log, lines, checkpoints) = BUILT.get_or_init(|| {
        let f = build_fixture();
        (f.log, f.lines, f.checkpoints)
    });
    Fixture {
        key: key(),
        log: log.clone(),
        lines: lines.clone(),
        checkpoints: checkpoints.clone(),
    }
}

fn build_fixture() -> Fixture {
    let key = key();
    let mut log = AuditLog::new("i-1", ORIGIN).unwrap();
    let mut lines = Vec::new();
    let mut checkpoints = Vec::new();
    for i in 0..RECORDS {
        lines.push(log.append(record(i, "real")).0);
        if SIGNED_AT.contains(&(i + 1)) {
            checkpoints.push(log.checkpoint(&key));
        }
    }
    Fixture {
        key,
        log,
        lines,
        checkpoints,
    }
}

fn verify(
    lines: &[String],
    checkpoints: &[String],
    expect: Option<u64>,
) -> Result<Summary, Problem> {
    let lines: Vec<&str> = lines.iter().map(String::as_str).collect();
    let checkpoints: Vec<&str> = checkpoints.iter().map(String::as_str).collect();
    static VERIFIER: OnceLock<VerifierKey> = OnceLock::new();
    let verifier = VERIFIER.get_or_init(|| key().verifier_key());
    verify_log(&lines, &checkpoints, verifier, ORIGIN, expect)
}

/// Rewrites each line from `from` on so its `prev` links to the (possibly edited) line
/// before: what someone who knows the format, but not the signing key, can do.
fn rechain(lines: &mut [String], from: usize) {
    for i in from..lines.len() {
        let mut r = AuditRecord::from_line(&lines[i]).unwrap();
        r.prev = if i == 0 {
            "0".repeat(64)
        } else {
            hex::encode(leaf_hash(lines[i - 1].as_bytes()))
        };
        lines[i] = r.to_line();
    }
}

#[test]
fn untouched_log_verifies_clean() {
    let f = fixture();
    let summary = verify(&f.lines, &f.checkpoints, Some(20)).unwrap();
    assert_eq!(
        summary,
        Summary {
            instance: Some("i-1".into()),
            records: 20,
            checkpoints: 3,
            signed_size: 20,
            signed_root: f.log.root(),
            head: f.log.head(),
            open_decisions: 0,
        }
    );
    assert_eq!(summary.unsigned_records(), 0);
}

#[test]
fn records_after_the_last_checkpoint_are_reported_unsigned() {
    let mut f = fixture();
    for i in 0..3 {
        f.lines.push(f.log.append(record(RECORDS + i, "real")).0);
    }
    let summary = verify(&f.lines, &f.checkpoints, None).unwrap();
    assert_eq!(
        (
            summary.records,
            summary.signed_size,
            summary.unsigned_records()
        ),
        (23, 20, 3)
    );
}

#[test]
fn empty_logs_verify() {
    let empty = AuditLog::new("i-0", ORIGIN).unwrap();
    let summary = verify(&[], &[empty.checkpoint(&key())], None).unwrap();
    assert_eq!(
        (summary.instance, summary.records, summary.signed_size),
        (None, 0, 0)
    );
    assert_eq!(
        verify(&[], &[], Some(1)),
        Err(Problem::Rollback {
            size: 0,
            expected: 1
        })
    );
}

#[test]
fn changed_byte_is_named() {
    let mut f = fixture();
    f.lines[7] = f.lines[7].replacen("agent-real-1", "agent-real-2", 1);
    assert_eq!(
        verify(&f.lines, &f.checkpoints, None),
        Err(Problem::RecordAltered { seq: 7 })
    );
}

#[test]
fn changed_byte_that_breaks_the_json_is_named() {
    let mut f = fixture();
    f.lines[7] = f.lines[7].replacen("{", "[", 1);
    assert_eq!(
        verify(&f.lines, &f.checkpoints, None),
        Err(Problem::RecordAltered { seq: 7 })
    );
}

#[test]
fn changed_seq_prev_or_instance_field_is_named() {
    let f = fixture();
    let mut seq = f.lines.clone();
    seq[9] = seq[9].replacen(r#""seq":9"#, r#""seq":8"#, 1);
    assert_eq!(
        verify(&seq, &f.checkpoints, None),
        Err(Problem::RecordAltered { seq: 9 })
    );
    let mut prev = f.lines.clone();
    let p = AuditRecord::from_line(&prev[9]).unwrap().prev;
    prev[9] = prev[9].replacen(&p, &"1".repeat(64), 1);
    assert_eq!(
        verify(&prev, &f.checkpoints, None),
        Err(Problem::RecordAltered { seq: 9 })
    );
    let mut instance = f.lines.clone();
    instance[9] = instance[9].replacen(r#""instance":"i-1""#, r#""instance":"i-2""#, 1);
    assert_eq!(
        verify(&instance, &f.checkpoints, None),
        Err(Problem::RecordAltered { seq: 9 })
    );
    let mut first = f.lines.clone();
    first[0] = first[0].replacen(r#""instance":"i-1""#, r#""instance":"i-2""#, 1);
    assert_eq!(
        verify(&first, &f.checkpoints, None),
        Err(Problem::RecordAltered { seq: 0 })
    );
}

#[test]
fn change_to_the_next_to_last_record_is_named() {
    let mut f = fixture();
    f.lines[18] = f.lines[18].replacen("acme", "acmf", 1);
    assert_eq!(
        verify(&f.lines, &f.checkpoints, None),
        Err(Problem::RecordAltered { seq: 18 })
    );
}

#[test]
fn checkpoint_clears_the_record_before_an_unlinked_last_record() {
    let mut f = fixture();
    let (line, _) = f.log.append(record(RECORDS, "real"));
    let prev = AuditRecord::from_line(&line).unwrap().prev;
    f.lines.push(line.replacen(&prev, &"1".repeat(64), 1));
    // Record 19 is covered by the checkpoint of size 20, so record 20 is the one edited.
    assert_eq!(
        verify(&f.lines, &f.checkpoints, None),
        Err(Problem::RecordAltered { seq: 20 })
    );
    // Without that checkpoint, the chain alone blames the likelier edit: to record 19.
    assert_eq!(
        verify(&f.lines, &f.checkpoints[..2], None),
        Err(Problem::RecordAltered { seq: 19 })
    );
}

#[test]
fn change_to_the_last_record_fails_its_checkpoint() {
    // Nothing after it vouches for the last record: only the checkpoint covering it does.
    let mut f = fixture();
    f.lines[19] = f.lines[19].replacen("acme", "acmf", 1);
    assert_eq!(
        verify(&f.lines, &f.checkpoints, None),
        Err(Problem::CheckpointMismatch { index: 2, size: 20 })
    );
}

#[test]
fn rechained_edit_fails_the_checkpoint_covering_it() {
    let mut f = fixture();
    f.lines[14] = f.lines[14].replacen("acme", "acmf", 1);
    rechain(&mut f.lines, 15);
    assert_eq!(
        verify(&f.lines, &f.checkpoints, None),
        Err(Problem::CheckpointMismatch { index: 2, size: 20 })
    );
}

#[test]
fn deleted_record_is_named() {
    let f = fixture();
    for seq in [0, 7, 13, 18] {
        let mut lines = f.lines.clone();
        lines.remove(seq);
        assert_eq!(
            verify(&lines, &f.checkpoints, None),
            Err(Problem::MissingRecord { seq: seq as u64 }),
            "deleted {seq}"
        );
    }
    let mut several = f.lines.clone();
    several.drain(6..9);
    assert_eq!(
        verify(&several, &f.checkpoints, None),
        Err(Problem::MissingRecord { seq: 6 })
    );
}

#[test]
fn swapped_records_are_named() {
    let f = fixture();
    for (a, b) in [(7, 8), (0, 1), (3, 11), (18, 19), (0, 19)] {
        let mut lines = f.lines.clone();
        lines.swap(a, b);
        assert_eq!(
            verify(&lines, &f.checkpoints, None),
            Err(Problem::OutOfOrder { seq: a as u64 }),
            "swapped {a} and {b}"
        );
    }
}

#[test]
fn truncated_tail_after_a_checkpoint_is_named() {
    let f = fixture();
    assert_eq!(
        verify(&f.lines[..17], &f.checkpoints, None),
        Err(Problem::TruncatedAfterCheckpoint {
            checkpoint_size: 20,
            records: 17
        })
    );
    assert_eq!(
        verify(&f.lines[..10], &f.checkpoints, None),
        Err(Problem::TruncatedAfterCheckpoint {
            checkpoint_size: 12,
            records: 10
        })
    );
}

/// A forged record at position `seq` with a `prev` that links to nothing in the log.
fn naive_forgery(seq: u64) -> String {
    let mut r = record(seq as usize, "forged");
    r.seq = seq;
    r.instance = "i-1".into();
    r.prev = hex::encode(leaf_hash(b"a guess"));
    r.to_line()
}

#[test]
fn inserted_record_is_named() {
    let f = fixture();
    for at in [0, 7, 19] {
        let mut lines = f.lines.clone();
        lines.insert(at, naive_forgery(at as u64));
        assert_eq!(
            verify(&lines, &f.checkpoints, None),
            Err(Problem::ForgedRecord { seq: at as u64 }),
            "inserted at {at}"
        );
    }
}

#[test]
fn inserted_record_that_links_to_its_predecessor_is_named() {
    // The forger copies the chain link of the record it pushes down.
    let f = fixture();
    for at in [0, 7, 19] {
        let mut lines = f.lines.clone();
        let mut forged = AuditRecord::from_line(&naive_forgery(at as u64)).unwrap();
        forged.prev = AuditRecord::from_line(&lines[at]).unwrap().prev;
        lines.insert(at, forged.to_line());
        assert_eq!(
            verify(&lines, &f.checkpoints, None),
            Err(Problem::ForgedRecord { seq: at as u64 }),
            "inserted at {at}"
        );
    }
}

#[test]
fn replayed_copy_of_a_record_is_named() {
    let f = fixture();
    let mut later = f.lines.clone();
    later.insert(12, f.lines[4].clone());
    assert_eq!(
        verify(&later, &f.checkpoints, None),
        Err(Problem::ForgedRecord { seq: 12 })
    );
    let mut earlier = f.lines.clone();
    earlier.insert(2, f.lines[9].clone());
    assert_eq!(
        verify(&earlier, &f.checkpoints, None),
        Err(Problem::ForgedRecord { seq: 2 })
    );
}

#[test]
fn record_of_another_instance_is_named() {
    // Chain-consistent, so only the instance id gives it away.
    let mut f = fixture();
    f.lines[7] = f.lines[7].replacen(r#""instance":"i-1""#, r#""instance":"i-9""#, 1);
    rechain(&mut f.lines, 8);
    assert_eq!(
        verify(&f.lines, &f.checkpoints, None),
        Err(Problem::InstanceMismatch { seq: 7 })
    );
}

/// A log that shares the fixture's first `common` records, then diverges.
fn forked_log(common: usize, size: usize) -> AuditLog {
    let mut log = AuditLog::new("i-1", ORIGIN).unwrap();
    for i in 0..size {
        let flavour = if i < common { "real" } else { "fork" };
        log.append(record(i, flavour));
    }
    log
}

#[test]
fn checkpoint_signed_over_a_forked_tree_is_named() {
    let f = fixture();
    let mut cps = f.checkpoints.clone();
    cps[2] = forked_log(12, 16).checkpoint(&f.key);
    assert_eq!(
        verify(&f.lines, &cps, None),
        Err(Problem::CheckpointMismatch { index: 2, size: 16 })
    );
    let mut cps = f.checkpoints.clone();
    cps[2] = forked_log(19, 20).checkpoint(&f.key);
    assert_eq!(
        verify(&f.lines, &cps, None),
        Err(Problem::CheckpointMismatch { index: 2, size: 20 })
    );
}

#[test]
fn rollback_to_an_older_checkpoint_is_named() {
    let f = fixture();
    assert_eq!(
        verify(&f.lines, &f.checkpoints[..2], Some(20)),
        Err(Problem::Rollback {
            size: 12,
            expected: 20
        })
    );
    let mut replayed = f.checkpoints.clone();
    replayed.push(f.checkpoints[1].clone());
    assert_eq!(
        verify(&f.lines, &replayed, None),
        Err(Problem::Rollback {
            size: 12,
            expected: 20
        })
    );
    assert_eq!(
        verify(&f.lines, &[], Some(5)),
        Err(Problem::Rollback {
            size: 0,
            expected: 5
        })
    );
}

#[test]
fn badly_signed_checkpoints_are_named() {
    let f = fixture();
    let other = AuditKey::from_seed(ORIGIN, &[43; 32]).unwrap();
    let mut cps = f.checkpoints.clone();
    cps[1] = f.log.checkpoint(&other);
    assert_eq!(
        verify(&f.lines, &cps, None),
        Err(Problem::BadCheckpointSignature { index: 1 })
    );

    let mut cps = f.checkpoints.clone();
    cps[1] = cps[1].replacen("\n12\n", "\n13\n", 1);
    assert_eq!(
        verify(&f.lines, &cps, None),
        Err(Problem::BadCheckpointSignature { index: 1 })
    );

    let mut cps = f.checkpoints.clone();
    cps[1] = "not a note".into();
    assert!(matches!(
        verify(&f.lines, &cps, None),
        Err(Problem::MalformedCheckpoint { index: 1, .. })
    ));

    let mut cps = f.checkpoints.clone();
    let elsewhere = Checkpoint::new("gw.example/audit/i-2", 12, f.log.root()).unwrap();
    cps[1] = f.key.sign(&elsewhere);
    assert_eq!(
        verify(&f.lines, &cps, None),
        Err(Problem::OriginMismatch { index: 1 })
    );
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(32))]

    #[test]
    fn any_changed_character_before_the_last_record_is_named(
        seq in 0..RECORDS - 1,
        at in any::<prop::sample::Index>(),
        with in 0x20u8..0x7f,
    ) {
        let mut f = fixture();
        let mut bytes = f.lines[seq].clone().into_bytes();
        let at = at.index(bytes.len());
        prop_assume!(bytes[at] != with);
        bytes[at] = with;
        f.lines[seq] = String::from_utf8(bytes).unwrap();
        prop_assert_eq!(
            verify(&f.lines, &f.checkpoints, None),
            Err(Problem::RecordAltered { seq: seq as u64 })
        );
    }

    #[test]
    fn any_changed_character_in_the_last_record_is_caught(
        at in any::<prop::sample::Index>(),
        with in 0x20u8..0x7f,
    ) {
        let mut f = fixture();
        let mut bytes = f.lines[RECORDS - 1].clone().into_bytes();
        let at = at.index(bytes.len());
        prop_assume!(bytes[at] != with);
        bytes[at] = with;
        f.lines[RECORDS - 1] = String::from_utf8(bytes).unwrap();
        prop_assert!(verify(&f.lines, &f.checkpoints, None).is_err());
    }

    #[test]
    fn any_deleted_record_is_named(seq in 0..RECORDS) {
        let mut f = fixture();
        f.lines.remove(seq);
        let want = if seq == RECORDS - 1 {
            Problem::TruncatedAfterCheckpoint { checkpoint_size: 20, records: 19 }
        } else {
            Problem::MissingRecord { seq: seq as u64 }
        };
        prop_assert_eq!(verify(&f.lines, &f.checkpoints, None), Err(want));
    }

    #[test]
    fn any_swap_is_named(a in 0..RECORDS, b in 0..RECORDS) {
        prop_assume!(a != b);
        let mut f = fixture();
        f.lines.swap(a, b);
        prop_assert_eq!(
            verify(&f.lines, &f.checkpoints, None),
            Err(Problem::OutOfOrder { seq: a.min(b) as u64 })
        );
    }

    #[test]
    fn any_insertion_is_named(at in 0..RECORDS, smart in any::<bool>()) {
        let mut f = fixture();
        let mut forged = AuditRecord::from_line(&naive_forgery(at as u64)).unwrap();
        if smart {
            forged.prev = AuditRecord::from_line(&f.lines[at]).unwrap().prev;
        }
        f.lines.insert(at, forged.to_line());
        prop_assert_eq!(
            verify(&f.lines, &f.checkpoints, None),
            Err(Problem::ForgedRecord { seq: at as u64 })
        );
    }

    #[test]
    fn any_replayed_copy_is_named(copy in 0..RECORDS, at in 0..=RECORDS) {
        let mut f = fixture();
        let line = f.lines[copy].clone();
        f.lines.insert(at, line);
        // Inserted right before its original, the copy is indistinguishable from it: the
        // second of the two identical lines is named.
        let named = if at == copy { copy + 1 } else { at };
        prop_assert_eq!(
            verify(&f.lines, &f.checkpoints, None),
            Err(Problem::ForgedRecord { seq: named as u64 })
        );
    }
}
