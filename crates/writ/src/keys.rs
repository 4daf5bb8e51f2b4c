//! `writ keys`: rotate, retire, reload and list root keys.
//!
//! A running gateway is told of every change through its admin API, and a failure to
//! tell it is an error; with `--offline` the change is made in the data directory alone,
//! for a gateway that is stopped (it reads the keys when it starts).

use std::time::Duration;

use writ_gateway::audit::operator_log::{Operator, OperatorLog};
use writ_store::DataDir;
use writ_token::{KeyId, fingerprint};

use crate::admin_client::{GatewayArgs, GatewayClient, admin_writ};

/// `writ keys …` commands.
#[derive(Debug, clap::Subcommand)]
pub enum KeysCommand {
    /// Add a root key with the next key id and sign new writs with it. Older keys stay
    /// trusted until retired. The running gateway makes the key (it must trust it before
    /// anything signed by it arrives); `--offline` makes it here for a stopped gateway.
    Rotate(ChangeArgs),
    /// Stop trusting a root key: writs it signed are refused from now on.
    Retire {
        /// The key id to retire.
        kid: u32,
        #[command(flatten)]
        args: ChangeArgs,
    },
    /// Tell the running gateway to re-read its keys from the data directory.
    Reload(ReachArgs),
    /// List the root keys: the signing key, those still trusted, and those retired.
    List(ReachArgs),
}

/// Where the keys live and which gateway to tell.
#[derive(Debug, clap::Args)]
pub struct ReachArgs {
    #[command(flatten)]
    gateway: GatewayArgs,
    #[command(flatten)]
    state: crate::settings::StateArgs,
}

/// A key change: told to the running gateway, or made offline.
#[derive(Debug, clap::Args)]
pub struct ChangeArgs {
    /// The gateway is stopped: change the keys in the data directory only; it reads them
    /// when it starts. A running gateway is not told and keeps its keys until restarted.
    #[arg(long, conflicts_with_all = ["gateway", "ca_file"])]
    offline: bool,
    #[command(flatten)]
    reach: ReachArgs,
}

/// Lifetime of the admin writs these commands send.
const ADMIN_TTL: Duration = Duration::from_secs(30);

pub async fn run(cmd: KeysCommand) -> anyhow::Result<()> {
    match cmd {
        KeysCommand::List(args) => {
            let (_, data) = args.state.open()?;
            let keys = data.root_keys()?;
            for (kid, key) in keys.trusted.iter() {
                let role = if kid == keys.signing.kid() {
                    "signing"
                } else {
                    "verify only"
                };
                println!("{kid}\ted25519\t{}\t{role}", fingerprint(key));
            }
            for (kid, key) in data.retired_root_keys()? {
                println!(
                    "{kid}\ted25519\t{}\tretired (private half deleted)",
                    fingerprint(&key)
                );
            }
            Ok(())
        }
        KeysCommand::Reload(args) => {
            let (config, data) = args.state.open()?;
            let gateway = GatewayClient::new(&config, &args.gateway)?;
            let v = reload(&gateway, &data, &config).await?;
            println!(
                "the gateway at {} reloaded its keys; signing key id {}",
                gateway.url(),
                v["signing_kid"]
            );
            Ok(())
        }
        KeysCommand::Rotate(args) => {
            let (config, data) = args.reach.state.open()?;
            let operator = Operator::from_env();
            if args.offline {
                let kid = data.rotate_root_key()?;
                offline_record(&config, &data, operator, "rotate_root_key", kid.0).await?;
                println!(
                    "new signing key: id {kid}, recorded in {} only (--offline): a gateway \
                     uses it when it starts",
                    data.path().display()
                );
                return Ok(());
            }
            let gateway = GatewayClient::new(&config, &args.reach.gateway)?;
            let writ = admin_writ(&data, &config, &operator, None, ADMIN_TTL)?;
            let v = match gateway
                .post("/admin/v1/keys/rotate", &writ, &serde_json::json!({}))
                .await
            {
                Ok(v) => v,
                Err(e) => {
                    let outcome = e.outcome(
                        "no key was rotated (for a stopped gateway, --offline rotates for its next start)",
                        "see `writ keys list` before rotating again",
                    );
                    return Err(anyhow::Error::new(e).context(outcome));
                }
            };
            println!(
                "new signing key: id {} (the gateway at {} uses it now)",
                v["signing_kid"],
                gateway.url()
            );
            Ok(())
        }
        KeysCommand::Retire { kid, args } => {
            let (config, data) = args.reach.state.open()?;
            let operator = Operator::from_env();
            if args.offline {
                data.retire_root_key(KeyId(kid))?;
                offline_record(&config, &data, operator, "retire_root_key", kid).await?;
                println!(
                    "retired key id {kid} in {} only (--offline): a gateway stops trusting it \
                     when it starts",
                    data.path().display()
                );
                return Ok(());
            }
            // Checked here first, so a mistake is named even when the gateway is down.
            let keys = data.root_keys()?;
            if KeyId(kid) == keys.signing.kid() || !keys.trusted.iter().any(|(k, _)| k.0 == kid) {
                anyhow::bail!(
                    "key id {kid} is not a retirable key: it is unknown, or it is the signing \
                     key (rotate first)"
                );
            }
            // The running gateway retires the key: it stops trusting it at the moment the
            // private half is deleted, and records who did it.
            let gateway = GatewayClient::new(&config, &args.reach.gateway)?;
            let writ = admin_writ(&data, &config, &operator, None, ADMIN_TTL)?;
            gateway
                .post(
                    "/admin/v1/keys/retire",
                    &writ,
                    &serde_json::json!({"kid": kid}),
                )
                .await
                .map_err(|e| {
                    let outcome = e.outcome(
                        "no key was retired (for a stopped gateway, --offline retires for its \
                         next start)",
                        "see `writ keys list` before retiring again",
                    );
                    anyhow::Error::new(e).context(outcome)
                })?;
            println!(
                "retired key id {kid}; the gateway at {} no longer trusts it",
                gateway.url()
            );
            Ok(())
        }
    }
}

/// Records a key change made with `--offline` in the operator's audit trail.
async fn offline_record(
    config: &writ_gateway::config::Config,
    data: &DataDir,
    operator: Operator,
    operation: &str,
    kid: u32,
) -> anyhow::Result<()> {
    let mut log = OperatorLog::new(&config.audit, data, operator.clone())?;
    let record = log.record(writ_audit::Kind::AdminChange, operation);
    record.agent = Some(operator.to_string());
    if let Some(detail) = record.detail.as_mut() {
        let field = if operation == "rotate_root_key" {
            "signing_kid"
        } else {
            "retired_kid"
        };
        detail.insert(field.into(), serde_json::json!(kid));
        detail.insert("offline".into(), serde_json::json!(true));
    }
    log.commit().await?;
    Ok(())
}

/// Asks the gateway to re-read its keys, with an admin writ signed by the current key.
async fn reload(
    gateway: &GatewayClient,
    data: &DataDir,
    config: &writ_gateway::config::Config,
) -> anyhow::Result<serde_json::Value> {
    let writ = admin_writ(data, config, &Operator::from_env(), None, ADMIN_TTL)?;
    Ok(gateway
        .post("/admin/v1/keys/reload", &writ, &serde_json::json!({}))
        .await?)
}
