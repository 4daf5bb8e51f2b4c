//! `writ upstream`: list, add, show, update and delete upstreams through the running
//! gateway's admin API: a tenant's own (`/admin/v1/tenants/{t}/upstreams`) or shared ones,
//! which serve every tenant (`/admin/v1/upstreams`). Settings are the keys of an
//! `[upstreams.NAME]` table, built from `--kind`, `--base-url` and `--set key=value`;
//! no secret goes here (`writ secret set` stores an upstream's credential).

use anyhow::Context;
use http::Method;
use serde_json::{Map, Value, json};

use crate::admin_cli::{
    AdminArgs, AdminSession, Outcome, Scope, apply_sets, apply_unsets, entries, name, table, text,
    time, yes_no,
};

/// Which upstreams a command acts on: a tenant's (the default) or the shared ones.
#[derive(Debug, Clone, clap::Args)]
pub struct Owner {
    /// The tenant whose upstreams these are (default: the config's tenant).
    #[arg(long, conflicts_with = "shared")]
    tenant: Option<String>,
    /// The shared upstreams, which serve every tenant (an admin of every tenant changes
    /// them).
    #[arg(long)]
    shared: bool,
}

/// `writ upstream …` commands.
#[derive(Debug, clap::Subcommand)]
pub enum UpstreamCommand {
    /// List a tenant's upstreams: its own and the shared ones (writ.toml's among them), or
    /// with `--shared` the shared ones only.
    List {
        #[command(flatten)]
        owner: Owner,
        #[command(flatten)]
        args: AdminArgs,
    },
    /// Add an upstream: the tenant's own, or with `--shared` one serving every tenant.
    Add {
        /// Its name: 1-64 characters of A-Z a-z 0-9 _ . -
        name: String,
        /// What it is: openai, anthropic, … (as `kind` in writ.toml).
        #[arg(long)]
        kind: String,
        /// Where it is (`base_url`).
        #[arg(long)]
        base_url: Option<String>,
        /// Another setting as key=value (repeat): the value is JSON when it parses
        /// (`100`, `true`, `["a"]`, `"123"`), else a string; `a.b=v` sets key b of
        /// table a. `--kind` and `--base-url` are applied last.
        #[arg(long = "set", value_name = "KEY=VALUE")]
        sets: Vec<String>,
        #[command(flatten)]
        owner: Owner,
        #[command(flatten)]
        args: AdminArgs,
    },
    /// Show one upstream and its settings.
    Show {
        /// The upstream's name.
        name: String,
        #[command(flatten)]
        owner: Owner,
        #[command(flatten)]
        args: AdminArgs,
    },
    /// Change an upstream's settings: what is not named is kept.
    Update {
        /// The upstream's name.
        name: String,
        /// A new kind.
        #[arg(long)]
        kind: Option<String>,
        /// A new base URL.
        #[arg(long)]
        base_url: Option<String>,
        /// A setting to set as key=value (repeat); read as for `add`.
        #[arg(long = "set", value_name = "KEY=VALUE")]
        sets: Vec<String>,
        /// A setting to remove (repeat; `a.b` for key b of table a).
        #[arg(long = "unset", value_name = "KEY")]
        unsets: Vec<String>,
        #[command(flatten)]
        owner: Owner,
        #[command(flatten)]
        args: AdminArgs,
    },
    /// Delete an upstream and every credential stored for it. Upstreams declared in
    /// writ.toml are changed there.
    Delete {
        /// The upstream's name.
        name: String,
        #[command(flatten)]
        owner: Owner,
        #[command(flatten)]
        args: AdminArgs,
    },
}

/// The routes of `owner`'s upstreams, the scope of the writ calling them and the owner
/// in words.
struct Place {
    collection: String,
    tenant: Option<String>,
    words: String,
}

impl Place {
    fn of(owner: &Owner, session: &AdminSession) -> anyhow::Result<Self> {
        if owner.shared {
            return Ok(Self {
                collection: "/admin/v1/upstreams".into(),
                tenant: None,
                words: "shared".into(),
            });
        }
        let tenant = session.tenant(owner.tenant.as_deref())?;
        Ok(Self {
            collection: format!("/admin/v1/tenants/{tenant}/upstreams"),
            words: format!("of tenant {tenant}"),
            tenant: Some(tenant),
        })
    }

    fn scope(&self) -> Scope<'_> {
        match &self.tenant {
            Some(t) => Scope::Tenant(t),
            None => Scope::Every,
        }
    }

    fn item(&self, upstream: &str) -> String {
        format!("{}/{upstream}", self.collection)
    }

    /// The flags that name this place again, for the commands suggested in errors.
    fn flags(&self) -> String {
        match &self.tenant {
            Some(t) => format!("--tenant {t}"),
            None => "--shared".into(),
        }
    }
}

pub async fn run(cmd: UpstreamCommand) -> anyhow::Result<()> {
    match cmd {
        UpstreamCommand::List { owner, args } => {
            let session = AdminSession::open(&args)?;
            let place = Place::of(&owner, &session)?;
            let answer = session.read(place.scope(), &place.collection).await?;
            if !session.printed_json(&answer)? {
                print!("{}", list_text(&answer));
            }
        }
        UpstreamCommand::Add {
            name: upstream,
            kind,
            base_url,
            sets,
            owner,
            args,
        } => {
            let upstream = name("upstream", &upstream)?;
            let settings = built(Map::new(), &sets, &[], Some(kind), base_url)?;
            let session = AdminSession::open(&args)?;
            let place = Place::of(&owner, &session)?;
            let body = json!({ "name": upstream, "settings": settings });
            let check = format!(
                "`writ upstream show {upstream} {}` shows whether it was",
                place.flags()
            );
            let answer = session
                .change(
                    Method::POST,
                    place.scope(),
                    &place.collection,
                    Some(&body),
                    Outcome {
                        nothing: "no upstream was added",
                        check: &check,
                    },
                )
                .await?;
            if !session.printed_json(&answer)? {
                println!(
                    "added upstream {upstream} ({}) {} at {}",
                    text(&answer["kind"]),
                    place.words,
                    session.url()
                );
            }
        }
        UpstreamCommand::Show {
            name: upstream,
            owner,
            args,
        } => {
            let upstream = name("upstream", &upstream)?;
            let session = AdminSession::open(&args)?;
            let place = Place::of(&owner, &session)?;
            let answer = session.read(place.scope(), &place.item(upstream)).await?;
            if !session.printed_json(&answer)? {
                print!("{}", show_text(&answer)?);
            }
        }
        UpstreamCommand::Update {
            name: upstream,
            kind,
            base_url,
            sets,
            unsets,
            owner,
            args,
        } => {
            let upstream = name("upstream", &upstream)?;
            if kind.is_none() && base_url.is_none() && sets.is_empty() && unsets.is_empty() {
                anyhow::bail!("nothing to change: pass --kind, --base-url, --set or --unset");
            }
            let session = AdminSession::open(&args)?;
            let place = Place::of(&owner, &session)?;
            let path = place.item(upstream);
            let current = session.read(place.scope(), &path).await?;
            let settings = built(current_settings(&current), &sets, &unsets, kind, base_url)?;
            let check = format!("`writ upstream show {upstream} {}`", place.flags());
            let answer = session
                .change(
                    Method::PUT,
                    place.scope(),
                    &path,
                    Some(&json!({ "settings": settings })),
                    Outcome {
                        nothing: "the upstream was not changed",
                        check: &check,
                    },
                )
                .await?;
            if !session.printed_json(&answer)? {
                println!(
                    "updated upstream {upstream} {} at {}",
                    place.words,
                    session.url()
                );
            }
        }
        UpstreamCommand::Delete {
            name: upstream,
            owner,
            args,
        } => {
            let upstream = name("upstream", &upstream)?;
            let session = AdminSession::open(&args)?;
            let place = Place::of(&owner, &session)?;
            let check = format!(
                "`writ upstream show {upstream} {}` shows whether it is still there",
                place.flags()
            );
            let answer = session
                .change(
                    Method::DELETE,
                    place.scope(),
                    &place.item(upstream),
                    None,
                    Outcome {
                        nothing: "no upstream was deleted",
                        check: &check,
                    },
                )
                .await?;
            if !session.printed_json(&answer)? {
                println!(
                    "deleted upstream {upstream} {} (and its credentials) at {}",
                    place.words,
                    session.url()
                );
            }
        }
    }
    Ok(())
}

/// `base` with `sets` applied, then `unsets` removed, then `kind` and `base_url` set.
fn built(
    mut base: Map<String, Value>,
    sets: &[String],
    unsets: &[String],
    kind: Option<String>,
    base_url: Option<String>,
) -> anyhow::Result<Value> {
    apply_sets(&mut base, sets)?;
    apply_unsets(&mut base, unsets)?;
    if let Some(kind) = kind {
        base.insert("kind".into(), json!(kind));
    }
    if let Some(url) = base_url {
        base.insert("base_url".into(), json!(url));
    }
    Ok(Value::Object(base))
}

/// The settings of an upstream as the API showed it, with its kind, to build its update
/// from.
fn current_settings(upstream: &Value) -> Map<String, Value> {
    let mut settings = upstream["settings"]
        .as_object()
        .cloned()
        .unwrap_or_default();
    if let Some(kind) = upstream["kind"].as_str() {
        settings
            .entry("kind")
            .or_insert_with(|| Value::String(kind.to_string()));
    }
    settings
}

/// `shared`, `tenant T`, plus `, writ.toml` for a declared one.
fn owner_text(u: &Value) -> String {
    let owner = match u["tenant"].as_str() {
        Some(t) if !u["shared"].as_bool().unwrap_or(false) => format!("tenant {t}"),
        _ => "shared".to_string(),
    };
    if u["declared"].as_bool().unwrap_or(false) {
        format!("{owner}, writ.toml")
    } else {
        owner
    }
}

fn list_text(answer: &Value) -> String {
    let rows: Vec<Vec<String>> = entries(answer, "upstreams")
        .iter()
        .map(|u| {
            vec![
                text(&u["name"]),
                text(&u["kind"]),
                owner_text(u),
                text(&u["settings"]["base_url"]),
                time(&u["updated_at"]),
            ]
        })
        .collect();
    table(
        &["NAME", "KIND", "OWNER", "BASE URL", "UPDATED"],
        &rows,
        "no upstreams",
    )
}

fn show_text(u: &Value) -> anyhow::Result<String> {
    let settings = serde_json::to_string_pretty(&u["settings"]).context("settings")?;
    Ok(format!(
        "upstream:      {}\nkind:          {}\nowner:         {}\nin writ.toml:  {}\n\
         created:       {}\nupdated:       {}\nsettings:\n{settings}\n",
        text(&u["name"]),
        text(&u["kind"]),
        owner_text(u),
        yes_no(&u["declared"]),
        time(&u["created_at"]),
        time(&u["updated_at"]),
    ))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn settings_come_from_flags_last() {
        let sets = vec![
            "kind=anthropic".to_string(),
            "timeout=30s".to_string(),
            "allow_private_network=true".to_string(),
        ];
        let built = built(
            Map::new(),
            &sets,
            &[],
            Some("openai".into()),
            Some("https://api.example.com/v1".into()),
        )
        .unwrap();
        assert_eq!(
            built,
            json!({
                "kind": "openai",
                "base_url": "https://api.example.com/v1",
                "timeout": "30s",
                "allow_private_network": true,
            })
        );
    }

    #[test]
    fn an_update_keeps_what_it_does_not_name() {
        let current = json!({
            "name": "x", "kind": "openai",
            "settings": {"base_url": "https://a.example", "timeout": "30s", "headers": {"a": "1"}},
        });
        let updated = built(
            current_settings(&current),
            &["headers.b=two".to_string()],
            &["timeout".to_string()],
            None,
            Some("https://b.example".into()),
        )
        .unwrap();
        assert_eq!(
            updated,
            json!({
                "kind": "openai",
                "base_url": "https://b.example",
                "headers": {"a": "1", "b": "two"},
            })
        );
    }

    #[test]
    fn upstreams_read_as_a_table_and_a_card() {
        let answer = json!({"upstreams": [
            {"name": "mine", "tenant": "acme", "shared": false, "declared": false, "kind": "openai",
             "settings": {"kind": "openai", "base_url": "https://a.example"}, "created_at": 0, "updated_at": 0},
            {"name": "demo", "tenant": null, "shared": true, "declared": true, "kind": "openai",
             "settings": {"kind": "openai"}, "created_at": 0, "updated_at": 0},
        ]});
        let listed = list_text(&answer);
        assert!(listed.contains("mine  openai  tenant acme"), "{listed}");
        assert!(
            listed.contains("demo  openai  shared, writ.toml  -"),
            "{listed}"
        );
        let shown = show_text(&answer["upstreams"][0]).unwrap();
        assert!(
            shown.contains("\"base_url\": \"https://a.example\""),
            "{shown}"
        );
        assert_eq!(list_text(&json!({"upstreams": []})), "no upstreams\n");
    }
}
