//! `[approvals]`: how long a held request or mint waits for a person, how often clients
//! may poll, how many may wait at once per agent and per tenant, and the webhooks told
//! when one starts waiting (`[[approvals.webhooks]]`).

use std::path::PathBuf;
use std::time::Duration;

use serde::Deserialize;

use super::ConfigError;
use super::webhook::{RawWebhook, WebhookConfig};

/// Default wait for a decision (never past the writ's own expiry).
pub const DEFAULT_TTL: Duration = Duration::from_secs(300);
/// Default seconds between polls a client is asked to keep.
pub const DEFAULT_POLL_INTERVAL: Duration = Duration::from_secs(5);
/// Default most approvals one agent may have waiting.
pub const DEFAULT_MAX_PENDING_PER_AGENT: u64 = 100;
/// Default most approvals one tenant may have waiting.
pub const DEFAULT_MAX_PENDING_PER_TENANT: u64 = 1_000;
/// Longest wait allowed.
const MAX_TTL: Duration = Duration::from_secs(24 * 3600);

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawApprovals {
    #[serde(default, with = "humantime_serde")]
    ttl: Option<Duration>,
    #[serde(default, with = "humantime_serde")]
    poll_interval: Option<Duration>,
    max_pending_per_agent: Option<u64>,
    max_pending_per_tenant: Option<u64>,
    #[serde(default)]
    webhooks: Vec<RawApprovalWebhook>,
}

/// One `[[approvals.webhooks]]` entry as written: a detection webhook's fields except
/// `detectors`, plus the `tenants` whose approvals it is told about.
#[derive(Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawApprovalWebhook {
    url: Option<String>,
    secret: Option<String>,
    #[serde(default, with = "humantime_serde")]
    timeout: Option<Duration>,
    max_attempts: Option<u32>,
    #[serde(default, with = "humantime_serde")]
    backoff_base: Option<Duration>,
    ca_file: Option<PathBuf>,
    allow_private_network: Option<bool>,
    tenants: Option<Vec<String>>,
}

impl std::fmt::Debug for RawApprovalWebhook {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The URL may carry a credential and the secret is one: neither is shown.
        f.debug_struct("RawApprovalWebhook")
            .field("url", &self.url.as_ref().map(|_| "<url>"))
            .field("secret", &self.secret.as_ref().map(|_| "<redacted>"))
            .field("tenants", &self.tenants)
            .finish_non_exhaustive()
    }
}

/// One `[[approvals.webhooks]]` entry, validated: where pending approvals are announced.
#[derive(Debug, Clone)]
pub struct ApprovalWebhook {
    /// Receiver, secret, timeouts and retries, validated as detection webhooks are
    /// (`detectors` is always `None`: approvals are not detections).
    pub webhook: WebhookConfig,
    /// Only approvals of these tenants are sent; `None` sends every tenant's.
    pub tenants: Option<Vec<String>>,
}

impl ApprovalWebhook {
    /// Whether pending approvals of `tenant` go to this webhook: all do unless `tenants`
    /// is set.
    pub fn wants(&self, tenant: &str) -> bool {
        self.tenants
            .as_ref()
            .is_none_or(|list| list.iter().any(|t| t == tenant))
    }
}

/// The approvals' settings.
#[derive(Debug, Clone)]
pub struct ApprovalsConfig {
    /// How long an approval waits for a decision, and once approved for its use; never
    /// past the writ's expiry.
    pub ttl: Duration,
    /// Seconds between polls a client is asked to keep (CIBA `interval`).
    pub poll_interval: Duration,
    /// Most approvals one agent may have waiting; one more is refused (429).
    pub max_pending_per_agent: u64,
    /// Most approvals one tenant may have waiting; one more is refused (429).
    pub max_pending_per_tenant: u64,
    /// Webhooks told of every approval that starts waiting (of their tenants).
    pub webhooks: Vec<ApprovalWebhook>,
}

impl Default for ApprovalsConfig {
    fn default() -> Self {
        Self {
            ttl: DEFAULT_TTL,
            poll_interval: DEFAULT_POLL_INTERVAL,
            max_pending_per_agent: DEFAULT_MAX_PENDING_PER_AGENT,
            max_pending_per_tenant: DEFAULT_MAX_PENDING_PER_TENANT,
            webhooks: Vec::new(),
        }
    }
}

/// Validates `[approvals]`, pushing every problem found; `env` resolves `${env:NAME}` in
/// webhook secrets (an entry whose secret is deferred is left out: a gateway refuses to
/// start with deferred secrets anyway).
pub(super) fn approvals_config(
    raw: RawApprovals,
    env: &super::secrets::Env,
    problems: &mut Vec<ConfigError>,
) -> ApprovalsConfig {
    let invalid = |field: &str, reason: &str| ConfigError::Invalid {
        field: format!("approvals.{field}"),
        reason: reason.to_string(),
    };
    let mut out = ApprovalsConfig::default();
    match raw.ttl {
        Some(t) if t < Duration::from_secs(1) || t > MAX_TTL => {
            problems.push(invalid("ttl", "must be 1s to 24h"))
        }
        Some(t) => out.ttl = t,
        None => {}
    }
    match raw.poll_interval {
        Some(t) if t < Duration::from_secs(1) || t > Duration::from_secs(60) => {
            problems.push(invalid("poll_interval", "must be 1s to 60s"))
        }
        Some(t) => out.poll_interval = t,
        None => {}
    }
    for (field, value, slot) in [
        (
            "max_pending_per_agent",
            raw.max_pending_per_agent,
            &mut out.max_pending_per_agent,
        ),
        (
            "max_pending_per_tenant",
            raw.max_pending_per_tenant,
            &mut out.max_pending_per_tenant,
        ),
    ] {
        match value {
            Some(n) if n == 0 || n > 1_000_000 => {
                problems.push(invalid(field, "must be 1 to 1000000"))
            }
            Some(n) => *slot = n,
            None => {}
        }
    }
    if out.max_pending_per_agent > out.max_pending_per_tenant {
        problems.push(invalid(
            "max_pending_per_agent",
            "must not be more than max_pending_per_tenant",
        ));
    }
    for (i, raw) in raw.webhooks.into_iter().enumerate() {
        let field = format!("approvals.webhooks[{i}]");
        match approval_webhook(&field, raw, env) {
            Ok(Some(webhook)) => out.webhooks.push(webhook),
            Ok(None) => {}
            Err(e) => problems.push(e),
        }
    }
    out
}

/// One webhook entry validated (`None` when its secret names an unset variable).
fn approval_webhook(
    field: &str,
    raw: RawApprovalWebhook,
    env: &super::secrets::Env,
) -> Result<Option<ApprovalWebhook>, ConfigError> {
    let tenants = match raw.tenants {
        None => None,
        Some(list) if list.is_empty() => {
            return Err(ConfigError::Invalid {
                field: format!("{field}.tenants"),
                reason: "must name at least one tenant; leave it out to hear of every tenant"
                    .to_string(),
            });
        }
        Some(list) => {
            for (j, tenant) in list.iter().enumerate() {
                super::check_name(&format!("{field}.tenants[{j}]"), tenant)?;
            }
            Some(list)
        }
    };
    let before = env.unset_count();
    let secret = match raw.secret {
        Some(s) => Some(env.expand(&format!("{field}.secret"), &s)?),
        None => None,
    };
    if env.unset_count() > before {
        return Ok(None);
    }
    let webhook = WebhookConfig::from_raw(RawWebhook {
        url: raw.url,
        secret,
        detectors: None,
        timeout: raw.timeout,
        max_attempts: raw.max_attempts,
        backoff_base: raw.backoff_base,
        ca_file: raw.ca_file,
        allow_private_network: raw.allow_private_network,
    })
    .map_err(|error| ConfigError::Webhook {
        field: field.to_string(),
        error,
    })?;
    Ok(Some(ApprovalWebhook { webhook, tenants }))
}

#[cfg(test)]
mod tests {
    use crate::config::webhook::WebhookConfigError;
    use crate::config::{Config, ConfigError, RawConfig};

    const SECRET: &str = "whsec-test-0123456789abcdef";

    fn load(text: &str) -> Result<Config, ConfigError> {
        let env = |name: &str| (name == "APPROVAL_HOOK").then(|| SECRET.to_string());
        Config::from_raw(RawConfig::from_toml(text)?, &env)
    }

    fn hook(rest: &str) -> String {
        format!(
            "[[approvals.webhooks]]\nurl = \"https://hooks.example.com/a\"\nsecret = \"{SECRET}\"\n{rest}"
        )
    }

    #[test]
    fn webhooks_are_read_with_their_tenants_and_secrets() {
        let c = load(&format!(
            "{}[[approvals.webhooks]]\nurl = \"https://hooks.example.com/b\"\n\
             secret = \"${{env:APPROVAL_HOOK}}\"\nmax_attempts = 2\n",
            hook("tenants = [\"acme\", \"globex\"]\n")
        ))
        .unwrap();
        let hooks = &c.approvals.webhooks;
        assert_eq!(hooks.len(), 2);
        assert_eq!(
            hooks[0].tenants,
            Some(vec!["acme".to_string(), "globex".to_string()])
        );
        assert!(hooks[0].wants("acme") && hooks[0].wants("globex"));
        assert!(!hooks[0].wants("initech") && !hooks[0].wants("Acme"));
        assert_eq!(hooks[0].webhook.detectors, None);
        assert_eq!(hooks[1].tenants, None);
        assert!(hooks[1].wants("anyone"));
        assert_eq!(hooks[1].webhook.secret.expose(), SECRET);
        assert_eq!(hooks[1].webhook.max_attempts, 2);
        let shown = format!("{:?}", c.approvals);
        assert!(!shown.contains(SECRET), "{shown}");
        assert!(load("").unwrap().approvals.webhooks.is_empty());
    }

    #[test]
    fn a_bad_webhook_names_its_entry_and_never_echoes_the_secret() {
        let field_of = |e: &ConfigError| e.field().map(str::to_string);
        let e = load(&hook("tenants = []\n")).unwrap_err();
        assert_eq!(
            field_of(&e).as_deref(),
            Some("approvals.webhooks[0].tenants")
        );
        assert!(e.to_string().contains("leave it out"), "{e}");
        let e = load(&hook("tenants = [\"ok\", \"no such/tenant\"]\n")).unwrap_err();
        assert_eq!(
            field_of(&e).as_deref(),
            Some("approvals.webhooks[0].tenants[1]")
        );
        let e = load(&format!(
            "{}[[approvals.webhooks]]\nurl = \"https://h/x\"\nsecret = \"short\"\n",
            hook("")
        ))
        .unwrap_err();
        assert!(
            matches!(&e, ConfigError::Webhook { field, error: WebhookConfigError::ShortSecret }
                if field == "approvals.webhooks[1]"),
            "{e:?}"
        );
        let e = load(&hook("").replace("https://hooks.example.com/a", "https://10.0.0.1/a"))
            .unwrap_err();
        assert!(
            matches!(
                &e,
                ConfigError::Webhook {
                    error: WebhookConfigError::PrivateNetwork,
                    ..
                }
            ),
            "{e:?}"
        );
        let e = load(&hook("").replace("/a\"", "/a?token=abcdef0123456789\"")).unwrap_err();
        assert!(!e.to_string().contains("abcdef0123456789"), "{e}");
        // Approvals are not detections: `detectors` is not a field here.
        let e = load(&hook("detectors = [\"weak_jwt\"]\n")).unwrap_err();
        assert!(e.to_string().contains("detectors"), "{e}");
        let e = load(&hook("").replace(SECRET, "${env:UNSET_HOOK}")).unwrap_err();
        assert!(
            matches!(&e, ConfigError::MissingEnv { name, .. } if name == "UNSET_HOOK"),
            "{e:?}"
        );
        assert!(!format!("{e:?}").contains(SECRET));
    }
}
