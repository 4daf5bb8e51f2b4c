//! `[log]`: how `writ` writes its log lines, and which `[log] level` filters it accepts.

use serde::Deserialize;

/// `[log]`: how `writ` writes its log lines.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawLog {
    pub(super) format: Option<LogFormat>,
    pub(super) level: Option<String>,
    #[serde(default)]
    pub(super) requests: bool,
}

/// How log lines are written.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// Text for people (colours only on a terminal).
    #[default]
    Text,
    /// One JSON object per line, for log collectors.
    Json,
}

/// Longest `[log] level` accepted.
const MAX_LOG_LEVEL_BYTES: usize = 512;

/// Whether `level` can be a tracing filter (`info`, `warn,writ_gateway::pipeline=debug`):
/// not empty, at most [`MAX_LOG_LEVEL_BYTES`], and only the characters filters use (no
/// spaces, quotes or control characters), so it is never echoed back raw.
pub fn check_log_level(level: &str) -> Result<(), &'static str> {
    if level.is_empty() {
        return Err("empty: set it to error, warn, info, debug or trace, or a tracing filter");
    }
    if level.len() > MAX_LOG_LEVEL_BYTES {
        return Err("longer than 512 bytes");
    }
    if !level
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b"_:,=.-".contains(&b))
    {
        return Err(
            "not a tracing filter: use error, warn, info, debug or trace, optionally per module (info,writ_gateway::pipeline=debug)",
        );
    }
    Ok(())
}
