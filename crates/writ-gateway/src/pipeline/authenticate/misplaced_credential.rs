//! Detectors at authenticate, on a credential that did not verify as a writ: a JWT
//! (`weak_jwt`: its weaknesses are named) or a provider's own API key (`raw_provider_key`).
//! Either way the request is refused as any invalid writ is; these only say what it was.

use crate::detect::detections::{Action, Detector, Mode};
use crate::gateway::Gateway;
use crate::pipeline::RequestCtx;

/// Runs both detectors on `token`, a credential that failed verification; the one that
/// fires leaves its detection in `ctx` for the request's audit record.
pub(crate) async fn check(gw: &Gateway, ctx: &mut RequestCtx, token: &str) {
    weak_jwt(gw, ctx, token).await;
    raw_provider_key(gw, ctx, token).await;
}

/// The `weak_jwt` detector on a JWT sent where a writ belongs (a client that mixed up
/// its tokens, or one probing for a JWT verifier): the request is refused as any invalid
/// writ is, and its record names the token's weaknesses.
async fn weak_jwt(gw: &Gateway, ctx: &mut RequestCtx, token: &str) {
    if !token.starts_with("eyJ") || gw.detections.mode(Detector::WeakJwt, None) == Mode::Off {
        return;
    }
    let findings = writ_detect::jwt::lint(
        token,
        &writ_detect::jwt::LintPolicy::default(),
        gw.clock.now(),
    );
    if findings.is_empty()
        || findings
            .iter()
            .all(|f| f.id == writ_detect::jwt::JwtCheck::Malformed)
    {
        return;
    }
    let mut d = ctx
        .id
        .detection(Detector::WeakJwt, Action::Blocked, "data_plane");
    d.rules = findings.iter().map(|f| f.id.as_str().to_string()).collect();
    d.rules.dedup();
    d.count = findings.len();
    gw.detected(d.clone(), false).await;
    ctx.detection = Some(d);
}

/// The `raw_provider_key` detector on a credential that is not a writ: a provider's own
/// API key (or the gateway's upstream credential) where the writ belongs. An agent holding
/// a raw key is the incident writ exists to surface; the request is refused as any invalid
/// writ is, and its record names the rule, never the key.
async fn raw_provider_key(gw: &Gateway, ctx: &mut RequestCtx, token: &str) {
    if token.starts_with(writ_token::WRIT_PREFIX)
        || gw.detections.mode(Detector::RawProviderKey, None) == Mode::Off
    {
        return;
    }
    let mut rules: Vec<String> = gw
        .scanner
        .scan(token.as_bytes())
        .iter()
        .filter(|f| match f.rule {
            writ_detect::Detector::Rule(rule) => rule.is_service_key(),
            writ_detect::Detector::Configured(_) => true,
        })
        .map(|f| f.rule.id().to_string())
        .collect();
    if rules.is_empty() {
        return;
    }
    rules.sort_unstable();
    rules.dedup();
    let mut d = ctx
        .id
        .detection(Detector::RawProviderKey, Action::Blocked, "credential");
    d.count = rules.len();
    d.rules = rules;
    gw.detected(d.clone(), false).await;
    ctx.detection = Some(d);
}
