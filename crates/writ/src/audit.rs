//! `writ audit`: read, export and verify the tamper-evident audit log.
//!
//! Every command reads the log from the configured sink (`[audit]` in the config: SQLite
//! `audit.db` in the data directory by default, PostgreSQL or a JSON-lines file) or, where
//! it takes `--from-file`, from an export. Verification needs only the log and the
//! verifier key, so an auditor can run it on an export with `--public-key`, away from the
//! gateway's data directory.

use std::io::{self, Write as _};
use std::path::{Path, PathBuf};
use std::time::SystemTime;

use anyhow::{Context, anyhow, bail};
use writ_audit::merkle::{self, Hash};
use writ_audit::sink::{CheckpointLine, Sink, split_export};
use writ_audit::{Problem, Summary, VerifierKey, checkpoint, verify_export};
use writ_gateway::audit::{load_key, open_sink, origin};
use writ_gateway::config::{AuditSinkConfig, Config};
use writ_store::DataDir;

use crate::settings::StateArgs;

/// `writ audit …` commands.
#[derive(Debug, clap::Subcommand)]
pub enum AuditCommand {
    /// Print the verifier key of this deployment's audit key (`name+id+base64`): give it
    /// to auditors, who verify exports with `--public-key`.
    Key {
        #[command(flatten)]
        state: StateArgs,
    },
    /// Verify the log: every record, the hash chain and every signed checkpoint, per
    /// gateway instance. Exits 1 naming the first problem of each instance that fails.
    Verify(VerifyArgs),
    /// Write the log as JSON lines (records and checkpoints), to stdout or `--out`.
    /// An unfiltered export verifies with `writ audit verify --from-file`.
    Export(ExportArgs),
    /// Print the latest records as JSON lines.
    Tail {
        /// How many records.
        #[arg(short = 'n', long = "lines", default_value_t = 20)]
        lines: usize,
        #[command(flatten)]
        state: StateArgs,
    },
    /// Prove that one record is in its instance's log: an inclusion proof against the
    /// latest signed checkpoint, as JSON.
    Prove(ProveArgs),
}

/// Where the log and the key come from.
#[derive(Debug, clap::Args)]
pub struct LogArgs {
    /// Read the log from this JSON-lines file (a `writ audit export`) instead of the
    /// configured sink.
    #[arg(long, value_name = "FILE")]
    from_file: Option<PathBuf>,
    /// The verifier key (`name+id+base64`, as `writ audit key` prints it), or `@FILE`
    /// holding it; defaults to the data directory's audit key.
    #[arg(long, value_name = "KEY")]
    public_key: Option<String>,
    #[command(flatten)]
    state: StateArgs,
}

/// Options of `writ audit verify`.
#[derive(Debug, clap::Args)]
pub struct VerifyArgs {
    /// A checkpoint size already seen for an instance (from an earlier verification or a
    /// witness): a log rolled back below it fails. Repeatable.
    #[arg(long, value_name = "INSTANCE=N", value_parser = parse_expect)]
    expect_size: Vec<(String, u64)>,
    #[command(flatten)]
    log: LogArgs,
}

/// Options of `writ audit export`.
#[derive(Debug, clap::Args)]
pub struct ExportArgs {
    /// Write to this file instead of stdout.
    #[arg(long, value_name = "FILE")]
    out: Option<PathBuf>,
    /// Only records of this tenant (the export then cannot be verified).
    #[arg(long)]
    tenant: Option<String>,
    /// Only records at or after this time, RFC 3339 (the export then cannot be verified).
    #[arg(long, value_name = "RFC3339", value_parser = humantime::parse_rfc3339_weak)]
    since: Option<SystemTime>,
    #[command(flatten)]
    state: StateArgs,
}

/// Options of `writ audit prove`.
#[derive(Debug, clap::Args)]
pub struct ProveArgs {
    /// The gateway instance whose log holds the record.
    instance: String,
    /// The record's sequence number in that log.
    seq: u64,
    #[command(flatten)]
    log: LogArgs,
}

fn parse_expect(s: &str) -> Result<(String, u64), String> {
    let (instance, size) = s
        .rsplit_once('=')
        .ok_or_else(|| format!("`{s}` is not INSTANCE=N"))?;
    if instance.is_empty() {
        return Err(format!("`{s}` names no instance"));
    }
    let size = size
        .parse()
        .map_err(|_| format!("`{size}` is not a record count"))?;
    Ok((instance.to_string(), size))
}

pub async fn run(cmd: AuditCommand) -> anyhow::Result<()> {
    match cmd {
        AuditCommand::Key { state } => {
            let (_, data) = state.open()?;
            let key = load_key(&data).map_err(anyhow::Error::msg)?;
            println!("{}", key.verifier_key());
            Ok(())
        }
        AuditCommand::Verify(args) => verify(args).await,
        AuditCommand::Export(args) => export(args).await,
        AuditCommand::Tail { lines, state } => {
            let config = state.load()?;
            let log = sink_lines(&config).await?;
            emit(&tail(&log, lines), None)
        }
        AuditCommand::Prove(args) => prove(args).await,
    }
}

/// The log's lines and, when read from a file, its name (for pointing at lines).
struct Log {
    lines: Vec<String>,
    file: Option<PathBuf>,
}

impl Log {
    async fn read(args: &LogArgs, config: &Config) -> anyhow::Result<Self> {
        match &args.from_file {
            Some(path) => Ok(Self {
                lines: file_lines(path)?,
                file: Some(path.clone()),
            }),
            None => Ok(Self {
                lines: sink_lines(config).await?,
                file: None,
            }),
        }
    }

    /// Where a line is, for messages: `line N of FILE`; `None` for a sink.
    fn line(&self, line: Option<usize>) -> Option<String> {
        match (&self.file, line) {
            (Some(file), Some(n)) => Some(format!("line {} of {}", n + 1, file.display())),
            _ => None,
        }
    }
}

/// A JSON-lines file's lines, exactly as stored (only the `\n` separators removed), so
/// that verification sees every changed byte.
fn file_lines(path: &Path) -> anyhow::Result<Vec<String>> {
    let bytes = std::fs::read(path).with_context(|| format!("cannot read {}", path.display()))?;
    let text = String::from_utf8(bytes).map_err(|_| {
        anyhow!(
            "{} is not a JSON-lines audit export (not UTF-8)",
            path.display()
        )
    })?;
    let mut lines: Vec<String> = text.split('\n').map(str::to_string).collect();
    if lines.last().is_some_and(String::is_empty) {
        lines.pop();
    }
    Ok(lines)
}

/// The whole log from the configured sink, in the export format. A sink never written to
/// is an empty log (and is not created).
async fn sink_lines(config: &Config) -> anyhow::Result<Vec<String>> {
    if let Some(d) = config
        .deferred
        .iter()
        .find(|d| d.field.starts_with("audit."))
    {
        bail!(
            "`{}` references ${{env:{}}}, which is not set: set it to read the audit log",
            d.field,
            d.variable
        );
    }
    // The gateway's state must be here, even when its sink was never written to.
    let data = DataDir::open_existing(&config.data_dir)?;
    let unwritten = match &config.audit.sink {
        AuditSinkConfig::Sqlite => !config.data_dir.join("audit.db").exists(),
        AuditSinkConfig::File(path) => !path.exists(),
        AuditSinkConfig::Postgres(_) => false,
    };
    if unwritten {
        return Ok(Vec::new());
    }
    let sink = open_sink(&config.audit, &data)
        .await
        .map_err(anyhow::Error::msg)?;
    let lines = sink.export().await;
    match &sink {
        Sink::Sqlite(pool, _) => pool.close().await,
        Sink::Postgres(pool) => pool.close().await,
        Sink::File(..) => {}
    }
    Ok(lines?)
}

/// The verifier key: `--public-key` (a key string or `@FILE`), else the data directory's.
fn verifier_key(args: &LogArgs, config: &Config) -> anyhow::Result<VerifierKey> {
    let Some(given) = &args.public_key else {
        let path = config.data_dir.join("keys").join("audit.key");
        if !path.exists() {
            bail!(
                "no audit key at {}: pass the verifier key with --public-key",
                path.display()
            );
        }
        let data = DataDir::open_existing(&config.data_dir)?;
        return Ok(load_key(&data).map_err(anyhow::Error::msg)?.verifier_key());
    };
    let text = match given.strip_prefix('@') {
        Some(file) => std::fs::read_to_string(file)
            .with_context(|| format!("cannot read --public-key file {file}"))?,
        None => given.clone(),
    };
    if text.trim().starts_with("PRIVATE+KEY+") {
        bail!("--public-key: that is a private key; give the verifier key `writ audit key` prints");
    }
    VerifierKey::parse(&text).map_err(|e| anyhow!("--public-key: {e}"))
}

fn is_checkpoint(line: &str) -> bool {
    serde_json::from_str::<CheckpointLine>(line).is_ok()
}

async fn verify(args: VerifyArgs) -> anyhow::Result<()> {
    let config = args.log.state.load()?;
    let log = Log::read(&args.log, &config).await?;
    if log.lines.iter().all(|l| l.trim().is_empty()) && args.expect_size.is_empty() {
        // Nothing to check a signature of; a deployment that never audited may have no
        // key yet. A key given is still checked, so a typo does not go unnoticed.
        if args.log.public_key.is_some() {
            verifier_key(&args.log, &config)?;
        }
        let place = match (&log.file, &config.audit.sink) {
            (Some(file), _) => file.display().to_string(),
            (None, AuditSinkConfig::Sqlite) => {
                config.data_dir.join("audit.db").display().to_string()
            }
            (None, AuditSinkConfig::File(path)) => path.display().to_string(),
            (None, AuditSinkConfig::Postgres(_)) => "the PostgreSQL audit sink".to_string(),
        };
        bail!(
            "no audit records in {place}: nothing was verified (a gateway writes its log \
             there once it serves; check --config / --data-dir, or verify an export with \
             --from-file)"
        );
    }
    let key = verifier_key(&args.log, &config)?;
    let report = verify_export(&log.lines, &key, origin, &args.expect_size);

    let mut failed = 0usize;
    if let Some(&first) = report.unreadable.first() {
        // Lines that are neither a checkpoint nor a record naming its instance.
        failed += 1;
        let first = log
            .line(Some(first))
            .map(|l| format!(", the first at {l}"))
            .unwrap_or_default();
        eprintln!(
            "{} line(s) are neither audit records nor checkpoints (unreadable JSON or no \
             instance){first}",
            report.unreadable.len(),
        );
    }
    for verdict in &report.instances {
        let instance = &verdict.instance;
        match &verdict.outcome {
            Ok(summary) => println!("{}", ok_line(instance, summary)),
            Err(problem) => {
                failed += 1;
                let at = match (log.line(verdict.line), problem) {
                    // The line there holds a later record; the missing one was before it.
                    (Some(l), Problem::MissingRecord { .. }) => format!(" (before {l})"),
                    (Some(l), _) => format!(" ({l})"),
                    (None, _) => String::new(),
                };
                eprintln!("instance {instance}: {problem}{at}");
            }
        }
    }
    for (instance, size) in &report.absent {
        failed += 1;
        eprintln!(
            "instance {instance}: expected a checkpoint of at least {size} records, but \
             the log holds nothing of this instance"
        );
    }
    if failed > 0 {
        bail!("the audit log did not verify ({failed} problem(s) above)");
    }
    Ok(())
}

fn ok_line(instance: &str, s: &Summary) -> String {
    let checkpoint = if s.checkpoints == 0 {
        "no checkpoint".to_string()
    } else {
        format!("checkpoint at {}", s.signed_size)
    };
    let open = match s.open_decisions {
        0 => String::new(),
        n => format!(
            "; {n} allowed request(s) with no outcome record (in flight when the log ended)"
        ),
    };
    format!(
        "instance {instance}: {} records, {checkpoint}, ok; {} unsigned record(s) after it{open}",
        s.records,
        s.unsigned_records()
    )
}

async fn export(args: ExportArgs) -> anyhow::Result<()> {
    let config = args.state.load()?;
    let lines = sink_lines(&config).await?;
    let filtered = args.tenant.is_some() || args.since.is_some();
    if !filtered {
        emit(&lines, args.out.as_deref())?;
        if let Some(out) = &args.out {
            let checkpoints = lines.iter().filter(|l| is_checkpoint(l)).count();
            eprintln!(
                "wrote {} records and {checkpoints} checkpoints to {}; check it with \
                 `writ audit verify --from-file {}`",
                lines.len() - checkpoints,
                out.display(),
                out.display()
            );
        }
        return Ok(());
    }
    let records: Vec<&String> = lines.iter().filter(|l| !is_checkpoint(l)).collect();
    let kept: Vec<String> = records
        .iter()
        .filter(|l| matches(l, args.tenant.as_deref(), args.since))
        .map(|l| (*l).clone())
        .collect();
    emit(&kept, args.out.as_deref())?;
    eprintln!(
        "note: filtered export ({} of {} records, no checkpoints): it cannot be verified; \
         export without --tenant/--since for a verifiable log",
        kept.len(),
        records.len()
    );
    Ok(())
}

/// Whether a record line is of `tenant` and at or after `since`.
fn matches(line: &str, tenant: Option<&str>, since: Option<SystemTime>) -> bool {
    let Ok(v) = serde_json::from_str::<serde_json::Value>(line) else {
        return false;
    };
    if let Some(tenant) = tenant
        && v.get("tenant").and_then(|t| t.as_str()) != Some(tenant)
    {
        return false;
    }
    if let Some(since) = since {
        let at = v
            .get("time")
            .and_then(|t| t.as_str())
            .and_then(|t| humantime::parse_rfc3339_weak(t).ok());
        if at.is_none_or(|at| at < since) {
            return false;
        }
    }
    true
}

/// The last `n` record lines, oldest first, across instances by record time.
fn tail(lines: &[String], n: usize) -> Vec<String> {
    let mut records: Vec<(String, &String)> = lines
        .iter()
        .filter(|l| !l.trim().is_empty() && !is_checkpoint(l))
        .map(|l| {
            let time = serde_json::from_str::<serde_json::Value>(l)
                .ok()
                .and_then(|v| v.get("time")?.as_str().map(str::to_string))
                .unwrap_or_default();
            (time, l)
        })
        .collect();
    // Record times are fixed-width RFC 3339 UTC, so they sort as strings; the sort is
    // stable, keeping each instance's order for equal times.
    records.sort_by(|a, b| a.0.cmp(&b.0));
    let skip = records.len().saturating_sub(n);
    records
        .into_iter()
        .skip(skip)
        .map(|(_, l)| l.clone())
        .collect()
}

/// Writes lines to `out`, or to stdout (a closed pipe ends the output quietly).
fn emit(lines: &[String], out: Option<&Path>) -> anyhow::Result<()> {
    let mut text = String::new();
    for line in lines {
        text.push_str(line);
        text.push('\n');
    }
    match out {
        Some(path) => {
            std::fs::write(path, text).with_context(|| format!("cannot write {}", path.display()))
        }
        None => {
            let mut stdout = io::stdout().lock();
            match stdout
                .write_all(text.as_bytes())
                .and_then(|()| stdout.flush())
            {
                Err(e) if e.kind() != io::ErrorKind::BrokenPipe => Err(e.into()),
                _ => Ok(()),
            }
        }
    }
}

async fn prove(args: ProveArgs) -> anyhow::Result<()> {
    let config = args.log.state.load()?;
    let key = verifier_key(&args.log, &config)?;
    let log = Log::read(&args.log, &config).await?;
    let instance = &args.instance;
    let seq = args.seq;
    let groups = split_export(&log.lines);
    let Some((_, records, checkpoints)) = groups.iter().find(|(i, _, _)| i == instance) else {
        bail!("the audit log holds no records of instance {instance}");
    };
    let records_n = records.len() as u64;
    if seq >= records_n {
        bail!("instance {instance} has no record {seq} (it has {records_n} records)");
    }
    let Some(note) = checkpoints.last() else {
        bail!("instance {instance} has no checkpoint yet; prove record {seq} after the next one");
    };
    let index = checkpoints.len() - 1;
    let cp = checkpoint::open(note, &key).map_err(|e| {
        anyhow!("instance {instance}: checkpoint {index} (the latest) does not verify: {e}")
    })?;
    if cp.origin() != origin(instance) {
        bail!("instance {instance}: checkpoint {index} (the latest) is for another origin");
    }
    let size = cp.size();
    if seq >= size {
        bail!(
            "record {seq} of instance {instance} is beyond its latest checkpoint (size {size}); \
             prove it after the next checkpoint"
        );
    }
    let covered = usize::try_from(size)
        .ok()
        .and_then(|n| records.get(..n))
        .ok_or_else(|| {
            anyhow!(
                "instance {instance}: checkpoint {index} covers {size} records but the log has \
                 {records_n}; run `writ audit verify`"
            )
        })?;
    let leaves: Vec<Hash> = covered
        .iter()
        .map(|l| merkle::leaf_hash(l.as_bytes()))
        .collect();
    if merkle::root(&leaves) != *cp.root() {
        bail!(
            "instance {instance}: checkpoint {index} (size {size}) does not match the records; \
             run `writ audit verify`"
        );
    }
    let leaf = leaves[usize::try_from(seq)?];
    let proof = merkle::inclusion_proof(seq, &leaves);
    if !merkle::verify_inclusion(seq, size, &leaf, &proof, cp.root()) {
        bail!("the inclusion proof of record {seq} does not verify (a bug; please report it)");
    }
    let out = serde_json::json!({
        "instance": instance,
        "seq": seq,
        "leaf_hash": hex::encode(leaf),
        "tree_size": size,
        "root": hex::encode(cp.root()),
        "proof": proof.iter().map(hex::encode).collect::<Vec<_>>(),
        "checkpoint": note,
    });
    println!("{}", serde_json::to_string_pretty(&out)?);
    Ok(())
}
