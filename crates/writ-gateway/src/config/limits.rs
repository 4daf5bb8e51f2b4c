//! `[limiter]` and `[[limit]]`: where limit state lives, and each limit's scope, dimension,
//! window and burst.

use std::collections::BTreeMap;
use std::time::Duration;

use serde::Deserialize;
use writ_limits::{Dimension, Field, LimitSpec, Window};
use writ_providers::UpstreamSecret;

use super::ConfigError;

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawLimiter {
    backend: Option<String>,
    redis_url: Option<String>,
    on_backend_failure: Option<String>,
    #[serde(default, with = "humantime_serde")]
    lease_ttl: Option<Duration>,
    #[serde(default, with = "humantime_serde")]
    timeout: Option<Duration>,
    default_output_tokens: Option<u64>,
}

/// A limit's `scope`: one field or a list. Read by hand rather than as an untagged enum, so
/// a wrong one is refused with the values allowed rather than "did not match any variant".
#[derive(Debug)]
pub(super) enum OneOrMany {
    One(Field),
    Many(Vec<Field>),
}

impl<'de> Deserialize<'de> for OneOrMany {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Scope;
        impl<'de> serde::de::Visitor<'de> for Scope {
            type Value = OneOrMany;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(
                    "a scope: one of \"tenant\", \"agent\", \"writ\", \"upstream\", \"model\", or a list of them",
                )
            }
            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<OneOrMany, E> {
                Field::deserialize(serde::de::value::StrDeserializer::<E>::new(v))
                    .map(OneOrMany::One)
            }
            fn visit_seq<A: serde::de::SeqAccess<'de>>(
                self,
                mut seq: A,
            ) -> Result<OneOrMany, A::Error> {
                let mut fields = Vec::new();
                while let Some(name) = seq.next_element::<String>()? {
                    fields.push(Field::deserialize(serde::de::value::StrDeserializer::<
                        A::Error,
                    >::new(&name))?);
                }
                Ok(OneOrMany::Many(fields))
            }
        }
        d.deserialize_any(Scope)
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawLimit {
    scope: OneOrMany,
    dimension: Dimension,
    per: Option<String>,
    limit: u64,
    burst: Option<u64>,
    #[serde(default, rename = "match")]
    only: BTreeMap<Field, String>,
}

/// Where limit state lives.
#[derive(Debug, Clone)]
pub enum LimiterBackend {
    /// In this process.
    Memory,
    /// In Redis, shared by every gateway using it. The URL may hold a password.
    Redis(UpstreamSecret),
}

/// The limiter's settings.
#[derive(Debug, Clone)]
pub struct LimiterConfig {
    /// The backend.
    pub backend: LimiterBackend,
    /// With the Redis backend unreachable, fall back to limits in this process instead of
    /// refusing requests (503).
    pub local_fallback: bool,
    /// How long a concurrency lease lives if its gateway dies.
    pub lease_ttl: Duration,
    /// Output tokens reserved for a request that states no cap.
    pub default_output_tokens: u64,
    /// Longest wait for the Redis backend to connect or answer one command.
    pub timeout: Duration,
}

pub(super) fn limiter_config(
    raw: RawLimiter,
    env: &super::secrets::Env,
) -> Result<LimiterConfig, ConfigError> {
    let invalid = |field: &str, reason: &str| ConfigError::Invalid {
        field: format!("limiter.{field}"),
        reason: reason.to_string(),
    };
    let backend = match (raw.backend.as_deref(), raw.redis_url) {
        (None | Some("memory"), None) => LimiterBackend::Memory,
        (Some("memory"), Some(_)) => {
            return Err(invalid("redis_url", "only with backend = \"redis\""));
        }
        (None | Some("redis"), Some(url)) => {
            let url = env.expand("limiter.redis_url", &url)?;
            if !(url.starts_with("redis://") || url.starts_with("rediss://")) {
                return Err(invalid("redis_url", "expected redis://host:port[/db]"));
            }
            LimiterBackend::Redis(UpstreamSecret::new(url))
        }
        (Some("redis"), None) => {
            return Err(invalid("redis_url", "required with backend = \"redis\""));
        }
        (Some(_), _) => return Err(invalid("backend", "expected memory or redis")),
    };
    let local_fallback = match raw.on_backend_failure.as_deref() {
        None | Some("closed") => false,
        Some("local") => true,
        Some(_) => return Err(invalid("on_backend_failure", "expected closed or local")),
    };
    let lease_ttl = raw
        .lease_ttl
        .unwrap_or(writ_limits::model::DEFAULT_LEASE_TTL);
    if lease_ttl < Duration::from_secs(1) || lease_ttl > Duration::from_secs(86_400) {
        return Err(invalid("lease_ttl", "must be 1s to 24h"));
    }
    let timeout = raw.timeout.unwrap_or(Duration::from_secs(2));
    if timeout.is_zero() || timeout > Duration::from_secs(60) {
        return Err(invalid("timeout", "must be above 0 and at most 60s"));
    }
    Ok(LimiterConfig {
        timeout,
        backend,
        local_fallback,
        lease_ttl,
        default_output_tokens: raw.default_output_tokens.unwrap_or(1024),
    })
}

pub(super) fn limit_spec(field: &str, raw: RawLimit) -> Result<LimitSpec, ConfigError> {
    let invalid = |f: &str, reason: &str| ConfigError::Invalid {
        field: format!("{field}.{f}"),
        reason: reason.to_string(),
    };
    let mut scope = match raw.scope {
        OneOrMany::One(f) => vec![f],
        OneOrMany::Many(v) => v,
    };
    scope.sort();
    scope.dedup();
    if scope.is_empty() {
        return Err(invalid(
            "scope",
            "name at least one of tenant, agent, writ, upstream, model",
        ));
    }
    if raw.limit == 0 {
        return Err(invalid("limit", "must be positive"));
    }
    let window = match (raw.dimension, raw.per.as_deref()) {
        (Dimension::Concurrency, None) => Window::InFlight,
        (Dimension::Concurrency, Some(_)) => {
            return Err(invalid(
                "per",
                "concurrency counts what is in flight; it has no window",
            ));
        }
        (_, Some("second")) => Window::Rate {
            period: Duration::from_secs(1),
        },
        (_, Some("minute")) => Window::Rate {
            period: Duration::from_secs(60),
        },
        (_, Some("hour")) => Window::Rate {
            period: Duration::from_secs(3600),
        },
        (_, Some("day")) => Window::Day,
        (_, Some("month")) => Window::Month,
        (_, _) => {
            return Err(invalid(
                "per",
                "expected second, minute, hour, day or month",
            ));
        }
    };
    let burst = match (window, raw.burst) {
        (Window::Rate { .. }, Some(0)) => return Err(invalid("burst", "must be positive")),
        (Window::Rate { .. }, Some(b)) => b,
        (_, Some(_)) => {
            return Err(invalid(
                "burst",
                "only for per-second, -minute or -hour rates",
            ));
        }
        (_, None) => raw.limit,
    };
    if raw.only.values().any(|v| v.is_empty()) {
        return Err(invalid("match", "values must be non-empty"));
    }
    Ok(LimitSpec {
        scope,
        dimension: raw.dimension,
        window,
        limit: raw.limit,
        burst,
        only: raw.only.into_iter().collect(),
    })
}

#[cfg(test)]
mod scope_messages {
    use crate::config::RawConfig;

    fn error(scope: &str) -> String {
        let text = format!(
            "[[limit]]\nscope = {scope}\ndimension = \"requests\"\nper = \"day\"\nlimit = 5\n"
        );
        match RawConfig::from_toml(&text) {
            Err(e) => e.to_string(),
            Ok(_) => panic!("accepted scope = {scope}"),
        }
    }

    #[test]
    fn a_wrong_scope_names_the_values_allowed() {
        for scope in ["5", "\"team\"", "[\"agent\", \"team\"]"] {
            let message = error(scope);
            assert!(!message.contains("untagged"), "{scope}: {message}");
            assert!(message.contains("agent"), "{scope}: {message}");
        }
        let message = error("[1]");
        assert!(message.contains("expected a string"), "{message}");
        assert!(RawConfig::from_toml("[[limit]]\nscope = [\"agent\", \"model\"]\ndimension = \"requests\"\nper = \"day\"\nlimit = 5\n").is_ok());
    }
}
