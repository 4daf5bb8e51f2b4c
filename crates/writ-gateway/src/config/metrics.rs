//! `[metrics]`: what `/metrics` may show and who may read it.

use serde::Deserialize;

/// `[metrics]` as written.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawMetrics {
    #[serde(default)]
    agent_labels: bool,
    #[serde(default)]
    require_admin: bool,
}

/// What `/metrics` shows and who may read it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct MetricsConfig {
    /// Label token and cost series with the agent's name (at most
    /// `crate::metrics::MAX_LABEL_VALUES` agents by name, the rest `_other`). Off by
    /// default: the `agent` label is then `-` everywhere.
    pub agent_labels: bool,
    /// `/metrics` answers only requests bearing a writ with a `writ:admin` grant over every
    /// tenant (401 without a writ, 403 with another). Off by default.
    pub require_admin: bool,
}

impl From<RawMetrics> for MetricsConfig {
    fn from(raw: RawMetrics) -> Self {
        Self {
            agent_labels: raw.agent_labels,
            require_admin: raw.require_admin,
        }
    }
}

#[cfg(test)]
mod tests {
    use crate::config::{Config, RawConfig};

    fn parse(text: &str) -> Result<Config, crate::config::ConfigError> {
        Config::from_raw(RawConfig::from_toml(text)?, &|_| None)
    }

    #[test]
    fn both_options_are_off_by_default_and_read_when_set() {
        let config = parse("").unwrap();
        assert!(!config.metrics.agent_labels && !config.metrics.require_admin);
        let config = parse("[metrics]\nagent_labels = true\nrequire_admin = true\n").unwrap();
        assert!(config.metrics.agent_labels && config.metrics.require_admin);
    }

    #[test]
    fn unknown_or_mistyped_keys_are_refused() {
        assert!(parse("[metrics]\nagent_label = true\n").is_err());
        assert!(parse("[metrics]\nrequire_admin = \"yes\"\n").is_err());
        assert!(parse("[metrics]\nagent_labels = 1\n").is_err());
        assert!(parse("metrics = true\n").is_err());
    }
}
