//! The approval webhooks (`[[approvals.webhooks]]`) and the event they are sent: one
//! delivery set per webhook (`detect::webhook`'s), chosen by tenant. Holds no gateway,
//! so the gateway can hold it.
//!
//! # What a receiver gets
//!
//! ```json
//! {"event": "approval_pending",
//!  "approval": {"id": "apr_…", "tenant": "acme", "agent": "planner", "kind": "request",
//!               "reason": "payments over 100", "summary": {…}, "expires_at": 1800000300,
//!               "link": "https://writ.example.com/admin/v1/approvals/apr_…"}}
//! ```
//!
//! `summary` is what the person deciding is shown (JSON; text when it is not JSON),
//! `expires_at` Unix seconds, `link` the approval in the admin API under the gateway's
//! admin URL (`[admin] public_url` or the admin listener's address when there is one, else
//! its public URL). The event never holds a writ, a token id, the request digest or an approval
//! block: it tells someone to look, it cannot be used to approve. The reason and summary
//! pass through the gateway's secret scanner on the way out, so a credential or writ that
//! reached them anyway leaves as `[REDACTED:…]`.

use std::sync::Arc;

use serde_json::{Value, json};
use writ_store::ApprovalRecord;
use writ_token::Clock;

use crate::config::ApprovalWebhook;
use crate::detect::webhook::{WebhookClientError, Webhooks};

/// The event name of a pending approval.
const PENDING: &str = "approval_pending";

/// The approval webhooks and their delivery tasks: one delivery set per webhook, so that
/// each tenant filter picks whole receivers and a slow receiver delays only itself.
pub(crate) struct ApprovalWebhooks {
    hooks: Vec<(ApprovalWebhook, Webhooks)>,
}

impl std::fmt::Debug for ApprovalWebhooks {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ApprovalWebhooks")
            .field("webhooks", &self.hooks.len())
            .finish_non_exhaustive()
    }
}

impl ApprovalWebhooks {
    /// Starts delivery for `configs`; `None` when there are none. Must be called within a
    /// Tokio runtime; fails only if rustls cannot be set up.
    pub(crate) fn start(
        configs: &[ApprovalWebhook],
        clock: &Arc<dyn Clock>,
    ) -> Result<Option<Self>, WebhookClientError> {
        if configs.is_empty() {
            return Ok(None);
        }
        let client = Webhooks::client()?;
        let hooks = configs
            .iter()
            .map(|c| {
                let delivery =
                    Webhooks::start(vec![c.webhook.clone()], client.clone(), clock.clone());
                (c.clone(), delivery)
            })
            .collect();
        Ok(Some(Self { hooks }))
    }

    /// Queues `event` for every webhook that wants approvals of `tenant`; how many that
    /// was.
    pub(crate) fn send(&self, tenant: &str, event: &Value) -> usize {
        let mut queued = 0;
        for (config, delivery) in &self.hooks {
            if config.wants(tenant) {
                delivery.send_event(PENDING, event);
                queued += 1;
            }
        }
        queued
    }
}

/// The `approval_pending` event of `record`, its free text scrubbed by `scanner`, linking
/// to it under `public_url`.
pub(super) fn pending_event(
    scanner: &writ_detect::Scanner,
    public_url: &str,
    record: &ApprovalRecord,
) -> Value {
    let mut summary = serde_json::from_str(&record.summary)
        .unwrap_or_else(|_| Value::String(record.summary.clone()));
    scrub(scanner, &mut summary);
    let mut reason = Value::String(record.reason.clone());
    scrub(scanner, &mut reason);
    json!({
        "event": PENDING,
        "approval": {
            "id": record.id,
            "tenant": record.tenant,
            "agent": record.agent,
            "kind": record.kind.as_str(),
            "reason": reason,
            "summary": summary,
            "expires_at": record.expires_at,
            "link": format!(
                "{}/admin/v1/approvals/{}",
                public_url.trim_end_matches('/'),
                record.id
            ),
        },
    })
}

/// Replaces every secret `scanner` finds in the strings (keys and values) of `value`.
/// String by string, so a marker never breaks the JSON around it.
pub(super) fn scrub(scanner: &writ_detect::Scanner, value: &mut Value) {
    let clean = |text: &str| -> Option<String> {
        let (out, findings) = scanner.redact(text.as_bytes());
        (!findings.is_empty()).then(|| String::from_utf8_lossy(&out).into_owned())
    };
    match value {
        Value::String(s) => {
            if let Some(c) = clean(s) {
                *s = c;
            }
        }
        Value::Array(items) => items.iter_mut().for_each(|v| scrub(scanner, v)),
        Value::Object(map) => {
            let entries = std::mem::take(map);
            for (key, mut v) in entries {
                scrub(scanner, &mut v);
                map.insert(clean(&key).unwrap_or(key), v);
            }
        }
        Value::Null | Value::Bool(_) | Value::Number(_) => {}
    }
}
