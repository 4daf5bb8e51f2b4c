//! `writ approve`, `writ deny` and `writ approvals`: a person's decision on the requests
//! an approval rule holds, through the running gateway's admin API
//! (`/admin/v1/approvals`). They act as an approver when one's token is given
//! (`WRIT_APPROVER_TOKEN`, or `--approver-token-file`), else as the operator (an admin
//! writ minted from the data directory's root key).
//!
//! What an approval shows comes from the agent that asked: text output prints it inertly,
//! every control and invisible formatting character escaped (`\u{1b}`), so no argument
//! can move the cursor, clear the screen or hide text on the terminal of the person
//! deciding.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use serde_json::{Value, json};
use zeroize::Zeroizing;

use crate::admin_cli::{
    AdminArgs, AdminSession, Outcome, OutputFormat, Scope, entries, name, reached, table, time,
};
use crate::admin_client::GatewayClient;

/// The environment variable holding an approver token.
pub const APPROVER_TOKEN_ENV: &str = "WRIT_APPROVER_TOKEN";

/// What every approver token starts with.
const APPROVER_TOKEN_PREFIX: &str = "wap_";

/// Whose credentials a command uses: an approver's token, when one is given.
#[derive(Debug, Clone, clap::Args)]
pub struct ApproverCredentials {
    /// A file holding an approver token (`wap_…`): act as that approver. Else the token
    /// in WRIT_APPROVER_TOKEN; else act as the operator (root key of the data directory).
    #[arg(long, value_name = "PATH")]
    pub approver_token_file: Option<PathBuf>,
}

/// Which approvals `writ approvals` lists.
#[derive(Debug, Clone, clap::Args)]
pub struct ListArgs {
    /// Only approvals standing so (all when left out).
    #[arg(long, value_enum)]
    pub status: Option<Status>,
    /// Only approvals of this tenant (an approver sees their own tenant's only).
    #[arg(long)]
    pub tenant: Option<String>,
    /// Only approvals asked by this agent.
    #[arg(long)]
    pub agent: Option<String>,
    /// At most this many, newest first (1-1000).
    #[arg(long, default_value_t = 100, value_parser = clap::value_parser!(u16).range(1..=1000))]
    pub limit: u16,
    #[command(flatten)]
    pub credentials: ApproverCredentials,
    #[command(flatten)]
    pub args: AdminArgs,
}

/// Where an approval stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Status {
    /// Waiting for a decision (and not expired).
    Pending,
    /// Approved, not used yet.
    Approved,
    /// Denied.
    Denied,
    /// Approved and used.
    Used,
    /// Its writ, agent or tenant was stopped.
    Voided,
    /// Nobody decided (or used it) in time.
    Expired,
}

impl Status {
    fn as_str(self) -> &'static str {
        match self {
            Status::Pending => "pending",
            Status::Approved => "approved",
            Status::Denied => "denied",
            Status::Used => "used",
            Status::Voided => "voided",
            Status::Expired => "expired",
        }
    }
}

/// `writ approvals …`: list (the default) or show one.
#[derive(Debug, clap::Args)]
#[command(args_conflicts_with_subcommands = true)]
pub struct ApprovalsArgs {
    #[command(subcommand)]
    pub command: Option<ApprovalsCommand>,
    #[command(flatten)]
    pub list: ListArgs,
}

/// `writ approvals` subcommands.
#[derive(Debug, clap::Subcommand)]
pub enum ApprovalsCommand {
    /// List approvals, newest first (what `writ approvals` alone does).
    List(ListArgs),
    /// Show one approval: what is asked, by whom, why, and where it stands.
    Show {
        /// The approval's id (`apr_…`).
        id: String,
        #[command(flatten)]
        credentials: ApproverCredentials,
        #[command(flatten)]
        args: AdminArgs,
    },
}

/// `writ approve` and `writ deny`.
#[derive(Debug, clap::Args)]
pub struct DecideArgs {
    /// The approval's id (`apr_…`), as `writ approvals` lists it.
    pub id: String,
    /// Why, in a line (at most 500 characters); shown to the agent when denied.
    #[arg(long)]
    pub reason: Option<String>,
    #[command(flatten)]
    pub credentials: ApproverCredentials,
    #[command(flatten)]
    pub args: AdminArgs,
}

/// A running gateway and the approver talking to it.
struct ApproverSession {
    gateway: GatewayClient,
    token: Zeroizing<String>,
    output: OutputFormat,
}

/// Who a command talks to the gateway as.
enum Acting {
    /// An approver, by their token.
    Approver(Box<ApproverSession>),
    /// The operator, by admin writs minted from the root key.
    Operator(Box<AdminSession>),
}

impl Acting {
    /// The approver `credentials` (or the environment) name, else the operator.
    fn open(args: &AdminArgs, credentials: &ApproverCredentials) -> anyhow::Result<Self> {
        let Some(token) = approver_token(credentials.approver_token_file.as_deref())? else {
            return Ok(Acting::Operator(Box::new(AdminSession::open(args)?)));
        };
        let config = args.state.load()?;
        Ok(Acting::Approver(Box::new(ApproverSession {
            gateway: GatewayClient::new(&config, &args.gateway)?,
            token,
            output: args.output,
        })))
    }

    fn output(&self) -> OutputFormat {
        match self {
            Acting::Approver(a) => a.output,
            Acting::Operator(session) => session.output,
        }
    }

    fn url(&self) -> &str {
        match self {
            Acting::Approver(a) => a.gateway.url(),
            Acting::Operator(session) => session.url(),
        }
    }

    /// GETs `path`; the operator with a writ for `scope`.
    async fn read(&self, scope: Scope<'_>, path: &str) -> anyhow::Result<Value> {
        match self {
            Acting::Approver(a) => Ok(a.gateway.get(path, &a.token).await?),
            Acting::Operator(session) => session.read(scope, path).await,
        }
    }

    /// POSTs `body` to `path`; a failure says what became of the decision.
    async fn post(&self, path: &str, body: &Value, outcome: Outcome<'_>) -> anyhow::Result<Value> {
        match self {
            Acting::Approver(a) => a
                .gateway
                .post(path, &a.token, body)
                .await
                .map_err(|e| reached(e, outcome.nothing, outcome.check)),
            Acting::Operator(session) => {
                session
                    .change(http::Method::POST, Scope::Every, path, Some(body), outcome)
                    .await
            }
        }
    }

    /// Prints `answer` as pretty JSON when `--output json` asks and returns true; false
    /// when the caller prints text.
    fn printed_json(&self, answer: &Value) -> anyhow::Result<bool> {
        if self.output() == OutputFormat::Text {
            return Ok(false);
        }
        println!("{}", serde_json::to_string_pretty(answer)?);
        Ok(true)
    }
}

/// The approver token of `file`, else of [`APPROVER_TOKEN_ENV`]; `None` when neither is
/// given. Refused when empty or not an approver token.
fn approver_token(file: Option<&Path>) -> anyhow::Result<Option<Zeroizing<String>>> {
    let (token, source) = match file {
        Some(path) => {
            warn_if_readable_by_others(path);
            let text =
                Zeroizing::new(std::fs::read_to_string(path).with_context(|| {
                    format!("cannot read approver token file {}", path.display())
                })?);
            (text, format!("approver token file {}", path.display()))
        }
        None => match std::env::var(APPROVER_TOKEN_ENV) {
            Ok(value) => (Zeroizing::new(value), APPROVER_TOKEN_ENV.to_string()),
            Err(std::env::VarError::NotPresent) => return Ok(None),
            Err(std::env::VarError::NotUnicode(_)) => {
                bail!("{APPROVER_TOKEN_ENV} is not text: set it to the wap_… token, or unset it")
            }
        },
    };
    let trimmed = token.trim();
    if !trimmed.starts_with(APPROVER_TOKEN_PREFIX)
        || trimmed.len() <= APPROVER_TOKEN_PREFIX.len()
        || !trimmed.bytes().all(|b| b.is_ascii_graphic())
    {
        // Never echo what was found: it may be some other secret.
        bail!(
            "{source} does not hold an approver token (`wap_…`, as `writ approver add` \
             printed it)"
        );
    }
    Ok(Some(Zeroizing::new(trimmed.to_string())))
}

/// Warns on stderr when a token file can be read by others than its owner.
fn warn_if_readable_by_others(path: &Path) {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        if let Ok(meta) = std::fs::metadata(path)
            && meta.permissions().mode() & 0o077 != 0
        {
            eprintln!(
                "warning: {} can be read by others than you: `chmod 600` it",
                path.display()
            );
        }
    }
}

/// `id` if it has an approval id's shape (so it is one path segment as it is).
fn approval_id(id: &str) -> anyhow::Result<&str> {
    if writ_token::valid_approval_id(id) {
        Ok(id)
    } else {
        bail!(
            "`{}` is not an approval id (apr_…, as `writ approvals` lists it)",
            inert(id)
        )
    }
}

/// `writ approvals`.
pub async fn run_approvals(args: ApprovalsArgs) -> anyhow::Result<()> {
    match args.command {
        None => list(args.list).await,
        Some(ApprovalsCommand::List(list_args)) => list(list_args).await,
        Some(ApprovalsCommand::Show {
            id,
            credentials,
            args,
        }) => {
            let id = approval_id(&id)?;
            let acting = Acting::open(&args, &credentials)?;
            let answer = acting
                .read(Scope::Every, &format!("/admin/v1/approvals/{id}"))
                .await?;
            if !acting.printed_json(&answer)? {
                print!("{}", show_text(&answer));
            }
            Ok(())
        }
    }
}

async fn list(args: ListArgs) -> anyhow::Result<()> {
    let mut query = vec![format!("limit={}", args.limit)];
    if let Some(status) = args.status {
        query.push(format!("status={}", status.as_str()));
    }
    if let Some(tenant) = &args.tenant {
        query.push(format!("tenant={}", name("tenant", tenant)?));
    }
    if let Some(agent) = &args.agent {
        query.push(format!("agent={}", name("agent", agent)?));
    }
    let acting = Acting::open(&args.args, &args.credentials)?;
    let scope = args.tenant.as_deref().map_or(Scope::Every, Scope::Tenant);
    let path = format!("/admin/v1/approvals?{}", query.join("&"));
    let answer = acting.read(scope, &path).await?;
    if !acting.printed_json(&answer)? {
        print!("{}", list_text(&answer));
    }
    Ok(())
}

/// `writ approve` (`approve` true) and `writ deny`.
pub async fn run_decision(args: DecideArgs, approve: bool) -> anyhow::Result<()> {
    let id = approval_id(&args.id)?;
    let acting = Acting::open(&args.args, &args.credentials)?;
    let verb = if approve { "approve" } else { "deny" };
    let body = match &args.reason {
        Some(reason) => json!({ "reason": reason }),
        None => json!({}),
    };
    let check = format!("`writ approvals show {id}` shows whether it was decided");
    let nothing = format!("approval {id} was not decided");
    let answer = acting
        .post(
            &format!("/admin/v1/approvals/{id}/{verb}"),
            &body,
            Outcome {
                nothing: &nothing,
                check: &check,
            },
        )
        .await?;
    if !acting.printed_json(&answer)? {
        let done = if approve {
            "approved: the request it holds may now go through once"
        } else {
            "denied: the request it holds is refused"
        };
        println!(
            "{} approval {id} of agent {} (tenant {}) as {}, at {}",
            field(&answer["status"]),
            field(&answer["agent"]),
            field(&answer["tenant"]),
            field(&answer["decided_by"]),
            acting.url()
        );
        println!("{done}");
    }
    Ok(())
}

/// `s` with every character that could act on a terminal or hide text escaped as
/// `\u{…}`: control characters (C0, DEL, C1: ESC, CR, BEL, CSI…), bidirectional and
/// zero-width formatting, line and paragraph separators, and the backslash itself (so an
/// escape shown is always one made here).
pub fn inert(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        if c == '\\' {
            out.push_str("\\\\");
        } else if hidden(c) {
            let _ = write!(out, "\\u{{{:x}}}", u32::from(c));
        } else {
            out.push(c);
        }
    }
    out
}

/// Whether `c` does not print as itself: a control or an invisible formatting character.
fn hidden(c: char) -> bool {
    c.is_control()
        || matches!(c,
            '\u{ad}' // soft hyphen
            | '\u{34f}' // combining grapheme joiner
            | '\u{61c}' // Arabic letter mark
            | '\u{115f}' | '\u{1160}' // Hangul fillers
            | '\u{17b4}' | '\u{17b5}'
            | '\u{180b}'..='\u{180f}'
            | '\u{200b}'..='\u{200f}' // zero-width, LRM, RLM
            | '\u{2028}'..='\u{202e}' // separators, bidi embeddings and overrides
            | '\u{2060}'..='\u{206f}' // word joiner, bidi isolates, invisible operators
            | '\u{3164}'
            | '\u{fe00}'..='\u{fe0f}' // variation selectors
            | '\u{feff}'
            | '\u{ffa0}'
            | '\u{fff0}'..='\u{fffb}'
            | '\u{e0000}'..='\u{e0fff}' // tags, variation selectors supplement
        )
        || matches!(u32::from(c), 0xe000..=0xf8ff | 0xf0000..=0x10ffff) // private use
}

/// A field of an answer as inert text, `-` when absent or null.
fn field(v: &Value) -> String {
    match v {
        Value::String(s) => inert(s),
        Value::Null => "-".to_string(),
        other => inert(&other.to_string()),
    }
}

/// The summary as `path = value` lines, every key and string inert; strings quoted.
fn summary_lines(value: &Value, path: &str, out: &mut String) {
    match value {
        Value::Object(map) if !map.is_empty() => {
            for (key, v) in map {
                let key = inert(key);
                let next = if path.is_empty() {
                    key
                } else {
                    format!("{path}.{key}")
                };
                summary_lines(v, &next, out);
            }
        }
        Value::Array(items) if !items.is_empty() => {
            for (i, v) in items.iter().enumerate() {
                summary_lines(v, &format!("{path}[{i}]"), out);
            }
        }
        leaf => {
            let shown = match leaf {
                Value::String(s) => format!("\"{}\"", inert(s).replace('"', "\\\"")),
                other => other.to_string(),
            };
            let path = if path.is_empty() { "(summary)" } else { path };
            let _ = writeln!(out, "  {path} = {shown}");
        }
    }
}

fn list_text(answer: &Value) -> String {
    let rows: Vec<Vec<String>> = entries(answer, "approvals")
        .iter()
        .map(|a| {
            vec![
                field(&a["id"]),
                field(&a["status"]),
                field(&a["tenant"]),
                field(&a["agent"]),
                field(&a["reason"]),
                time(&a["expires_at"]),
            ]
        })
        .collect();
    table(
        &["ID", "STATUS", "TENANT", "AGENT", "REASON", "EXPIRES"],
        &rows,
        "no approvals",
    )
}

fn show_text(a: &Value) -> String {
    let mut out = format!(
        "approval:   {}\nstatus:     {}\ntenant:     {}\nagent:      {}\nkind:       {}\n\
         reason:     {}\nasked:      {}\nexpires:    {}\n",
        field(&a["id"]),
        field(&a["status"]),
        field(&a["tenant"]),
        field(&a["agent"]),
        field(&a["kind"]),
        field(&a["reason"]),
        time(&a["created_at"]),
        time(&a["expires_at"]),
    );
    if !a["decided_by"].is_null() {
        let _ = writeln!(
            out,
            "decided:    by {} ({}) at {}",
            field(&a["decided_by"]),
            field(&a["decided_method"]),
            time(&a["decided_at"]),
        );
        if !a["decision_reason"].is_null() {
            let _ = writeln!(out, "because:    {}", field(&a["decision_reason"]));
        }
    }
    let _ = writeln!(out, "summary (sha256 {}):", field(&a["summary_digest"]));
    summary_lines(&a["summary"], "", &mut out);
    out
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn inert_text_escapes_what_acts_on_a_terminal() {
        assert_eq!(
            inert("\u{1b}[2J<script>alert(1)</script>\r\u{7}"),
            "\\u{1b}[2J<script>alert(1)</script>\\u{d}\\u{7}"
        );
        assert_eq!(inert("a\u{9b}31m\u{7f}"), "a\\u{9b}31m\\u{7f}");
        assert_eq!(inert("pay\u{202e}001\u{200b}"), "pay\\u{202e}001\\u{200b}");
        assert_eq!(
            inert("x\\u{1b}"),
            "x\\\\u{1b}",
            "a typed escape is not ours"
        );
        assert_eq!(inert("zoë 東京 €"), "zoë 東京 €");
        for c in (0u32..0x20).chain(0x7f..0xa0) {
            let c = char::from_u32(c).unwrap();
            assert!(!inert(&c.to_string()).contains(c), "{c:?}");
        }
    }

    #[test]
    fn approvals_read_as_a_table_and_a_card_without_live_escapes() {
        let approval = json!({
            "id": "apr_0123456789abcdef0123456789abcdef", "status": "pending",
            "tenant": "acme", "agent": "demo", "kind": "request",
            "reason": "payments over 100", "created_at": 0, "expires_at": 300,
            "summary_digest": "ab",
            "summary": {"tool": "pay", "arguments": {
                "memo": "\u{1b}[2J<script>alert(1)</script>", "amount": 250,
                "to": ["a\"b"], "\u{1b}]0;key": true}},
            "decided_by": null,
        });
        let listed = list_text(&json!({ "approvals": [approval.clone()] }));
        assert!(listed.starts_with("ID"), "{listed}");
        assert!(listed.contains("payments over 100"));
        let shown = show_text(&approval);
        assert!(!shown.contains('\u{1b}'), "{shown}");
        assert!(
            shown.contains(r#"  arguments.memo = "\u{1b}[2J<script>alert(1)</script>""#),
            "{shown}"
        );
        assert!(shown.contains("  arguments.amount = 250"), "{shown}");
        assert!(shown.contains(r#"  arguments.to[0] = "a\"b""#), "{shown}");
        assert!(
            shown.contains(r"  arguments.\u{1b}]0;key = true"),
            "{shown}"
        );
        assert!(shown.contains("  tool = \"pay\""), "{shown}");
        assert!(!shown.contains("decided:"));
        assert_eq!(list_text(&json!({"approvals": []})), "no approvals\n");
    }

    #[test]
    fn only_approval_ids_reach_a_path() {
        assert!(approval_id("apr_0123456789abcdefABCD-_").is_ok());
        for bad in ["", "apr_", "../admin", "apr_x/approve", "apr_\u{1b}"] {
            let e = approval_id(bad).unwrap_err().to_string();
            assert!(!e.contains('\u{1b}'), "{e}");
        }
    }

    #[test]
    fn approver_tokens_are_read_from_a_file_trimmed_and_checked() {
        let dir = tempfile::tempdir().unwrap();
        let good = dir.path().join("good");
        std::fs::write(&good, "wap_abc-DEF_123\n").unwrap();
        assert_eq!(
            approver_token(Some(&good)).unwrap().unwrap().as_str(),
            "wap_abc-DEF_123"
        );
        for (i, bad) in ["", "wap_", "sk-live-123", "wap_a b", "writ_abc"]
            .iter()
            .enumerate()
        {
            let path = dir.path().join(format!("bad{i}"));
            std::fs::write(&path, bad).unwrap();
            let e = approver_token(Some(&path)).unwrap_err().to_string();
            assert!(e.contains("does not hold an approver token"), "{e}");
            assert!(!e.contains("sk-live"), "echoed: {e}");
        }
        assert!(approver_token(Some(&dir.path().join("missing"))).is_err());
    }
}
