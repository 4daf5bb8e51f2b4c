//! `writ revoke`: cut off writs now, through the running gateway's admin API.

use std::time::{Duration, UNIX_EPOCH};

use anyhow::{Context, bail};
use writ_store::{DataDir, SqliteStore};
use writ_token::{Clock, Revocation, SystemClock};

use crate::admin_client::{Sent, admin_writ, gateway_url, post};

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
    /// The gateway's base URL; defaults to the configured listen address.
    #[arg(long)]
    gateway: Option<String>,
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
    let config = args.state.load()?;
    let revocation = revocation(&args, &config.tenant)?;
    let data = DataDir::open_or_create(&config.data_dir)?;
    let writ = admin_writ(&data, &config, revocation.tenant(), Duration::from_secs(30))?;
    let url = gateway_url(&config, args.gateway.clone());
    let body = serde_json::to_value(&revocation)?;
    match post(&url, "/admin/v1/revocations", &writ, &body).await? {
        Sent::Applied(_) => println!("revoked: {body} (effective now at {url})"),
        Sent::NotRunning => {
            // Nothing to tell: record it where the gateway will read it when it starts.
            let store = SqliteStore::open(&data.database_path()).await?;
            let now = SystemClock
                .now()
                .duration_since(UNIX_EPOCH)
                .map_or(0, |d| d.as_secs());
            store.put_revocation(&revocation, now).await?;
            store.close().await;
            println!(
                "revoked: {body} (no gateway at {url}; recorded in {}, applied when it starts)",
                data.database_path().display()
            );
        }
    }
    Ok(())
}
