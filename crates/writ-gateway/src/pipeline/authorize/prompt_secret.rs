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
    let findings = gw.scanner().scan(&writ_json::scan_text(body));
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pipeline::fixture::Fixture;

    const AWS_RULE: &str = "aws-access-key-id";

    async fn gateway(detection: &str) -> Fixture {
        Fixture::start(detection).await
    }

    async fn in_mode(mode: &str) -> Fixture {
        gateway(&format!("[detection.modes]\nprompt_secret = \"{mode}\"\n")).await
    }

    /// The context of an authorized request of tenant `default`.
    fn ctx(f: &Fixture) -> RequestCtx {
        let mut ctx = RequestCtx::new(&f.gw, writ_providers::ROUTES[0], None);
        ctx.id.tenant = Some("default".into());
        ctx.id.agent = Some("demo".into());
        ctx
    }

    fn leaky() -> Vec<u8> {
        br#"{"messages":[{"role":"user","content":"use AKIAIOSFODNN7EXAMPLE"}]}"#.to_vec()
    }

    fn total(f: &Fixture, action: Action) -> u64 {
        f.gw.detections.total(Detector::PromptSecret, action)
    }

    #[tokio::test]
    async fn block_refuses_naming_the_rule_and_keeps_the_detection() {
        let f = in_mode("block").await;
        let mut ctx = ctx(&f);
        let err = check(&f.gw, &mut ctx, &leaky()).await.unwrap_err();
        let GatewayError::SecretInRequest { rules } = err else {
            panic!("expected SecretInRequest, got {err:?}");
        };
        assert_eq!(rules, AWS_RULE);
        let d = ctx.detection.take().expect("the refusing detection");
        assert_eq!(d.detector, Detector::PromptSecret);
        assert_eq!(d.action, Action::Blocked);
        assert_eq!(d.location, "request");
        assert_eq!(d.rules, vec![AWS_RULE.to_string()]);
        assert_eq!(d.count, 1);
        assert_eq!(d.tenant.as_deref(), Some("default"));
        assert_eq!(total(&f, Action::Blocked), 1);
    }

    #[tokio::test]
    async fn monitor_lets_it_through_and_counts_it() {
        let f = in_mode("monitor").await;
        let mut ctx = ctx(&f);
        assert!(check(&f.gw, &mut ctx, &leaky()).await.is_ok());
        assert!(ctx.detection.is_none());
        assert_eq!(total(&f, Action::Monitored), 1);
        assert_eq!(total(&f, Action::Blocked), 0);
    }

    #[tokio::test]
    async fn off_does_not_scan() {
        let f = in_mode("off").await;
        let mut ctx = ctx(&f);
        assert!(check(&f.gw, &mut ctx, &leaky()).await.is_ok());
        assert!(ctx.detection.is_none());
        assert_eq!(total(&f, Action::Monitored), 0);
        assert_eq!(total(&f, Action::Blocked), 0);
    }

    #[tokio::test]
    async fn a_json_escaped_secret_is_found_as_the_upstream_reads_it() {
        let f = in_mode("block").await;
        let mut ctx = ctx(&f);
        let body = br#"{"messages":[{"role":"user","content":"use AKIA\u0049OSFODNN7EXAMPLE"}]}"#;
        let err = check(&f.gw, &mut ctx, body).await.unwrap_err();
        assert!(
            matches!(&err, GatewayError::SecretInRequest { rules } if rules == AWS_RULE),
            "{err:?}"
        );
    }

    #[tokio::test]
    async fn a_body_that_is_not_json_is_scanned_as_it_is() {
        let f = in_mode("block").await;
        let mut ctx = ctx(&f);
        let err = check(&f.gw, &mut ctx, b"key=AKIAIOSFODNN7EXAMPLE&x=1")
            .await
            .unwrap_err();
        assert!(matches!(err, GatewayError::SecretInRequest { .. }));
    }

    #[tokio::test]
    async fn a_clean_body_passes() {
        let f = in_mode("block").await;
        let mut ctx = ctx(&f);
        let body = br#"{"messages":[{"role":"user","content":"hello"}]}"#;
        assert!(check(&f.gw, &mut ctx, body).await.is_ok());
        assert!(ctx.detection.is_none());
        assert_eq!(total(&f, Action::Blocked), 0);
    }

    #[tokio::test]
    async fn the_tenants_mode_applies() {
        let f = gateway("[detection.tenants.acme]\nprompt_secret = \"monitor\"\n").await;
        let mut acme = ctx(&f);
        acme.id.tenant = Some("acme".into());
        assert!(check(&f.gw, &mut acme, &leaky()).await.is_ok());
        let mut other = ctx(&f);
        let err = check(&f.gw, &mut other, &leaky()).await.unwrap_err();
        assert!(matches!(err, GatewayError::SecretInRequest { .. }));
    }

    #[tokio::test]
    async fn a_key_and_its_value_are_scanned_together() {
        // `"api_key": "…"` is a pair the generic rule reads as one, escapes and all.
        let f = in_mode("block").await;
        let mut ctx = ctx(&f);
        let body = br#"{"tool_args":{"api\u005fkey":"Zx9!kQ2#mW7pL4vR"}}"#;
        let err = check(&f.gw, &mut ctx, body).await.unwrap_err();
        assert!(
            matches!(&err, GatewayError::SecretInRequest { rules } if rules == "generic-secret"),
            "{err:?}"
        );
    }
}
