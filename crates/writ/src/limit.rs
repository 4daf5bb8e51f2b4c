//! `writ limit`: a tenant's own limits (the keys of a `[[limit]]` table, applying only to
//! that tenant) through the running gateway's admin API
//! (`/admin/v1/tenants/{t}/limits`).

use anyhow::bail;
use http::Method;
use serde_json::{Map, Value};

use crate::admin_cli::{
    AdminArgs, AdminSession, Outcome, Scope, TenantRules, apply_sets, entries, name, table, text,
    time,
};

/// The tenant's limits, as the admin API and the CLI name them.
const RULES: TenantRules = TenantRules {
    word: "limit",
    collection: "limits",
};

/// `writ limit …` commands.
#[derive(Debug, clap::Subcommand)]
pub enum LimitCommand {
    /// List a tenant's limits.
    List {
        /// The tenant (default: the config's tenant).
        #[arg(long)]
        tenant: Option<String>,
        #[command(flatten)]
        args: AdminArgs,
    },
    /// Create or replace a limit: its `[[limit]]` keys as key=value, e.g.
    /// `--set scope=agent --set dimension=requests --set per=minute --set limit=100`.
    Set {
        /// The limit's name: 1-64 characters of A-Z a-z 0-9 _ . -
        name: String,
        /// A key of the limit as key=value (repeat): the value is JSON when it parses
        /// (`100`, `["agent","model"]`), else a string (`minute`); `match.model=gpt-4o`
        /// sets key model of table match. Replaces the whole limit.
        #[arg(long = "set", value_name = "KEY=VALUE", required = true)]
        sets: Vec<String>,
        /// The tenant (default: the config's tenant).
        #[arg(long)]
        tenant: Option<String>,
        #[command(flatten)]
        args: AdminArgs,
    },
    /// Show one limit.
    Show {
        /// The limit's name.
        name: String,
        /// The tenant (default: the config's tenant).
        #[arg(long)]
        tenant: Option<String>,
        #[command(flatten)]
        args: AdminArgs,
    },
    /// Delete a limit.
    Delete {
        /// The limit's name.
        name: String,
        /// The tenant (default: the config's tenant).
        #[arg(long)]
        tenant: Option<String>,
        #[command(flatten)]
        args: AdminArgs,
    },
}

pub async fn run(cmd: LimitCommand) -> anyhow::Result<()> {
    match cmd {
        LimitCommand::List { tenant, args } => {
            RULES.list(tenant.as_deref(), &args, list_text).await?;
        }
        LimitCommand::Set {
            name: limit,
            sets,
            tenant,
            args,
        } => {
            let limit = name("limit", &limit)?;
            let spec = spec(&sets)?;
            let session = AdminSession::open(&args)?;
            let tenant = session.tenant(tenant.as_deref())?;
            let path = format!("/admin/v1/tenants/{tenant}/limits/{limit}");
            let check = format!("`writ limit show {limit} --tenant {tenant}`");
            let answer = session
                .change(
                    Method::PUT,
                    Scope::Tenant(&tenant),
                    &path,
                    Some(&spec),
                    Outcome {
                        nothing: "the limit was not set",
                        check: &check,
                    },
                )
                .await?;
            if !session.printed_json(&answer)? {
                println!(
                    "set limit {limit} of tenant {tenant} ({}) at {}",
                    compact(&answer["spec"]),
                    session.url()
                );
            }
        }
        LimitCommand::Show { name, tenant, args } => {
            RULES
                .show(&name, tenant.as_deref(), &args, show_text)
                .await?;
        }
        LimitCommand::Delete { name, tenant, args } => {
            RULES.delete(&name, tenant.as_deref(), &args).await?;
        }
    }
    Ok(())
}

/// The limit's body: its `--set` keys; the name is the route's.
fn spec(sets: &[String]) -> anyhow::Result<Value> {
    let mut spec = Map::new();
    apply_sets(&mut spec, sets)?;
    if spec.contains_key("name") {
        bail!("the limit's name is the command's argument, not a --set key");
    }
    Ok(Value::Object(spec))
}

/// `key=value key=value` of a spec, for one line.
fn compact(spec: &Value) -> String {
    match spec.as_object() {
        Some(map) => map
            .iter()
            .map(|(k, v)| format!("{k}={}", text(v)))
            .collect::<Vec<_>>()
            .join(" "),
        None => text(spec),
    }
}

fn list_text(answer: &Value) -> String {
    let rows: Vec<Vec<String>> = entries(answer, "limits")
        .iter()
        .map(|l| {
            vec![
                text(&l["name"]),
                time(&l["updated_at"]),
                compact(&l["spec"]),
            ]
        })
        .collect();
    table(&["NAME", "UPDATED", "SPEC"], &rows, "no limits")
}

fn show_text(l: &Value) -> anyhow::Result<String> {
    Ok(format!(
        "limit:    {}\ntenant:   {}\ncreated:  {}\nupdated:  {}\n{}\n",
        text(&l["name"]),
        text(&l["tenant"]),
        time(&l["created_at"]),
        time(&l["updated_at"]),
        serde_json::to_string_pretty(&l["spec"])?,
    ))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use serde_json::json;

    #[test]
    fn a_spec_is_built_from_sets() {
        let sets: Vec<String> = [
            "scope=[\"agent\",\"model\"]",
            "dimension=requests",
            "per=minute",
            "limit=100",
            "match.model=gpt-4o",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        assert_eq!(
            spec(&sets).unwrap(),
            json!({"scope": ["agent", "model"], "dimension": "requests", "per": "minute",
                   "limit": 100, "match": {"model": "gpt-4o"}})
        );
        assert!(spec(&["name=x".to_string()]).is_err());
    }

    #[test]
    fn limits_read_as_a_table_and_a_card() {
        let limit = json!({"tenant": "acme", "name": "rpm", "created_at": 0, "updated_at": 0,
            "spec": {"dimension": "requests", "limit": 100, "per": "minute", "scope": "agent"}});
        let listed = list_text(&json!({ "limits": [limit.clone()] }));
        assert!(
            listed.contains(
                "rpm   1970-01-01T00:00:00Z  dimension=requests limit=100 per=minute scope=agent"
            ),
            "{listed}"
        );
        assert!(show_text(&limit).unwrap().contains("\"limit\": 100"));
        assert_eq!(list_text(&json!({"limits": []})), "no limits\n");
    }
}
