//! `[detection]`: what each detector does (`block`, `monitor`, `off`) by default and per
//! tenant, the brute-force policy, and the webhooks told about detections.

use std::collections::BTreeMap;
use std::time::Duration;

use serde::Deserialize;
use writ_limits::StrikePolicy;

use super::ConfigError;

/// A detector: one kind of thing the gateway looks out for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Detector {
    /// A secret in a request body (a prompt, a tool argument), on the way to an upstream.
    PromptSecret,
    /// A secret in a response (model output, a tool's answer), on the way to the client.
    ResponseSecret,
    /// A credential in a request's URL (query parameter or path segment).
    UrlCredential,
    /// A weak or dangerous JSON Web Token handed to the gateway.
    WeakJwt,
    /// Repeated failed authentication from one client id or address.
    BruteForce,
    /// A provider's own API key (or the gateway's upstream credential) presented where a
    /// writ belongs: an agent that holds a raw key. Refused as any invalid writ is.
    RawProviderKey,
}

impl Detector {
    /// Every detector.
    pub const ALL: [Detector; 6] = [
        Detector::PromptSecret,
        Detector::ResponseSecret,
        Detector::UrlCredential,
        Detector::WeakJwt,
        Detector::BruteForce,
        Detector::RawProviderKey,
    ];

    /// The stable snake_case name used in config, metrics, audit records
    /// (`detail.detector`) and webhooks. The scanner's rule ids, which say which pattern
    /// matched (`detail.rules`), are kebab-case instead (`openai-api-key`).
    pub fn as_str(self) -> &'static str {
        match self {
            Detector::PromptSecret => "prompt_secret",
            Detector::ResponseSecret => "response_secret",
            Detector::UrlCredential => "url_credential",
            Detector::WeakJwt => "weak_jwt",
            Detector::BruteForce => "brute_force",
            Detector::RawProviderKey => "raw_provider_key",
        }
    }

    /// The detector whose [`as_str`](Detector::as_str) is `name`; `None` for any other
    /// name (a scan rule id included).
    pub fn from_name(name: &str) -> Option<Detector> {
        Detector::ALL.into_iter().find(|d| d.as_str() == name)
    }
}

/// What a detector does when it fires.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Refuse the request (or, for responses, redact the secret in place), record and
    /// count it.
    Block,
    /// Let it through unchanged; record and count it.
    Monitor,
    /// Do nothing. Configured upstream credentials and writs in responses are redacted
    /// whatever the mode.
    Off,
}

/// Why a `[detection]` value was refused (the key is in [`ConfigError::Detection`]).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DetectionConfigError {
    /// A mode that is none of `block`, `monitor`, `off`.
    #[error("expected block, monitor or off")]
    UnknownMode(String),
    /// A key of `modes` (or a tenant's modes) that names no detector.
    #[error(
        "unknown detector (expected one of {known})",
        known = Detector::ALL.map(Detector::as_str).join(", ")
    )]
    UnknownDetector(String),
    /// A brute-force duration that is zero or longer than 7 days.
    #[error("must be above 0 and at most 7 days")]
    DurationOutOfRange,
    /// `backoff_max` is shorter than `backoff_base`.
    #[error("must be at least backoff_base")]
    BackoffMaxBelowBase,
    /// Two brute-force thresholds out of order, zero, or above 10000.
    #[error("need 1 ≤ {first} ≤ {second} ≤ 10000")]
    Thresholds {
        /// The threshold that must come first (`backoff_after`).
        first: &'static str,
        /// The one that must come second (`lockout_after`).
        second: &'static str,
    },
    /// A brute-force namespace longer than 64 characters or with others than
    /// letters, digits, `-` and `_`.
    #[error("at most 64 letters, digits, `-` or `_`")]
    Namespace,
}

impl Mode {
    fn parse(field: &str, text: &str) -> Result<Mode, ConfigError> {
        match text {
            "block" => Ok(Mode::Block),
            "monitor" => Ok(Mode::Monitor),
            "off" => Ok(Mode::Off),
            _ => Err(ConfigError::Detection {
                field: field.to_string(),
                error: DetectionConfigError::UnknownMode(text.to_string()),
            }),
        }
    }

    /// The mode's name.
    pub fn as_str(self) -> &'static str {
        match self {
            Mode::Block => "block",
            Mode::Monitor => "monitor",
            Mode::Off => "off",
        }
    }
}

/// `[detection]` as written.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawDetection {
    #[serde(default)]
    modes: BTreeMap<String, String>,
    #[serde(default)]
    tenants: BTreeMap<String, BTreeMap<String, String>>,
    #[serde(default)]
    brute_force: RawBruteForce,
    #[serde(default)]
    webhooks: Vec<super::RawWebhook>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawBruteForce {
    #[serde(default, with = "humantime_serde")]
    window: Option<Duration>,
    backoff_after: Option<u32>,
    #[serde(default, with = "humantime_serde")]
    backoff_base: Option<Duration>,
    #[serde(default, with = "humantime_serde")]
    backoff_max: Option<Duration>,
    lockout_after: Option<u32>,
    #[serde(default, with = "humantime_serde")]
    lockout: Option<Duration>,
    data_plane_backoff_after: Option<u32>,
    data_plane_block_after: Option<u32>,
    #[serde(default, with = "humantime_serde")]
    data_plane_block: Option<Duration>,
    namespace: Option<String>,
}

/// Validated `[detection]`.
#[derive(Debug, Clone)]
pub struct DetectionConfig {
    defaults: BTreeMap<Detector, Mode>,
    tenants: BTreeMap<String, BTreeMap<Detector, Mode>>,
    /// Failed client authentications at the token endpoint, per client id and per address.
    pub token_endpoint: StrikePolicy,
    /// Invalid writs at the data plane, per address.
    pub data_plane: StrikePolicy,
    /// Who is told about detections.
    pub webhooks: Vec<super::WebhookConfig>,
    /// Prefix of the brute-force counters' keys: instances that share a limiter backend
    /// share counts when their namespaces are equal (by default they are: empty).
    pub strike_namespace: String,
}

impl Default for DetectionConfig {
    fn default() -> Self {
        detection_config(
            RawDetection::default(),
            &super::secrets::Env::new(super::Secrets::Resolve(&|_| None)),
        )
        .unwrap_or_else(|_| unreachable!())
    }
}

impl DetectionConfig {
    /// The mode of `detector` for `tenant` (the tenant's override, else the default).
    /// Detectors that fire before a tenant is known pass `None`.
    pub fn mode(&self, detector: Detector, tenant: Option<&str>) -> Mode {
        tenant
            .and_then(|t| self.tenants.get(t))
            .and_then(|modes| modes.get(&detector))
            .or_else(|| self.defaults.get(&detector))
            .copied()
            .unwrap_or(Mode::Block)
    }
}

fn modes(
    field: &str,
    raw: BTreeMap<String, String>,
) -> Result<BTreeMap<Detector, Mode>, ConfigError> {
    let mut out = BTreeMap::new();
    for (name, mode) in raw {
        let detector = Detector::from_name(&name).ok_or_else(|| ConfigError::Detection {
            field: format!("{field}.{name}"),
            error: DetectionConfigError::UnknownDetector(name.clone()),
        })?;
        out.insert(detector, Mode::parse(&format!("{field}.{name}"), &mode)?);
    }
    Ok(out)
}

/// Validates `[detection]`; `env` resolves `${env:NAME}` in webhook secrets.
pub(super) fn detection_config(
    raw: RawDetection,
    env: &super::secrets::Env,
) -> Result<DetectionConfig, ConfigError> {
    let invalid = |field: &str, error: DetectionConfigError| ConfigError::Detection {
        field: format!("detection.{field}"),
        error,
    };
    let mut defaults: BTreeMap<Detector, Mode> = Detector::ALL
        .into_iter()
        .map(|d| (d, Mode::Block))
        .collect();
    defaults.extend(modes("detection.modes", raw.modes)?);
    let mut tenants = BTreeMap::new();
    for (tenant, raw_modes) in raw.tenants {
        super::check_name(&format!("detection.tenants.{tenant}"), &tenant)?;
        tenants.insert(
            tenant.clone(),
            modes(&format!("detection.tenants.{tenant}"), raw_modes)?,
        );
    }
    let b = raw.brute_force;
    let positive = |field: &str, d: Option<Duration>, default: Duration| {
        let d = d.unwrap_or(default);
        if d.is_zero() || d > Duration::from_secs(7 * 86_400) {
            return Err(invalid(
                &format!("brute_force.{field}"),
                DetectionConfigError::DurationOutOfRange,
            ));
        }
        Ok(d)
    };
    let window = positive("window", b.window, Duration::from_secs(300))?;
    let backoff_base = positive("backoff_base", b.backoff_base, Duration::from_secs(1))?;
    let backoff_max = positive("backoff_max", b.backoff_max, Duration::from_secs(60))?;
    let lockout = positive("lockout", b.lockout, Duration::from_secs(900))?;
    let data_plane_block = positive(
        "data_plane_block",
        b.data_plane_block,
        Duration::from_secs(300),
    )?;
    if backoff_max < backoff_base {
        return Err(invalid(
            "brute_force.backoff_max",
            DetectionConfigError::BackoffMaxBelowBase,
        ));
    }
    // Two thresholds, the first no later than the second.
    let thresholds = |(first, first_name): (u32, &'static str),
                      (second, second_name): (u32, &'static str)| {
        if first == 0 || second == 0 || first > second || second > 10_000 {
            return Err(invalid(
                &format!("brute_force.{second_name}"),
                DetectionConfigError::Thresholds {
                    first: first_name,
                    second: second_name,
                },
            ));
        }
        Ok((first, second))
    };
    let (backoff_after, lockout_after) = thresholds(
        (b.backoff_after.unwrap_or(5), "backoff_after"),
        (b.lockout_after.unwrap_or(20), "lockout_after"),
    )?;
    let (dp_backoff_after, dp_block_after) = thresholds(
        (
            b.data_plane_backoff_after.unwrap_or(20),
            "data_plane_backoff_after",
        ),
        (
            b.data_plane_block_after.unwrap_or(100),
            "data_plane_block_after",
        ),
    )?;
    let strike_namespace = b.namespace.unwrap_or_default();
    if strike_namespace.len() > 64
        || !strike_namespace
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
    {
        return Err(invalid(
            "brute_force.namespace",
            DetectionConfigError::Namespace,
        ));
    }
    let mut webhooks = Vec::new();
    for (i, mut w) in raw.webhooks.into_iter().enumerate() {
        let field = format!("detection.webhooks[{i}]");
        if let Some(secret) = w.secret.take() {
            w.secret = Some(env.expand(&format!("{field}.secret"), &secret)?);
        }
        webhooks.push(
            super::WebhookConfig::from_raw(w)
                .map_err(|error| ConfigError::Webhook { field, error })?,
        );
    }
    Ok(DetectionConfig {
        defaults,
        tenants,
        token_endpoint: StrikePolicy {
            window,
            backoff_after,
            backoff_base,
            backoff_max,
            lockout_after,
            lockout,
        },
        data_plane: StrikePolicy {
            window,
            backoff_after: dp_backoff_after,
            backoff_base,
            backoff_max,
            lockout_after: dp_block_after,
            lockout: data_plane_block,
        },
        webhooks,
        strike_namespace,
    })
}
