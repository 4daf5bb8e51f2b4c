//! `writ token`: mint a writ from the local data directory, or show what one holds.

use std::io::Read;
use std::time::UNIX_EPOCH;

use anyhow::{Context, bail};
use writ_gateway::audit::operator_log::{Operator, OperatorLog};
use writ_store::DataDir;
use writ_token::{Clock, MintRequest, RevocationSet, SystemClock, decode, mint, parse_grants};

/// `writ token …` commands.
#[derive(Debug, clap::Subcommand)]
pub enum TokenCommand {
    /// Mint a writ for a registered agent and print it.
    Mint(MintArgs),
    /// Verify a writ against this gateway's keys and print its blocks.
    Inspect(InspectArgs),
    /// Append a block of grants to a writ, offline, and print the narrower writ.
    Attenuate(AttenuateArgs),
}

/// Options of `writ token attenuate`.
#[derive(Debug, clap::Args)]
pub struct AttenuateArgs {
    /// The writ, or `-` to read it from standard input.
    writ: String,
    /// A grant as JSON (object or array); repeat for more. The result allows only what
    /// both the writ and these grants allow.
    #[arg(long = "grant", required = true)]
    grants: Vec<String>,
}

/// Options of `writ token mint`.
#[derive(Debug, clap::Args)]
pub struct MintArgs {
    /// The agent to issue to.
    #[arg(long)]
    agent: String,
    /// A grant as JSON (an object or an array of objects); repeat for more grants.
    #[arg(long = "grant", required = true)]
    grants: Vec<String>,
    /// Lifetime, such as 30s, in whole seconds: a fraction is dropped (1500ms is 1s), and
    /// at least 1s. At most the agent's and the config's maximum, which is also the
    /// default.
    #[arg(long, value_parser = parse_ttl)]
    ttl: Option<std::time::Duration>,
    /// Tenant of the agent; defaults to the config's.
    #[arg(long)]
    tenant: Option<String>,
    #[command(flatten)]
    state: crate::settings::StateArgs,
}

/// A `--ttl`: a duration rounded down to whole seconds (writ expiry times count whole
/// seconds, and rounding down never makes a writ outlive what was asked), at least 1s.
fn parse_ttl(text: &str) -> Result<std::time::Duration, String> {
    let asked = humantime::parse_duration(text).map_err(|e| e.to_string())?;
    if asked.as_secs() == 0 {
        return Err("a writ lives at least 1s (its expiry counts whole seconds)".to_string());
    }
    Ok(std::time::Duration::from_secs(asked.as_secs()))
}

/// Options of `writ token inspect`.
#[derive(Debug, clap::Args)]
pub struct InspectArgs {
    /// The writ, or `-` to read it from standard input.
    writ: String,
    #[command(flatten)]
    state: crate::settings::StateArgs,
}

pub async fn run(cmd: TokenCommand) -> anyhow::Result<()> {
    match cmd {
        TokenCommand::Mint(args) => mint_command(args).await,
        TokenCommand::Inspect(args) => inspect_command(args),
        TokenCommand::Attenuate(args) => {
            let text = read_writ_arg(args.writ)?;
            let mut grants = Vec::new();
            for json in &args.grants {
                grants.extend(parse_grants(json).context("invalid --grant")?);
            }
            println!("{}", writ_token::attenuate(&text, &grants)?);
            Ok(())
        }
    }
}

async fn mint_command(args: MintArgs) -> anyhow::Result<()> {
    let config = args.state.load()?;
    let mut grants = Vec::new();
    for json in &args.grants {
        grants.extend(parse_grants(json).context("invalid --grant")?);
    }
    let data = DataDir::open_existing(&config.data_dir)?;
    let keys = data.root_keys()?;
    let tenant = crate::settings::tenant(args.tenant.as_deref(), &config)?;
    let store = writ_gateway::open_store(&config, &data).await?;
    let agent = store.agent(&tenant, &args.agent).await;
    let revocations = store.revocations().await;
    store.close().await;
    let Some(agent) = agent? else {
        bail!(
            "no agent `{}` in tenant `{tenant}` (the demo agent is registered by `writ serve --demo`)",
            args.agent
        );
    };
    // As the token endpoint: a revoked agent (or one of a revoked tenant) gets no writ.
    if RevocationSet::from_revocations(&revocations?).refuses_agent(&tenant, &agent.name) {
        bail!(
            "agent revoked: {tenant}/{} (or its tenant) is revoked, so no writ is issued to it; \
             `writ revoke --list` shows the revocation and `writ revoke --lift ID` lifts it",
            agent.name
        );
    }
    let max_ttl = agent.max_ttl.min(config.max_ttl);
    let (writ, claims) = mint(
        &keys.signing,
        &MintRequest {
            tenant: &tenant,
            agent: &agent.name,
            ceiling: &agent.ceiling,
            grants: &grants,
            ttl: args.ttl.unwrap_or(max_ttl),
            max_ttl,
            now: SystemClock.now(),
            cnf_jkt: None,
            audience: None,
        },
    )?;
    // One record per writ issued, as the token endpoint writes, naming the operator.
    let mut log = OperatorLog::new(&config.audit, &data, Operator::from_env())?;
    let pseudonym = log.pseudonym(&claims.token_id);
    let record = log.record(writ_audit::Kind::WritMinted, "mint");
    record.tenant = Some(tenant.clone());
    record.agent = Some(agent.name.clone());
    record.writ = Some(pseudonym);
    if let Some(detail) = record.detail.as_mut() {
        let ttl = claims
            .expires_at
            .duration_since(claims.issued_at)
            .unwrap_or_default();
        detail.insert("grants".into(), serde_json::json!(grants));
        detail.insert("ttl_secs".into(), serde_json::json!(ttl.as_secs()));
    }
    log.commit()
        .await
        .context("no writ is issued: its audit record could not be written")?;
    println!("{writ}");
    Ok(())
}

/// A writ given on the command line, or `-` for standard input.
fn read_writ_arg(arg: String) -> anyhow::Result<String> {
    if arg != "-" {
        return Ok(arg);
    }
    let mut s = String::new();
    std::io::stdin().take(64 * 1024).read_to_string(&mut s)?;
    Ok(s.trim().to_string())
}

fn inspect_command(args: InspectArgs) -> anyhow::Result<()> {
    let text = read_writ_arg(args.writ)?;
    let (_, data) = args.state.open()?;
    let keys = data.root_keys()?;
    let writ = decode(&text)?.verify(&keys.trusted)?;
    let c = writ.claims();
    let secs = |t: std::time::SystemTime| t.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
    println!(
        "signature: valid (root key id {})",
        c.key_id.unwrap_or_default()
    );
    println!(
        "tenant: {}\nagent: {}\ntoken id: {}",
        c.tenant, c.agent, c.token_id
    );
    let chain = writ.delegation_chain();
    if let Some((first, _)) = chain.first() {
        let mut names = vec![first.as_str()];
        names.extend(chain.iter().map(|(_, to)| to.as_str()));
        println!("delegation: {} (acting: the last)", names.join(" -> "));
    }
    println!(
        "issued at: {} (unix {})\nexpires at: {} (unix {})",
        humantime::format_rfc3339_seconds(c.issued_at),
        secs(c.issued_at),
        humantime::format_rfc3339_seconds(c.expires_at),
        secs(c.expires_at)
    );
    let ids = writ.revocation_ids();
    let names = [
        "authority: claims and agent ceiling",
        "block 1: granted at mint",
    ];
    for (i, source) in writ.blocks_source().iter().enumerate() {
        let name = match (names.get(i), writ.delegated_by_block(i)) {
            (Some(n), _) => n.to_string(),
            (None, Some(to)) => format!("block {i}: delegation to {to}"),
            (None, None) => format!("block {i}: attenuation"),
        };
        let id: String = ids
            .get(i)
            .map(|b| b.iter().map(|x| format!("{x:02x}")).collect())
            .unwrap_or_default();
        println!("\n== {name} (revocation id {id})\n{}", source.trim_end());
    }
    Ok(())
}
