//! The `prompt_secret` detector, after authorize: a secret in the request body (a prompt,
//! a tool argument) on its way to an upstream. It runs after authorize so that only
//! authorized requests cost scanning, and the tenant, whose mode applies, is known.

use crate::detect::detections::{Action, Detector, Mode};
use crate::error::GatewayError;
use crate::gateway::Gateway;
use crate::pipeline::RequestCtx;

/// The `prompt_secret` detector: a secret in the request body (a prompt, a tool
/// argument) on its way to an upstream.
pub(crate) async fn check(
    gw: &Gateway,
    ctx: &mut RequestCtx,
    body: &[u8],
) -> Result<(), GatewayError> {
    let mode = gw
        .detections
        .mode(Detector::PromptSecret, ctx.id.tenant.as_deref());
    if mode == Mode::Off {
        return Ok(());
    }
    // Scan what the upstream reads: a JSON body's strings decoded (`sk\u002dproj…` is
    // `sk-proj…` to the provider), keys included and in place, so `"api_key": "…"`
    // pairs still match and no two strings run together; other bodies as they are.
    let findings = gw.scanner.scan(&writ_json::scan_text(body));
    if findings.is_empty() {
        return Ok(());
    }
    let mut rules: Vec<String> = findings.iter().map(|f| f.rule.id().to_string()).collect();
    rules.sort_unstable();
    rules.dedup();
    let action = if mode == Mode::Block {
        Action::Blocked
    } else {
        Action::Monitored
    };
    let mut d = ctx.id.detection(Detector::PromptSecret, action, "request");
    d.count = findings.len();
    d.rules = rules;
    if mode == Mode::Block {
        let rules = d.rules.join(", ");
        gw.detected(d.clone(), false).await;
        ctx.detection = Some(d);
        return Err(GatewayError::SecretInRequest { rules });
    }
    gw.detected(d, true).await;
    Ok(())
}
