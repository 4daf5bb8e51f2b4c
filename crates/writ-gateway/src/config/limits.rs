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

/// Why a `[limiter]` or `[[limit]]` value was refused (the key is in
/// [`ConfigError::Limits`]).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LimitsConfigError {
    /// A `backend` other than `memory` or `redis`.
    #[error("expected memory or redis")]
    UnknownBackend(String),
    /// `redis_url` with `backend = "memory"`.
    #[error("only with backend = \"redis\"")]
    RedisUrlWithoutRedis,
    /// `backend = "redis"` without `redis_url`.
    #[error("required with backend = \"redis\"")]
    RedisUrlRequired,
    /// `redis_url` is not a `redis://` or `rediss://` URL (not quoted: it may hold a
    /// password).
    #[error("expected redis://host:port[/db]")]
    RedisUrlScheme,
    /// An `on_backend_failure` other than `closed` or `local`.
    #[error("expected closed or local")]
    UnknownFailurePolicy(String),
    /// `lease_ttl` below 1 s or above 24 h.
    #[error("must be 1s to 24h")]
    LeaseTtlOutOfRange,
    /// `timeout` zero or above 60 s.
    #[error("must be above 0 and at most 60s")]
    TimeoutOutOfRange,
    /// A limit whose `scope` names nothing.
    #[error("name at least one of tenant, agent, writ, upstream, model")]
    EmptyScope,
    /// `limit` or a rate's `burst` is zero.
    #[error("must be positive")]
    Zero,
    /// A concurrency limit with a `per` window.
    #[error("concurrency counts what is in flight; it has no window")]
    ConcurrencyWindow,
    /// A `per` other than `second`, `minute`, `hour`, `day`, `month` (or none, where
    /// one is needed).
    #[error("expected second, minute, hour, day or month")]
    UnknownWindow(Option<String>),
    /// `burst` on a budget or concurrency limit.
    #[error("only for per-second, -minute or -hour rates")]
    BurstWithoutRate,
    /// A `match` value that is empty.
    #[error("values must be non-empty")]
    EmptyMatch,
}

pub(super) fn limiter_config(
    raw: RawLimiter,
    env: &super::secrets::Env,
) -> Result<LimiterConfig, ConfigError> {
    use LimitsConfigError as E;
    let invalid = |field: &str, error: LimitsConfigError| ConfigError::Limits {
        field: format!("limiter.{field}"),
        error,
    };
    let backend = match (raw.backend.as_deref(), raw.redis_url) {
        (None | Some("memory"), None) => LimiterBackend::Memory,
        (Some("memory"), Some(_)) => {
            return Err(invalid("redis_url", E::RedisUrlWithoutRedis));
        }
        (None | Some("redis"), Some(url)) => {
            let url = env.expand("limiter.redis_url", &url)?;
            if !(url.starts_with("redis://") || url.starts_with("rediss://")) {
                return Err(invalid("redis_url", E::RedisUrlScheme));
            }
            LimiterBackend::Redis(UpstreamSecret::new(url))
        }
        (Some("redis"), None) => {
            return Err(invalid("redis_url", E::RedisUrlRequired));
        }
        (Some(other), _) => {
            return Err(invalid("backend", E::UnknownBackend(other.to_string())));
        }
    };
    let local_fallback = match raw.on_backend_failure.as_deref() {
        None | Some("closed") => false,
        Some("local") => true,
        Some(other) => {
            return Err(invalid(
                "on_backend_failure",
                E::UnknownFailurePolicy(other.to_string()),
            ));
        }
    };
    let lease_ttl = raw
        .lease_ttl
        .unwrap_or(writ_limits::model::DEFAULT_LEASE_TTL);
    if lease_ttl < Duration::from_secs(1) || lease_ttl > Duration::from_secs(86_400) {
        return Err(invalid("lease_ttl", E::LeaseTtlOutOfRange));
    }
    let timeout = raw.timeout.unwrap_or(Duration::from_secs(2));
    if timeout.is_zero() || timeout > Duration::from_secs(60) {
        return Err(invalid("timeout", E::TimeoutOutOfRange));
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
    use LimitsConfigError as E;
    let invalid = |f: &str, error: LimitsConfigError| ConfigError::Limits {
        field: format!("{field}.{f}"),
        error,
    };
    let mut scope = match raw.scope {
        OneOrMany::One(f) => vec![f],
        OneOrMany::Many(v) => v,
    };
    scope.sort();
    scope.dedup();
    if scope.is_empty() {
        return Err(invalid("scope", E::EmptyScope));
    }
    if raw.limit == 0 {
        return Err(invalid("limit", E::Zero));
    }
    let window = match (raw.dimension, raw.per.as_deref()) {
        (Dimension::Concurrency, None) => Window::InFlight,
        (Dimension::Concurrency, Some(_)) => {
            return Err(invalid("per", E::ConcurrencyWindow));
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
        (_, per) => {
            return Err(invalid("per", E::UnknownWindow(per.map(str::to_string))));
        }
    };
    let burst = match (window, raw.burst) {
        (Window::Rate { .. }, Some(0)) => return Err(invalid("burst", E::Zero)),
        (Window::Rate { .. }, Some(b)) => b,
        (_, Some(_)) => {
            return Err(invalid("burst", E::BurstWithoutRate));
        }
        (_, None) => raw.limit,
    };
    if raw.only.values().any(|v| v.is_empty()) {
        return Err(invalid("match", E::EmptyMatch));
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

/// A tenant's limit as the admin API takes it: the keys of a `[[limit]]` table, as JSON.
/// It applies to `tenant` alone, whatever it says: `tenant` joins its scope (so its
/// counters are the tenant's own) and its `match`. Errors name the key as
/// `limits.<name>.<key>`.
pub fn tenant_limit(
    tenant: &str,
    name: &str,
    spec: &serde_json::Value,
) -> Result<LimitSpec, ConfigError> {
    let field = format!("limits.{name}");
    let raw: RawLimit =
        serde_json::from_value(spec.clone()).map_err(|e| ConfigError::Invalid {
            field: field.clone(),
            reason: e.to_string(),
        })?;
    let mut spec = limit_spec(&field, raw)?;
    if !spec.scope.contains(&Field::Tenant) {
        spec.scope.push(Field::Tenant);
        spec.scope.sort();
    }
    spec.only.retain(|(f, _)| *f != Field::Tenant);
    spec.only.push((Field::Tenant, tenant.to_string()));
    Ok(spec)
}

#[cfg(test)]
mod refusals {
    use super::LimitsConfigError as E;
    use crate::config::{Config, ConfigError, RawConfig};

    fn refused(text: &str) -> (String, E) {
        match RawConfig::from_toml(text).and_then(|raw| Config::from_raw(raw, &|_| None)) {
            Err(ConfigError::Limits { field, error }) => (field, error),
            other => panic!("{text}: {other:?}"),
        }
    }

    #[test]
    fn limiter_refusals_name_key_and_cause() {
        let cases = [
            (
                "backend = \"etcd\"",
                "limiter.backend",
                E::UnknownBackend("etcd".into()),
            ),
            (
                "backend = \"memory\"\nredis_url = \"redis://h\"",
                "limiter.redis_url",
                E::RedisUrlWithoutRedis,
            ),
            (
                "backend = \"redis\"",
                "limiter.redis_url",
                E::RedisUrlRequired,
            ),
            (
                "redis_url = \"http://u:hunter2@h\"",
                "limiter.redis_url",
                E::RedisUrlScheme,
            ),
            (
                "on_backend_failure = \"open\"",
                "limiter.on_backend_failure",
                E::UnknownFailurePolicy("open".into()),
            ),
            (
                "lease_ttl = \"2d\"",
                "limiter.lease_ttl",
                E::LeaseTtlOutOfRange,
            ),
            ("timeout = \"0s\"", "limiter.timeout", E::TimeoutOutOfRange),
        ];
        for (body, key, error) in cases {
            assert_eq!(
                refused(&format!("[limiter]\n{body}\n")),
                (key.to_string(), error),
                "{body}"
            );
        }
    }

    #[test]
    fn limit_refusals_name_key_and_cause() {
        let limit = |rest: &str| format!("[[limit]]\nscope = \"agent\"\n{rest}\n");
        let cases = [
            (
                limit("dimension = \"requests\"\nper = \"day\"\nlimit = 0"),
                "limit[0].limit",
                E::Zero,
            ),
            (
                limit("dimension = \"concurrency\"\nper = \"day\"\nlimit = 2"),
                "limit[0].per",
                E::ConcurrencyWindow,
            ),
            (
                limit("dimension = \"requests\"\nper = \"week\"\nlimit = 2"),
                "limit[0].per",
                E::UnknownWindow(Some("week".into())),
            ),
            (
                limit("dimension = \"requests\"\nlimit = 2"),
                "limit[0].per",
                E::UnknownWindow(None),
            ),
            (
                limit("dimension = \"requests\"\nper = \"minute\"\nlimit = 2\nburst = 0"),
                "limit[0].burst",
                E::Zero,
            ),
            (
                limit("dimension = \"requests\"\nper = \"day\"\nlimit = 2\nburst = 3"),
                "limit[0].burst",
                E::BurstWithoutRate,
            ),
            (
                "[[limit]]\nscope = []\ndimension = \"requests\"\nper = \"day\"\nlimit = 2\n"
                    .to_string(),
                "limit[0].scope",
                E::EmptyScope,
            ),
        ];
        for (text, key, error) in cases {
            assert_eq!(refused(&text), (key.to_string(), error), "{text}");
        }
    }
}
