//! `writ admin add|list|remove|enrol`: the people who sign in to the console as admins,
//! of one tenant or of every tenant, each with a passkey enrolled through a one-time link
//! printed when they are added (or asked for anew), through the running gateway's admin
//! API (`/admin/v1/admins`, `/admin/v1/tenants/{t}/admins`).

use http::Method;
use serde_json::{Value, json};

use crate::admin_cli::{AdminArgs, AdminSession, Outcome, Scope, entries, table, time};
use crate::approve::inert;

/// `writ admin` commands about console admins.
#[derive(Debug, clap::Subcommand)]
pub enum ConsoleAdminCommand {
    /// Add a console admin and print their one-time enrolment link (to stdout, this once).
    Add {
        /// Their name: 1-64 characters of A-Z a-z 0-9 - _ . @
        name: String,
        /// The tenant they administer; every tenant when left out (operators only).
        #[arg(long)]
        tenant: Option<String>,
        #[command(flatten)]
        args: AdminArgs,
    },
    /// List console admins (of a tenant, or every admin).
    List {
        /// Only the admins of this tenant.
        #[arg(long)]
        tenant: Option<String>,
        #[command(flatten)]
        args: AdminArgs,
    },
    /// Remove a console admin: their passkeys and link stop working, their sessions end.
    Remove {
        /// Their name.
        name: String,
        /// The tenant they administer; left out: an admin of every tenant.
        #[arg(long)]
        tenant: Option<String>,
        #[command(flatten)]
        args: AdminArgs,
    },
    /// Print a new one-time enrolment link for a console admin (voiding their earlier one).
    Enrol {
        /// Their name.
        name: String,
        /// The tenant they administer; left out: an admin of every tenant.
        #[arg(long)]
        tenant: Option<String>,
        #[command(flatten)]
        args: AdminArgs,
    },
}

/// The admin API path of the admins of `tenant` (`None`: of every tenant).
fn admins_path(tenant: Option<&str>) -> String {
    match tenant {
        Some(t) => format!("/admin/v1/tenants/{t}/admins"),
        None => "/admin/v1/admins".to_string(),
    }
}

fn scope(tenant: Option<&str>) -> Scope<'_> {
    tenant.map_or(Scope::Every, Scope::Tenant)
}

pub async fn run(cmd: ConsoleAdminCommand) -> anyhow::Result<()> {
    match cmd {
        ConsoleAdminCommand::Add { name, tenant, args } => {
            let name = person_name(&name)?;
            let tenant = tenant_name(tenant.as_deref())?;
            let session = AdminSession::open(&args)?;
            let check = "`writ admin list` shows whether it was";
            let answer = session
                .change(
                    Method::POST,
                    scope(tenant),
                    &admins_path(tenant),
                    Some(&json!({ "name": name })),
                    Outcome {
                        nothing: "no admin was added",
                        check,
                    },
                )
                .await?;
            print_link(&session, &answer, &format!("added console admin {name}"))?;
        }
        ConsoleAdminCommand::List { tenant, args } => {
            let tenant = tenant_name(tenant.as_deref())?;
            let session = AdminSession::open(&args)?;
            let answer = session.read(scope(tenant), &admins_path(tenant)).await?;
            if !session.printed_json(&answer)? {
                print!("{}", list_text(&answer));
            }
        }
        ConsoleAdminCommand::Remove { name, tenant, args } => {
            let name = person_name(&name)?;
            let tenant = tenant_name(tenant.as_deref())?;
            let session = AdminSession::open(&args)?;
            let path = format!("{}/{name}", admins_path(tenant));
            let answer = session
                .change(
                    Method::DELETE,
                    scope(tenant),
                    &path,
                    None,
                    Outcome {
                        nothing: "no admin was removed",
                        check: "`writ admin list` shows whether it was",
                    },
                )
                .await?;
            if !session.printed_json(&answer)? {
                println!(
                    "removed console admin {name} ({}) at {}: their passkeys no longer work",
                    tenant.map_or("every tenant".to_string(), |t| format!("tenant {t}")),
                    session.url()
                );
            }
        }
        ConsoleAdminCommand::Enrol { name, tenant, args } => {
            let name = person_name(&name)?;
            let tenant = tenant_name(tenant.as_deref())?;
            let session = AdminSession::open(&args)?;
            let path = format!("{}/{name}/enrolment", admins_path(tenant));
            let answer = session
                .change(
                    Method::POST,
                    scope(tenant),
                    &path,
                    None,
                    Outcome {
                        nothing: "no link was made",
                        check: "run it again: a new link voids the earlier one",
                    },
                )
                .await?;
            print_link(&session, &answer, &format!("a new link for {name}"))?;
        }
    }
    Ok(())
}

/// Prints an answer's enrolment link: to stdout alone (or the JSON answer), with what it
/// is on stderr.
pub fn print_link(session: &AdminSession, answer: &Value, what: &str) -> anyhow::Result<()> {
    eprintln!(
        "{what} at {}. Their one-time enrolment link is printed below this once: hand it to \
         them now; opened in a browser within 24 hours, it enrols a passkey for the console. \
         A new link (`enrol`) voids it.",
        session.url()
    );
    if !session.printed_json(answer)? {
        let url = enrol_url(answer)?;
        println!("{url}");
    }
    Ok(())
}

/// The enrolment link of an answer.
pub fn enrol_url(answer: &Value) -> anyhow::Result<&str> {
    answer["enrol_url"].as_str().ok_or_else(|| {
        anyhow::anyhow!("the gateway's answer holds no enrolment link: is it a writ gateway?")
    })
}

/// `name` if it is a console person's name: 1-64 characters of `A-Z a-z 0-9 - _ . @`.
pub fn person_name(name: &str) -> anyhow::Result<&str> {
    let valid = (1..=64).contains(&name.len())
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.' | '@'));
    if valid {
        Ok(name)
    } else {
        anyhow::bail!(
            "invalid name `{}`: names are 1-64 characters of A-Z a-z 0-9 - _ . @",
            inert(name)
        )
    }
}

fn tenant_name(tenant: Option<&str>) -> anyhow::Result<Option<&str>> {
    match tenant {
        Some(t) if !writ_gateway::config::valid_name(t) => anyhow::bail!(
            "invalid tenant name `{}`: names are 1-64 characters of A-Z a-z 0-9 _ . -",
            inert(t)
        ),
        other => Ok(other),
    }
}

fn list_text(answer: &Value) -> String {
    let rows: Vec<Vec<String>> = entries(answer, "admins")
        .iter()
        .map(|a| {
            vec![
                inert(a["name"].as_str().unwrap_or("-")),
                a["tenant"]
                    .as_str()
                    .map_or_else(|| "(every tenant)".to_string(), inert),
                time(&a["created_at"]),
            ]
        })
        .collect();
    table(&["NAME", "TENANT", "ADDED"], &rows, "no console admins")
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn names_are_one_plain_path_segment() {
        assert!(person_name("root@example.com").is_ok());
        for bad in ["", "a/b", "a b", "..%2f", "\u{1b}[2J", &"a".repeat(65)] {
            let e = person_name(bad).unwrap_err().to_string();
            assert!(!e.contains('\u{1b}'), "{e}");
            let e = tenant_name(Some(bad)).unwrap_err().to_string();
            assert!(!e.contains('\u{1b}'), "{e}");
        }
        assert_eq!(tenant_name(None).unwrap(), None);
    }

    #[test]
    fn admins_read_as_a_table() {
        let listed = list_text(&json!({"admins": [
            {"name": "root", "tenant": null, "created_at": 0},
            {"name": "ann", "tenant": "acme", "created_at": 0}]}));
        assert_eq!(
            listed,
            "NAME  TENANT          ADDED\nroot  (every tenant)  1970-01-01T00:00:00Z\n\
             ann   acme            1970-01-01T00:00:00Z\n"
        );
        assert_eq!(list_text(&json!({"admins": []})), "no console admins\n");
    }
}
