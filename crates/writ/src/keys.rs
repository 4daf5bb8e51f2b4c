//! `writ keys`: rotate, retire and list root keys.

use std::time::Duration;

use writ_store::DataDir;
use writ_token::{KeyId, fingerprint};

use crate::admin_client::{Sent, admin_writ, gateway_url, post};

/// `writ keys …` commands.
#[derive(Debug, clap::Subcommand)]
pub enum KeysCommand {
    /// Add a root key with the next key id and sign new writs with it. Older keys stay
    /// trusted until retired.
    Rotate(KeysArgs),
    /// Stop trusting a root key: writs it signed are refused from now on.
    Retire {
        /// The key id to retire.
        kid: u32,
        #[command(flatten)]
        args: KeysArgs,
    },
    /// List the trusted root keys.
    List(KeysArgs),
}

/// Where the keys live and which gateway to tell.
#[derive(Debug, clap::Args)]
pub struct KeysArgs {
    /// The gateway's base URL; defaults to the configured listen address.
    #[arg(long)]
    gateway: Option<String>,
    #[command(flatten)]
    state: crate::settings::StateArgs,
}

pub async fn run(cmd: KeysCommand) -> anyhow::Result<()> {
    let (args, action) = match &cmd {
        KeysCommand::Rotate(a) => (a, "rotate"),
        KeysCommand::Retire { args, .. } => (args, "retire"),
        KeysCommand::List(a) => (a, "list"),
    };
    let config = args.state.load()?;
    let data = DataDir::open_or_create(&config.data_dir)?;
    let url = gateway_url(&config, args.gateway.clone());
    match &cmd {
        KeysCommand::Rotate(_) => {
            // A running gateway rotates itself: it must trust the new key before anything
            // signed by it arrives.
            let writ = admin_writ(&data, &config, None, Duration::from_secs(30))?;
            match post(&url, "/admin/v1/keys/rotate", &writ, &serde_json::json!({})).await? {
                Sent::Applied(v) => println!(
                    "new signing key: id {} (the gateway at {url} uses it now)",
                    v["signing_kid"]
                ),
                Sent::NotRunning => {
                    let kid = data.rotate_root_key()?;
                    println!(
                        "new signing key: id {kid} (no gateway at {url}; used when it starts)"
                    );
                }
            }
            return Ok(());
        }
        KeysCommand::Retire { kid, .. } => {
            data.retire_root_key(KeyId(*kid))?;
            println!("retired key id {kid}");
        }
        KeysCommand::List(_) => {
            let keys = data.root_keys()?;
            for (kid, key) in keys.trusted.iter() {
                let role = if kid == keys.signing.kid() {
                    "signing"
                } else {
                    "verify only"
                };
                println!("{kid}\ted25519\t{}\t{role}", fingerprint(key));
            }
            return Ok(());
        }
    }
    // Tell a running gateway to re-read its keys; minted after the change, so by the new key.
    let writ = admin_writ(&data, &config, None, Duration::from_secs(30))?;
    match post(&url, "/admin/v1/keys/reload", &writ, &serde_json::json!({})).await? {
        Sent::Applied(_) => println!("the gateway at {url} reloaded its keys"),
        Sent::NotRunning => println!("no gateway at {url}; the {action} applies when it starts"),
    }
    Ok(())
}
