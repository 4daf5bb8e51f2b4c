//! Detections: what the detectors found, counted per detector and action (the Prometheus
//! counters), written to the audit log and handed to the webhooks.
//!
//! A detection that refuses a request travels in that request's one `request_denied`
//! record ([`Detection::detail`]); every other detection (a response redacted, a prompt
//! let through in `monitor` mode, a lock-out starting) is a `detection` record of its own.

use std::net::IpAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};
use std::time::SystemTime;

use serde_json::{Map, Value, json};

use crate::audit::Auditor;
use crate::config::DetectionConfig;
pub use crate::config::{Detector, Mode};

/// What the gateway did about a detection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    /// The request was refused.
    Blocked,
    /// Let through, recorded only (`monitor` mode).
    Monitored,
    /// The secret was replaced in the response before the client saw it.
    Redacted,
    /// Further attempts are answered with 429 for a while (brute force back-off).
    Throttled,
    /// The client id or address is locked out (brute force).
    LockedOut,
}

impl Action {
    const ALL: [Action; 5] = [
        Action::Blocked,
        Action::Monitored,
        Action::Redacted,
        Action::Throttled,
        Action::LockedOut,
    ];

    /// The stable name used in metrics, records and webhooks.
    pub fn as_str(self) -> &'static str {
        match self {
            Action::Blocked => "blocked",
            Action::Monitored => "monitored",
            Action::Redacted => "redacted",
            Action::Throttled => "throttled",
            Action::LockedOut => "locked_out",
        }
    }

    fn index(self) -> usize {
        self as usize
    }
}

/// One detection. Names what fired and where; never carries the secret itself.
#[derive(Debug, Clone)]
pub struct Detection {
    /// What kind of attack was seen; the scanner rules that matched are in `rules`.
    pub detector: Detector,
    /// What was done.
    pub action: Action,
    /// Rule ids or check names that fired, e.g. `openai-api-key`, `alg-none`.
    pub rules: Vec<String>,
    /// How many matches.
    pub count: usize,
    /// Where: `request`, `response`, `url`, `token_endpoint`, `data_plane`.
    pub location: &'static str,
    /// Tenant, when known.
    pub tenant: Option<String>,
    /// Agent, when known.
    pub agent: Option<String>,
    /// The writ's token id (stored only as a pseudonym).
    pub token_id: Option<String>,
    /// The client's address (stored only as a pseudonym).
    pub client: Option<IpAddr>,
    /// Upstream, when known.
    pub upstream: Option<String>,
    /// Model or tool, when known.
    pub model: Option<String>,
    /// Operation, when known.
    pub operation: Option<String>,
}

impl Detection {
    /// A detection with nothing but what fired.
    pub fn new(detector: Detector, action: Action, location: &'static str) -> Self {
        Self {
            detector,
            action,
            rules: Vec::new(),
            count: 0,
            location,
            tenant: None,
            agent: None,
            token_id: None,
            client: None,
            upstream: None,
            model: None,
            operation: None,
        }
    }

    /// The facts that go into an audit record's `detail` (no secret, no writ id).
    pub fn detail(&self) -> Map<String, Value> {
        let mut detail = Map::new();
        detail.insert("detector".into(), json!(self.detector.as_str()));
        detail.insert("action".into(), json!(self.action.as_str()));
        detail.insert("location".into(), json!(self.location));
        detail.insert("rules".into(), json!(self.rules));
        detail.insert("count".into(), json!(self.count));
        detail
    }
}

/// Counters and modes of every detector. The modes are swapped whole by a config reload;
/// the counters run on.
#[derive(Debug)]
pub struct Detections {
    config: RwLock<Arc<DetectionConfig>>,
    counts: [[AtomicU64; Action::ALL.len()]; Detector::ALL.len()],
}

impl Detections {
    /// Counters at zero, modes from `config`.
    pub fn new(config: DetectionConfig) -> Self {
        Self {
            config: RwLock::new(Arc::new(config)),
            counts: Default::default(),
        }
    }

    /// The validated `[detection]` settings in force now.
    pub fn config(&self) -> Arc<DetectionConfig> {
        self.config
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// Puts `config`'s modes and brute-force policy in force from the next check on.
    pub fn replace(&self, config: DetectionConfig) {
        *self.config.write().unwrap_or_else(|p| p.into_inner()) = Arc::new(config);
    }

    /// The mode of `detector` for `tenant` (`None` before the tenant is known).
    pub fn mode(&self, detector: Detector, tenant: Option<&str>) -> Mode {
        self.config
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .mode(detector, tenant)
    }

    /// Counts a detection (for the metrics) without recording it anywhere else.
    pub fn count(&self, detection: &Detection) {
        let d = Detector::ALL
            .iter()
            .position(|x| *x == detection.detector)
            .unwrap_or(0);
        self.counts[d][detection.action.index()].fetch_add(1, Ordering::Relaxed);
    }

    /// How many detections of `detector` ended in `action` since start.
    pub fn total(&self, detector: Detector, action: Action) -> u64 {
        let d = Detector::ALL
            .iter()
            .position(|x| *x == detector)
            .unwrap_or(0);
        self.counts[d][action.index()].load(Ordering::Relaxed)
    }

    /// Every (detector, action, count) since start, zeros included: the
    /// `writ_detections_total` series.
    pub(crate) fn totals(&self) -> Vec<(&'static str, &'static str, u64)> {
        let mut out = Vec::with_capacity(Detector::ALL.len() * Action::ALL.len());
        for detector in Detector::ALL {
            for action in Action::ALL {
                out.push((
                    detector.as_str(),
                    action.as_str(),
                    self.total(detector, action),
                ));
            }
        }
        out
    }
}

/// Builds the audit record of a detection that is not part of a denied request.
pub(crate) fn record(
    audit: &Auditor,
    detection: &Detection,
    now: SystemTime,
) -> writ_audit::AuditRecord {
    let mut record = crate::audit::record_at(writ_audit::Kind::Detection, now);
    record.tenant.clone_from(&detection.tenant);
    record.agent.clone_from(&detection.agent);
    record.writ = detection.token_id.as_deref().map(|t| audit.pseudonym(t));
    record.client = detection.client.and_then(|ip| audit.client_pseudonym(ip));
    record.upstream.clone_from(&detection.upstream);
    record.model.clone_from(&detection.model);
    record.operation.clone_from(&detection.operation);
    record.detail = Some(detection.detail());
    record
}

/// The webhook event of a detection: the record's facts, pseudonyms instead of ids.
pub(crate) fn event(audit: &Auditor, detection: &Detection, now: SystemTime) -> Value {
    let mut event = Map::new();
    event.insert("type".into(), json!("detection"));
    event.insert("time".into(), json!(writ_audit::record::format_time(now)));
    event.insert("instance".into(), json!(audit.instance()));
    for (k, v) in detection.detail() {
        event.insert(k, v);
    }
    let mut put = |k: &str, v: &Option<String>| {
        if let Some(v) = v {
            event.insert(k.into(), json!(v));
        }
    };
    put("tenant", &detection.tenant);
    put("agent", &detection.agent);
    put("upstream", &detection.upstream);
    put("model", &detection.model);
    put("operation", &detection.operation);
    put(
        "writ",
        &detection.token_id.as_deref().map(|t| audit.pseudonym(t)),
    );
    put(
        "client",
        &detection.client.and_then(|ip| audit.client_pseudonym(ip)),
    );
    Value::Object(event)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn totals_count_every_detector_and_action() {
        let detections = Detections::new(DetectionConfig::default());
        let d = Detection::new(Detector::PromptSecret, Action::Blocked, "request");
        detections.count(&d);
        detections.count(&d);
        assert_eq!(detections.total(Detector::PromptSecret, Action::Blocked), 2);
        assert_eq!(detections.total(Detector::BruteForce, Action::Blocked), 0);
        let totals = detections.totals();
        assert!(totals.contains(&("prompt_secret", "blocked", 2)));
        assert_eq!(totals.len(), Detector::ALL.len() * Action::ALL.len());
        assert_eq!(totals.iter().map(|t| t.2).sum::<u64>(), 2);
    }

    #[test]
    fn detail_names_rules_never_values() {
        let mut d = Detection::new(Detector::PromptSecret, Action::Monitored, "request");
        d.rules = vec!["openai-api-key".into()];
        d.count = 1;
        d.token_id = Some("tok-secret-id".into());
        let detail = Value::Object(d.detail()).to_string();
        assert!(detail.contains("openai-api-key"));
        assert!(!detail.contains("tok-secret-id"));
    }
}
