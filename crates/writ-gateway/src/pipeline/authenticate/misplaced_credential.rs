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
    d.rules.sort_unstable();
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
        .scanner()
        .scan(token.as_bytes())
        .iter()
        .filter(|f| match f.rule {
            writ_detect::ScanRule::Builtin(rule) => rule.is_service_key(),
            writ_detect::ScanRule::Configured(_) => true,
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pipeline::fixture::Fixture;

    /// A JWT signed with `alg: none` (and an empty signature), valid at the fixture's time.
    const ALG_NONE: &str = "eyJhbGciOiJub25lIiwidHlwIjoiSldUIn0.\
        eyJzdWIiOiJkZW1vIiwiaWF0IjoxODAwMDAwMDAwLCJleHAiOjE4MDAwMDAzMDB9.";
    /// An OpenAI project key, as the scanner's rule recognises it.
    const OPENAI: &str = "sk-proj-Ab3dE5fG7hJ9kL1mN3pQ5rS7tU9vW1xY";
    /// The gateway's own credential for its `openai` upstream.
    const UPSTREAM_KEY: &str = "upstream-credential-0123456789";

    /// A gateway with an `openai` upstream holding [`UPSTREAM_KEY`], and `extra` after it.
    async fn gateway(extra: &str) -> Fixture {
        Fixture::start(&format!(
            "[upstreams.openai]\nkind = \"openai\"\napi_key = \"{UPSTREAM_KEY}\"\n{extra}"
        ))
        .await
    }

    /// The detection `token` leaves in a fresh request's context.
    async fn detect(f: &Fixture, token: &str) -> Option<crate::detect::detections::Detection> {
        let mut ctx = RequestCtx::new(&f.gw, writ_providers::ROUTES[0], None);
        check(&f.gw, &mut ctx, token).await;
        ctx.detection.take()
    }

    #[tokio::test]
    async fn an_unsigned_jwt_is_a_weak_jwt_naming_its_weakness() {
        let f = gateway("").await;
        let d = detect(&f, ALG_NONE).await.expect("a weak_jwt detection");
        assert_eq!(d.detector, Detector::WeakJwt);
        assert_eq!(d.action, Action::Blocked);
        assert!(d.rules.iter().any(|r| r == "alg-none"), "{:?}", d.rules);
        assert!(d.count >= 1);
        assert_eq!(f.gw.detections.total(Detector::WeakJwt, Action::Blocked), 1);
    }

    #[tokio::test]
    async fn a_malformed_jwt_is_nothing_to_report() {
        let f = gateway("").await;
        assert!(detect(&f, "eyJnot-a-jwt-at-all").await.is_none());
        assert_eq!(f.gw.detections.total(Detector::WeakJwt, Action::Blocked), 0);
    }

    #[tokio::test]
    async fn a_provider_key_is_a_raw_provider_key_naming_its_rule() {
        let f = gateway("").await;
        let d = detect(&f, OPENAI)
            .await
            .expect("a raw_provider_key detection");
        assert_eq!(d.detector, Detector::RawProviderKey);
        assert_eq!(d.action, Action::Blocked);
        assert_eq!(d.location, "credential");
        assert_eq!(d.rules, vec!["openai-api-key".to_string()]);
        assert_eq!(d.count, 1);
        assert_eq!(
            f.gw.detections
                .total(Detector::RawProviderKey, Action::Blocked),
            1
        );
    }

    #[tokio::test]
    async fn the_gateways_own_upstream_credential_is_a_raw_provider_key() {
        let f = gateway("").await;
        let d = detect(&f, UPSTREAM_KEY)
            .await
            .expect("a raw_provider_key detection");
        assert_eq!(d.detector, Detector::RawProviderKey);
        assert_eq!(d.rules.len(), 1);
    }

    #[tokio::test]
    async fn a_writ_prefixed_string_leaves_nothing() {
        let f = gateway("").await;
        // A writ that did not verify is an invalid writ, not a misplaced key, even when it
        // happens to hold what the scanner would take for one.
        let writ = f.mint(
            r#"{"type":"writ:llm","upstream":"openai","models":["gpt-4o"]}"#,
            None,
        );
        let wrapped = format!("{}{UPSTREAM_KEY}", writ_token::WRIT_PREFIX);
        for token in [writ.as_str(), wrapped.as_str()] {
            assert!(detect(&f, token).await.is_none());
        }
        assert_eq!(
            f.gw.detections
                .total(Detector::RawProviderKey, Action::Blocked),
            0
        );
    }

    #[tokio::test]
    async fn off_modes_leave_nothing() {
        let f =
            gateway("[detection.modes]\nweak_jwt = \"off\"\nraw_provider_key = \"off\"\n").await;
        assert!(detect(&f, ALG_NONE).await.is_none());
        assert!(detect(&f, OPENAI).await.is_none());
    }
}
