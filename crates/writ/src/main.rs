//! `writ`: the command line. Runs the gateway and manages its local state.

mod admin_cli;
mod admin_client;
mod agent;
mod approve;
mod approver;
mod audit;
mod config_check;
mod console_admin;
mod init;
mod keys;
mod limit;
mod lint;
mod manual;
mod policy;
mod revoke;
mod secret;
mod serve;
mod settings;
mod tenant;
mod token;
mod unlock;
mod upstream;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

/// writ — a zero-trust credential gateway for AI agents.
#[derive(Debug, Parser)]
#[command(name = "writ", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the gateway (embedded defaults: ./writ-data, 127.0.0.1:8787, no config needed).
    Serve(serve::ServeArgs),
    /// Write a commented writ.toml showing every option.
    Init(init::InitArgs),
    /// Mint, inspect and attenuate writs.
    #[command(subcommand)]
    Token(token::TokenCommand),
    /// Register and manage agents.
    #[command(subcommand)]
    Agent(agent::AgentCommand),
    /// Add, list, show and delete tenants (through the running gateway).
    #[command(subcommand)]
    Tenant(tenant::TenantCommand),
    /// Add, list, show, update and delete upstreams, a tenant's own or shared (through the
    /// running gateway).
    #[command(subcommand)]
    Upstream(upstream::UpstreamCommand),
    /// Store (from stdin only), list, activate and retire upstream credentials; re-wrap
    /// the vault (through the running gateway).
    #[command(subcommand)]
    Secret(secret::SecretCommand),
    /// Set, list, show and delete a tenant's policies (through the running gateway).
    #[command(subcommand)]
    Policy(policy::PolicyCommand),
    /// Set, list, show and delete a tenant's limits (through the running gateway).
    #[command(subcommand)]
    Limit(limit::LimitCommand),
    /// Approve a request an approval rule holds (as an approver with WRIT_APPROVER_TOKEN or
    /// --approver-token-file, else as the operator).
    Approve(approve::DecideArgs),
    /// Deny a request an approval rule holds.
    Deny(approve::DecideArgs),
    /// List approvals (pending, decided, used, expired) or show one.
    Approvals(approve::ApprovalsArgs),
    /// Add, list and remove the approvers of a tenant (through the running gateway).
    #[command(subcommand)]
    Approver(approver::ApproverCommand),
    /// Revoke writs (one, an agent's, a tenant's, everything issued before a time); list
    /// revocations and lift an agent's or tenant's.
    Revoke(revoke::RevokeArgs),
    /// Lift a client's brute-force lock-out at the token endpoint.
    Unlock(unlock::UnlockArgs),
    /// Rotate, retire and list root keys.
    #[command(subcommand)]
    Keys(keys::KeysCommand),
    /// Operator tools: admin writs, and the console's admins.
    #[command(subcommand)]
    Admin(AdminCommand),
    /// Read, export and verify the tamper-evident audit log.
    #[command(subcommand)]
    Audit(audit::AuditCommand),
    /// Check credentials for weaknesses.
    #[command(subcommand)]
    Lint(lint::LintCommand),
    /// Check a writ.toml without starting anything.
    #[command(subcommand)]
    Config(config_check::ConfigCommand),
    /// Print the shell completion script for bash, zsh, fish, elvish or powershell.
    Completions(manual::CompletionsArgs),
    /// Print the man page, or write every page into a directory (`--dir`).
    Man(manual::ManArgs),
}

#[derive(Debug, Subcommand)]
enum AdminCommand {
    /// Mint an admin writ for the admin API (on the host holding the root key).
    Token {
        /// Limit it to one tenant; every tenant when left out.
        #[arg(long)]
        tenant: Option<String>,
        /// Lifetime (at most the config's tokens.max_ttl).
        #[arg(long, default_value = "30s", value_parser = humantime::parse_duration)]
        ttl: std::time::Duration,
        /// Who will use it: its subject, which the gateway's audit records of every admin
        /// action name. Defaults to $WRIT_OPERATOR, else the login name ($USER).
        #[arg(long = "as", value_name = "NAME")]
        operator: Option<String>,
        #[command(flatten)]
        state: settings::StateArgs,
    },
    /// The console's admins: add (printing a one-time passkey enrolment link), list,
    /// remove, and a new link (enrol).
    #[command(flatten)]
    Console(console_admin::ConsoleAdminCommand),
}

/// What is logged: `WRIT_LOG` when set (tracing's filter syntax), else `configured`
/// (`writ serve`'s `[log] level`), else `info`. A filter that does not parse is an error
/// naming where it came from.
fn log_filter(
    env: Option<String>,
    configured: Option<&str>,
) -> Result<tracing_subscriber::EnvFilter, String> {
    let (filter, from) = match (&env, configured) {
        (Some(env), _) => (env.as_str(), "WRIT_LOG"),
        (None, Some(level)) => (level, "[log] level"),
        (None, None) => ("info", "the default"),
    };
    tracing_subscriber::EnvFilter::try_new(filter).map_err(|e| {
        format!("{from} is not a log filter ({e}): use error, warn, info, debug or trace, optionally per module (info,writ_gateway::pipeline=debug)")
    })
}

/// Starts logging to standard error: what [`log_filter`] selects, as text (colours only on
/// a terminal) or one JSON object per line: as `WRIT_LOG_FORMAT` says, else as `configured`
/// (`writ serve`'s `[log] format`).
fn init_logging(
    configured: Option<writ_gateway::config::LogFormat>,
    level: Option<String>,
) -> Result<(), String> {
    use std::io::IsTerminal;
    let env = std::env::var("WRIT_LOG").ok().filter(|v| !v.is_empty());
    let filter = log_filter(env, level.as_deref())?;
    let format = std::env::var("WRIT_LOG_FORMAT").unwrap_or_else(|_| {
        match configured {
            Some(writ_gateway::config::LogFormat::Json) => "json",
            Some(writ_gateway::config::LogFormat::Text) | None => "text",
        }
        .to_string()
    });
    match format.as_str() {
        "" | "text" => tracing_subscriber::fmt()
            .with_writer(std::io::stderr)
            .with_ansi(std::io::stderr().is_terminal())
            .with_env_filter(filter)
            .init(),
        "json" => tracing_subscriber::fmt()
            .json()
            .with_writer(std::io::stderr)
            .with_env_filter(filter)
            .init(),
        other => {
            return Err(format!(
                "WRIT_LOG_FORMAT is {other:?}: set it to json or text (the default), or unset it"
            ));
        }
    }
    Ok(())
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let (configured, level) = match &cli.command {
        Command::Serve(args) => (args.state().log_format(), args.state().log_level()),
        _ => (None, None),
    };
    if let Err(e) = init_logging(configured, level) {
        eprintln!("error: {e}");
        return ExitCode::FAILURE;
    }
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: could not start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let result = runtime.block_on(async {
        match cli.command {
            Command::Serve(args) => serve::run(args).await,
            Command::Init(args) => init::run(args),
            Command::Token(cmd) => token::run(cmd).await,
            Command::Agent(cmd) => agent::run(cmd).await,
            Command::Tenant(cmd) => tenant::run(cmd).await,
            Command::Upstream(cmd) => upstream::run(cmd).await,
            Command::Secret(cmd) => secret::run(cmd).await,
            Command::Policy(cmd) => policy::run(cmd).await,
            Command::Limit(cmd) => limit::run(cmd).await,
            Command::Approve(args) => approve::run_decision(args, true).await,
            Command::Deny(args) => approve::run_decision(args, false).await,
            Command::Approvals(args) => approve::run_approvals(args).await,
            Command::Approver(cmd) => approver::run(cmd).await,
            Command::Revoke(args) => revoke::run(args).await,
            Command::Keys(cmd) => keys::run(cmd).await,
            Command::Unlock(args) => unlock::run(args).await,
            Command::Audit(cmd) => audit::run(cmd).await,
            Command::Lint(cmd) => lint::run(cmd),
            Command::Config(cmd) => config_check::run(cmd),
            Command::Completions(args) => manual::completions::<Cli>(&args),
            Command::Man(args) => manual::man::<Cli>(&args),
            Command::Admin(AdminCommand::Token {
                tenant,
                ttl,
                operator,
                state,
            }) => admin_client::issue_admin_writ(&state, tenant.as_deref(), ttl, operator).await,
            Command::Admin(AdminCommand::Console(cmd)) => console_admin::run(cmd).await,
        }
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

#[cfg(test)]
mod tests {
    use clap::{CommandFactory, Parser};

    use super::{Cli, log_filter};

    #[test]
    fn the_command_line_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn no_argument_takes_a_secret_and_owners_are_one_or_the_other() {
        let parse = |args: &[&str]| {
            Cli::try_parse_from(std::iter::once("writ").chain(args.iter().copied()))
        };
        assert!(parse(&["secret", "set", "llm", "--tenant", "acme"]).is_ok());
        for refused in [
            &["secret", "set", "llm", "sk-on-argv"][..],
            &["secret", "set", "llm", "--secret", "sk-on-argv"],
            &["upstream", "list", "--tenant", "acme", "--shared"],
            &["upstream", "add", "llm"],
            &["limit", "set", "rpm"],
            &["secret", "activate", "llm", "latest"],
            &["tenant", "list", "--output", "yaml"],
            &["approve", "apr_x", "--approver-token", "wap_on-argv"],
            &["approvals", "--status", "maybe"],
            &["approvals", "--limit", "0"],
        ] {
            assert!(parse(refused).is_err(), "{refused:?}");
        }
        assert!(parse(&["upstream", "list", "--shared", "--output", "json"]).is_ok());
        assert!(parse(&["policy", "set", "p", "--file", "-", "--tenant", "acme"]).is_ok());
        for approvals in [
            &["approvals"][..],
            &["approvals", "--status", "pending", "--tenant", "acme"],
            &["approvals", "list", "--status", "denied"],
            &["approvals", "show", "apr_x", "--output", "json"],
            &[
                "approve",
                "apr_x",
                "--reason",
                "ok",
                "--approver-token-file",
                "t",
            ],
            &["deny", "apr_x"],
            &["approver", "add", "alice", "--tenant", "acme"],
            &["approver", "remove", "alice"],
        ] {
            assert!(parse(approvals).is_ok(), "{approvals:?}");
        }
    }

    #[test]
    fn writ_log_wins_over_the_configured_level_which_wins_over_info() {
        let shown = |env: Option<&str>, configured: Option<&str>| {
            log_filter(env.map(str::to_string), configured)
                .unwrap()
                .to_string()
        };
        assert_eq!(shown(Some("debug"), Some("warn")), "debug");
        assert_eq!(shown(None, Some("warn")), "warn");
        assert_eq!(shown(None, None), "info");
        // Directives are shown most specific first.
        assert_eq!(
            shown(None, Some("info,writ_gateway::pipeline=debug")),
            "writ_gateway::pipeline=debug,info"
        );
    }

    #[test]
    fn a_filter_that_does_not_parse_says_where_it_came_from() {
        let e = log_filter(None, Some("writ=loud")).unwrap_err();
        assert!(e.starts_with("[log] level is not a log filter"), "{e}");
        let e = log_filter(Some("writ=loud".into()), None).unwrap_err();
        assert!(e.starts_with("WRIT_LOG is not a log filter"), "{e}");
    }
}
