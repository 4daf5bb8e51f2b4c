//! `writ agent`: register, update, list, show and remove agents: their ceilings and
//! credentials.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context, bail};
use writ_gateway::audit::operator_log::{Operator, OperatorLog};
use writ_store::{Agent, AgentCredentials, AgentKey, new_client_secret};
use writ_token::{Grant, parse_grants};

/// `writ agent …` commands.
#[derive(Debug, clap::Subcommand)]
pub enum AgentCommand {
    /// Register a new agent (`--replace` to overwrite an existing registration; to change
    /// one, use `writ agent update`).
    Add {
        /// The agent's name.
        name: String,
        /// A ceiling grant as JSON (object or array); repeat for more. Every writ issued
        /// to the agent is bounded by these.
        #[arg(long = "ceiling", required = true)]
        ceiling: Vec<String>,
        /// Longest lifetime of its writs (at most the config's `tokens.max_ttl`).
        #[arg(long, default_value = "30s", value_parser = humantime::parse_duration)]
        max_ttl: Duration,
        /// A public key file (PEM, Ed25519 or P-256) the agent signs client assertions
        /// with (private_key_jwt); repeat for more.
        #[arg(long = "public-key")]
        public_keys: Vec<PathBuf>,
        /// Generate a client secret, print it once, and store only its salted hash.
        #[arg(long)]
        generate_secret: bool,
        /// Overwrite an agent of this name, credentials included.
        #[arg(long)]
        replace: bool,
        #[command(flatten)]
        args: AgentArgs,
    },
    /// Change a registered agent: its ceiling, its writs' longest lifetime, its keys or its
    /// secret. What is not named is kept.
    Update {
        /// The agent's name.
        name: String,
        /// A new ceiling grant as JSON (object or array); repeat for more. Replaces the
        /// whole ceiling.
        #[arg(long = "ceiling")]
        ceiling: Vec<String>,
        /// A new longest lifetime of its writs.
        #[arg(long, value_parser = humantime::parse_duration)]
        max_ttl: Option<Duration>,
        /// Add a public key file (PEM); repeat for more.
        #[arg(long = "add-public-key")]
        add_public_keys: Vec<PathBuf>,
        /// Remove the key with this thumbprint (as `writ agent show` prints); repeat.
        #[arg(long = "remove-key", value_name = "THUMBPRINT")]
        remove_keys: Vec<String>,
        /// Replace the client secret with a new one, printed once.
        #[arg(long, conflicts_with = "remove_secret")]
        rotate_secret: bool,
        /// Remove the client secret (the agent then authenticates with keys only).
        #[arg(long)]
        remove_secret: bool,
        #[command(flatten)]
        args: AgentArgs,
    },
    /// List agents of the tenant.
    List(AgentArgs),
    /// Show one agent.
    Show {
        /// The agent's name.
        name: String,
        #[command(flatten)]
        args: AgentArgs,
    },
    /// Remove an agent. Writs already issued stay valid until they expire: revoke them
    /// with `writ revoke --agent`.
    Remove {
        /// The agent's name.
        name: String,
        #[command(flatten)]
        args: AgentArgs,
    },
}

/// Where agents live.
#[derive(Debug, clap::Args)]
pub struct AgentArgs {
    /// Tenant; defaults to the config's.
    #[arg(long)]
    tenant: Option<String>,
    #[command(flatten)]
    state: crate::settings::StateArgs,
}

/// An agent's credentials, one per line: key thumbprints (RFC 7638) and whether a secret
/// is set. Never the secret's hash.
fn describe_credentials(a: &Agent) -> String {
    let mut lines = Vec::new();
    for key in &a.credentials.public_keys {
        let thumbprint = key
            .thumbprint()
            .unwrap_or_else(|_| "(unreadable key)".to_string());
        lines.push(format!("public key: {} thumbprint {thumbprint}", key.alg));
    }
    if a.credentials.public_keys.is_empty() {
        lines.push("public keys: none".to_string());
    }
    lines.push(
        if a.credentials.secret_hash.is_some() {
            "client secret: set (only its salted hash is stored)"
        } else {
            "client secret: none"
        }
        .to_string(),
    );
    lines.join("\n")
}

fn check_name(name: &str) -> anyhow::Result<()> {
    if name.is_empty()
        || name.len() > 64
        || !name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"_.-".contains(&b))
    {
        bail!("agent names are 1-64 characters of A-Z a-z 0-9 _ . -");
    }
    Ok(())
}

fn check_max_ttl(max_ttl: Duration, config: &writ_gateway::config::Config) -> anyhow::Result<()> {
    if max_ttl > config.max_ttl || max_ttl.as_secs() == 0 {
        bail!(
            "--max-ttl must be between 1s and the config's tokens.max_ttl ({}s)",
            config.max_ttl.as_secs()
        );
    }
    Ok(())
}

fn ceiling_grants(ceiling: &[String]) -> anyhow::Result<Vec<Grant>> {
    let mut grants: Vec<Grant> = Vec::new();
    for json in ceiling {
        grants.extend(parse_grants(json).map_err(|e| anyhow::anyhow!("invalid --ceiling: {e}"))?);
    }
    if !grants.iter().any(Grant::is_access) {
        bail!(
            "a ceiling needs at least one access grant (writ:llm, writ:tool, writ:http, writ:admin)"
        );
    }
    Ok(grants)
}

fn read_key(path: &PathBuf) -> anyhow::Result<AgentKey> {
    let pem =
        std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?;
    AgentKey::from_pem(&pem).with_context(|| path.display().to_string())
}

fn describe(a: &Agent) -> String {
    let ceiling = serde_json::to_string(&a.ceiling).unwrap_or_default();
    format!(
        "{}/{}\tmax_ttl={}s\tceiling={ceiling}",
        a.tenant,
        a.name,
        a.max_ttl.as_secs()
    )
}

/// What an agent's audit record says of it: its ceiling and lifetime, and which kinds of
/// credential it holds (key thumbprints; whether a secret is set, never its hash).
fn agent_detail(a: &Agent) -> serde_json::Map<String, serde_json::Value> {
    let mut detail = serde_json::Map::new();
    detail.insert("ceiling".into(), serde_json::json!(a.ceiling));
    detail.insert(
        "max_ttl_secs".into(),
        serde_json::json!(a.max_ttl.as_secs()),
    );
    let keys: Vec<String> = a
        .credentials
        .public_keys
        .iter()
        .filter_map(|k| k.thumbprint().ok())
        .collect();
    detail.insert("key_thumbprints".into(), serde_json::json!(keys));
    detail.insert(
        "secret_set".into(),
        serde_json::json!(a.credentials.secret_hash.is_some()),
    );
    detail
}

/// One `admin_change` record of an agent change, in the operator's audit trail.
async fn record_change(
    config: &writ_gateway::config::Config,
    data: &writ_store::DataDir,
    operation: &str,
    agent: &Agent,
    detail: serde_json::Map<String, serde_json::Value>,
) -> anyhow::Result<()> {
    let operator = Operator::from_env();
    let mut log = OperatorLog::new(&config.audit, data, operator.clone())?;
    let record = log.record(writ_audit::Kind::AdminChange, operation);
    record.tenant = Some(agent.tenant.clone());
    record.agent = Some(agent.name.clone());
    if let Some(d) = record.detail.as_mut() {
        d.extend(detail);
    }
    log.commit().await.with_context(|| {
        format!(
            "{operation} {}/{} was done, but its audit record could not be written",
            agent.tenant, agent.name
        )
    })?;
    Ok(())
}

pub async fn run(cmd: AgentCommand) -> anyhow::Result<()> {
    let args = match &cmd {
        AgentCommand::Add { args, .. }
        | AgentCommand::Update { args, .. }
        | AgentCommand::Show { args, .. }
        | AgentCommand::Remove { args, .. } => args,
        AgentCommand::List(args) => args,
    };
    let (config, data) = args.state.open()?;
    let tenant = crate::settings::tenant(args.tenant.as_deref(), &config)?;
    let store = writ_gateway::open_store(&config, &data).await?;
    let result = async {
        match &cmd {
            AgentCommand::Add { name, ceiling, max_ttl, public_keys, generate_secret, replace, .. } => {
                check_name(name)?;
                check_max_ttl(*max_ttl, &config)?;
                let grants = ceiling_grants(ceiling)?;
                let mut credentials = AgentCredentials::default();
                for path in public_keys {
                    credentials.public_keys.push(read_key(path)?);
                }
                let secret = generate_secret.then(|| {
                    let (secret, hash) = new_client_secret();
                    credentials.secret_hash = Some(hash);
                    secret
                });
                let agent = Agent {
                    tenant: tenant.clone(),
                    name: name.clone(),
                    ceiling: grants,
                    max_ttl: *max_ttl,
                    credentials,
                };
                if *replace {
                    store.put_agent(&agent).await?;
                } else if !store.insert_agent(&agent).await? {
                    bail!(
                        "agent {name} already exists in tenant {tenant}: change it with `writ agent update {name}` \
                         (ceiling, max TTL, keys, secret), or overwrite it, credentials included, with `writ agent add {name} --replace`"
                    );
                }
                let verb = if *replace { "replace_agent" } else { "add_agent" };
                record_change(&config, &data, verb, &agent, agent_detail(&agent)).await?;
                println!("{}\n{}", describe(&agent), describe_credentials(&agent));
                if let Some(secret) = secret {
                    println!("client_secret: {secret}\n(shown once; only its hash is stored)");
                }
            }
            AgentCommand::Update { name, ceiling, max_ttl, add_public_keys, remove_keys, rotate_secret, remove_secret, .. } => {
                let Some(mut agent) = store.agent(&tenant, name).await? else {
                    bail!("no agent {name} in tenant {tenant}; register it with `writ agent add {name}`");
                };
                let before = agent.clone();
                if !ceiling.is_empty() {
                    agent.ceiling = ceiling_grants(ceiling)?;
                }
                if let Some(max_ttl) = max_ttl {
                    check_max_ttl(*max_ttl, &config)?;
                    agent.max_ttl = *max_ttl;
                }
                for thumbprint in remove_keys {
                    let held = agent.credentials.public_keys.len();
                    agent.credentials.public_keys.retain(|k| k.thumbprint().ok().as_ref() != Some(thumbprint));
                    if agent.credentials.public_keys.len() == held {
                        bail!("agent {name} has no key with thumbprint {thumbprint}; `writ agent show {name}` lists its keys");
                    }
                }
                for path in add_public_keys {
                    let key = read_key(path)?;
                    if !agent.credentials.public_keys.contains(&key) {
                        agent.credentials.public_keys.push(key);
                    }
                }
                if *remove_secret {
                    agent.credentials.secret_hash = None;
                }
                let secret = rotate_secret.then(|| {
                    let (secret, hash) = new_client_secret();
                    agent.credentials.secret_hash = Some(hash);
                    secret
                });
                if agent == before {
                    bail!("nothing to change: name --ceiling, --max-ttl, --add-public-key, --remove-key, --rotate-secret or --remove-secret");
                }
                store.put_agent(&agent).await?;
                let mut changed = Vec::new();
                if agent.ceiling != before.ceiling { changed.push("ceiling"); }
                if agent.max_ttl != before.max_ttl { changed.push("max_ttl"); }
                if agent.credentials.public_keys != before.credentials.public_keys { changed.push("public_keys"); }
                if agent.credentials.secret_hash != before.credentials.secret_hash { changed.push("secret"); }
                let mut detail = agent_detail(&agent);
                detail.insert("changed".into(), serde_json::json!(changed));
                record_change(&config, &data, "update_agent", &agent, detail).await?;
                println!("updated {}\n{}", describe(&agent), describe_credentials(&agent));
                if let Some(secret) = secret {
                    println!("client_secret: {secret}\n(shown once; only its hash is stored)");
                }
            }
            AgentCommand::List(_) => {
                for agent in store.agents(&tenant).await? {
                    println!("{}", describe(&agent));
                }
            }
            AgentCommand::Show { name, .. } => match store.agent(&tenant, name).await? {
                Some(agent) => println!("{}\n{}", describe(&agent), describe_credentials(&agent)),
                None => bail!("no agent `{name}` in tenant `{tenant}`"),
            },
            AgentCommand::Remove { name, .. } => {
                if !store.remove_agent(&tenant, name).await? {
                    bail!("no agent `{name}` in tenant `{tenant}`");
                }
                let gone = Agent { tenant: tenant.clone(), name: name.clone(), ceiling: Vec::new(), max_ttl: Duration::ZERO, credentials: AgentCredentials::default() };
                record_change(&config, &data, "remove_agent", &gone, serde_json::Map::new()).await?;
                println!(
                    "removed {tenant}/{name}; writs already issued to it work until they expire (at most {}s): \
                     to cut them off now, writ revoke --agent {name} --tenant {tenant} --force",
                    config.max_ttl.as_secs()
                );
            }
        }
        Ok(())
    }
    .await;
    store.close().await;
    result
}
