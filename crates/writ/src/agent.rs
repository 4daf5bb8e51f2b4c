//! `writ agent`: register, list, show and remove agents and their ceilings.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context, bail};
use writ_store::{Agent, AgentCredentials, AgentKey, SqliteStore, new_client_secret};
use writ_token::{Grant, parse_grants};

/// `writ agent …` commands.
#[derive(Debug, clap::Subcommand)]
pub enum AgentCommand {
    /// Register an agent (or replace its registration).
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
        /// Generate a client secret, print it once, and store only its Argon2 hash.
        #[arg(long)]
        generate_secret: bool,
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

fn describe(a: &Agent) -> String {
    let ceiling = serde_json::to_string(&a.ceiling).unwrap_or_default();
    format!(
        "{}/{}\tmax_ttl={}s\tceiling={ceiling}",
        a.tenant,
        a.name,
        a.max_ttl.as_secs()
    )
}

pub async fn run(cmd: AgentCommand) -> anyhow::Result<()> {
    let args = match &cmd {
        AgentCommand::Add { args, .. }
        | AgentCommand::Show { args, .. }
        | AgentCommand::Remove { args, .. } => args,
        AgentCommand::List(args) => args,
    };
    let (config, data) = args.state.open()?;
    let tenant = crate::settings::tenant(args.tenant.as_deref(), &config)?;
    let store = SqliteStore::open(&data.database_path()).await?;
    let result = async {
        match &cmd {
            AgentCommand::Add { name, ceiling, max_ttl, public_keys, generate_secret, .. } => {
                if name.is_empty() || name.len() > 64 || !name.bytes().all(|b| b.is_ascii_alphanumeric() || b"_.-".contains(&b)) {
                    bail!("agent names are 1-64 characters of A-Z a-z 0-9 _ . -");
                }
                if *max_ttl > config.max_ttl || max_ttl.as_secs() == 0 {
                    bail!("--max-ttl must be between 1s and the config's tokens.max_ttl ({}s)", config.max_ttl.as_secs());
                }
                let mut grants: Vec<Grant> = Vec::new();
                for json in ceiling {
                    grants.extend(parse_grants(json).map_err(|e| anyhow::anyhow!("invalid --ceiling: {e}"))?);
                }
                if !grants.iter().any(Grant::is_access) {
                    bail!("a ceiling needs at least one access grant (writ:llm, writ:tool, writ:http, writ:admin)");
                }
                let mut credentials = AgentCredentials::default();
                for path in public_keys {
                    let pem = std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?;
                    credentials.public_keys.push(AgentKey::from_pem(&pem).with_context(|| path.display().to_string())?);
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
                store.put_agent(&agent).await?;
                println!("{}", describe(&agent));
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
                Some(agent) => println!("{}", describe(&agent)),
                None => bail!("no agent `{name}` in tenant `{tenant}`"),
            },
            AgentCommand::Remove { name, .. } => {
                if !store.remove_agent(&tenant, name).await? {
                    bail!("no agent `{name}` in tenant `{tenant}`");
                }
                println!("removed {tenant}/{name}; revoke its live writs with: writ revoke --agent {name}");
            }
        }
        Ok(())
    }
    .await;
    store.close().await;
    result
}
