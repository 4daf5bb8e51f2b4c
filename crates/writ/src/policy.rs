//! `writ policy`: a tenant's policies (Datalog checks applied to every request of the
//! tenant) through the running gateway's admin API (`/admin/v1/tenants/{t}/policies`).

use std::path::PathBuf;

use anyhow::{Context, bail};
use http::Method;
use serde_json::{Value, json};

use crate::admin_cli::{
    AdminArgs, AdminSession, Outcome, Scope, TenantRules, entries, name, read_stdin_text, table,
    text, time,
};

/// The tenant's policies, as the admin API and the CLI name them.
const RULES: TenantRules = TenantRules {
    word: "policy",
    collection: "policies",
};

/// `writ policy …` commands.
#[derive(Debug, clap::Subcommand)]
pub enum PolicyCommand {
    /// List a tenant's policies.
    List {
        /// The tenant (default: the config's tenant).
        #[arg(long)]
        tenant: Option<String>,
        #[command(flatten)]
        args: AdminArgs,
    },
    /// Create or replace a policy: its Datalog checks from `--file`, else from standard
    /// input. The gateway refuses a policy that does not compile, saying why.
    Set {
        /// The policy's name: 1-64 characters of A-Z a-z 0-9 _ . -
        name: String,
        /// The file holding its checks (`-`: standard input, as when left out).
        #[arg(long, value_name = "FILE")]
        file: Option<PathBuf>,
        /// The tenant (default: the config's tenant).
        #[arg(long)]
        tenant: Option<String>,
        #[command(flatten)]
        args: AdminArgs,
    },
    /// Show one policy and its checks.
    Show {
        /// The policy's name.
        name: String,
        /// The tenant (default: the config's tenant).
        #[arg(long)]
        tenant: Option<String>,
        #[command(flatten)]
        args: AdminArgs,
    },
    /// Delete a policy: the tenant's requests are no longer checked against it.
    Delete {
        /// The policy's name.
        name: String,
        /// The tenant (default: the config's tenant).
        #[arg(long)]
        tenant: Option<String>,
        #[command(flatten)]
        args: AdminArgs,
    },
}

pub async fn run(cmd: PolicyCommand) -> anyhow::Result<()> {
    match cmd {
        PolicyCommand::List { tenant, args } => {
            RULES.list(tenant.as_deref(), &args, list_text).await?;
        }
        PolicyCommand::Set {
            name: policy,
            file,
            tenant,
            args,
        } => {
            let policy = name("policy", &policy)?;
            let datalog = datalog(file)?;
            let session = AdminSession::open(&args)?;
            let tenant = session.tenant(tenant.as_deref())?;
            let path = format!("/admin/v1/tenants/{tenant}/policies/{policy}");
            let check = format!("`writ policy show {policy} --tenant {tenant}`");
            let answer = session
                .change(
                    Method::PUT,
                    Scope::Tenant(&tenant),
                    &path,
                    Some(&json!({ "datalog": datalog })),
                    Outcome {
                        nothing: "the policy was not set",
                        check: &check,
                    },
                )
                .await?;
            if !session.printed_json(&answer)? {
                println!(
                    "set policy {policy} of tenant {tenant}: it applies to the tenant's requests \
                     now at {}",
                    session.url()
                );
            }
        }
        PolicyCommand::Show { name, tenant, args } => {
            RULES
                .show(&name, tenant.as_deref(), &args, |v| Ok(show_text(v)))
                .await?;
        }
        PolicyCommand::Delete { name, tenant, args } => {
            RULES.delete(&name, tenant.as_deref(), &args).await?;
        }
    }
    Ok(())
}

/// The policy's text: from `file`, else (or for `-`) from standard input; refused empty.
fn datalog(file: Option<PathBuf>) -> anyhow::Result<String> {
    let text = match file {
        Some(path) if path.as_os_str() != "-" => std::fs::read_to_string(&path)
            .with_context(|| format!("cannot read the policy file {}", path.display()))?,
        _ => read_stdin_text("the policy's Datalog checks")?,
    };
    if text.trim().is_empty() {
        bail!("the policy is empty: give its checks (`check if …`) in --file or on standard input");
    }
    Ok(text)
}

fn list_text(answer: &Value) -> String {
    let rows: Vec<Vec<String>> = entries(answer, "policies")
        .iter()
        .map(|p| {
            vec![
                text(&p["name"]),
                time(&p["updated_at"]),
                first_line(p["datalog"].as_str().unwrap_or_default()),
            ]
        })
        .collect();
    table(&["NAME", "UPDATED", "BEGINS"], &rows, "no policies")
}

/// The first non-blank line of a policy, cut at 60 characters.
fn first_line(datalog: &str) -> String {
    let line = datalog
        .lines()
        .map(str::trim)
        .find(|l| !l.is_empty())
        .unwrap_or("");
    if line.chars().count() > 60 {
        format!("{}…", line.chars().take(59).collect::<String>())
    } else {
        line.to_string()
    }
}

fn show_text(p: &Value) -> String {
    let datalog = p["datalog"].as_str().unwrap_or_default().trim_end();
    format!(
        "policy:   {}\ntenant:   {}\ncreated:  {}\nupdated:  {}\n\n{datalog}\n",
        text(&p["name"]),
        text(&p["tenant"]),
        time(&p["created_at"]),
        time(&p["updated_at"]),
    )
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn policies_read_as_a_table_and_their_text() {
        let policy = json!({"tenant": "acme", "name": "no-gpt4", "created_at": 0, "updated_at": 0,
            "datalog": "check if model($m), $m != \"gpt-4o\";\ncheck if time($t), $t < 2030-01-01T00:00:00Z;\n"});
        let listed = list_text(&json!({ "policies": [policy.clone()] }));
        assert!(
            listed
                .contains("no-gpt4  1970-01-01T00:00:00Z  check if model($m), $m != \"gpt-4o\";\n"),
            "{listed}"
        );
        let long = format!("\n  check if {}", "x".repeat(80));
        assert_eq!(first_line(&long).chars().count(), 60);
        let shown = show_text(&policy);
        assert!(shown.contains("tenant:   acme\n"), "{shown}");
        assert!(shown.ends_with("$t < 2030-01-01T00:00:00Z;\n"), "{shown}");
        assert_eq!(list_text(&json!({"policies": []})), "no policies\n");
    }

    #[test]
    fn a_policy_file_is_read_and_an_empty_one_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("p.datalog");
        std::fs::write(&path, "check if operation(\"chat\");\n").unwrap();
        assert_eq!(
            datalog(Some(path.clone())).unwrap(),
            "check if operation(\"chat\");\n"
        );
        std::fs::write(&path, " \n").unwrap();
        assert!(
            datalog(Some(path))
                .unwrap_err()
                .to_string()
                .contains("empty")
        );
        let missing = datalog(Some(dir.path().join("missing"))).unwrap_err();
        assert!(missing.to_string().contains("cannot read the policy file"));
    }
}
