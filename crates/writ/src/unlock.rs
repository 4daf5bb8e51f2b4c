//! `writ unlock`: lift a client's brute-force lock-out at the token endpoint, through the
//! running gateway's admin API (strikes live in the limiter backend, so every gateway
//! sharing it sees the unlock).

use std::time::Duration;

use writ_gateway::audit::operator_log::Operator;

use crate::admin_client::{GatewayArgs, GatewayClient, admin_writ};

/// Options of `writ unlock`.
#[derive(Debug, clap::Args)]
pub struct UnlockArgs {
    /// The client id as the token endpoint sees it: `agent`, or `tenant/agent`.
    client: String,
    /// Also clear this address's own count (it holds every client tried from it locked
    /// out); the client's addresses are cleared anyway while it is counted there.
    #[arg(long)]
    address: Option<std::net::IpAddr>,
    #[command(flatten)]
    gateway: GatewayArgs,
    #[command(flatten)]
    state: crate::settings::StateArgs,
}

pub async fn run(args: UnlockArgs) -> anyhow::Result<()> {
    let (config, data) = args.state.open()?;
    // The root key's holder administers every tenant: the writ says so, so the unlock
    // also clears the addresses the client was locked out at.
    let writ = admin_writ(
        &data,
        &config,
        &Operator::from_env(),
        None,
        Duration::from_secs(30),
    )?;
    let gateway = GatewayClient::new(&config, &args.gateway)?;
    let mut body = serde_json::json!({ "client_id": args.client });
    if let Some(ip) = args.address {
        body["address"] = serde_json::json!(ip);
    }
    // Strikes live in the running gateway's limiter: there is nothing to record offline.
    let answer = gateway
        .post("/admin/v1/unlock", &writ, &body)
        .await
        .map_err(|e| {
            let outcome = e.outcome(
                "nothing was unlocked (strikes live in the running gateway's limiter: start it, \
                 or name it with --gateway)",
                "try again; unlocking twice is harmless",
            );
            anyhow::Error::new(e).context(outcome)
        })?;
    let addresses = answer["addresses"].as_u64().unwrap_or(0);
    println!(
        "unlocked: {} (failures from {addresses} address{} cleared at {})",
        args.client,
        if addresses == 1 { "" } else { "es" },
        gateway.url()
    );
    Ok(())
}
