//! `writ config check`: every problem of a `writ.toml` in one run — unknown keys, unset
//! variables, invalid values, unusable TLS files — and the risky settings it allows.

use std::path::PathBuf;

use anyhow::bail;
use writ_gateway::config::{Config, RawConfig, Secrets};

/// `writ config …` commands.
#[derive(Debug, clap::Subcommand)]
pub enum ConfigCommand {
    /// Report every error and warning of the config, as `writ serve` would meet them,
    /// without starting anything. Exits 1 if there is an error; warnings alone exit 0.
    Check {
        /// The file to check; else WRIT_CONFIG, else ./writ.toml.
        #[arg(long, env = "WRIT_CONFIG")]
        config: Option<PathBuf>,
    },
}

pub fn run(cmd: ConfigCommand) -> anyhow::Result<()> {
    let ConfigCommand::Check { config } = cmd;
    let Some(path) = crate::settings::config_path(config.as_deref()) else {
        bail!(
            "no {} here and no --config: `writ serve` would run on the embedded defaults; \
             write one with `writ init`",
            crate::settings::LOCAL_CONFIG
        );
    };
    eprintln!("checking {}", path.display());
    let text = std::fs::read_to_string(&path)
        .map_err(|e| anyhow::anyhow!("cannot read config {}: {e}", path.display()))?;
    let Checked {
        errors, warnings, ..
    } = check(&text);
    for e in &errors {
        println!("error: {e}");
    }
    for w in &warnings {
        println!("warning: {w}");
    }
    if !errors.is_empty() {
        bail!(
            "{}: {} error(s), {} warning(s)",
            path.display(),
            errors.len(),
            warnings.len()
        );
    }
    println!("{}: ok, {} warning(s)", path.display(), warnings.len());
    Ok(())
}

/// What checking a config's text found.
pub(crate) struct Checked {
    /// The validated config, when there is no error.
    pub(crate) config: Option<Config>,
    /// Every problem, as `writ config check` prints them.
    pub(crate) errors: Vec<String>,
    /// The risky settings it allows.
    pub(crate) warnings: Vec<String>,
}

impl Checked {
    fn refused(errors: Vec<String>) -> Self {
        Self {
            config: None,
            errors,
            warnings: Vec::new(),
        }
    }
}

/// The errors and warnings of a config's text, secrets resolved from this environment,
/// and the config when it has no error: what `writ config check` reports, and what a
/// reload of `writ serve` applies or refuses.
pub(crate) fn check(text: &str) -> Checked {
    let (raw, problems) = RawConfig::from_toml_all(text);
    let mut errors: Vec<String> = problems.iter().map(ToString::to_string).collect();
    // A retired `kind = "mock"` is reported with what replaces it, in place of the
    // validation's "unknown kind" for the same field.
    let mocks = crate::settings::mock_upstreams(text);
    let retired: Vec<String> = mocks
        .iter()
        .filter_map(|m| m.split_once(':').map(|(field, _)| field.to_string()))
        .collect();
    errors.extend(mocks);
    let Some(raw) = raw else {
        return Checked::refused(errors);
    };
    let env = |name: &str| std::env::var(name).ok();
    let config = match Config::validate(raw, Secrets::Resolve(&env)) {
        Ok(config) => config,
        Err(problems) => {
            errors.extend(
                problems
                    .0
                    .iter()
                    .map(ToString::to_string)
                    .filter(|e| !retired.iter().any(|f| e.starts_with(f.as_str()))),
            );
            return Checked::refused(errors);
        }
    };
    // Files `writ serve` opens before listening.
    if let Some(tls) = &config.tls
        && let Err(e) = writ_gateway::serve::tls::load(&tls.cert, &tls.key)
    {
        errors.push(e.to_string());
    }
    if let Some(ca) = &config.tls_ca
        && let Err(e) = crate::admin_client::read_ca(ca)
    {
        errors.push(format!("invalid `server.tls_ca`: {e}"));
    }
    let warnings = config.warnings().iter().map(ToString::to_string).collect();
    Checked {
        config: errors.is_empty().then_some(config),
        errors,
        warnings,
    }
}
