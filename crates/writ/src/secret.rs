//! `writ secret`: an upstream's credentials for a tenant, through the running gateway's
//! admin API (`/admin/v1/tenants/{t}/credentials/{upstream}`): store a new version (read
//! from stdin only, never from the command line), list versions, activate one, retire
//! one, and re-wrap every data key under the current master key.
//!
//! No command here prints a secret: the gateway answers with versions and fingerprints.

use std::io::{BufRead, IsTerminal, Read};

use http::Method;
use serde_json::{Value, json};
use writ_store::MAX_SECRET_BYTES;
use zeroize::{Zeroize, Zeroizing};

use crate::admin_cli::{
    AdminArgs, AdminSession, Outcome, Scope, entries, name, table, text, time, yes_no,
};

/// The upstream and tenant a credential command acts on.
#[derive(Debug, Clone, clap::Args)]
pub struct Target {
    /// The upstream (the tenant's own, or a shared one).
    upstream: String,
    /// The tenant whose credential this is (default: the config's tenant).
    #[arg(long)]
    tenant: Option<String>,
}

/// `writ secret …` commands.
#[derive(Debug, clap::Subcommand)]
pub enum SecretCommand {
    /// Store a new credential version for an upstream and make it the active one.
    ///
    /// The secret is read from standard input and nowhere else (there is no flag or
    /// argument for it, so it never shows in the process list or shell history): pipe
    /// it in (`writ secret set openai < key.txt`), or type it at the terminal (it is
    /// shown as typed; one line). One trailing newline is dropped; an empty secret is
    /// refused. Prints the new version and its fingerprint, never the secret.
    Set {
        #[command(flatten)]
        target: Target,
        #[command(flatten)]
        args: AdminArgs,
    },
    /// List an upstream's credential versions: fingerprint, which is active, when each
    /// was created, activated and retired.
    List {
        #[command(flatten)]
        target: Target,
        #[command(flatten)]
        args: AdminArgs,
    },
    /// Make an earlier (or later) version the active one: roll back or forward. New
    /// requests use it at once; requests in flight finish on theirs.
    Activate {
        #[command(flatten)]
        target: Target,
        /// The version (as `writ secret list` shows).
        version: u32,
        #[command(flatten)]
        args: AdminArgs,
    },
    /// Retire a version that is not active: its ciphertext is erased for good.
    Retire {
        #[command(flatten)]
        target: Target,
        /// The version (as `writ secret list` shows).
        version: u32,
        #[command(flatten)]
        args: AdminArgs,
    },
    /// Re-wrap every credential's data key under the current master key (after a master
    /// key rotation); the secrets' ciphertexts are not touched.
    Rewrap(AdminArgs),
}

/// Why a secret read from stdin is refused.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum SecretInputError {
    /// Nothing but (at most) a newline.
    #[error(
        "no secret on standard input: pipe it in (`writ secret set <upstream> < file`) or type \
         it when asked"
    )]
    Empty,
    /// More than the vault keeps.
    #[error("the secret on standard input is longer than {MAX_SECRET_BYTES} bytes")]
    TooLong,
    /// Not UTF-8 text.
    #[error("the secret on standard input is not UTF-8 text")]
    NotText,
    /// Reading failed.
    #[error("cannot read standard input: {0}")]
    Read(String),
}

/// The secret `input` holds: one line from a terminal (`line_only`), else everything up to
/// the end (a key file may hold several lines, such as a service account's JSON); one
/// trailing newline (`\n` or `\r\n`) dropped. Every buffer read into is zeroized.
pub fn read_secret(
    input: &mut dyn BufRead,
    line_only: bool,
) -> Result<Zeroizing<String>, SecretInputError> {
    // One byte more than the largest secret and its newline, to tell "too long".
    let cap = (MAX_SECRET_BYTES + 3) as u64;
    let mut bytes = Zeroizing::new(Vec::new());
    let read = if line_only {
        input.take(cap).read_until(b'\n', &mut bytes)
    } else {
        input.take(cap).read_to_end(&mut bytes)
    };
    read.map_err(|e| SecretInputError::Read(e.to_string()))?;
    if bytes.last() == Some(&b'\n') {
        bytes.pop();
        if bytes.last() == Some(&b'\r') {
            bytes.pop();
        }
    }
    if bytes.is_empty() {
        return Err(SecretInputError::Empty);
    }
    if bytes.len() > MAX_SECRET_BYTES {
        return Err(SecretInputError::TooLong);
    }
    let secret = std::str::from_utf8(&bytes).map_err(|_| SecretInputError::NotText)?;
    Ok(Zeroizing::new(secret.to_string()))
}

pub async fn run(cmd: SecretCommand) -> anyhow::Result<()> {
    match cmd {
        SecretCommand::Set { target, args } => set(target, args).await,
        SecretCommand::List { target, args } => {
            let upstream = name("upstream", &target.upstream)?;
            let session = AdminSession::open(&args)?;
            let tenant = session.tenant(target.tenant.as_deref())?;
            let path = format!("/admin/v1/tenants/{tenant}/credentials/{upstream}");
            let answer = session.read(Scope::Tenant(&tenant), &path).await?;
            if !session.printed_json(&answer)? {
                print!("{}", list_text(&answer));
            }
            Ok(())
        }
        SecretCommand::Activate {
            target,
            version,
            args,
        } => version_change(target, version, args, "activate").await,
        SecretCommand::Retire {
            target,
            version,
            args,
        } => version_change(target, version, args, "retire").await,
        SecretCommand::Rewrap(args) => {
            let session = AdminSession::open(&args)?;
            let answer = session
                .change(
                    Method::POST,
                    Scope::Every,
                    "/admin/v1/vault/rewrap",
                    None,
                    Outcome {
                        nothing: "no data key was re-wrapped",
                        check: "run it again (re-wrapping twice is harmless)",
                    },
                )
                .await?;
            if !session.printed_json(&answer)? {
                println!(
                    "re-wrapped {} data key(s) under master key {} at {}",
                    text(&answer["rewrapped"]),
                    text(&answer["master_kid"]),
                    session.url()
                );
            }
            Ok(())
        }
    }
}

/// `writ secret set`: the secret from stdin to the gateway; prints its version and
/// fingerprint.
async fn set(target: Target, args: AdminArgs) -> anyhow::Result<()> {
    let upstream = name("upstream", &target.upstream)?;
    let session = AdminSession::open(&args)?;
    let tenant = session.tenant(target.tenant.as_deref())?;
    let stdin = std::io::stdin();
    let terminal = stdin.is_terminal();
    if terminal {
        eprint!(
            "secret for upstream {upstream} of tenant {tenant} (shown as you type; pipe it in \
             to avoid that), then Enter: "
        );
    }
    let secret = read_secret(&mut stdin.lock(), terminal)?;
    let mut body = json!({ "secret": secret.as_str() });
    drop(secret);
    let path = format!("/admin/v1/tenants/{tenant}/credentials/{upstream}");
    let check = format!("`writ secret list {upstream} --tenant {tenant}` shows whether it was");
    let answer = session
        .change(
            Method::POST,
            Scope::Tenant(&tenant),
            &path,
            Some(&body),
            Outcome {
                nothing: "no credential was stored",
                check: &check,
            },
        )
        .await;
    if let Some(Value::String(s)) = body.get_mut("secret") {
        s.zeroize();
    }
    let answer = answer?;
    if !session.printed_json(&answer)? {
        println!(
            "stored version {} of the credential of upstream {upstream} for tenant {tenant} \
             (fingerprint {}); it is the active one now at {}",
            text(&answer["version"]),
            text(&answer["fingerprint"]),
            session.url()
        );
    }
    Ok(())
}

/// `writ secret activate|retire`: `action` is the route's last segment.
async fn version_change(
    target: Target,
    version: u32,
    args: AdminArgs,
    action: &str,
) -> anyhow::Result<()> {
    let upstream = name("upstream", &target.upstream)?;
    let session = AdminSession::open(&args)?;
    let tenant = session.tenant(target.tenant.as_deref())?;
    let path = format!("/admin/v1/tenants/{tenant}/credentials/{upstream}/{version}/{action}");
    let nothing = format!("version {version} was not {action}d");
    let check = format!("`writ secret list {upstream} --tenant {tenant}`");
    let answer = session
        .change(
            Method::POST,
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
            "{action}d version {version} (fingerprint {}) of the credential of upstream \
             {upstream} for tenant {tenant} at {}",
            text(&answer["fingerprint"]),
            session.url()
        );
    }
    Ok(())
}

fn list_text(answer: &Value) -> String {
    let rows: Vec<Vec<String>> = entries(answer, "versions")
        .iter()
        .map(|c| {
            vec![
                text(&c["version"]),
                text(&c["fingerprint"]),
                yes_no(&c["active"]).to_string(),
                time(&c["created_at"]),
                time(&c["activated_at"]),
                time(&c["retired_at"]),
                text(&c["created_by"]),
            ]
        })
        .collect();
    table(
        &[
            "VERSION",
            "FINGERPRINT",
            "ACTIVE",
            "CREATED",
            "ACTIVATED",
            "RETIRED",
            "BY",
        ],
        &rows,
        "no credential versions",
    )
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn read(input: &[u8], line_only: bool) -> Result<String, SecretInputError> {
        read_secret(&mut std::io::Cursor::new(input), line_only).map(|s| s.to_string())
    }

    #[test]
    fn one_trailing_newline_is_dropped() {
        assert_eq!(read(b"sk-abc\n", false).unwrap(), "sk-abc");
        assert_eq!(read(b"sk-abc\r\n", false).unwrap(), "sk-abc");
        assert_eq!(read(b"sk-abc", false).unwrap(), "sk-abc");
        assert_eq!(read(b"sk-abc\n\n", false).unwrap(), "sk-abc\n");
    }

    #[test]
    fn a_pipe_gives_every_line_and_a_terminal_one() {
        let json = b"{\n  \"type\": \"service_account\"\n}\n";
        assert_eq!(
            read(json, false).unwrap(),
            "{\n  \"type\": \"service_account\"\n}"
        );
        assert_eq!(read(b"first\nsecond\n", true).unwrap(), "first");
    }

    #[test]
    fn empty_oversized_and_binary_secrets_are_refused() {
        assert_eq!(read(b"", false).unwrap_err(), SecretInputError::Empty);
        assert_eq!(read(b"\n", true).unwrap_err(), SecretInputError::Empty);
        assert_eq!(read(b"\r\n", false).unwrap_err(), SecretInputError::Empty);
        let largest = vec![b'k'; MAX_SECRET_BYTES];
        assert_eq!(read(&largest, false).unwrap().len(), MAX_SECRET_BYTES);
        let mut with_newline = largest.clone();
        with_newline.push(b'\n');
        assert_eq!(read(&with_newline, false).unwrap().len(), MAX_SECRET_BYTES);
        let too_long = vec![b'k'; MAX_SECRET_BYTES + 1];
        assert_eq!(
            read(&too_long, false).unwrap_err(),
            SecretInputError::TooLong
        );
        let far_too_long = vec![b'k'; MAX_SECRET_BYTES * 4];
        assert_eq!(
            read(&far_too_long, false).unwrap_err(),
            SecretInputError::TooLong
        );
        assert_eq!(
            read(b"\xff\xfe\n", false).unwrap_err(),
            SecretInputError::NotText
        );
    }

    #[test]
    fn versions_read_as_a_table_without_a_secret() {
        let answer = json!({"versions": [
            {"tenant": "acme", "upstream": "openai", "version": 2, "fingerprint": "ab12cd34",
             "active": true, "created_at": 0, "activated_at": 0, "created_by": "ops"},
            {"tenant": "acme", "upstream": "openai", "version": 1, "fingerprint": "00ff00ff",
             "active": false, "created_at": 0, "retired_at": 0},
        ]});
        let listed = list_text(&answer);
        assert!(
            listed.starts_with("VERSION  FINGERPRINT  ACTIVE"),
            "{listed}"
        );
        assert!(listed.contains("2        ab12cd34     yes"), "{listed}");
        assert!(listed.contains("1        00ff00ff     no"), "{listed}");
        assert_eq!(
            list_text(&json!({"versions": []})),
            "no credential versions\n"
        );
    }
}
