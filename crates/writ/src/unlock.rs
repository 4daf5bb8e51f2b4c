//! `writ unlock`: lift a client's brute-force lock-out at the token endpoint, through the
//! running gateway's admin API (strikes live in the limiter backend, so every gateway
//! sharing it sees the unlock).

use std::time::Duration;

use anyhow::bail;
use writ_store::DataDir;

use crate::admin_client::{Sent, admin_writ, gateway_url, post};

/// Options of `writ unlock`.
#[derive(Debug, clap::Args)]
pub struct UnlockArgs {
    /// The client id as the token endpoint sees it: `agent`, or `tenant/agent`.
    client: String,
    /// Also clear this address's own count (it holds every client tried from it locked
    /// out); the client's addresses are cleared anyway while it is counted there.
    #[arg(long)]
    address: Option<std::net::IpAddr>,
    /// The gateway's base URL; defaults to the configured listen address.
    #[arg(long)]
    gateway: Option<String>,
    #[command(flatten)]
    state: crate::settings::StateArgs,
}

pub async fn run(args: UnlockArgs) -> anyhow::Result<()> {
    let config = args.state.load()?;
    if !config.data_dir.exists() {
        bail!(
            "no writ data directory at {}; run this where the gateway runs or pass --data-dir",
            config.data_dir.display()
        );
    }
    let data = DataDir::open_or_create(&config.data_dir)?;
    // The root key's holder administers every tenant: the writ says so, so the unlock
    // also clears the addresses the client was locked out at.
    let writ = admin_writ(&data, &config, None, Duration::from_secs(30))?;
    let url = gateway_url(&config, args.gateway.clone());
    let mut body = serde_json::json!({ "client_id": args.client });
    if let Some(ip) = args.address {
        body["address"] = serde_json::json!(ip);
    }
    match post(&url, "/admin/v1/unlock", &writ, &body).await? {
        Sent::Applied(answer) => {
            let addresses = answer["addresses"].as_u64().unwrap_or(0);
            println!(
                "unlocked: {} (failures from {addresses} address{} cleared at {url})",
                args.client,
                if addresses == 1 { "" } else { "es" }
            );
            Ok(())
        }
        // Strikes live in the running gateway's limiter: there is nothing to record offline.
        Sent::NotRunning => bail!(
            "no gateway answers at {url}: strikes live in the running gateway's limiter, so \
             start it or pass --gateway"
        ),
    }
}
