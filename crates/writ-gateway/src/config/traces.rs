//! `[traces]`: where OpenTelemetry spans are exported (OTLP/HTTP), which share of
//! requests is traced, and how the exporter batches. Absent, nothing is traced.

use std::time::Duration;

use serde::Deserialize;

use super::ConfigError;

/// Default `service.name` of the spans.
pub const DEFAULT_SERVICE_NAME: &str = "writ";
/// Default time an export (connect, send, answer) may take.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(10);
/// Default spans waiting for export at most; more are dropped (and counted).
pub const DEFAULT_MAX_QUEUE: usize = 2048;
/// Default time between exports.
pub const DEFAULT_EXPORT_INTERVAL: Duration = Duration::from_secs(5);
/// Longest export timeout and interval.
const MAX_DURATION: Duration = Duration::from_secs(300);
/// Largest queue.
const MAX_QUEUE: usize = 1_000_000;

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawTraces {
    endpoint: Option<String>,
    sample_ratio: Option<f64>,
    service_name: Option<String>,
    #[serde(default, with = "humantime_serde")]
    timeout: Option<Duration>,
    max_queue: Option<usize>,
    #[serde(default, with = "humantime_serde")]
    export_interval: Option<Duration>,
}

/// Validated `[traces]`.
#[derive(Debug, Clone, PartialEq)]
pub struct TracesConfig {
    /// The collector's OTLP/HTTP traces URL, such as `http://127.0.0.1:4318/v1/traces`.
    pub endpoint: String,
    /// The share of requests traced, 0.0 to 1.0, when the client's `traceparent` does not
    /// decide (parent-based: a client's sampled flag is followed).
    pub sample_ratio: f64,
    /// The spans' `service.name`.
    pub service_name: String,
    /// Time one export may take.
    pub timeout: Duration,
    /// Spans waiting for export at most; more are dropped.
    pub max_queue: usize,
    /// Time between exports.
    pub export_interval: Duration,
}

/// `[traces]` validated, its problems added to `problems`.
pub(super) fn traces_config(
    raw: RawTraces,
    problems: &mut Vec<ConfigError>,
) -> Option<TracesConfig> {
    let before = problems.len();
    let mut invalid = |field: &str, reason: &str| {
        problems.push(ConfigError::Invalid {
            field: format!("traces.{field}"),
            reason: reason.to_string(),
        });
    };
    let endpoint = match raw.endpoint {
        None => {
            invalid("endpoint", "required: the collector's OTLP/HTTP URL");
            String::new()
        }
        Some(url) => {
            if !endpoint_ok(&url) {
                invalid(
                    "endpoint",
                    "expected http(s)://host[:port]/path, without credentials or a query",
                );
            }
            url
        }
    };
    let sample_ratio = raw.sample_ratio.unwrap_or(1.0);
    if !(0.0..=1.0).contains(&sample_ratio) {
        invalid("sample_ratio", "must be 0.0 to 1.0");
    }
    let service_name = raw
        .service_name
        .unwrap_or_else(|| DEFAULT_SERVICE_NAME.to_string());
    if service_name.is_empty()
        || service_name.len() > 128
        || service_name.chars().any(|c| c.is_control())
    {
        invalid("service_name", "1-128 printable characters");
    }
    let mut duration = |field: &str, value: Option<Duration>, default: Duration| {
        let value = value.unwrap_or(default);
        if value.is_zero() || value > MAX_DURATION {
            invalid(field, "must be more than 0 and at most 5m");
        }
        value
    };
    let timeout = duration("timeout", raw.timeout, DEFAULT_TIMEOUT);
    let export_interval = duration(
        "export_interval",
        raw.export_interval,
        DEFAULT_EXPORT_INTERVAL,
    );
    let max_queue = raw.max_queue.unwrap_or(DEFAULT_MAX_QUEUE);
    if max_queue == 0 || max_queue > MAX_QUEUE {
        invalid("max_queue", "must be 1 to 1000000");
    }
    (problems.len() == before).then_some(TracesConfig {
        endpoint,
        sample_ratio,
        service_name,
        timeout,
        max_queue,
        export_interval,
    })
}

/// An `http`/`https` URL with a host, and neither credentials (they would be logged with
/// export errors) nor a query or fragment.
fn endpoint_ok(text: &str) -> bool {
    let Ok(url) = url::Url::parse(text) else {
        return false;
    };
    matches!(url.scheme(), "http" | "https")
        && url.host().is_some()
        && url.username().is_empty()
        && url.password().is_none()
        && url.query().is_none()
        && url.fragment().is_none()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<Option<TracesConfig>, Vec<String>> {
        let raw: RawTraces = toml::from_str(text).map_err(|e| vec![e.to_string()])?;
        let mut problems = Vec::new();
        let config = traces_config(raw, &mut problems);
        if problems.is_empty() {
            Ok(config)
        } else {
            Err(problems.iter().map(|p| p.to_string()).collect())
        }
    }

    #[test]
    fn an_endpoint_alone_takes_the_defaults() {
        let c = parse("endpoint = \"http://127.0.0.1:4318/v1/traces\"")
            .unwrap()
            .unwrap();
        assert_eq!(c.endpoint, "http://127.0.0.1:4318/v1/traces");
        assert_eq!(c.sample_ratio, 1.0);
        assert_eq!(c.service_name, "writ");
        assert_eq!(c.timeout, DEFAULT_TIMEOUT);
        assert_eq!(c.max_queue, DEFAULT_MAX_QUEUE);
        assert_eq!(c.export_interval, DEFAULT_EXPORT_INTERVAL);
    }

    #[test]
    fn every_option_is_read() {
        let c = parse(
            "endpoint = \"https://otel.example.com/v1/traces\"\nsample_ratio = 0.25\nservice_name = \"gw-eu\"\ntimeout = \"2s\"\nmax_queue = 10\nexport_interval = \"100ms\"",
        )
        .unwrap()
        .unwrap();
        assert_eq!(c.sample_ratio, 0.25);
        assert_eq!(c.service_name, "gw-eu");
        assert_eq!(c.timeout, Duration::from_secs(2));
        assert_eq!(c.max_queue, 10);
        assert_eq!(c.export_interval, Duration::from_millis(100));
    }

    #[test]
    fn hostile_or_malformed_values_are_refused_by_name() {
        let cases = [
            ("sample_ratio = 0.5", "traces.endpoint"),
            ("endpoint = \"not a url\"", "traces.endpoint"),
            ("endpoint = \"ftp://h/v1/traces\"", "traces.endpoint"),
            ("endpoint = \"http://u:p@h/v1/traces\"", "traces.endpoint"),
            ("endpoint = \"http://h/v1/traces?k=v\"", "traces.endpoint"),
            (
                "endpoint = \"http://h/\"\nsample_ratio = 1.5",
                "traces.sample_ratio",
            ),
            (
                "endpoint = \"http://h/\"\nsample_ratio = -0.1",
                "traces.sample_ratio",
            ),
            (
                "endpoint = \"http://h/\"\nsample_ratio = nan",
                "traces.sample_ratio",
            ),
            (
                "endpoint = \"http://h/\"\nservice_name = \"\"",
                "traces.service_name",
            ),
            (
                "endpoint = \"http://h/\"\nservice_name = \"a\\nb\"",
                "traces.service_name",
            ),
            (
                "endpoint = \"http://h/\"\ntimeout = \"0s\"",
                "traces.timeout",
            ),
            (
                "endpoint = \"http://h/\"\ntimeout = \"1h\"",
                "traces.timeout",
            ),
            (
                "endpoint = \"http://h/\"\nmax_queue = 0",
                "traces.max_queue",
            ),
            (
                "endpoint = \"http://h/\"\nmax_queue = 9999999",
                "traces.max_queue",
            ),
            (
                "endpoint = \"http://h/\"\nexport_interval = \"0s\"",
                "traces.export_interval",
            ),
        ];
        for (text, field) in cases {
            let problems = parse(text).expect_err(text);
            assert!(
                problems.iter().any(|p| p.contains(field)),
                "{text}: {problems:?}"
            );
        }
        let long = format!(
            "endpoint = \"http://h/\"\nservice_name = \"{}\"",
            "a".repeat(129)
        );
        assert!(parse(&long).is_err());
        assert!(parse("endpoint = \"http://h/\"\nunknown = 1").is_err());
    }
}
