//! `writ revoke`: cut off writs now, through the running gateway's admin API; list the
//! revocations (when, by whom, why) and lift an agent's or tenant's.
//!
//! A revocation of something that does not exist is refused unless `--force`: the
//! gateway checks (so API users get the same answer), and so does this command when it
//! records a revocation for a gateway that is not running.

use std::time::{Duration, UNIX_EPOCH};

use anyhow::{Context, bail};
use writ_gateway::audit::operator_log::{Operator, OperatorLog};
use writ_gateway::config::Config;
use writ_store::{DataDir, RevocationNote, RevocationRecord, Store};
use writ_token::{Clock, Revocation, SystemClock, token_id_issued_at};

use crate::admin_client::{GatewayArgs, GatewayClient, ReachError, admin_writ};

/// How long the admin writs this command mints live.
const ADMIN_TTL: Duration = Duration::from_secs(30);

/// Options of `writ revoke`: exactly one of what to revoke, `--list` or `--lift`.
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
    /// List every revocation: id, what, when, by whom, why, and whether it was lifted.
    #[arg(long, group = "what")]
    list: bool,
    /// Lift the agent or tenant revocation with this id (from `--list`): its writs work
    /// again and it may be issued new ones. Writ revocations are permanent.
    #[arg(long, group = "what", value_name = "ID")]
    lift: Option<i64>,
    /// Why: stored with the revocation and shown by `--list`.
    #[arg(long, conflicts_with_all = ["list", "lift"])]
    reason: Option<String>,
    /// Record the revocation even if the agent, tenant or writ it names does not exist.
    #[arg(long, conflicts_with_all = ["list", "lift"])]
    force: bool,
    #[command(flatten)]
    gateway: GatewayArgs,
    /// The gateway is stopped: record the revocation (or lift) in the data directory
    /// only, or list what is recorded there; it applies when the gateway starts. A running
    /// gateway is not told.
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
    let operator = Operator::from_env();
    if args.list {
        return list(&args, &config, &data, &operator).await;
    }
    if let Some(id) = args.lift {
        return lift(&args, &config, &data, &operator, id).await;
    }
    let revocation = revocation(&args, &config.tenant)?;
    let mut body = serde_json::to_value(&revocation)?;
    if args.force {
        body["force"] = serde_json::json!(true);
    }
    if let Some(reason) = &args.reason {
        body["reason"] = serde_json::json!(reason);
    }
    let what = describe(&revocation);
    if args.offline {
        let store = writ_gateway::open_store(&config, &data).await?;
        let result = async {
            if !args.force {
                check_exists(&store, &revocation, &config).await?;
            }
            let note = RevocationNote {
                at: unix_now(),
                by: Some(operator.to_string()),
                reason: args.reason.clone(),
            };
            Ok::<_, anyhow::Error>(store.put_revocation(&revocation, &note).await?)
        }
        .await;
        store.close().await;
        let id = result?;
        let mut log = OperatorLog::new(&config.audit, &data, operator.clone())?;
        let record = log.record(writ_audit::Kind::Revocation, "revoke");
        record.tenant = revocation.tenant().map(str::to_string);
        record.agent = Some(operator.to_string());
        if let Some(detail) = record.detail.as_mut() {
            detail.insert("revocation".into(), pseudonymized(&revocation, &data)?);
            detail.insert("id".into(), serde_json::json!(id));
            if let Some(reason) = &args.reason {
                detail.insert("reason".into(), serde_json::json!(reason));
            }
        }
        log.commit().await?;
        println!(
            "revoked {what} (id {id}; --offline: recorded in {} only, applied when a gateway starts)",
            data.database_path().display()
        );
        return Ok(());
    }
    let gateway = GatewayClient::new(&config, &args.gateway)?;
    let writ = admin_writ(&data, &config, &operator, revocation.tenant(), ADMIN_TTL)?;
    let v = gateway
        .post("/admin/v1/revocations", &writ, &body)
        .await
        .map_err(|e| {
            let outcome = e.outcome(
                "nothing was revoked or recorded (for a stopped gateway, --offline records it \
                 for its next start)",
                "run the same revocation again (repeating it is harmless)",
            );
            anyhow::Error::new(e).context(outcome)
        })?;
    let url = gateway.url();
    not_shared(
        &v,
        &format!("revoked {what} at {url} (id {})", v["revoked"]["id"]),
    )?;
    println!(
        "revoked {what} (id {}; effective now at {url})",
        v["revoked"]["id"]
    );
    Ok(())
}

/// A revocation as audit records show it: a token id as its pseudonym.
fn pseudonymized(r: &Revocation, data: &DataDir) -> anyhow::Result<serde_json::Value> {
    let mut v = serde_json::to_value(r)?;
    if let Some(id) = v.get_mut("token_id") {
        let pseudonyms = writ_gateway::audit::pseudonymizer(data.master_key()?.expose());
        *id = serde_json::json!(pseudonyms.pseudonym(id.as_str().unwrap_or_default()));
    }
    Ok(v)
}

/// The error of a call to the gateway that failed, saying what became of the change.
fn unreached(e: ReachError, nothing: &str, unknown: &str) -> anyhow::Error {
    let outcome = e.outcome(nothing, unknown);
    anyhow::Error::new(e).context(outcome)
}

/// Fails when the gateway applied a change but could not share it with the other
/// instances: done here, not everywhere, and the operator must know.
fn not_shared(answer: &serde_json::Value, done: &str) -> anyhow::Result<()> {
    if answer["other_instances"] == "failed" {
        bail!(
            "{done}, but the gateway could not share it with the other instances (Redis): they \
             apply it when they reconnect to Redis; check the gateway's log and Redis"
        );
    }
    Ok(())
}

fn unix_now() -> u64 {
    SystemClock
        .now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// A revocation in words, token ids left out.
fn describe(r: &Revocation) -> String {
    match r {
        Revocation::TokenId { .. } => "the writ with that token id (and its attenuations)".into(),
        Revocation::RevocationId { revocation_id } => {
            format!("every writ with block {revocation_id}")
        }
        Revocation::Agent { tenant, agent } => format!("agent {agent} in tenant {tenant}"),
        Revocation::Tenant { tenant } => format!("tenant {tenant}"),
        Revocation::IssuedBefore { tenant, before } => {
            let at = humantime::format_rfc3339_seconds(UNIX_EPOCH + Duration::from_secs(*before));
            match tenant {
                Some(t) => format!("every writ of tenant {t} issued before {at}"),
                None => format!("every writ issued before {at}"),
            }
        }
    }
}

/// The gateway's existence check (see `admin.rs`), for revocations recorded while it is
/// not running.
async fn check_exists(store: &Store, r: &Revocation, config: &Config) -> anyhow::Result<()> {
    const HINT: &str = "; pass --force to record it anyway";
    match r {
        Revocation::Agent { tenant, agent } => {
            if store.agent(tenant, agent).await?.is_none() {
                bail!("no agent {agent} in tenant {tenant}{HINT}");
            }
        }
        Revocation::Tenant { tenant }
        | Revocation::IssuedBefore {
            tenant: Some(tenant),
            ..
        } => {
            if *tenant != config.tenant && !store.tenant_has_agents(tenant).await? {
                bail!("no tenant {tenant} (no agent is registered in it){HINT}");
            }
        }
        Revocation::TokenId { token_id } => {
            let Some(issued) = token_id_issued_at(token_id) else {
                bail!(
                    "nothing to revoke: this is not a token id writ issues (26 characters, as \
                     `writ token inspect` prints){HINT}"
                );
            };
            let now = SystemClock.now();
            if issued + config.max_ttl + Duration::from_secs(1) < now {
                bail!(
                    "nothing to revoke: the writ with this token id was issued at {} and has \
                     expired (writs live at most {}s){HINT}",
                    humantime::format_rfc3339_seconds(issued),
                    config.max_ttl.as_secs()
                );
            }
            if issued > now + Duration::from_secs(60) {
                bail!(
                    "nothing to revoke: no writ with this token id has been issued (its time, {}, \
                     is in the future){HINT}",
                    humantime::format_rfc3339_seconds(issued)
                );
            }
        }
        Revocation::RevocationId { .. } | Revocation::IssuedBefore { tenant: None, .. } => {}
    }
    Ok(())
}

/// `writ revoke --list`: from the gateway, or from the data directory with `--offline`.
async fn list(
    args: &RevokeArgs,
    config: &Config,
    data: &DataDir,
    operator: &Operator,
) -> anyhow::Result<()> {
    let listed: Vec<serde_json::Value> = if args.offline {
        let store = writ_gateway::open_store(config, data).await?;
        let records = store.revocation_records().await;
        store.close().await;
        let pseudonyms = writ_gateway::audit::pseudonymizer(data.master_key()?.expose());
        records?
            .iter()
            .map(|r| listed_locally(r, &pseudonyms))
            .collect()
    } else {
        let gateway = GatewayClient::new(config, &args.gateway)?;
        let writ = admin_writ(data, config, operator, None, ADMIN_TTL)?;
        let v = gateway
            .get("/admin/v1/revocations", &writ)
            .await
            .map_err(|e| {
                unreached(
                    e,
                    "nothing was listed (for a stopped gateway, --offline lists what is recorded)",
                    "try again",
                )
            })?;
        v["revocations"].as_array().cloned().unwrap_or_default()
    };
    if listed.is_empty() {
        println!("no revocations");
    }
    for r in &listed {
        println!("{}", list_line(r));
    }
    Ok(())
}

/// A stored revocation in the shape the admin API lists it.
fn listed_locally(
    r: &RevocationRecord,
    pseudonyms: &writ_audit::Pseudonymizer,
) -> serde_json::Value {
    let time = |at: u64| {
        humantime::format_rfc3339_seconds(UNIX_EPOCH + Duration::from_secs(at)).to_string()
    };
    let mut v = serde_json::to_value(&r.revocation).unwrap_or_default();
    if let Some(map) = v.as_object_mut() {
        if let Some(id) = map.remove("token_id") {
            map.insert(
                "writ".into(),
                serde_json::json!(pseudonyms.pseudonym(id.as_str().unwrap_or_default())),
            );
        }
        map.insert("id".into(), serde_json::json!(r.id));
        map.insert("revoked_at".into(), serde_json::json!(time(r.revoked.at)));
        map.insert("revoked_by".into(), serde_json::json!(r.revoked.by));
        map.insert("reason".into(), serde_json::json!(r.revoked.reason));
        map.insert("in_force".into(), serde_json::json!(r.lifted.is_none()));
        if let Some(lift) = &r.lifted {
            map.insert("lifted_at".into(), serde_json::json!(time(lift.at)));
            map.insert("lifted_by".into(), serde_json::json!(lift.by));
        }
    }
    v
}

/// One line of `--list`: `id  what  revoked <when> by <who>  reason: <why>  [status]`.
fn list_line(r: &serde_json::Value) -> String {
    let s = |k: &str| r[k].as_str().unwrap_or("");
    let what = match s("kind") {
        "token_id" => format!("writ {}", s("writ")),
        "revocation_id" => format!("block {}", s("revocation_id")),
        "agent" => format!("agent {}/{}", s("tenant"), s("agent")),
        "tenant" => format!("tenant {}", s("tenant")),
        "issued_before" => {
            let before = r["before"].as_u64().unwrap_or(0);
            let at = humantime::format_rfc3339_seconds(UNIX_EPOCH + Duration::from_secs(before));
            match r["tenant"].as_str() {
                Some(t) => format!("issued before {at} in tenant {t}"),
                None => format!("issued before {at}"),
            }
        }
        other => other.to_string(),
    };
    let by = r["revoked_by"].as_str().unwrap_or("(not recorded)");
    let reason = r["reason"].as_str().unwrap_or("(none given)");
    let status = if r["in_force"].as_bool().unwrap_or(true) {
        "in force".to_string()
    } else {
        format!(
            "lifted {} by {}",
            s("lifted_at"),
            r["lifted_by"].as_str().unwrap_or("(not recorded)")
        )
    };
    format!(
        "{}\t{what}\trevoked {} by {by}\treason: {reason}\t[{status}]",
        r["id"],
        s("revoked_at")
    )
}

/// `writ revoke --lift ID`: through the gateway, or in the data directory with
/// `--offline`.
async fn lift(
    args: &RevokeArgs,
    config: &Config,
    data: &DataDir,
    operator: &Operator,
    id: i64,
) -> anyhow::Result<()> {
    let store = writ_gateway::open_store(config, data).await?;
    let record = store.revocation_record(id).await;
    store.close().await;
    if !args.offline {
        // The tenant to ask for, when this store knows the id; the gateway decides otherwise.
        let tenant = record
            .as_ref()
            .ok()
            .and_then(|r| r.as_ref())
            .and_then(|r| r.revocation.tenant().map(str::to_string));
        let gateway = GatewayClient::new(config, &args.gateway)?;
        let writ = admin_writ(data, config, operator, tenant.as_deref(), ADMIN_TTL)?;
        let path = format!("/admin/v1/revocations/{id}/lift");
        let v = gateway
            .post(&path, &writ, &serde_json::json!({}))
            .await
            .map_err(|e| {
                unreached(
                    e,
                    "nothing was lifted (for a stopped gateway, --offline records the lift for \
                     its next start)",
                    "`writ revoke --list` shows whether it was lifted",
                )
            })?;
        let url = gateway.url();
        not_shared(&v, &format!("lifted revocation {id} at {url}"))?;
        println!(
            "lifted revocation {id}: {} (effective now at {url})",
            list_line(&v["lifted"])
        );
        return Ok(());
    }
    let Some(record) = record? else {
        bail!("no revocation with id {id}; `writ revoke --list --offline` shows them");
    };
    if !record.revocation.is_liftable() {
        bail!(
            "revocation {id} cannot be lifted: only agent and tenant revocations can; a writ's \
             revocation (token id, block) and the kill switch are permanent"
        );
    }
    if record.lifted.is_some() {
        bail!("revocation {id} was already lifted");
    }
    let store = writ_gateway::open_store(config, data).await?;
    let note = RevocationNote {
        at: unix_now(),
        by: Some(operator.to_string()),
        reason: None,
    };
    let lifted = store.lift_revocations(&record.revocation, &note).await;
    store.close().await;
    lifted?;
    let mut log = OperatorLog::new(&config.audit, data, operator.clone())?;
    let entry = log.record(writ_audit::Kind::Revocation, "lift_revocation");
    entry.tenant = record.revocation.tenant().map(str::to_string);
    entry.agent = Some(operator.to_string());
    if let Some(detail) = entry.detail.as_mut() {
        detail.insert(
            "revocation".into(),
            pseudonymized(&record.revocation, data)?,
        );
        detail.insert("id".into(), serde_json::json!(id));
    }
    log.commit().await?;
    println!(
        "lifted revocation {id}: {} (--offline: recorded in {} only, applied when a gateway starts)",
        describe(&record.revocation),
        data.database_path().display()
    );
    Ok(())
}
