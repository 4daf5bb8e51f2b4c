//! `writ lint jwt`: reports the weaknesses of a JSON Web Token (alg none, weak HMAC
//! secrets, algorithm confusion, lifetimes, dangerous headers) without trusting it.

use std::io::Read;
use std::time::Duration;

use anyhow::{Context, bail};
use clap::{Args, Subcommand};
use writ_detect::jwt::{JwtCheck, LintPolicy, Severity, lint};
use writ_token::{Clock, SystemClock};

/// What to lint.
#[derive(Debug, Subcommand)]
pub enum LintCommand {
    /// Lint a JWT; exits 1 when a high or critical weakness is found or it is no JWT.
    Jwt(JwtArgs),
}

/// `writ lint jwt` arguments.
#[derive(Debug, Args)]
pub struct JwtArgs {
    /// The token, or `-` to read it from standard input (keeps it out of shell history).
    token: String,
    /// A URL `jku`/`x5u` headers may point to (exact, or a prefix ending in `/`).
    #[arg(long = "allow-key-url")]
    allow_key_urls: Vec<String>,
    /// Longest acceptable lifetime from now to `exp`.
    #[arg(long, default_value = "24h", value_parser = humantime::parse_duration)]
    max_lifetime: Duration,
    /// A PEM public key the verifier holds, to catch RS→HS confusion (a file path).
    #[arg(long = "public-key")]
    public_keys: Vec<std::path::PathBuf>,
}

/// Runs `writ lint`.
pub fn run(cmd: LintCommand) -> anyhow::Result<()> {
    let LintCommand::Jwt(args) = cmd;
    let token = if args.token == "-" {
        let mut text = String::new();
        std::io::stdin()
            .take(1 << 20)
            .read_to_string(&mut text)
            .context("reading the token from standard input")?;
        text.trim().to_string()
    } else {
        args.token.trim().to_string()
    };
    let token = token.strip_prefix("Bearer ").unwrap_or(&token).to_string();
    let mut policy = LintPolicy {
        allowed_key_urls: args.allow_key_urls,
        max_lifetime: args.max_lifetime,
        ..LintPolicy::default()
    };
    for path in &args.public_keys {
        policy.public_keys_pem.push(
            std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?,
        );
    }
    let findings = lint(&token, &policy, SystemClock.now());
    if findings.is_empty() {
        println!("no weaknesses found");
        return Ok(());
    }
    for f in &findings {
        println!(
            "{:<8} {:<24} {}",
            f.severity.as_str(),
            f.id.as_str(),
            f.message
        );
    }
    if findings
        .iter()
        .any(|f| f.severity >= Severity::High || f.id == JwtCheck::Malformed)
    {
        bail!(
            "{} weakness(es): a high or critical one, or a token that is not a JWT",
            findings.len()
        );
    }
    Ok(())
}
