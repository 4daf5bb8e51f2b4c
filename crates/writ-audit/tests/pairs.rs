//! Strict mode's record pairs: a `request_allowed` decision committed before forwarding,
//! and a `request_outcome` naming it by `decision_seq`. A log of pairs verifies; an
//! outcome whose decision is missing, or that points at a record which is not its
//! decision, is named by `verify_log` even when the chain and checkpoints hold (a log the
//! signer itself wrote wrong).
#![allow(clippy::unwrap_used)]

use std::time::{Duration, UNIX_EPOCH};

use writ_audit::{AuditKey, AuditLog, AuditRecord, Kind, Problem, Summary, Usage, verify_log};

const ORIGIN: &str = "gw.example/audit/i-pairs";

fn key() -> AuditKey {
    AuditKey::from_seed(ORIGIN, &[7; 32]).unwrap()
}

/// One request's identity, as both of its records carry it.
fn about(mut r: AuditRecord, writ: u32) -> AuditRecord {
    r.tenant = Some("acme".into());
    r.agent = Some("travel-bot".into());
    r.writ = Some(format!("{writ:032x}"));
    r.upstream = Some("travel".into());
    r.model = Some("book_flight".into());
    r.operation = Some("mcp.tools_call".into());
    r
}

fn at(i: u64) -> std::time::SystemTime {
    UNIX_EPOCH + Duration::from_millis(1_772_366_400_000 + i * 10)
}

fn decision(writ: u32) -> AuditRecord {
    about(AuditRecord::new(Kind::RequestAllowed, at(0)), writ)
}

fn outcome(writ: u32, decision_seq: Option<u64>) -> AuditRecord {
    let mut r = about(AuditRecord::new(Kind::RequestOutcome, at(1)), writ);
    r.decision_seq = decision_seq;
    r.status = Some(200);
    r.usage = Some(Usage {
        input_tokens: 12,
        output_tokens: 3,
        cached_tokens: None,
    });
    r.cost_usd_micros = Some(40);
    r.latency_ms = Some(9);
    r
}

/// Appends `records` to a fresh log, signs a checkpoint over all of them and verifies it.
fn verify(records: Vec<AuditRecord>) -> Result<Summary, Problem> {
    let key = key();
    let mut log = AuditLog::new("i-pairs", ORIGIN).unwrap();
    let lines: Vec<String> = records.into_iter().map(|r| log.append(r).0).collect();
    let checkpoint = log.checkpoint(&key);
    let lines: Vec<&str> = lines.iter().map(String::as_str).collect();
    verify_log(&lines, &[&checkpoint], &key.verifier_key(), ORIGIN, None)
}

#[test]
fn a_log_of_interleaved_pairs_verifies_and_counts_open_decisions() {
    let mut denied = about(AuditRecord::new(Kind::RequestDenied, at(2)), 9);
    denied.status = Some(429);
    let summary = verify(vec![
        decision(1), // 0
        decision(2), // 1: two requests in flight at once
        outcome(2, Some(1)),
        denied, // 3: a refusal has one record
        outcome(1, Some(0)),
        decision(3), // 5: still in flight when the log ended
    ])
    .unwrap();
    assert_eq!(summary.records, 6);
    assert_eq!(summary.open_decisions, 1);
}

#[test]
fn best_effort_records_are_not_open_decisions() {
    let mut one = decision(1);
    one.status = Some(200);
    assert_eq!(verify(vec![one]).unwrap().open_decisions, 0);
}

#[test]
fn an_outcome_naming_no_earlier_record_has_no_decision() {
    for link in [None, Some(1), Some(2), Some(99)] {
        assert_eq!(
            verify(vec![decision(1), outcome(1, link)]),
            Err(Problem::OutcomeWithoutDecision { seq: 1 }),
            "decision_seq {link:?}"
        );
    }
}

#[test]
fn an_outcome_pointing_at_a_record_that_is_not_its_decision_is_mislinked() {
    let mut denied = decision(1);
    denied.kind = Kind::RequestDenied;
    let mut best_effort = decision(1);
    best_effort.status = Some(200);
    let mut other_tenant = decision(1);
    other_tenant.tenant = Some("globex".into());
    let mut other_operation = decision(1);
    other_operation.operation = Some("chat.completions".into());
    for (what, records) in [
        ("a refusal", vec![denied, outcome(1, Some(0))]),
        (
            "a best-effort record with its own outcome",
            vec![best_effort, outcome(1, Some(0))],
        ),
        (
            "another writ's decision",
            vec![decision(2), outcome(1, Some(0))],
        ),
        (
            "another tenant's decision",
            vec![other_tenant, outcome(1, Some(0))],
        ),
        (
            "another operation's decision",
            vec![other_operation, outcome(1, Some(0))],
        ),
        (
            "another outcome",
            vec![decision(1), outcome(1, Some(0)), outcome(1, Some(1))],
        ),
    ] {
        let seq = records.len() as u64 - 1;
        assert_eq!(
            verify(records),
            Err(Problem::OutcomeMislinked {
                seq,
                decision: seq - 1
            }),
            "{what}"
        );
    }
}

#[test]
fn a_decision_ended_twice_is_mislinked_at_the_second_outcome() {
    assert_eq!(
        verify(vec![decision(1), outcome(1, Some(0)), outcome(1, Some(0))]),
        Err(Problem::OutcomeMislinked {
            seq: 2,
            decision: 0
        })
    );
}

#[test]
fn the_link_is_part_of_the_signed_line() {
    let line = {
        let mut log = AuditLog::new("i-pairs", ORIGIN).unwrap();
        log.append(decision(1));
        log.append(outcome(1, Some(0))).0
    };
    assert!(
        line.contains(r#""kind":"request_outcome","decision_seq":0,"#),
        "{line}"
    );
    assert_eq!(AuditRecord::from_line(&line).unwrap().decision_seq, Some(0));
}
