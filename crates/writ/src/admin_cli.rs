//! What the commands over the admin API's tenancy routes (`writ tenant|upstream|secret|
//! policy|limit`) share: the flags, one session with the running gateway (an admin writ
//! minted per call, scoped to the tenant acted on), `--output`, `--set key=value`
//! settings and the text forms of the API's answers.

use std::io::IsTerminal;
use std::time::{Duration, UNIX_EPOCH};

use anyhow::bail;
use serde_json::{Map, Value};
use writ_gateway::audit::operator_log::Operator;
use writ_gateway::config::Config;
use writ_store::DataDir;

use crate::admin_client::{GatewayArgs, GatewayClient, ReachError, admin_writ};
use crate::settings::StateArgs;

/// How long the admin writs these commands mint live: one call each.
const ADMIN_TTL: Duration = Duration::from_secs(30);

/// How a command prints what the gateway answered.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum OutputFormat {
    /// Tables and sentences for people.
    #[default]
    Text,
    /// The admin API's JSON answer, as it is, for scripts (nothing for a deletion).
    Json,
}

/// The flags of every command here: where the gateway is, which config and data
/// directory (whose root key mints the admin writ), and how to print.
#[derive(Debug, Clone, clap::Args)]
pub struct AdminArgs {
    /// `text` (tables) or `json` (the admin API's answer, for scripts).
    #[arg(long, value_enum, default_value_t = OutputFormat::Text)]
    pub output: OutputFormat,
    #[command(flatten)]
    pub gateway: GatewayArgs,
    #[command(flatten)]
    pub state: StateArgs,
}

/// Whom an admin call acts for: one tenant (a writ scoped to it) or every tenant.
#[derive(Debug, Clone, Copy)]
pub enum Scope<'a> {
    /// The routes that reach every tenant (`admin_tenant("*")`).
    Every,
    /// The routes of this tenant.
    Tenant(&'a str),
}

/// What became of a change whose call failed, for the error message: `nothing` when the
/// gateway certainly did not make it, else `check` (how to see whether it did).
#[derive(Debug, Clone, Copy)]
pub struct Outcome<'a> {
    /// The change, in words, as not made (`"no tenant was added"`).
    pub nothing: &'a str,
    /// What to run to see whether it was made after all.
    pub check: &'a str,
}

/// A running gateway and the operator talking to it.
pub struct AdminSession {
    config: Config,
    data: DataDir,
    operator: Operator,
    gateway: GatewayClient,
    /// How to print answers.
    pub output: OutputFormat,
}

impl AdminSession {
    /// The gateway `args` name, with the state (and root key) of its data directory.
    pub fn open(args: &AdminArgs) -> anyhow::Result<Self> {
        let (config, data) = args.state.open()?;
        let gateway = GatewayClient::new(&config, &args.gateway)?;
        Ok(Self {
            config,
            data,
            operator: Operator::from_env(),
            gateway,
            output: args.output,
        })
    }

    /// The tenant a command acts on: `flag`, else the config's.
    pub fn tenant(&self, flag: Option<&str>) -> anyhow::Result<String> {
        crate::settings::tenant(flag, &self.config)
    }

    /// GETs `path` for `scope`.
    pub async fn read(&self, scope: Scope<'_>, path: &str) -> anyhow::Result<Value> {
        let writ = self.writ(scope)?;
        Ok(self.gateway.get(path, &writ).await?)
    }

    /// Calls `method` on `path` for `scope` with `body`; a failure says what became of
    /// the change.
    pub async fn change(
        &self,
        method: http::Method,
        scope: Scope<'_>,
        path: &str,
        body: Option<&Value>,
        outcome: Outcome<'_>,
    ) -> anyhow::Result<Value> {
        let writ = self.writ(scope)?;
        let empty = Value::Object(Map::new());
        let body = body.unwrap_or(&empty);
        let answer = match method {
            http::Method::POST => self.gateway.post(path, &writ, body).await,
            http::Method::PUT => self.gateway.put(path, &writ, body).await,
            http::Method::DELETE => self.gateway.delete(path, &writ).await,
            other => bail!("no admin change is made with {other}"),
        };
        answer.map_err(|e| reached(e, outcome.nothing, outcome.check))
    }

    /// Prints `answer` as `--output json` asks (pretty JSON; nothing when the API
    /// answered nothing) and returns false, or returns true when the caller prints text.
    pub fn printed_json(&self, answer: &Value) -> anyhow::Result<bool> {
        if self.output == OutputFormat::Text {
            return Ok(false);
        }
        if !answer.is_null() {
            println!("{}", serde_json::to_string_pretty(answer)?);
        }
        Ok(true)
    }

    /// The gateway's base URL.
    pub fn url(&self) -> &str {
        self.gateway.url()
    }

    fn writ(&self, scope: Scope<'_>) -> anyhow::Result<String> {
        let tenant = match scope {
            Scope::Every => None,
            Scope::Tenant(t) => Some(t),
        };
        admin_writ(&self.data, &self.config, &self.operator, tenant, ADMIN_TTL)
    }
}

/// The error of a call that failed, saying what became of the change first.
pub fn reached(e: ReachError, nothing: &str, check: &str) -> anyhow::Error {
    let outcome = e.outcome(nothing, check);
    anyhow::Error::new(e).context(outcome)
}

/// `name` if it is a valid name of a `what` (tenant, upstream, policy, limit): 1-64
/// characters of `A-Z a-z 0-9 _ . -`, so it is one path segment as it is.
pub fn name<'a>(what: &str, name: &'a str) -> anyhow::Result<&'a str> {
    if writ_gateway::config::valid_name(name) {
        Ok(name)
    } else {
        // Quoted as Rust does (control and direction characters escaped): the name came
        // from the command line and goes back to a terminal.
        bail!("invalid {what} name {name:?}: names are 1-64 characters of A-Z a-z 0-9 _ . -")
    }
}

/// Why a `--set` or `--unset` is refused.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum SettingError {
    /// No `=` in a `--set`.
    #[error("--set `{0}` is not key=value")]
    NotKeyValue(String),
    /// An empty key or an empty part of a dotted key.
    #[error("`{0}`: a key is one or more non-empty names joined by `.`")]
    BadKey(String),
    /// A dotted key goes through a value that is not a table.
    #[error("`{key}`: `{parent}` is already set to a value that is not a table")]
    NotATable {
        /// The key set.
        key: String,
        /// The part of it already holding a value.
        parent: String,
    },
}

/// Sets each `key=value` of `pairs` in `settings`, in order (a later one wins). The
/// value is read as JSON when it parses (`100`, `true`, `["a","b"]`, `{"x":1}`,
/// `"quoted"`), else taken as a string (`https://…`, `minute`); a dotted key
/// (`match.model=gpt-4o`) sets a key of a table, creating it.
pub fn apply_sets(settings: &mut Map<String, Value>, pairs: &[String]) -> Result<(), SettingError> {
    for pair in pairs {
        let Some((key, raw)) = pair.split_once('=') else {
            return Err(SettingError::NotKeyValue(pair.clone()));
        };
        let value = serde_json::from_str(raw).unwrap_or_else(|_| Value::String(raw.to_string()));
        let path = key_path(key)?;
        let (last, parents) = path
            .split_last()
            .ok_or_else(|| SettingError::BadKey(key.into()))?;
        let mut table = &mut *settings;
        for (i, part) in parents.iter().enumerate() {
            let slot = table
                .entry(part.to_string())
                .or_insert_with(|| Value::Object(Map::new()));
            table = slot
                .as_object_mut()
                .ok_or_else(|| SettingError::NotATable {
                    key: key.to_string(),
                    parent: path[..=i].join("."),
                })?;
        }
        table.insert(last.to_string(), value);
    }
    Ok(())
}

/// Removes each (dotted) key of `keys` from `settings`; a key not set is no error.
pub fn apply_unsets(
    settings: &mut Map<String, Value>,
    keys: &[String],
) -> Result<(), SettingError> {
    for key in keys {
        let path = key_path(key)?;
        let (last, parents) = path
            .split_last()
            .ok_or_else(|| SettingError::BadKey(key.into()))?;
        let mut table = Some(&mut *settings);
        for part in parents {
            table = table
                .and_then(|t| t.get_mut(*part))
                .and_then(Value::as_object_mut);
        }
        if let Some(t) = table {
            t.remove(*last);
        }
    }
    Ok(())
}

fn key_path(key: &str) -> Result<Vec<&str>, SettingError> {
    let path: Vec<&str> = key.split('.').collect();
    if path.iter().any(|p| p.trim().is_empty()) {
        return Err(SettingError::BadKey(key.to_string()));
    }
    Ok(path)
}

/// A Unix time of an answer as RFC 3339, `-` when absent.
pub fn time(v: &Value) -> String {
    match v.as_u64() {
        Some(secs) => {
            humantime::format_rfc3339_seconds(UNIX_EPOCH + Duration::from_secs(secs)).to_string()
        }
        None => "-".to_string(),
    }
}

/// A string field of an answer, `-` when absent or null.
pub fn text(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Null => "-".to_string(),
        other => other.to_string(),
    }
}

/// `yes`/`no` for a boolean field.
pub fn yes_no(v: &Value) -> &'static str {
    if v.as_bool().unwrap_or(false) {
        "yes"
    } else {
        "no"
    }
}

/// `rows` under `headers`, columns padded to their widest cell; `none` alone when there
/// are no rows.
pub fn table(headers: &[&str], rows: &[Vec<String>], none: &str) -> String {
    if rows.is_empty() {
        return format!("{none}\n");
    }
    let mut widths: Vec<usize> = headers.iter().map(|h| h.chars().count()).collect();
    for row in rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let line = |cells: Vec<&str>| {
        let last = cells.len().saturating_sub(1);
        let mut out = String::new();
        for (i, (cell, w)) in cells.iter().zip(&widths).enumerate() {
            out.push_str(cell);
            if i < last {
                let pad = w - cell.chars().count() + 2;
                out.extend(std::iter::repeat_n(' ', pad));
            }
        }
        out.push('\n');
        out
    };
    let mut out = line(headers.to_vec());
    for row in rows {
        out.push_str(&line(row.iter().map(String::as_str).collect()));
    }
    out
}

/// The entries of the list `key` of an answer (`{"tenants":[…]}`).
pub fn entries<'a>(answer: &'a Value, key: &str) -> &'a [Value] {
    answer[key].as_array().map_or(&[], Vec::as_slice)
}

/// Everything on stdin, for a policy: a terminal is asked for it (ended with Ctrl-D).
pub fn read_stdin_text(what: &str) -> anyhow::Result<String> {
    use std::io::Read;
    let stdin = std::io::stdin();
    if stdin.is_terminal() {
        eprintln!("type {what}, then Ctrl-D on a line of its own:");
    }
    let mut text = String::new();
    stdin.lock().read_to_string(&mut text)?;
    Ok(text)
}

/// A tenant's named rules of one kind (policies, limits): listing, showing and deleting
/// them is the same over the admin API; only the words and the rendering differ.
pub struct TenantRules {
    /// One of them, in messages (`policy`).
    pub word: &'static str,
    /// Their collection in the API's paths and the CLI (`policies`).
    pub collection: &'static str,
}

impl TenantRules {
    /// Lists the tenant's rules, printed by `render` (or as JSON).
    pub async fn list(
        &self,
        tenant: Option<&str>,
        args: &AdminArgs,
        render: impl Fn(&Value) -> String,
    ) -> anyhow::Result<()> {
        let session = AdminSession::open(args)?;
        let tenant = session.tenant(tenant)?;
        let path = format!("/admin/v1/tenants/{tenant}/{}", self.collection);
        let answer = session.read(Scope::Tenant(&tenant), &path).await?;
        if !session.printed_json(&answer)? {
            print!("{}", render(&answer));
        }
        Ok(())
    }

    /// Shows the rule `rule`, printed by `render` (or as JSON).
    pub async fn show(
        &self,
        rule: &str,
        tenant: Option<&str>,
        args: &AdminArgs,
        render: impl Fn(&Value) -> anyhow::Result<String>,
    ) -> anyhow::Result<()> {
        let rule = name(self.word, rule)?;
        let session = AdminSession::open(args)?;
        let tenant = session.tenant(tenant)?;
        let path = format!("/admin/v1/tenants/{tenant}/{}/{rule}", self.collection);
        let answer = session.read(Scope::Tenant(&tenant), &path).await?;
        if !session.printed_json(&answer)? {
            print!("{}", render(&answer)?);
        }
        Ok(())
    }

    /// Deletes the rule `rule`.
    pub async fn delete(
        &self,
        rule: &str,
        tenant: Option<&str>,
        args: &AdminArgs,
    ) -> anyhow::Result<()> {
        let rule = name(self.word, rule)?;
        let session = AdminSession::open(args)?;
        let tenant = session.tenant(tenant)?;
        let path = format!("/admin/v1/tenants/{tenant}/{}/{rule}", self.collection);
        let check = format!("`writ {} list --tenant {tenant}`", self.word);
        let nothing = format!("no {} was deleted", self.word);
        let answer = session
            .change(
                http::Method::DELETE,
                Scope::Tenant(&tenant),
                &path,
                None,
                Outcome {
                    nothing: &nothing,
                    check: &check,
                },
            )
            .await?;
        if !session.printed_json(&answer)? {
            println!(
                "deleted {} {rule} of tenant {tenant} at {}",
                self.word,
                session.url()
            );
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use serde_json::json;

    fn set(pairs: &[&str]) -> Result<Value, SettingError> {
        let mut map = Map::new();
        let pairs: Vec<String> = pairs.iter().map(|s| s.to_string()).collect();
        apply_sets(&mut map, &pairs)?;
        Ok(Value::Object(map))
    }

    #[test]
    fn values_are_json_when_they_parse_else_strings() {
        assert_eq!(
            set(&[
                "limit=100",
                "per=minute",
                "scope=[\"tenant\",\"agent\"]",
                "stream=true",
                "base_url=https://api.example.com/v1",
                "quoted=\"123\"",
                "empty=",
                "eq=a=b",
            ])
            .unwrap(),
            json!({
                "limit": 100,
                "per": "minute",
                "scope": ["tenant", "agent"],
                "stream": true,
                "base_url": "https://api.example.com/v1",
                "quoted": "123",
                "empty": "",
                "eq": "a=b",
            })
        );
    }

    #[test]
    fn dotted_keys_set_tables_and_a_later_set_wins() {
        assert_eq!(
            set(&["match.model=gpt-4o", "match.agent=a", "limit=1", "limit=2"]).unwrap(),
            json!({"match": {"model": "gpt-4o", "agent": "a"}, "limit": 2})
        );
        assert_eq!(
            set(&["limit=1", "limit.x=2"]).unwrap_err(),
            SettingError::NotATable {
                key: "limit.x".into(),
                parent: "limit".into()
            }
        );
    }

    #[test]
    fn bad_sets_are_refused() {
        assert_eq!(
            set(&["limit"]).unwrap_err(),
            SettingError::NotKeyValue("limit".into())
        );
        assert_eq!(set(&["=1"]).unwrap_err(), SettingError::BadKey("".into()));
        assert_eq!(
            set(&["a..b=1"]).unwrap_err(),
            SettingError::BadKey("a..b".into())
        );
    }

    #[test]
    fn unsets_remove_keys_and_ignore_absent_ones() {
        let mut map = set(&["a=1", "t.x=1", "t.y=2"])
            .unwrap()
            .as_object()
            .cloned()
            .unwrap();
        apply_unsets(&mut map, &["a".into(), "t.x".into(), "nope.z".into()]).unwrap();
        assert_eq!(Value::Object(map), json!({"t": {"y": 2}}));
    }

    #[test]
    fn tables_pad_columns_and_say_when_empty() {
        let rows = vec![
            vec!["acme".to_string(), "yes".to_string()],
            vec!["b".to_string(), "no".to_string()],
        ];
        assert_eq!(
            table(&["NAME", "DECLARED"], &rows, "no tenants"),
            "NAME  DECLARED\nacme  yes\nb     no\n"
        );
        assert_eq!(table(&["NAME"], &[], "no tenants"), "no tenants\n");
    }

    #[test]
    fn names_are_one_path_segment() {
        assert!(name("tenant", "acme-1.x_y").is_ok());
        for bad in ["", "a/b", "a b", "a?b", "%2e"] {
            assert!(name("tenant", bad).is_err(), "{bad}");
        }
        let shown = name("tenant", "a\u{1b}[2Jb\u{202E}c\u{7}")
            .unwrap_err()
            .to_string();
        assert!(
            !shown.contains(['\u{1b}', '\u{202E}', '\u{7}']),
            "no raw control or direction characters: {shown:?}"
        );
    }

    #[test]
    fn answers_read_as_text() {
        assert_eq!(time(&json!(0)), "1970-01-01T00:00:00Z");
        assert_eq!(time(&Value::Null), "-");
        assert_eq!(text(&json!("x")), "x");
        assert_eq!(text(&Value::Null), "-");
        assert_eq!(yes_no(&json!(true)), "yes");
        assert_eq!(entries(&json!({"tenants": [1, 2]}), "tenants").len(), 2);
        assert!(entries(&json!({}), "tenants").is_empty());
    }
}
