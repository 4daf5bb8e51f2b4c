//! Loading the configuration the way every command does: `--config` file or embedded
//! defaults, then command-line overrides.

use std::path::{Path, PathBuf};

use anyhow::Context;
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
