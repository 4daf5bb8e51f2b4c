//! `writ approver`: the people who may decide a tenant's approvals, each with a token of
//! their own, through the running gateway's admin API
//! (`/admin/v1/tenants/{t}/approvers`). A token is printed once, when its approver is
//! added, with a one-time link that enrols a passkey for the console: the gateway keeps
//! only their hashes.

use http::Method;
use serde_json::{Value, json};

use crate::admin_cli::{AdminArgs, AdminSession, Outcome, Scope, entries, table, time};
use crate::approve::{APPROVER_TOKEN_ENV, inert};
use crate::console_admin::{enrol_url, print_link};

/// `writ approver …` commands.
#[derive(Debug, clap::Subcommand)]
pub enum ApproverCommand {
    /// Add an approver of a tenant and print their token, then their one-time console
    /// enrolment link (to stdout, this once).
    Add {
        /// Their name, as approval records show it: 1-64 characters of A-Z a-z 0-9 - _ . @
        name: String,
        /// The tenant whose approvals they decide (default: the config's tenant).
        #[arg(long)]
        tenant: Option<String>,
        #[command(flatten)]
        args: AdminArgs,
    },
    /// List a tenant's approvers (names, never tokens).
    List {
        /// The tenant (default: the config's tenant).
        #[arg(long)]
        tenant: Option<String>,
        #[command(flatten)]
        args: AdminArgs,
    },
    /// Print a new one-time enrolment link for an approver's console passkey (voiding
    /// their earlier one).
    Enrol {
        /// Their name.
        name: String,
        /// The tenant (default: the config's tenant).
        #[arg(long)]
        tenant: Option<String>,
        #[command(flatten)]
        args: AdminArgs,
    },
    /// Remove an approver: their token and passkeys stop working at once.
    Remove {
        /// Their name.
        name: String,
        /// The tenant (default: the config's tenant).
        #[arg(long)]
        tenant: Option<String>,
        #[command(flatten)]
        args: AdminArgs,
    },
}

pub async fn run(cmd: ApproverCommand) -> anyhow::Result<()> {
    match cmd {
        ApproverCommand::Add { name, tenant, args } => {
            let name = approver_name(&name)?;
            let session = AdminSession::open(&args)?;
            let tenant = session.tenant(tenant.as_deref())?;
            let path = format!("/admin/v1/tenants/{tenant}/approvers");
            let check = format!("`writ approver list --tenant {tenant}` shows whether it was");
            let answer = session
                .change(
                    Method::POST,
                    Scope::Tenant(&tenant),
                    &path,
                    Some(&json!({ "name": name })),
                    Outcome {
                        nothing: "no approver was added",
                        check: &check,
                    },
                )
                .await?;
            eprintln!(
                "added approver {name} of tenant {tenant} at {}. Their token, then their \
                 one-time console enrolment link, are printed below this once and never again: \
                 hand them to them now (they set {APPROVER_TOKEN_ENV} or pass \
                 --approver-token-file; the link, opened in a browser within 24 hours, enrols \
                 a passkey). If the token is lost, remove the approver and add them again; \
                 `writ approver enrol` makes a new link.",
                session.url()
            );
            if !session.printed_json(&answer)? {
                let token = answer["token"].as_str().ok_or_else(|| {
                    anyhow::anyhow!("the gateway's answer holds no token: is it a writ gateway?")
                })?;
                let link = enrol_url(&answer)?;
                println!("{token}\n{link}");
            }
        }
        ApproverCommand::Enrol { name, tenant, args } => {
            let name = approver_name(&name)?;
            let session = AdminSession::open(&args)?;
            let tenant = session.tenant(tenant.as_deref())?;
            let path = format!("/admin/v1/tenants/{tenant}/approvers/{name}/enrolment");
            let answer = session
                .change(
                    Method::POST,
                    Scope::Tenant(&tenant),
                    &path,
                    None,
                    Outcome {
                        nothing: "no link was made",
                        check: "run it again: a new link voids the earlier one",
                    },
                )
                .await?;
            print_link(
                &session,
                &answer,
                &format!("a new link for approver {name} of tenant {tenant}"),
            )?;
        }
        ApproverCommand::List { tenant, args } => {
            let session = AdminSession::open(&args)?;
            let tenant = session.tenant(tenant.as_deref())?;
            let path = format!("/admin/v1/tenants/{tenant}/approvers");
            let answer = session.read(Scope::Tenant(&tenant), &path).await?;
            if !session.printed_json(&answer)? {
                print!("{}", list_text(&answer));
            }
        }
        ApproverCommand::Remove { name, tenant, args } => {
            let name = approver_name(&name)?;
            let session = AdminSession::open(&args)?;
            let tenant = session.tenant(tenant.as_deref())?;
            let path = format!("/admin/v1/tenants/{tenant}/approvers/{name}");
            let check = format!("`writ approver list --tenant {tenant}` shows whether it was");
            let answer = session
                .change(
                    Method::DELETE,
                    Scope::Tenant(&tenant),
                    &path,
                    None,
                    Outcome {
                        nothing: "no approver was removed",
                        check: &check,
                    },
                )
                .await?;
            if !session.printed_json(&answer)? {
                println!(
                    "removed approver {name} of tenant {tenant} at {}: their token and passkeys \
                     no longer work",
                    session.url()
                );
            }
        }
    }
    Ok(())
}

/// `name` if it is an approver name: 1-64 characters of `A-Z a-z 0-9 - _ . @` (one path
/// segment as it is).
fn approver_name(name: &str) -> anyhow::Result<&str> {
    let valid = (1..=64).contains(&name.len())
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.' | '@'));
    if valid {
        Ok(name)
    } else {
        anyhow::bail!(
            "invalid approver name `{}`: names are 1-64 characters of A-Z a-z 0-9 - _ . @",
            inert(name)
        )
    }
}

fn list_text(answer: &Value) -> String {
    let rows: Vec<Vec<String>> = entries(answer, "approvers")
        .iter()
        .map(|a| {
            vec![
                inert(a["name"].as_str().unwrap_or("-")),
                inert(a["tenant"].as_str().unwrap_or("-")),
                time(&a["created_at"]),
            ]
        })
        .collect();
    table(&["NAME", "TENANT", "ADDED"], &rows, "no approvers")
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn approver_names_are_one_plain_path_segment() {
        assert!(approver_name("alice@example.com").is_ok());
        for bad in ["", "a/b", "a b", "..%2f", "\u{1b}[2J"] {
            let e = approver_name(bad).unwrap_err().to_string();
            assert!(!e.contains('\u{1b}'), "{e}");
        }
        assert!(approver_name(&"a".repeat(65)).is_err());
    }

    #[test]
    fn approvers_read_as_a_table() {
        let listed = list_text(&json!({"approvers": [
            {"name": "alice", "tenant": "acme", "created_at": 0}]}));
        assert_eq!(
            listed,
            "NAME   TENANT  ADDED\nalice  acme    1970-01-01T00:00:00Z\n"
        );
        assert_eq!(list_text(&json!({"approvers": []})), "no approvers\n");
    }
}
