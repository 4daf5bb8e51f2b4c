//! `writ audit`: verify, export, tail, prove and key, against a log written with
//! `writ-audit` directly (no gateway) into the default SQLite sink.
#![allow(clippy::unwrap_used)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, UNIX_EPOCH};

use serde_json::Value;
use writ_audit::merkle::{self, Hash};
use writ_audit::sink::{CheckpointLine, Sink};
use writ_audit::{AuditKey, AuditLog, AuditRecord, Kind, VerifierKey, checkpoint};
use writ_gateway::audit::{load_key, origin};
use writ_store::DataDir;

const BIN: &str = env!("CARGO_BIN_EXE_writ");
const A: &str = "inst-a";
const B: &str = "inst-b";

fn writ(dir: &Path, args: &[&str]) -> Output {
    Command::new(BIN)
        .args(args)
        .current_dir(dir)
        .env("WRIT_LOG", "warn")
        .env_remove("WRIT_CONFIG")
        .output()
        .unwrap()
}

fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

fn ok(out: Output) -> String {
    assert!(out.status.success(), "{}", stderr(&out));
    stdout(&out)
}

/// Runs `writ` expecting exit code 1 and no panic; returns stderr.
fn fails(out: Output) -> String {
    let err = stderr(&out);
    assert_eq!(
        out.status.code(),
        Some(1),
        "stdout: {}\nstderr: {err}",
        stdout(&out)
    );
    assert!(!err.contains("panicked"), "{err}");
    err
}

/// A record of `tenant` at `hours` past the epoch.
fn record(tenant: &str, hours: u64) -> AuditRecord {
    AuditRecord {
        tenant: Some(tenant.to_string()),
        agent: Some("bot".to_string()),
        model: Some("gpt-4o".to_string()),
        status: Some(200),
        ..AuditRecord::new(
            Kind::RequestAllowed,
            UNIX_EPOCH + Duration::from_secs(hours * 3600),
        )
    }
}

/// Appends records to `log`, returning their lines.
fn append(log: &mut AuditLog, records: impl IntoIterator<Item = AuditRecord>) -> Vec<String> {
    records.into_iter().map(|r| log.append(r).0).collect()
}

/// Writes two instances' logs into `<dir>/writ-data/audit.db`, signed with the data
/// directory's audit key:
/// - `inst-a`: 10 records (tenants acme, globex alternating; at 0h, 2h, …, 18h),
///   checkpoints at 6 and 10;
/// - `inst-b`: 3 records (at 1h, 3h, 5h), a checkpoint at 2: one unsigned record.
fn build(dir: &Path) -> AuditKey {
    let data = DataDir::open_or_create(dir.join("writ-data")).unwrap();
    let key = load_key(&data).unwrap();
    let mut a = AuditLog::new(A, origin(A)).unwrap();
    let mut b = AuditLog::new(B, origin(B)).unwrap();
    let tenant = |i: u64| {
        if i.is_multiple_of(2) {
            "acme"
        } else {
            "globex"
        }
    };
    let a_first = append(&mut a, (0..6).map(|i| record(tenant(i), 2 * i)));
    let a_cp6 = a.checkpoint(&key);
    let a_rest = append(&mut a, (6..10).map(|i| record(tenant(i), 2 * i)));
    let a_cp10 = a.checkpoint(&key);
    let b_first = append(&mut b, (0..2).map(|i| record("acme", 2 * i + 1)));
    let b_cp2 = b.checkpoint(&key);
    let b_rest = append(&mut b, [record("acme", 5)]);
    tokio::runtime::Runtime::new().unwrap().block_on(async {
        let sink = Sink::sqlite(&data.path().join("audit.db")).await.unwrap();
        sink.append(A, 0, &a_first).await.unwrap();
        sink.put_checkpoint(A, 6, &a_cp6).await.unwrap();
        sink.append(B, 0, &b_first).await.unwrap();
        sink.put_checkpoint(B, 2, &b_cp2).await.unwrap();
        sink.append(A, 6, &a_rest).await.unwrap();
        sink.put_checkpoint(A, 10, &a_cp10).await.unwrap();
        sink.append(B, 2, &b_rest).await.unwrap();
        if let Sink::Sqlite(pool, _) = sink {
            pool.close().await;
        }
    });
    key
}

/// Exports the log to `<dir>/<name>` and returns its lines.
fn export(dir: &Path, name: &str) -> Vec<String> {
    ok(writ(dir, &["audit", "export", "--out", name]));
    std::fs::read_to_string(dir.join(name))
        .unwrap()
        .lines()
        .map(str::to_string)
        .collect()
}

fn write_lines(path: &Path, lines: &[String]) -> PathBuf {
    std::fs::write(path, lines.join("\n") + "\n").unwrap();
    path.to_path_buf()
}

fn field(line: &str, name: &str) -> Value {
    serde_json::from_str::<Value>(line).unwrap()[name].clone()
}

/// Position in `lines` of `instance`'s record `seq`.
fn record_index(lines: &[String], instance: &str, seq: u64) -> usize {
    lines
        .iter()
        .position(|l| field(l, "instance") == instance && field(l, "seq") == seq)
        .unwrap()
}

#[test]
fn verifies_the_sink_and_its_export() {
    let dir = tempfile::tempdir().unwrap();
    let key = build(dir.path());

    let out = ok(writ(dir.path(), &["audit", "verify"]));
    assert!(
        out.contains("instance inst-a: 10 records, checkpoint at 10, ok; 0 unsigned"),
        "{out}"
    );
    assert!(
        out.contains("instance inst-b: 3 records, checkpoint at 2, ok; 1 unsigned"),
        "{out}"
    );

    let lines = export(dir.path(), "f.jsonl");
    assert_eq!(lines.len(), 10 + 3 + 3, "records and checkpoints");
    let out = ok(writ(
        dir.path(),
        &["audit", "verify", "--from-file", "f.jsonl"],
    ));
    assert_eq!(out.lines().count(), 2, "{out}");

    // An auditor with only the export and the verifier key.
    let vkey = ok(writ(dir.path(), &["audit", "key"]));
    let vkey = vkey.trim();
    assert_eq!(VerifierKey::parse(vkey).unwrap(), key.verifier_key());
    let elsewhere = tempfile::tempdir().unwrap();
    std::fs::copy(dir.path().join("f.jsonl"), elsewhere.path().join("f.jsonl")).unwrap();
    ok(writ(
        elsewhere.path(),
        &[
            "audit",
            "verify",
            "--from-file",
            "f.jsonl",
            "--public-key",
            vkey,
        ],
    ));
    std::fs::write(elsewhere.path().join("vkey"), format!("{vkey}\n")).unwrap();
    ok(writ(
        elsewhere.path(),
        &[
            "audit",
            "verify",
            "--from-file",
            "f.jsonl",
            "--public-key",
            "@vkey",
        ],
    ));
    // Without a key, and with someone else's.
    let err = fails(writ(
        elsewhere.path(),
        &["audit", "verify", "--from-file", "f.jsonl"],
    ));
    assert!(err.contains("--public-key"), "{err}");
    let other = AuditKey::generate("writ-audit").unwrap().verifier_key();
    let err = fails(writ(
        elsewhere.path(),
        &[
            "audit",
            "verify",
            "--from-file",
            "f.jsonl",
            "--public-key",
            &other.to_string(),
        ],
    ));
    assert!(
        err.contains("instance inst-a: checkpoint 0 is not validly signed by the audit key"),
        "{err}"
    );

    // Rollback: a checkpoint size seen before that the log no longer reaches.
    ok(writ(
        dir.path(),
        &["audit", "verify", "--expect-size", "inst-a=10"],
    ));
    let err = fails(writ(
        dir.path(),
        &["audit", "verify", "--expect-size", "inst-b=3"],
    ));
    assert!(
        err.contains("instance inst-b: checkpoint size 2 rolls back from 3"),
        "{err}"
    );
    let err = fails(writ(
        dir.path(),
        &["audit", "verify", "--expect-size", "inst-c=1"],
    ));
    assert!(err.contains("instance inst-c"), "{err}");
}

#[test]
fn tampering_is_named() {
    let dir = tempfile::tempdir().unwrap();
    build(dir.path());
    let lines = export(dir.path(), "f.jsonl");
    let verify = |name: &str| fails(writ(dir.path(), &["audit", "verify", "--from-file", name]));

    // One byte of record 3's tenant.
    let mut edited = lines.clone();
    let i = record_index(&lines, A, 3);
    edited[i] = edited[i].replacen("\"globex\"", "\"globey\"", 1);
    assert_ne!(edited[i], lines[i]);
    write_lines(&dir.path().join("edited.jsonl"), &edited);
    let err = verify("edited.jsonl");
    assert!(
        err.contains(&format!(
            "instance inst-a: record 3 was altered (line {} of edited.jsonl)",
            i + 1
        )),
        "{err}"
    );
    assert!(!err.contains("inst-b"), "the other instance is fine: {err}");

    // Record 4 deleted.
    let mut deleted = lines.clone();
    let i = record_index(&lines, A, 4);
    deleted.remove(i);
    write_lines(&dir.path().join("deleted.jsonl"), &deleted);
    let err = verify("deleted.jsonl");
    assert!(
        err.contains("instance inst-a: record 4 is missing"),
        "{err}"
    );

    // The size-10 checkpoint replaced by one, validly signed, over a forked tree.
    let data = DataDir::open_or_create(dir.path().join("writ-data")).unwrap();
    let key = load_key(&data).unwrap();
    let mut fork = AuditLog::new(A, origin(A)).unwrap();
    append(&mut fork, (0..10).map(|i| record("evil", i)));
    let forked = serde_json::to_string(&CheckpointLine {
        checkpoint: fork.checkpoint(&key),
        instance: A.to_string(),
        size: 10,
    })
    .unwrap();
    let mut replaced = lines.clone();
    let i = replaced
        .iter()
        .position(|l| field(l, "instance") == A && field(l, "size") == 10)
        .unwrap();
    replaced[i] = forked;
    write_lines(&dir.path().join("forked.jsonl"), &replaced);
    let err = verify("forked.jsonl");
    assert!(
        err.contains(&format!(
            "instance inst-a: checkpoint 1 (size 10) does not match the records (line {} of forked.jsonl)",
            i + 1
        )),
        "{err}"
    );

    // Garbage and an unparsable line.
    let mut garbled = lines.clone();
    garbled.insert(3, "not json".to_string());
    write_lines(&dir.path().join("garbled.jsonl"), &garbled);
    let err = verify("garbled.jsonl");
    assert!(err.contains("line 4 of garbled.jsonl"), "{err}");
    std::fs::write(dir.path().join("binary"), [0xff, 0xfe, 0x00]).unwrap();
    let err = verify("binary");
    assert!(err.contains("not UTF-8"), "{err}");
    let err = verify("absent.jsonl");
    assert!(err.contains("cannot read absent.jsonl"), "{err}");
}

#[test]
fn proves_inclusion() {
    let dir = tempfile::tempdir().unwrap();
    let key = build(dir.path());
    let lines = export(dir.path(), "f.jsonl");

    for source in [vec![], vec!["--from-file", "f.jsonl"]] {
        let mut args = vec!["audit", "prove", A, "7"];
        args.extend(&source);
        let proof: Value = serde_json::from_str(&ok(writ(dir.path(), &args))).unwrap();
        assert_eq!(
            (proof["instance"].as_str(), proof["seq"].as_u64()),
            (Some(A), Some(7))
        );
        let hash = |v: &Value| -> Hash {
            hex::decode(v.as_str().unwrap())
                .unwrap()
                .try_into()
                .unwrap()
        };
        let leaf = hash(&proof["leaf_hash"]);
        let line = &lines[record_index(&lines, A, 7)];
        assert_eq!(leaf, merkle::leaf_hash(line.as_bytes()));
        let path: Vec<Hash> = proof["proof"]
            .as_array()
            .unwrap()
            .iter()
            .map(hash)
            .collect();
        let size = proof["tree_size"].as_u64().unwrap();
        let root = hash(&proof["root"]);
        assert!(merkle::verify_inclusion(7, size, &leaf, &path, &root));
        // The root is the one the checkpoint signs.
        let cp =
            checkpoint::open(proof["checkpoint"].as_str().unwrap(), &key.verifier_key()).unwrap();
        assert_eq!((cp.size(), *cp.root()), (10, root));
        assert!(!merkle::verify_inclusion(6, size, &leaf, &path, &root));
    }

    // inst-b's record 2 is after its latest checkpoint (size 2).
    let err = fails(writ(dir.path(), &["audit", "prove", B, "2"]));
    assert!(
        err.contains("beyond its latest checkpoint (size 2)"),
        "{err}"
    );
    let err = fails(writ(dir.path(), &["audit", "prove", B, "9"]));
    assert!(err.contains("has no record 9"), "{err}");
    let err = fails(writ(dir.path(), &["audit", "prove", "inst-z", "0"]));
    assert!(err.contains("no records of instance inst-z"), "{err}");
}

#[test]
fn tail_export_filters_and_key() {
    let dir = tempfile::tempdir().unwrap();
    let key = build(dir.path());

    let vkey = ok(writ(dir.path(), &["audit", "key"]));
    assert_eq!(VerifierKey::parse(vkey.trim()).unwrap(), key.verifier_key());

    // The newest three across both instances: inst-a's 7, 8 and 9 (14h, 16h, 18h).
    let out = ok(writ(dir.path(), &["audit", "tail", "-n", "3"]));
    let tail: Vec<&str> = out.lines().collect();
    assert_eq!(tail.len(), 3, "{out}");
    let seqs: Vec<(Value, Value)> = tail
        .iter()
        .map(|l| (field(l, "instance"), field(l, "seq")))
        .collect();
    assert_eq!(
        seqs,
        [7, 8, 9].map(|s| (Value::from(A), Value::from(s))).to_vec()
    );
    assert_eq!(ok(writ(dir.path(), &["audit", "tail"])).lines().count(), 13);

    // Filtered exports: only matching records, no checkpoints, said to be unverifiable.
    let out = writ(dir.path(), &["audit", "export", "--tenant", "acme"]);
    let err = stderr(&out);
    let text = ok(out);
    assert_eq!(text.lines().count(), 5 + 3, "{text}");
    assert!(text.lines().all(|l| field(l, "tenant") == "acme"));
    assert!(err.contains("cannot be verified"), "{err}");
    let out = ok(writ(
        dir.path(),
        &[
            "audit",
            "export",
            "--since",
            "1970-01-01T05:00:00Z",
            "--out",
            "s.jsonl",
        ],
    ));
    assert!(out.is_empty());
    let since = std::fs::read_to_string(dir.path().join("s.jsonl")).unwrap();
    // inst-a at 6h…18h (7 records) and inst-b at 5h.
    assert_eq!(since.lines().count(), 8, "{since}");
    let err = fails(writ(
        dir.path(),
        &["audit", "verify", "--from-file", "s.jsonl"],
    ));
    assert!(err.contains("instance inst-a"), "{err}");
}

#[test]
fn empty_logs_other_sinks_and_bad_input() {
    let dir = tempfile::tempdir().unwrap();
    // Outside a gateway's directory nothing is verified, and nothing is created.
    let err = fails(writ(dir.path(), &["audit", "verify"]));
    assert!(err.contains("no writ data directory at"), "{err}");
    assert!(!dir.path().join("writ-data").exists());
    // A gateway's directory whose log was never written: no success either.
    std::fs::create_dir_all(dir.path().join("writ-data/keys")).unwrap();
    let err = fails(writ(dir.path(), &["audit", "verify"]));
    assert!(err.contains("no audit records in"), "{err}");
    assert!(
        !dir.path().join("writ-data/audit.db").exists(),
        "reading does not create a sink"
    );
    assert_eq!(ok(writ(dir.path(), &["audit", "tail"])), "");
    std::fs::write(dir.path().join("empty.jsonl"), "").unwrap();
    let err = fails(writ(
        dir.path(),
        &["audit", "verify", "--from-file", "empty.jsonl"],
    ));
    assert!(err.contains("no audit records in empty.jsonl"), "{err}");

    for (args, expect) in [
        (
            vec!["audit", "verify", "--public-key", "not-a-key"],
            "--public-key: key string is not in signed-note key format",
        ),
        (
            vec!["audit", "verify", "--public-key", "@missing"],
            "cannot read --public-key file missing",
        ),
        (vec!["audit", "prove", A, "0"], "no audit key"),
    ] {
        let err = fails(writ(dir.path(), &args));
        assert!(err.contains(expect), "{args:?}: {err}");
    }
    // Argument errors are clap's (exit 2), never a panic.
    for args in [
        vec!["audit", "verify", "--expect-size", "inst-a"],
        vec!["audit", "verify", "--expect-size", "inst-a=many"],
        vec!["audit", "export", "--since", "yesterday"],
        vec!["audit", "prove", A, "-1"],
        vec!["audit", "tail", "-n", "x"],
    ] {
        let out = writ(dir.path(), &args);
        assert_eq!(out.status.code(), Some(2), "{args:?}");
        assert!(!stderr(&out).contains("panicked"), "{args:?}");
    }
    let private = AuditKey::generate("writ-audit").unwrap();
    let err = fails(writ(
        dir.path(),
        &[
            "audit",
            "verify",
            "--public-key",
            private.to_private_string().as_str(),
        ],
    ));
    assert!(err.contains("that is a private key"), "{err}");
    assert!(!err.contains(private.to_private_string().as_str()));

    // A file sink, configured.
    let logged = tempfile::tempdir().unwrap();
    build(logged.path());
    let lines = export(logged.path(), "f.jsonl");
    write_lines(&dir.path().join("audit.jsonl"), &lines);
    std::fs::create_dir_all(dir.path().join("writ-data/keys")).unwrap();
    std::fs::copy(
        logged.path().join("writ-data/keys/audit.key"),
        dir.path().join("writ-data/keys/audit.key"),
    )
    .unwrap();
    std::fs::write(
        dir.path().join("writ.toml"),
        "[audit]\nsink = \"file\"\nfile = \"audit.jsonl\"\n",
    )
    .unwrap();
    let out = ok(writ(
        dir.path(),
        &["audit", "verify", "--config", "writ.toml"],
    ));
    assert_eq!(out.lines().count(), 2, "{out}");
    let proof = ok(writ(
        dir.path(),
        &["audit", "prove", A, "0", "--config", "writ.toml"],
    ));
    assert!(proof.contains("\"tree_size\": 10"), "{proof}");
}

/// A strict-mode request's two records: its decision and the outcome naming it.
fn pair(writ: &str, decision_seq: u64) -> [AuditRecord; 2] {
    let decision = AuditRecord {
        tenant: Some("acme".to_string()),
        agent: Some("bot".to_string()),
        writ: Some(writ.to_string()),
        upstream: Some("openai".to_string()),
        operation: Some("chat".to_string()),
        ..AuditRecord::new(Kind::RequestAllowed, UNIX_EPOCH)
    };
    let outcome = AuditRecord {
        kind: Kind::RequestOutcome,
        decision_seq: Some(decision_seq),
        status: Some(200),
        ..decision.clone()
    };
    [decision, outcome]
}

/// Writes `records` as instance `inst-p`'s log in `<dir>/writ-data/audit.db`, signed.
fn build_log(dir: &Path, records: Vec<AuditRecord>) {
    let data = DataDir::open_or_create(dir.join("writ-data")).unwrap();
    let key = load_key(&data).unwrap();
    let mut log = AuditLog::new("inst-p", origin("inst-p")).unwrap();
    let n = records.len() as u64;
    let lines = append(&mut log, records);
    let note = log.checkpoint(&key);
    tokio::runtime::Runtime::new().unwrap().block_on(async {
        let sink = Sink::sqlite(&data.path().join("audit.db")).await.unwrap();
        sink.append("inst-p", 0, &lines).await.unwrap();
        sink.put_checkpoint("inst-p", n, &note).await.unwrap();
        if let Sink::Sqlite(pool, _) = sink {
            pool.close().await;
        }
    });
}

#[test]
fn verifies_decision_and_outcome_pairs() {
    // Two requests, the second in flight when the log ended; export shows the link.
    let dir = tempfile::tempdir().unwrap();
    let [d1, o1] = pair("w1", 0);
    let [d2, _] = pair("w2", 2);
    build_log(dir.path(), vec![d1, o1, d2]);
    let out = ok(writ(dir.path(), &["audit", "verify"]));
    assert!(
        out.contains("instance inst-p: 3 records, checkpoint at 3, ok")
            && out.contains("1 allowed request(s) with no outcome record"),
        "{out}"
    );
    let lines = export(dir.path(), "pairs.jsonl");
    assert_eq!(field(&lines[1], "kind"), "request_outcome");
    assert_eq!(field(&lines[1], "decision_seq"), 0);

    // An outcome pointing at another request's decision, signed all the same (a gateway
    // bug or a key holder's forgery): named, with its line.
    let dir = tempfile::tempdir().unwrap();
    let [d1, _] = pair("w1", 0);
    let [d2, o2] = pair("w2", 0);
    build_log(dir.path(), vec![d1, d2, o2]);
    let err = fails(writ(dir.path(), &["audit", "verify"]));
    assert!(
        err.contains(
            "instance inst-p: outcome record 2 points at record 0, which is not its decision"
        ),
        "{err}"
    );

    // An outcome whose decision is missing.
    let dir = tempfile::tempdir().unwrap();
    let [_, o1] = pair("w1", 5);
    build_log(dir.path(), vec![o1]);
    let err = fails(writ(dir.path(), &["audit", "verify"]));
    assert!(
        err.contains("instance inst-p: outcome record 0 has no decision record before it"),
        "{err}"
    );
}
