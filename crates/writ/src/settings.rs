//! Loading the configuration the way every command does: `--config` file or embedded
//! defaults, then command-line overrides.

use std::path::{Path, PathBuf};

use anyhow::Context;

/// Where a command finds the gateway's configuration and state.
#[derive(Debug, Clone, clap::Args)]
pub struct StateArgs {
    /// Configuration file (see `writ init`); without one, embedded defaults apply.
    #[arg(long, env = "WRIT_CONFIG")]
    pub config: Option<PathBuf>,
    /// Data directory, overriding the config.
    #[arg(long)]
    pub data_dir: Option<PathBuf>,
}

impl StateArgs {
    /// The configuration these arguments select.
    pub fn load(&self) -> anyhow::Result<Config> {
        load(self.config.as_deref(), self.data_dir.clone())
    }
}
use writ_gateway::config::{Config, RawConfig};

/// Reads `path` if given, else the embedded defaults; `data_dir` overrides the config's.
pub fn load(path: Option<&Path>, data_dir: Option<PathBuf>) -> anyhow::Result<Config> {
    let mut config = match path {
        None => Config::embedded_default(),
        Some(path) => {
            let text = std::fs::read_to_string(path)
                .with_context(|| format!("cannot read config {}", path.display()))?;
            let raw = RawConfig::from_toml(&text)
                .with_context(|| format!("invalid config {}", path.display()))?;
            Config::from_raw(raw, &|name| std::env::var(name).ok())
                .with_context(|| format!("invalid config {}", path.display()))?
        }
    };
    if let Some(dir) = data_dir {
        config.data_dir = dir;
    }
    Ok(config)
}
