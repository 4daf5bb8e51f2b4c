//! `writ revoke`: cut off writs now, through the running gateway's admin API.

use std::time::{Duration, UNIX_EPOCH};

use anyhow::{Context, bail};
use writ_store::SqliteStore;
use writ_token::{Clock, Revocation, SystemClock};

use crate::admin_client::{GatewayArgs, GatewayClient, admin_writ};

/// Options of `writ revoke`: exactly one of what to revoke.
#[derive(Debug, clap::Args)]
pub struct RevokeArgs {
    /// One writ (and every writ attenuated from it) by its token id.
    #[arg(long, group = "what")]
    token_id: Option<String>,
    /// Every writ holding a block with this revocation id (hex).
    #[arg(long, group = "what")]
    revocation_id: Option<String>,
    /// Every writ of an agent (of `--tenant`, or the config's tenant).
    #[arg(long, group = "what")]
    agent: Option<String>,
    /// Every writ of a tenant (alone), or the tenant of `--agent` / `--all-before`.
    #[arg(long)]
    tenant: Option<String>,
    /// The kill switch: every writ issued before this time (`now` or RFC 3339), in
    /// `--tenant` or in every tenant.
    #[arg(long, group = "what")]
    all_before: Option<String>,
    #[command(flatten)]
    gateway: GatewayArgs,
    /// The gateway is stopped: record the revocation in the data directory only; it
    /// applies when the gateway starts. A running gateway is not told.
    #[arg(long, conflicts_with_all = ["gateway", "ca_file"])]
    offline: bool,
    #[command(flatten)]
    state: crate::settings::StateArgs,
}

fn revocation(args: &RevokeArgs, default_tenant: &str) -> anyhow::Result<Revocation> {
    let tenant = || {
        args.tenant
            .clone()
            .unwrap_or_else(|| default_tenant.to_string())
    };
    Ok(
        match (
            &args.token_id,
            &args.revocation_id,
            &args.agent,
            &args.all_before,
        ) {
            (Some(id), None, None, None) => Revocation::TokenId {
                token_id: id.clone(),
            },
            (None, Some(id), None, None) => Revocation::RevocationId {
                revocation_id: id.clone(),
            },
            (None, None, Some(agent), None) => Revocation::Agent {
                tenant: tenant(),
                agent: agent.clone(),
            },
            (None, None, None, Some(when)) => {
                let at = if when == "now" {
                    SystemClock.now()
                } else {
                    humantime::parse_rfc3339_weak(when)
                        .with_context(|| format!("`{when}` is not `now` or an RFC 3339 time"))?
                };
                let before = at.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs())
                    + u64::from(when == "now");
                Revocation::IssuedBefore {
                    tenant: args.tenant.clone(),
                    before,
                }
            }
            (None, None, None, None) => match &args.tenant {
                Some(t) => Revocation::Tenant { tenant: t.clone() },
                None => bail!(
                    "say what to revoke: --token-id, --revocation-id, --agent, --tenant or --all-before"
                ),
            },
            _ => bail!("revoke one thing at a time"),
        },
    )
}

pub async fn run(args: RevokeArgs) -> anyhow::Result<()> {
    let (config, data) = args.state.open()?;
    crate::settings::tenant(args.tenant.as_deref(), &config)?;
    let revocation = revocation(&args, &config.tenant)?;
    let body = serde_json::to_value(&revocation)?;
    if args.offline {
        let store = SqliteStore::open(&data.database_path()).await?;
        let now = SystemClock
            .now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        store.put_revocation(&revocation, now).await?;
        store.close().await;
        println!(
            "revoked: {body} (--offline: recorded in {} only, applied when a gateway starts)",
            data.database_path().display()
        );
        return Ok(());
    }
    let gateway = GatewayClient::new(&config, &args.gateway)?;
    let writ = admin_writ(&data, &config, revocation.tenant(), Duration::from_secs(30))?;
    if let Err(e) = gateway.post("/admin/v1/revocations", &writ, &body).await {
        let outcome = e.outcome(
            "nothing was revoked or recorded (for a stopped gateway, --offline records it for its next start)",
            "run the same revocation again (repeating it is harmless)",
        );
        return Err(anyhow::Error::new(e).context(outcome));
    }
    println!("revoked: {body} (effective now at {})", gateway.url());
    Ok(())
}
