//! Finding the configuration and the state every command works on, the same way for all:
//! `--config`, else `WRIT_CONFIG`, else `./writ.toml` if it exists, else the embedded
//! defaults; then `--data-dir` over the config's data directory. Each command says on
//! stderr which configuration it uses.

use std::path::{Path, PathBuf};

use anyhow::Context;
use writ_gateway::config::{Config, RawConfig, Secrets};
use writ_store::DataDir;

/// The config file looked for in the current directory.
pub const LOCAL_CONFIG: &str = "writ.toml";

/// Where a command finds the gateway's configuration and state.
#[derive(Debug, Clone, clap::Args)]
pub struct StateArgs {
    /// Configuration file (see `writ init`); else WRIT_CONFIG, else ./writ.toml if it
    /// exists, else the embedded defaults.
    #[arg(long, env = "WRIT_CONFIG")]
    pub config: Option<PathBuf>,
    /// Data directory, overriding the config.
    #[arg(long)]
    pub data_dir: Option<PathBuf>,
}

/// How `${env:…}` secrets in the config are treated.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SecretsMode {
    /// Resolved now; an unset variable is an error (`writ serve`).
    Resolve,
    /// Left unresolved when unset (operator commands, which use no upstream secret).
    Defer,
}

impl StateArgs {
    /// The configuration for an operator command: secrets referencing unset variables
    /// are deferred, since no operator command uses them.
    pub fn load(&self) -> anyhow::Result<Config> {
        self.load_with(SecretsMode::Defer)
    }

    /// `[log] format` of the config file these arguments find, if it sets one; `None`
    /// for the embedded defaults or a file that cannot be read (loading it reports why).
    pub fn log_format(&self) -> Option<writ_gateway::config::LogFormat> {
        self.raw_config()?.log_format()
    }

    /// `[log] level` of the config file, if it sets a valid one (`writ config check` reports
    /// an invalid one).
    pub fn log_level(&self) -> Option<String> {
        self.raw_config()?.log_level().map(str::to_string)
    }

    /// The config file as parsed, before it is checked; `None` without one or if unreadable.
    fn raw_config(&self) -> Option<RawConfig> {
        let path = config_path(self.config.as_deref())?;
        let text = std::fs::read_to_string(path).ok()?;
        RawConfig::from_toml(&text).ok()
    }

    /// The configuration, treating secrets as `mode` says.
    pub fn load_with(&self, mode: SecretsMode) -> anyhow::Result<Config> {
        let path = config_path(self.config.as_deref());
        let mut config = match &path {
            None => Config::embedded_default(),
            Some(path) => read(path, mode)?,
        };
        if let Some(dir) = &self.data_dir {
            config.data_dir = dir.clone();
        }
        match &path {
            Some(path) => eprintln!("using config {}", path.display()),
            None => eprintln!(
                "no {LOCAL_CONFIG}; using embedded defaults, data dir {}",
                shown(&config.data_dir)
            ),
        }
        Ok(config)
    }

    /// The configuration and the gateway state it names, which must exist: nothing is
    /// created (only `writ serve` creates a data directory and keys).
    pub fn open(&self) -> anyhow::Result<(Config, DataDir)> {
        let config = self.load()?;
        let data = DataDir::open_existing(&config.data_dir)?;
        Ok((config, data))
    }
}

/// The config file to read: `flag` (from `--config` or `WRIT_CONFIG`), else
/// `./writ.toml` if it exists; `None` for the embedded defaults.
pub fn config_path(flag: Option<&Path>) -> Option<PathBuf> {
    match flag {
        Some(path) => Some(path.to_path_buf()),
        None => {
            let local = PathBuf::from(LOCAL_CONFIG);
            local.is_file().then_some(local)
        }
    }
}

/// `./writ-data` for a relative path, as people type it.
fn shown(path: &Path) -> String {
    if path.is_relative() && !path.starts_with(".") && !path.starts_with("..") {
        format!("./{}", path.display())
    } else {
        path.display().to_string()
    }
}

fn read(path: &Path, mode: SecretsMode) -> anyhow::Result<Config> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("cannot read config {}", path.display()))?;
    if let Some(problem) = mock_upstreams(&text).into_iter().next() {
        anyhow::bail!("invalid config {}: {problem}", path.display());
    }
    let raw = RawConfig::from_toml(&text)
        .with_context(|| format!("invalid config {}", path.display()))?;
    let env = |name: &str| std::env::var(name).ok();
    let secrets = match mode {
        SecretsMode::Resolve => Secrets::Resolve(&env),
        SecretsMode::Defer => Secrets::Defer(&env),
    };
    Config::validate(raw, secrets).map_err(|errors| {
        anyhow::Error::new(errors).context(format!(
            "invalid config {} (`writ config check` lists every problem)",
            path.display()
        ))
    })
}

/// One problem per upstream of a config's text that is still `kind = "mock"` (which
/// `writ init --demo` once wrote), saying what replaces it; none if the text is not TOML
/// (the parser reports that).
pub fn mock_upstreams(text: &str) -> Vec<String> {
    let Ok(table) = text.parse::<toml::Table>() else {
        return Vec::new();
    };
    let Some(upstreams) = table.get("upstreams").and_then(toml::Value::as_table) else {
        return Vec::new();
    };
    upstreams
        .iter()
        .filter(|(_, u)| u.get("kind").and_then(toml::Value::as_str) == Some("mock"))
        .map(|(name, _)| {
            format!(
                "invalid `upstreams.{name}.kind`: the gateway no longer runs a mock upstream \
                 itself; remove [upstreams.{name}] and start with `writ serve --demo`, which \
                 runs a mock of OpenAI as upstream `demo`, or point a `kind = \"openai\"` \
                 upstream at a server of your own"
            )
        })
        .collect()
}

/// The tenant a command acts on: `flag`, else the config's; validated like agent names.
pub fn tenant(flag: Option<&str>, config: &Config) -> anyhow::Result<String> {
    match flag {
        None => Ok(config.tenant.clone()),
        Some(t) if writ_gateway::config::valid_name(t) => Ok(t.to_string()),
        Some(_) => {
            anyhow::bail!("invalid --tenant: tenant names are 1-64 characters of A-Z a-z 0-9 _ . -")
        }
    }
}
