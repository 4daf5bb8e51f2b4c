//! `writ tenant`: list, add, show and delete tenants through the running gateway's admin
//! API (`/admin/v1/tenants`).

use http::Method;
use serde_json::{Value, json};

use crate::admin_cli::{
    AdminArgs, AdminSession, Outcome, Scope, entries, name, table, text, time, yes_no,
};

/// `writ tenant …` commands.
#[derive(Debug, clap::Subcommand)]
pub enum TenantCommand {
    /// List every tenant: those writ.toml declares and those added through the API.
    List(AdminArgs),
    /// Add a tenant.
    Add {
        /// Its name: 1-64 characters of A-Z a-z 0-9 _ . -
        name: String,
        /// A name for people, shown in lists.
        #[arg(long)]
        display_name: Option<String>,
        #[command(flatten)]
        args: AdminArgs,
    },
    /// Show one tenant.
    Show {
        /// The tenant's name.
        name: String,
        #[command(flatten)]
        args: AdminArgs,
    },
    /// Delete a tenant. Refused while writ.toml declares it or anything (agents,
    /// upstreams, credentials, policies, limits) still belongs to it.
    Delete {
        /// The tenant's name.
        name: String,
        #[command(flatten)]
        args: AdminArgs,
    },
}

pub async fn run(cmd: TenantCommand) -> anyhow::Result<()> {
    match cmd {
        TenantCommand::List(args) => {
            let session = AdminSession::open(&args)?;
            let answer = session.read(Scope::Every, "/admin/v1/tenants").await?;
            if !session.printed_json(&answer)? {
                print!("{}", list_text(&answer));
            }
        }
        TenantCommand::Add {
            name: tenant,
            display_name,
            args,
        } => {
            let tenant = name("tenant", &tenant)?;
            let session = AdminSession::open(&args)?;
            let mut body = json!({ "name": tenant });
            if let Some(display) = display_name {
                body["display_name"] = json!(display);
            }
            let check = format!("`writ tenant show {tenant}` shows whether it was");
            let answer = session
                .change(
                    Method::POST,
                    Scope::Every,
                    "/admin/v1/tenants",
                    Some(&body),
                    Outcome {
                        nothing: "no tenant was added",
                        check: &check,
                    },
                )
                .await?;
            if !session.printed_json(&answer)? {
                println!("added tenant {} at {}", describe(&answer), session.url());
            }
        }
        TenantCommand::Show { name: tenant, args } => {
            let tenant = name("tenant", &tenant)?;
            let session = AdminSession::open(&args)?;
            let path = format!("/admin/v1/tenants/{tenant}");
            let answer = session.read(Scope::Tenant(tenant), &path).await?;
            if !session.printed_json(&answer)? {
                print!("{}", show_text(&answer));
            }
        }
        TenantCommand::Delete { name: tenant, args } => {
            let tenant = name("tenant", &tenant)?;
            let session = AdminSession::open(&args)?;
            let path = format!("/admin/v1/tenants/{tenant}");
            let check = format!("`writ tenant show {tenant}` shows whether it is still there");
            let answer = session
                .change(
                    Method::DELETE,
                    Scope::Every,
                    &path,
                    None,
                    Outcome {
                        nothing: "no tenant was deleted",
                        check: &check,
                    },
                )
                .await?;
            if !session.printed_json(&answer)? {
                println!("deleted tenant {tenant} at {}", session.url());
            }
        }
    }
    Ok(())
}

/// `name (display name)`.
fn describe(t: &Value) -> String {
    match t["display_name"].as_str() {
        Some(display) => format!("{} ({display})", text(&t["name"])),
        None => text(&t["name"]),
    }
}

fn list_text(answer: &Value) -> String {
    let rows: Vec<Vec<String>> = entries(answer, "tenants")
        .iter()
        .map(|t| {
            vec![
                text(&t["name"]),
                text(&t["display_name"]),
                yes_no(&t["declared"]).to_string(),
                time(&t["created_at"]),
            ]
        })
        .collect();
    table(
        &["NAME", "DISPLAY NAME", "IN WRIT.TOML", "CREATED"],
        &rows,
        "no tenants",
    )
}

fn show_text(t: &Value) -> String {
    format!(
        "tenant:        {}\ndisplay name:  {}\nin writ.toml:  {}\ncreated:       {}\n",
        text(&t["name"]),
        text(&t["display_name"]),
        yes_no(&t["declared"]),
        time(&t["created_at"]),
    )
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn tenants_read_as_a_table_and_a_card() {
        let answer = json!({"tenants": [
            {"name": "acme", "display_name": "Acme Inc", "declared": false, "created_at": 0},
            {"name": "default", "declared": true, "created_at": 60},
        ]});
        let listed = list_text(&answer);
        assert!(listed.starts_with("NAME     DISPLAY NAME  IN WRIT.TOML  CREATED\n"));
        assert!(listed.contains("acme     Acme Inc      no            1970-01-01T00:00:00Z"));
        assert!(listed.contains("default  -             yes"));
        assert_eq!(list_text(&json!({"tenants": []})), "no tenants\n");
        let shown = show_text(&answer["tenants"][0]);
        assert!(shown.contains("display name:  Acme Inc"), "{shown}");
        assert_eq!(describe(&answer["tenants"][0]), "acme (Acme Inc)");
        assert_eq!(describe(&answer["tenants"][1]), "default");
    }
}
