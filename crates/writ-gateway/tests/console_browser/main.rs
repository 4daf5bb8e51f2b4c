//! The console in a real browser: headless Debian Chromium driven through the testkit's
//! Playwright harness, one module per part of the console. What every module shares —
//! a pending approval with hostile agent text, and the axe-core check — is here.
#![allow(clippy::unwrap_used)]

mod audit;
mod hostile;
mod passkeys;
mod signin;
mod stop;
mod usage;

use std::time::UNIX_EPOCH;

use serde_json::json;
use writ_store::{ApprovalKind, NewApproval, PendingBounds};
use writ_testkit::{BrowserRun, TestGateway};

/// An operator's admin writ's facts.
pub(crate) const ADMIN: &str = r#"{"type":"writ:admin"}"#;
/// An agent name holding markup and a right-to-left override.
pub(crate) const HOSTILE_AGENT: &str = "<script>window.pwned=1</script>\u{202E}evil";
/// A tool argument that breaks out of an attribute when not escaped.
pub(crate) const HOSTILE_ARG: &str = "\"><img src=x onerror=\"window.pwned=1\">";

/// Stores a pending approval of the hostile agent in tenant `default`; returns its id.
pub(crate) async fn pending(gw: &TestGateway) -> String {
    let now = writ_token::Clock::now(gw.clock())
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let new = NewApproval {
        id: writ_token::new_approval_id(),
        tenant: "default".to_string(),
        agent: HOSTILE_AGENT.to_string(),
        kind: ApprovalKind::Request,
        reason: "payments over 100".to_string(),
        summary: json!({"upstream": "pay", "tool": "pay", "operation": "tools/call",
            "arguments": {"amount": 250, "to": HOSTILE_ARG}})
        .to_string(),
        summary_digest: "a".repeat(64),
        request_digest: "b".repeat(64),
        writ_token_id: None,
        writ_revocation_ids: Vec::new(),
        writ_issued_at: Some(now),
        ticket: None,
        mint_request: None,
        created_at: now,
        expires_at: now + 300,
        poll_interval: 5,
    };
    let bounds = PendingBounds {
        per_agent: 100,
        per_tenant: 1000,
    };
    gw.gateway()
        .store()
        .create_approval(&new, bounds)
        .await
        .unwrap()
        .id
}

/// Asserts axe-core found no serious or critical violation at `step`.
pub(crate) fn assert_accessible(run: &BrowserRun, step: usize, page: &str) {
    let serious: Vec<_> = run
        .axe_violations(step)
        .into_iter()
        .filter(|v| v.is_serious())
        .collect();
    assert!(serious.is_empty(), "{page}: {serious:#?}");
}
